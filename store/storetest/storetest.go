// Package storetest is the conformance suite every store.Store runs, so that
// the embedded bbolt store and a shared database store keep exactly the same
// promises about money.
//
// A backend's test calls Run with a function that opens a new, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := bolt.Open(filepath.Join(t.TempDir(), "keybrake.db"), nil)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite checks behaviour only through the store.Store interface and
// the sentinel errors of package store. Besides store.Store's documented
// contract it requires what Keybrake's transport relies on and the
// interface leaves open:
//   - Reserve and Append do not modify their argument; IDs grow with each
//     write;
//   - a hold with a negative amount, a Complete with an outcome other than
//     Settled, Released, Unknown or (for a replay) Replayed, a Complete
//     with more settled entries than holds, an Append of a record with
//     holds or Outcome Reserved, and changing a fact once set are errors
//     that write nothing;
//   - arithmetic that would overflow a counter is an error, never a wrap;
//   - a retry that reserves afresh after a Released call, or takes over an
//     Unknown one, or replays a Settled one has RetryOf set to that call;
//     a replayed record is completed as audit.Replayed;
//   - Query returns records oldest first by Time, then by ID;
//   - Close a second time returns store.ErrClosed;
//   - the audit chain grows by exactly one journal entry per record a
//     write creates or changes (two for a takeover) and not at all for a
//     refusal, and a record written alone has PrevHash equal to the
//     VerifyReport.HeadHash from just before;
//   - Verify and Prune honour a cancelled context, and return
//     store.ErrClosed after Close;
//   - Prune with nothing to remove changes nothing.
//
// A backend whose data outlives the store (a file, a database) also runs
// RunRestart, with a function that opens the same data again:
//
//	func TestConformanceRestart(t *testing.T) {
//		storetest.RunRestart(t, func(t *testing.T) (store.Store, storetest.Reopen) {
//			path := filepath.Join(t.TempDir(), "keybrake.db")
//			return open(t, path), func(t *testing.T) store.Store { return open(t, path) }
//		})
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// Run runs the conformance suite. open returns a new, empty store each
// call; Run closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	h := func(test func(t *testing.T, s store.Store)) func(t *testing.T) {
		return func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
					t.Errorf("Close: %v", err)
				}
			})
			test(t, s)
		}
	}
	t.Run("ReserveAdmits", h(testReserveAdmits))
	t.Run("ReserveDoesNotModifyArgument", h(testReserveDoesNotModifyArgument))
	t.Run("ExactBoundary", h(testExactBoundary))
	t.Run("FailingHoldWritesNothing", h(testFailingHoldWritesNothing))
	t.Run("HoldsOnOneKeyCountTogether", h(testHoldsOnOneKeyCountTogether))
	t.Run("NoLimit", h(testNoLimit))
	t.Run("Overflow", h(testOverflow))
	t.Run("InvalidHolds", h(testInvalidHolds))
	t.Run("RaceOneLimit", h(testRaceOneLimit))
	t.Run("CompleteSettled", h(testCompleteSettled))
	t.Run("CompleteReleased", h(testCompleteReleased))
	t.Run("CompleteRefused", h(testCompleteRefused))
	t.Run("CompleteUnknown", h(testCompleteUnknown))
	t.Run("CompleteInvalid", h(testCompleteInvalid))
	t.Run("CompleteNotFound", h(testCompleteNotFound))
	t.Run("CompleteTwice", h(testCompleteTwice))
	t.Run("ResettleEstimate", h(testResettleEstimate))
	t.Run("IdempotencyKeyReused", h(testKeyReused))
	t.Run("IdempotencyKeyInUse", h(testKeyInUse))
	t.Run("IdempotencyReplayAfterSettled", h(testReplayAfterSettled))
	t.Run("IdempotencyRetryAfterReleased", h(testRetryAfterReleased))
	t.Run("IdempotencyTakeOverUnknown", h(testTakeOverUnknown))
	t.Run("IdempotencyKeysAreIndependent", h(testKeysAreIndependent))
	t.Run("IdempotencyForgottenKeySettled", h(testForgottenKeySettled))
	t.Run("IdempotencyForgottenKeyOtherFingerprint", h(testForgottenKeyOtherFingerprint))
	t.Run("IdempotencyForgottenKeyUnknown", h(testForgottenKeyUnknown))
	t.Run("AppendAndQuery", h(testAppendAndQuery))
	t.Run("QueryOrderAndLimit", h(testQueryOrderAndLimit))
	t.Run("QueryStopsAtError", h(testQueryStopsAtError))
	t.Run("QueryReturnsCopies", h(testQueryReturnsCopies))
	t.Run("QueryMany", h(testQueryMany))
	t.Run("AppendRefusesHolds", h(testAppendRefusesHolds))
	t.Run("Facts", h(testFacts))
	t.Run("CancelledContext", h(testCancelledContext))
	t.Run("AfterClose", h(testAfterClose))
	t.Run("ChainEmpty", h(testChainEmpty))
	t.Run("ChainAfterEveryOperation", h(testChainAfterEveryOperation))
	t.Run("ChainUnderConcurrency", h(testChainUnderConcurrency))
	t.Run("PruneNothing", h(testPruneNothing))
	t.Run("Prune", h(testPrune))
	t.Run("PruneKeepsYoungKeys", h(testPruneKeepsYoungKeys))
	t.Run("PruneCancelled", h(testPruneCancelled))
	t.Run("ChainAfterClose", h(testChainAfterClose))
	t.Run("Outstanding", h(testOutstanding))
	t.Run("OutstandingMany", h(testOutstandingMany))
	t.Run("CountersByPrefix", h(testCountersByPrefix))
	t.Run("QueryAfter", h(testQueryAfter))
	t.Run("QueryAgentLongLog", h(testQueryAgentLongLog))
	t.Run("QueryRunAndPrincipal", h(testQueryRunAndPrincipal))
	runWindows(t, h)
	runApprovals(t, h)
}

