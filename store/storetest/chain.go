package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// Reopen opens again the data of a store the suite has closed, as a
// restarted process would.
type Reopen func(t *testing.T) store.Store

// RunRestart runs the tests that need a store's data to outlive the store:
// a process that stops between Reserve and Complete, and the audit chain
// and its checkpoint across restarts. open returns a new, empty store and
// the Reopen for its data; the suite closes what it opens.
func RunRestart(t *testing.T, open func(t *testing.T) (store.Store, Reopen)) {
	t.Helper()
	h := func(test func(t *testing.T, s store.Store, reopen Reopen) store.Store) func(t *testing.T) {
		return func(t *testing.T) {
			s, reopen := open(t)
			s = test(t, s, reopen)
			if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		}
	}
	t.Run("RecoveryKeepsMoneyCounted", h(testRecoveryKeepsMoneyCounted))
	t.Run("ChainAcrossRestart", h(testChainAcrossRestart))
	t.Run("PruneCheckpointSurvives", h(testPruneCheckpointSurvives))
	t.Run("OutstandingAfterRestart", h(testOutstandingAfterRestart))
	t.Run("WindowsAfterRestart", h(testWindowsAfterRestart))
	t.Run("ApprovalsAfterRestart", h(testApprovalsAfterRestart))
}

// verifyOK runs Verify, which must pass and count every record.
func verifyOK(t *testing.T, s store.Store, what string) store.VerifyReport {
	t.Helper()
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatalf("%s: Verify = %+v, %v", what, rep, err)
	}
	if n := count(t, s); rep.Records != n {
		t.Fatalf("%s: Verify checked %d records, the store holds %d", what, rep.Records, n)
	}
	if rep.HeadHash == "" {
		t.Fatalf("%s: Verify reported no head hash", what)
	}
	return rep
}

func prune(t *testing.T, s store.Store, before time.Time) store.PruneReport {
	t.Helper()
	rep, err := s.Prune(ctx, before)
	if err != nil {
		t.Fatalf("Prune(%v) = %+v, %v", before, rep, err)
	}
	return rep
}

func ids(t *testing.T, s store.Store, q audit.Query) []uint64 {
	t.Helper()
	var out []uint64
	for _, r := range all(t, s, q) {
		out = append(out, r.ID)
	}
	return out
}

func testChainEmpty(t *testing.T, s store.Store) {
	rep := verifyOK(t, s, "new store")
	if rep.Entries != 0 || rep.Records != 0 || rep.Checkpoint != 0 {
		t.Fatalf("Verify of a new store = %+v", rep)
	}
}

