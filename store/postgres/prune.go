package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// pruneChunk bounds the journal entries, records or counters one Prune
// transaction handles, so that writers wait milliseconds behind it.
const pruneChunk = 1024

func stillCounted(o audit.Outcome) bool { return o == audit.Reserved || o == audit.Unknown }

type prunePlan struct {
	before, now time.Time
	headN       int64 // the chain is never cut past the entries Verify saw
	candidates  map[uint64]struct{}
}

// Prune implements store.Store. It holds an advisory lock for the schema
// while it runs, so one process prunes at a time (another waits, bounded
// by its ctx). It verifies the whole chain first and refuses a broken one.
// Then, session by session, it cuts each chain from its checkpoint in
// transactions of at most 1024 entries, as store/bolt cuts its one chain:
// an entry a later one supersedes is dropped; a record's latest entry
// goes with the record when it is to be removed (leaving a tombstone when
// older entries of it remain in another chain), or is carried forward
// into this Store's chain when the record stays though older than the
// cutoff; the cut of a chain stops at the first record younger than the
// cutoff. Records to remove that no cut reached are removed with a
// tombstone; then counters go, 1024 a transaction, and the rows of
// rolling windows that left them by before, 1024 a transaction.
func (s *Store) Prune(ctx context.Context, before time.Time) (store.PruneReport, error) {
	var rep store.PruneReport
	if err := s.enter(ctx); err != nil {
		return rep, err
	}
	defer s.leave()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return rep, s.ctxErr(ctx, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`, "prune"); err != nil {
		return rep, s.ctxErr(ctx, fmt.Errorf("store/postgres: waiting for the prune lock: %w", err))
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+lockKey+`)`, "prune")

	rep, err = s.prune(ctx, before)
	if err != nil {
		return rep, s.ctxErr(ctx, err)
	}
	return rep, nil
}

func (s *Store) prune(ctx context.Context, before time.Time) (store.PruneReport, error) {
	var rep store.PruneReport
	now := s.now()
	keyCutoff := now.Add(-store.KeyRetention)
	if before.Before(keyCutoff) {
		keyCutoff = before
	}
	plan := &prunePlan{before: before, now: now, candidates: make(map[uint64]struct{})}
	var (
		sessions []chainSession
		brk      *store.ChainError
	)
	err := s.snapshot(ctx, func(tx pgx.Tx) error {
		res, b, err := verify(ctx, tx)
		if err != nil || b != nil {
			brk = b
			return err
		}
		plan.headN = int64(res.rep.Head)
		if sessions, _, err = readSessions(ctx, tx); err != nil {
			return err
		}
		// Finished records older than the cutoff, less those a key
		// younger than keyCutoff points at.
		rows, err := tx.Query(ctx, `SELECT r.id, r.body->>'time', (SELECT bool_or(true) FROM keybrake_idempotency i WHERE i.record_id = r.id)
			FROM keybrake_records r WHERE r.time_ns <= $1 AND r.outcome NOT IN ('reserved', 'unknown')`, timeNS(before))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id    int64
				ts    string
				keyed *bool
			)
			if err := rows.Scan(&id, &ts, &keyed); err != nil {
				return err
			}
			t, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return corrupt("record %d's time %q: %v", id, ts, err)
			}
			if t.Before(before) && (keyed == nil || t.Before(keyCutoff)) {
				plan.candidates[uint64(id)] = struct{}{}
			}
		}
		return rows.Err()
	})
	if err != nil {
		return rep, err
	}
	if brk != nil {
		return rep, fmt.Errorf("store/postgres: refusing to prune a chain that does not verify: %w", brk)
	}

	add := func(res cutResult) {
		rep.Records += len(res.pruned)
		rep.Entries += res.entries
		rep.Carried += res.carried
		rep.IdempotencyKeys += res.keys
		for _, id := range res.pruned {
			delete(plan.candidates, id)
		}
	}
	for _, cs := range sessions {
		for end := len(plan.candidates) == 0; !end; {
			var res cutResult
			err := s.run(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
				var err error
				res, err = s.cut(ctx, tx, plan, cs.id)
				return err == nil && res.brk == nil, err
			})
			if err != nil {
				return rep, err
			}
			if res.brk != nil {
				return rep, fmt.Errorf("store/postgres: refusing to prune a chain that does not verify: %w", res.brk)
			}
			add(res)
			end = res.end
		}
	}
	late := make([]uint64, 0, len(plan.candidates))
	for id := range plan.candidates {
		late = append(late, id)
	}
	slices.Sort(late)
	for len(late) > 0 {
		batch := late[:min(len(late), pruneChunk)]
		late = late[len(batch):]
		var res cutResult
		err := s.run(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
			var err error
			res, err = s.bury(ctx, tx, plan, batch)
			return err == nil, err
		})
		if err != nil {
			return rep, err
		}
		add(res)
	}

	day := before.UTC().Format(time.DateOnly)
	for from, more := "", true; more; {
		var n int
		err := s.run(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
			var err error
			n, from, more, err = pruneCounters(ctx, tx, day, from)
			return err == nil, err
		})
		if err != nil {
			return rep, err
		}
		rep.Counters += n
	}
	for more := true; more; {
		var n int
		err := s.run(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
			var err error
			n, err = pruneWindows(ctx, tx, timeNS(before))
			return err == nil, err
		})
		if err != nil {
			return rep, err
		}
		rep.Windows += n
		more = n == pruneChunk
	}
	var cp int64
	if err := s.pool.QueryRow(ctx, `SELECT checkpoint FROM keybrake_meta`).Scan(&cp); err != nil {
		return rep, err
	}
	rep.Checkpoint = uint64(cp)
	return rep, nil
}

// cutResult is what one Prune transaction did; cut and bury set every
// field on each run, since a transaction may run again.
type cutResult struct {
	pruned  []uint64
	entries int
	carried int
	keys    int
	end     bool
	brk     *store.ChainError
}

const (
	stepDrop  = iota // superseded, or the record is gone
	stepPrune        // the record's latest entry: the record goes
	stepCarry        // the record's latest entry: it stays, re-appended
)

type cutStep struct {
	e    entry
	hash sum
	what int
	rec  *audit.Record // stepPrune, stepCarry of a record
	tomb *link         // stepCarry of a tombstone
	// tombstone: a pruned record with older entries left in other
	// chains leaves a tombstone, so that those do not read as its latest.
	tombstone bool
}

// cut removes the next entries of session sid's chain.
func (s *Store) cut(ctx context.Context, tx pgx.Tx, p *prunePlan, sid int64) (cutResult, error) {
	var res cutResult
	var (
		cs     chainSession
		hh, ch []byte
	)
	if err := tx.QueryRow(ctx, `SELECT id, head_seq, head_hash, cut_seq, cut_hash FROM keybrake_sessions WHERE id = $1`, sid).
		Scan(&cs.id, &cs.headSeq, &hh, &cs.cutSeq, &ch); err != nil {
		return res, err
	}
	cs.headHash, _ = toSum(hh)
	cs.cutSum, _ = toSum(ch)
	w := newWalker(cs)
	rows, err := tx.Query(ctx, `SELECT session, seq, n, record_id, hash, body FROM keybrake_journal
		WHERE session = $1 AND seq > $2 AND n <= $3 ORDER BY seq LIMIT $4`, sid, cs.cutSeq, p.headN, pruneChunk)
	if err != nil {
		return res, err
	}
	var es []entry
	for rows.Next() {
		var e entry
		var body string
		if err := rows.Scan(&e.session, &e.seq, &e.n, &e.recordID, &e.hash, &body); err != nil {
			rows.Close()
			return res, err
		}
		e.body = []byte(body)
		es = append(es, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, err
	}
	res.end = len(es) < pruneChunk
	if len(es) == 0 {
		return res, nil
	}
	// Lock the records these entries write, in ID order, so that no
	// write changes one while the cut decides about it.
	var ids []int64
	for _, e := range es {
		ids = append(ids, e.recordID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	recs := make(map[uint64]*audit.Record)
	rrows, err := tx.Query(ctx, `SELECT id, body FROM keybrake_records WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return res, err
	}
	for rrows.Next() {
		var (
			id   int64
			body []byte
		)
		if err := rrows.Scan(&id, &body); err != nil {
			rrows.Close()
			return res, err
		}
		r, err := decodeRecord(uint64(id), body)
		if err != nil {
			rrows.Close()
			return res, err
		}
		recs[uint64(id)] = r
	}
	rrows.Close()
	if err := rrows.Err(); err != nil {
		return res, err
	}
	type entryCount struct{ latest, count int64 }
	counts := make(map[uint64]entryCount)
	crows, err := tx.Query(ctx, `SELECT record_id, max(n), count(*) FROM keybrake_journal WHERE record_id = ANY($1) GROUP BY record_id`, ids)
	if err != nil {
		return res, err
	}
	for crows.Next() {
		var id, latest, count int64
		if err := crows.Scan(&id, &latest, &count); err != nil {
			crows.Close()
			return res, err
		}
		counts[uint64(id)] = entryCount{latest, count}
	}
	crows.Close()
	if err := crows.Err(); err != nil {
		return res, err
	}

	var steps []cutStep
	dropped := make(map[uint64]int64) // entries of each record this cut removes
