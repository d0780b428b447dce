// Package postgres is a store.Store in PostgreSQL, shared by every agent
// process and proxy replica of a fleet, so that one cap is one cap however
// many processes spend against it. It implements store.Store and passes
// the conformance suites of store/storetest (Run and RunRestart) against a
// real PostgreSQL.
//
//	st, err := postgres.Open(ctx, os.Getenv("KEYBRAKE_DATABASE_URL"), nil)
//	if errors.Is(err, postgres.ErrUnavailable) {
//		// the error names host, port, database and user; never the password
//	}
//	defer st.Close()
//
// It uses pgx/v5 with a pgxpool; the DSN is whatever pgx parses (a
// postgres:// URL or key=value pairs, TLS and connect_timeout included).
// Tables live in the first schema of the search_path, so several stores
// can share a database in separate schemas (the tests do, one schema a
// test); advisory locks are keyed by schema too.
//
// # Schema and migrations
//
// The schema is a sequence of SQL files embedded from migrations/
// (0001_initial.sql, ...), recorded in keybrake_migrations. Open applies
// the missing ones in one transaction holding a transaction-level
// advisory lock, so that processes starting together migrate once; a
// database migrated further than SchemaVersion is refused with ErrSchema,
// naming both versions. The tables:
//
//	keybrake_meta        one row: last_session (sessions are numbered
//	                     without gaps) and the checkpoint, the highest
//	                     entry number a Prune removed, with its hash.
//	keybrake_sessions    one row per Store that ever opened read-write:
//	                     host, pid, heartbeat, ttl, closed, and its chain:
//	                     head_seq/head_hash, cut_seq/cut_hash.
//	keybrake_records     id, time_ns, agent, vendor, decision, customer,
//	                     outcome, run, principal (the columns reads
//	                     filter on), session (who reserved it), replay,
//	                     and body: the record as JSONB of audit.Record's
//	                     own JSON form.
//	keybrake_journal     (session, seq) -> n, record_id, hash, body (the
//	                     exact JSON text that was hashed).
//	keybrake_counters    key -> settled, pending, unknown (CHECK >= 0).
//	keybrake_windows     (key, time_ns, record_id) -> window_ns, settled,
//	                     pending, unknown, until_ns: one row per record's
//	                     hold in a rolling window (migration 0004).
//	keybrake_idempotency key -> record_id, fingerprint.
//	keybrake_facts       key -> value, written once.
//	keybrake_stops       (kind, subject) -> source, reason, time_ns,
//	                     record_id: the fleet's stops in force.
//
// Indexes: records by (time_ns, id) for Query; by (agent, time_ns, id) for
// a query naming an agent; by (run, time_ns, id), partial to the records
// with a run, for a query naming a run (`keybrake audit --run`, migration
// 0004); the primary key for After and ByID; a partial
// index of the records Reserved or Unknown for Outstanding; a partial
// index of Reserved records by session for recovery; the journal by
// (record_id, n) and by n; the counters by key in bytewise order
// (COLLATE "C", migration 0003) for Counters, whatever the database's
// collation (CI runs an ICU en-US one); window rows by the primary key for
// reservations and Window, by until_ns (when a row leaves its window) for
// Prune. time_ns is unix nanoseconds (clamped to the
// int64 range, as store/bolt's time index is): timestamptz keeps only
// microseconds and records are ordered by their exact Time;
// audit.Query.Match decides at the edges.
//
// The body is JSONB of the JSON form for now. store/bolt has moved to a
// compact binary body; JSONB keeps the rows readable with psql and
// jq-like operators, at several times the size. JSONB cannot hold U+0000,
// so a record with a NUL character is refused with ErrInvalid.
//
// # Transactions and exactness
//
// Reserve, Complete and Append are group-committed (batch.go): the
// operations of one Store that arrive together share one READ COMMITTED
// transaction of two round trips, at most 128 operations, and a batch of
// Completes alone waits up to 0.5 ms for a Reserve to share its commit
// (at one caller, a call's completion and the next call's reservation
// commit together). Locks are taken in one order across the whole batch:
// the idempotency keys' rows (sorted; a new key's row holds record 0 until
// commit, so concurrent reservations with one key run one after the
// other, and KeyInUse, KeyReused, Replayed and the takeover of an Unknown
// call are decided on a locked row), then the records the batch changes
// (by ID), then the rolling windows its reservations check (see Rolling
// windows), then the counters (sorted by key), then last the Store's own
// session row, the head of its chain, under which record IDs and entry
// numbers are drawn.
//
// The first round trip takes those locks and reads the counters without
// locking them. Each operation is then decided in Go, in arrival order,
// as if it ran alone after the ones before it, with store/bolt's
// arithmetic (overflow is an error): an over-limit refusal, a reused key
// or a record not found is that operation's answer alone, and the others
// are admitted. The second round trip writes what was decided and moves
// each counter by what the batch changed with a guarded UPDATE (WHERE
// its total is still within the bound every admission of the batch
// needs), in key order, then commits; a hot counter row is held from its
// UPDATE to COMMIT with no round trip in between. When a counter moved
// under the batch (another process reserved meanwhile) the guarded UPDATE
// fails on purpose, which aborts the transaction before its COMMIT, and
// the batch runs again with the counters locked (SELECT ... FOR UPDATE in
// key order) from the first round trip, which cannot fail that way. So a
// counter is only ever moved within its limit by a transaction that saw
// it, and no interleaving of any number of processes takes a cap over by
// one minor unit: TestFleetExactCap runs three stores with separate pools
// against one cap, TestFaultFleetExactCap four OS processes of 32 callers
// through stripe-go, with and without SIGKILL and a PostgreSQL restart.
//
// # Rolling windows
//
// A hold with a Window counts in keybrake_windows, never in a counter: one
// row per record and window key, under the record's Time and ID, holding
// what the hold counts now (pending while Reserved, its settlement once
// Settled, unknown while Unknown; a Released or Retried record's row is
// gone). Every write that changes a record checks the rows it finds
// against what the record's old state says they hold (anything else is
// corrupt data, and the write fails) and moves them with it; a row that
// is missing was pruned once it left its window, and is nothing to move.
//
// Reservations of one window key are serialized across the fleet by a
// transaction-level advisory lock of the key (keyed by schema, as the
// others): a batch takes the locks of the keys its reservations check in
// its first round trip, after the records and before the counters, in
// the order of the locks' numbers, and in later statements of that round
// trip reads each key's rows from the earliest time any of its
// reservations counts from, and the rows of the records it completes or
// takes over. Each reservation is then decided in Go in arrival order
// against those rows and what the batch did to them so far, exactly as a
// counter is; the second round trip inserts, updates and deletes rows
// before the counters move, and the locks are held until COMMIT. Unlike a
// counter, a window is never decided optimistically: its lock is held
// from the first round trip. Completions, takeovers, recoveries and Prune
// change rows without the key's lock (under their records' locks): none
// of them makes a key's rows count more for a reservation than if it had
// run after it. TestFleetExactWindow runs 200 reservations at once
// through three stores against windows of 20 calls and of 1000 micros a
// minute: exactly 20 are admitted, the money is exact to the unit.
//
// A serialization failure (40001) or a deadlock (40P01: a session
// recovered while it still writes, two batches creating the same new
// counters) rolls the whole batch back and it runs again, decided afresh
// (at most 20 times, pauses from 1 ms doubling to 100 ms, jittered,
// bounded by the callers' deadlines): a retried batch recomputes
// everything, so a retry never double counts. Numbers drawn and not used
// (a refusal, a retry) are gaps in record IDs and in the fleet-wide entry
// numbers (n); Verify expects n to increase along a chain, not to be
// contiguous, while a chain's own positions (seq) follow each other.
// A caller whose context ends before its batch decided it leaves, and
// nothing of it is written.
//
// COMMIT runs without the caller's cancellation, bounded by
// Options.CommitTimeout, so a reservation PostgreSQL committed is not
// reported as failed because the caller gave up during the last round
// trip. A COMMIT that fails with a broken connection is reported as an
// error and never retried: it may have committed, and the caller, failing
// closed, sends nothing; the record, if it exists, stays Reserved with
// its money counted until its session is closed or recovered.
//
// Within one Store writes are serialized from the session row lock to
// commit, so one Store's record IDs follow its commits: Query with After
// sees each record of one process once. Across processes a record can
// commit after one with a higher ID, and a follower that polls between
// the two commits misses the lower one; closing that (IDs given at commit
// from a fleet-wide row, or reads bounded by the oldest transaction still
// writing) is left to do.
//
// # The audit chain: one per session
//
// The journal is a chain per session, so the writes of a fleet are not
// serialized through one head row. Each Store's session has its own
// chain: entries numbered 1, 2, 3 ... (seq) in the session, each
//
//	hash = SHA-256(prev hash | session | seq | n | body)
//
// where body is the record's new state, exactly as hashed, with its "prev"
// set to the previous entry's hash (32 zero bytes for a session's first),
// and n is a fleet-wide entry number from a sequence, taken under the
// session lock, so increasing along every chain and, for the entries of
// one record (whose writes hold its row lock), in the order they were
// written. A record's latest entry is its entry with the highest n,
// whichever session wrote it (a recovery, a Complete from another
// process). The record's PrevHash is the hash its entry links to; with a
// single writer that is VerifyReport.HeadHash from before the write.
//
// Verify reads in one REPEATABLE READ snapshot: sessions must be numbered
// 1 to meta.last_session with none missing (a deleted session and its
// records show, even the newest once another Store has started); each
// chain is walked from its cut point: positions follow each other, each
// entry hashes to what it says (an entry found at another position says
// "reordered"), n increases, each names its predecessor, and the chain
// ends at the session's head_seq and head_hash. Then every record must
// equal its latest entry (compared in a canonical JSON form, since JSONB
// reorders keys), its indexed columns must say what its body says (or a
// query could hide it), and every record with an entry must be there.
// The first break is reported as for store/bolt: journal breaks first,
// then records by their latest entry. VerifyReport.Head is the highest n
// checked; Entries counts the entries of all chains.
//
// As with store/bolt, a rewrite of a chain's end with hashes and head
// recomputed does not show; note VerifyReport.Head and HeadHash
// elsewhere. Sessions are not linked to each other (a session's first
// entry links to zeros), so removing a whole session shows only through
// the numbering of sessions.
//
// # Prune
//
// Prune holds a session-level advisory lock for the schema, so one
// process prunes at a time. It verifies first (refusing a broken chain)
// and plans in the same snapshot: finished records older than the cutoff,
// less those an idempotency key younger than 24 hours points at. It then
// cuts each session's chain from its cut point, at most 1024 entries a
// transaction, locking the records those entries write: a superseded
// entry goes; a record's latest entry goes with the record (and a
// tombstone is appended when older entries of it remain in another
// chain, so that they never read as its latest); a record that stays
// although older than the cutoff is carried forward into the pruning
// Store's chain; the cut stops at the first record younger than the
// cutoff. Candidates no cut reached are removed with a tombstone, and
// counters of days before the cutoff that no Reserved or Unknown record
// holds go next (locked before that check, so a reservation committing
// meanwhile is seen), and last the window rows that left their windows by
// the cutoff, 1024 a transaction. Each chain's cut point and the fleet's
// checkpoint move with the cut.
//
// # Sessions, heartbeats and crash recovery
//
// Open numbers a new session and writes its row; a goroutine sets its
// heartbeat (the database's now()) every Options.Heartbeat (1 s) and
// recovers expired sessions. A session is expired when heartbeat + ttl <
// now(), ttl being the SessionTimeout (15 s) of the process that owns it,
// judged on the database's clock. Recovery locks the expired session's
// row (SKIP LOCKED: one recoverer at a time), turns each of its Reserved
// records Unknown (Reason says it was interrupted, the money moves from
// pending to unknown: still counted) journaling each in the recoverer's
// chain, and closes the session, in one transaction: exactly once. Open
// recovers before it returns, and every heartbeat does again.
//
// Close waits for the calls in progress, then turns its own session's
// Reserved records Unknown and closes the session in one transaction:
// their calls can no longer complete through it. That is what RunRestart
// expects of a store closed between Reserve and Complete; a store that
// crashed instead is recovered by the others when its heartbeat expires.
//
// A Store whose session was declared dead while it lived (a pause longer
// than its timeout, the database unreachable) finds its session closed
// on its next write (every write locks its session row WHERE closed IS
// NULL) and goes on in a new session; its calls in flight find their
// records Unknown and Complete returns store.ErrNotReserved, their money
// still counted.
//
// # Fleet stops
//
// Store implements store.Stops: the halts and revocations every process
// of the fleet obeys, kept in keybrake_stops (migration 0002), one row a
// stop in force. A Brake on this store writes Brake.Halt, Resume, Revoke
// and Restore there; `keybrake halt|resume|revoke|restore --db
// postgres://...` and `keybrake keys revoke --db postgres://...` too.
//
// SetStop and ClearStop are one transaction each (the package's write
// loop, retried as every write is): insert the row (ON CONFLICT DO
// NOTHING: a stop already in force is returned as it is, and nothing is
// written) or delete it, then append the change's audit record (Event
// "halt" or "revoke", Params scope=fleet and by=...) to this Store's
// chain, so that Verify covers it, then pg_notify. The stop and its
// record commit together or not at all, and the notification leaves at
// commit, never for a change that rolled back. A stop's row is locked
// before the session row, the order of the package.
//
// The channel is "keybrake_stops_" followed by the md5 of the schema's
// name, so stores in different schemas of one database neither see nor
// wake each other. WatchStops holds a connection of its own, outside the
// pool (application_name "keybrake stops"), that LISTENs on it; on each
// notification, and every Options.StopsPoll (1 s) whatever arrives, it
// reads the whole table (a handful of rows) and calls its fn when the
// set differs from the last one delivered. A LISTEN connection that drops
// (PostgreSQL restarted, the backend terminated, the network) is closed
// and opened again at the next turn, and the stops are read after each
// (re)connection, so a change made while nobody listened arrives within
// one poll: TestWatchStopsListenerKilled terminates the listening backend
// with pg_terminate_backend and still sees the change within a second.
// Options.NoListen leaves the poll alone, for a pooler that cannot hold
// a LISTEN. A read that fails is reported to fn once per outage; the
// caller keeps the stops it had (a Brake never forgets a stop because the
// database is down: its calls are refused by the store's own errors
// meanwhile).
//
// # Left to do
//
// A commit-ordered After across processes (above); a compact record body
// (the body is JSONB of the JSON form and the journal keeps each state's
// JSON text: about 3,900 bytes a record in all, against store/bolt's
// 670); fewer indexes touched by a Complete (the partial indexes on
// outcome keep its UPDATE from being HOT); session rows are never removed
// (one per Open; small). A windowed reservation reads every row of its
// window, and a money window of many thousands of small calls would want
// running sums instead.
package postgres
