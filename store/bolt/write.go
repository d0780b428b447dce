package bolt

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// ErrInvalid is wrapped by the errors of calls whose arguments the store
// refuses: a negative hold, a hold without a key, an idempotency key without
// a fingerprint, a completion with an outcome it cannot record, an audit
// record that would not read back as written, a fact that would change.
// Nothing is written.
var ErrInvalid = errors.New("store/bolt: invalid argument")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Reserve implements store.Store. It does not modify *r; the written
// record's ID, holds and RetryOf are in the Admission.
//
// Beyond store.Store's contract: the written record's Holds have Settled
// zero; a replayed record's Reserved is zero (it holds nothing); a retry of
// a Released call has RetryOf set on its record and Admission like any other
// retry. Counter holds on the same key in one reservation count together;
// a window key held twice, a negative Window, and a windowed hold on a
// record whose Time is outside the years 1678 to 2262 (an entry's key
// holds it in unix nanoseconds) are refused with ErrInvalid. A negative
// Duration is recorded as zero.
func (s *Store) Reserve(ctx context.Context, r *store.Reservation) (store.Admission, error) {
	if r == nil {
		return store.Admission{}, invalid("nil reservation")
	}
	for i, h := range r.Holds {
		switch {
		case h.Key == "" || len(h.Key) > bbolt.MaxKeySize:
			return store.Admission{}, invalid("hold %d has a key of %d bytes; want 1 to %d", i, len(h.Key), bbolt.MaxKeySize)
		case h.Amount < 0:
			return store.Admission{}, invalid("hold %d (%s) is negative: %d", i, h.Key, h.Amount)
		}
	}
	if err := checkWindows(r.Holds, r.Record.Time); err != nil {
		return store.Admission{}, err
	}
	var idem store.Idempotency
	if r.Idempotency != nil {
		idem = *r.Idempotency
		if idem.Key == "" || idem.Fingerprint == "" || len(idem.Key) > bbolt.MaxKeySize {
			return store.Admission{}, invalid("idempotency key %q with fingerprint %q: both are required", idem.Key, idem.Fingerprint)
		}
	}
	rec := r.Record
	rec.Holds = nil
	rec.Duration = max(rec.Duration, 0)
	if err := checkEncodable(&rec); err != nil {
		return store.Admission{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	holds := make([]audit.Hold, len(r.Holds))
	copy(holds, r.Holds)
	for i := range holds {
		holds[i].Settled = 0
	}

	var adm store.Admission
	err := s.write(ctx, func(tx *bbolt.Tx) error {
		var err error
		adm, err = reserve(tx, rec, holds, r.Idempotency != nil, idem, &s.fill)
		return err
	})
	if err != nil {
		return store.Admission{}, err
	}
	return adm, nil
}

func reserve(tx *bbolt.Tx, rec audit.Record, holds []audit.Hold, hasIdem bool, idem store.Idempotency, fill *pageFill) (store.Admission, error) {
	var (
		retryOf   uint64
		kind      = kindHolds
		takeover  *audit.Record // the Unknown call whose holds this one takes over
		forgotten bool          // store.KeyNew: the key's record is past store.ReplayWindow
	)
	var ikey []byte
	if hasIdem {
		var err error
		if ikey, err = idemKey(newDict(tx), idem.Key, false); err != nil {
			return store.Admission{}, err
		}
	}
	if ikey != nil {
		if v := tx.Bucket(bucketIdem).Get(ikey); v != nil {
			id, fp, err := decodeIndex(ikey, v)
			if err != nil {
				return store.Admission{}, err
			}
			prev, err := getRecord(tx, id)
			if errors.Is(err, store.ErrNotFound) {
				return store.Admission{}, corrupt("idempotency key %q points at missing record %d", idem.Key, id)
			}
			if err != nil {
				return store.Admission{}, err
			}
			rule, refusal := store.KeySeen(prev, fp, rec.Time, idem.Fingerprint)
			switch rule {
			case store.KeyNew:
				forgotten = true
			case store.KeyRefuse:
				return store.Admission{Result: refusal}, nil
			case store.KeyReplay:
				retryOf, kind, holds = id, kindReplay, nil
			case store.KeyAfresh:
				retryOf = id
			case store.KeyTakeover:
				retryOf, takeover = id, prev
				holds = append([]audit.Hold(nil), prev.Holds...)
				// The Unknown call's windowed holds move to this record's
				// Time, which must suit them as Reserve checked the call's.
				if err := checkWindows(holds, rec.Time); err != nil {
					return store.Admission{}, err
				}
			default:
				return store.Admission{}, corrupt("idempotency key %q points at record %d, which is %q", idem.Key, id, prev.Outcome)
			}
		}
	}

	// Read and check every counter and window, in the holds' order, before
	// writing anything: a refusal writes nothing.
	counters := tx.Bucket(bucketCounters)
	work := make(map[string]store.Counter, len(holds))
	for i, h := range holds {
		if h.Window != 0 {
			// A taken-over hold is counted already, in the Unknown call's
			// entry, which enterWindows moves.
			if takeover != nil || h.Limit < 0 {
				continue
			}
			fits, used, frees, err := windowFits(tx, h, rec.Time)
			if err != nil {
				return store.Admission{}, err
			}
			if !fits {
				return store.Admission{Result: store.OverLimit, Hold: i, Used: used, Frees: frees}, nil
			}
			continue
		}
		c, seen := work[h.Key]
		if !seen {
			var err error
			if c, err = decodeCounter(h.Key, counters.Get([]byte(h.Key))); err != nil {
				return store.Admission{}, err
			}
		}
		var ok bool
		if takeover != nil {
			// The money is already counted, as unknown: move it back to
			// pending without checking the limit again.
			if c.Unknown, ok = checked.Sub(c.Unknown, h.Amount); !ok {
				return store.Admission{}, corrupt("counter %q holds %d unknown, less than record %d's hold of %d", h.Key, c.Unknown, takeover.ID, h.Amount)
			}
		} else if h.Limit >= 0 {
			t, _ := checked.Total(c) // decodeCounter checked it fits
			if next, fits := checked.Add(t, h.Amount); !fits || next > h.Limit {
				before, err := decodeCounter(h.Key, counters.Get([]byte(h.Key)))
				if err != nil {
					return store.Admission{}, err
				}
				used, _ := checked.Total(before)
				return store.Admission{Result: store.OverLimit, Hold: i, Used: used}, nil
			}
		}
		if c.Pending, ok = checked.Add(c.Pending, h.Amount); !ok {
			return store.Admission{}, fmt.Errorf("store/bolt: counter %q: pending %d + %d overflows", h.Key, c.Pending, h.Amount)
		}
		if _, ok := checked.Total(c); !ok {
			return store.Admission{}, fmt.Errorf("store/bolt: counter %q: total overflows with %d more", h.Key, h.Amount)
		}
		work[h.Key] = c
	}

	id, err := recordsBucket(tx).NextSequence()
	if err != nil {
		return store.Admission{}, err
	}
	rec.ID = id
	rec.Outcome = audit.Reserved
	rec.Holds = holds
	if retryOf != 0 {
		rec.RetryOf = retryOf
	}
	if kind == kindReplay {
		rec.Reserved.Micros = 0
	}
	for key, c := range work {
		if err := counters.Put([]byte(key), encodeCounter(c)); err != nil {
			return store.Admission{}, err
		}
	}
	if err := putNewRecord(tx, &rec); err != nil {
		return store.Admission{}, err
	}
	if err := enterWindows(tx, &rec, holds, takeover); err != nil {
		return store.Admission{}, err
	}
	if err := tx.Bucket(bucketPending).Put(u64(id), []byte{kind}); err != nil {
		return store.Admission{}, err
	}
	if takeover != nil {
		takeover.Outcome = audit.Retried
		if err := putRecord(tx, takeover); err != nil {
			return store.Admission{}, err
		}
		if err := tx.Bucket(bucketUnknown).Delete(u64(takeover.ID)); err != nil {
			return store.Admission{}, err
		}
	}
	// A forgotten key keeps pointing at its first use, from which the
	// vendor's 24 hours run whether it replayed this call or not.
	if hasIdem && kind != kindReplay && !forgotten {
		ikey, err := idemKey(newDict(tx), idem.Key, true)
		if err != nil {
			return store.Admission{}, err
		}
		b := tx.Bucket(bucketIdem)
		fill.keyAdded(b, ikey)
		if err := b.Put(ikey, encodeIndex(id, idem.Fingerprint)); err != nil {
			return store.Admission{}, err
		}
	}
	adm := store.Admission{Result: store.Admitted, ID: id, RetryOf: retryOf}
	if kind == kindReplay {
		adm.Result = store.Replayed
	}
	if len(holds) > 0 {
		adm.Holds = append([]audit.Hold(nil), holds...)
	}
	return adm, nil
}

// Complete implements store.Store.
//
// Beyond store.Store's contract: Outcome Settled on a replayed record (one
// Reserve answered Replayed) records it as audit.Replayed, which Complete
// also accepts for such a record only. A completion with more Settled
// entries than the record has holds, a negative entry, or a Moved amount the
// record cannot hold (another currency than its Amount) is refused with
// ErrInvalid and the record stays Reserved. A negative Duration (a clock
// that went backwards) is recorded as zero.
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
	err := s.writeCompletion(ctx, func(tx *bbolt.Tx) error {
		before := recordSize(tx, comp.ID)
		var err error
		result, err = complete(tx, &comp)
		if err == nil && result == nil {
			s.fill.grew(before, recordSize(tx, comp.ID))
		}
		return err
	})
	if err != nil {
		return err
	}
	return result
}

// complete returns the caller's error (not found, not reserved, invalid) as
// result, having written nothing, and internal errors as err.
func complete(tx *bbolt.Tx, c *store.Completion) (result, err error) {
	r, err := getRecord(tx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return err, nil
	}
	if err != nil {
		return nil, err
	}
	if r.Outcome != audit.Reserved {
		return fmt.Errorf("%w: record %d is %s", store.ErrNotReserved, c.ID, r.Outcome), nil
	}
	pending := tx.Bucket(bucketPending)
	kind := pending.Get(u64(c.ID))
	if len(kind) != 1 {
		return nil, corrupt("reserved record %d has no pending entry", c.ID)
	}
	if len(c.Settled) > len(r.Holds) {
		return invalid("completion of record %d: %d settled amounts for %d holds", c.ID, len(c.Settled), len(r.Holds)), nil
	}
	if f := c.Refused; f != nil && (c.Outcome != audit.Released || !f.Decision.Valid() || f.Decision == policy.Allowed) {
		return invalid("completion of record %d: a refusal (%q) must be released, and not allowed", c.ID, f.Decision), nil
	}
	outcome := c.Outcome
	switch {
	case kind[0] == kindReplay && outcome == audit.Settled:
		outcome = audit.Replayed
	case kind[0] != kindReplay && outcome == audit.Replayed:
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
	if err := checkEncodable(r); err != nil {
		return fmt.Errorf("%w: completion of record %d: %w", ErrInvalid, c.ID, err), nil
	}

	if err := moveHolds(tx, r, r.Holds, func(ctr *store.Counter, h audit.Hold) bool {
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
	if err := pending.Delete(u64(c.ID)); err != nil {
		return nil, err
	}
	if outcome == audit.Unknown {
		if err := tx.Bucket(bucketUnknown).Put(u64(c.ID), nil); err != nil {
			return nil, err
		}
	}
	return nil, putRecord(tx, r)
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
	err := s.writeCompletion(ctx, func(tx *bbolt.Tx) error {
		var err error
		result, err = resettle(tx, id, settled, moved)
		return err
	})
	if err != nil {
		return err
	}
	return result
}

func resettle(tx *bbolt.Tx, id uint64, settled []int64, moved money.Amount) (result, err error) {
	r, err := getRecord(tx, id)
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
	if err := checkEncodable(r); err != nil {
		return fmt.Errorf("%w: resettling record %d: %w", ErrInvalid, id, err), nil
	}
	for i, h := range r.Holds {
		prev := old[i].Settled
		if err := moveHolds(tx, r, []audit.Hold{h}, func(c *store.Counter, h audit.Hold) bool {
			var ok bool
			if c.Settled, ok = checked.Sub(c.Settled, prev); !ok {
				return false
			}
			c.Settled, ok = checked.Add(c.Settled, h.Settled)
			return ok
		}); err != nil {
			return nil, fmt.Errorf("resettling record %d: %w", id, err)
		}
	}
	return nil, putRecord(tx, r)
}

// Append implements store.Store. It does not modify *r.
//
// Beyond store.Store's contract: a record with holds or with Outcome
// Reserved is refused with ErrInvalid (it would hold money nobody
// completes); an empty Outcome is written as audit.None; a negative
// Duration is recorded as zero.
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
	if err := checkEncodable(&rec); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var id uint64
	err := s.write(ctx, func(tx *bbolt.Tx) error {
		var err error
		if id, err = recordsBucket(tx).NextSequence(); err != nil {
			return err
		}
		rec := rec
		rec.ID = id
		return putNewRecord(tx, &rec)
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// SetFact implements store.Store. Setting a fact to the value it has is a
// no-op; setting it to another value is refused with ErrInvalid, since a
// fact never changes once learned and a different answer means something
// is wrong.
func (s *Store) SetFact(ctx context.Context, key, value string) error {
	if key == "" || len(key) > bbolt.MaxKeySize {
		return invalid("fact key of %d bytes; want 1 to %d", len(key), bbolt.MaxKeySize)
	}
	var result error
	err := s.write(ctx, func(tx *bbolt.Tx) error {
		result = nil
		facts := tx.Bucket(bucketFacts)
		if old := facts.Get([]byte(key)); old != nil {
			if string(old) != value {
				result = invalid("fact %q is %q; refusing to change it to %q", key, old, value)
			}
			return nil
		}
		return facts.Put([]byte(key), []byte(value))
	})
	if err != nil {
		return err
	}
	return result
}

// getRecord reads a record, with its PrevHash: the hash of the journal
// entry before the record's latest.
func getRecord(tx *bbolt.Tx, id uint64) (*audit.Record, error) {
	return getRecordIn(tx, newDict(tx), id)
}

// getRecordIn is getRecord with the transaction's dict, for a walk over
// many records.
func getRecordIn(tx *bbolt.Tx, d *dict, id uint64) (*audit.Record, error) {
	v := tx.Bucket(bucketRecords).Get(u64(id))
	if v == nil {
		return nil, fmt.Errorf("%w: %d", store.ErrNotFound, id)
	}
	r, seq, err := decodeRecord(d, id, v)
	if err != nil {
		return nil, err
	}
	if seq == 0 {
		return nil, corrupt("record %d has no journal entry", id)
	}
	prev, ok, err := entrySum(tx, seq-1)
	if err != nil {
		return nil, err
	}
	if ok {
		r.PrevHash = hex.EncodeToString(prev[:])
	}
	return r, nil
}

// putNewRecord writes a record and its index entries.
func putNewRecord(tx *bbolt.Tx, r *audit.Record) error {
	if err := putRecord(tx, r); err != nil {
		return err
	}
	if err := appendOnly(tx, bucketTime).Put(timeKey(r.Time, r.ID), nil); err != nil {
		return err
	}
	agent, err := newDict(tx).intern(r.Agent)
	if err != nil {
		return err
	}
	return appendOnly(tx, bucketAgent).Put(agentKey(agent, r.Time, r.ID), nil)
}

// moveHolds applies move to the counter of each hold in turn, or for a
// windowed hold to its entry in the window (moveWindow); r is the
// record's new state. move reports false when the counter cannot move as
// asked (it would go negative or overflow), which means the counters no
// longer match the records.
func moveHolds(tx *bbolt.Tx, r *audit.Record, holds []audit.Hold, move func(c *store.Counter, h audit.Hold) bool) error {
	counters := tx.Bucket(bucketCounters)
	for _, h := range holds {
		if h.Window != 0 {
			if err := moveWindow(tx, r, h, move); err != nil {
				return err
			}
			continue
		}
		c, err := decodeCounter(h.Key, counters.Get([]byte(h.Key)))
		if err != nil {
			return err
		}
		before := c
		if !move(&c, h) {
			return corrupt("counter %q %+v cannot move hold %+v", h.Key, before, h)
		}
		if _, ok := checked.Total(c); !ok {
			return fmt.Errorf("store/bolt: counter %q overflows: %+v", h.Key, c)
		}
		if err := counters.Put([]byte(h.Key), encodeCounter(c)); err != nil {
			return err
		}
	}
	return nil
}
