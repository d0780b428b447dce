package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"
)

var (
	// ErrNotPrivate is wrapped by the error Load returns for a file that
	// users other than its owner may read or write.
	ErrNotPrivate = errors.New("keys: the keys file is open to other users")
	// ErrUnknownID is wrapped by the error Revoke returns for an id the
	// file does not hold.
	ErrUnknownID = errors.New("keys: no key has this id")
	// ErrClosed is what (*Set).Err returns once the Set is closed.
	ErrClosed = errors.New("keys: the set is closed")
)

// Entry is one agent key as the file records it: who holds it, for which
// vendor, and the SHA-256 of the key; never the key. Its zero value is no
// key.
type Entry struct {
	ID      string    // "kbk_" and 12 characters; names the key in lists and revocations
	Agent   string    // the policy's agent the key speaks for
	Vendor  string    // the vendor it may call; the file does not check it exists
	SHA256  string    // lower-case hex of SHA-256 of the whole key, "kb_" included
	Created time.Time // UTC, to the second
	Revoked time.Time // UTC; zero while the key is in force
}

// IsRevoked reports whether the key has been revoked.
func (e Entry) IsRevoked() bool { return !e.Revoked.IsZero() }

// Result is what a lookup decided. Every result but OK refuses the key;
// the zero value is Unknown.
type Result int

const (
	// Unknown: no entry holds the token's hash, or the token is not an
	// agent key at all.
	Unknown Result = iota
	// OK: the key is in force; the Entry says for whom.
	OK
	// Revoked: the key was revoked; the Entry says when.
	Revoked
	// Unavailable: the Set has no valid file in force (it became invalid
	// or the Set is closed), so every key is refused; (*Set).Err says why.
	// (*File).Lookup never returns it.
	Unavailable
)

func (r Result) String() string {
	switch r {
	case Unknown:
		return "unknown"
	case OK:
		return "ok"
	case Revoked:
		return "revoked"
	case Unavailable:
		return "unavailable"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// File is one valid version of a keys file. It is immutable, so safe for
// concurrent use. The zero value holds no keys: its Lookup refuses every
// token.
type File struct {
	path    string
	hash    string
	entries []Entry
	sums    [][32]byte // sums[i] is entries[i].SHA256 decoded
	secrets map[string]string
}

// Path is the path the file was loaded from.
func (f *File) Path() string { return f.path }

// Hash is the first 16 hex digits of the SHA-256 of the file's bytes, to
// tell versions apart in logs.
func (f *File) Hash() string { return f.hash }

// Entries returns a copy of the entries in file order, revoked ones
// included.
func (f *File) Entries() []Entry {
	if len(f.entries) == 0 {
		return nil
	}
	return append([]Entry(nil), f.entries...)
}

// Secret returns the absolute path of the file the proxy reads vendor's
// real secret from, when the keys file names one (secrets: vendor:
// file:/path); ok false means the environment provides it.
func (f *File) Secret(vendor string) (path string, ok bool) {
	path, ok = f.secrets[vendor]
	return path, ok
}

// Secrets returns the vendors that have a secret file, in name order.
func (f *File) Secrets() []string {
	names := make([]string, 0, len(f.secrets))
	for v := range f.secrets {
		names = append(names, v)
	}
	sort.Strings(names)
	return names
}

// tokenPrefix starts every agent key, so that a leaked one is recognised
// (by secret scanners, by people) as Keybrake's.
const tokenPrefix = "kb_"

// maxToken bounds what Lookup hashes: a key is 55 bytes, and a request
// header of a megabyte should not cost a megabyte of hashing.
const maxToken = 256

// Lookup finds the entry holding token. It hashes token and compares the
// hash with every entry's in constant time, never stopping at a match, so
// how long it takes says nothing about which entry, if any, matched or how
// much of a hash did. A token not starting with "kb_" is Unknown before
// any hashing. Lookup returns the entry for OK and Revoked, and the zero
// Entry for Unknown.
func (f *File) Lookup(token string) (Entry, Result) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > maxToken {
		return Entry{}, Unknown
	}
	sum := sumToken(token)
	found := -1
	for i := range f.sums {
		eq := subtle.ConstantTimeCompare(sum[:], f.sums[i][:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return Entry{}, Unknown
	}
	e := f.entries[found]
	if e.IsRevoked() {
		return e, Revoked
	}
	return e, OK
}

// Load reads and validates the keys file at path. It refuses a file whose
// mode lets anyone but its owner read or write it (the error wraps
// ErrNotPrivate and says how to fix it); a file that cannot be read
// returns the *fs.PathError, so errors.Is(err, fs.ErrNotExist) works; a
// file that does not parse returns a *ParseError.
func Load(path string) (*File, error) {
	data, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data)
}

// readPrivate reads path after checking its mode. The mode is checked on
// the open file, so a rename in between cannot swap in another; a first
// look before opening keeps a FIFO from blocking the open.
func readPrivate(path string) ([]byte, error) {
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if err := checkMode(path, st); err != nil {
		return nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkMode(path, st); err != nil {
		return nil, err
	}
	return io.ReadAll(fh)
}

func checkMode(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("keys: %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, which lets group or others read or change it; run chmod 600 %s",
			ErrNotPrivate, path, perm, path)
	}
	return nil
}

// newToken returns a new agent key: "kb_" and 32 random bytes in
// lower-case base32 without padding (52 characters). The random bytes and
// their encoding are cleared once the key string is made, so the string
// returned is the only copy (as far as Go lets a program say so).
func newToken() (string, error) {
	var raw [32]byte
	var enc [52]byte
	defer clear(raw[:])
	defer clear(enc[:])
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("keys: no randomness for a new key: %w", err)
	}
	lowerBase32.Encode(enc[:], raw[:])
	return tokenPrefix + string(enc[:]), nil
}

// newID returns a new key id: "kbk_" and 12 characters (60 random bits) of
// lower-case base32. It is independent of the key, so it can be shown.
func newID() (string, error) {
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("keys: no randomness for a new key id: %w", err)
	}
	return "kbk_" + lowerBase32.EncodeToString(raw[:])[:12], nil
}

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// sumToken is the SHA-256 of token, which is at most maxToken bytes. It
// hashes from a buffer on the stack, cleared after: []byte(token) would
// put a copy of the key on the heap (the compiler keeps only 32 bytes on
// the stack), and allocate on every lookup.
func sumToken(token string) [32]byte {
	var buf [maxToken]byte
	defer clear(buf[:])
	return sha256.Sum256(buf[:copy(buf[:], token)])
}

func hashToken(token string) string {
	sum := sumToken(token)
	return hex.EncodeToString(sum[:])
}
