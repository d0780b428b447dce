// Package bolt is Keybrake's default store: one bbolt file, held by one
// process, that keeps every limit's counters, every call's audit record and
// reservation, the idempotency keys seen, and small facts. It implements
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
// audit record reads back from its JSON form as written (see below). It
// then joins a queue served by a single writer goroutine. The writer takes
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
// journal entry (see The audit chain), the counter changes and the
// idempotency entry in one transaction, durable (fsync'd) before Reserve
// returns. Complete moves the holds and rewrites the record, with its
// entry, in one transaction. Close stops accepting operations, lets the
// writer finish those already queued, waits for it to return and for reads
// in progress, and closes the file; every method then returns
// store.ErrClosed.
//
// Reads (Query, Counter, Fact) run in bbolt read transactions, concurrently
// with the writer and each other. Query reads 256 records per transaction
// and calls its fn outside any transaction, so fn may call the store.
//
// # The audit chain
//
// Every write that creates or changes a record also appends the record's
// new state to the journal bucket, in the same transaction: one more put,
// no more transactions or fsyncs. Entries are numbered by the bucket's
// sequence (1, 2, 3 ..., in the order applied, which within a group
// commit is the queue's order) and each is
//
//	seq (8 bytes) | hash (32 bytes) | JSON
//	hash = SHA-256(previous entry's hash | seq | JSON)
//
// where the JSON is the record exactly as the records bucket holds it,
// with PrevHash ("prev") set to the previous entry's hash in hex: the
// record shows its own link. The first entry's predecessor is 32 zero
// bytes. Reading the head costs one Get (the journal's sequence names the
// last entry), hashing a record about a microsecond; BenchmarkReserveParallel
// measures the whole.
//
// Verify reads everything in one read transaction. It walks the journal
// from the checkpoint: numbers must follow each other with none missing
// (the bucket's sequence says how many were written, so entries removed
// from the end show too), each entry must hash to what it says, sit at the
// position it was written for and name its predecessor's hash. Then every
// record must be byte for byte its latest entry's JSON, and every record
// with an entry must be there. It reports the first break as a
// *store.ChainError: the journal's first, else the record whose latest
// entry is earliest, else a record with no entry at all, with a message
// that names the entry or record and, for an altered record, the fields
// that differ. It keeps about 100 bytes per record in memory.
//
// The chain cannot show a rewrite of its end by someone who recomputes the
// hashes and the sequence; note VerifyReport.HeadHash elsewhere to catch
// that. Writes refuse to continue a chain whose head entry is missing
// (an error, so the call fails closed) rather than start a second one.
//
// # Retention
//
// Prune(before) first verifies the chain (it refuses to destroy the
// evidence of a broken one) and, in that read transaction, plans: the
// records to remove are those finished (not Reserved or Unknown) with Time
// before the cutoff, found through the time index, less those an
// idempotency key younger than 24 hours by Options.Now points at; the
// counters to keep are those any Reserved or Unknown record holds.
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
// with a tombstone appended in its place: {"id":N,"pruned":"<cutoff>",
// "prev":"..."}, an entry that says the record must be absent. Its older
// entries and the tombstone go when a later cut reaches them. Last,
// counters whose key's latest "/"-separated date segment is before the
// cutoff's UTC day go, unless a Reserved or Unknown record holds them,
// 1024 keys a transaction. Facts are kept. Pruning daily with a 7-day
// retention keeps the file's size flat once bbolt reuses the freed pages:
// TestPruneKeepsTheStoreBounded writes 45 days of 200 calls and measures.
//
// # Crash recovery
//
// A record is Reserved from Reserve until Complete. The pending bucket lists
// those records, so Open finds them without scanning the log: every one
// still there belonged to a process that stopped in between. Nobody knows
// whether the vendor acted, so Open turns each into Unknown, appends
// "(interrupted: the process stopped before the response was recorded)" to
// its Reason and moves its holds from pending to unknown, journaling each.
// The money stays counted against every limit; a retry with the same
// idempotency key takes the holds over. A read-only Open recovers nothing.
//
// # On-disk layout
//
// Schema version 2. Integers are big-endian. Buckets:
//
//	meta         "schema" -> uint64 schema version. Open refuses a newer
//	             version, and a bbolt file without this bucket that holds
//	             other buckets (not a Keybrake store), with ErrSchema.
//	             "checkpoint" -> uint64 entry number + 32-byte hash: the
//	             last journal entry a Prune removed; absent until then.
//	records      uint64 record ID -> the audit.Record as JSON (audit.Record's
//	             MarshalJSON), with PrevHash set. IDs come from the bucket's
//	             NextSequence: 1, 2, 3 ..., never reused, growing across
//	             restarts.
//	journal      uint64 entry number -> number + hash + JSON (see The
//	             audit chain). Numbers come from the bucket's NextSequence.
//	time         uint64 (unix nanoseconds XOR 2^63, clamped to the int64
//	             range) + uint64 record ID -> empty. Query seeks here for
//	             Since and stops at Until; records come oldest first by
//	             Time, then ID.
//	pending      uint64 record ID -> one byte, 'h' (a reservation holding
//	             its holds) or 'r' (a replay, holding nothing). Exactly the
//	             records whose Outcome is Reserved.
//	counters     limit key -> three int64: settled, pending, unknown.
//	             Never negative; a sum that would overflow is an error.
//	idempotency  key -> uint64 record ID + fingerprint bytes: the latest
//	             call that reserved (or settled) with that key. Pruned with
//	             its record.
//	facts        key -> value, written once. Never pruned.
//
// A file of schema version 1 (before the chain) is upgraded by its first
// read-write Open: every record, in ID order, becomes the journal's first
// entries. A read-only Open refuses it with ErrSchema.
//
// # The record's JSON form
//
// Records are stored in audit.Record's own JSON form so that a dump of the
// file and the audit log agree. That form keeps Time as UTC (without the
// monotonic reading), Duration to the microsecond, a zero amount without
// its currency, and empty Params or Holds as absent. It cannot hold a
// Reserved or Settled amount when Amount has no currency, two currencies in
// one record, a currency the money package does not know, or a negative
// duration with a fraction of a millisecond (the store records every
// negative Duration, which only a clock going backwards produces, as zero).
// The store checks every record it writes by decoding it again and refuses,
// with ErrInvalid, one that would not read back as written, rather than lose
// what a call held or moved.
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
