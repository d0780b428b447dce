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
	"github.com/keybrake/keybrake/policy"
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
// replayed record's Reserved is zero; holds on one key count together; a
// negative Duration is recorded as zero. Keys (of holds and idempotency)
// are 1 to 1024 bytes.
//
// Every counter the holds touch is locked (SELECT ... FOR UPDATE, in key
// order) and checked, and the record, its journal entry, the counters and
// the idempotency key are written, in one transaction: see doc.go.
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
	var adm store.Admission
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		var err error
		adm, err = s.reserve(ctx, tx, rec, holds, r.Idempotency != nil, idem)
		return err == nil && (adm.Result == store.Admitted || adm.Result == store.Replayed), err
	})
	if err != nil {
		return store.Admission{}, err
	}
	return adm, nil
}

func (s *Store) reserve(ctx context.Context, tx pgx.Tx, rec audit.Record, holds []audit.Hold, hasIdem bool, idem store.Idempotency) (store.Admission, error) {
	var (
		retryOf  uint64
		replay   bool
		takeover *audit.Record
	)
	if hasIdem {
		// Claim the key, or lock it: concurrent reservations with one key
		// run one after the other from here. A new key's row holds
		// record 0 until this transaction commits (or rolls it back).
		var (
			id int64
			fp string
		)
		if err := tx.QueryRow(ctx, `INSERT INTO keybrake_idempotency (key, record_id, fingerprint) VALUES ($1, 0, $2)
			ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING record_id, fingerprint`,
			idem.Key, idem.Fingerprint).Scan(&id, &fp); err != nil {
			return store.Admission{}, err
		}
		if id != 0 {
			if fp != idem.Fingerprint {
				return store.Admission{Result: store.KeyReused}, nil
			}
			prev, _, err := lockRecord(ctx, tx, uint64(id))
			if errors.Is(err, store.ErrNotFound) {
				return store.Admission{}, corrupt("idempotency key %q points at missing record %d", idem.Key, id)
			}
			if err != nil {
				return store.Admission{}, err
			}
			retryOf = uint64(id)
			switch prev.Outcome {
			case audit.Reserved:
				return store.Admission{Result: store.KeyInUse}, nil
			case audit.Settled, audit.Replayed:
				replay, holds = true, nil
			case audit.Released:
				// Reserve afresh below, limits checked.
			case audit.Unknown:
				takeover = prev
				holds = append([]audit.Hold(nil), prev.Holds...)
			default:
				return store.Admission{}, corrupt("idempotency key %q points at record %d, which is %q", idem.Key, id, prev.Outcome)
			}
		}
	}

	before, err := lockCounters(ctx, tx, holds, true)
	if err != nil {
		return store.Admission{}, err
	}
	work := make(map[string]store.Counter, len(before))
	for k, c := range before {
		work[k] = c
	}
	for i, h := range holds {
		c := work[h.Key]
		var ok bool
		if takeover != nil {
			// Already counted, as unknown: back to pending, no check.
			if c.Unknown, ok = checked.Sub(c.Unknown, h.Amount); !ok {
				return store.Admission{}, corrupt("counter %q holds %d unknown, less than record %d's hold of %d", h.Key, c.Unknown, takeover.ID, h.Amount)
			}
		} else if h.Limit >= 0 {
			t, _ := checked.Total(c)
			if next, fits := checked.Add(t, h.Amount); !fits || next > h.Limit {
				used, _ := checked.Total(before[h.Key])
				return store.Admission{Result: store.OverLimit, Hold: i, Used: used}, nil
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

	hd, err := s.lockHead(ctx, tx)
	if err != nil {
		return store.Admission{}, err
	}
	var id int64
	if err := tx.QueryRow(ctx, `SELECT nextval('keybrake_record_ids')`).Scan(&id); err != nil {
		return store.Admission{}, err
	}
	rec.ID = uint64(id)
	rec.Outcome = audit.Reserved
	rec.Holds = holds
	if retryOf != 0 {
		rec.RetryOf = retryOf
	}
	if replay {
		rec.Reserved.Micros = 0
	}
	if err := putRecord(ctx, tx, hd, &rec, true, replay); err != nil {
		return store.Admission{}, err
	}
	if err := writeCounters(ctx, tx, work); err != nil {
		return store.Admission{}, err
	}
	if takeover != nil {
		takeover.Outcome = audit.Retried
		if err := putRecord(ctx, tx, hd, takeover, false, false); err != nil {
			return store.Admission{}, err
		}
	}
	if hasIdem && !replay {
		if _, err := tx.Exec(ctx, `UPDATE keybrake_idempotency SET record_id = $2, fingerprint = $3 WHERE key = $1`,
			idem.Key, id, idem.Fingerprint); err != nil {
			return store.Admission{}, err
		}
	}
	if err := hd.save(ctx, tx); err != nil {
		return store.Admission{}, err
	}
	adm := store.Admission{Result: store.Admitted, ID: rec.ID, RetryOf: retryOf}
	if replay {
		adm.Result = store.Replayed
	}
	if len(holds) > 0 {
		adm.Holds = append([]audit.Hold(nil), holds...)
	}
	return adm, nil
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

// lockCounters locks the counters the holds name, in key order, and
// returns their totals. With create, counters never used are created
// (zero) first; without, a missing one is corrupt data.
func lockCounters(ctx context.Context, tx pgx.Tx, holds []audit.Hold, create bool) (map[string]store.Counter, error) {
	out := make(map[string]store.Counter, len(holds))
	if len(holds) == 0 {
		return out, nil
	}
	found := make(map[string]bool, len(holds))
	keys := make([]string, 0, len(holds))
	for _, h := range holds {
		if _, ok := out[h.Key]; !ok {
			out[h.Key] = store.Counter{}
			keys = append(keys, h.Key)
		}
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

// moveHolds applies move to the counter of each hold in turn, on counters
// lockCounters locked. move reports false when a counter cannot move as
// asked, which means the counters no longer match the records.
func moveHolds(ctx context.Context, tx pgx.Tx, holds []audit.Hold, move func(c *store.Counter, h audit.Hold) bool) error {
	cs, err := lockCounters(ctx, tx, holds, false)
	if err != nil {
		return err
	}
	for _, h := range holds {
		c := cs[h.Key]
		before := c
		if !move(&c, h) {
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
		_, err = tx.Exec(ctx, `INSERT INTO keybrake_records (id, time_ns, agent, vendor, decision, customer, outcome, session, replay, body)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			int64(r.ID), c.TimeNS, c.Agent, c.Vendor, c.Decision, c.Customer, c.Outcome, hd.session, replay, string(body))
	} else {
		_, err = tx.Exec(ctx, `UPDATE keybrake_records SET time_ns = $2, agent = $3, vendor = $4, decision = $5, customer = $6,
			outcome = $7, body = $8 WHERE id = $1`,
			int64(r.ID), c.TimeNS, c.Agent, c.Vendor, c.Decision, c.Customer, c.Outcome, string(body))
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
	var result error
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		var err error
		result, err = s.complete(ctx, tx, &comp)
		return err == nil && result == nil, err
	})
	if err != nil {
		return err
	}
	return result
}

// complete returns the caller's error (not found, not reserved, invalid)
// as result, and internal errors as err.
func (s *Store) complete(ctx context.Context, tx pgx.Tx, c *store.Completion) (result, err error) {
	r, replay, err := lockRecord(ctx, tx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return err, nil
	}
	if err != nil {
		return nil, err
	}
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
	if _, err := checkEncodable(r); err != nil {
		return fmt.Errorf("%w: completion of record %d: %w", ErrInvalid, c.ID, err), nil
	}
	if err := moveHolds(ctx, tx, r.Holds, func(ctr *store.Counter, h audit.Hold) bool {
		var ok bool
		if ctr.Pending, ok = checked.Sub(ctr.Pending, h.Amount); !ok {
			return false
		}
		switch outcome {
		case audit.Settled, audit.Replayed:
			ctr.Settled, ok = checked.Add(ctr.Settled, h.Settled)
		case audit.Unknown:
			ctr.Unknown, ok = checked.Add(ctr.Unknown, h.Amount)
		}
		return ok
	}); err != nil {
		return nil, fmt.Errorf("completing record %d: %w", c.ID, err)
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
	old := append([]audit.Hold(nil), r.Holds...)
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
	i := 0
	if err := moveHolds(ctx, tx, r.Holds, func(c *store.Counter, h audit.Hold) bool {
		prev := old[i].Settled
		i++
		var ok bool
		if c.Settled, ok = checked.Sub(c.Settled, prev); !ok {
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
	var id uint64
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		hd, err := s.lockHead(ctx, tx)
		if err != nil {
			return false, err
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT nextval('keybrake_record_ids')`).Scan(&n); err != nil {
			return false, err
		}
		rec := rec
		rec.ID, id = uint64(n), uint64(n)
		if err := putRecord(ctx, tx, hd, &rec, true, false); err != nil {
			return false, err
		}
		return true, hd.save(ctx, tx)
	})
	if err != nil {
		return 0, err
	}
	return id, nil
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
		if err := moveHolds(ctx, tx, r.Holds, func(c *store.Counter, h audit.Hold) bool {
			var ok bool
			if c.Pending, ok = checked.Sub(c.Pending, h.Amount); !ok {
				return false
			}
			c.Unknown, ok = checked.Add(c.Unknown, h.Amount)
			return ok
		}); err != nil {
			return fmt.Errorf("recovering record %d of session %d: %w", id, dead, err)
		}
		r.Outcome = audit.Unknown
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
