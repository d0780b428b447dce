package postgres

import (
	"context"
	"errors"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// One attempt of a batch (batch.go): its state, the first round trip that
// takes the locks and reads, and the second that writes and commits.

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
	win      *batchWindows // the rows of rolling windows (batchwindow.go)

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
		wfrom    = map[string]int64{} // the window keys checked, each from its earliest start
		wrecs    = []int64{}          // the records completed whose window rows to read
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
				switch {
				case h.Window != 0 && h.Limit >= 0:
					// A hold counted without a limit needs neither the
					// key's lock nor its rows.
					if from, ok := wfrom[h.Key]; !ok || windowStart(o.rec.Time, h.Window) < from {
						wfrom[h.Key] = windowStart(o.rec.Time, h.Window)
					}
				case h.Window != 0:
				default:
					lock[h.Key] = true
					if !b.known[h.Key] {
						create[h.Key] = true
					}
				}
			}
		case opComplete:
			nEntries++
			if o.comp.ID <= 1<<63-1 {
				recIDs = append(recIDs, int64(o.comp.ID))
				r := b.remembered[o.comp.ID]
				if r == nil || slices.ContainsFunc(r.rec.Holds, func(h audit.Hold) bool { return h.Window != 0 }) {
					wrecs = append(wrecs, int64(o.comp.ID))
				}
				if r != nil {
					light = append(light, int64(o.comp.ID))
					for _, h := range r.rec.Holds {
						if h.Window == 0 {
							lock[h.Key] = true
						}
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
		read: map[string]store.Counter{}, bound: map[string]int64{}, locked: lock, changed: map[string]bool{}, win: newBatchWindows(wfrom),
		session: session, inserted: map[uint64]int{}, updates: map[uint64]rowState{}}
	if err := t.lock(ctx, conn, keys, fps, recIDs, light, b.remembered, wrecs, sortedKeys(create), sortedKeys(lock), nRecords, nEntries, locking); err != nil {
		if errors.Is(err, errStale) {
			err = errMoreCounters // run again: the record is read whole
		}
		rollback(conn)
		return err
	}
	for k := range lock {
		if _, ok := t.counters[k]; ok {
			if len(b.known) < maxRemembered {
				// A key of its own, not a substring of the call's keys
				// (policy.Limit.Key): the map keeps it for good.
				b.known[strings.Clone(k)] = true
			}
		} else if create[k] || b.known[k] {
			// Pruned between creating (or seeing) and locking it: run
			// again, creating it.
			delete(b.known, k)
			rollback(conn)
			return errRetry
		}
	}

	// Every counter a locked record holds must be locked too. (Its window
	// rows were read with it.)
	var missing bool
	for _, r := range t.records {
		for _, h := range r.rec.Holds {
			if h.Window == 0 && !lock[h.Key] {
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
// the package's order (the windows' after the records, before the
// counters), and the numbers it may use.
func (t *batchTx) lock(ctx context.Context, conn *pgxpool.Conn, keys, fps []string, recIDs, light []int64, remembered map[uint64]*lockedRecord,
	wrecs []int64, create, lock []string, nRecords, nEntries int, locking bool) error {
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
	t.win.queueLock(&q, wrecs, keys)
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

// write is the second round trip: everything the batch decided, and
// COMMIT.
func (t *batchTx) write(ctx context.Context, conn *pgxpool.Conn) error {
	n := len(t.inserts)
	iID, iT, iR := make([]int64, n), make([]int64, n), make([]bool, n)
	iA, iV, iD, iC, iO, iB := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	iRun, iP := make([]string, n), make([]string, n)
	for i, r := range t.inserts {
		c := r.row.cols
		iID[i], iT[i], iR[i] = int64(r.id), c.TimeNS, r.replay
		iA[i], iV[i], iD[i], iC[i], iO[i], iB[i] = c.Agent, c.Vendor, c.Decision, c.Customer, c.Outcome, r.row.body
		iRun[i], iP[i] = c.Run, c.Principal
	}
	n = len(t.order)
	uID, uT := make([]int64, n), make([]int64, n)
	uA, uV, uD, uC, uO, uB := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	uRun, uP := make([]string, n), make([]string, n)
	for i, id := range t.order {
		r := t.updates[id]
		c := r.cols
		uID[i], uT[i] = int64(id), c.TimeNS
		uA[i], uV[i], uD[i], uC[i], uO[i], uB[i] = c.Agent, c.Vendor, c.Decision, c.Customer, c.Outcome, r.body
		uRun[i], uP[i] = c.Run, c.Principal
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
		t.seq, t.hash[:],
		iRun, iP, uRun, uP)
	t.win.queueWrite(&q)
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