// testChainAfterEveryOperation runs every kind of operation, and the
// refusals, and checks after each that the chain verifies, that it grew by
// one entry per record written and not at all for a refusal, and that a
// record written alone links to the head before it.
func testChainAfterEveryOperation(t *testing.T, s store.Store) {
	usdHold := func(amount int64) []audit.Hold { return []audit.Hold{hold("usd", 1000, amount)} }
	var a, r, b, c, d store.Admission
	steps := []struct {
		name string
		// do runs the step and returns how many records it wrote and,
		// when it wrote one, which.
		do func() (int, uint64)
	}{
		{"reserve", func() (int, uint64) {
			a = admit(t, s, &store.Reservation{Record: call(0), Holds: usdHold(100), Idempotency: idem("k1", "fp")})
			return 1, a.ID
		}},
		{"complete with an estimate", func() (int, uint64) {
			complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{90}, Moved: usd(90), Estimated: true})
			return 1, a.ID
		}},
		{"over the limit", func() (int, uint64) {
			if got := reserve(t, s, &store.Reservation{Record: call(1), Holds: usdHold(1000)}); got.Result != store.OverLimit {
				t.Fatalf("Reserve = %+v, want OverLimit", got)
			}
			return 0, 0
		}},
		{"replay", func() (int, uint64) {
			if r = reserve(t, s, &store.Reservation{Record: call(2), Idempotency: idem("k1", "fp")}); r.Result != store.Replayed {
				t.Fatalf("Reserve = %+v, want Replayed", r)
			}
			return 1, r.ID
		}},
		{"complete the replay", func() (int, uint64) {
			complete(t, s, &store.Completion{ID: r.ID, Outcome: audit.Settled, Status: 200})
			return 1, r.ID
		}},
		{"resettle", func() (int, uint64) {
			if err := s.Resettle(ctx, a.ID, []int64{95}, usd(95)); err != nil {
				t.Fatal(err)
			}
			return 1, a.ID
		}},
		{"resettle again", func() (int, uint64) {
			if err := s.Resettle(ctx, a.ID, []int64{95}, usd(95)); !errors.Is(err, store.ErrNotEstimate) {
				t.Fatalf("second Resettle = %v, want ErrNotEstimate", err)
			}
			return 0, 0
		}},
		{"reserve with a key", func() (int, uint64) {
			b = admit(t, s, &store.Reservation{Record: call(3), Holds: usdHold(50), Idempotency: idem("k2", "fp")})
			return 1, b.ID
		}},
		{"complete unknown", func() (int, uint64) {
			complete(t, s, &store.Completion{ID: b.ID, Outcome: audit.Unknown, Status: 504})
			return 1, b.ID
		}},
		{"take over", func() (int, uint64) {
			// The new record and the earlier one, now Retried.
			if c = admit(t, s, &store.Reservation{Record: call(4), Idempotency: idem("k2", "fp")}); c.RetryOf != b.ID {
				t.Fatalf("Reserve = %+v, want a takeover of %d", c, b.ID)
			}
			return 2, 0
		}},
		{"complete released", func() (int, uint64) {
			complete(t, s, &store.Completion{ID: c.ID, Outcome: audit.Released, Status: 400})
			return 1, c.ID
		}},
		{"append", func() (int, uint64) {
			id, err := s.Append(ctx, refused(5))
			if err != nil {
				t.Fatal(err)
			}
			return 1, id
		}},
		{"set a fact", func() (int, uint64) {
			if err := s.SetFact(ctx, "charge:ch_1:currency", "usd"); err != nil {
				t.Fatal(err)
			}
			return 0, 0
		}},
		{"key reused", func() (int, uint64) {
			if got := reserve(t, s, &store.Reservation{Record: call(6), Idempotency: idem("k1", "other")}); got.Result != store.KeyReused {
				t.Fatalf("Reserve = %+v, want KeyReused", got)
			}
			return 0, 0
		}},
		{"reserve, left in flight", func() (int, uint64) {
			d = admit(t, s, &store.Reservation{Record: call(7), Holds: usdHold(10), Idempotency: idem("k3", "fp")})
			return 1, d.ID
		}},
		{"key in use", func() (int, uint64) {
			if got := reserve(t, s, &store.Reservation{Record: call(8), Idempotency: idem("k3", "fp")}); got.Result != store.KeyInUse {
				t.Fatalf("Reserve = %+v, want KeyInUse", got)
			}
			return 0, 0
		}},
		{"complete twice", func() (int, uint64) {
			if err := s.Complete(ctx, &store.Completion{ID: c.ID, Outcome: audit.Settled}); !errors.Is(err, store.ErrNotReserved) {
				t.Fatalf("Complete = %v, want ErrNotReserved", err)
			}
			return 0, 0
		}},
		{"invalid completion", func() (int, uint64) {
			if err := s.Complete(ctx, &store.Completion{ID: d.ID, Outcome: audit.Settled, Settled: []int64{1, 2}}); err == nil {
				t.Fatal("Complete with too many settled amounts succeeded")
			}
			return 0, 0
		}},
	}
	prev := verifyOK(t, s, "start")
	for _, st := range steps {
		n, id := st.do()
		rep := verifyOK(t, s, "after "+st.name)
		if rep.Entries != prev.Entries+n {
			t.Fatalf("after %s: %d entries, had %d; want %d more", st.name, rep.Entries, prev.Entries, n)
		}
		switch {
		case n == 0 && (rep.HeadHash != prev.HeadHash || rep.Head != prev.Head):
			t.Fatalf("after %s, which wrote nothing: head %d %s, was %d %s", st.name, rep.Head, rep.HeadHash, prev.Head, prev.HeadHash)
		case n > 0 && (rep.HeadHash == prev.HeadHash || rep.Head <= prev.Head):
			t.Fatalf("after %s: head %d %s did not move on from %d", st.name, rep.Head, rep.HeadHash, prev.Head)
		}
		if n == 1 {
			if got := record(t, s, id).PrevHash; got != prev.HeadHash {
				t.Fatalf("after %s: record %d has PrevHash %q, want the head before it, %q", st.name, id, got, prev.HeadHash)
			}
		}
		prev = rep
	}
}

