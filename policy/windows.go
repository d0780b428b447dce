package policy

import (
	"github.com/keybrake/keybrake/money"
)

// budgetLimits appends the limits of the grant's and the vendor's Budgets
// that a call of amount (moves: it moves money) and count billable units
// must fit on day: weeks and months, rolling windows, the call's run. It
// returns the verdict refusing the call when one cannot be counted.
func (p *Policy) budgetLimits(limits []Limit, r Request, g *Grant, shared *VendorLimits, cv *converter, moves bool, count int64, day string) ([]Limit, Verdict, bool) {
	if g.Budgets.none() && (shared == nil || shared.Budgets.none()) {
		return limits, Verdict{}, true // the common case builds no key
	}
	base := g.rulesFor(r.Agent, r.Vendor).base
	agent := "agent/" + r.Agent + "/" + r.Vendor + "/"
	var ok bool
	var v Verdict
	if limits, v, ok = calendarLimits(limits, &g.Budgets, agent, base, cv, moves, count, day); !ok {
		return nil, v, false
	}
	if shared != nil {
		if limits, v, ok = calendarLimits(limits, &shared.Budgets, "vendor/"+r.Vendor+"/", "vendors."+r.Vendor, cv, moves, count, day); !ok {
			return nil, v, false
		}
	}
	if limits, v, ok = rateLimits(limits, g.Rates, agent, cv, moves); !ok {
		return nil, v, false
	}
	if shared != nil {
		if limits, v, ok = rateLimits(limits, shared.Rates, "vendor/"+r.Vendor+"/", cv, moves); !ok {
			return nil, v, false
		}
	}
	return runLimits(limits, r, g.PerRun, agent, base, cv, moves)
}

// calendarLimits appends the weekly and monthly limits of b, whose
// counter keys start with prefix and whose rules with base.
func calendarLimits(limits []Limit, b *Budgets, prefix, base string, cv *converter, moves bool, count int64, day string) ([]Limit, Verdict, bool) {
	for _, pd := range periodsOf(b, day) {
		if moves && pd.cap != nil {
			l := pd.capLimit(prefix, base, b.AlertAt)
			add, v, ok := cv.counted(*pd.cap, l.Rule)
			if !ok {
				return nil, v, false
			}
			l.Add = add
			limits = append(limits, l)
		}
		if count > 0 && pd.count > 0 {
			l := pd.countLimit(prefix, base, b.AlertAt)
			l.Add = count
			limits = append(limits, l)
		}
	}
	return limits, Verdict{}, true
}

// rateLimits appends the rolling windows: a count window for every call,
// a spend window for a call that moves money.
func rateLimits(limits []Limit, rates []*Rate, prefix string, cv *converter, moves bool) ([]Limit, Verdict, bool) {
	for _, rt := range rates {
		l := rt.limit(prefix)
		if rt.Spend == nil {
			l.Add = 1
			limits = append(limits, l)
			continue
		}
		if !moves {
			continue
		}
		add, v, ok := cv.counted(*rt.Spend, rt.ID)
		if !ok {
			return nil, v, false
		}
		l.Add = add
		limits = append(limits, l)
	}
	return limits, Verdict{}, true
}

