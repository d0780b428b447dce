package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// Rolling windows (store.Store's "Windows"): what a rate limit of the
// policy ("20 calls in any minute") needs of a store.

// runWindows adds the window cases to Run.
func runWindows(t *testing.T, h func(test func(t *testing.T, s store.Store)) func(t *testing.T)) {
	t.Run("WindowAdmitsUpToLimit", h(testWindowAdmitsUpToLimit))
	t.Run("WindowSlidesExactly", h(testWindowSlidesExactly))
	t.Run("WindowCountsLaterRecords", h(testWindowCountsLaterRecords))
	t.Run("WindowMoney", h(testWindowMoney))
	t.Run("WindowUnknownStaysCounted", h(testWindowUnknownStaysCounted))
	t.Run("WindowResettle", h(testWindowResettle))
	t.Run("WindowKeyTwiceRefused", h(testWindowKeyTwiceRefused))
	t.Run("WindowApartFromCounters", h(testWindowApartFromCounters))
	t.Run("WindowAtomicWithCounters", h(testWindowAtomicWithCounters))
	t.Run("WindowRace", h(testWindowRace))
	t.Run("WindowTakeOverUnknown", h(testWindowTakeOverUnknown))
	t.Run("WindowPrune", h(testWindowPrune))
}

// at returns call(0) moved to t0 + d.
func at(d time.Duration) audit.Record {
	r := call(0)
	r.Time = t0.Add(d)
	return r
}

func rate(key string, limit, amount int64, window time.Duration) audit.Hold {
	return audit.Hold{Key: key, Unit: "units", Limit: limit, Amount: amount, Window: window}
}

func spend(key string, limit, amount int64, window time.Duration) audit.Hold {
	return audit.Hold{Key: key, Unit: "USD", Limit: limit, Amount: amount, Window: window}
}

// window returns Window(key, at) and checks its order and contents are
// sane.
func window(t *testing.T, s store.Store, key string, when time.Time) []store.WindowEntry {
	t.Helper()
	es, err := s.Window(ctx, key, when)
	if err != nil {
		t.Fatalf("Window(%q, %s): %v", key, when, err)
	}
	for i, e := range es {
		if i > 0 && e.Time.Before(es[i-1].Time) {
			t.Fatalf("Window(%q): entry %d at %s before entry %d at %s", key, i, e.Time, i-1, es[i-1].Time)
		}
		if !e.Time.Add(e.Window).After(when) {
			t.Fatalf("Window(%q, %s) lists entry %+v, which has left the window", key, when, e)
		}
	}
	return es
}

func windowTotal(es []store.WindowEntry) int64 {
	var n int64
	for _, e := range es {
		n += e.Total()
	}
	return n
}

// testWindowAdmitsUpToLimit: 20 calls in a minute are admitted, the 21st is
// refused with the window's use and when it frees, and it is admitted at
// exactly a minute after the first, not a nanosecond before.
func testWindowAdmitsUpToLimit(t *testing.T, s store.Store) {
	const per = time.Minute
	for i := range 20 {
		a := admit(t, s, &store.Reservation{Record: at(time.Duration(i) * time.Second), Holds: []audit.Hold{rate("w", 20, 1, per)}})
		complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{1}})
	}
	a := reserve(t, s, &store.Reservation{Record: at(20 * time.Second), Holds: []audit.Hold{rate("w", 20, 1, per)}})
	if a.Result != store.OverLimit || a.Hold != 0 || a.Used != 20 {
		t.Fatalf("21st call: %+v, want OverLimit on hold 0 with Used 20", a)
	}
	if want := t0.Add(per); !a.Frees.Equal(want) {
		t.Fatalf("21st call: Frees %s, want %s (the first call's time + a minute)", a.Frees, want)
	}
	if a := reserve(t, s, &store.Reservation{Record: at(per - time.Nanosecond), Holds: []audit.Hold{rate("w", 20, 1, per)}}); a.Result != store.OverLimit {
		t.Fatalf("a nanosecond before the first call leaves: %+v, want OverLimit", a)
	}
	admit(t, s, &store.Reservation{Record: at(per), Holds: []audit.Hold{rate("w", 20, 1, per)}})
	if a := reserve(t, s, &store.Reservation{Record: at(per), Holds: []audit.Hold{rate("w", 20, 1, per)}}); a.Result != store.OverLimit {
		t.Fatalf("a second call once the first left: %+v, want OverLimit", a)
	}
	es := window(t, s, "w", t0.Add(per))
	if len(es) != 20 || windowTotal(es) != 20 {
		t.Fatalf("Window at a minute: %d entries totalling %d, want 20 and 20", len(es), windowTotal(es))
	}
	if !es[0].Time.Equal(t0.Add(time.Second)) || es[0].Window != per || es[0].Settled != 1 {
		t.Fatalf("oldest entry %+v, want the second call's, settled 1, window a minute", es[0])
	}
	if last := es[len(es)-1]; last.Pending != 1 || !last.Time.Equal(t0.Add(per)) {
		t.Fatalf("newest entry %+v, want the call at a minute, pending 1", last)
	}
	if len(window(t, s, "nothing", t0)) != 0 {
		t.Fatal("a window never used lists entries")
	}
}

