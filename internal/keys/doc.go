// Package keys is the agent-keys file of keybrake serve: which Keybrake
// agent keys ("kb_...") exist, which agent and vendor each speaks for, and
// which have been revoked.
//
// An agent talking to the proxy holds an agent key; the proxy holds the
// vendor's real secret. The file never holds either: for a key it records
// the SHA-256 of the whole key string, and for a vendor's secret at most
// the path of the file the proxy reads it from. So the file can be backed
// up, diffed and reviewed; still, it is refused unless only its owner can
// read and write it (mode 0600 or stricter), because who holds which key
// and where the secrets live is nobody else's business, and because anyone
// who can write it can add a key of their own.
//
// # The story of a key
//
// Add makes a key (kb_ and 32 random bytes in lower-case base32), appends
// its entry and returns the key, once: the caller prints it, and nothing
// here keeps it, logs it or puts it in an error. Lookup hashes a presented
// key and compares the hash with every entry's in constant time; the
// result is a value (OK, Unknown, Revoked, Unavailable), never an error.
// Revoke marks an entry revoked; the entry stays, so lists show it and a
// lookup says Revoked rather than Unknown. Set is the file as the running
// proxy sees it: watched (internal/watch), each valid version swapped in
// atomically, and every key refused while the file on disk is invalid.
//
// One key speaks for one agent calling one vendor. An agent may hold
// several keys: for several vendors, or two for the same vendor while a
// key is rotated (add the new, move the agent over, revoke the old).
//
// # The file
//
// A keys file is YAML (JSON, being YAML, works too), decoded strictly: an
// unknown or duplicate key, a value of the wrong type, an anchor, alias,
// merge key or explicit tag, a second document, control or invisible
// characters: each is a *ParseError naming the file and the line. No
// message quotes a value, since a value in the wrong place may be a
// secret.
//
//	# Keybrake agent keys (keybrake keys add, list, revoke). Each entry holds
//	# the SHA-256 of an agent key, never the key. Keep this file mode 0600.
//	version: 1
//	secrets:
//	  stripe: file:/etc/keybrake/stripe.key
//	keys:
//	  - id: kbk_q7m2x4k6tz3a
//	    agent: refund-bot
//	    vendor: stripe
//	    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//	    created: 2026-11-25T10:00:00Z
//	  - id: kbk_c3n5p7w2hy6d
//	    agent: refund-bot
//	    vendor: stripe
//	    sha256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
//	    created: 2026-11-01T09:30:00Z
//	    revoked: 2026-11-25T10:05:00Z
//
// version (required) is 1.
//
// secrets (optional) maps a vendor's name to where the proxy reads that
// vendor's secret instead of the environment. The only form is
// file:/absolute/path; anything else, a literal secret above all, is an
// error that says so without showing the value. The file does not know
// which vendors exist: the caller checks the names.
//
// keys (optional) lists the keys. Each entry has
//
//   - id: "kbk_" and 12 lower-case base32 or hexadecimal characters,
//     unique in the file; Add makes a random one, unrelated to the key.
//   - agent: the policy's agent name, 1 to 63 lower-case letters, digits,
//     _ and -, starting with a letter or digit.
//   - vendor: a vendor name, written as agent names are.
//   - sha256: the lower-case hex SHA-256 of the whole key, "kb_" included;
//     unique in the file.
//   - created: an RFC 3339 time in UTC ("Z").
//   - revoked (optional): an RFC 3339 time in UTC, when the key was
//     revoked. A revoked key stays listed and is refused.
//
// Strings that YAML would read as something else (a hash of digits only,
// an agent called 007) must be quoted; Add quotes what needs it.
//
// # Writing
//
// Add and Revoke read the file, refuse to change one Load would refuse,
// edit it as a YAML tree (comments are kept, the layout normalised), parse
// the result back to check it says what was meant, and replace the file
// atomically with mode 0600 (internal/atomicfile). Writers in several
// processes are serialised by a flock on the file's name plus ".lock", so
// an add and a revoke at the same moment cannot lose either.
//
// # Reloading
//
// A Set re-reads the file on every file event in its directory and on a
// poll (250 ms by default), hashes the bytes, and swaps in a version that
// parses with one atomic store: a lookup sees the old version or the new.
// Bytes that do not parse are given 60 ms (an empty file a second) to
// finish being written, as the policy's are; then every key is refused
// (Unavailable), with the cause from (*Set).Err for a readiness check,
// until a valid file appears. A file that vanishes or is opened to other
// users is refused at once.
package keys
