package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// Append and Query: the records read back, in order, as written.

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
