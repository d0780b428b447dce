// Package bolt is Keybrake's default store: one bbolt file, held by one
// process, that keeps every limit's counters and rolling windows, every
// call's audit record and reservation, the idempotency keys seen, and small
// facts. It implements
// store.Store and runs the conformance suite in store/storetest.
//
//	s, err := bolt.Open("/var/lib/keybrake/keybrake.db", nil)
//	if errors.Is(err, store.ErrLocked) {
//		// another process (probably a running agent), or another Open
//		// in this one, holds the file
//	}
//	defer s.Close()
//
// # The write path
//
// Every write (Reserve, Complete, Append, SetFact) is checked first in the
// caller's goroutine: arguments the store would refuse, and whether the
// audit record's JSON form can hold it (see below). It then joins a
// queue served by a single writer goroutine. The writer takes
// the first queued operation, drains every operation already queued without
// waiting (at most 512), applies them in turn in one bbolt read-write
// transaction and commits it once: one fsync for the whole batch. A lone
// Reserve, Append or SetFact pays nothing for batching; under load the
// batch is whatever queued while the previous commit was syncing (about 30
// reservations a commit on a 2-core machine with 64 concurrent callers).
//
// A batch of nothing but completions (Complete, Resettle) lingers: the
// writer waits up to Options.Linger (DefaultLinger, 1 ms) for one more
// operation, drains the queue again and commits the lot. Completions reach
// the store from the transport's completer goroutine, after the agent has
// its response, and the agent's next call reserves a few hundred
// microseconds later: without the wait that Reserve queues behind the
// completion's fsync and a serial caller pays two fsyncs a call; with it,
// one. Complete still returns only once its completion is committed, so
// the wait delays the completer, never the agent, and never weakens
// durability. Close ends a linger at once.
//
// Operations in a batch see each other's writes, in queue order, so two
// reservations racing for the last unit of a limit are decided exactly as
// if they ran one after the other. An operation reads and checks everything
// before it writes anything, so a refusal (over the limit, key reused, key
// in use, not found, not reserved) writes nothing and is not an error to
// the batch. If an operation fails with an error (corrupt data, an overflow,
// an I/O error), the transaction rolls back and every operation of the batch
// runs again alone in its own transaction, so only the failing caller sees
// the error, as bbolt's own DB.Batch does. An operation may therefore be
// applied twice, the first time rolled back; it recomputes its result each
// time.
//
// A caller's context bounds its wait. While its operation is still queued,
// a cancelled context removes it (an atomic state the writer checks before
// applying) and the caller gets ctx.Err(); once the writer has claimed it,
// the caller waits for the commit and gets the real result, so an Admitted
// reservation is never silently lost. A context already done when the call
// starts writes nothing.
//
// Reserve commits the call's record (Outcome Reserved, with its holds), its
// journal entry (see The audit chain), the counter changes, its window
// entries (see Rolling windows) and the idempotency entry in one
// transaction, durable (fsync'd) before Reserve returns. Complete moves the
// holds and rewrites the record, with its entry, in one transaction. Close stops accepting operations, lets the
// writer finish those already queued, waits for it to return and for reads
// in progress, and closes the file; every method then returns
// store.ErrClosed.
//
// Close first ends Verify and Prune, which look at it between chunks of
// 1024 entries or records and return store.ErrClosed, so that it never
// waits for a long transaction: a Prune's write chunks are bounded, and
// what it removed so far stays removed, consistently.
//
// Reads (Query, Outstanding, Counter, Counters, Window, Fact) run in bbolt
// read transactions, concurrently with the writer and each other. Query and
// Outstanding read 256 records per transaction and call fn outside any
// transaction, so fn may call the store. Query walks an index: the records
// bucket from q.After when it is set (ID order), the agent index from
// (q.Agent, q.Since) when an agent is named, else the time index from
// q.Since; each stops at q.Until. A run or principal has no index of its
// own: q.Run and q.Principal filter the walk, with q.Since and q.Agent to
// bound it. Outstanding merges the pending and unknown buckets in ID
// order. Each costs in proportion to what it returns (and, for a filter
// the index does not cover, what it skips), not to the log.
//
// # Rolling windows
//
// A hold with a Window keeps no counter. Each record's hold on a window
// key is one entry of the windows bucket, under the key, the record's Time
// and its ID, holding the hold's Window and what it still counts (pending,
// settled or unknown, as a counter would). A Reserve seeks to the start of
// the hold's window (its record's Time less its Window) and sums the
// entries from there to the key's last, later records included, so records
// reserved out of time order never let more than Limit into any interval
// of the window's length; a reservation's windows and counters are checked
// in the order of its holds before anything is written. When a hold does
// not fit, Frees is the Time of the oldest entries whose leaving makes
// room, plus the hold's Window: entries leave the window of the hold being
// reserved at their Time plus its Window, whatever window they were
// reserved with. Complete and Resettle move the entry as they move a
// counter (a Released hold's entry is deleted, a settlement of zero kept:
// it may be reconciled upward); crash recovery turns it unknown; a retry
// that takes over an Unknown call moves its entries to the retry's Time
// and ID. Every move checks that the entry held exactly what its record's
// hold said and holds exactly what it says after, so an edited or
// malformed entry is an error, never room under a limit. An entry Prune
// removed (it left its own window) is nothing to move. Window reads a
// key's entries from its first, since entries of different windows leave
// in another order than their Times'; Prune keeps them few.
//
// # The audit chain
//
// Every write that creates or changes a record also appends one entry to
// the journal bucket, in the same transaction: one more put, no more
// transactions or fsyncs. Entries are numbered by the bucket's sequence
// (1, 2, 3 ..., in the order applied, which within a group commit is the
// queue's order) and each is
//
//	seq (8) | hash (32) | link (8) | kind (1) | uvarint record ID | payload
//	hash = SHA-256(previous entry's hash | seq | kind | record ID | payload)
//	link = the first 8 bytes of the previous entry's hash
//
// For kind 's' (a state) the payload is the SHA-256 of the record's bytes
// as the records bucket holds them, which include the entry's own number;
// for kind 't' (a tombstone, see Retention) it is the Prune's cutoff. The
// first entry's predecessor is 32 zero bytes, or the checkpoint's hash
// after a Prune. A record's state is thus stored once, in the records
// bucket; the journal holds about 84 bytes an entry. A record's PrevHash
// is not stored: reads set it to the hash of the entry before the
// record's latest, which the journal (or the checkpoint) holds. Reading
// the head costs one Get (the journal's sequence names the last entry),
// hashing a record about a microsecond.
//
// Verify reads everything in one read transaction (it is the operator's
// explicit check; Prune shares it). It walks the journal from the
// checkpoint: numbers must follow each other with none missing (the
// bucket's sequence says how many were written, so entries removed from
// the end show too), each entry must sit at the position it was written
// for, hash to what it says and name its predecessor's hash. An entry
// whose hash is wrong is reported altered when its link names its
// predecessor, else as a broken link (the entry before was replaced with
// its hash recomputed). Then every record must hash to its latest entry's
// state and name that entry, and every record with an entry must be
// there. It reports the first break as a *store.ChainError: the journal's
// first, else the record whose latest entry is earliest, else a record
// with no entry at all, with a message that names the entry or record. (The
// journal no longer holds a record's old bytes, so an altered record is
// reported as differing from its entry, without the fields that differ.)
// It keeps about 100 bytes per record in memory.
//
// The chain cannot show a rewrite of its end by someone who recomputes the
// hashes and the sequence; note VerifyReport.HeadHash elsewhere to catch
// that. Writes refuse to continue a chain whose head entry is missing
// (an error, so the call fails closed) rather than start a second one.
//
// # Retention
//
// Prune(before) first verifies the chain (it refuses to destroy the
// evidence of a broken one) and plans, in read transactions of at most
// 1024 entries, records or keys each, looking at its ctx between them, so
// that no long read transaction holds pages or keeps Close waiting: the
// walk covers the journal up to its last entry when it began (entries
// are only appended), and a record changed since is left to the next
// Prune. The plan: the
// records to remove are those finished (not Reserved or Unknown) with Time
// before the cutoff, found through the time index, less those an
// idempotency key younger than 24 hours by Options.Now points at; the
// counters to keep are those any Reserved or Unknown record holds (the
// pending and unknown buckets list them).
//
// It then cuts the journal from its start, 1024 entries a transaction,
// through the write queue like any write, so reservations wait
// milliseconds, not for the whole Prune. An entry superseded by a later
// one of its record, or whose record is gone, is dropped; the latest entry
// of a record to remove goes with the record, its time index entry and the
// idempotency keys pointing at it; the latest entry of a record that stays
// although it is older than the cutoff (still counted) or dated after
// Options.Now is carried forward, appended again with a fresh link. The
// cut stops at the latest entry of the first record younger than the
// cutoff, so records written in time order are never carried. The
// checkpoint (meta "checkpoint": the last entry cut and its hash) moves to
// the last entry cut, and Verify starts after it.
//
// A record to remove whose latest entry lies beyond the cut (an estimate
// reconciled late, an Unknown call retried days later) is removed anyway,
// with a tombstone appended in its place: an entry of kind 't' naming the
// record and the cutoff, which says the record must be absent. Its older
// entries and the tombstone go when a later cut reaches them. Then
// counters whose key's latest "/"-separated date segment is before the
// cutoff's UTC day go, unless a Reserved or Unknown record holds them,
// 1024 keys a transaction; last, the window entries whose Time plus Window
// is not after the cutoff, 1024 entries examined a transaction, whatever
// their record's outcome (a window counts by time alone). Facts are kept. Pruning daily with a 7-day
// retention keeps the file's size flat once bbolt reuses the freed pages:
// TestPruneKeepsTheStoreBounded writes 45 days of 200 calls and measures.
//
// # Crash recovery
//
// A record is Reserved from Reserve until Complete. The pending bucket lists
// those records, so Open finds them without scanning the log (Open reads
// the meta and pending buckets only, whatever the log's length): every one
// still there belonged to a process that stopped in between. Nobody knows
// whether the vendor acted, so Open turns each into Unknown, appends
// "(interrupted: the process stopped before the response was recorded)" to
// its Reason and moves its holds from pending to unknown (in counters and
// window entries), journaling each and listing it in the unknown bucket.
// The money stays counted against every limit; a retry with the same
// idempotency key within store.ReplayWindow takes the holds over (a later
// one is a new call, and the Unknown one stays counted). A read-only Open
// recovers nothing.
//
// # On-disk layout
//
// Schema version 4. Integers in keys are big-endian; a uvarint or varint
// is encoding/binary's. Buckets (the append-only ones, whose keys only
// grow, fill their pages: bbolt's FillPercent 1.0; records 0.9 once
// completed, the last page split lower while its records are still
// reserved, leaving them room to grow when they complete; idempotency
// keys 0.8 while most new keys go after every key of their agent's
// committed before them, else bbolt's half: see pageFill):
//
//	meta         "schema" -> uint64 schema version. Open refuses a newer
//	             version, and a bbolt file without this bucket that holds
//	             other buckets (not a Keybrake store), with ErrSchema.
//	             "checkpoint" -> uint64 entry number + 32-byte hash: the
//	             last journal entry a Prune removed; absent until then.
//	             "schema2head" -> uint64 entry number + 32-byte hash: the
//	             head of the schema-2 chain an upgrade rewrote.
//	records      uint64 record ID -> the record, binary: format byte 1,
//	             uvarint ID, uvarint number of its latest journal entry,
//	             uvarint bit set of the fields present, then each present
//	             field in a fixed order (see record.go). Text is a uvarint
//	             tag: 0 empty, 1 a canonical lowercase UUID (16 bytes
//	             follow), 2n dictionary entry n, 2n+1 n bytes inline. Names,
//	             rules, reasons, hosts, paths, hold keys and units, parameter
//	             names, currency, policy hash, principals and the like go
//	             through the dictionary; parameter values, object and
//	             request IDs, idempotency keys and runs inline. Amounts are
//	             varint micros in the record's one currency; Time is varint
//	             unix seconds and uvarint nanoseconds; Duration varint
//	             microseconds; the holds' Windows, when any is not zero,
//	             one varint of nanoseconds a hold, after every older field.
//	             IDs come from the bucket's NextSequence: 1, 2, 3 ...,
//	             never reused.
//	journal      uint64 entry number -> the entry (see The audit chain).
//	             Numbers come from the bucket's NextSequence.
//	time         uint64 (unix nanoseconds XOR 2^63, clamped to the int64
//	             range) + uint64 record ID -> empty.
//	agent        uvarint dictionary id of the record's Agent (0 for none) +
//	             the time key above -> empty: one agent's records by time.
//	pending      uint64 record ID -> one byte, 'h' (a reservation holding
//	             its holds) or 'r' (a replay, holding nothing). Exactly the
//	             records whose Outcome is Reserved.
//	unknown      uint64 record ID -> empty. Exactly the records whose
//	             Outcome is Unknown.
//	counters     limit key -> three int64: settled, pending, unknown.
//	             Never negative; a sum that would overflow is an error.
//	windows      uvarint length of a window key + the key + the time key
//	             above of the record (exact: a windowed hold needs a Time
//	             of the years 1678 to 2262) -> int64 Window in nanoseconds
//	             and three int64: settled, pending, unknown. One entry per
//	             record per window key, until it is Released or pruned.
//	idempotency  0x01 + uvarint dictionary id of the key up to its last NUL
//	             + 16 bytes, for a key ending in a canonical lowercase UUID;
//	             else 0x00 + the key -> uint64 record ID + 0x01 and 32 bytes
//	             (a lowercase hex SHA-256 fingerprint) or 0x00 and the
//	             fingerprint: the latest call that reserved (or settled)
//	             with that key. Pruned with its record.
//	dict         uint64 id -> text; strings: text -> uvarint id. The
//	             dictionary: ids from NextSequence, never removed or changed.
//	facts        key -> value, written once. Never pruned.
//
// A file of schema version 3 differs only in having no windows bucket and
// no record with the fields version 4 added (Run, Principal, the holds'
// Windows: new presence bits after the old ones, so the old records' bytes
// and hashes stand as written). Its first read-write Open creates the
// empty bucket and sets the version, in one small transaction; a
// read-only Open reads it as it is. A Keybrake that writes version 3
// refuses a file of version 4 as newer, rather than reserve against
// windows it cannot see.
//
// A file of schema version 2 is upgraded in place by its first read-write
// Open, in that Open's one transaction (so it needs memory for the pages
// it rewrites: prune a large file with the old Keybrake first, or expect
// the first Open to take a while): the old chain must verify (else Open
// fails with its *store.ChainError, and nothing is changed), every entry
// is rewritten in the new form under the same number, chained from the
// same checkpoint, every record is encoded anew and the agent, unknown,
// dictionary and windows buckets are built. A file of schema version 1 (before the
// chain) gets the chain the same way, every record, in ID order, becoming
// the journal's first entries. A read-only Open refuses both with
// ErrSchema, saying to open the file read-write once: reading the old
// forms is left to the upgrade. bbolt never shrinks a file; `bbolt
// compact` reclaims what an upgrade freed.
//
// # The record's JSON form
//
// audit.Record's JSON form stays what a dump of the file and the audit log
// show, so the store keeps only records that form holds as written. It
// keeps Time as UTC (without the monotonic reading), Duration to the
// microsecond, a zero amount without its currency, and empty Params or
// Holds as absent, and the store's reads give the same. It cannot hold a
// Reserved or Settled amount when Amount has no currency, two currencies in
// one record, a currency the money package does not know, text that is
// not UTF-8 or a year outside 0 to 9999 (the store records every negative
// Duration, which only a clock going backwards produces, as zero). The
// store checks those explicitly before it writes and refuses, with
// ErrInvalid, a record that would not read back as written, rather than
// lose what a call held or moved.
//
// # Files and processes
//
// The file is created with mode 0600. bbolt takes an exclusive flock on it:
// a second Open from another process waits Options.LockTimeout (one second
// by default) and returns an error wrapping store.ErrLocked that names the
// path. The flock belongs to the open file, not the process, so a second
// Open from this process would wait on its own lock; Open remembers the
// files this process holds (by name and by device and inode) and refuses
// one held read-write at once, with an error wrapping store.ErrLocked that
// says it is already open in this process.
//
// With Options.ReadOnly, Open takes a shared lock instead, so any number of
// readers (`keybrake audit verify`, a dump) may open a file no agent holds;
// writes return store.ErrReadOnly and nothing is recovered or upgraded.
package bolt
