package postgres

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// What a batch (batchtx.go) does with rolling windows (window.go): the
// locks and reads of its first round trip, the decisions in Go between
// the two, the writes of its second.

// frees is when enough of the counted rows will have left their windows
// for amount to fit under limit beside what stays: the time the earliest
// rows to leave (their Time plus their own window) free that much; zero
// when amount alone exceeds limit.
func frees(counted []*winEntry, used, amount, limit int64) time.Time {
	if amount > limit {
		return time.Time{}
	}
	need := used - (limit - amount) // > 0, or it would have fit
	slices.SortFunc(counted, func(a, b *winEntry) int { return cmp.Compare(a.until(), b.until()) })
	var left int64
	for _, e := range counted {
		tot, _ := checked.Total(e.c) // checked when counted
		left += tot                  // at most used
		if left >= need {
			return time.Unix(0, e.until()).UTC()
		}
	}
	return time.Time{}
}

// winEntry is a row as a batch sees it.
type winEntry struct {
	winID
	windowNS int64
	c        store.Counter
	stored   bool // read from the database, not inserted by this batch
	live     bool // false once the batch removed it
	changed  bool
}

func (e *winEntry) until() int64 { return windowUntil(e.timeNS, e.windowNS) }

// batchWindows is the rows a batch read and what it did to them.
type batchWindows struct {
	// from holds the keys the batch locked, each with the time_ns after
	// which it read every row of the key: the earliest any of its
	// reservations counts from.
	from    map[string]int64
	entries map[winID]*winEntry
	byKey   map[string][]*winEntry
}

func newBatchWindows(from map[string]int64) *batchWindows {
	return &batchWindows{from: from, entries: map[winID]*winEntry{}, byKey: map[string][]*winEntry{}}
}

func (w *batchWindows) put(e *winEntry) {
	if _, ok := w.entries[e.winID]; ok {
		return // read twice: by its key and by its record
	}
	w.entries[e.winID] = e
	w.byKey[e.key] = append(w.byKey[e.key], e)
}

// Statements of a batch's windows.
const (
	// The locks are taken in the order of their numbers, whatever the
	// keys hash to, so that no two batches take two of them in opposite
	// orders; the subquery keeps that order (PostgreSQL does not flatten
	// a subquery with ORDER BY into the query around it).
	sqlLockWindows = `SELECT pg_advisory_xact_lock(l) FROM (SELECT DISTINCT hashtextextended('keybrake/window/' || current_schema() || '/' || k, 0) AS l
		FROM unnest($1::text[]) AS k ORDER BY l) AS s`
	// The reads run once the locks are held (they are later statements,
	// so they see every commit of a lock's previous holder). sqlReadWindow
	// reads the rows of one locked key after its start, a range of the
	// primary key: one statement a key, since a join of all the keys
	// planned for any arrays (a prepared statement's generic plan) scans
	// the whole table.
	sqlReadWindow = `SELECT key, time_ns, record_id, window_ns, settled, pending, unknown FROM keybrake_windows
		WHERE key = $1 AND time_ns > $2`
	// sqlReadRecordWindows reads the rows of the records the batch
	// completes or its idempotency keys point at (those it locked),
	// whatever their time: the rows it may change.
	sqlReadRecordWindows = `SELECT w.key, w.time_ns, w.record_id, w.window_ns, w.settled, w.pending, w.unknown
		FROM keybrake_records AS r CROSS JOIN LATERAL jsonb_array_elements(r.body->'holds') AS h
		JOIN keybrake_windows AS w ON w.key = h->>'key' AND w.time_ns = r.time_ns AND w.record_id = r.id
		WHERE h ? 'window' AND r.id = ANY($1::bigint[] || ARRAY(SELECT record_id FROM keybrake_idempotency WHERE key = ANY($2::text[]) AND record_id <> 0))`
	sqlInsertWindows = `INSERT INTO keybrake_windows (key, time_ns, record_id, window_ns, settled, pending, unknown)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])`
	// A row the batch changes is its record's, whose lock the batch
	// holds, so it is set to what the batch decided; only Prune removes
	// it meanwhile, which leaves nothing to change.
	sqlUpdateWindows = `UPDATE keybrake_windows AS w SET settled = u.s, pending = u.p, unknown = u.n
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) AS u(k, t, r, s, p, n)
		WHERE w.key = u.k AND w.time_ns = u.t AND w.record_id = u.r`
	sqlDeleteWindows = `DELETE FROM keybrake_windows AS w USING unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(k, t, r)
		WHERE w.key = u.k AND w.time_ns = u.t AND w.record_id = u.r`
)

// queueLock queues, in the first round trip, the locks of the keys the
// batch checks and the read of the rows it may count or change: wrecs are
// the records it completes whose rows it needs, keys its idempotency
// keys.
func (w *batchWindows) queueLock(q *pgx.Batch, wrecs []int64, keys []string) {
	locked := sortedKeys(w.from)
	if len(locked) > 0 {
		q.Queue(sqlLockWindows, locked)
	}
	for _, k := range locked {
		q.Queue(sqlReadWindow, k, w.from[k]).Query(w.read)
	}
	if len(wrecs) > 0 || len(keys) > 0 {
		q.Queue(sqlReadRecordWindows, wrecs, keys).Query(w.read)
	}
}

