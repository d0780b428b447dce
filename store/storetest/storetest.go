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
