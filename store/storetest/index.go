package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// The reads `keybrake status` and `keybrake audit --follow` make:
// Outstanding, and Query with After or an Agent.

func outstanding(t *testing.T, s store.Store) []*audit.Record {
	t.Helper()
	var out []*audit.Record
	if err := s.Outstanding(ctx, func(r *audit.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("Outstanding: %v", err)
	}
	return out
}

func outstandingIDs(t *testing.T, s store.Store) []uint64 {
	t.Helper()
	var out []uint64
	for _, r := range outstanding(t, s) {
		out = append(out, r.ID)
	}
	return out
}

// testOutstanding: Reserved records (a replay's included) and Unknown ones,
// in ID order, each as Query reads it; not Settled, Released, Retried,
// Replayed or refused ones; fn's error stops it.
func testOutstanding(t *testing.T, s store.Store) {
	if got := outstandingIDs(t, s); len(got) != 0 {
		t.Fatalf("Outstanding of a new store = %v", got)
	}
	h := []audit.Hold{hold("usd", -1, 10)}
	settled := admit(t, s, &store.Reservation{Record: call(0), Holds: h, Idempotency: idem("settled", "fp")})
	complete(t, s, &store.Completion{ID: settled.ID, Outcome: audit.Settled, Settled: []int64{10}, Moved: usd(10)})
	released := admit(t, s, &store.Reservation{Record: call(1), Holds: h})
	complete(t, s, &store.Completion{ID: released.ID, Outcome: audit.Released})
	unknown := admit(t, s, &store.Reservation{Record: call(2), Holds: h})
	complete(t, s, &store.Completion{ID: unknown.ID, Outcome: audit.Unknown, Status: 504})
	inFlight := admit(t, s, &store.Reservation{Record: call(3), Holds: h})
	replay := reserve(t, s, &store.Reservation{Record: call(4), Idempotency: idem("settled", "fp")})
	if replay.Result != store.Replayed {
		t.Fatalf("Reserve = %+v, want Replayed", replay)
	}
	if _, err := s.Append(ctx, refused(5)); err != nil {
		t.Fatal(err)
	}
	retried := admit(t, s, &store.Reservation{Record: call(6), Holds: h, Idempotency: idem("retried", "fp")})
	complete(t, s, &store.Completion{ID: retried.ID, Outcome: audit.Unknown})
	takeover := admit(t, s, &store.Reservation{Record: call(7), Idempotency: idem("retried", "fp")})
	if takeover.RetryOf != retried.ID {
		t.Fatalf("Reserve = %+v, want a takeover of %d", takeover, retried.ID)
	}

	want := []uint64{unknown.ID, inFlight.ID, replay.ID, takeover.ID}
	if got := outstandingIDs(t, s); !slices.Equal(got, want) {
		t.Fatalf("Outstanding = %v, want %v (unknown, in flight, the replay, the takeover; in ID order)", got, want)
	}
	for _, r := range outstanding(t, s) {
		checkRecord(t, r, record(t, s, r.ID))
	}

	// Completing, replaying and taking over move records out.
	complete(t, s, &store.Completion{ID: inFlight.ID, Outcome: audit.Settled, Settled: []int64{10}, Moved: usd(10)})
	complete(t, s, &store.Completion{ID: replay.ID, Outcome: audit.Settled})
	complete(t, s, &store.Completion{ID: takeover.ID, Outcome: audit.Released})
	if got := outstandingIDs(t, s); !slices.Equal(got, []uint64{unknown.ID}) {
		t.Fatalf("Outstanding after the completions = %v, want [%d]", got, unknown.ID)
	}

	stop := errors.New("stop")
	admit(t, s, &store.Reservation{Record: call(8), Holds: h})
	n := 0
	if err := s.Outstanding(ctx, func(*audit.Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Outstanding with a failing fn = %v after %d records, want %v after 1", err, n, stop)
	}
}

// testOutstandingMany: more outstanding records than a page, among many
// finished ones, each once, in ID order, with fn writing to the store.
func testOutstandingMany(t *testing.T, s store.Store) {
	var want []uint64
	for i := 0; i < 700; i++ {
		a := admit(t, s, &store.Reservation{Record: call(i), Holds: []audit.Hold{hold("calls", -1, 1)}})
		switch i % 3 {
		case 0:
			complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Unknown})
			want = append(want, a.ID)
		case 1:
			want = append(want, a.ID)
		default:
			complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Released})
		}
	}
	var got []uint64
	err := s.Outstanding(ctx, func(r *audit.Record) error {
		got = append(got, r.ID)
		if len(got)%100 == 0 {
			_, err := s.Append(ctx, refused(1000+len(got)))
			return err
		}
		return nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Outstanding = %v, %d records; want %d in ID order", err, len(got), len(want))
	}
}

