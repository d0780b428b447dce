package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// Group commit. The writes of one Store are serialized anyway (each holds
// the session row, the head of the Store's chain, until it commits), and
// a fleet's hot counter row is held by one transaction at a time: one
// transaction per call makes every call pay a commit and a turn of the
// hot row alone. So the Reserves, Completes and Appends of one Store that
// arrive together share one transaction.
//
// A caller queues its operation and waits. When no batch is running, the
// caller leads: it takes what is queued (at most maxBatch, its own
// operation among it) and runs it in one transaction; what arrives
// meanwhile waits for the next batch, which a goroutine leads, and so on
// until the queue is empty. Nobody waits for a Complete (the transport hands completions to
// the store after answering the agent), so a batch of Completes alone
// lingers up to completeLinger for a Reserve or Append to share its
// commit: at one caller, a call's completion and the next call's
// reservation commit together. A batch with anyone waiting in it starts
// at once.
//
// A batch is two round trips. The first, pipelined behind BEGIN, takes
// the locks of what only this Store changes, in the package's order
// across the whole batch: the idempotency keys (sorted), the records the
// batch changes or its keys point at (by ID), the session row; it reads
// the counters (the batch's reservation keys created if missing) without
// locking them, and draws record IDs and entry numbers for the most the
// batch can write. Then each operation is decided in Go in arrival order
// against those values, as if it ran alone after the ones before it: an
// over-limit refusal, a reused key or a record not found is that
// operation's answer, and the others go on. The second round trip writes
// what was decided, several rows a statement, and last moves each counter
// by what the batch changed (in key order, one statement each) with the
// condition that keeps every admission of the batch within its limit:
// UPDATE ... SET pending = pending + d WHERE key = k AND total <= bound,
// and commits: the fleet's hot row is held from that UPDATE to COMMIT,
// with no round trip in between. When a counter moved
// under the batch so that the condition fails, the batch rolls back and
// runs again with the counters locked (SELECT ... FOR UPDATE, in key order)
// from the first round trip, which cannot fail that way. A serialization
// failure or deadlock runs the whole batch again, decided afresh; numbers
// drawn and not used are gaps, which IDs and entry numbers may have (a
// refusal leaves one).
//
// The counters a Complete touches are in its record, which the first
// round trip reads; to lock them in order in that same round trip, the
// Store remembers the counter keys of the records it reserved. A Complete
// of a record it does not know (reserved by another process) finds them
// on the first attempt, which then rolls back and runs again with them,
// so no batch ever locks a counter out of order.

const (
	// maxBatch bounds the operations of one transaction.
	maxBatch = 128
	// completeLinger is how long a batch of Completes alone waits for a
	// Reserve or Append to share its commit.
	completeLinger = 500 * time.Microsecond
	// maxRemembered bounds the records and counter keys remembered.
	maxRemembered = 1 << 16
)

type opKind uint8

const (
	opReserve opKind = iota + 1
	opComplete
	opAppend
)

// An op's state: queued, taken by a batch (its caller may still leave),
// committing (decided: its caller waits for the commit), or abandoned by
// a caller whose context ended before the batch decided it.
const (
	opQueued int32 = iota
	opTaken
	opCommitting
	opAbandoned
)

// op is one caller's operation in a batch.
type op struct {
	kind     opKind
	state    atomic.Int32
	done     chan struct{}
	deadline time.Time // its caller's, zero for none

	rec   audit.Record       // Reserve, Append: the record to write
	holds []audit.Hold       // Reserve
	idem  *store.Idempotency // Reserve, nil without a key
	comp  *store.Completion  // Complete

	// Results, set when the batch commits (or fails).
	adm    store.Admission // Reserve
	id     uint64          // Append
	result error           // Complete: the caller's refusal (not found, not reserved, invalid)
	err    error           // the operation could not be done
}

// batcher queues the operations of one Store.
type batcher struct {
	mu      sync.Mutex
	queue   []*op
	running bool
	wake    chan struct{} // a Reserve or Append queued while Completes linger

	// batches counts the transactions the batches have committed.
	batches atomic.Int64

	// known are counters this Store has seen exist: a reservation does
	// not ask to create them. (A counter pruned meanwhile shows as
	// missing when locked, and the batch runs again creating it.)
	known map[string]bool

	// remembered holds, by record ID, the records this Store reserved
	// and has not completed, as it wrote them: a Complete locks its
	// record's counters in the first round trip, and reads only the
	// record's outcome back, not its body. (A record that changed
	// meanwhile, recovered Unknown by another process, is read whole.)
	// Only the running leader touches it, and leaders run one after
	// another.
	remembered map[uint64]*lockedRecord
}

