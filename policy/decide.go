package policy

import (
	"github.com/keybrake/keybrake/money"
)

// A call is decided in two pure steps. Authorize, on the request alone,
// finds the rule that allows it, and the rule's grant says what else
// deciding it needs (Grant.Needs: the customer it touches, that customer's
// metadata, whether the agent created it). The transport looks up only
// that, then Decide, on everything known, says whether the call is in
// scope, what it costs and which counters it must fit.

// Call is what Decide sees of an allowed call: its request, who it
// touches, and what it moves.
type Call struct {
	Request
	Subject Subject

	// MovesMoney is true when the call can move money; Amount is then
	// what it moves, when the request or a lookup says it.
	MovesMoney bool
	Amount     money.Amount
	// Priced, when set, says the policy's prices make Amount.
	Priced *PriceQuery
	// Count is the billable units the call uses; negative: as many as
	// its price counts (a broadcast's emails).
	Count int64
}

// Charge is what an allowed call counts: its amount (priced, when the
// policy priced it), its units, and the limits it must fit.
type Charge struct {
	Amount    money.Amount
	Count     int64
	Limits    []Limit
	PriceRule string // the price the policy gave a priced call; "" for none
}

// Decide decides a call Authorize allowed by rule on this policy, for UTC
// day: Scope, then Cost for a priced call, then Limits, then whether a
// person must approve it (approve.go). The verdict is Allowed with the
// rule's ID, Held with the approval rule and the Charge the call counts
// once approved, or the first refusal. It is pure and safe for concurrent
// use.
func (p *Policy) Decide(c Call, rule *Rule, day string) (Verdict, Charge) {
	if v := p.Scope(c.Request, c.Subject); v.Decision != Allowed {
		return v, Charge{}
	}
	ch := Charge{Amount: c.Amount, Count: c.Count}
	if c.Priced != nil {
		amount, quantity, v := p.Cost(c.Vendor, *c.Priced)
		if v.Decision != Allowed {
			return v, Charge{}
		}
		ch.Amount, ch.PriceRule = amount, v.Rule
		if ch.Count < 0 {
			ch.Count = quantity
		}
	}
	counted := ch.Amount
	if !c.MovesMoney {
		counted = money.Amount{}
	}
	limits, v := p.Limits(c.Request, rule, counted, ch.Count, day)
	if v.Decision != Allowed {
		return v, Charge{}
	}
	ch.Limits = limits
	if g := rule.Grant(); g != nil {
		if hv, ok := p.approval(g, c.Request, counted); ok {
			return hv, ch
		}
	}
	return v, ch
}