walk:
	for _, e := range es {
		l, hash, brk := w.step(e)
		if brk != nil {
			res.brk = brk
			return res, nil
		}
		st := cutStep{e: e, hash: hash, what: stepDrop}
		c := counts[l.ID]
		others := c.count - dropped[l.ID] - 1 // entries of the record left elsewhere
		if e.n == c.latest {
			r := recs[l.ID]
			switch {
			case l.Pruned != "":
				if r != nil {
					res.brk = &store.ChainError{Problem: store.ChainExtra, Entry: uint64(e.n), Record: l.ID,
						Detail: fmt.Sprintf("record %d is in the store, but journal entry %d says a prune removed it", l.ID, e.n)}
					return res, nil
				}
				if others > 0 {
					st.what, st.tomb = stepCarry, &l
				}
			case r == nil:
				res.brk = &store.ChainError{Problem: store.ChainMissing, Entry: uint64(e.n), Record: l.ID,
					Detail: fmt.Sprintf("record %d was removed: journal entry %d holds its latest state", l.ID, e.n)}
				return res, nil
			default:
				_, candidate := p.candidates[l.ID]
				switch {
				case candidate && !stillCounted(r.Outcome) && r.Time.Before(p.before):
					st.what, st.rec, st.tombstone = stepPrune, r, others > 0
				case r.Time.Before(p.before) || r.Time.After(p.now):
					st.what, st.rec = stepCarry, r
				default:
					res.end = true
					break walk // the first record younger than the cutoff
				}
			}
		}
		dropped[l.ID]++
		steps = append(steps, st)
	}
	if len(steps) == 0 {
		return res, nil
	}
	last := steps[len(steps)-1]
	seqs := make([]int64, len(steps))
	for i, st := range steps {
		seqs[i] = st.e.seq
	}
	if _, err := tx.Exec(ctx, `DELETE FROM keybrake_journal WHERE session = $1 AND seq = ANY($2)`, sid, seqs); err != nil {
		return res, err
	}
	res.entries = len(steps)
	if _, err := tx.Exec(ctx, `UPDATE keybrake_sessions SET cut_seq = $2, cut_hash = $3 WHERE id = $1`, sid, last.e.seq, last.hash[:]); err != nil {
		return res, err
	}
	if _, err := tx.Exec(ctx, `UPDATE keybrake_meta SET checkpoint = $1, checkpoint_hash = $2 WHERE checkpoint < $1`, last.e.n, last.hash[:]); err != nil {
		return res, err
	}
	var hd *head
	lock := func() error {
		if hd != nil {
			return nil
		}
		var err error
		hd, err = s.lockHead(ctx, tx)
		return err
	}
	for _, st := range steps {
		switch {
		case st.what == stepPrune:
			if err := remove(ctx, tx, st.rec, &res); err != nil {
				return res, err
			}
			if st.tombstone {
				if err := lock(); err != nil {
					return res, err
				}
				if err := appendTombstone(ctx, tx, hd, st.rec.ID, p.before); err != nil {
					return res, err
				}
			}
		case st.what == stepCarry && st.rec != nil:
			if err := lock(); err != nil {
				return res, err
			}
			if err := putRecord(ctx, tx, hd, st.rec, false, false); err != nil {
				return res, err
			}
			res.carried++
		case st.what == stepCarry:
			if err := lock(); err != nil {
				return res, err
			}
			pruned, err := time.Parse(time.RFC3339Nano, st.tomb.Pruned)
			if err != nil {
				pruned = p.before
			}
			if err := appendTombstone(ctx, tx, hd, st.tomb.ID, pruned); err != nil {
				return res, err
			}
			res.carried++
		}
	}
	if hd != nil {
		if err := hd.save(ctx, tx); err != nil {
			return res, err
		}
	}
	return res, nil
}