// batchers holds each Store's batcher, weakly keyed so that a Store no one
// holds is collected with its batcher.
var batchers sync.Map // weak.Pointer[Store] -> *batcher

func (s *Store) batcher() *batcher {
	k := weak.Make(s)
	if b, ok := batchers.Load(k); ok {
		return b.(*batcher)
	}
	b, loaded := batchers.LoadOrStore(k, &batcher{wake: make(chan struct{}, 1), remembered: map[uint64]*lockedRecord{}, known: map[string]bool{}})
	if !loaded {
		runtime.AddCleanup(s, func(k weak.Pointer[Store]) { batchers.Delete(k) }, k)
	}
	return b.(*batcher)
}

// submit queues o, leads a batch when none runs, and waits for o's
// batch. A caller whose ctx ends before its batch decided it leaves with
// ctx's error and nothing of it is written; once decided (or while it
// leads the batch itself), it waits for the commit, which runs bounded by
// the latest deadline of the batch's callers and Options.CommitTimeout,
// as a COMMIT does.
func (s *Store) submit(ctx context.Context, o *op) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	b := s.batcher()
	o.done = make(chan struct{})
	o.deadline, _ = ctx.Deadline()
	b.mu.Lock()
	b.queue = append(b.queue, o)
	lead := !b.running
	b.running = true
	b.mu.Unlock()
	if lead {
		// The first caller leads the first batch itself, which holds its
		// own operation, and leaves the next to a goroutine: alone, a
		// call waits on no other goroutine.
		if s.leadOnce(b) {
			go s.lead(b)
		}
	} else if o.kind != opComplete {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	select {
	case <-o.done:
	case <-ctx.Done():
		b.mu.Lock()
		if i := slices.Index(b.queue, o); i >= 0 {
			b.queue = slices.Delete(b.queue, i, i+1)
			b.mu.Unlock()
			return ctx.Err()
		}
		b.mu.Unlock()
		if o.state.CompareAndSwap(opTaken, opAbandoned) {
			return ctx.Err()
		}
		<-o.done
	}
	if o.err != nil {
		return s.ctxErr(ctx, o.err)
	}
	return nil
}

// lead runs batches until the queue is empty.
func (s *Store) lead(b *batcher) {
	for s.leadOnce(b) {
	}
}

// leadOnce runs one batch of what is queued, and reports false (leading
// no more) when nothing was.
func (s *Store) leadOnce(b *batcher) bool {
	b.mu.Lock()
	select {
	case <-b.wake:
	default:
	}
	if len(b.queue) == 0 {
		b.running = false
		b.mu.Unlock()
		return false
	}
	if len(b.queue) < maxBatch && !slices.ContainsFunc(b.queue, func(o *op) bool { return o.kind != opComplete }) {
		b.mu.Unlock()
		t := time.NewTimer(completeLinger)
		select {
		case <-b.wake:
		case <-t.C:
		}
		t.Stop()
		b.mu.Lock()
	}
	n := min(len(b.queue), maxBatch)
	ops := slices.Clone(b.queue[:n])
	b.queue = slices.Delete(b.queue, 0, n)
	for _, o := range ops {
		o.state.Store(opTaken)
	}
	b.mu.Unlock()
	if len(ops) > 0 {
		s.runBatch(b, ops)
	}
	for _, o := range ops {
		close(o.done)
	}
	return true
}

// errCounterMoved: a counter the batch read changed, before its update,
// so that what the batch admitted no longer fits; it runs again holding
// the counters' locks from the start.
var errCounterMoved = errors.New("store/postgres: a counter moved under the batch")

// errStale: a record the Store remembered changed in the database.
var errStale = errors.New("store/postgres: a remembered record changed")

// errMoreCounters: a batch's records hold counters it did not lock; it
// runs again with them.
var errMoreCounters = errors.New("store/postgres: the batch needs more counters")

