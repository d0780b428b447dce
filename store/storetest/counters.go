package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// testCountersByPrefix: Counters lists exactly the counters under a
// prefix, bytewise in key order, across more than one page, with their
// totals, and stops at fn's error.
func testCountersByPrefix(t *testing.T, s store.Store) {
	// Keys around the prefix "c/a/" that must not be listed: one sorting
	// just before it, one that only starts like it, and one after.
	var holds []audit.Hold
	want := map[string]int64{}
	for i := range 300 {
		k := fmt.Sprintf("c/a/cus_%03d/2025-03-14/USD", i)
		want[k] = int64(i + 1)
		holds = append(holds, hold(k, -1, int64(i+1)))
	}
	holds = append(holds, hold("c/a.", -1, 7), hold("c/ab/cus_1", -1, 7), hold("c/b/cus_1", -1, 7), hold("c/", -1, 7))
	// Upper case sorts before lower case bytewise, whatever a database's
	// collation says.
	holds = append(holds, hold("c/a/Z", -1, 9))
	want["c/a/Z"] = 9
	for i := 0; i < len(holds); i += 50 {
		admit(t, s, &store.Reservation{Record: call(i), Holds: holds[i:min(i+50, len(holds))]})
	}

	var keys []string
	err := s.Counters(ctx, "c/a/", func(key string, c store.Counter) error {
		if w, ok := want[key]; !ok || c != (store.Counter{Pending: w}) {
			t.Errorf("Counters gave %q = %+v, want it only if listed with Pending %d", key, c, w)
		}
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		t.Fatalf("Counters: %v", err)
	}
	if len(keys) != len(want) {
		t.Fatalf("Counters listed %d keys, want %d", len(keys), len(want))
	}
	if keys[0] != "c/a/Z" {
		t.Errorf("first key %q, want c/a/Z (bytewise order)", keys[0])
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Fatalf("keys out of bytewise order: %q then %q", keys[i-1], keys[i])
		}
	}

	// A settled counter is listed with what it settled.
	id := admit(t, s, &store.Reservation{Record: call(1000), Holds: []audit.Hold{hold("s/x", -1, 40)}}).ID
	if err := s.Complete(ctx, &store.Completion{ID: id, Outcome: audit.Settled, Settled: []int64{25}}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	var got []store.Counter
	if err := s.Counters(ctx, "s/", func(_ string, c store.Counter) error { got = append(got, c); return nil }); err != nil {
		t.Fatalf("Counters(s/): %v", err)
	}
	if len(got) != 1 || got[0] != (store.Counter{Settled: 25}) {
		t.Errorf("Counters(s/) = %+v, want one counter settled 25", got)
	}

	// Nothing under a prefix no key has.
	if err := s.Counters(ctx, "none/", func(k string, _ store.Counter) error {
		t.Errorf("Counters(none/) gave %q", k)
		return nil
	}); err != nil {
		t.Fatalf("Counters(none/): %v", err)
	}

	// fn's error stops the walk and is returned as it is.
	stop := errors.New("stop")
	n := 0
	err = s.Counters(ctx, "c/a/", func(string, store.Counter) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Counters with fn failing = %v after %d calls, want stop after 1", err, n)
	}
}