// testWindowSlidesExactly: 20 calls late in one minute and 20 early in the
// next are 40 in one calendar minute's pair of buckets but 20 in any
// interval of a minute only if the second 20 wait: a fixed-bucket counter
// admits them, a sliding window must not.
func testWindowSlidesExactly(t *testing.T, s store.Store) {
	const per = time.Minute
	for i := range 20 {
		admit(t, s, &store.Reservation{Record: at(50*time.Second + time.Duration(i)*time.Millisecond), Holds: []audit.Hold{rate("w", 20, 1, per)}})
	}
	for i := range 20 {
		d := 70*time.Second + time.Duration(i)*time.Millisecond
		if a := reserve(t, s, &store.Reservation{Record: at(d), Holds: []audit.Hold{rate("w", 20, 1, per)}}); a.Result != store.OverLimit {
			t.Fatalf("call at %s: %+v, want OverLimit: 20 calls since %s", d, a, 50*time.Second)
		}
	}
	// At 110 s + i ms the i-th of the first 20 has left: one at a time.
	for i := range 20 {
		d := 110*time.Second + time.Duration(i)*time.Millisecond
		admit(t, s, &store.Reservation{Record: at(d), Holds: []audit.Hold{rate("w", 20, 1, per)}})
		if a := reserve(t, s, &store.Reservation{Record: at(d), Holds: []audit.Hold{rate("w", 20, 1, per)}}); a.Result != store.OverLimit {
			t.Fatalf("second call at %s: %+v, want OverLimit", d, a)
		}
	}
}

// testWindowCountsLaterRecords: a record earlier than one already counted
// counts that one: no interval of the window's length may hold more than
// its limit, whatever order records arrive in.
func testWindowCountsLaterRecords(t *testing.T, s store.Store) {
	admit(t, s, &store.Reservation{Record: at(30 * time.Second), Holds: []audit.Hold{rate("w", 1, 1, time.Minute)}})
	if a := reserve(t, s, &store.Reservation{Record: at(10 * time.Second), Holds: []audit.Hold{rate("w", 1, 1, time.Minute)}}); a.Result != store.OverLimit || a.Used != 1 {
		t.Fatalf("an earlier record: %+v, want OverLimit with Used 1", a)
	}
}

