package benchutil_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybrake/keybrake/internal/benchutil"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i))
	}
	for _, c := range []struct {
		p    int
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0, 1}} {
		if got := benchutil.Percentile(d, c.p); got != c.want {
			t.Errorf("p%d = %d, want %d", c.p, got, c.want)
		}
	}
	if d[0] != 100 {
		t.Error("Percentile sorted its argument")
	}
	if benchutil.Percentile(nil, 50) != 0 {
		t.Error("no values: want 0")
	}
	if got := benchutil.Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("one value: %d", got)
	}
}

func TestLoadMakesEveryCallOnceAndStopsAtAnError(t *testing.T) {
	var seen [1000]atomic.Int32
	lat, _, err := benchutil.Load(8, len(seen), func(i int) error { seen[i].Add(1); return nil })
	if err != nil || len(lat) != len(seen) {
		t.Fatalf("Load: %d latencies, %v", len(lat), err)
	}
	for i := range seen {
		if seen[i].Load() != 1 {
			t.Fatalf("call %d made %d times", i, seen[i].Load())
		}
	}
	boom := errors.New("boom")
	var calls atomic.Int32
	_, _, err = benchutil.Load(4, 1_000_000, func(i int) error {
		calls.Add(1)
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls.Load() > 100_000 {
		t.Fatalf("Load after an error: %v, %d calls made", err, calls.Load())
	}
}

func TestMicros(t *testing.T) {
	if got := benchutil.Micros(1500 * time.Nanosecond); got != "2 µs" {
		t.Errorf("Micros = %q", got)
	}
}

func TestInterleaveGivesEverySubjectItsShareInTurn(t *testing.T) {
	var order []int
	total := map[int]int{}
	if err := benchutil.Interleave(3, 10, 4, func(i, share int) error {
		order = append(order, i)
		total[i] += share
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []int{0, 1, 2, 1, 2, 0, 2, 0, 1, 0, 1, 2}
	if len(order) != len(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
	for i := 0; i < 3; i++ {
		if total[i] != 10 {
			t.Errorf("subject %d made %d calls, want 10", i, total[i])
		}
	}
	boom := errors.New("boom")
	if err := benchutil.Interleave(2, 4, 2, func(int, int) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Interleave = %v, want the run's error", err)
	}
}
