package replay

import (
	"slices"
	"sort"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// Report is what a policy would have decided of recorded calls. It is a
// value: Replay builds it, and nothing in it refers back to the records.
type Report struct {
	Policy string // the hash of the policy replayed
	// Since is when the reported calls start; the calls before it were
	// replayed only to fill the counters.
	Since time.Time
	// InForce are the hashes of the policies the calls were decided
	// under, in the order first seen, from the calls and the
	// policy_reload events among them.
	InForce []string
	Agents  []*Agent // by name
}

// Agent is one agent's part of a Report.
type Agent struct {
	Name     string
	Replayed int // calls decided again
	// Changed are the calls whose decision changes, in order.
	Changed []Call
	// Reruled are the calls refused as recorded, but by another rule or
	// with another code: a different limit fills first.
	Reruled []Call
	// Stopped is the money, by currency, that calls the recorded policy
	// let through moved and the new one refuses: what it settled, or
	// what it holds while its outcome is unknown.
	Stopped []money.Amount
	// LetThrough is the money, by currency, that calls refused as
	// recorded would have moved had the new policy let them through: an
	// estimate, their amount as the new policy decides it.
	LetThrough []money.Amount
	// Estimated counts the calls only the new policy admits: what they
	// add to its counters is their amount as decided, not a settlement.
	Estimated int
	// FirstCapped is the first call the new policy caps that the
	// recorded one did not; nil for none.
	FirstCapped *Call
	// Uncertain are the calls whose new decision rests on inputs the
	// record does not hold, each with why: they are decided as well as
	// the record allows, and never counted as Changed.
	Uncertain []Call
	// NotReplayed counts, by reason, the recorded refusals decided
	// outside the policy (a kill switch, a trip, the store, an invalid
	// request, a decision this replay does not know): the new policy
	// cannot tell what they would have been.
	NotReplayed map[string]int
}

// Call is one recorded call decided again.
type Call struct {
	ID        uint64
	Time      time.Time
	Agent     string
	Vendor    string
	Method    string
	Path      string
	Operation string
	Amount    money.Amount // as the new policy decides it, or as recorded when it refuses before pricing
	From, To  policy.Verdict
	// Why says, for an uncertain call, which input the record lacks.
	Why string
}

// Replay decides the records again under p, in the order given (the
// store's ID order, which is the order its decisions were taken), and
// reports per agent what changes. Records before since only fill the
// counters: give the records from the start of the longest period p
// counts (Warmup) so that the first reported call sees its day's, week's
// and month's counters as full as they were. Replay is pure: no I/O, no
// clock; records are not modified.
func Replay(p *policy.Policy, records []*audit.Record, since time.Time) *Report {
	s := &sim{p: p, counters: newCounters(), agents: map[string]*Agent{}, since: since,
		tripped: map[string]bool{}, simTripped: map[string]string{}}
	rep := &Report{Policy: p.Hash, Since: since}
	before := "" // the policy of the last record before since: in force at since
	for _, r := range records {
		switch {
		case r.PolicyHash == "":
		case r.Time.Before(since):
			before = r.PolicyHash
		default:
			if before != "" {
				rep.InForce, before = append(rep.InForce, before), ""
			}
			if !slices.Contains(rep.InForce, r.PolicyHash) {
				rep.InForce = append(rep.InForce, r.PolicyHash)
			}
		}
		s.record(r)
	}
	for _, name := range sortedNames(s.agents) {
		rep.Agents = append(rep.Agents, s.agents[name])
	}
	return rep
}

// Warmup is when the records Replay needs for calls from since start:
// the start of since's day in p's time zone, or of its week or month when
// p counts weeks or months, whichever is earliest, less p's longest
// rolling window. The counters p keeps for good (per run, per charge)
// count only the calls from there.
func Warmup(p *policy.Policy, since time.Time) time.Time {
	t := since.In(p.Zone())
	start := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, p.Zone())
	weeks, months, window := periods(p)
	if weeks {
		start = start.AddDate(0, 0, -((int(start.Weekday()) + 6) % 7))
	}
	if first := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, p.Zone()); months && first.Before(start) {
		start = first
	}
	return start.Add(-window)
}

// periods says whether p counts calendar weeks, calendar months, and its
// longest rolling window.
func periods(p *policy.Policy) (weeks, months bool, window time.Duration) {
	budgets := func(b *policy.Budgets) {
		weeks = weeks || b.WeeklyCap != nil || b.WeeklyCount > 0
		months = months || b.MonthlyCap != nil || b.MonthlyCount > 0
		for _, r := range b.Rates {
			window = max(window, r.Per)
		}
	}
	for _, a := range p.Agents {
		for _, g := range a.Grants {
			budgets(&g.Budgets)
		}
	}
	for _, v := range p.Vendors {
		budgets(&v.Budgets)
	}
	return weeks, months, window
}

func sortedNames(m map[string]*Agent) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// addTo adds a to the per-currency sums in l.
func addTo(l []money.Amount, a money.Amount) []money.Amount {
	if a.IsZero() {
		return l
	}
	for i := range l {
		if l[i].Currency == a.Currency {
			if sum, err := l[i].Add(a); err == nil {
				l[i] = sum
			}
			return l
		}
	}
	l = append(l, a)
	slices.SortFunc(l, func(x, y money.Amount) int {
		if x.Currency < y.Currency {
			return -1
		}
		if x.Currency > y.Currency {
			return 1
		}
		return 0
	})
	return l
}
