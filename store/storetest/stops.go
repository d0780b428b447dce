package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// StopsWithin is how soon a stop set through one Store must reach the
// WatchStops of another on the same data: the revocation latency Keybrake
// promises a fleet.
const StopsWithin = time.Second

// RunStops runs the conformance suite of store.Stops. open returns a new,
// empty store that implements it, and a Reopen that opens another Store
// on the same data (while the first is still open, or after it is
// closed); RunStops closes what they return.
//
//	func TestStops(t *testing.T) {
//		storetest.RunStops(t, func(t *testing.T) (store.Store, storetest.Reopen) {
//			dsn := testenv.PostgresSchema(t)
//			return open(t, dsn), func(t *testing.T) store.Store { return open(t, dsn) }
//		})
//	}
func RunStops(t *testing.T, open func(t *testing.T) (store.Store, Reopen)) {
	t.Helper()
	h := func(test func(t *testing.T, s store.Stops, reopen func(t *testing.T) store.Stops)) func(t *testing.T) {
		return func(t *testing.T) {
			s, reopen := open(t)
			closeAtEnd(t, s)
			st, ok := s.(store.Stops)
			if !ok {
				t.Fatalf("%T does not implement store.Stops", s)
			}
			test(t, st, func(t *testing.T) store.Stops {
				r := reopen(t)
				closeAtEnd(t, r)
				return r.(store.Stops)
			})
		}
	}
	t.Run("SetReadClear", h(testStopsSetReadClear))
	t.Run("Idempotent", h(testStopsIdempotent))
	t.Run("Invalid", h(testStopsInvalid))
	t.Run("Audited", h(testStopsAudited))
	t.Run("SurviveReopen", h(testStopsSurviveReopen))
	t.Run("OneWinnerAcrossStores", h(testStopsOneWinner))
	t.Run("WatchSeesAnotherStore", h(testStopsWatch))
	t.Run("AfterClose", h(testStopsAfterClose))
}

func closeAtEnd(t *testing.T, s store.Store) {
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
}

// stopAt is a stop made at a whole millisecond, which every store keeps.
func stopAt(kind store.StopKind, subject, by string) store.Stop {
	return store.Stop{Kind: kind, Subject: subject, By: by, Reason: "the on-call said so",
		Time: time.Now().UTC().Truncate(time.Millisecond)}
}

func sameStops(got, want []store.Stop) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || g.Subject != w.Subject || g.By != w.By || g.Reason != w.Reason || !g.Time.Equal(w.Time) {
			return false
		}
	}
	return true
}

func readStops(t *testing.T, s store.Stops) []store.Stop {
	t.Helper()
	got, err := s.ReadStops(ctx)
	if err != nil {
		t.Fatalf("ReadStops: %v", err)
	}
	return got
}

func setStop(t *testing.T, s store.Stops, st store.Stop) {
	t.Helper()
	got, changed, err := s.SetStop(ctx, st)
	if err != nil || !changed || !sameStops([]store.Stop{got}, []store.Stop{st}) {
		t.Fatalf("SetStop(%+v) = %+v, %v, %v; want it set", st, got, changed, err)
	}
}

func testStopsSetReadClear(t *testing.T, s store.Stops, _ func(*testing.T) store.Stops) {
	if got := readStops(t, s); len(got) != 0 {
		t.Fatalf("a new store has stops: %+v", got)
	}
	key := stopAt(store.StopKey, "kbk_0123456789", "keybrake keys revoke --db on ops-1 by alice")
	halt := stopAt(store.StopHalt, "", "keybrake halt --db on ops-1 by alice")
	one := stopAt(store.StopHalt, "refund-bot", "keybrake halt --db on ops-1 by bob")
	rev := stopAt(store.StopRevoke, "refund-bot", "Brake.Revoke in pid 42 on web-1")
	for _, st := range []store.Stop{key, halt, rev, one} {
		setStop(t, s, st)
	}
	want := []store.Stop{halt, one, key, rev} // by kind, then subject
	if got := readStops(t, s); !sameStops(got, want) {
		t.Fatalf("ReadStops = %+v\nwant %+v", got, want)
	}
	changed, err := s.ClearStop(ctx, store.Stop{Kind: store.StopHalt, Subject: "refund-bot", By: "keybrake resume --db on ops-1 by bob"})
	if err != nil || !changed {
		t.Fatalf("ClearStop = %v, %v", changed, err)
	}
	if got := readStops(t, s); !sameStops(got, []store.Stop{halt, key, rev}) {
		t.Fatalf("after clearing one halt, ReadStops = %+v", got)
	}
	// A stop made with no time gets the store's.
	before := time.Now().Add(-time.Minute)
	got, changed, err := s.SetStop(ctx, store.Stop{Kind: store.StopRevoke, Subject: "texter", By: "Brake.Revoke in pid 42 on web-1"})
	if err != nil || !changed || got.Time.Before(before) || got.Time.After(time.Now().Add(time.Minute)) {
		t.Fatalf("SetStop with no time = %+v, %v, %v", got, changed, err)
	}
}