var (
	ctx = context.Background()
	t0  = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)
)

func usd(cents int64) money.Amount {
	a, err := money.FromMinor(cents, "USD")
	if err != nil {
		panic(err)
	}
	return a
}

// call returns the audit record of an allowed Stripe call at t0+i seconds.
func call(i int) audit.Record {
	return audit.Record{
		Time:           t0.Add(time.Duration(i) * time.Second),
		Agent:          "refund-bot",
		Vendor:         "stripe",
		Method:         "POST",
		Host:           "api.stripe.com",
		Path:           "/v1/refunds",
		Operation:      "refunds.create",
		Decision:       policy.Allowed,
		Rule:           "agents.refund-bot.stripe.allow[0]",
		Reason:         "allowed by rule",
		Params:         map[string]string{"charge": "ch_1", "amount": "500"},
		IdempotencyKey: "",
		KeyID:          "kid_1234",
		Customer:       "cus_A",
		Amount:         usd(500),
		Reserved:       usd(500),
		PolicyHash:     "sha256:abc",
	}
}

func hold(key string, limit, amount int64) audit.Hold {
	return audit.Hold{Key: key, Unit: "USD", Limit: limit, Amount: amount}
}

func reserve(t *testing.T, s store.Store, r *store.Reservation) store.Admission {
	t.Helper()
	a, err := s.Reserve(ctx, r)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	return a
}

func admit(t *testing.T, s store.Store, r *store.Reservation) store.Admission {
	t.Helper()
	a := reserve(t, s, r)
	if a.Result != store.Admitted {
		t.Fatalf("Reserve = %+v, want Admitted", a)
	}
	if a.ID == 0 {
		t.Fatalf("Reserve admitted record 0")
	}
	return a
}

func complete(t *testing.T, s store.Store, c *store.Completion) {
	t.Helper()
	if err := s.Complete(ctx, c); err != nil {
		t.Fatalf("Complete(%+v): %v", c, err)
	}
}

func counter(t *testing.T, s store.Store, key string) store.Counter {
	t.Helper()
	c, err := s.Counter(ctx, key)
	if err != nil {
		t.Fatalf("Counter(%q): %v", key, err)
	}
	return c
}

func wantCounter(t *testing.T, s store.Store, key string, want store.Counter) {
	t.Helper()
	if got := counter(t, s, key); got != want {
		t.Fatalf("Counter(%q) = %+v, want %+v", key, got, want)
	}
}

