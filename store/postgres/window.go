package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// Rolling windows (store.Store's "Windows", migration 0004). A batch that
// reserves against a window locks the window's row of keybrake_window_keys
// in its first round trip (after the records, before any counter, in key
// order: two batches never wait on each other in a cycle) and reads what
// the window still counts, with the entries of the records it completes;
// it decides in Go like the counters, and writes the entries it changed in
// its second round trip. A completion needs no lock: it only lowers (or
// keeps) what its own entry counts, so a reservation that read it before
// counted more, never less. An entry that left its window is never read
// again, whatever it holds, until Prune deletes it.

const (
	sqlCreateWindowKeys = `INSERT INTO keybrake_window_keys (key) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`
	sqlLockWindowKeys   = `SELECT key FROM keybrake_window_keys WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE`
	// sqlReadWindows reads the entries of the windows the batch reserves
	// against that may count at or after the batch's earliest
	// reservation ($2), and every entry of the records it completes ($3).
	sqlReadWindows = `SELECT key, time_ns, record_id, window_ns, settled, pending, unknown FROM keybrake_windows
		WHERE (key = ANY($1::text[]) AND time_ns + window_ns > $2) OR record_id = ANY($3::bigint[])`
	sqlPutWindows = `INSERT INTO keybrake_windows (key, time_ns, record_id, window_ns, settled, pending, unknown)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
		ON CONFLICT (key, time_ns, record_id) DO UPDATE SET settled = EXCLUDED.settled, pending = EXCLUDED.pending, unknown = EXCLUDED.unknown`
	sqlDropWindows = `DELETE FROM keybrake_windows w USING unnest($1::text[], $2::bigint[], $3::bigint[]) AS d(k, t, r)
		WHERE w.key = d.k AND w.time_ns = d.t AND w.record_id = d.r`
)

// windowReads is what a batch's first round trip reads of the windows:
// the keys it reserves against (locked), from its earliest reservation's
// time, and the entries of the records it completes.
type windowReads struct {
	keys     []string
	earliest int64
	records  []int64
}

// windowEntry is one row of keybrake_windows as a batch sees it.
type windowEntry struct {
	key      string
	timeNS   int64
	record   uint64
	windowNS int64
	c        store.Counter
	dropped  bool
}

type entryID struct {
	key    string
	timeNS int64
	record uint64
}

func (e *windowEntry) id() entryID { return entryID{e.key, e.timeNS, e.record} }

// windowState is a batch's windows: the entries read or written, and the
// ones it changed.
type windowState struct {
	entries map[string][]*windowEntry // by key
	changed map[entryID]*windowEntry
}

func newWindowState() *windowState {
	return &windowState{entries: map[string][]*windowEntry{}, changed: map[entryID]*windowEntry{}}
}

func (w *windowState) scan(rows pgx.Rows) error {
	for rows.Next() {
		var (
			e  windowEntry
			id int64
		)
		if err := rows.Scan(&e.key, &e.timeNS, &id, &e.windowNS, &e.c.Settled, &e.c.Pending, &e.c.Unknown); err != nil {
			return err
		}
		if _, ok := checked.Total(e.c); !ok || e.windowNS <= 0 {
			return corrupt("window entry %q of record %d is %+v", e.key, id, e)
		}
		e.record = uint64(id)
		w.entries[e.key] = append(w.entries[e.key], &e)
	}
	return rows.Err()
}

// find is record's entry in key's window; nil when it is not there (it
// left the window, or was never read).
func (w *windowState) find(key string, timeNS int64, record uint64) *windowEntry {
	for _, e := range w.entries[key] {
		if e.record == record && e.timeNS == timeNS && !e.dropped {
			return e
		}
	}
	return nil
}

// check is whether hold h of a reservation at timeNS fits: the window's
// total before it, and when it frees, for OverLimit.
func (w *windowState) check(h audit.Hold, timeNS int64) (fits bool, used int64, frees time.Time) {
	type leaving struct{ at, amount int64 }
	var out []leaving
	from := timeNS - int64(h.Window)
	for _, e := range w.entries[h.Key] {
		if e.dropped || e.timeNS <= from || e.timeNS+e.windowNS <= timeNS {
			continue
		}
		total, _ := checked.Total(e.c)
		used, _ = checked.Add(used, total)
		out = append(out, leaving{e.timeNS + e.windowNS, total})
	}
	if next, ok := checked.Add(used, h.Amount); ok && next <= h.Limit {
		return true, used, time.Time{}
	}
	if h.Amount > h.Limit {
		return false, used, time.Time{}
	}
	slices.SortStableFunc(out, func(a, b leaving) int { return cmp.Compare(a.at, b.at) })
	need, freed := used+h.Amount-h.Limit, int64(0)
	for _, l := range out {
		if freed += l.amount; freed >= need {
			return false, used, time.Unix(0, l.at).UTC()
		}
	}
	return false, used, time.Time{}
}

