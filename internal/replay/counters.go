package replay

import (
	"slices"
	"strings"
	"time"

	"github.com/keybrake/keybrake/policy"
)

// counters are the store's counters and rolling windows, simulated in
// memory as store.Store.Reserve counts them: a counter sums what its
// holds still count for good (a day, a week, a run, a charge); a window
// sums the holds of the same key whose records' Time is after the call's
// Time minus the window, later records included (the store counts those
// too, for calls reserved out of time order). A negative Max is no limit.
// The zero value is not usable; use newCounters.
type counters struct {
	totals  map[string]int64
	windows map[string][]entry
}

// entry is one call's hold in a rolling window.
type entry struct {
	at     time.Time
	amount int64
}

func newCounters() *counters {
	return &counters{totals: map[string]int64{}, windows: map[string][]entry{}}
}

// fit reports whether every limit fits at time at. When one does not, it
// returns the first such limit's index, what its counter or window held,
// and, for a window, when enough will have left it for the call to fit
// (zero: never, the call alone is over), as store.Admission does.
func (c *counters) fit(limits []policy.Limit, at time.Time) (hold int, used int64, frees time.Time, ok bool) {
	for i, l := range limits {
		if l.Max < 0 {
			continue
		}
		if l.Window <= 0 {
			if used := c.totals[l.Key]; used+l.Add > l.Max {
				return i, used, time.Time{}, false
			}
			continue
		}
		in := c.inWindow(l.Key, at, l.Window)
		used := int64(0)
		for _, e := range in {
			used += e.amount
		}
		if used+l.Add <= l.Max {
			continue
		}
		return i, used, freesAt(in, used, l), false
	}
	return 0, 0, time.Time{}, true
}

// inWindow is what key's window counts at time at, oldest first.
func (c *counters) inWindow(key string, at time.Time, window time.Duration) []entry {
	var in []entry
	from := at.Add(-window)
	for _, e := range c.windows[key] {
		if e.at.After(from) {
			in = append(in, e)
		}
	}
	return in
}

// freesAt is when enough of in, which holds used, has left l's window for
// l.Add to fit; zero when l.Add alone is over l.Max.
func freesAt(in []entry, used int64, l policy.Limit) time.Time {
	if l.Add > l.Max {
		return time.Time{}
	}
	oldestFirst := slices.SortedFunc(slices.Values(in), func(a, b entry) int { return a.at.Compare(b.at) })
	for _, e := range oldestFirst {
		used -= e.amount
		if used+l.Add <= l.Max {
			return e.at.Add(l.Window)
		}
	}
	return time.Time{}
}

// outOfOrder bounds how much earlier than the one before a call may be
// recorded (records come in the order the store wrote them, and a call's
// Time is when it arrived): window entries older than that before a
// window are forgotten, so a long log costs no more a call than a short one.
const outOfOrder = time.Minute

// forget drops the entries before from, which no later call's window
// counts.
func forget(es []entry, from time.Time) []entry {
	i := 0
	for i < len(es) && es[i].at.Before(from) {
		i++
	}
	return es[i:]
}

// count adds amounts[i] to limits[i]'s counter or window, for a call at
// time at.
func (c *counters) count(limits []policy.Limit, amounts []int64, at time.Time) {
	for i, l := range limits {
		if amounts[i] == 0 {
			continue
		}
		if l.Window > 0 {
			c.windows[l.Key] = append(forget(c.windows[l.Key], at.Add(-l.Window-outOfOrder)), entry{at: at, amount: amounts[i]})
			continue
		}
		if _, ok := c.totals[l.Key]; !ok {
			// Kept for the whole replay: a key of its own, not a
			// substring of the call's keys (policy.Limit.Key).
			l.Key = strings.Clone(l.Key)
		}
		c.totals[l.Key] += amounts[i]
	}
}