// runLimits appends the call's run budget, or refuses a call under
// per_run that names no run, or a bad one.
func runLimits(limits []Limit, r Request, rb *RunBudget, prefix, base string, cv *converter, moves bool) ([]Limit, Verdict, bool) {
	if rb == nil {
		return limits, Verdict{}, true
	}
	rid := base + ".per_run"
	if r.Run == "" {
		if rb.AllowNoRun {
			return limits, Verdict{}, true
		}
		return nil, Verdict{Decision: Blocked, Rule: rid, Code: "keybrake_no_run",
			Reason: "agent " + r.Agent + " has a per_run budget on " + r.Vendor + " and the call names no run; tag it with its run (keybrake.WithRun, the Keybrake-Run header) or set allow_no_run"}, false
	}
	if err := CheckRun(r.Run); err != nil {
		return nil, Verdict{Decision: Blocked, Rule: rid, Code: "keybrake_bad_run", Reason: err.Error()}, false
	}
	// "r:" keeps a run named like a date from reading as a day's
	// counter, which a Prune would drop.
	key := "run/" + r.Agent + "/" + r.Vendor + "/r:" + r.Run + "/"
	if moves && rb.Cap != nil {
		add, v, ok := cv.counted(*rb.Cap, rid+".cap")
		if !ok {
			return nil, v, false
		}
		cur := string(rb.Cap.Currency)
		limits = append(limits, Limit{Key: key + cur, Max: rb.Cap.Micros, Add: add, Unit: cur, Rule: rid + ".cap", Kind: RunLimit, Period: r.Run})
	}
	if rb.Count > 0 {
		limits = append(limits, Limit{Key: key + "calls", Max: rb.Count, Add: 1, Unit: "calls", Rule: rid + ".count", Kind: RunLimit, Period: r.Run})
	}
	return limits, Verdict{}, true
}

// BudgetLimits lists every weekly and monthly limit and rolling window of
// b, the Budgets of agent's grant on vendor (of the vendor's shared
// section when agent is ""), whose rules start with base, with the keys
// Limits counts them under on day. It is for reading them (keybrake
// status): Add is zero.
func BudgetLimits(agent, vendor, base string, b *Budgets, day string) []Limit {
	if !validDay(day) {
		return nil
	}
	prefix := "agent/" + agent + "/" + vendor + "/"
	if agent == "" {
		prefix = "vendor/" + vendor + "/"
	}
	var out []Limit
	for _, pd := range periodsOf(b, day) {
		if pd.cap != nil {
			out = append(out, pd.capLimit(prefix, base, b.AlertAt))
		}
		if pd.count > 0 {
			out = append(out, pd.countLimit(prefix, base, b.AlertAt))
		}
	}
	for _, rt := range b.Rates {
		out = append(out, rt.limit(prefix))
	}
	return out
}

// capLimit and countLimit are pd's money cap and unit count, with no Add:
// the one key, rule and period Limits counts them under.
func (pd period) capLimit(prefix, base string, alertAt []int64) Limit {
	cur := string(pd.cap.Currency)
	return Limit{Key: prefix + pd.name + "/" + pd.end + "/" + cur, Max: pd.cap.Micros, Unit: cur,
		Rule: base + "." + pd.name + "ly_cap", Kind: pd.kind, Period: pd.end, AlertAt: alertAt}
}

func (pd period) countLimit(prefix, base string, alertAt []int64) Limit {
	return Limit{Key: prefix + pd.name + "/" + pd.end + "/units", Max: pd.count, Unit: "units",
		Rule: base + "." + pd.name + "ly_count", Kind: pd.kind, Period: pd.end, AlertAt: alertAt}
}

// limit is the rolling window rt under prefix, with no Add.
func (rt *Rate) limit(prefix string) Limit {
	l := Limit{Key: prefix + rt.key, Max: rt.Count, Unit: "calls", Rule: rt.ID, Kind: RateLimit, Window: rt.Per, Halt: rt.Halt}
	if rt.Spend != nil {
		l.Max, l.Unit = rt.Spend.Micros, string(rt.Spend.Currency)
	}
	return l
}

// period is a calendar week or month of Budgets, named by its last day.
type period struct {
	cap   *money.Amount
	count int64
	name  string // "week", "month": the key's segment, and the rule's "weekly_cap"
	end   string
	kind  LimitKind
}

func periodsOf(b *Budgets, day string) []period {
	if b.WeeklyCap == nil && b.MonthlyCap == nil && b.WeeklyCount == 0 && b.MonthlyCount == 0 {
		return nil
	}
	_, sunday := weekOf(day)
	_, last := monthOf(day)
	return []period{
		{b.WeeklyCap, b.WeeklyCount, "week", sunday, WeeklyLimit},
		{b.MonthlyCap, b.MonthlyCount, "month", last, MonthlyLimit},
	}
}
