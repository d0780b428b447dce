package storetest

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/store"
)

// Reserve: what it admits and refuses, and that a refusal writes nothing.

func testReserveAdmits(t *testing.T, s store.Store) {
	holds := []audit.Hold{hold("day:USD", 100_000_000, 5_000_000), {Key: "day:calls", Unit: "units", Limit: 10, Amount: 1}}
	rec := call(0)
	a := admit(t, s, &store.Reservation{Record: rec, Holds: holds})
	if !holdsEqual(a.Holds, holds) {
		t.Errorf("Admission.Holds = %+v, want %+v", a.Holds, holds)
	}
	if a.RetryOf != 0 {
		t.Errorf("Admission.RetryOf = %d, want 0", a.RetryOf)
	}
	wantCounter(t, s, "day:USD", store.Counter{Pending: 5_000_000})
	wantCounter(t, s, "day:calls", store.Counter{Pending: 1})
	wantCounter(t, s, "never:used", store.Counter{})

	got := record(t, s, a.ID)
	want := rec
	want.ID = a.ID
	want.Outcome = audit.Reserved
	want.Holds = holds
	checkRecord(t, got, &want)

	b := admit(t, s, &store.Reservation{Record: call(1), Holds: holds})
	if b.ID <= a.ID {
		t.Errorf("second ID %d, first %d: IDs must grow", b.ID, a.ID)
	}
	wantCounter(t, s, "day:USD", store.Counter{Pending: 10_000_000})
}

// checkRecord compares every field the store must keep. PrevHash is the
// store's own: it must be set.
func checkRecord(t *testing.T, got, want *audit.Record) {
	t.Helper()
	g, w := *got, *want
	if g.PrevHash == "" {
		t.Errorf("record %d read back without PrevHash", g.ID)
	}
	g.PrevHash, w.PrevHash = "", ""
	if !g.Time.Equal(w.Time) {
		t.Errorf("Time = %v, want %v", g.Time, w.Time)
	}
	g.Time, w.Time = time.Time{}, time.Time{}
	if !holdsEqual(g.Holds, w.Holds) {
		t.Errorf("Holds = %+v, want %+v", g.Holds, w.Holds)
	}
	g.Holds, w.Holds = nil, nil
	if len(g.Params) != len(w.Params) {
		t.Errorf("Params = %v, want %v", g.Params, w.Params)
	}
	for k, v := range w.Params {
		if g.Params[k] != v {
			t.Errorf("Params[%q] = %q, want %q", k, g.Params[k], v)
		}
	}
	g.Params, w.Params = nil, nil
	for _, a := range []*money.Amount{&g.Amount, &g.Reserved, &g.Settled, &w.Amount, &w.Reserved, &w.Settled} {
		if a.Micros == 0 {
			a.Currency = "" // a zero amount's currency is not kept
		}
	}
	if fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", w) {
		t.Errorf("record\n got %+v\nwant %+v", g, w)
	}
}

func testReserveDoesNotModifyArgument(t *testing.T, s store.Store) {
	r := &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("k", 10, 1)}}
	before := fmt.Sprintf("%+v %+v", r.Record, r.Holds)
	a := admit(t, s, r)
	if after := fmt.Sprintf("%+v %+v", r.Record, r.Holds); after != before {
		t.Errorf("Reserve modified its argument:\n was %s\n now %s", before, after)
	}
	// Changing the caller's values afterwards changes nothing stored.
	r.Holds[0].Amount = 7
	r.Record.Params["amount"] = "999"
	got := record(t, s, a.ID)
	if got.Holds[0].Amount != 1 || got.Params["amount"] != "500" {
		t.Errorf("stored record follows the caller's later changes: %+v", got)
	}
	a.Holds[0].Amount = 9
	if again := record(t, s, a.ID); again.Holds[0].Amount != 1 {
		t.Errorf("Admission.Holds aliases the stored record")
	}
}

func testExactBoundary(t *testing.T, s store.Store) {
	const limit = 10
	// Bring the counter to 9: 4 settled, 3 pending, 2 unknown.
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("k", limit, 4)}})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{4}})
	admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("k", limit, 3)}})
	u := admit(t, s, &store.Reservation{Record: call(2), Holds: []audit.Hold{hold("k", limit, 2)}})
	complete(t, s, &store.Completion{ID: u.ID, Outcome: audit.Unknown})
	wantCounter(t, s, "k", store.Counter{Settled: 4, Pending: 3, Unknown: 2})

	// 9 + 1 = 10 fits a limit of 10.
	admit(t, s, &store.Reservation{Record: call(3), Holds: []audit.Hold{hold("other", -1, 1), hold("k", limit, 1)}})
	wantCounter(t, s, "k", store.Counter{Settled: 4, Pending: 4, Unknown: 2})

	// 10 + 1 does not.
	before := snap(t, s, "k", "other")
	got := reserve(t, s, &store.Reservation{Record: call(4), Holds: []audit.Hold{hold("other", -1, 1), hold("k", limit, 1)}})
	if got.Result != store.OverLimit || got.Hold != 1 || got.Used != 10 || got.ID != 0 {
		t.Fatalf("Reserve = %+v, want OverLimit on hold 1 with Used 10 and no ID", got)
	}
	before.same(t, s, "after OverLimit")

	// A hold of zero still fits at the limit.
	admit(t, s, &store.Reservation{Record: call(5), Holds: []audit.Hold{hold("k", limit, 0)}})
}

