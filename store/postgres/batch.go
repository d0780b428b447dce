package postgres

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
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
	// Reserve or Append to share its commit. It must cover what a caller
	// does between a call's answer and its next reservation (the SDK
	// reading the answer, the next request built and decided): at 500 µs
	// half the completions of one caller calling in a loop on a 2-core
	// machine missed the next reservation and committed alone, one batch
	// and a half a call, the next reservation queued behind that commit;
	// at 3 ms every one rode it (`go run ./bench/fleet -cells 1x1,8x1
	// -before`, BENCHMARKS.md). Nobody waits for a Complete, and its
	// money stays counted meanwhile.
	completeLinger = 3 * time.Millisecond
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

func newBatcher() *batcher {
	return &batcher{wake: make(chan struct{}, 1), remembered: map[uint64]*lockedRecord{}, known: map[string]bool{}}
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
	b := s.batch
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
		ins AS (INSERT INTO keybrake_records (id, time_ns, agent, vendor, decision, customer, outcome, session, replay, body, run, principal)
			SELECT u.id, u.t, u.a, u.v, u.d, u.c, u.o, $1, u.r, u.b::jsonb, u.ru, u.pr
			FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::boolean[], $10::text[],
				$30::text[], $31::text[])
			AS u(id, t, a, v, d, c, o, r, b, ru, pr)),
		upd AS (UPDATE keybrake_records AS r SET time_ns = u.t, agent = u.a, vendor = u.v, decision = u.d, customer = u.c,
			outcome = u.o, body = u.b::jsonb, run = u.ru, principal = u.pr
			FROM unnest($11::bigint[], $12::bigint[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
				$32::text[], $33::text[])
			AS u(id, t, a, v, d, c, o, b, ru, pr) WHERE r.id = u.id),
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
