package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// interrupted is appended to the Reason of a record recovered Unknown.
const interrupted = "(interrupted: the process stopped before the response was recorded)"

// write runs fn in a transaction as run does, with the call admitted and
// its errors scrubbed.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) (bool, error)) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	if err := s.run(ctx, fn); err != nil {
		return s.ctxErr(ctx, err)
	}
	return nil
}

// Reserve implements store.Store, with the same refinements as store/bolt:
// it does not modify *r; the written record's Holds have Settled zero; a
// replayed record's Reserved is zero; counter holds on one key count
// together; a negative Duration is recorded as zero. Keys (of holds and
// idempotency) are 1 to 1024 bytes. A negative Window, or a window key
// held twice, is refused with ErrInvalid.
//
// Every counter the holds touch is checked and moved within its limit,
// every rolling window checked under its key's lock (window.go), and the
// record, its journal entry, the counters, the windows' rows and the
// idempotency key are written, in one transaction: see doc.go.
func (s *Store) Reserve(ctx context.Context, r *store.Reservation) (store.Admission, error) {
	if r == nil {
		return store.Admission{}, invalid("nil reservation")
	}
	for i, h := range r.Holds {
		switch {
		case h.Key == "" || len(h.Key) > maxKeyLen:
			return store.Admission{}, invalid("hold %d has a key of %d bytes; want 1 to %d", i, len(h.Key), maxKeyLen)
		case h.Amount < 0:
			return store.Admission{}, invalid("hold %d (%s) is negative: %d", i, h.Key, h.Amount)
		}
	}
	if err := checkWindowHolds(r.Holds); err != nil {
		return store.Admission{}, err
	}
	var idem store.Idempotency
	if r.Idempotency != nil {
		idem = *r.Idempotency
		if idem.Key == "" || idem.Fingerprint == "" || len(idem.Key) > maxKeyLen {
			return store.Admission{}, invalid("idempotency key %q with fingerprint %q: both are required", idem.Key, idem.Fingerprint)
		}
	}
	rec := r.Record
	rec.Holds = nil
	rec.Duration = max(rec.Duration, 0)
	if _, err := checkEncodable(&rec); err != nil {
		return store.Admission{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	holds := make([]audit.Hold, len(r.Holds))
	copy(holds, r.Holds)
	for i := range holds {
		holds[i].Settled = 0
	}
	o := &op{kind: opReserve, rec: rec, holds: holds}
	if r.Idempotency != nil {
		o.idem = &idem
	}
	if err := s.submit(ctx, o); err != nil {
		return store.Admission{}, err
	}
	return o.adm, nil
}

// dbKey is an idempotency key as its row holds it. PostgreSQL's text
// cannot hold U+0000, which Keybrake's keys use to separate agent, vendor,
// account and the request's own key; the escape is one to one, so keys
// that differ stay different.
func dbKey(k string) string {
	if !strings.ContainsAny(k, "\\\x00") {
		return k
	}
	return strings.ReplaceAll(strings.ReplaceAll(k, `\`, `\\`), "\x00", `\0`)
}

// lockRecord reads a record and locks its row until the transaction ends.
func lockRecord(ctx context.Context, tx pgx.Tx, id uint64) (*audit.Record, bool, error) {
	if id > 1<<63-1 {
		return nil, false, fmt.Errorf("%w: %d", store.ErrNotFound, id)
	}
	var (
		body   []byte
		replay bool
	)
	err := tx.QueryRow(ctx, `SELECT body, replay FROM keybrake_records WHERE id = $1 FOR UPDATE`, int64(id)).Scan(&body, &replay)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fmt.Errorf("%w: %d", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, false, err
	}
	r, err := decodeRecord(id, body)
	return r, replay, err
}

// lockCounters locks the counters the holds name (windowed holds have
// none), in key order, and returns their totals. With create, counters
// never used are created (zero) first; without, a missing one is corrupt
// data.
func lockCounters(ctx context.Context, tx pgx.Tx, holds []audit.Hold, create bool) (map[string]store.Counter, error) {
	out := make(map[string]store.Counter, len(holds))
	found := make(map[string]bool, len(holds))
	keys := make([]string, 0, len(holds))
	for _, h := range holds {
		if h.Window != 0 {
			continue
		}
		if _, ok := out[h.Key]; !ok {
			out[h.Key] = store.Counter{}
			keys = append(keys, h.Key)
		}
	}
	if len(keys) == 0 {
		return out, nil
	}
	sort.Strings(keys)
	read := func(keys []string) (int, error) {
		rows, err := tx.Query(ctx, `SELECT key, settled, pending, unknown FROM keybrake_counters WHERE key = ANY($1) ORDER BY key FOR UPDATE`, keys)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var (
				k string
				c store.Counter
			)
			if err := rows.Scan(&k, &c.Settled, &c.Pending, &c.Unknown); err != nil {
				return 0, err
			}
			if _, ok := checked.Total(c); !ok || c.Settled < 0 || c.Pending < 0 || c.Unknown < 0 {
				return 0, corrupt("counter %q is %+v", k, c)
			}
			out[k] = c
			found[k] = true
			n++
		}
		return n, rows.Err()
	}
	n, err := read(keys)
	if err != nil || n == len(keys) {
		return out, err
	}
	if !create {
		return nil, corrupt("a counter of holds %+v is missing", holds)
	}
	var missing []string
	for _, k := range keys {
		if !found[k] {
			missing = append(missing, k)
		}
	}
	// Rows created here are locked by this transaction until it ends;
	// rows another transaction creates meanwhile are waited for.
	if _, err := tx.Exec(ctx, `INSERT INTO keybrake_counters (key) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, missing); err != nil {
		return nil, err
	}
	m, err := read(missing)
	if err != nil {
		return nil, err
	}
	if n+m < len(keys) {
		return nil, errRetry // pruned under us: run again
	}
	return out, nil
}

func writeCounters(ctx context.Context, tx pgx.Tx, cs map[string]store.Counter) error {
	if len(cs) == 0 {
		return nil
	}
	keys := make([]string, 0, len(cs))
	var st, pe, un []int64
	for k := range cs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		st, pe, un = append(st, cs[k].Settled), append(pe, cs[k].Pending), append(un, cs[k].Unknown)
	}
	_, err := tx.Exec(ctx, `UPDATE keybrake_counters AS c SET settled = u.s, pending = u.p, unknown = u.n
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS u(k, s, p, n) WHERE c.key = u.k`, keys, st, pe, un)
	return err
}

// moveHolds applies move to the counter of each counter hold in turn
// (moveWindows moves the windowed ones), on counters lockCounters locked,
// with the hold's index. move reports false when a counter cannot move
// as asked, which means the counters no longer match the records.
func moveHolds(ctx context.Context, tx pgx.Tx, holds []audit.Hold, move func(c *store.Counter, i int, h audit.Hold) bool) error {
	cs, err := lockCounters(ctx, tx, holds, false)
	if err != nil {
		return err
	}
	for i, h := range holds {
		if h.Window != 0 {
			continue
		}
		c := cs[h.Key]
		before := c
		if !move(&c, i, h) {
			return corrupt("counter %q %+v cannot move hold %+v", h.Key, before, h)
		}
		if _, ok := checked.Total(c); !ok {
			return fmt.Errorf("store/postgres: counter %q overflows: %+v", h.Key, c)
		}
		cs[h.Key] = c
	}
	return writeCounters(ctx, tx, cs)
}

// putRecord stamps r with the chain's head, writes it (insert: a new
// record, written by this session) and appends it to the journal.
func putRecord(ctx context.Context, tx pgx.Tx, hd *head, r *audit.Record, insert, replay bool) error {
	hd.stamp(r)
	body, err := encodeRecord(r)
	if err != nil {
		return err
	}
	return putBody(ctx, tx, hd, r, body, insert, replay)
}

func putBody(ctx context.Context, tx pgx.Tx, hd *head, r *audit.Record, body []byte, insert, replay bool) error {
	c := columnsOf(r)
	var err error
	if insert {
		_, err = tx.Exec(ctx, `INSERT INTO keybrake_records (id, time_ns, agent, vendor, decision, customer, outcome, session, replay, body, run, principal)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			int64(r.ID), c.TimeNS, c.Agent, c.Vendor, c.Decision, c.Customer, c.Outcome, hd.session, replay, string(body), c.Run, c.Principal)
	} else {
		_, err = tx.Exec(ctx, `UPDATE keybrake_records SET time_ns = $2, agent = $3, vendor = $4, decision = $5, customer = $6,
			outcome = $7, body = $8, run = $9, principal = $10 WHERE id = $1`,
			int64(r.ID), c.TimeNS, c.Agent, c.Vendor, c.Decision, c.Customer, c.Outcome, string(body), c.Run, c.Principal)
	}
	if err != nil {
		return err
	}
	return hd.append(ctx, tx, r.ID, body)
}

// Complete implements store.Store, with store/bolt's refinements: Outcome
// Settled on a replayed record records it as audit.Replayed, which
// Complete also accepts for such a record only; more Settled entries than
// holds, a negative one, or a Moved amount the record cannot hold is
// refused with ErrInvalid; a negative Duration is recorded as zero.
func (s *Store) Complete(ctx context.Context, c *store.Completion) error {
	if c == nil {
		return invalid("nil completion")
	}
	switch c.Outcome {
	case audit.Settled, audit.Released, audit.Unknown, audit.Replayed:
	default:
		return invalid("completion of record %d with outcome %q", c.ID, c.Outcome)
	}
	for i, v := range c.Settled {
		if v < 0 {
			return invalid("completion of record %d: hold %d settled %d, negative", c.ID, i, v)
		}
	}
	comp := *c
	comp.Duration = max(comp.Duration, 0)
	comp.Settled = append([]int64(nil), c.Settled...)
	o := &op{kind: opComplete, comp: &comp}
	if err := s.submit(ctx, o); err != nil {
		return err
	}
	return o.result
}

// Resettle implements store.Store.
func (s *Store) Resettle(ctx context.Context, id uint64, settled []int64, moved money.Amount) error {
	for i, v := range settled {
		if v < 0 {
			return invalid("resettling record %d: hold %d settled %d, negative", id, i, v)
		}
	}
	settled = append([]int64(nil), settled...)
	var result error
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		var err error
		result, err = s.resettle(ctx, tx, id, settled, moved)
		return err == nil && result == nil, err
	})
	if err != nil {
		return err
	}
	return result
}

func (s *Store) resettle(ctx context.Context, tx pgx.Tx, id uint64, settled []int64, moved money.Amount) (result, err error) {
	r, _, err := lockRecord(ctx, tx, id)
	if errors.Is(err, store.ErrNotFound) {
		return err, nil
	}
	if err != nil {
		return nil, err
	}
	if r.Outcome != audit.Settled || !r.Estimated {
		return fmt.Errorf("%w: record %d is %s, estimated=%v", store.ErrNotEstimate, id, r.Outcome, r.Estimated), nil
	}
	if len(settled) > len(r.Holds) {
		return invalid("resettling record %d: %d settled amounts for %d holds", id, len(settled), len(r.Holds)), nil
	}
	prev := cloneRecord(r)
	for i := range r.Holds {
		r.Holds[i].Settled = 0
		if i < len(settled) {
			r.Holds[i].Settled = settled[i]
		}
	}
	r.Settled = moved
	r.Estimated = false
	if _, err := checkEncodable(r); err != nil {
		return fmt.Errorf("%w: resettling record %d: %w", ErrInvalid, id, err), nil
	}
	if err := moveWindows(ctx, tx, prev, r); err != nil {
		return nil, fmt.Errorf("resettling record %d: %w", id, err)
	}
	if err := moveHolds(ctx, tx, r.Holds, func(c *store.Counter, i int, h audit.Hold) bool {
		var ok bool
		if c.Settled, ok = checked.Sub(c.Settled, prev.Holds[i].Settled); !ok {
			return false
		}
		c.Settled, ok = checked.Add(c.Settled, h.Settled)
		return ok
	}); err != nil {
		return nil, fmt.Errorf("resettling record %d: %w", id, err)
	}
	hd, err := s.lockHead(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := putRecord(ctx, tx, hd, r, false, false); err != nil {
		return nil, err
	}
	return nil, hd.save(ctx, tx)
}

// Append implements store.Store. It does not modify *r. A record with
// holds or with Outcome Reserved is refused with ErrInvalid; an empty
// Outcome is written as audit.None; a negative Duration as zero.
func (s *Store) Append(ctx context.Context, r *audit.Record) (uint64, error) {
	if r == nil {
		return 0, invalid("nil record")
	}
	rec := *r
	switch {
	case len(rec.Holds) > 0:
		return 0, invalid("appended record holds %d limits; only Reserve holds money", len(rec.Holds))
	case rec.Outcome == audit.Reserved:
		return 0, invalid("appended record is reserved; only Reserve reserves")
	case rec.Outcome == "":
		rec.Outcome = audit.None
	}
	rec.Duration = max(rec.Duration, 0)
	if _, err := checkEncodable(&rec); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	o := &op{kind: opAppend, rec: rec}
	if err := s.submit(ctx, o); err != nil {
		return 0, err
	}
	return o.id, nil
}

// SetFact implements store.Store. Setting a fact to the value it has is a
// no-op; setting it to another value is refused with ErrInvalid.
func (s *Store) SetFact(ctx context.Context, key, value string) error {
	if key == "" || len(key) > maxKeyLen {
		return invalid("fact key of %d bytes; want 1 to %d", len(key), maxKeyLen)
	}
	if strings.ContainsRune(key, 0) || strings.ContainsRune(value, 0) {
		return invalid("fact %q holds a NUL character", key)
	}
	var result error
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		result = nil
		var old string
		err := tx.QueryRow(ctx, `WITH ins AS (INSERT INTO keybrake_facts (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING value)
			SELECT value FROM ins UNION ALL SELECT value FROM keybrake_facts WHERE key = $1 LIMIT 1`, key, value).Scan(&old)
		if errors.Is(err, pgx.ErrNoRows) {
			// Another transaction set it after this statement's snapshot
			// was taken, and committed while the insert waited for it.
			return false, errRetry
		}
		if err != nil {
			return false, err
		}
		if old != value {
			result = invalid("fact %q is %q; refusing to change it to %q", key, old, value)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if result == nil {
		s.facts.put(key, value)
	}
	return result
}

// recoverSession turns every record session dead left Reserved into
// Unknown, journaled in this Store's chain; the caller has locked dead's
// row and closes it in the same transaction, so it happens exactly once.
func (s *Store) recoverSession(ctx context.Context, tx pgx.Tx, dead, by int64) error {
	rows, err := tx.Query(ctx, `SELECT id FROM keybrake_records WHERE session = $1 AND outcome = 'reserved' ORDER BY id FOR UPDATE`, dead)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(ids) == 0 {
		return err
	}
	var hd *head
	for _, id := range ids {
		r, _, err := lockRecord(ctx, tx, uint64(id))
		if err != nil {
			return err
		}
		prev := cloneRecord(r)
		r.Outcome = audit.Unknown
		if err := moveWindows(ctx, tx, prev, r); err != nil {
			return fmt.Errorf("recovering record %d of session %d: %w", id, dead, err)
		}
		if err := moveHolds(ctx, tx, r.Holds, func(c *store.Counter, _ int, h audit.Hold) bool {
			var ok bool
			if c.Pending, ok = checked.Sub(c.Pending, h.Amount); !ok {
				return false
			}
			c.Unknown, ok = checked.Add(c.Unknown, h.Amount)
			return ok
		}); err != nil {
			return fmt.Errorf("recovering record %d of session %d: %w", id, dead, err)
		}
		if r.Reason == "" {
			r.Reason = interrupted
		} else {
			r.Reason = strings.TrimRight(r.Reason, " ") + " " + interrupted
		}
		if hd == nil {
			if dead == by {
				// Close: this session's own row is locked already.
				hd = &head{session: by}
				var hash []byte
				if err := tx.QueryRow(ctx, `SELECT head_seq, head_hash FROM keybrake_sessions WHERE id = $1`, by).Scan(&hd.seq, &hash); err != nil {
					return err
				}
				hd.hash, _ = toSum(hash)
			} else if hd, err = s.lockHead(ctx, tx); err != nil {
				return err
			}
		}
		if err := putRecord(ctx, tx, hd, r, false, false); err != nil {
			return err
		}
	}
	return hd.save(ctx, tx)
}

// recoverExpired recovers every other session whose heartbeat expired,
// each in its own transaction. A session another process is recovering
// (its row locked) is skipped: that process does it.
func (s *Store) recoverExpired(ctx context.Context) error {
	me := s.session.Load()
	rows, err := s.pool.Query(ctx, `SELECT id FROM keybrake_sessions WHERE closed IS NULL AND heartbeat + ttl < now() AND id <> $1 ORDER BY id`, me)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	for _, dead := range ids {
		err := s.run(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
			var id int64
			err := tx.QueryRow(ctx, `SELECT id FROM keybrake_sessions WHERE id = $1 AND closed IS NULL AND heartbeat + ttl < now()
				FOR UPDATE SKIP LOCKED`, dead).Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			if err := s.recoverSession(ctx, tx, dead, s.session.Load()); err != nil {
				return false, err
			}
			_, err = tx.Exec(ctx, `UPDATE keybrake_sessions SET closed = now(), closed_by = $2 WHERE id = $1`, dead, s.session.Load())
			return true, err
		})
		if err != nil {
			return fmt.Errorf("store/postgres: recovering expired session %d: %w", dead, err)
		}
	}
	return nil
}