func testChainUnderConcurrency(t *testing.T, s store.Store) {
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			a, err := s.Reserve(ctx, &store.Reservation{Record: call(i), Holds: []audit.Hold{hold("usd", -1, 1)}})
			if err == nil {
				err = s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{1}})
			}
			errs <- err
		}(i)
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
	if rep := verifyOK(t, s, "after concurrent writes"); rep.Entries != 3*n || rep.Records != 2*n {
		t.Fatalf("Verify = %+v, want %d entries and %d records", rep, 3*n, 2*n)
	}
}

func testChainAfterClose(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Verify after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Prune(ctx, t0); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Prune after Close = %v, want ErrClosed", err)
	}
}

// dayKey is a counter key of the kind Keybrake's limits use, with the UTC
// day t0 plus day in it.
func dayKey(agent string, day int) string {
	return "agent/" + agent + "/stripe/" + t0.AddDate(0, 0, day).Format(time.DateOnly) + "/USD"
}

// on returns the record of a call made i seconds into day t0 plus day.
func on(day, i int) audit.Record {
	r := call(i)
	r.Time = t0.AddDate(0, 0, day).Add(time.Duration(i) * time.Second)
	return r
}

func testPruneNothing(t *testing.T, s store.Store) {
	if rep := prune(t, s, t0); rep != (store.PruneReport{}) {
		t.Fatalf("Prune of an empty store = %+v, want nothing removed", rep)
	}
	verifyOK(t, s, "after pruning an empty store")

	// Records at or after the cutoff, and a counter of the cutoff's day.
	a := admit(t, s, &store.Reservation{Record: on(0, 0), Holds: []audit.Hold{hold(dayKey("a", 0), -1, 5)}})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{5}})
	if _, err := s.Append(ctx, refused(10)); err != nil {
		t.Fatal(err)
	}
	before := snap(t, s, dayKey("a", 0))
	head := verifyOK(t, s, "before")
	rep := prune(t, s, on(0, 0).Time)
	if rep.Records != 0 || rep.Counters != 0 || rep.IdempotencyKeys != 0 {
		t.Fatalf("Prune at the oldest record's time = %+v, want nothing removed", rep)
	}
	before.same(t, s, "after a Prune that removes nothing")
	if after := verifyOK(t, s, "after"); after.HeadHash != head.HeadHash {
		t.Fatalf("a Prune that removes nothing moved the head from %s to %s", head.HeadHash, after.HeadHash)
	}
}