// testQueryAfter: records with an ID above After, in ID order whatever
// their Time, with the other filters and Limit; ByID without After.
func testQueryAfter(t *testing.T, s store.Store) {
	var ids []uint64
	for i := 0; i < 10; i++ {
		r := refused(i)
		r.Time = t0.Add(time.Duration(10-i) * time.Minute) // written newest first
		if i%2 == 1 {
			r.Agent = "other-bot"
		}
		if i == 7 {
			r.Vendor = "twilio"
		}
		id, err := s.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	tests := []struct {
		q    audit.Query
		want []uint64
	}{
		{audit.Query{After: ids[3]}, ids[4:]},
		{audit.Query{After: ids[3], Limit: 3}, ids[4:7]},
		{audit.Query{After: ids[9]}, nil},
		{audit.Query{After: ids[0], Agent: "other-bot"}, []uint64{ids[1], ids[3], ids[5], ids[7], ids[9]}},
		{audit.Query{After: ids[0], Agent: "other-bot", Vendor: "stripe"}, []uint64{ids[1], ids[3], ids[5], ids[9]}},
		{audit.Query{After: ids[1], Agent: "other-bot", Limit: 2}, []uint64{ids[3], ids[5]}},
		// Since and Until select by Time: records 3 to 6 are at t0+7 to 4 minutes.
		{audit.Query{After: ids[2], Since: t0.Add(4 * time.Minute), Until: t0.Add(7 * time.Minute)}, []uint64{ids[4], ids[5], ids[6]}},
		// ByID without After: every record, in ID order.
		{audit.Query{ByID: true}, ids},
		{audit.Query{ByID: true, Agent: "other-bot", Limit: 2}, []uint64{ids[1], ids[3]}},
	}
	for _, tt := range tests {
		if got := ids2(all(t, s, tt.q)); !slices.Equal(got, tt.want) {
			t.Errorf("Query(%+v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	// A reader following the log sees each record once as it is written.
	last := ids[9]
	for i := 0; i < 3; i++ {
		id, err := s.Append(ctx, refused(100+i))
		if err != nil {
			t.Fatal(err)
		}
		got := ids2(all(t, s, audit.Query{After: last}))
		if !slices.Equal(got, []uint64{id}) {
			t.Fatalf("Query after %d = %v, want [%d]", last, got, id)
		}
		last = id
	}
}

func ids2(rs []*audit.Record) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// testQueryAgentLongLog: one agent's few records in a long log of
// another's, by Time then ID, with Since, Until, Limit and other filters,
// and none for an agent never seen.
func testQueryAgentLongLog(t *testing.T, s store.Store) {
	var want []uint64
	for i := 0; i < 1200; i++ {
		r := refused(i)
		if i%97 == 5 {
			r.Agent = "rare-bot"
			r.Time = t0.Add(time.Duration(1200-i) * time.Second) // out of ID order
		}
		id, err := s.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if r.Agent == "rare-bot" {
			want = append(want, id)
		}
	}
	slices.Reverse(want) // by Time
	got := all(t, s, audit.Query{Agent: "rare-bot"})
	if !slices.Equal(ids2(got), want) {
		t.Fatalf("Query(Agent) = %v, want %v", ids2(got), want)
	}
	for _, r := range got {
		if r.Agent != "rare-bot" {
			t.Fatalf("Query(Agent) gave record %d of %q", r.ID, r.Agent)
		}
	}
	// Its records lie at t0+1195s, +1098s, ... +13s (i = 5, 102, ...).
	since, until := t0.Add(500*time.Second), t0.Add(1100*time.Second)
	var window []uint64
	for _, r := range got {
		if !r.Time.Before(since) && r.Time.Before(until) {
			window = append(window, r.ID)
		}
	}
	if g := ids2(all(t, s, audit.Query{Agent: "rare-bot", Since: since, Until: until})); !slices.Equal(g, window) || len(window) == 0 {
		t.Fatalf("Query(Agent, Since, Until) = %v, want %v", g, window)
	}
	if g := ids2(all(t, s, audit.Query{Agent: "rare-bot", Limit: 2})); !slices.Equal(g, want[:2]) {
		t.Fatalf("Query(Agent, Limit 2) = %v, want %v", g, want[:2])
	}
	if g := all(t, s, audit.Query{Agent: "rare-bot", Vendor: "twilio"}); len(g) != 0 {
		t.Fatalf("Query(Agent, another vendor) = %v", ids2(g))
	}
	if g := all(t, s, audit.Query{Agent: "no-such-bot"}); len(g) != 0 {
		t.Fatalf("Query of an agent never seen = %v", ids2(g))
	}
	if n := len(all(t, s, audit.Query{Agent: refused(0).Agent})); n != 1200-len(want) {
		t.Fatalf("Query of the common agent = %d records, want %d", n, 1200-len(want))
	}
}

// testOutstandingAfterRestart: a reservation a stopped process left is
// Unknown after the restart and still outstanding, with the other
// outstanding records, in ID order.
func testOutstandingAfterRestart(t *testing.T, s store.Store, reopen Reopen) store.Store {
	h := []audit.Hold{hold("usd", -1, 5)}
	unknown := admit(t, s, &store.Reservation{Record: call(0), Holds: h})
	complete(t, s, &store.Completion{ID: unknown.ID, Outcome: audit.Unknown})
	done := admit(t, s, &store.Reservation{Record: call(1), Holds: h})
	complete(t, s, &store.Completion{ID: done.ID, Outcome: audit.Settled, Settled: []int64{5}, Moved: usd(5)})
	left := admit(t, s, &store.Reservation{Record: call(2), Holds: h})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t)
	rs := outstanding(t, s)
	var got []string
	for _, r := range rs {
		got = append(got, fmt.Sprintf("%d %s", r.ID, r.Outcome))
	}
	want := []string{fmt.Sprintf("%d unknown", unknown.ID), fmt.Sprintf("%d unknown", left.ID)}
	if !slices.Equal(got, want) {
		t.Fatalf("Outstanding after a restart = %v, want %v", got, want)
	}
	return s
}

// testQueryRunAndPrincipal: records keep the run and the principal they
// were made for, and Query selects by each, alone and with other filters,
// for reserved records as for appended ones.
func testQueryRunAndPrincipal(t *testing.T, s store.Store) {
	var runA, alice []uint64
	for i := range 30 {
		r := refused(i)
		switch i % 3 {
		case 0:
			r.Run, r.Principal = "ticket-4312", "alice@example.com"
		case 1:
			r.Run = "ticket-9"
		}
		id, err := s.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			runA, alice = append(runA, id), append(alice, id)
		}
	}
	rc := call(100)
	rc.Run, rc.Principal = "ticket-4312", "bob@example.com"
	reserved := admit(t, s, &store.Reservation{Record: rc, Holds: []audit.Hold{hold("usd", 1000, 5)}}).ID
	runA = append(runA, reserved)

	if g := ids2(all(t, s, audit.Query{Run: "ticket-4312"})); !slices.Equal(g, runA) {
		t.Fatalf("Query(Run) = %v, want %v", g, runA)
	}
	if g := ids2(all(t, s, audit.Query{Principal: "alice@example.com"})); !slices.Equal(g, alice) {
		t.Fatalf("Query(Principal) = %v, want %v", g, alice)
	}
	if g := ids2(all(t, s, audit.Query{Run: "ticket-4312", Principal: "bob@example.com"})); !slices.Equal(g, []uint64{reserved}) {
		t.Fatalf("Query(Run, Principal) = %v, want [%d]", g, reserved)
	}
	if g := all(t, s, audit.Query{Run: "ticket-4312", Agent: "no-such-bot"}); len(g) != 0 {
		t.Fatalf("Query(Run, another agent) = %v, want none", ids2(g))
	}
	if g := all(t, s, audit.Query{Run: "ticket"}); len(g) != 0 {
		t.Fatalf("Query(Run prefix) = %v, want none: runs match exactly", ids2(g))
	}
	got := record(t, s, reserved)
	if got.Run != "ticket-4312" || got.Principal != "bob@example.com" {
		t.Fatalf("reserved record read back with run %q, principal %q", got.Run, got.Principal)
	}
}
