package transport

import (
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// The shadow stage (Options.ShadowPolicyFile): a candidate policy decides
// every call a second time, with what the real decision learned, and never
// changes what happens to the call. The record keeps the shadow's decision
// when it differs. The shadow's limits count in counters of their own,
// their keys under "shadow/": a call both policies admit holds there too,
// with no limit the store checks (audit.Hold's negative Limit), and is
// settled with the call, so the shadow's caps are evaluated as if it were
// enforced. A call only the shadow would admit was not sent and moved
// nothing, so it counts nowhere; `keybrake policy replay` simulates those.

// shadowPrefix keeps the shadow's counters apart from the real ones.
const shadowPrefix = "shadow/"

// shadowUndecided is the code of a shadow decision the call's request and
// what the real decision looked up cannot make: the shadow needs a lookup
// the real policy did not (a customer's metadata, whom a charge belongs
// to), and Keybrake makes no lookup for a shadow.
const shadowUndecided = "keybrake_shadow_undecided"

// shadow decides an allowed call by the shadow policy: it keeps the shadow
// holds when the shadow admits it too, and the shadow's decision when it
// differs.
func (t *RoundTripper) shadow(c *call) {
	v, ch, sp := t.shadowVerdict(c)
	if sp == nil {
		return
	}
	if v.Decision != policy.Allowed {
		c.rec.Shadow = &audit.Shadow{Decision: v.Decision, Rule: v.Rule, Code: v.Code, Policy: sp.Hash}
		return
	}
	for _, l := range ch.Limits {
		c.shadowHolds = append(c.shadowHolds, audit.Hold{Key: shadowPrefix + l.Key, Unit: l.Unit, Limit: -1, Amount: l.Add, Window: l.Window})
	}
}

// shadowOfRefusal is what the record of a call refused by v keeps of the
// shadow's decision: nil when it agrees, or when the call was refused for
// want of certainty (decision error), which the shadow cannot have either.
func (t *RoundTripper) shadowOfRefusal(c *call, v policy.Verdict) *audit.Shadow {
	if v.Decision == policy.Error {
		return nil
	}
	sv, _, sp := t.shadowVerdict(c)
	if sp == nil || sv.Decision == v.Decision && sv.Code == v.Code {
		return nil
	}
	return &audit.Shadow{Decision: sv.Decision, Rule: sv.Rule, Code: sv.Code, Policy: sp.Hash}
}

// shadowVerdict decides the call by the shadow policy in force; sp is nil
// when there is none, or the call was refused before it was read.
func (t *RoundTripper) shadowVerdict(c *call) (v policy.Verdict, ch policy.Charge, sp *policy.Policy) {
	if t.env.shadow == nil || c.vc == nil {
		return v, ch, nil
	}
	if sp = t.env.shadow(); sp == nil {
		return v, ch, nil
	}
	req := t.policyRequest(c)
	v, rule := sp.Authorize(req)
	if v.Decision != policy.Allowed {
		return v, ch, sp
	}
	vc := c.vc
	needs := rule.Grant().Needs()
	who := c.who
	if !c.gathered {
		who = requestSubject(vc)
		if needs.Customer {
			who.AllCustomers = vc.Customer == "" && !vc.NoCustomer && vc.Creates != "customer"
		}
	}
	looked := c.gathered && c.needs.Customer
	switch {
	case needs.Customer && !looked && vc.SubjectLookup != "" && vc.Customer == "":
		return undecided(rule, "it needs the customer "+vc.SubjectLookup+" would name, which the policy in force did not look up"), ch, sp
	case needs.Metadata && !(c.gathered && c.needs.Metadata) && who.Customer != "":
		return undecided(rule, "it selects customers by metadata, which the policy in force did not look up"), ch, sp
	case needs.Created && !(c.gathered && c.needs.Created) && who.Customer != "":
		return undecided(rule, "it admits the customers the agent created, which the policy in force did not look up"), ch, sp
	case vc.MovesMoney && vc.Amount.Currency == "" && !vc.Amount.IsZero():
		return undecided(rule, "the call's amount is unknown"), ch, sp
	}
	day := c.start.In(sp.Zone()).Format(time.DateOnly)
	v, ch = sp.Decide(policy.Call{Request: req, Subject: who, MovesMoney: vc.MovesMoney, Amount: vc.Amount, Priced: vc.Priced, Count: vc.Count}, rule, day)
	if v.Decision != policy.Allowed && v.Decision != policy.Held {
		return v, ch, sp
	}
	for _, l := range ch.Limits {
		if l.Max < 0 {
			continue
		}
		used, frees, ok := t.shadowUsed(c, l)
		if !ok {
			return undecided(rule, "its counter "+l.Key+" could not be read"), ch, sp
		}
		if used+l.Add > l.Max {
			return l.OverLimit(used, frees, c.start, sp.Zone()), ch, sp
		}
	}
	return v, ch, sp
}

// shadowUsed is what the shadow's counter for l holds now, and for a
// rolling window when its first entry leaves (store.FirstLeave).
func (t *RoundTripper) shadowUsed(c *call, l policy.Limit) (used int64, frees time.Time, ok bool) {
	ctx, cancel := t.env.writeContext(c.req.Context())
	defer cancel()
	key := shadowPrefix + l.Key
	if l.Window > 0 {
		entries, err := t.env.store.Window(ctx, key, c.start)
		if err != nil {
			return 0, frees, false
		}
		for _, e := range entries {
			used += e.Total()
		}
		return used, store.FirstLeave(entries), true
	}
	ct, err := t.env.store.Counter(ctx, key)
	if err != nil {
		return 0, frees, false
	}
	return ct.Total(), frees, true
}

func undecided(rule *policy.Rule, why string) policy.Verdict {
	return policy.Verdict{Decision: policy.Error, Rule: rule.ID, Code: shadowUndecided,
		Reason: "the shadow policy cannot decide this call: " + why}
}