// testPrune removes a day of records around some that must stay, then
// checks what the records, counters, idempotency keys and chain say.
func testPrune(t *testing.T, s store.Store) {
	var (
		k0    = dayKey("refund-bot", 0)
		lone  = dayKey("lone", 0) // held by an Unknown call alone
		other = dayKey("other", 0)
		k1    = dayKey("refund-bot", 1)
		k3    = dayKey("refund-bot", 3)
		calls = audit.Hold{Key: "calls", Unit: "units", Limit: -1, Amount: 1} // no day: never pruned
	)
	// Day 0: a settled with a key, its replay, an Unknown call with a key,
	// a call still in flight, a refusal, a released call, a settled call
	// on another counter, an estimate.
	a := admit(t, s, &store.Reservation{Record: on(0, 1), Holds: []audit.Hold{hold(k0, 1000, 100), calls}, Idempotency: idem("k-old", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{100, 1}})
	f := reserve(t, s, &store.Reservation{Record: on(0, 2), Idempotency: idem("k-old", "fp")})
	if f.Result != store.Replayed {
		t.Fatalf("replay = %+v", f)
	}
	complete(t, s, &store.Completion{ID: f.ID, Outcome: audit.Settled})
	b := admit(t, s, &store.Reservation{Record: on(0, 3), Holds: []audit.Hold{hold(k0, 1000, 50)}, Idempotency: idem("k-unknown", "fp")})
	complete(t, s, &store.Completion{ID: b.ID, Outcome: audit.Unknown})
	c := admit(t, s, &store.Reservation{Record: on(0, 4), Holds: []audit.Hold{hold(k0, 1000, 30)}})
	rd := refused(0)
	rd.Time = on(0, 5).Time
	d, err := s.Append(ctx, rd)
	if err != nil {
		t.Fatal(err)
	}
	e := admit(t, s, &store.Reservation{Record: on(0, 6), Holds: []audit.Hold{hold(k0, 1000, 20)}})
	complete(t, s, &store.Completion{ID: e.ID, Outcome: audit.Released})
	o := admit(t, s, &store.Reservation{Record: on(0, 7), Holds: []audit.Hold{hold(other, -1, 70)}})
	complete(t, s, &store.Completion{ID: o.ID, Outcome: audit.Settled, Settled: []int64{70}})
	u := admit(t, s, &store.Reservation{Record: on(0, 9), Holds: []audit.Hold{hold(lone, -1, 40)}})
	complete(t, s, &store.Completion{ID: u.ID, Outcome: audit.Unknown})
	j := admit(t, s, &store.Reservation{Record: on(0, 8), Holds: []audit.Hold{hold(k0, 1000, 10)}})
	complete(t, s, &store.Completion{ID: j.ID, Outcome: audit.Settled, Settled: []int64{10}, Moved: usd(10), Estimated: true})
	// Day 1 and day 3.
	g := admit(t, s, &store.Reservation{Record: on(1, 1), Holds: []audit.Hold{hold(k1, 1000, 5)}})
	complete(t, s, &store.Completion{ID: g.ID, Outcome: audit.Settled, Settled: []int64{5}})
	rh := refused(0)
	rh.Time = on(1, 2).Time
	h, err := s.Append(ctx, rh)
	if err != nil {
		t.Fatal(err)
	}
	i := admit(t, s, &store.Reservation{Record: on(3, 1), Holds: []audit.Hold{hold(k3, 1000, 7)}, Idempotency: idem("k-new", "fp")})
	complete(t, s, &store.Completion{ID: i.ID, Outcome: audit.Settled, Settled: []int64{7}})
	// The day-0 estimate is reconciled only now, after the younger
	// records were written.
	if err := s.Resettle(ctx, j.ID, []int64{12}, usd(12)); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, "before Prune")
	counters := map[string]store.Counter{
		k0:      {Settled: 112, Pending: 30, Unknown: 50},
		lone:    {Unknown: 40},
		other:   {Settled: 70},
		k1:      {Settled: 5},
		k3:      {Settled: 7},
		"calls": {Settled: 1},
	}
	for k, want := range counters {
		wantCounter(t, s, k, want)
	}

	cutoff := time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC) // day 1; t0 is 2025-03-14 09:26
	rep := prune(t, s, cutoff)
	// a, its replay f, d, e, o and j go; b and u (Unknown) and c
	// (Reserved) stay, and so do the counters they hold.
	if rep.Records != 6 || rep.IdempotencyKeys != 1 || rep.Counters != 1 || rep.Entries == 0 || rep.Checkpoint == 0 {
		t.Fatalf("Prune = %+v, want 6 records, 1 idempotency key (k-old), 1 counter (%s), some entries and a checkpoint", rep, other)
	}
	if got, want := fmt.Sprint(ids(t, s, audit.Query{})), fmt.Sprint([]uint64{b.ID, c.ID, u.ID, g.ID, h, i.ID}); got != want {
		t.Fatalf("records after Prune: %s, want %s (a=%d f=%d d=%d e=%d o=%d j=%d pruned)", got, want, a.ID, f.ID, d, e.ID, o.ID, j.ID)
	}
	if got := ids(t, s, audit.Query{Until: cutoff}); fmt.Sprint(got) != fmt.Sprint([]uint64{b.ID, c.ID, u.ID}) {
		t.Fatalf("records before the cutoff after Prune: %v, want the Unknown %d and %d and the Reserved %d", got, b.ID, u.ID, c.ID)
	}
	if rb, rc := record(t, s, b.ID), record(t, s, c.ID); rb.Outcome != audit.Unknown || rc.Outcome != audit.Reserved ||
		!holdsEqual(rb.Holds, []audit.Hold{hold(k0, 1000, 50)}) || !holdsEqual(rc.Holds, []audit.Hold{hold(k0, 1000, 30)}) {
		t.Fatalf("kept records changed: %+v %+v", rb, rc)
	}
	counters[other] = store.Counter{}
	for k, want := range counters {
		wantCounter(t, s, k, want) // k0 is held by b and c: kept whole
	}
	v := verifyOK(t, s, "after Prune")
	if v.Checkpoint != rep.Checkpoint || v.Records != 6 {
		t.Fatalf("Verify after Prune = %+v, want checkpoint %d and 6 records", v, rep.Checkpoint)
	}

	// k-unknown stayed with b: its retry, on day 1 and inside the
	// store.ReplayWindow, takes over b's hold, on the counter that stayed.
	// k-new is young: its retry replays. k-old went with a: its retry is
	// a new call.
	rx := on(0, 3)
	rx.Time = rx.Time.Add(store.ReplayWindow - time.Hour)
	x := admit(t, s, &store.Reservation{Record: rx, Idempotency: idem("k-unknown", "fp")})
	if x.RetryOf != b.ID || !holdsEqual(x.Holds, []audit.Hold{hold(k0, 1000, 50)}) {
		t.Fatalf("retry of the Unknown call = %+v, want a takeover of %d", x, b.ID)
	}
	wantCounter(t, s, k0, store.Counter{Settled: 112, Pending: 80})
	if y := reserve(t, s, &store.Reservation{Record: on(3, 3), Idempotency: idem("k-new", "fp")}); y.Result != store.Replayed || y.RetryOf != i.ID {
		t.Fatalf("retry of the young key = %+v, want Replayed of %d", y, i.ID)
	}
	if z := reserve(t, s, &store.Reservation{Record: on(3, 4), Holds: []audit.Hold{hold(k3, 1000, 1)}, Idempotency: idem("k-old", "fp")}); z.Result != store.Admitted || z.RetryOf != 0 {
		t.Fatalf("retry of the pruned key = %+v, want Admitted afresh", z)
	}
	verifyOK(t, s, "after writes on the pruned store")

	// b is Retried now: finished, old, it goes. c, still in flight, and x
	// keep k0.
	if rep := prune(t, s, cutoff); rep.Records != 1 || rep.Counters != 0 || rep.IdempotencyKeys != 0 {
		t.Fatalf("second Prune = %+v, want b alone removed", rep)
	}
	wantCounter(t, s, k0, store.Counter{Settled: 112, Pending: 80})
	complete(t, s, &store.Completion{ID: c.ID, Outcome: audit.Settled, Settled: []int64{30}})
	complete(t, s, &store.Completion{ID: x.ID, Outcome: audit.Settled, Settled: []int64{50}})
	if rep := prune(t, s, cutoff); rep.Records != 1 || rep.Counters != 1 {
		t.Fatalf("third Prune = %+v, want c and its day's counter removed", rep)
	}
	wantCounter(t, s, k0, store.Counter{})
	wantCounter(t, s, lone, store.Counter{Unknown: 40})
	if got := ids(t, s, audit.Query{Until: cutoff}); fmt.Sprint(got) != fmt.Sprint([]uint64{u.ID}) {
		t.Fatalf("records before the cutoff after the last Prune: %v, want the Unknown %d", got, u.ID)
	}
	verifyOK(t, s, "after the last Prune")
	if rep := prune(t, s, cutoff); rep.Records != 0 || rep.Counters != 0 || rep.IdempotencyKeys != 0 || rep.Entries != 0 {
		t.Fatalf("Prune with nothing left to remove = %+v", rep)
	}
}