func all(t *testing.T, s store.Store, q audit.Query) []*audit.Record {
	t.Helper()
	var out []*audit.Record
	if err := s.Query(ctx, q, func(r *audit.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("Query(%+v): %v", q, err)
	}
	return out
}

func record(t *testing.T, s store.Store, id uint64) *audit.Record {
	t.Helper()
	var found *audit.Record
	for _, r := range all(t, s, audit.Query{}) {
		if r.ID == id {
			if found != nil {
				t.Fatalf("two records with ID %d", id)
			}
			found = r
		}
	}
	if found == nil {
		t.Fatalf("no record %d", id)
	}
	return found
}

func count(t *testing.T, s store.Store) int {
	t.Helper()
	return len(all(t, s, audit.Query{}))
}

// snapshot is everything a refused operation must leave as it was.
type snapshot struct {
	records  []string
	counters map[string]store.Counter
}

func snap(t *testing.T, s store.Store, keys ...string) snapshot {
	t.Helper()
	sn := snapshot{counters: make(map[string]store.Counter)}
	for _, r := range all(t, s, audit.Query{}) {
		sn.records = append(sn.records, fmt.Sprintf("%+v", *r))
	}
	for _, k := range keys {
		sn.counters[k] = counter(t, s, k)
	}
	return sn
}

func (sn snapshot) same(t *testing.T, s store.Store, what string) {
	t.Helper()
	keys := make([]string, 0, len(sn.counters))
	for k := range sn.counters {
		keys = append(keys, k)
	}
	now := snap(t, s, keys...)
	if len(now.records) != len(sn.records) {
		t.Fatalf("%s: %d records, had %d", what, len(now.records), len(sn.records))
	}
	for i := range now.records {
		if now.records[i] != sn.records[i] {
			t.Fatalf("%s: record changed:\n was %s\n now %s", what, sn.records[i], now.records[i])
		}
	}
	for k, c := range sn.counters {
		if now.counters[k] != c {
			t.Fatalf("%s: counter %q = %+v, was %+v", what, k, now.counters[k], c)
		}
	}
}

func holdsEqual(a, b []audit.Hold) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

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

func testCompleteSettled(t *testing.T, s store.Store) {
	holds := []audit.Hold{hold("usd", 100_000_000, 5_000_000), {Key: "calls", Unit: "units", Limit: 10, Amount: 1}, hold("acct", -1, 5_000_000)}
	rec := call(0)
	rec.Reason = "reserved"
	a := admit(t, s, &store.Reservation{Record: rec, Holds: holds})
	c := &store.Completion{
		ID: a.ID, Outcome: audit.Settled,
		Settled:   []int64{3_000_000, 1}, // the third is missing: it counts zero
		Moved:     usd(300),
		Status:    200,
		RequestID: "req_123",
		Duration:  1500 * time.Millisecond,
		Reason:    "settled from response",
	}
	complete(t, s, c)
	wantCounter(t, s, "usd", store.Counter{Settled: 3_000_000})
	wantCounter(t, s, "calls", store.Counter{Settled: 1})
	wantCounter(t, s, "acct", store.Counter{})

	want := rec
	want.ID = a.ID
	want.Outcome = audit.Settled
	want.Holds = []audit.Hold{holds[0], holds[1], holds[2]}
	want.Holds[0].Settled = 3_000_000
	want.Holds[1].Settled = 1
	want.Settled = usd(300)
	want.Status = 200
	want.RequestID = "req_123"
	want.Duration = 1500 * time.Millisecond
	want.Reason = "settled from response"
	checkRecord(t, record(t, s, a.ID), &want)

	// Settling more than was held counts what moved.
	b := admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100_000_000, 1_000_000)}})
	complete(t, s, &store.Completion{ID: b.ID, Outcome: audit.Settled, Settled: []int64{2_000_000}})
	wantCounter(t, s, "usd", store.Counter{Settled: 5_000_000})
	// An empty Reason keeps the record's.
	if r := record(t, s, b.ID); r.Reason != call(1).Reason {
		t.Errorf("Reason = %q, want it kept as %q", r.Reason, call(1).Reason)
	}
}

func testResettleEstimate(t *testing.T, s store.Store) {
	ctx := context.Background()
	holds := []audit.Hold{hold("usd", 100_000, 7_900), {Key: "sms", Unit: "units", Limit: 10, Amount: 1}}
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: holds})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{7_900, 1},
		Moved: money.Amount{Micros: 7_900, Currency: "USD"}, Estimated: true, Object: "/Messages/SM1.json"})
	r := record(t, s, a.ID)
	if !r.Estimated || r.Object != "/Messages/SM1.json" {
		t.Fatalf("estimated settlement: %+v", r)
	}
	wantCounter(t, s, "usd", store.Counter{Settled: 7_900})

	// The vendor priced it higher than the estimate: the counter follows.
	real := money.Amount{Micros: 15_800, Currency: "USD"}
	if err := s.Resettle(ctx, a.ID, []int64{15_800, 1}, real); err != nil {
		t.Fatal(err)
	}
	wantCounter(t, s, "usd", store.Counter{Settled: 15_800})
	wantCounter(t, s, "sms", store.Counter{Settled: 1})
	r = record(t, s, a.ID)
	if r.Estimated || r.Settled != real || r.Holds[0].Settled != 15_800 {
		t.Fatalf("resettled record: %+v", r)
	}
	// Once reconciled, never again; nor a record that was no estimate.
	if err := s.Resettle(ctx, a.ID, []int64{1}, real); !errors.Is(err, store.ErrNotEstimate) {
		t.Fatalf("second Resettle = %v, want ErrNotEstimate", err)
	}
	b := admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100_000, 100)}})
	if err := s.Resettle(ctx, b.ID, []int64{1}, real); !errors.Is(err, store.ErrNotEstimate) {
		t.Fatalf("Resettle of a reserved record = %v, want ErrNotEstimate", err)
	}
	if err := s.Resettle(ctx, 999_999, nil, real); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Resettle of no record = %v, want ErrNotFound", err)
	}
	wantCounter(t, s, "usd", store.Counter{Settled: 15_800, Pending: 100})
}

func testCompleteReleased(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60), hold("calls", 10, 1)}})
	b := admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 30)}})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Released, Settled: []int64{60, 1}, Status: 400, RequestID: "req_4", Reason: "invalid_request_error"})
	wantCounter(t, s, "usd", store.Counter{Pending: 30})
	wantCounter(t, s, "calls", store.Counter{})
	r := record(t, s, a.ID)
	if r.Outcome != audit.Released || r.Status != 400 || r.RequestID != "req_4" || r.Reason != "invalid_request_error" {
		t.Errorf("record = %+v", r)
	}
	for i, h := range r.Holds {
		if h.Settled != 0 {
			t.Errorf("released hold %d settled %d, want 0", i, h.Settled)
		}
	}
	// The released money is available again.
	admit(t, s, &store.Reservation{Record: call(2), Holds: []audit.Hold{hold("usd", 100, 70)}})
	if r := record(t, s, b.ID); r.Outcome != audit.Reserved {
		t.Errorf("other record became %s", r.Outcome)
	}
}