// admit records rec's windowed holds as pending entries; a takeover's
// entries, under the record it took them from, go.
func (w *windowState) admit(rec *audit.Record, takeover *audit.Record) {
	t := timeNS(rec.Time)
	for _, h := range rec.Holds {
		if h.Window == 0 {
			continue
		}
		if takeover != nil {
			old := &windowEntry{key: h.Key, timeNS: timeNS(takeover.Time), record: takeover.ID, dropped: true}
			if e := w.find(h.Key, old.timeNS, old.record); e != nil {
				e.dropped = true
			}
			w.changed[old.id()] = old
		}
		e := &windowEntry{key: h.Key, timeNS: t, record: rec.ID, windowNS: int64(h.Window), c: store.Counter{Pending: h.Amount}}
		w.entries[h.Key] = append(w.entries[h.Key], e)
		w.changed[e.id()] = e
	}
}

// move applies move to r's entry of the windowed hold h, as a counter's
// is moved; an entry not there is nothing to move.
func (w *windowState) move(r *audit.Record, h audit.Hold, move func(c *store.Counter) bool) error {
	e := w.find(h.Key, timeNS(r.Time), r.ID)
	if e == nil {
		return nil
	}
	before := e.c
	if !move(&e.c) {
		return corrupt("window entry %q of record %d %+v cannot move hold %+v", h.Key, r.ID, before, h)
	}
	total, ok := checked.Total(e.c)
	if !ok {
		return fmt.Errorf("store/postgres: window entry %q of record %d overflows: %+v", h.Key, r.ID, e.c)
	}
	e.dropped = total == 0
	w.changed[e.id()] = e
	return nil
}

// queue adds the batch's window writes to q.
func (w *windowState) queue(q *pgx.Batch) {
	var (
		pk, dk             []string
		pt, pr, pw, dt, dr []int64
		ps, pp, pu         []int64
	)
	ids := make([]entryID, 0, len(w.changed))
	for id := range w.changed {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b entryID) int {
		return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.timeNS, b.timeNS), cmp.Compare(a.record, b.record))
	})
	for _, id := range ids {
		e := w.changed[id]
		if e.dropped {
			dk, dt, dr = append(dk, e.key), append(dt, e.timeNS), append(dr, int64(e.record))
			continue
		}
		pk, pt, pr, pw = append(pk, e.key), append(pt, e.timeNS), append(pr, int64(e.record)), append(pw, e.windowNS)
		ps, pp, pu = append(ps, e.c.Settled), append(pp, e.c.Pending), append(pu, e.c.Unknown)
	}
	if len(dk) > 0 {
		q.Queue(sqlDropWindows, dk, dt, dr)
	}
	if len(pk) > 0 {
		q.Queue(sqlPutWindows, pk, pt, pr, pw, ps, pp, pu)
	}
}

// moveWindowTx is moveHolds' part for a windowed hold, in a transaction
// of its own (Resettle, recovery): r's entry, locked, moved and written
// back, or deleted when it counts nothing more.
func moveWindowTx(ctx context.Context, tx pgx.Tx, r *audit.Record, h audit.Hold, move func(c *store.Counter, h audit.Hold) bool) error {
	var (
		c  store.Counter
		wn int64
	)
	t := timeNS(r.Time)
	err := tx.QueryRow(ctx, `SELECT window_ns, settled, pending, unknown FROM keybrake_windows WHERE key = $1 AND time_ns = $2 AND record_id = $3 FOR UPDATE`,
		h.Key, t, int64(r.ID)).Scan(&wn, &c.Settled, &c.Pending, &c.Unknown)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	before := c
	if !move(&c, h) {
		return corrupt("window entry %q of record %d %+v cannot move hold %+v", h.Key, r.ID, before, h)
	}
	total, ok := checked.Total(c)
	if !ok {
		return fmt.Errorf("store/postgres: window entry %q of record %d overflows: %+v", h.Key, r.ID, c)
	}
	if total == 0 {
		_, err = tx.Exec(ctx, `DELETE FROM keybrake_windows WHERE key = $1 AND time_ns = $2 AND record_id = $3`, h.Key, t, int64(r.ID))
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE keybrake_windows SET settled = $4, pending = $5, unknown = $6 WHERE key = $1 AND time_ns = $2 AND record_id = $3`,
		h.Key, t, int64(r.ID), c.Settled, c.Pending, c.Unknown)
	return err
}

// Window implements store.Store.
func (s *Store) Window(ctx context.Context, key string, at time.Time) ([]store.WindowEntry, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, `SELECT time_ns, record_id, window_ns, settled, pending, unknown FROM keybrake_windows
		WHERE key = $1 AND time_ns + window_ns > $2 ORDER BY time_ns, record_id`, key, timeNS(at))
	if err != nil {
		return nil, s.ctxErr(ctx, err)
	}
	defer rows.Close()
	var out []store.WindowEntry
	for rows.Next() {
		var (
			e      store.WindowEntry
			t, id  int64
			window int64
		)
		if err := rows.Scan(&t, &id, &window, &e.Settled, &e.Pending, &e.Unknown); err != nil {
			return nil, s.ctxErr(ctx, err)
		}
		e.Time, e.Record, e.Window = time.Unix(0, t).UTC(), uint64(id), time.Duration(window)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.ctxErr(ctx, err)
	}
	return out, nil
}