func appendTombstone(ctx context.Context, tx pgx.Tx, hd *head, id uint64, before time.Time) error {
	body, err := tombstone(id, before, hd.hash)
	if err != nil {
		return err
	}
	return hd.append(ctx, tx, id, body)
}

// bury removes the candidates in ids that no cut reached, each leaving a
// tombstone entry in this Store's chain.
func (s *Store) bury(ctx context.Context, tx pgx.Tx, p *prunePlan, ids []uint64) (cutResult, error) {
	var res cutResult
	var hd *head
	for _, id := range ids {
		r, _, err := lockRecord(ctx, tx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return res, err
		}
		if stillCounted(r.Outcome) || !r.Time.Before(p.before) {
			continue
		}
		if err := remove(ctx, tx, r, &res); err != nil {
			return res, err
		}
		if hd == nil {
			if hd, err = s.lockHead(ctx, tx); err != nil {
				return res, err
			}
		}
		if err := appendTombstone(ctx, tx, hd, id, p.before); err != nil {
			return res, err
		}
	}
	if hd != nil {
		return res, hd.save(ctx, tx)
	}
	return res, nil
}

// remove deletes a pruned record and the idempotency keys pointing at it.
func remove(ctx context.Context, tx pgx.Tx, r *audit.Record, res *cutResult) error {
	if _, err := tx.Exec(ctx, `DELETE FROM keybrake_records WHERE id = $1`, int64(r.ID)); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `DELETE FROM keybrake_idempotency WHERE record_id = $1`, int64(r.ID))
	if err != nil {
		return err
	}
	res.keys += int(tag.RowsAffected())
	res.pruned = append(res.pruned, r.ID)
	return nil
}