// testCompleteRefused: a call refused after its reservation (revoked while
// it waited) is one record, the refusal, and its money is released.
func testCompleteRefused(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60)}})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Released, Status: 401, Reason: "agent a is revoked",
		Refused: &store.Refusal{Decision: policy.Revoked, Code: "keybrake_revoked", Rule: "agents.a.revoked", Policy: "0123456789abcdef"}})
	wantCounter(t, s, "usd", store.Counter{})
	r := record(t, s, a.ID)
	if r.Outcome != audit.Released || r.Decision != policy.Revoked || r.Code != "keybrake_revoked" ||
		r.Rule != "agents.a.revoked" || r.Status != 401 || r.Reason != "agent a is revoked" || r.PolicyHash != "0123456789abcdef" {
		t.Errorf("record = %+v", r)
	}
}

func testCompleteUnknown(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60)}})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Unknown, Status: 502, Duration: time.Second, Reason: "timeout after sending"})
	wantCounter(t, s, "usd", store.Counter{Unknown: 60})
	r := record(t, s, a.ID)
	if r.Outcome != audit.Unknown || r.Status != 502 || r.Duration != time.Second || r.Reason != "timeout after sending" {
		t.Errorf("record = %+v", r)
	}
	// Unknown money still counts against the limit.
	got := reserve(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 41)}})
	if got.Result != store.OverLimit || got.Used != 60 {
		t.Fatalf("Reserve = %+v, want OverLimit with Used 60", got)
	}
}

func testCompleteInvalid(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60)}})
	before := snap(t, s, "usd")
	for name, c := range map[string]*store.Completion{
		"outcome reserved":     {ID: a.ID, Outcome: audit.Reserved},
		"outcome none":         {ID: a.ID, Outcome: audit.None},
		"outcome retried":      {ID: a.ID, Outcome: audit.Retried},
		"outcome empty":        {ID: a.ID},
		"replayed with holds":  {ID: a.ID, Outcome: audit.Replayed},
		"too many settled":     {ID: a.ID, Outcome: audit.Settled, Settled: []int64{1, 2}},
		"negative settled":     {ID: a.ID, Outcome: audit.Settled, Settled: []int64{-1}},
		"refused but settled":  {ID: a.ID, Outcome: audit.Settled, Refused: &store.Refusal{Decision: policy.Revoked}},
		"refused as allowed":   {ID: a.ID, Outcome: audit.Released, Refused: &store.Refusal{Decision: policy.Allowed}},
		"refused, no decision": {ID: a.ID, Outcome: audit.Released, Refused: &store.Refusal{}},
	} {
		if err := s.Complete(ctx, c); err == nil {
			t.Errorf("%s: Complete succeeded, want an error", name)
		}
	}
	if err := s.Complete(ctx, nil); err == nil {
		t.Errorf("Complete(nil) succeeded")
	}
	before.same(t, s, "after invalid completions")
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{60}})
	wantCounter(t, s, "usd", store.Counter{Settled: 60})
}

func testCompleteNotFound(t *testing.T, s store.Store) {
	for _, id := range []uint64{0, 1, 12345} {
		err := s.Complete(ctx, &store.Completion{ID: id, Outcome: audit.Settled})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Complete(%d) = %v, want ErrNotFound", id, err)
		}
	}
	if n := count(t, s); n != 0 {
		t.Errorf("%d records after failed completions", n)
	}
}

func testCompleteTwice(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60)}})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{50}})
	before := snap(t, s, "usd")
	for _, o := range []audit.Outcome{audit.Settled, audit.Released, audit.Unknown} {
		if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: o, Settled: []int64{60}}); !errors.Is(err, store.ErrNotReserved) {
			t.Errorf("second Complete %s = %v, want ErrNotReserved", o, err)
		}
	}
	id, err := s.Append(ctx, refused(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: id, Outcome: audit.Released}); !errors.Is(err, store.ErrNotReserved) {
		t.Errorf("Complete of an appended record = %v, want ErrNotReserved", err)
	}
	before.records = append(before.records, fmt.Sprintf("%+v", *record(t, s, id)))
	before.same(t, s, "after completing twice")
}

func idem(key, fp string) *store.Idempotency { return &store.Idempotency{Key: key, Fingerprint: fp} }

func testKeyReused(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("agent/stripe/k1", "fp1")})
	for _, settle := range []bool{false, true} {
		if settle {
			complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{60}})
		}
		before := snap(t, s, "usd")
		got := reserve(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 1)}, Idempotency: idem("agent/stripe/k1", "fp2")})
		if got.Result != store.KeyReused || got.ID != 0 {
			t.Fatalf("Reserve with another fingerprint = %+v, want KeyReused", got)
		}
		before.same(t, s, "after KeyReused")
	}
}

