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

// Complete and Resettle: how a reservation finishes, and what they refuse.

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
