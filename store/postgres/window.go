package postgres

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// Rolling windows (store.Store's "Windows"), kept in keybrake_windows
// (migration 0004): one row per record's hold on a window key, under the
// record's Time and ID, holding what the hold counts now. The row's state
// follows from its record's (entryState), so every write that changes a
// record checks the row it finds against the record's old state and
// moves it to the new one; a row that is missing left its window and was
// pruned, and is nothing to move.
//
// A reservation decides a windowed hold from the rows of its key, which
// other processes insert: it holds a transaction-level advisory lock of
// the key (schema and key hashed, as the package's other advisory locks)
// from before it reads them to its commit, so reservations of one key
// are serialized across the fleet. The batch takes those locks in its
// first round trip, after the records it locks and before any counter,
// in the order of their lock numbers, so two batches never wait on each
// other in a cycle. Only a reservation that checks a limit takes the
// lock: what the others change (a completion, a takeover, a recovery, a
// prune) never makes the rows of a key count more for a reservation than
// if it had run after it.

// checkWindowHolds refuses a negative Window, and a reservation that
// holds one window key twice, which the contract forbids: each record has
// one row per window key.
func checkWindowHolds(holds []audit.Hold) error {
	seen := map[string]bool{}
	for i, h := range holds {
		switch {
		case h.Window < 0:
			return invalid("hold %d (%s) has a negative window %s", i, h.Key, h.Window)
		case h.Window == 0:
		case seen[h.Key]:
			return invalid("hold %d holds window %q a second time; a reservation holds a window key once", i, h.Key)
		default:
			seen[h.Key] = true
		}
	}
	return nil
}

// windowStart is the time_ns after which a hold of window w reserved at t
// counts rows: t minus w, saturated at the int64 range.
func windowStart(t time.Time, w time.Duration) int64 {
	ns := timeNS(t)
	if ns < math.MinInt64+int64(w) {
		return math.MinInt64
	}
	return ns - int64(w)
}

// windowUntil is when a row leaves its window, saturated as the until_ns
// column is.
func windowUntil(timeNS, windowNS int64) int64 {
	if timeNS > math.MaxInt64-windowNS {
		return math.MaxInt64
	}
	return timeNS + windowNS
}

// entryState is what the row of r's windowed hold h must hold: what the
// hold counts while r is in that outcome. ok is false when it counts
// nothing and has no row (Released, Retried).
func entryState(r *audit.Record, h audit.Hold) (c store.Counter, ok bool) {
	switch r.Outcome {
	case audit.Reserved:
		return store.Counter{Pending: h.Amount}, true
	case audit.Unknown:
		return store.Counter{Unknown: h.Amount}, true
	case audit.Settled, audit.Replayed:
		return store.Counter{Settled: h.Settled}, true
	}
	return store.Counter{}, false
}

// checkEntry reports, as corrupt data, a row that does not hold what its
// record's hold says it must.
func checkEntry(r *audit.Record, h audit.Hold, windowNS int64, c store.Counter) error {
	want, ok := entryState(r, h)
	if !ok || c != want || windowNS != int64(h.Window) {
		return corrupt("window %q holds %+v (window %s) for record %d, which is %s holding %+v", h.Key, c, time.Duration(windowNS), r.ID, r.Outcome, h)
	}
	return nil
}

// winID is a row's primary key.
type winID struct {
	key    string
	timeNS int64
	record uint64
}

func holdEntry(r *audit.Record, h audit.Hold) winID {
	return winID{h.Key, timeNS(r.Time), r.ID}
}

// moveWindows is plan and apply for the writes outside a batch (Resettle,
// the recovery of a session): it locks the rows of prev's windowed holds
// (after the record, before any counter), checks them, and moves them to
// what next says.
func moveWindows(ctx context.Context, tx pgx.Tx, prev, next *audit.Record) error {
	for i, h := range prev.Holds {
		if h.Window == 0 {
			continue
		}
		id := holdEntry(prev, h)
		var (
			windowNS int64
			c        store.Counter
		)
		err := tx.QueryRow(ctx, `SELECT window_ns, settled, pending, unknown FROM keybrake_windows WHERE key = $1 AND time_ns = $2 AND record_id = $3 FOR UPDATE`,
			id.key, id.timeNS, int64(id.record)).Scan(&windowNS, &c.Settled, &c.Pending, &c.Unknown)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // pruned once it left its window
		}
		if err != nil {
			return err
		}
		if err := checkEntry(prev, h, windowNS, c); err != nil {
			return err
		}
		if to, keep := entryState(next, next.Holds[i]); keep {
			_, err = tx.Exec(ctx, `UPDATE keybrake_windows SET settled = $4, pending = $5, unknown = $6 WHERE key = $1 AND time_ns = $2 AND record_id = $3`,
				id.key, id.timeNS, int64(id.record), to.Settled, to.Pending, to.Unknown)
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM keybrake_windows WHERE key = $1 AND time_ns = $2 AND record_id = $3`, id.key, id.timeNS, int64(id.record))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Window implements store.Store: the rows of key that have not left their
// windows at at, oldest first, by the primary key (key, time_ns,
// record_id). It reads every row of the key Prune has not removed, in
// one statement.
func (s *Store) Window(ctx context.Context, key string, at time.Time) ([]store.WindowEntry, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, `SELECT time_ns, record_id, window_ns, settled, pending, unknown FROM keybrake_windows
		WHERE key = $1 AND until_ns > $2 ORDER BY time_ns, record_id`, key, timeNS(at))
	if err != nil {
		return nil, s.ctxErr(ctx, err)
	}
	defer rows.Close()
	var out []store.WindowEntry
	for rows.Next() {
		var (
			t, rec, w int64
			e         store.WindowEntry
		)
		if err := rows.Scan(&t, &rec, &w, &e.Settled, &e.Pending, &e.Unknown); err != nil {
			return nil, s.ctxErr(ctx, err)
		}
		e.Time, e.Record, e.Window = time.Unix(0, t).UTC(), uint64(rec), time.Duration(w)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.ctxErr(ctx, err)
	}
	return out, nil
}

// pruneWindows removes at most pruneChunk rows that left their windows at
// or before before (unix nanoseconds). They count for no reservation at
// or after before; a completion that finds its row gone has nothing to
// move.
func pruneWindows(ctx context.Context, tx pgx.Tx, before int64) (int, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM keybrake_windows WHERE (key, time_ns, record_id) IN
		(SELECT key, time_ns, record_id FROM keybrake_windows WHERE until_ns <= $1 ORDER BY until_ns LIMIT $2)`, before, pruneChunk)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
