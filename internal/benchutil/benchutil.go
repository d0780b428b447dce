// Package benchutil is what the bench commands (bench/calls, bench/proxy,
// bench/revocation, bench/fleet) share: making n calls from a number of
// goroutines and timing each, percentiles, and the way figures print. The
// tables and their targets stay with each command.
package benchutil

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Load makes calls 0 to n-1 of call from `callers` goroutines, each taking
// the next number, and returns every call's latency (in no particular
// order) and the wall time. The first error stops every goroutine after
// its call in progress, and is returned with what was measured.
func Load(callers, n int, call func(i int) error) ([]time.Duration, time.Duration, error) {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		all   = make([]time.Duration, 0, n)
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, n/callers+1)
			var err error
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					break
				}
				t0 := time.Now()
				if err = call(i); err != nil {
					next.Store(int64(n)) // stop the others
					break
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			if first == nil {
				first = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, time.Since(start), first
}

// Percentile is the p-th percentile of d (nearest rank: the smallest value
// at least p percent of d are at or below), 0 for no values. d is not
// changed.
func Percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = min(max(i, 1), len(s))
	return s[i-1]
}

// Micros prints a latency in microseconds, to the microsecond: "123 µs".
func Micros(d time.Duration) string {
	return fmt.Sprintf("%d µs", d.Round(time.Microsecond)/time.Microsecond)
}

// Interleave gives each of k subjects n calls in `rounds` rounds: in every
// round each subject makes its share (run(i, share)), starting with a
// different subject each round, so that the noise of a shared machine
// falls on all of them alike rather than on whichever ran when it struck.
// It stops at the first error run returns.
func Interleave(k, n, rounds int, run func(i, share int) error) error {
	rounds = max(rounds, 1)
	for r := 0; r < rounds; r++ {
		share := n / rounds
		if r < n%rounds {
			share++
		}
		for j := 0; j < k; j++ {
			if err := run((r+j)%k, share); err != nil {
				return err
			}
		}
	}
	return nil
}