func testKeyInUse(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	before := snap(t, s, "usd")
	got := reserve(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 10)}, Idempotency: idem("k", "fp")})
	if got.Result != store.KeyInUse || got.ID != 0 {
		t.Fatalf("Reserve while the first is in flight = %+v, want KeyInUse", got)
	}
	before.same(t, s, "after KeyInUse")
	if r := record(t, s, a.ID); r.Outcome != audit.Reserved {
		t.Errorf("first record became %s", r.Outcome)
	}
}

func testReplayAfterSettled(t *testing.T, s store.Store) {
	holds := []audit.Hold{hold("usd", 100, 60)}
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: holds, Idempotency: idem("k", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{60}, Moved: usd(60)})
	for i := 1; i <= 2; i++ {
		got := reserve(t, s, &store.Reservation{Record: call(i), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
		if got.Result != store.Replayed || got.ID == 0 || got.ID == a.ID || got.RetryOf != a.ID || len(got.Holds) != 0 {
			t.Fatalf("retry %d = %+v, want Replayed of %d with no holds", i, got, a.ID)
		}
		wantCounter(t, s, "usd", store.Counter{Settled: 60})
		r := record(t, s, got.ID)
		if r.Outcome != audit.Reserved || len(r.Holds) != 0 || r.RetryOf != a.ID || r.Agent != "refund-bot" {
			t.Fatalf("replay record = %+v", r)
		}
		complete(t, s, &store.Completion{ID: got.ID, Outcome: audit.Settled, Settled: nil, Moved: usd(60), Status: 200})
		if r := record(t, s, got.ID); r.Outcome != audit.Replayed || r.Status != 200 {
			t.Errorf("completed replay record = %+v, want Outcome replayed", r)
		}
		wantCounter(t, s, "usd", store.Counter{Settled: 60})
	}
	if r := record(t, s, a.ID); r.Outcome != audit.Settled {
		t.Errorf("original record became %s", r.Outcome)
	}
	// A replay still in flight does not block another replay: the key
	// still points at the settled call.
	x := reserve(t, s, &store.Reservation{Record: call(5), Idempotency: idem("k", "fp")})
	y := reserve(t, s, &store.Reservation{Record: call(6), Idempotency: idem("k", "fp")})
	if x.Result != store.Replayed || y.Result != store.Replayed || x.ID == y.ID {
		t.Fatalf("concurrent replays = %+v, %+v", x, y)
	}
	// A replay may be completed as Replayed directly.
	complete(t, s, &store.Completion{ID: x.ID, Outcome: audit.Replayed, Status: 200})
	if r := record(t, s, x.ID); r.Outcome != audit.Replayed {
		t.Errorf("record = %+v, want replayed", r)
	}
	// Another fingerprint is still refused.
	if got := reserve(t, s, &store.Reservation{Record: call(7), Idempotency: idem("k", "other")}); got.Result != store.KeyReused {
		t.Errorf("other fingerprint = %+v, want KeyReused", got)
	}
}

func testRetryAfterReleased(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Released, Status: 429})
	// Another call takes most of the limit meanwhile: the retry is checked
	// again and refused.
	other := admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 50)}})
	before := snap(t, s, "usd")
	got := reserve(t, s, &store.Reservation{Record: call(2), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	if got.Result != store.OverLimit || got.Used != 50 {
		t.Fatalf("retry = %+v, want OverLimit with Used 50", got)
	}
	before.same(t, s, "after refused retry")
	complete(t, s, &store.Completion{ID: other.ID, Outcome: audit.Released})

	b := reserve(t, s, &store.Reservation{Record: call(3), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	if b.Result != store.Admitted || b.RetryOf != a.ID || !holdsEqual(b.Holds, []audit.Hold{hold("usd", 100, 60)}) {
		t.Fatalf("retry = %+v, want Admitted, RetryOf %d, the caller's holds", b, a.ID)
	}
	wantCounter(t, s, "usd", store.Counter{Pending: 60})
	if r := record(t, s, b.ID); r.RetryOf != a.ID || r.Outcome != audit.Reserved {
		t.Errorf("retry record = %+v", r)
	}
	if r := record(t, s, a.ID); r.Outcome != audit.Released {
		t.Errorf("released record became %s", r.Outcome)
	}
	// The key now points at the retry, which is in flight.
	if got := reserve(t, s, &store.Reservation{Record: call(4), Idempotency: idem("k", "fp")}); got.Result != store.KeyInUse {
		t.Fatalf("third attempt = %+v, want KeyInUse", got)
	}
	complete(t, s, &store.Completion{ID: b.ID, Outcome: audit.Settled, Settled: []int64{60}})
	if got := reserve(t, s, &store.Reservation{Record: call(5), Idempotency: idem("k", "fp")}); got.Result != store.Replayed || got.RetryOf != b.ID {
		t.Fatalf("attempt after the retry settled = %+v, want Replayed of %d", got, b.ID)
	}
}

func testTakeOverUnknown(t *testing.T, s store.Store) {
	first := []audit.Hold{hold("usd", 100, 60), {Key: "calls", Unit: "units", Limit: 5, Amount: 1}}
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: first, Idempotency: idem("k", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Unknown, Status: 500})
	// Fill the rest of the limit: a fresh reservation of 60 would not fit,
	// a takeover does, because its money is already counted.
	admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 40)}})
	wantCounter(t, s, "usd", store.Counter{Pending: 40, Unknown: 60})

	// The retry asks for other holds (say the policy changed); it takes
	// over the first call's holds exactly.
	b := reserve(t, s, &store.Reservation{Record: call(2), Holds: []audit.Hold{hold("usd", 100, 99), hold("new", 1, 1)}, Idempotency: idem("k", "fp")})
	if b.Result != store.Admitted || b.RetryOf != a.ID || !holdsEqual(b.Holds, first) {
		t.Fatalf("retry = %+v, want Admitted, RetryOf %d, holds %+v", b, a.ID, first)
	}
	wantCounter(t, s, "usd", store.Counter{Pending: 100})
	wantCounter(t, s, "calls", store.Counter{Pending: 1})
	wantCounter(t, s, "new", store.Counter{})
	if r := record(t, s, a.ID); r.Outcome != audit.Retried {
		t.Errorf("earlier record is %s, want retried", r.Outcome)
	}
	if r := record(t, s, b.ID); r.Outcome != audit.Reserved || r.RetryOf != a.ID || !holdsEqual(r.Holds, first) {
		t.Errorf("retry record = %+v", r)
	}
	// The key points at the retry now.
	if got := reserve(t, s, &store.Reservation{Record: call(3), Idempotency: idem("k", "fp")}); got.Result != store.KeyInUse {
		t.Fatalf("third attempt = %+v, want KeyInUse", got)
	}
	complete(t, s, &store.Completion{ID: b.ID, Outcome: audit.Settled, Settled: []int64{55, 1}})
	wantCounter(t, s, "usd", store.Counter{Settled: 55, Pending: 40})
	wantCounter(t, s, "calls", store.Counter{Settled: 1})
	// The earlier record can no longer be completed.
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled}); !errors.Is(err, store.ErrNotReserved) {
		t.Errorf("Complete of the retried record = %v, want ErrNotReserved", err)
	}

	// A takeover that ends Unknown again can be taken over again.
	c := admit(t, s, &store.Reservation{Record: call(4), Holds: []audit.Hold{hold("x", 10, 10)}, Idempotency: idem("k2", "fp")})
	complete(t, s, &store.Completion{ID: c.ID, Outcome: audit.Unknown})
	d := admit(t, s, &store.Reservation{Record: call(5), Idempotency: idem("k2", "fp")})
	complete(t, s, &store.Completion{ID: d.ID, Outcome: audit.Unknown})
	e := admit(t, s, &store.Reservation{Record: call(6), Idempotency: idem("k2", "fp")})
	if e.RetryOf != d.ID || !holdsEqual(e.Holds, []audit.Hold{hold("x", 10, 10)}) {
		t.Fatalf("second takeover = %+v", e)
	}
	wantCounter(t, s, "x", store.Counter{Pending: 10})
	complete(t, s, &store.Completion{ID: e.ID, Outcome: audit.Released})
	wantCounter(t, s, "x", store.Counter{})
}