// testPruneKeepsYoungKeys: a key younger than 24 hours keeps its record,
// whatever the cutoff, so that a retry still replays. It uses the real
// clock, as the store does.
func testPruneKeepsYoungKeys(t *testing.T, s store.Store) {
	now := time.Now().UTC()
	rec := func(ago time.Duration) audit.Record {
		r := call(0)
		r.Time = now.Add(-ago)
		return r
	}
	x := admit(t, s, &store.Reservation{Record: rec(2 * time.Hour), Holds: []audit.Hold{hold("usd", -1, 5)}, Idempotency: idem("recent", "fp")})
	complete(t, s, &store.Completion{ID: x.ID, Outcome: audit.Settled, Settled: []int64{5}})
	y := admit(t, s, &store.Reservation{Record: rec(48 * time.Hour), Holds: []audit.Hold{hold("usd", -1, 5)}, Idempotency: idem("stale", "fp")})
	complete(t, s, &store.Completion{ID: y.ID, Outcome: audit.Settled, Settled: []int64{5}})

	rep := prune(t, s, now.Add(time.Hour))
	if rep.Records != 1 || rep.IdempotencyKeys != 1 {
		t.Fatalf("Prune = %+v, want the stale call and its key removed", rep)
	}
	if got := ids(t, s, audit.Query{}); fmt.Sprint(got) != fmt.Sprint([]uint64{x.ID}) {
		t.Fatalf("records after Prune: %v, want %d", got, x.ID)
	}
	if got := reserve(t, s, &store.Reservation{Record: rec(0), Idempotency: idem("recent", "fp")}); got.Result != store.Replayed || got.RetryOf != x.ID {
		t.Fatalf("retry of the recent key = %+v, want Replayed of %d", got, x.ID)
	}
	if got := reserve(t, s, &store.Reservation{Record: rec(0), Idempotency: idem("stale", "fp")}); got.Result != store.Admitted || got.RetryOf != 0 {
		t.Fatalf("retry of the stale key = %+v, want Admitted afresh", got)
	}
	verifyOK(t, s, "after Prune")
}

