package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// FuzzOperations runs a sequence of Reserve, Complete, Append, reopen
// (crash recovery) and Prune operations decoded from the input against the
// store and against a plain sequential model of store.Store's contract, and
// after every step checks that both agree on every result, every counter
// and every record's outcome and holds, that the counters equal what the
// records say (settled holds, reserved holds, unknown holds, and what
// pruned records had settled), and that the audit chain verifies.
func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 1, 0, 5, 9, 1, 0, 2, 0, 0, 3})
	f.Add([]byte{0, 1, 0, 7, 10, 1, 0, 2, 1, 2, 0, 0, 1, 0, 7, 10, 1, 0})
	f.Add([]byte{0, 2, 0, 3, 5, 1, 4, 5, 2, 1, 4, 0, 1, 0, 3, 5, 2, 0})
	// Settled with a key, Unknown with a key, a refusal; prune (the
	// Unknown call stays); its retry takes over, the pruned key's retry
	// is a new call; prune the takeover; crash with a call in flight;
	// prune keeps it.
	f.Add([]byte{0x00, 0x01, 0x05, 0x00, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00, 0x03, 0x00, 0x01, 0x17, 0x01, 0x04, 0x02, 0x00, 0x02, 0x02, 0x02, 0x00, 0x03, 0xf0, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x04, 0xf0, 0x04, 0xf0})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 400 {
			return
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "keybrake.db")
		s := openFuzz(t, path)
		defer func() { s.Close() }()
		m := newModel()
		ctx := context.Background()
		next := func() int {
			if len(in) == 0 {
				return 0
			}
			b := in[0]
			in = in[1:]
			return int(b)
		}
		for step := 0; len(in) > 0; step++ {
			op := next()
			if op >= 0xf0 {
				// Every record has the zero Time: a Prune removes every
				// finished one and its keys, and keeps the rest.
				got, err := s.Prune(ctx, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
				records, keys := m.prune()
				if err != nil || got.Records != records || got.IdempotencyKeys != keys || got.Counters != 0 {
					t.Fatalf("step %d: Prune = %+v, %v; model removes %d records and %d keys", step, got, err, records, keys)
				}
				m.check(t, s, step)
				continue
			}
			switch op % 5 {
			case 0, 1:
				r := &store.Reservation{Record: audit.Record{Agent: fmt.Sprint("step", step)}}
				for n := next() % 3; n > 0; n-- {
					limit := int64(next() % 24)
					if limit > 20 {
						limit = -1
					}
					r.Holds = append(r.Holds, audit.Hold{Key: fuzzKeys[next()%len(fuzzKeys)], Limit: limit, Amount: int64(next() % 8)})
				}
				if k := next() % 3; k > 0 {
					r.Idempotency = &store.Idempotency{Key: fmt.Sprint("key", k), Fingerprint: fmt.Sprint("fp", next()%2)}
				}
				got, err := s.Reserve(ctx, r)
				if err != nil {
					t.Fatalf("step %d: Reserve(%+v): %v", step, r, err)
				}
				want := m.reserve(r, got.ID)
				if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
					t.Fatalf("step %d: Reserve(%+v holds %+v idem %+v)\n got %+v\nwant %+v", step, r.Record.Agent, r.Holds, r.Idempotency, got, want)
				}
			case 2:
				c := &store.Completion{ID: uint64(next() % (len(m.recs) + 2))}
				c.Outcome = []audit.Outcome{audit.Settled, audit.Released, audit.Unknown, audit.Replayed}[next()%4]
				if r := m.recs[c.ID]; r != nil {
					for range r.holds {
						c.Settled = append(c.Settled, int64(next()%10))
					}
				}
				err := s.Complete(ctx, c)
				want := m.complete(c)
				if !errors.Is(err, want) || (want == nil) != (err == nil) {
					t.Fatalf("step %d: Complete(%+v) = %v, want %v", step, c, err, want)
				}
			case 3:
				id, err := s.Append(ctx, &audit.Record{Agent: "refused"})
				if err != nil {
					t.Fatalf("step %d: Append: %v", step, err)
				}
				m.add(id, &modelRecord{outcome: audit.None})
			case 4:
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openFuzz(t, path)
				m.recover()
			}
			m.check(t, s, step)
		}
	})
}

var fuzzKeys = []string{"a", "b", "c"}

func openFuzz(t *testing.T, path string) *Store {
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.db.NoSync = true // durability is not what this test checks; speed is welcome
	return s
}

type modelRecord struct {
	outcome audit.Outcome
	holds   []audit.Hold
	replay  bool
}

type model struct {
	recs     map[uint64]*modelRecord
	counters map[string]store.Counter
	gone     map[string]int64 // settled by records since pruned
	index    map[string]struct {
		fp string
		id uint64
	}
}

func newModel() *model {
	return &model{recs: map[uint64]*modelRecord{}, counters: map[string]store.Counter{}, gone: map[string]int64{}, index: map[string]struct {
		fp string
		id uint64
	}{}}
}

func (m *model) add(id uint64, r *modelRecord) { m.recs[id] = r }

