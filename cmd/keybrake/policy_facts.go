package main

import (
	"fmt"
	"strings"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// A fact is one thing a policy says, about one subject: "agent refund-bot
// on stripe" has "daily cap" = "500.00 USD", and the member "allow POST
// /v1/refunds". policy check prints them; policy diff compares two
// policies' facts, so that both describe a policy in the same words.
type fact struct {
	subject string // "agent refund-bot on stripe", "vendor twilio", "every agent"
	key     string // "daily cap"; for a member of a set, the member itself
	value   string // "500.00 USD"; "" for a member
}

// policyFacts lists what p says, subject by subject in a stable order.
func policyFacts(p *policy.Policy) []fact {
	var out []fact
	add := func(subject, key, value string) { out = append(out, fact{subject, key, value}) }
	amount := func(subject, key string, a *money.Amount) {
		if a != nil {
			add(subject, key, a.String())
		}
	}
	count := func(subject, key string, n int64) {
		if n > 0 {
			add(subject, key, fmt.Sprint(n))
		}
	}
	if p.Halt {
		add("every agent", "halted (halt: true)", "")
	}
	if p.Location != nil {
		add("every agent", "time zone of days, weeks and months", p.Location.String())
	}
	for _, v := range sortedKeys(p.Vendors) {
		l, s := p.Vendors[v], "vendor "+v+" (all agents)"
		amount(s, "daily cap", l.DailyCap)
		count(s, "daily count", l.DailyCount)
		for _, f := range budgetFacts(&l.Budgets) {
			add(s, f[0], f[1])
		}
		for _, item := range sortedKeys(l.Prices) {
			t := l.Prices[item]
			amount(s, "price of "+item+" by default", t.Default)
			for _, prefix := range sortedKeys(t.Prefixes) {
				a := t.Prefixes[prefix]
				amount(s, "price of "+item+" to "+prefix, &a)
			}
		}
		for _, k := range sortedKeys(l.Settings) {
			add(s, k, fmt.Sprint(l.Settings[k]))
		}
	}
	for _, c := range sortedKeys(p.FX) {
		for _, r := range p.FX[c] {
			add("fx", r.String(), "")
		}
	}
	for _, name := range sortedKeys(p.Agents) {
		a := p.Agents[name]
		if a.Revoked {
			add("agent "+name, "revoked", "")
		}
		for _, v := range sortedKeys(a.Grants) {
			g, s := a.Grants[v], "agent "+name+" on "+v
			amount(s, "daily cap", g.DailyCap)
			amount(s, "per call max", g.PerCallMax)
			count(s, "daily count", g.DailyCount)
			for _, f := range budgetFacts(&g.Budgets) {
				add(s, f[0], f[1])
			}
			for _, f := range scopeFacts(g) {
				add(s, f[0], f[1])
			}
			amount(s, "approve above", g.ApproveAbove)
			for _, r := range g.Approve {
				add(s, "approve "+r.Method+" "+r.Path.String()+ruleExtras(r), "")
			}
			for _, r := range g.Allow {
				add(s, "allow "+r.Method+" "+r.Path.String()+ruleExtras(r), "")
			}
			if len(g.Allow) == 0 {
				add(s, "allows nothing", "")
			}
		}
	}
	return out
}

// scopeFacts are a grant's scopes: against whom it may act.
func scopeFacts(g *policy.Grant) [][2]string {
	var out [][2]string
	if c := g.Customers; c != nil {
		var who []string
		if c.CreatedByAgent {
			who = append(who, "those it created")
		}
		if len(c.IDs) > 0 {
			who = append(who, strings.Join(sortedKeys(c.IDs), ", "))
		}
		for _, k := range sortedKeys(c.Metadata) {
			who = append(who, "metadata "+k+"="+c.Metadata[k])
		}
		if c.AllowNoCustomer {
			who = append(who, "objects of no customer")
		}
		out = append(out, [2]string{"customers", strings.Join(who, "; ")})
		if c.DailyCap != nil {
			out = append(out, [2]string{"per customer daily cap", c.DailyCap.String()})
		}
		if c.DailyCount > 0 {
			out = append(out, [2]string{"per customer daily count", fmt.Sprint(c.DailyCount)})
		}
		out = append(out, [2]string{"refunds per charge", fmt.Sprint(c.MaxRefundsPerCharge)})
	}
	if a := g.Accounts; a != nil {
		who := sortedKeys(a.IDs)
		if a.Platform {
			who = append(who, "the platform itself")
		}
		out = append(out, [2]string{"accounts", strings.Join(who, ", ")})
	}
	for _, l := range g.Lists {
		if l.Match != nil {
			out = append(out, [2]string{l.Key, strings.Join(l.Entries, ", ")})
		} else {
			out = append(out, [2]string{l.Key, fmt.Sprint(l.Max)})
		}
	}
	return out
}

// subjects groups facts by subject, keeping their order.
func subjects(fs []fact) (order []string, by map[string][]fact) {
	by = map[string][]fact{}
	for _, f := range fs {
		if _, ok := by[f.subject]; !ok {
			order = append(order, f.subject)
		}
		by[f.subject] = append(by[f.subject], f)
	}
	return order, by
}

// budgetFacts are the limits beyond a day: weeks, months, rolling
// windows, runs, alerts.
func budgetFacts(b *policy.Budgets) [][2]string {
	var out [][2]string
	add := func(k, v string) { out = append(out, [2]string{k, v}) }
	for _, c := range []struct {
		key string
		cap *money.Amount
		n   int64
	}{{"weekly", b.WeeklyCap, b.WeeklyCount}, {"monthly", b.MonthlyCap, b.MonthlyCount}} {
		if c.cap != nil {
			add(c.key+" cap", c.cap.String())
		}
		if c.n > 0 {
			add(c.key+" count", fmt.Sprint(c.n))
		}
	}
	for _, r := range b.Rates {
		v := r.What() + " in any " + r.Span()
		if r.Halt {
			v += "; refusing a call halts the agent until resumed"
		}
		add("rate"+r.ID[strings.LastIndexByte(r.ID, '['):], v)
	}
	if rb := b.PerRun; rb != nil {
		if rb.Cap != nil {
			add("per run cap", rb.Cap.String())
		}
		if rb.Count > 0 {
			add("per run count", fmt.Sprintf("%d calls", rb.Count))
		}
		if rb.AllowNoRun {
			add("calls with no run", "allowed, not counted per run")
		} else {
			add("calls with no run", "refused")
		}
	}
	if len(b.AlertAt) > 0 {
		var pcts []string
		for _, p := range b.AlertAt {
			pcts = append(pcts, fmt.Sprintf("%d%%", p))
		}
		add("alert at", strings.Join(pcts, ", ")+" of every cap")
	}
	return out
}
