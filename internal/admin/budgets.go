package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// budgetLimitsOf lists the policy's weekly and monthly limits and rolling
// windows, with the keys policy.Limits gives them on day: each agent's
// grants in name order, then the vendors'. Per-run budgets are not listed:
// runs come and go, and `keybrake audit --run` shows one.
func budgetLimitsOf(pol *policy.Policy, day string) []LimitStatus {
	var out []LimitStatus
	add := func(agent, vendor, base string, b *policy.Budgets) {
		for _, l := range policy.BudgetLimits(agent, vendor, base, b, day) {
			ls := LimitStatus{Agent: agent, Vendor: vendor, Rule: l.Rule, Key: l.Key, Unit: l.Unit, Max: l.Max, Window: l.Window}
			if l.Window == 0 {
				ls.Frees = policy.PeriodEnd(l.Period, pol.Zone())
			}
			out = append(out, ls)
		}
	}
	for _, name := range sortedKeys(pol.Agents) {
		a := pol.Agents[name]
		for _, v := range sortedKeys(a.Grants) {
			add(name, v, "agents."+name+"."+v, &a.Grants[v].Budgets)
		}
	}
	for _, v := range sortedKeys(pol.Vendors) {
		add("", v, "vendors."+v, &pol.Vendors[v].Budgets)
	}
	return out
}

// readWindow fills l with what its window holds at now, and when its
// oldest call leaves it.
func readWindow(ctx context.Context, st store.Store, l *LimitStatus, now time.Time) error {
	es, err := st.Window(ctx, l.Key, now)
	if err != nil {
		return fmt.Errorf("admin: reading window %s: %w", l.Key, err)
	}
	for _, e := range es {
		l.Settled += e.Settled
		l.Pending += e.Pending
		l.Unknown += e.Unknown
	}
	l.Frees = store.FirstLeave(es)
	return nil
}