func testPruneCancelled(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: on(0, 0), Holds: []audit.Hold{hold(dayKey("a", 0), -1, 5)}})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{5}})
	before := snap(t, s, dayKey("a", 0))
	c, cancel := context.WithCancel(ctx)
	cancel()
	if rep, err := s.Prune(c, t0.AddDate(0, 0, 7)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Prune with a cancelled context = %+v, %v; want context.Canceled", rep, err)
	}
	if rep, err := s.Verify(c); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a cancelled context = %+v, %v; want context.Canceled", rep, err)
	}
	before.same(t, s, "after a cancelled Prune")
}

func testRecoveryKeepsMoneyCounted(t *testing.T, s store.Store, reopen Reopen) store.Store {
	rec := call(0)
	rec.Reason = "allowed by rule x"
	a := admit(t, s, &store.Reservation{Record: rec, Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	// The process stops before the response: no Complete.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t)
	wantCounter(t, s, "usd", store.Counter{Unknown: 60})
	r := record(t, s, a.ID)
	if r.Outcome != audit.Unknown || !holdsEqual(r.Holds, []audit.Hold{hold("usd", 100, 60)}) {
		t.Fatalf("record after restart = %+v, want Unknown with its hold", r)
	}
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled}); !errors.Is(err, store.ErrNotReserved) {
		t.Fatalf("Complete after restart = %v, want ErrNotReserved", err)
	}
	// Unknown money still counts against the limit, and a retry with the
	// key takes it over.
	if got := reserve(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 41)}}); got.Result != store.OverLimit {
		t.Fatalf("Reserve = %+v, want OverLimit", got)
	}
	b := admit(t, s, &store.Reservation{Record: call(2), Idempotency: idem("k", "fp")})
	if b.RetryOf != a.ID {
		t.Fatalf("retry = %+v, want a takeover of %d", b, a.ID)
	}
	wantCounter(t, s, "usd", store.Counter{Pending: 60})
	verifyOK(t, s, "after recovery and takeover")
	return s
}