// testWindowMoney: money windows count to the minor unit; a release leaves
// the window and a settlement below the hold leaves what was settled;
// Frees names the entry whose leaving makes room.
func testWindowMoney(t *testing.T, s store.Store) {
	const per = time.Minute
	a := admit(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{spend("m", 100, 60, per)}})
	if b := reserve(t, s, &store.Reservation{Record: at(time.Second), Holds: []audit.Hold{spend("m", 100, 41, per)}}); b.Result != store.OverLimit || b.Used != 60 {
		t.Fatalf("41 over 60 of 100: %+v, want OverLimit with Used 60", b)
	}
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Released})
	if es := window(t, s, "m", t0.Add(time.Second)); len(es) != 0 {
		t.Fatalf("a released hold is still in the window: %+v", es)
	}
	b := admit(t, s, &store.Reservation{Record: at(2 * time.Second), Holds: []audit.Hold{spend("m", 100, 60, per)}})
	complete(t, s, &store.Completion{ID: b.ID, Outcome: audit.Settled, Settled: []int64{20}})
	admit(t, s, &store.Reservation{Record: at(3 * time.Second), Holds: []audit.Hold{spend("m", 100, 30, per)}})
	admit(t, s, &store.Reservation{Record: at(4 * time.Second), Holds: []audit.Hold{spend("m", 100, 30, per)}})
	c := reserve(t, s, &store.Reservation{Record: at(5 * time.Second), Holds: []audit.Hold{spend("m", 100, 21, per)}})
	if c.Result != store.OverLimit || c.Used != 80 {
		t.Fatalf("21 over 20+30+30 of 100: %+v, want OverLimit with Used 80", c)
	}
	// 21 fits once the settled 20 has left: at 2 s + a minute.
	if want := t0.Add(2*time.Second + per); !c.Frees.Equal(want) {
		t.Fatalf("Frees %s, want %s", c.Frees, want)
	}
	// 51 needs the 20 and one 30 gone: at 3 s + a minute.
	c = reserve(t, s, &store.Reservation{Record: at(5 * time.Second), Holds: []audit.Hold{spend("m", 100, 51, per)}})
	if want := t0.Add(3*time.Second + per); c.Result != store.OverLimit || !c.Frees.Equal(want) {
		t.Fatalf("51: %+v, want OverLimit freeing at %s", c, want)
	}
	// More than the limit never fits.
	c = reserve(t, s, &store.Reservation{Record: at(5 * time.Second), Holds: []audit.Hold{spend("m", 100, 101, per)}})
	if c.Result != store.OverLimit || !c.Frees.IsZero() {
		t.Fatalf("101 of 100: %+v, want OverLimit with no Frees", c)
	}
	admit(t, s, &store.Reservation{Record: at(5 * time.Second), Holds: []audit.Hold{spend("m", 100, 20, per)}})
	es := window(t, s, "m", t0.Add(5*time.Second))
	if len(es) != 4 || windowTotal(es) != 100 || es[0].Record != b.ID || es[0].Settled != 20 || es[0].Pending != 0 {
		t.Fatalf("Window: %+v, want 4 entries totalling 100, the first record %d settled 20", es, b.ID)
	}
}

// testWindowUnknownStaysCounted: an Unknown hold counts until it leaves the
// window by time.
func testWindowUnknownStaysCounted(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{rate("w", 1, 1, time.Minute)}})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Unknown})
	if b := reserve(t, s, &store.Reservation{Record: at(59 * time.Second), Holds: []audit.Hold{rate("w", 1, 1, time.Minute)}}); b.Result != store.OverLimit {
		t.Fatalf("beside an Unknown call: %+v, want OverLimit", b)
	}
	es := window(t, s, "w", t0.Add(59*time.Second))
	if len(es) != 1 || es[0].Unknown != 1 {
		t.Fatalf("Window: %+v, want the Unknown call", es)
	}
	admit(t, s, &store.Reservation{Record: at(time.Minute), Holds: []audit.Hold{rate("w", 1, 1, time.Minute)}})
}

// testWindowResettle: reconciling an estimate moves its window entry too.
func testWindowResettle(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{spend("m", 100, 50, time.Hour)}})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{50}, Moved: usd(50), Estimated: true})
	if err := s.Resettle(ctx, a.ID, []int64{10}, usd(10)); err != nil {
		t.Fatalf("Resettle: %v", err)
	}
	es := window(t, s, "m", t0)
	if len(es) != 1 || es[0].Settled != 10 {
		t.Fatalf("Window after Resettle: %+v, want settled 10", es)
	}
	admit(t, s, &store.Reservation{Record: at(time.Second), Holds: []audit.Hold{spend("m", 100, 90, time.Hour)}})
}