func testKeysAreIndependent(t *testing.T, s store.Store) {
	admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 10)}, Idempotency: idem("a", "fp")})
	admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 10)}, Idempotency: idem("b", "fp")})
	admit(t, s, &store.Reservation{Record: call(2), Holds: []audit.Hold{hold("usd", 100, 10)}})
	admit(t, s, &store.Reservation{Record: call(3), Holds: []audit.Hold{hold("usd", 100, 10)}})
	wantCounter(t, s, "usd", store.Counter{Pending: 40})
}

func refused(i int) *audit.Record {
	r := call(i)
	r.Decision = policy.Capped
	r.Code = "keybrake_daily_cap"
	r.Reason = "daily cap reached"
	r.Status = 402
	r.Outcome = audit.None
	r.Reserved = money.Amount{}
	return &r
}

func testAppendAndQuery(t *testing.T, s store.Store) {
	type row struct {
		agent, vendor, customer string
		decision                policy.Decision
	}
	rows := []row{
		{"a1", "stripe", "cus_A", policy.Capped},
		{"a2", "stripe", "cus_B", policy.Blocked},
		{"a1", "twilio", "", policy.Revoked},
		{"a2", "resend", "cus_A", policy.Capped},
		{"a1", "stripe", "cus_B", policy.Scoped},
	}
	ids := make([]uint64, len(rows))
	for i, x := range rows {
		r := refused(i * 60)
		r.Agent, r.Vendor, r.Customer, r.Decision = x.agent, x.vendor, x.customer, x.decision
		before := fmt.Sprintf("%+v", *r)
		id, err := s.Append(ctx, r)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if fmt.Sprintf("%+v", *r) != before {
			t.Fatalf("Append modified its argument")
		}
		if i > 0 && id <= ids[i-1] {
			t.Fatalf("Append IDs %d then %d: must grow", ids[i-1], id)
		}
		ids[i] = id
		want := *r
		want.ID = id
		checkRecord(t, record(t, s, id), &want)
	}
	// An allowed call, reserved, shows up too.
	a := admit(t, s, &store.Reservation{Record: call(5 * 60), Holds: []audit.Hold{hold("usd", -1, 1)}})

	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	tests := []struct {
		name string
		q    audit.Query
		want []uint64
	}{
		{"all", audit.Query{}, []uint64{ids[0], ids[1], ids[2], ids[3], ids[4], a.ID}},
		{"since exact", audit.Query{Since: at(2)}, []uint64{ids[2], ids[3], ids[4], a.ID}},
		{"since between", audit.Query{Since: at(2).Add(time.Nanosecond)}, []uint64{ids[3], ids[4], a.ID}},
		{"until exact is exclusive", audit.Query{Until: at(2)}, []uint64{ids[0], ids[1]}},
		{"until just after", audit.Query{Until: at(2).Add(time.Nanosecond)}, []uint64{ids[0], ids[1], ids[2]}},
		{"since and until", audit.Query{Since: at(1), Until: at(4)}, []uint64{ids[1], ids[2], ids[3]}},
		{"until before since", audit.Query{Since: at(4), Until: at(1)}, nil},
		{"since in another zone", audit.Query{Since: at(3).In(time.FixedZone("X", -7*3600))}, []uint64{ids[3], ids[4], a.ID}},
		{"after everything", audit.Query{Since: at(100)}, nil},
		{"agent", audit.Query{Agent: "a1"}, []uint64{ids[0], ids[2], ids[4]}},
		{"vendor", audit.Query{Vendor: "stripe"}, []uint64{ids[0], ids[1], ids[4], a.ID}},
		{"decision", audit.Query{Decision: policy.Capped}, []uint64{ids[0], ids[3]}},
		{"decision allowed", audit.Query{Decision: policy.Allowed}, []uint64{a.ID}},
		{"customer", audit.Query{Customer: "cus_B"}, []uint64{ids[1], ids[4]}},
		{"agent and vendor", audit.Query{Agent: "a1", Vendor: "stripe"}, []uint64{ids[0], ids[4]}},
		{"limit", audit.Query{Limit: 2}, []uint64{ids[0], ids[1]}},
		{"limit with filter", audit.Query{Agent: "a2", Limit: 1}, []uint64{ids[1]}},
		{"limit with since", audit.Query{Since: at(3), Limit: 2}, []uint64{ids[3], ids[4]}},
		{"limit above count", audit.Query{Vendor: "twilio", Limit: 5}, []uint64{ids[2]}},
		{"nothing matches", audit.Query{Agent: "nobody"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			for _, r := range all(t, s, tt.q) {
				got = append(got, r.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Query(%+v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func testQueryOrderAndLimit(t *testing.T, s store.Store) {
	// Written out of time order (a clock that jumped back, or writers
	// racing): Query returns them by Time, then ID.
	offsets := []int{30, 10, 20, 10, 0, 40, -5}
	ids := make(map[uint64]int)
	for _, off := range offsets {
		id, err := s.Append(ctx, refused(off))
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = off
	}
	got := all(t, s, audit.Query{})
	if len(got) != len(offsets) {
		t.Fatalf("%d records, want %d", len(got), len(offsets))
	}
	for i := 1; i < len(got); i++ {
		p, r := got[i-1], got[i]
		if r.Time.Before(p.Time) || (r.Time.Equal(p.Time) && r.ID <= p.ID) {
			t.Fatalf("record %d (%v) after %d (%v): not oldest first", r.ID, r.Time, p.ID, p.Time)
		}
		if !r.Time.Equal(t0.Add(time.Duration(ids[r.ID]) * time.Second)) {
			t.Fatalf("record %d has time %v", r.ID, r.Time)
		}
	}
	limited := all(t, s, audit.Query{Limit: 3})
	if len(limited) != 3 {
		t.Fatalf("Limit 3 gave %d", len(limited))
	}
	for i := range limited {
		if limited[i].ID != got[i].ID {
			t.Fatalf("Limit 3 gave %d at %d, want %d: the oldest first", limited[i].ID, i, got[i].ID)
		}
	}
	since := all(t, s, audit.Query{Since: t0.Add(10 * time.Second)})
	if len(since) != 5 || since[0].ID != got[2].ID {
		t.Fatalf("Since t0+10s gave %d records starting at %d", len(since), since[0].ID)
	}
}

func testQueryStopsAtError(t *testing.T, s store.Store) {
	for i := 0; i < 5; i++ {
		if _, err := s.Append(ctx, refused(i)); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("stop here")
	n := 0
	err := s.Query(ctx, audit.Query{}, func(r *audit.Record) error {
		n++
		if n == 2 {
			return fmt.Errorf("wrapped: %w", stop)
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("Query = %v after %d calls, want the error of fn after 2", err, n)
	}
}

func testQueryReturnsCopies(t *testing.T, s store.Store) {
	id, err := s.Append(ctx, refused(0))
	if err != nil {
		t.Fatal(err)
	}
	r := record(t, s, id)
	r.Agent = "changed"
	r.Params["charge"] = "changed"
	if again := record(t, s, id); again.Agent != "refund-bot" || again.Params["charge"] != "ch_1" {
		t.Fatalf("changing a queried record changed the store: %+v", again)
	}
}

func testQueryMany(t *testing.T, s store.Store) {
	// More records than a backend would plausibly read in one page, and a
	// fn that writes to the store while the query runs.
	const n = 600
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Append(ctx, refused(i))
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	var last time.Time
	err := s.Query(ctx, audit.Query{Until: t0.Add(n * time.Second)}, func(r *audit.Record) error {
		if r.Time.Before(last) {
			return fmt.Errorf("record %d out of order", r.ID)
		}
		last = r.Time
		seen++
		if seen%100 == 0 {
			if _, err := s.Append(ctx, refused(n+seen)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || seen != n {
		t.Fatalf("Query = %v after %d records, want %d", err, seen, n)
	}
	if got := len(all(t, s, audit.Query{Since: t0.Add(100 * time.Second), Limit: 300})); got != 300 {
		t.Fatalf("Since+Limit 300 gave %d", got)
	}
}

func testAppendRefusesHolds(t *testing.T, s store.Store) {
	withHolds := refused(0)
	withHolds.Holds = []audit.Hold{hold("usd", 100, 5)}
	reserved := refused(1)
	reserved.Outcome = audit.Reserved
	for name, r := range map[string]*audit.Record{"holds": withHolds, "reserved": reserved, "nil": nil} {
		if id, err := s.Append(ctx, r); err == nil {
			t.Errorf("Append with %s = %d, want an error", name, id)
		}
	}
	if n := count(t, s); n != 0 {
		t.Fatalf("%d records after refused appends", n)
	}
	wantCounter(t, s, "usd", store.Counter{})
}

func testFacts(t *testing.T, s store.Store) {
	if v, ok, err := s.Fact(ctx, "charge:ch_1:currency"); err != nil || ok || v != "" {
		t.Fatalf("Fact of an unset key = %q, %v, %v", v, ok, err)
	}
	if err := s.SetFact(ctx, "charge:ch_1:currency", "usd"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFact(ctx, "charge:ch_2:currency", ""); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"charge:ch_1:currency": "usd", "charge:ch_2:currency": ""} {
		if v, ok, err := s.Fact(ctx, key); err != nil || !ok || v != want {
			t.Fatalf("Fact(%q) = %q, %v, %v; want %q, true", key, v, ok, err, want)
		}
	}
	if err := s.SetFact(ctx, "charge:ch_1:currency", "usd"); err != nil {
		t.Errorf("setting a fact to its value again: %v", err)
	}
	if err := s.SetFact(ctx, "charge:ch_1:currency", "eur"); err == nil {
		t.Errorf("changing a fact succeeded")
	}
	if v, _, _ := s.Fact(ctx, "charge:ch_1:currency"); v != "usd" {
		t.Errorf("fact changed to %q", v)
	}
	if err := s.SetFact(ctx, "", "x"); err == nil {
		t.Errorf("SetFact with an empty key succeeded")
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 10)}})
	before := snap(t, s, "usd")
	c, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := s.Reserve(c, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 10)}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Reserve = %+v, %v; want context.Canceled", got, err)
	}
	if err := s.Complete(c, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{10}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Complete = %v, want context.Canceled", err)
	}
	if id, err := s.Append(c, refused(2)); !errors.Is(err, context.Canceled) {
		t.Errorf("Append = %d, %v; want context.Canceled", id, err)
	}
	if err := s.SetFact(c, "k", "v"); !errors.Is(err, context.Canceled) {
		t.Errorf("SetFact = %v, want context.Canceled", err)
	}
	if err := s.Query(c, audit.Query{}, func(*audit.Record) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Query = %v, want context.Canceled", err)
	}
	if _, err := s.Counter(c, "usd"); !errors.Is(err, context.Canceled) {
		t.Errorf("Counter = %v, want context.Canceled", err)
	}
	if _, _, err := s.Fact(c, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Fact = %v, want context.Canceled", err)
	}
	before.same(t, s, "after cancelled calls")
	if _, ok, _ := s.Fact(ctx, "k"); ok {
		t.Errorf("SetFact with a cancelled context wrote the fact")
	}
	if r := record(t, s, a.ID); r.Outcome != audit.Reserved {
		t.Errorf("Complete with a cancelled context completed the record")
	}
}

func testAfterClose(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 10)}})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checks := map[string]error{}
	_, checks["Reserve"] = s.Reserve(ctx, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 10)}})
	checks["Complete"] = s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Released})
	_, checks["Append"] = s.Append(ctx, refused(2))
	checks["Query"] = s.Query(ctx, audit.Query{}, func(*audit.Record) error { return nil })
	_, checks["Counter"] = s.Counter(ctx, "usd")
	_, _, checks["Fact"] = s.Fact(ctx, "k")
	checks["SetFact"] = s.SetFact(ctx, "k", "v")
	checks["Close"] = s.Close()
	for name, err := range checks {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}