func (m *model) reserve(r *store.Reservation, id uint64) store.Admission {
	holds := r.Holds
	var retryOf uint64
	var takeover, replay bool
	if r.Idempotency != nil {
		if e, ok := m.index[r.Idempotency.Key]; ok {
			if e.fp != r.Idempotency.Fingerprint {
				return store.Admission{Result: store.KeyReused}
			}
			retryOf = e.id
			switch m.recs[e.id].outcome {
			case audit.Reserved:
				return store.Admission{Result: store.KeyInUse}
			case audit.Settled, audit.Replayed:
				replay, holds = true, nil
			case audit.Unknown:
				takeover, holds = true, m.recs[e.id].holds
			}
		}
	}
	work := map[string]store.Counter{}
	for k, c := range m.counters {
		work[k] = c
	}
	for i, h := range holds {
		c := work[h.Key]
		if takeover {
			c.Unknown -= h.Amount
		} else if h.Limit >= 0 && c.Total()+h.Amount > h.Limit {
			return store.Admission{Result: store.OverLimit, Hold: i, Used: m.counters[h.Key].Total()}
		}
		c.Pending += h.Amount
		work[h.Key] = c
	}
	m.counters = work
	if takeover {
		m.recs[retryOf].outcome = audit.Retried
	}
	var kept []audit.Hold
	for _, h := range holds {
		h.Settled = 0
		kept = append(kept, h)
	}
	m.recs[id] = &modelRecord{outcome: audit.Reserved, holds: kept, replay: replay}
	if r.Idempotency != nil && !replay {
		m.index[r.Idempotency.Key] = struct {
			fp string
			id uint64
		}{r.Idempotency.Fingerprint, id}
	}
	a := store.Admission{Result: store.Admitted, ID: id, RetryOf: retryOf, Holds: kept}
	if replay {
		a.Result = store.Replayed
	}
	return a
}

func (m *model) complete(c *store.Completion) error {
	r := m.recs[c.ID]
	switch {
	case r == nil:
		return store.ErrNotFound
	case r.outcome != audit.Reserved:
		return store.ErrNotReserved
	case c.Outcome == audit.Replayed && !r.replay:
		return ErrInvalid
	}
	outcome := c.Outcome
	if r.replay && outcome == audit.Settled {
		outcome = audit.Replayed
	}
	r.outcome = outcome
	for i := range r.holds {
		h := &r.holds[i]
		ctr := m.counters[h.Key]
		ctr.Pending -= h.Amount
		switch outcome {
		case audit.Settled, audit.Replayed:
			h.Settled = c.Settled[i]
			ctr.Settled += h.Settled
		case audit.Unknown:
			ctr.Unknown += h.Amount
		}
		m.counters[h.Key] = ctr
	}
	return nil
}

func (m *model) recover() {
	for _, r := range m.recs {
		if r.outcome != audit.Reserved {
			continue
		}
		r.outcome = audit.Unknown
		for _, h := range r.holds {
			c := m.counters[h.Key]
			c.Pending -= h.Amount
			c.Unknown += h.Amount
			m.counters[h.Key] = c
		}
	}
}

// prune removes every finished record, and the keys pointing at them.
func (m *model) prune() (records, keys int) {
	for id, r := range m.recs {
		if r.outcome == audit.Reserved || r.outcome == audit.Unknown {
			continue
		}
		if r.outcome == audit.Settled || r.outcome == audit.Replayed {
			for _, h := range r.holds {
				m.gone[h.Key] += h.Settled
			}
		}
		delete(m.recs, id)
		records++
	}
	for k, e := range m.index {
		if m.recs[e.id] == nil {
			delete(m.index, k)
			keys++
		}
	}
	return records, keys
}

func (m *model) check(t *testing.T, s *Store, step int) {
	t.Helper()
	ctx := context.Background()
	if rep, err := s.Verify(ctx); err != nil || rep.Records != len(m.recs) {
		t.Fatalf("step %d: Verify = %+v, %v; model has %d records", step, rep, err, len(m.recs))
	}
	fromRecords := map[string]store.Counter{}
	n := 0
	err := s.Query(ctx, audit.Query{}, func(r *audit.Record) error {
		n++
		want := m.recs[r.ID]
		if want == nil {
			return fmt.Errorf("record %d is not in the model", r.ID)
		}
		if r.Outcome != want.outcome || fmt.Sprint(r.Holds) != fmt.Sprint(want.holds) {
			return fmt.Errorf("record %d: %s %+v, model %s %+v", r.ID, r.Outcome, r.Holds, want.outcome, want.holds)
		}
		for _, h := range r.Holds {
			c := fromRecords[h.Key]
			switch r.Outcome {
			case audit.Settled, audit.Replayed:
				c.Settled += h.Settled
			case audit.Reserved:
				c.Pending += h.Amount
			case audit.Unknown:
				c.Unknown += h.Amount
			}
			fromRecords[h.Key] = c
		}
		return nil
	})
	if err != nil {
		t.Fatalf("step %d: %v", step, err)
	}
	if n != len(m.recs) {
		t.Fatalf("step %d: %d records, model has %d", step, n, len(m.recs))
	}
	var open, want []uint64
	if err := s.Outstanding(ctx, func(r *audit.Record) error { open = append(open, r.ID); return nil }); err != nil {
		t.Fatalf("step %d: Outstanding: %v", step, err)
	}
	for id, r := range m.recs {
		if r.outcome == audit.Reserved || r.outcome == audit.Unknown {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	if !slices.Equal(open, want) {
		t.Fatalf("step %d: Outstanding = %v, model %v", step, open, want)
	}
	for _, k := range fuzzKeys {
		c, err := s.Counter(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		want := fromRecords[k]
		want.Settled += m.gone[k]
		if c != m.counters[k] || c != want {
			t.Fatalf("step %d: counter %q = %+v, model %+v, records (and pruned records) say %+v", step, k, c, m.counters[k], want)
		}
	}
}