func testStopsIdempotent(t *testing.T, s store.Stops, _ func(*testing.T) store.Stops) {
	first := stopAt(store.StopHalt, "", "keybrake halt --db on ops-1 by alice")
	setStop(t, s, first)
	again := first
	again.By, again.Time = "Brake.Halt in pid 7 on web-2", first.Time.Add(time.Second)
	got, changed, err := s.SetStop(ctx, again)
	if err != nil || changed || !sameStops([]store.Stop{got}, []store.Stop{first}) {
		t.Fatalf("SetStop of a stop in force = %+v, %v, %v; want the first one, unchanged", got, changed, err)
	}
	lift := store.Stop{Kind: store.StopHalt, By: "keybrake resume --db on ops-1 by alice"}
	for i, want := range []bool{true, false} {
		if changed, err := s.ClearStop(ctx, lift); err != nil || changed != want {
			t.Fatalf("ClearStop #%d = %v, %v; want %v", i+1, changed, err, want)
		}
	}
	never := store.Stop{Kind: store.StopRevoke, Subject: "nobody", By: "keybrake restore --db"}
	if changed, err := s.ClearStop(ctx, never); err != nil || changed {
		t.Fatalf("ClearStop of a stop never set = %v, %v", changed, err)
	}
	if got := readStops(t, s); len(got) != 0 {
		t.Fatalf("stops left: %+v", got)
	}
}

func testStopsInvalid(t *testing.T, s store.Stops, _ func(*testing.T) store.Stops) {
	for _, st := range []store.Stop{
		{Kind: "pause", Subject: "refund-bot", By: "x"},
		{Kind: store.StopRevoke, By: "x"},
		{Kind: store.StopKey, By: "x"},
		{Kind: store.StopHalt},
		{Kind: store.StopRevoke, Subject: "refund-bot"},
	} {
		if _, _, err := s.SetStop(ctx, st); err == nil {
			t.Errorf("SetStop(%+v) succeeded", st)
		}
	}
	if got := readStops(t, s); len(got) != 0 {
		t.Fatalf("a refused stop was written: %+v", got)
	}
}

