package policy

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/keybrake/keybrake/money"
)

// Approvals: some calls need a person first. A grant's approve_above
// holds every call that moves more than an amount, and its approve rules
// ("POST /v1/transfers") hold every call they match, however small. A held
// call is refused (Held) until a person approves that exact request; the
// transport keeps the approvals (approve.go there), the policy only says
// which calls need one.

// approveKeys are the grant keys for approvals.
func approveKeys(keys map[string]key[*Grant]) {
	keys["approve_above"] = key[*Grant]{decode: amountKey(func(g *Grant) **money.Amount { return &g.ApproveAbove })}
	keys["approve"] = key[*Grant]{decode: decodeApprove}
}

func decodeApprove(d *decoder, at string, _, v *yaml.Node, g *Grant) error {
	rules, err := d.ruleList(at, v)
	g.Approve = rules
	return err
}

// approval returns the Held verdict for a call of g the policy allows, when
// a person must approve it first: an approve rule matches it, or it moves
// more than approve_above. amount is what the call counts (zero for one
// that moves nothing). ok is false when the call needs no approval.
func (p *Policy) approval(g *Grant, r Request, amount money.Amount) (Verdict, bool) {
	for _, rule := range g.Approve {
		if rule.Method == r.Method && matchPath(rule.Path, r.Path) && rule.paramsHold(r) {
			return held(rule.ID, r.Method+" "+r.Path+" always needs a person's approval"), true
		}
	}
	if g.ApproveAbove == nil || amount.IsZero() {
		return Verdict{}, false
	}
	rid := g.rulesFor(r.Agent, r.Vendor).base + ".approve_above"
	cv := converter{p: p, amount: amount}
	add, v, ok := cv.counted(*g.ApproveAbove, rid)
	if !ok {
		// An amount the threshold cannot be compared with is held too:
		// a person decides what Keybrake cannot.
		return held(rid, v.Reason), true
	}
	if add > g.ApproveAbove.Micros {
		return held(rid, fmt.Sprintf("%s is above approve_above %s", showAmount(amount, add, g.ApproveAbove.Currency), g.ApproveAbove)), true
	}
	return Verdict{}, false
}

func held(rule, why string) Verdict {
	return Verdict{Decision: Held, Rule: rule, Code: "keybrake_approval_required",
		Reason: "a person must approve this exact call first: " + why}
}