func testFailingHoldWritesNothing(t *testing.T, s store.Store) {
	admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("b", 100, 95)}})
	before := snap(t, s, "a", "b", "c")
	got := reserve(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{
		hold("a", 100, 10), hold("b", 100, 10), hold("c", 100, 10),
	}})
	if got.Result != store.OverLimit || got.Hold != 1 || got.Used != 95 {
		t.Fatalf("Reserve = %+v, want OverLimit on hold 1 with Used 95", got)
	}
	before.same(t, s, "after OverLimit on the second hold")
	wantCounter(t, s, "a", store.Counter{})
}

func testHoldsOnOneKeyCountTogether(t *testing.T, s store.Store) {
	got := reserve(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("k", 10, 6), hold("k", 10, 6)}})
	if got.Result != store.OverLimit || got.Hold != 1 || got.Used != 0 {
		t.Fatalf("Reserve = %+v, want OverLimit on hold 1 with Used 0", got)
	}
	wantCounter(t, s, "k", store.Counter{})
	admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("k", 10, 5), hold("k", 10, 5)}})
	wantCounter(t, s, "k", store.Counter{Pending: 10})
}

func testNoLimit(t *testing.T, s store.Store) {
	for i := 0; i < 3; i++ {
		admit(t, s, &store.Reservation{Record: call(i), Holds: []audit.Hold{hold("k", -1, 1<<60)}})
	}
	wantCounter(t, s, "k", store.Counter{Pending: 3 << 60})
	// A reservation with no holds is admitted and counts nothing.
	a := admit(t, s, &store.Reservation{Record: call(9)})
	if len(a.Holds) != 0 {
		t.Errorf("Admission.Holds = %+v, want none", a.Holds)
	}
}

func testOverflow(t *testing.T, s store.Store) {
	admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("k", -1, math.MaxInt64-1)}})
	before := snap(t, s, "k")
	if a, err := s.Reserve(ctx, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("k", -1, 5)}}); err == nil {
		t.Fatalf("Reserve past MaxInt64 without a limit = %+v, want an error", a)
	}
	before.same(t, s, "after overflow")
	// With a limit, an amount that cannot fit is simply over the limit.
	got := reserve(t, s, &store.Reservation{Record: call(2), Holds: []audit.Hold{hold("k", math.MaxInt64, 5)}})
	if got.Result != store.OverLimit || got.Used != math.MaxInt64-1 {
		t.Fatalf("Reserve = %+v, want OverLimit with Used MaxInt64-1", got)
	}
	before.same(t, s, "after OverLimit at MaxInt64")
}

func testInvalidHolds(t *testing.T, s store.Store) {
	before := snap(t, s, "k")
	for name, r := range map[string]*store.Reservation{
		"negative amount":          {Record: call(0), Holds: []audit.Hold{hold("k", 100, -5)}},
		"no key":                   {Record: call(0), Holds: []audit.Hold{hold("", 100, 5)}},
		"no fingerprint":           {Record: call(0), Holds: []audit.Hold{hold("k", 100, 5)}, Idempotency: &store.Idempotency{Key: "i"}},
		"no key, with fingerprint": {Record: call(0), Idempotency: &store.Idempotency{Fingerprint: "f"}},
	} {
		if a, err := s.Reserve(ctx, r); err == nil {
			t.Errorf("%s: Reserve = %+v, want an error", name, a)
		}
	}
	if a, err := s.Reserve(ctx, nil); err == nil {
		t.Errorf("Reserve(nil) = %+v, want an error", a)
	}
	before.same(t, s, "after invalid reservations")
}

func testRaceOneLimit(t *testing.T, s store.Store) {
	const (
		goroutines = 200
		limit      = 1000
		amount     = 7
		want       = limit / amount // 142
	)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		admitted []uint64
		results  = map[store.Result]int{}
		errs     []error
	)
	start := make(chan struct{})
	for i := 0; i < goroutines; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			a, err := s.Reserve(ctx, &store.Reservation{Record: call(i), Holds: []audit.Hold{hold("race", limit, amount)}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			results[a.Result]++
			if a.Result == store.Admitted {
				admitted = append(admitted, a.ID)
			} else if a.Result == store.OverLimit && (a.Used+amount <= limit || a.Used > limit) {
				errs = append(errs, fmt.Errorf("OverLimit with Used %d", a.Used))
			}
		}(i)
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	if len(admitted) != want || results[store.OverLimit] != goroutines-want {
		t.Fatalf("results %v, want %d admitted and %d over the limit", results, want, goroutines-want)
	}
	wantCounter(t, s, "race", store.Counter{Pending: want * amount})
	sort.Slice(admitted, func(i, j int) bool { return admitted[i] < admitted[j] })
	for i := 1; i < len(admitted); i++ {
		if admitted[i] == admitted[i-1] {
			t.Fatalf("two admissions got ID %d", admitted[i])
		}
	}
	if n := count(t, s); n != want {
		t.Fatalf("%d records, want %d", n, want)
	}
}