// testWindowKeyTwiceRefused: one reservation may hold a window key once.
func testWindowKeyTwiceRefused(t *testing.T, s store.Store) {
	before := snap(t, s)
	_, err := s.Reserve(ctx, &store.Reservation{Record: at(0), Holds: []audit.Hold{rate("w", 5, 1, time.Minute), rate("w", 5, 1, time.Minute)}})
	if err == nil {
		t.Fatal("Reserve with a window key held twice: no error")
	}
	before.same(t, s, "refused Reserve")
	if es := window(t, s, "w", t0); len(es) != 0 {
		t.Fatalf("a refused Reserve left window entries: %+v", es)
	}
}

// testWindowApartFromCounters: a window and a counter of one key are two
// things.
func testWindowApartFromCounters(t *testing.T, s store.Store) {
	admit(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{rate("k", 1, 1, time.Minute), {Key: "k", Unit: "units", Limit: 1, Amount: 1}}})
	wantCounter(t, s, "k", store.Counter{Pending: 1})
	if es := window(t, s, "k", t0); len(es) != 1 || es[0].Pending != 1 {
		t.Fatalf("Window: %+v, want one pending entry", es)
	}
	var listed []string
	if err := s.Counters(ctx, "", func(key string, _ store.Counter) error {
		listed = append(listed, key)
		return nil
	}); err != nil {
		t.Fatalf("Counters: %v", err)
	}
	if fmt.Sprint(listed) != "[k]" {
		t.Fatalf("Counters listed %q, want only the counter k", listed)
	}
}

// testWindowAtomicWithCounters: a window that does not fit writes nothing,
// counters included; a counter that does not fit leaves no window entry.
func testWindowAtomicWithCounters(t *testing.T, s store.Store) {
	admit(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{rate("w", 1, 1, time.Minute)}})
	before := snap(t, s, "c")
	a := reserve(t, s, &store.Reservation{Record: at(time.Second), Holds: []audit.Hold{hold("c", 100, 10), rate("w", 1, 1, time.Minute)}})
	if a.Result != store.OverLimit || a.Hold != 1 {
		t.Fatalf("window over: %+v, want OverLimit on hold 1", a)
	}
	before.same(t, s, "window refused")
	a = reserve(t, s, &store.Reservation{Record: at(time.Second), Holds: []audit.Hold{rate("v", 5, 1, time.Minute), hold("c", 5, 10)}})
	if a.Result != store.OverLimit || a.Hold != 1 {
		t.Fatalf("counter over: %+v, want OverLimit on hold 1", a)
	}
	if es := window(t, s, "v", t0.Add(time.Second)); len(es) != 0 {
		t.Fatalf("a refused reservation left window entries: %+v", es)
	}
}