// Every change is one audit record; a change that changes nothing, none.
func testStopsAudited(t *testing.T, s store.Stops, _ func(*testing.T) store.Stops) {
	st := s.(store.Store)
	rev := stopAt(store.StopRevoke, "refund-bot", "keybrake revoke --db on ops-1 by alice")
	setStop(t, s, rev)
	s.SetStop(ctx, rev)
	key := stopAt(store.StopKey, "kbk_0123456789", "keybrake keys revoke --db on ops-1 by alice")
	setStop(t, s, key)
	halt := stopAt(store.StopHalt, "", "Brake.Halt in pid 42 on web-1")
	setStop(t, s, halt)
	s.ClearStop(ctx, store.Stop{Kind: store.StopRevoke, Subject: "refund-bot", By: "keybrake restore --db on ops-1 by bob"})
	s.ClearStop(ctx, store.Stop{Kind: store.StopRevoke, Subject: "refund-bot", By: "keybrake restore --db on ops-1 by bob"})
	var recs []*audit.Record
	if err := st.Query(ctx, audit.Query{}, func(r *audit.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	type ev struct{ event, agent, key, flag string }
	want := []ev{{"revoke", "refund-bot", "", "true"}, {"revoke", "", "kbk_0123456789", "true"}, {"halt", "", "", "true"}, {"revoke", "refund-bot", "", "false"}}
	if len(recs) != len(want) {
		t.Fatalf("%d audit records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, r := range recs {
		flag := r.Params["revoked"]
		if r.Event == "halt" {
			flag = r.Params["halted"]
		}
		got := ev{r.Event, r.Agent, r.KeyID, flag}
		if got != want[i] || r.Vendor != "keybrake" || r.Outcome != audit.None || r.Params["by"] == "" || r.Reason == "" {
			t.Errorf("record %d: %+v (%+v), want %+v", i+1, got, r, want[i])
		}
	}
	if _, err := st.Verify(ctx); err != nil {
		t.Fatalf("Verify after stops: %v", err)
	}
}

func testStopsSurviveReopen(t *testing.T, s store.Stops, reopen func(*testing.T) store.Stops) {
	halt := stopAt(store.StopHalt, "", "keybrake halt --db on ops-1 by alice")
	setStop(t, s, halt)
	if err := s.(store.Store).Close(); err != nil {
		t.Fatal(err)
	}
	r := reopen(t)
	if got := readStops(t, r); !sameStops(got, []store.Stop{halt}) {
		t.Fatalf("after reopening, ReadStops = %+v", got)
	}
}

// Two processes set one stop at once: one of them set it.
func testStopsOneWinner(t *testing.T, s store.Stops, reopen func(*testing.T) store.Stops) {
	r := reopen(t)
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won int
	)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			on := []store.Stops{s, r}[i%2]
			_, changed, err := on.SetStop(ctx, stopAt(store.StopHalt, "", "racer"))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if changed {
				won++
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d SetStops of one stop changed it, want 1", won)
	}
}

// A watch delivers the stops as it starts, then every change another
// Store makes, within StopsWithin, and ends with its context.
func testStopsWatch(t *testing.T, s store.Stops, reopen func(*testing.T) store.Stops) {
	before := stopAt(store.StopRevoke, "texter", "keybrake revoke --db on ops-1 by alice")
	setStop(t, s, before)
	r := reopen(t)
	got := make(chan []store.Stop, 16)
	wctx, cancel := context.WithCancel(ctx)
	ended := make(chan error, 1)
	go func() {
		ended <- r.WatchStops(wctx, func(st []store.Stop, err error) {
			if err != nil {
				t.Errorf("WatchStops: %v", err)
				return
			}
			got <- st
		})
	}()
	expect := func(what string, want []store.Stop) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := time.After(StopsWithin + StopsWithin/2)
		for {
			select {
			case st := <-got:
				if sameStops(st, want) {
					return time.Since(start)
				}
			case <-deadline:
				t.Fatalf("%s: the other Store's watch did not see %+v", what, want)
			}
		}
	}
	expect("at the start", []store.Stop{before})
	for i := range 3 {
		halt := stopAt(store.StopHalt, "", "keybrake halt --db on ops-1 by alice")
		setStop(t, s, halt)
		if d := expect("a halt", []store.Stop{halt, before}); d > StopsWithin {
			t.Errorf("round %d: the halt took %v to reach the other Store, want at most %v", i, d, StopsWithin)
		}
		if _, err := s.ClearStop(ctx, halt); err != nil {
			t.Fatal(err)
		}
		if d := expect("a resume", []store.Stop{before}); d > StopsWithin {
			t.Errorf("round %d: the resume took %v to reach the other Store, want at most %v", i, d, StopsWithin)
		}
	}
	cancel()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("WatchStops ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WatchStops did not end with its context")
	}
	select {
	case st := <-got:
		t.Errorf("fn was called after WatchStops returned: %+v", st)
	default:
	}
}

func testStopsAfterClose(t *testing.T, s store.Stops, _ func(*testing.T) store.Stops) {
	if err := s.(store.Store).Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetStop(ctx, stopAt(store.StopHalt, "", "x")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("SetStop after Close: %v", err)
	}
	if _, err := s.ClearStop(ctx, stopAt(store.StopHalt, "", "x")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ClearStop after Close: %v", err)
	}
	if _, err := s.ReadStops(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ReadStops after Close: %v", err)
	}
	if err := s.WatchStops(ctx, func([]store.Stop, error) {}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("WatchStops after Close: %v", err)
	}
}