// runBatch runs ops in one transaction, again from the start on a
// serialization failure, a deadlock or a session that expired under the
// Store, and sets every op's result.
func (s *Store) runBatch(b *batcher, ops []*op) {
	// The batch runs for its callers, none of whose contexts it has: it is
	// bounded by the latest of their deadlines when they all have one,
	// and by Options.CommitTimeout.
	deadline := time.Now().Add(s.opts.CommitTimeout)
	var latest time.Time
	for _, o := range ops {
		if o.deadline.IsZero() {
			latest = deadline
			break
		}
		if o.deadline.After(latest) {
			latest = o.deadline
		}
	}
	if latest.Before(deadline) {
		deadline = latest
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	extra := map[string]bool{}
	pause := time.Millisecond
	locking := false
	for attempt := 1; ; attempt++ {
		session := s.session.Load()
		err := s.batchOnce(ctx, b, ops, session, extra, locking)
		if err == nil {
			return
		}
		if attempt < maxAttempts {
			if errors.Is(err, errMoreCounters) {
				continue
			}
			if errors.Is(err, errCounterMoved) {
				locking = true
				continue
			}
			if errors.Is(err, errSessionGone) {
				if err = s.renew(ctx, session); err == nil {
					continue
				}
			}
		}
		if !retryable(err) || attempt >= maxAttempts {
			for _, o := range ops {
				o.err = err
			}
			return
		}
		t := time.NewTimer(pause/2 + rand.N(pause))
		select {
		case <-ctx.Done():
			t.Stop()
			for _, o := range ops {
				o.err = ctx.Err()
			}
			return
		case <-t.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// Statements of a batch.
const (
	sqlClaimKeys = `INSERT INTO keybrake_idempotency (key, record_id, fingerprint)
		SELECT k, 0, f FROM unnest($1::text[], $2::text[]) AS u(k, f)
		ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING key, record_id, fingerprint`
	sqlLockRecords = `SELECT id, outcome, CASE WHEN id = ANY($3::bigint[]) THEN NULL ELSE body END, replay FROM keybrake_records
		WHERE id = ANY($1::bigint[] || ARRAY(SELECT record_id FROM keybrake_idempotency WHERE key = ANY($2::text[]) AND record_id <> 0))
		ORDER BY id FOR UPDATE`
	sqlCreateCounters = `INSERT INTO keybrake_counters (key) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`
	sqlLockCounters   = `SELECT key, settled, pending, unknown FROM keybrake_counters WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE`
	sqlReadCounters   = `SELECT key, settled, pending, unknown FROM keybrake_counters WHERE key = ANY($1::text[])`
	// sqlMoveCounter applies a batch's change to one counter, if the
	// counter's total is still at most what keeps every reservation the
	// batch admitted within its limit; if not, it fails with division by
	// zero (SQLSTATE 22012, from the count of rows it changed: evaluated
	// when it runs, never when it is planned), which aborts the
	// transaction, and the COMMIT queued behind it in the same round trip
	// is never run.
	sqlMoveCounter = `WITH m AS (UPDATE keybrake_counters SET settled = settled + $2, pending = pending + $3, unknown = unknown + $4
		WHERE key = $1 AND settled + pending + unknown <= $5 RETURNING 1)
		SELECT 1 / (SELECT count(*)::int FROM m)`
	// The numbers are drawn once the session row is locked (the CTE is
	// materialized: its rows come out locked before the outer select
	// runs), so they increase along the chain; none when it is closed.
	sqlLockHead = `WITH h AS MATERIALIZED (SELECT head_seq, head_hash FROM keybrake_sessions WHERE id = $1 AND closed IS NULL FOR UPDATE)
		SELECT h.head_seq, h.head_hash,
			ARRAY(SELECT nextval('keybrake_record_ids') FROM generate_series(1, $2::int)),
			ARRAY(SELECT nextval('keybrake_entry_numbers') FROM generate_series(1, $3::int))
		FROM h`
	// sqlWrite is everything a batch decided, in one statement: no
	// two of its parts touch one row (a record written new and changed in
	// the same batch is written once, new).
	sqlWrite = `WITH
		ins AS (INSERT INTO keybrake_records (id, time_ns, agent, vendor, decision, customer, outcome, session, replay, body)
			SELECT u.id, u.t, u.a, u.v, u.d, u.c, u.o, $1, u.r, u.b::jsonb
			FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::boolean[], $10::text[])
			AS u(id, t, a, v, d, c, o, r, b)),
		upd AS (UPDATE keybrake_records AS r SET time_ns = u.t, agent = u.a, vendor = u.v, decision = u.d, customer = u.c,
			outcome = u.o, body = u.b::jsonb
			FROM unnest($11::bigint[], $12::bigint[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[])
			AS u(id, t, a, v, d, c, o, b) WHERE r.id = u.id),
		jr AS (INSERT INTO keybrake_journal (session, seq, n, record_id, hash, body)
			SELECT $1, u.s, u.n, u.r, u.h, u.b FROM unnest($19::bigint[], $20::bigint[], $21::bigint[], $22::bytea[], $23::text[]) AS u(s, n, r, h, b)),
		setk AS (UPDATE keybrake_idempotency AS i SET record_id = u.r, fingerprint = u.f
			FROM unnest($24::text[], $25::bigint[], $26::text[]) AS u(k, r, f) WHERE i.key = u.k),
		dropk AS (DELETE FROM keybrake_idempotency WHERE key = ANY($27::text[]) AND record_id = 0)
		UPDATE keybrake_sessions SET head_seq = $28, head_hash = $29 WHERE id = $1`
	sqlBeginRC   = `BEGIN ISOLATION LEVEL READ COMMITTED`
	sqlCommit    = `COMMIT`
	sqlRollback  = `ROLLBACK`
	rollbackWait = 5 * time.Second
)

// keyState is an idempotency key as the batch sees it.
type keyState struct {
	record   int64  // 0: claimed by this batch, no record yet
	fp       string // the fingerprint of record
	assigned bool   // this batch wrote record for it
}

// lockedRecord is a record the batch holds the lock of, in its current
// state.
type lockedRecord struct {
	rec    *audit.Record
	replay bool
}

// cloneRecord copies r with holds of its own, for the batch to change.
func cloneRecord(r *audit.Record) *audit.Record {
	c := *r
	c.Holds = slices.Clone(r.Holds)
	return &c
}

// rowState is a record's row as the batch writes it.
type rowState struct {
	cols columns
	body string
}

// batchTx is the state of one attempt of a batch.
type batchTx struct {
	ctx   context.Context
	conn  *pgxpool.Conn
	entry int64

	keys     map[string]*keyState
	records  map[uint64]*lockedRecord
	counters map[string]store.Counter
	read     map[string]store.Counter // as the first round trip read them
	bound    map[string]int64         // the most each counter's total may be for the batch's admissions to fit
	locked   map[string]bool          // the counters this attempt asked to lock
	changed  map[string]bool

	session  int64
	seq      int64
	hash     sum
	ids      []int64
	entries  []int64
	inserted map[uint64]int // index into inserts
	inserts  []insertRow
	updates  map[uint64]rowState
	order    []uint64 // updated records, in first-update order
	journal  []entryRow
}

type insertRow struct {
	id     uint64
	replay bool
	row    rowState
}

type entryRow struct {
	seq, n int64
	record uint64
	hash   sum
	body   string
}

// outcome is an op's decision in one attempt.
type outcome struct {
	adm    store.Admission
	id     uint64
	result error
	err    error
	skip   bool // abandoned
}

func (s *Store) batchOnce(ctx context.Context, b *batcher, ops []*op, session int64, extra map[string]bool, locking bool) error {
	// Plan the locks.
	var (
		keySet   = map[string]string{} // db key -> fingerprint
		recIDs   = []int64{}
		light    = []int64{} // remembered: no body read
		create   = map[string]bool{}
		lock     = map[string]bool{}
		nRecords int
		nEntries int
	)
	for k := range extra {
		lock[k] = true
	}
	for _, o := range ops {
		switch o.kind {
		case opReserve:
			nRecords++
			nEntries++ // and one more for an Unknown record it takes over: drawn when needed
			if o.idem != nil {
				if _, ok := keySet[dbKey(o.idem.Key)]; !ok {
					keySet[dbKey(o.idem.Key)] = o.idem.Fingerprint
				}
			}
			for _, h := range o.holds {
				lock[h.Key] = true
				if !b.known[h.Key] {
					create[h.Key] = true
				}
			}
		case opComplete:
			nEntries++
			if o.comp.ID <= 1<<63-1 {
				recIDs = append(recIDs, int64(o.comp.ID))
				if r := b.remembered[o.comp.ID]; r != nil {
					light = append(light, int64(o.comp.ID))
					for _, h := range r.rec.Holds {
						lock[h.Key] = true
					}
				}
			}
		case opAppend:
			nRecords++
			nEntries++
		}
	}
	keys := sortedKeys(keySet)
	fps := make([]string, len(keys))
	for i, k := range keys {
		fps[i] = keySet[k]
	}
	slices.Sort(recIDs)
	recIDs = slices.Compact(recIDs)

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	t := &batchTx{ctx: ctx, conn: conn, keys: map[string]*keyState{}, records: map[uint64]*lockedRecord{}, counters: map[string]store.Counter{},
		read: map[string]store.Counter{}, bound: map[string]int64{}, locked: lock, changed: map[string]bool{}, session: session, inserted: map[uint64]int{}, updates: map[uint64]rowState{}}
	if err := t.lock(ctx, conn, keys, fps, recIDs, light, b.remembered, sortedKeys(create), sortedKeys(lock), nRecords, nEntries, locking); err != nil {
		if errors.Is(err, errStale) {
			err = errMoreCounters // run again: the record is read whole
		}
		rollback(conn)
		return err
	}
	for k := range lock {
		if _, ok := t.counters[k]; ok {
			if len(b.known) < maxRemembered {
				b.known[k] = true
			}
		} else if create[k] || b.known[k] {
			// Pruned between creating (or seeing) and locking it: run
			// again, creating it.
			delete(b.known, k)
			rollback(conn)
			return errRetry
		}
	}

	// Every counter a locked record holds must be locked too.
	var missing bool
	for _, r := range t.records {
		for _, h := range r.rec.Holds {
			if !lock[h.Key] {
				extra[h.Key], missing = true, true
			}
		}
	}
	if missing {
		rollback(conn)
		return errMoreCounters
	}

	outs := make([]outcome, len(ops))
	for i, o := range ops {
		if !o.state.CompareAndSwap(opTaken, opCommitting) && o.state.Load() != opCommitting {
			outs[i].skip = true
			continue
		}
		switch o.kind {
		case opReserve:
			outs[i].adm, outs[i].err = t.reserve(o)
		case opComplete:
			outs[i].result, outs[i].err = t.complete(o.comp)
		case opAppend:
			outs[i].id, outs[i].err = t.append(o.rec)
		}
		if errors.Is(outs[i].err, errRetry) {
			rollback(conn)
			return errRetry
		}
	}

	if len(t.journal) == 0 {
		rollback(conn)
	} else if err := t.write(ctx, conn); err != nil {
		rollback(conn)
		return err
	} else {
		b.batches.Add(1)
	}
	for i, o := range ops {
		if outs[i].skip {
			continue
		}
		o.adm, o.id, o.result, o.err = outs[i].adm, outs[i].id, outs[i].result, outs[i].err
		switch {
		case o.kind == opReserve && o.err == nil && (o.adm.Result == store.Admitted || o.adm.Result == store.Replayed) && len(b.remembered) < maxRemembered:
			b.remembered[o.adm.ID] = t.records[o.adm.ID]
		case o.kind == opComplete:
			delete(b.remembered, o.comp.ID)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// rollback ends the transaction on conn, if one is open and the
// connection still works; a connection left in a transaction is
// destroyed on release anyway.
func rollback(conn *pgxpool.Conn) {
	if conn.Conn().IsClosed() || conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rollbackWait)
	defer cancel()
	conn.Exec(ctx, sqlRollback)
}

// lock is the first round trip: BEGIN and every lock of the batch, in
// the package's order, and the numbers it may use.
func (t *batchTx) lock(ctx context.Context, conn *pgxpool.Conn, keys, fps []string, recIDs, light []int64, remembered map[uint64]*lockedRecord,
	create, lock []string, nRecords, nEntries int, locking bool) error {
	var stale error
	var q pgx.Batch
	q.Queue(sqlBeginRC)
	if len(keys) > 0 {
		q.Queue(sqlClaimKeys, keys, fps).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					k  string
					st keyState
				)
				if err := rows.Scan(&k, &st.record, &st.fp); err != nil {
					return err
				}
				t.keys[k] = &st
			}
			return rows.Err()
		})
	}
	if len(recIDs) > 0 || len(keys) > 0 {
		q.Queue(sqlLockRecords, recIDs, keys, light).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					id      int64
					outcome string
					body    []byte
					replay  bool
				)
				if err := rows.Scan(&id, &outcome, &body, &replay); err != nil {
					return err
				}
				if body == nil {
					r := remembered[uint64(id)]
					if r == nil || outcome != string(audit.Reserved) || replay != r.replay {
						delete(remembered, uint64(id))
						stale = errStale
						continue
					}
					rec := cloneRecord(r.rec)
					t.records[uint64(id)] = &lockedRecord{rec: rec, replay: replay}
					continue
				}
				r, err := decodeRecord(uint64(id), body)
				if err != nil {
					return err
				}
				t.records[uint64(id)] = &lockedRecord{rec: r, replay: replay}
			}
			return rows.Err()
		})
	}
	if len(create) > 0 {
		q.Queue(sqlCreateCounters, create)
	}
	if len(lock) > 0 {
		read := sqlReadCounters
		if locking {
			read = sqlLockCounters
		}
		q.Queue(read, lock).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					k string
					c store.Counter
				)
				if err := rows.Scan(&k, &c.Settled, &c.Pending, &c.Unknown); err != nil {
					return err
				}
				if _, ok := checked.Total(c); !ok || c.Settled < 0 || c.Pending < 0 || c.Unknown < 0 {
					return corrupt("counter %q is %+v", k, c)
				}
				t.counters[k], t.read[k] = c, c
			}
			return rows.Err()
		})
	}
	var gone bool
	q.Queue(sqlLockHead, t.session, nRecords, nEntries).Query(func(rows pgx.Rows) error {
		if !rows.Next() {
			gone = true
			return rows.Err()
		}
		var hash []byte
		if err := rows.Scan(&t.seq, &hash, &t.ids, &t.entries); err != nil {
			return err
		}
		var ok bool
		if t.hash, ok = toSum(hash); !ok {
			return corrupt("session %d's head hash is %d bytes", t.session, len(hash))
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, &q).Close(); err != nil {
		return err
	}
	if gone {
		return errSessionGone
	}
	if stale != nil {
		return stale
	}
	slices.Sort(t.ids)
	slices.Sort(t.entries)
	return nil
}

// put stamps r with the chain's head, journals it and keeps its row's
// new state.
func (t *batchTx) put(r *audit.Record, insert, replay bool) error {
	if len(t.entries) == 0 {
		// A reservation took over an Unknown record: one more entry than
		// planned. Numbers drawn now are higher than every one before.
		if err := t.conn.QueryRow(t.ctx, `SELECT nextval('keybrake_entry_numbers')`).Scan(&t.entry); err != nil {
			return err
		}
		t.entries = append(t.entries, t.entry)
	}
	r.PrevHash = hex.EncodeToString(t.hash[:])
	body, err := encodeRecord(r)
	if err != nil {
		return err
	}
	n := t.entries[0]
	t.entries = t.entries[1:]
	seq := t.seq + 1
	hash := entryHash(t.hash, t.session, seq, n, body)
	t.journal = append(t.journal, entryRow{seq: seq, n: n, record: r.ID, hash: hash, body: string(body)})
	t.seq, t.hash = seq, hash
	row := rowState{cols: columnsOf(r), body: string(body)}
	switch i, ok := t.inserted[r.ID]; {
	case insert:
		t.inserted[r.ID] = len(t.inserts)
		t.inserts = append(t.inserts, insertRow{id: r.ID, replay: replay, row: row})
	case ok:
		t.inserts[i].row = row
	default:
		if _, ok := t.updates[r.ID]; !ok {
			t.order = append(t.order, r.ID)
		}
		t.updates[r.ID] = row
	}
	return nil
}

func (t *batchTx) nextID() (uint64, error) {
	if len(t.ids) == 0 {
		return 0, errors.New("store/postgres: batch ran out of record IDs")
	}
	id := t.ids[0]
	t.ids = t.ids[1:]
	return uint64(id), nil
}

// reserve decides one Reservation as Store.reserve did alone, against
// the batch's state so far.
func (t *batchTx) reserve(o *op) (store.Admission, error) {
	holds := slices.Clone(o.holds)
	var (
		retryOf  uint64
		replay   bool
		takeover *lockedRecord
		ks       *keyState
	)
	if o.idem != nil {
		ks = t.keys[dbKey(o.idem.Key)]
		if ks == nil {
			return store.Admission{}, corrupt("idempotency key %q was not claimed", o.idem.Key)
		}
		if ks.record != 0 {
			if ks.fp != o.idem.Fingerprint {
				return store.Admission{Result: store.KeyReused}, nil
			}
			prev := t.records[uint64(ks.record)]
			if prev == nil {
				return store.Admission{}, corrupt("idempotency key %q points at missing record %d", o.idem.Key, ks.record)
			}
			retryOf = uint64(ks.record)
			switch prev.rec.Outcome {
			case audit.Reserved:
				return store.Admission{Result: store.KeyInUse}, nil
			case audit.Settled, audit.Replayed:
				replay, holds = true, nil
			case audit.Released:
				// Reserve afresh below, limits checked.
			case audit.Unknown:
				takeover = prev
				holds = slices.Clone(prev.rec.Holds)
			default:
				return store.Admission{}, corrupt("idempotency key %q points at record %d, which is %q", o.idem.Key, ks.record, prev.rec.Outcome)
			}
		}
	}
	work := map[string]store.Counter{}
	bounds := map[string]int64{}
	for _, h := range holds {
		c, ok := t.counters[h.Key]
		if !ok {
			return store.Admission{}, errRetry
		}
		work[h.Key] = c
	}
	for i, h := range holds {
		c := work[h.Key]
		var ok bool
		if takeover != nil {
			if c.Unknown, ok = checked.Sub(c.Unknown, h.Amount); !ok {
				return store.Admission{}, corrupt("counter %q holds %d unknown, less than record %d's hold of %d", h.Key, c.Unknown, takeover.rec.ID, h.Amount)
			}
		} else if h.Limit >= 0 {
			tot, _ := checked.Total(c)
			next, fits := checked.Add(tot, h.Amount)
			if !fits || next > h.Limit {
				used, _ := checked.Total(t.counters[h.Key])
				return store.Admission{Result: store.OverLimit, Hold: i, Used: used}, nil
			}
			// It fits as long as the counter's total, when the batch
			// moves it, is at most this.
			read, _ := checked.Total(t.read[h.Key])
			if b, ok := bounds[h.Key]; !ok || h.Limit-(next-read) < b {
				bounds[h.Key] = h.Limit - (next - read)
			}
		}
		if c.Pending, ok = checked.Add(c.Pending, h.Amount); !ok {
			return store.Admission{}, fmt.Errorf("store/postgres: counter %q: pending %d + %d overflows", h.Key, c.Pending, h.Amount)
		}
		if _, ok := checked.Total(c); !ok {
			return store.Admission{}, fmt.Errorf("store/postgres: counter %q: total overflows with %d more", h.Key, h.Amount)
		}
		work[h.Key] = c
	}

	id, err := t.nextID()
	if err != nil {
		return store.Admission{}, err
	}
	rec := o.rec
	rec.ID = id
	rec.Outcome = audit.Reserved
	rec.Holds = holds
	if retryOf != 0 {
		rec.RetryOf = retryOf
	}
	if replay {
		rec.Reserved.Micros = 0
	}
	if err := t.put(&rec, true, replay); err != nil {
		return store.Admission{}, err
	}
	t.records[id] = &lockedRecord{rec: &rec, replay: replay}
	for k, c := range work {
		t.counters[k] = c
		t.changed[k] = true
	}
	for k, v := range bounds {
		if b, ok := t.bound[k]; !ok || v < b {
			t.bound[k] = v
		}
	}
	if takeover != nil {
		prev := *takeover.rec
		prev.Holds = slices.Clone(prev.Holds)
		prev.Outcome = audit.Retried
		if err := t.put(&prev, false, false); err != nil {
			return store.Admission{}, err
		}
		takeover.rec = &prev
	}
	if ks != nil && !replay {
		ks.record, ks.fp, ks.assigned = int64(id), o.idem.Fingerprint, true
	}
	adm := store.Admission{Result: store.Admitted, ID: id, RetryOf: retryOf}
	if replay {
		adm.Result = store.Replayed
	}
	if len(holds) > 0 {
		adm.Holds = slices.Clone(holds)
	}
	return adm, nil
}

// complete decides one Completion as Store.complete did alone: the
// caller's refusal as result, what could not be done as err.
func (t *batchTx) complete(c *store.Completion) (result, err error) {
	cur := t.records[c.ID]
	if cur == nil {
		return fmt.Errorf("%w: %d", store.ErrNotFound, c.ID), nil
	}
	r := *cur.rec
	r.Holds = slices.Clone(r.Holds)
	replay := cur.replay
	if r.Outcome != audit.Reserved {
		return fmt.Errorf("%w: record %d is %s", store.ErrNotReserved, c.ID, r.Outcome), nil
	}
	if len(c.Settled) > len(r.Holds) {
		return invalid("completion of record %d: %d settled amounts for %d holds", c.ID, len(c.Settled), len(r.Holds)), nil
	}
	if f := c.Refused; f != nil && (c.Outcome != audit.Released || !f.Decision.Valid() || f.Decision == policy.Allowed) {
		return invalid("completion of record %d: a refusal (%q) must be released, and not allowed", c.ID, f.Decision), nil
	}
	outcome := c.Outcome
	switch {
	case replay && outcome == audit.Settled:
		outcome = audit.Replayed
	case !replay && outcome == audit.Replayed:
		return invalid("completion of record %d: outcome replayed, but it holds money", c.ID), nil
	}
	r.Outcome = outcome
	for i := range r.Holds {
		r.Holds[i].Settled = 0
		if (outcome == audit.Settled || outcome == audit.Replayed) && i < len(c.Settled) {
			r.Holds[i].Settled = c.Settled[i]
		}
	}
	r.Settled = c.Moved
	r.Estimated = c.Estimated && outcome == audit.Settled
	r.Object = c.Object
	r.Status = c.Status
	r.RequestID = c.RequestID
	r.Duration = c.Duration
	if c.Reason != "" {
		r.Reason = c.Reason
	}
	if f := c.Refused; f != nil {
		r.Decision, r.Code, r.Rule = f.Decision, f.Code, f.Rule
		if f.Policy != "" {
			r.PolicyHash = f.Policy
		}
	}
	if _, err := checkEncodable(&r); err != nil {
		return fmt.Errorf("%w: completion of record %d: %w", ErrInvalid, c.ID, err), nil
	}
	work := map[string]store.Counter{}
	for _, h := range r.Holds {
		ctr, ok := work[h.Key]
		if !ok {
			if ctr, ok = t.counters[h.Key]; !ok {
				return nil, corrupt("completing record %d: counter %q is missing", c.ID, h.Key)
			}
		}
		before := ctr
		if ctr.Pending, ok = checked.Sub(ctr.Pending, h.Amount); ok {
			switch outcome {
			case audit.Settled, audit.Replayed:
				ctr.Settled, ok = checked.Add(ctr.Settled, h.Settled)
			case audit.Unknown:
				ctr.Unknown, ok = checked.Add(ctr.Unknown, h.Amount)
			}
		}
		if !ok {
			return nil, corrupt("completing record %d: counter %q %+v cannot move hold %+v", c.ID, h.Key, before, h)
		}
		if _, ok := checked.Total(ctr); !ok {
			return nil, fmt.Errorf("store/postgres: completing record %d: counter %q overflows: %+v", c.ID, h.Key, ctr)
		}
		work[h.Key] = ctr
	}
	if err := t.put(&r, false, false); err != nil {
		return nil, err
	}
	cur.rec = &r
	for k, ctr := range work {
		t.counters[k] = ctr
		t.changed[k] = true
	}
	return nil, nil
}

// append writes a record that holds nothing.
func (t *batchTx) append(rec audit.Record) (uint64, error) {
	id, err := t.nextID()
	if err != nil {
		return 0, err
	}
	rec.ID = id
	if err := t.put(&rec, true, false); err != nil {
		return 0, err
	}
	return id, nil
}

// write is the second round trip: everything the batch decided, and
// COMMIT.
func (t *batchTx) write(ctx context.Context, conn *pgxpool.Conn) error {
	n := len(t.inserts)
	iID, iT, iR := make([]int64, n), make([]int64, n), make([]bool, n)
	iA, iV, iD, iC, iO, iB := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range t.inserts {
		c := r.row.cols
		iID[i], iT[i], iR[i] = int64(r.id), c.TimeNS, r.replay
		iA[i], iV[i], iD[i], iC[i], iO[i], iB[i] = c.Agent, c.Vendor, c.Decision, c.Customer, c.Outcome, r.row.body
	}
	n = len(t.order)
	uID, uT := make([]int64, n), make([]int64, n)
	uA, uV, uD, uC, uO, uB := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, id := range t.order {
		r := t.updates[id]
		c := r.cols
		uID[i], uT[i] = int64(id), c.TimeNS
		uA[i], uV[i], uD[i], uC[i], uO[i], uB[i] = c.Agent, c.Vendor, c.Decision, c.Customer, c.Outcome, r.body
	}
	n = len(t.journal)
	jS, jN, jR, jB := make([]int64, n), make([]int64, n), make([]int64, n), make([]string, n)
	jH := make([][]byte, n)
	for i, e := range t.journal {
		jS[i], jN[i], jR[i], jB[i] = e.seq, e.n, int64(e.record), e.body
		jH[i] = e.hash[:]
	}
	setK, dropK, setF := []string{}, []string{}, []string{}
	setR := []int64{}
	for _, k := range sortedKeys(t.keys) {
		switch ks := t.keys[k]; {
		case ks.assigned:
			setK, setR, setF = append(setK, k), append(setR, ks.record), append(setF, ks.fp)
		case ks.record == 0:
			dropK = append(dropK, k)
		}
	}
	var q pgx.Batch
	q.Queue(sqlWrite, t.session,
		iID, iT, iA, iV, iD, iC, iO, iR, iB,
		uID, uT, uA, uV, uD, uC, uO, uB,
		jS, jN, jR, jH, jB,
		setK, setR, setF, dropK,
		t.seq, t.hash[:])
	// The counters last, one statement each in key order (so two batches
	// never wait on each other's counters in a cycle), each changed by
	// what the batch moved rather than set to what it read, and COMMIT
	// in the same round trip: a counter is held from its UPDATE to
	// COMMIT only, with no round trip in between.
	for _, k := range sortedKeys(t.changed) {
		from, to := t.read[k], t.counters[k]
		bound, ok := t.bound[k]
		if !ok {
			bound = math.MaxInt64
		}
		q.Queue(sqlMoveCounter, k, to.Settled-from.Settled, to.Pending-from.Pending, to.Unknown-from.Unknown, bound)
	}
	q.Queue(sqlCommit)
	err := conn.SendBatch(ctx, &q).Close()
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "22012" {
		return errCounterMoved
	}
	return err
}
