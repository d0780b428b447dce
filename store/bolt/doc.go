// Package bolt is Keybrake's default store: one bbolt file, held by one
// process, that keeps every limit's counters, every call's audit record and
// reservation, the idempotency keys seen, and small facts. It implements
// store.Store and runs the conformance suite in store/storetest.
//
//	s, err := bolt.Open("/var/lib/keybrake/keybrake.db", nil)
//	if errors.Is(err, store.ErrLocked) {
//		// another process (probably a running agent) holds the file
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
// transaction and commits it once: one fsync for the whole batch. There is
// no timer, so a lone call pays nothing for batching; under load the batch
// is whatever queued while the previous commit was syncing (about 30
// reservations a commit on a 2-core machine with 64 concurrent callers).
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
// Reserve commits the call's record (Outcome Reserved, with its holds), the
// counter changes and the idempotency entry in one transaction, durable
// (fsync'd) before Reserve returns. Complete moves the holds and rewrites
// the record in one transaction. Close stops accepting operations, lets the
// writer finish those already queued, waits for it to return and for reads
// in progress, and closes the file; every method then returns
// store.ErrClosed.
//
// Reads (Query, Counter, Fact) run in bbolt read transactions, concurrently
// with the writer and each other. Query reads 256 records per transaction
// and calls its fn outside any transaction, so fn may call the store.
//
// # Crash recovery
//
// A record is Reserved from Reserve until Complete. The pending bucket lists
// those records, so Open finds them without scanning the log: every one
// still there belonged to a process that stopped in between. Nobody knows
// whether the vendor acted, so Open turns each into Unknown, appends
// "(interrupted: the process stopped before the response was recorded)" to
// its Reason and moves its holds from pending to unknown. The money stays
// counted against every limit; a retry with the same idempotency key takes
// the holds over.
//
// # On-disk layout
//
// Schema version 1. Integers are big-endian. Buckets:
//
//	meta         "schema" -> uint64 schema version. Open refuses a newer
//	             version, and a bbolt file without this bucket that holds
//	             other buckets (not a Keybrake store), with ErrSchema.
//	records      uint64 record ID -> the audit.Record as JSON (audit.Record's
//	             MarshalJSON). IDs come from the bucket's NextSequence:
//	             1, 2, 3 ..., never reused, growing across restarts.
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
//	             call that reserved (or settled) with that key. Kept
//	             forever.
//	facts        key -> value, written once.
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
// a second Open, from another process or from this one, waits
// Options.LockTimeout (one second by default) and returns an error wrapping
// store.ErrLocked that names the path.
package bolt
