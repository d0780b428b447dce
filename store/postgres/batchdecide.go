package postgres

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// What a batch decides in Go between its two round trips (batchtx.go):
// each operation in arrival order, as if it ran alone after the ones
// before it.

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
		retryOf   uint64
		replay    bool
		takeover  *lockedRecord
		ks        *keyState
		forgotten bool // store.KeyNew: the key's record is past store.ReplayWindow
	)
	if o.idem != nil {
		ks = t.keys[dbKey(o.idem.Key)]
		if ks == nil {
			return store.Admission{}, corrupt("idempotency key %q was not claimed", o.idem.Key)
		}
		if ks.record != 0 {
			prev := t.records[uint64(ks.record)]
			if prev == nil {
				return store.Admission{}, corrupt("idempotency key %q points at missing record %d", o.idem.Key, ks.record)
			}
			rule, refusal := store.KeySeen(prev.rec, ks.fp, o.rec.Time, o.idem.Fingerprint)
			switch rule {
			case store.KeyNew:
				forgotten = true
			case store.KeyRefuse:
				return store.Admission{Result: refusal}, nil
			case store.KeyReplay:
				retryOf, replay, holds = uint64(ks.record), true, nil
			case store.KeyAfresh:
				retryOf = uint64(ks.record)
			case store.KeyTakeover:
				retryOf, takeover = uint64(ks.record), prev
				holds = slices.Clone(prev.rec.Holds)
			default:
				return store.Admission{}, corrupt("idempotency key %q points at record %d, which is %q", o.idem.Key, ks.record, prev.rec.Outcome)
			}
		}
	}
	work := map[string]store.Counter{}
	bounds := map[string]int64{}
	for _, h := range holds {
		if h.Window != 0 {
			continue
		}
		c, ok := t.counters[h.Key]
		if !ok {
			return store.Admission{}, errRetry
		}
		work[h.Key] = c
	}
	for i, h := range holds {
		if h.Window != 0 {
			// A takeover's holds are counted already: its rows move.
			if takeover == nil && h.Limit >= 0 {
				used, free, fits, err := t.win.check(h, o.rec.Time)
				if err != nil {
					return store.Admission{}, err
				}
				if !fits {
					return store.Admission{Result: store.OverLimit, Hold: i, Used: used, Frees: free}, nil
				}
			}
			continue
		}
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
	var (
		retired *audit.Record
		moves   []windowMove
	)
	if takeover != nil {
		retired = cloneRecord(takeover.rec)
		retired.Outcome = audit.Retried
		var err error
		if moves, err = t.win.plan(takeover.rec, retired); err != nil {
			return store.Admission{}, err
		}
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
	t.win.apply(moves)
	t.win.add(&rec)
	if takeover != nil {
		if err := t.put(retired, false, false); err != nil {
			return store.Admission{}, err
		}
		takeover.rec = retired
	}
	// A forgotten key keeps pointing at its first use, from which the
	// vendor's 24 hours run whether it replayed this call or not.
	if ks != nil && !replay && !forgotten {
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
		if h.Window != 0 {
			continue
		}
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
	moves, err := t.win.plan(cur.rec, &r)
	if err != nil {
		return nil, fmt.Errorf("completing record %d: %w", c.ID, err)
	}
	if err := t.put(&r, false, false); err != nil {
		return nil, err
	}
	cur.rec = &r
	for k, ctr := range work {
		t.counters[k] = ctr
		t.changed[k] = true
	}
	t.win.apply(moves)
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