func (w *batchWindows) read(rows pgx.Rows) error {
	for rows.Next() {
		e := &winEntry{stored: true, live: true}
		var rec int64
		if err := rows.Scan(&e.key, &e.timeNS, &rec, &e.windowNS, &e.c.Settled, &e.c.Pending, &e.c.Unknown); err != nil {
			return err
		}
		if _, ok := checked.Total(e.c); !ok || e.c.Settled < 0 || e.c.Pending < 0 || e.c.Unknown < 0 {
			return corrupt("window %q of record %d holds %+v", e.key, rec, e.c)
		}
		e.record = uint64(rec)
		w.put(e)
	}
	return rows.Err()
}

// check decides one windowed hold of a reservation at time at against
// the rows of its key as the batch has them: what it counts (Used) and,
// when it does not fit, when it would (Frees).
func (w *batchWindows) check(h audit.Hold, at time.Time) (used int64, free time.Time, fits bool, err error) {
	start := windowStart(at, h.Window)
	if from, ok := w.from[h.Key]; !ok || start < from {
		return 0, time.Time{}, false, fmt.Errorf("store/postgres: window %q was not read from %d for a hold counting from %d", h.Key, from, start)
	}
	var counted []*winEntry
	for _, e := range w.byKey[h.Key] {
		if !e.live || e.timeNS <= start {
			continue
		}
		tot, ok := checked.Total(e.c)
		if ok {
			used, ok = checked.Add(used, tot)
		}
		if !ok {
			return 0, time.Time{}, false, corrupt("window %q overflows", h.Key)
		}
		counted = append(counted, e)
	}
	if next, ok := checked.Add(used, h.Amount); ok && next <= h.Limit {
		return used, time.Time{}, true, nil
	}
	return used, frees(counted, used, h.Amount, h.Limit), false, nil
}

// windowMove is one row's change, checked before the batch makes it, so
// that an operation refused for corrupt data changes nothing.
type windowMove struct {
	id   winID
	to   store.Counter
	keep bool // false: it leaves the window (Released, Retried)
}

// plan checks the rows of prev's windowed holds and says what they become
// when the record is next (the same record, changed). A row the batch
// does not have is missing from the database: pruned, nothing to move.
func (w *batchWindows) plan(prev, next *audit.Record) ([]windowMove, error) {
	var moves []windowMove
	for i, h := range prev.Holds {
		if h.Window == 0 {
			continue
		}
		e := w.entries[holdEntry(prev, h)]
		if e == nil || !e.live {
			continue
		}
		if err := checkEntry(prev, h, e.windowNS, e.c); err != nil {
			return nil, err
		}
		to, keep := entryState(next, next.Holds[i])
		moves = append(moves, windowMove{e.winID, to, keep})
	}
	return moves, nil
}

func (w *batchWindows) apply(moves []windowMove) {
	for _, m := range moves {
		e := w.entries[m.id]
		e.c, e.live, e.changed = m.to, m.keep, true
	}
}

// add puts the rows of a record just reserved: each windowed hold pending.
func (w *batchWindows) add(r *audit.Record) {
	for _, h := range r.Holds {
		if h.Window != 0 {
			w.put(&winEntry{winID: holdEntry(r, h), windowNS: int64(h.Window), c: store.Counter{Pending: h.Amount}, live: true, changed: true})
		}
	}
}

// queueWrite queues, in the second round trip, what the batch did to the
// rows, in key order.
func (w *batchWindows) queueWrite(q *pgx.Batch) {
	es := make([]*winEntry, 0, len(w.entries))
	for _, e := range w.entries {
		if e.changed {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b *winEntry) int {
		return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.timeNS, b.timeNS), cmp.Compare(a.record, b.record))
	})
	var ins, upd, del struct {
		k                []string
		t, r, w, s, p, n []int64
	}
	for _, e := range es {
		switch {
		case e.live && !e.stored:
			ins.k, ins.t, ins.r, ins.w = append(ins.k, e.key), append(ins.t, e.timeNS), append(ins.r, int64(e.record)), append(ins.w, e.windowNS)
			ins.s, ins.p, ins.n = append(ins.s, e.c.Settled), append(ins.p, e.c.Pending), append(ins.n, e.c.Unknown)
		case e.live:
			upd.k, upd.t, upd.r = append(upd.k, e.key), append(upd.t, e.timeNS), append(upd.r, int64(e.record))
			upd.s, upd.p, upd.n = append(upd.s, e.c.Settled), append(upd.p, e.c.Pending), append(upd.n, e.c.Unknown)
		case e.stored:
			del.k, del.t, del.r = append(del.k, e.key), append(del.t, e.timeNS), append(del.r, int64(e.record))
		}
	}
	if len(ins.k) > 0 {
		q.Queue(sqlInsertWindows, ins.k, ins.t, ins.r, ins.w, ins.s, ins.p, ins.n)
	}
	if len(upd.k) > 0 {
		q.Queue(sqlUpdateWindows, upd.k, upd.t, upd.r, upd.s, upd.p, upd.n)
	}
	if len(del.k) > 0 {
		q.Queue(sqlDeleteWindows, del.k, del.t, del.r)
	}
}
