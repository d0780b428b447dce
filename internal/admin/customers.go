package admin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// TopCustomers is how many customers Status lists per per-customer limit:
// the most used first. CustomerLimits.Counted says how many there are.
const TopCustomers = 10

// CustomerLimits is one grant's per-customer daily limit (customers:
// daily_cap or daily_count) and the customers it counted today.
type CustomerLimits struct {
	Agent  string `json:"agent"`
	Vendor string `json:"vendor"`
	Rule   string `json:"rule"` // "agents.refund-bot.stripe.customers.daily_cap"
	// Counted is how many customers have a counter today.
	Counted int `json:"counted"`
	// Top are the customers most used today, at most TopCustomers, each
	// with its Account (the connected account, "" for the platform's own)
	// and Customer set and Max the cap every customer has.
	Top []LimitStatus `json:"top"`
}

// customerLimits reads, for every grant with a per-customer limit, its
// customers' counters of day. Each grant's counters share a prefix
// (policy.Limits: "customer/AGENT/VENDOR/ACCOUNT/CUSTOMER/DAY/UNIT"), so
// one store.Store.Counters walk per grant finds them; it costs in
// proportion to the grant's per-customer counters kept (every day the
// store has not pruned), not to the log.
func customerLimits(ctx context.Context, st store.Store, pol *policy.Policy, day string) ([]CustomerLimits, error) {
	out := []CustomerLimits{}
	for _, name := range sortedKeys(pol.Agents) {
		a := pol.Agents[name]
		for _, v := range sortedKeys(a.Grants) {
			cs := a.Grants[v].Customers
			if cs == nil || (cs.DailyCap == nil && cs.DailyCount <= 0) {
				continue
			}
			base, prefix := "agents."+name+"."+v+".customers.", "customer/"+name+"/"+v+"/"
			var money, count *CustomerLimits
			if cs.DailyCap != nil {
				money = &CustomerLimits{Agent: name, Vendor: v, Rule: base + "daily_cap"}
			}
			if cs.DailyCount > 0 {
				count = &CustomerLimits{Agent: name, Vendor: v, Rule: base + "daily_count"}
			}
			err := st.Counters(ctx, prefix, func(key string, c store.Counter) error {
				account, customer, d, unit, ok := customerKey(strings.TrimPrefix(key, prefix))
				if !ok || d != day {
					return nil
				}
				l := LimitStatus{Agent: name, Vendor: v, Key: key, Unit: unit, Account: account, Customer: customer,
					Settled: c.Settled, Pending: c.Pending, Unknown: c.Unknown}
				switch {
				case count != nil && unit == "units":
					l.Rule, l.Max = count.Rule, cs.DailyCount
					count.add(l)
				case money != nil && unit == string(cs.DailyCap.Currency):
					l.Rule, l.Max = money.Rule, cs.DailyCap.Micros
					money.add(l)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("admin: reading the per-customer counters of %s: %w", strings.TrimSuffix(base, "."), err)
			}
			for _, l := range []*CustomerLimits{money, count} {
				if l != nil {
					out = append(out, *l)
				}
			}
		}
	}
	return out, nil
}

// add counts a customer and keeps it if it is among the most used: Top
// stays sorted, most used first (then by key), at most TopCustomers long.
func (c *CustomerLimits) add(l LimitStatus) {
	c.Counted++
	if c.Top == nil {
		c.Top = []LimitStatus{}
	}
	i, _ := slices.BinarySearchFunc(c.Top, l, func(a, b LimitStatus) int {
		return cmp.Or(cmp.Compare(b.Used(), a.Used()), strings.Compare(a.Key, b.Key))
	})
	if i >= TopCustomers {
		return
	}
	c.Top = slices.Insert(c.Top, i, l)
	if len(c.Top) > TopCustomers {
		c.Top = c.Top[:TopCustomers]
	}
}

// customerKey splits "ACCOUNT/CUSTOMER/DAY/UNIT", the customer being
// whatever lies between the account and the day (an ID with a slash
// stays whole).
func customerKey(rest string) (account, customer, day, unit string, ok bool) {
	account, rest, ok1 := strings.Cut(rest, "/")
	i := strings.LastIndexByte(rest, '/')
	if !ok1 || i < 0 {
		return "", "", "", "", false
	}
	rest, unit = rest[:i], rest[i+1:]
	j := strings.LastIndexByte(rest, '/')
	if j < 0 {
		return "", "", "", "", false
	}
	return account, rest[:j], rest[j+1:], unit, true
}