// testChainAcrossRestart: the chain verifies after a mix of operations, a
// crash and its recovery, and goes on growing after.
func testChainAcrossRestart(t *testing.T, s store.Store, reopen Reopen) store.Store {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", -1, 10)}, Idempotency: idem("k1", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{10}, Moved: usd(10), Estimated: true})
	if err := s.Resettle(ctx, a.ID, []int64{11}, usd(11)); err != nil {
		t.Fatal(err)
	}
	r := reserve(t, s, &store.Reservation{Record: call(1), Idempotency: idem("k1", "fp")})
	complete(t, s, &store.Completion{ID: r.ID, Outcome: audit.Replayed})
	b := admit(t, s, &store.Reservation{Record: call(2), Holds: []audit.Hold{hold("usd", -1, 20)}, Idempotency: idem("k2", "fp")})
	c := admit(t, s, &store.Reservation{Record: call(3), Holds: []audit.Hold{hold("usd", -1, 30)}})
	if _, err := s.Append(ctx, refused(4)); err != nil {
		t.Fatal(err)
	}
	before := verifyOK(t, s, "before the restart")
	// b and c are in flight when the process stops.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t)
	after := verifyOK(t, s, "after recovery")
	if after.Entries != before.Entries+2 {
		t.Fatalf("recovery of 2 records: %d entries, had %d", after.Entries, before.Entries)
	}
	for _, id := range []uint64{b.ID, c.ID} {
		if r := record(t, s, id); r.Outcome != audit.Unknown {
			t.Fatalf("record %d after restart is %s, want unknown", id, r.Outcome)
		}
	}
	d := admit(t, s, &store.Reservation{Record: call(5), Idempotency: idem("k2", "fp")})
	if d.RetryOf != b.ID {
		t.Fatalf("retry = %+v, want a takeover of %d", d, b.ID)
	}
	complete(t, s, &store.Completion{ID: d.ID, Outcome: audit.Settled, Settled: []int64{20}})
	if rep := verifyOK(t, s, "after the takeover"); rep.Entries != after.Entries+3 {
		t.Fatalf("takeover and completion: %d entries, had %d", rep.Entries, after.Entries)
	}
	// Reopening a store with nothing in flight changes nothing.
	last := verifyOK(t, s, "before a clean restart")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t)
	if rep := verifyOK(t, s, "after a clean restart"); rep.HeadHash != last.HeadHash || rep.Entries != last.Entries {
		t.Fatalf("a clean restart moved the chain: %+v, was %+v", rep, last)
	}
	return s
}

func testPruneCheckpointSurvives(t *testing.T, s store.Store, reopen Reopen) store.Store {
	for i := 0; i < 5; i++ {
		a := admit(t, s, &store.Reservation{Record: on(0, i), Holds: []audit.Hold{hold(dayKey("a", 0), -1, 1)}})
		complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{1}})
		if _, err := s.Append(ctx, func() *audit.Record { r := refused(0); r.Time = on(2, i).Time; return r }()); err != nil {
			t.Fatal(err)
		}
	}
	rep := prune(t, s, t0.AddDate(0, 0, 1))
	if rep.Records != 5 || rep.Checkpoint == 0 {
		t.Fatalf("Prune = %+v, want 5 records removed and a checkpoint", rep)
	}
	before := verifyOK(t, s, "after Prune")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t)
	after := verifyOK(t, s, "after a restart")
	if after != before {
		t.Fatalf("Verify after a restart = %+v, was %+v", after, before)
	}
	if _, err := s.Append(ctx, refused(9)); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, "after a write")
	return s
}