// pruneCounters removes, among the next pruneChunk counters after from,
// those of days before day that no Reserved or Unknown record holds.
func pruneCounters(ctx context.Context, tx pgx.Tx, day, from string) (int, string, bool, error) {
	rows, err := tx.Query(ctx, `SELECT key FROM keybrake_counters WHERE key > $1 ORDER BY key LIMIT $2`, from, pruneChunk)
	if err != nil {
		return 0, from, false, err
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, from, false, err
	}
	more := len(keys) == pruneChunk
	next := from
	if len(keys) > 0 {
		next = keys[len(keys)-1]
	}
	var doomed []string
	for _, k := range keys {
		if d, ok := counterDay(k); ok && d < day {
			doomed = append(doomed, k)
		}
	}
	if len(doomed) == 0 {
		return 0, next, more, nil
	}
	// Lock them first: a reservation holding one commits before the
	// check below, which then sees its record.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM keybrake_counters WHERE key = ANY($1) ORDER BY key FOR UPDATE`, doomed); err != nil {
		return 0, from, false, err
	}
	held := make(map[string]bool)
	hrows, err := tx.Query(ctx, `SELECT body->'holds' FROM keybrake_records WHERE outcome IN ('reserved', 'unknown')`)
	if err != nil {
		return 0, from, false, err
	}
	for hrows.Next() {
		var b []byte
		if err := hrows.Scan(&b); err != nil {
			hrows.Close()
			return 0, from, false, err
		}
		var hs []audit.Hold
		if len(b) > 0 && string(b) != "null" {
			if err := json.Unmarshal(b, &hs); err != nil {
				hrows.Close()
				return 0, from, false, corrupt("holds %s: %v", b, err)
			}
		}
		for _, h := range hs {
			if h.Window == 0 { // a window's key names no counter
				held[h.Key] = true
			}
		}
	}
	hrows.Close()
	if err := hrows.Err(); err != nil {
		return 0, from, false, err
	}
	doomed = slices.DeleteFunc(doomed, func(k string) bool { return held[k] })
	tag, err := tx.Exec(ctx, `DELETE FROM keybrake_counters WHERE key = ANY($1)`, doomed)
	if err != nil {
		return 0, from, false, err
	}
	return int(tag.RowsAffected()), next, more, nil
}

// counterDay is the UTC day a counter counts: the latest segment of its
// key, split at "/", that is a date. A key with none has no day.
func counterDay(key string) (string, bool) {
	var day string
	for _, seg := range strings.Split(key, "/") {
		if len(seg) != len(time.DateOnly) || seg <= day {
			continue
		}
		if _, err := time.Parse(time.DateOnly, seg); err == nil {
			day = seg
		}
	}
	return day, day != ""
}