// testWindowRace: 200 callers at once against 20 a minute: exactly 20 in.
func testWindowRace(t *testing.T, s store.Store) {
	const goroutines, limit = 200, 20
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		admitted int
		errs     []error
	)
	start := make(chan struct{})
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a, err := s.Reserve(ctx, &store.Reservation{Record: at(time.Duration(i) * time.Millisecond),
				Holds: []audit.Hold{rate("race", limit, 1, time.Minute), spend("race-usd", 1000, 7, time.Minute)}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case a.Result == store.Admitted:
				admitted++
			case a.Result != store.OverLimit:
				errs = append(errs, fmt.Errorf("result %v", a.Result))
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	if admitted != limit {
		t.Fatalf("%d admitted, want %d", admitted, limit)
	}
	when := t0.Add(time.Second)
	if n := windowTotal(window(t, s, "race", when)); n != limit {
		t.Fatalf("window counts %d, want %d", n, limit)
	}
	if n := windowTotal(window(t, s, "race-usd", when)); n != 7*limit {
		t.Fatalf("money window counts %d, want %d", n, 7*limit)
	}
	if n := count(t, s); n != limit {
		t.Fatalf("%d records, want %d", n, limit)
	}
}

// testWindowTakeOverUnknown: a retry that takes over an Unknown call's
// holds takes over its window entry, counted from the retry's Time, and
// releasing the retry empties the window.
func testWindowTakeOverUnknown(t *testing.T, s store.Store) {
	holds := []audit.Hold{rate("w", 1, 1, time.Minute)}
	a := admit(t, s, &store.Reservation{Record: at(0), Holds: holds, Idempotency: idem("k", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Unknown})
	b := admit(t, s, &store.Reservation{Record: at(30 * time.Second), Holds: holds, Idempotency: idem("k", "fp")})
	if b.RetryOf != a.ID {
		t.Fatalf("retry: %+v, want RetryOf %d", b, a.ID)
	}
	es := window(t, s, "w", t0.Add(30*time.Second))
	if len(es) != 1 || es[0].Record != b.ID || !es[0].Time.Equal(t0.Add(30*time.Second)) || es[0].Pending != 1 {
		t.Fatalf("Window after the takeover: %+v, want record %d's pending entry at 30 s", es, b.ID)
	}
	if c := reserve(t, s, &store.Reservation{Record: at(70 * time.Second), Holds: holds}); c.Result != store.OverLimit {
		t.Fatalf("at 70 s, within a minute of the retry: %+v, want OverLimit", c)
	}
	complete(t, s, &store.Completion{ID: b.ID, Outcome: audit.Released})
	if es := window(t, s, "w", t0.Add(30*time.Second)); len(es) != 0 {
		t.Fatalf("Window after releasing the retry: %+v, want none", es)
	}
	admit(t, s, &store.Reservation{Record: at(70 * time.Second), Holds: holds})
}

// testWindowPrune: Prune removes the entries that have left their windows
// and keeps the others, which still count.
func testWindowPrune(t *testing.T, s store.Store) {
	old := admit(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{rate("w", 2, 1, time.Minute)}})
	complete(t, s, &store.Completion{ID: old.ID, Outcome: audit.Settled, Settled: []int64{1}})
	young := admit(t, s, &store.Reservation{Record: at(50 * time.Second), Holds: []audit.Hold{rate("w", 2, 1, time.Minute)}})
	complete(t, s, &store.Completion{ID: young.ID, Outcome: audit.Settled, Settled: []int64{1}})
	rep, err := s.Prune(ctx, t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if rep.Windows != 1 {
		t.Fatalf("Prune removed %d window entries, want 1: %+v", rep.Windows, rep)
	}
	es := window(t, s, "w", t0)
	if len(es) != 1 || es[0].Record != young.ID {
		t.Fatalf("Window after Prune: %+v, want only record %d", es, young.ID)
	}
	admit(t, s, &store.Reservation{Record: at(time.Minute), Holds: []audit.Hold{rate("w", 2, 1, time.Minute)}})
	if a := reserve(t, s, &store.Reservation{Record: at(time.Minute), Holds: []audit.Hold{rate("w", 2, 1, time.Minute)}}); a.Result != store.OverLimit {
		t.Fatalf("a third call: %+v, want OverLimit", a)
	}
	if rep, err := s.Prune(ctx, t0.Add(time.Minute)); err != nil || rep.Windows != 0 {
		t.Fatalf("Prune again: %+v, %v; want nothing more removed", rep, err)
	}
}

// testWindowsAfterRestart: window entries outlive the store.
func testWindowsAfterRestart(t *testing.T, s store.Store, reopen Reopen) store.Store {
	for i := range 3 {
		admit(t, s, &store.Reservation{Record: at(time.Duration(i) * time.Second), Holds: []audit.Hold{rate("w", 3, 1, time.Minute)}})
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = reopen(t)
	a, err := s.Reserve(ctx, &store.Reservation{Record: at(10 * time.Second), Holds: []audit.Hold{rate("w", 3, 1, time.Minute)}})
	if err != nil || a.Result != store.OverLimit || a.Used != 3 {
		t.Fatalf("after reopening: %+v, %v; want OverLimit with Used 3", a, err)
	}
	if len(window(t, s, "w", t0.Add(10*time.Second))) != 3 {
		t.Fatal("window entries lost across restart")
	}
	return s
}
