package approval

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
)

// What the audit log shows of approvals: the held calls that name them,
// and an event for each step.

// Open lists the approvals still open (pending or approved, not used or
// expired) that calls held since since asked for, oldest first. They are
// found by the held calls' records, which name them: Query's decision
// filter, then one read each.
func (b *Book) Open(ctx context.Context, since time.Time) ([]*Approval, error) {
	var ids []string
	seen := map[string]bool{}
	err := b.st.Query(ctx, audit.Query{Since: since, Decision: policy.Held}, func(r *audit.Record) error {
		if r.Approval != "" && !seen[r.Approval] {
			seen[r.Approval] = true
			ids = append(ids, r.Approval)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	now := b.now()
	var out []*Approval
	for _, id := range ids {
		a, err := b.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if st := a.State(now); st == Pending || st == Approved {
			out = append(out, a)
		}
	}
	return out, nil
}

// Decided is the audited event of a's decision: "approve" or "deny", as
// its Decision says.
func Decided(a *Approval, at time.Time, policyHash string) audit.Record {
	event := "deny"
	if a.Decision != nil && a.Decision.Approved {
		event = "approve"
	}
	return Event(a, event, at, policyHash)
}

// Event is the audit record of what happened to an approval: "approval"
// when a held call opened it, "approve" or "deny" when a person decided
// it. Params say what it approves, as the audit log may keep it.
func Event(a *Approval, event string, at time.Time, policyHash string) audit.Record {
	r := a.Request
	params := map[string]string{"approval": a.ID, "method": r.Method, "path": r.Path}
	for k, v := range r.Params {
		params["param."+k] = v
	}
	if r.AmountText != "" {
		params["amount"] = r.AmountText
	}
	reason := "held until a person approves it: " + a.Describe()
	if d := a.Decision; d != nil && event != "approval" {
		verb := "denied"
		if d.Approved {
			verb = "approved"
		}
		reason = fmt.Sprintf("%s by %s until %s: %s", verb, d.By, d.Until.Format(time.RFC3339), a.Describe())
	}
	return audit.Record{
		Time: at, Agent: r.Agent, Vendor: r.Vendor, Method: r.Method, Path: r.Path, Event: event,
		Rule: r.Rule, Reason: reason, Params: params, Customer: r.Customer, Account: r.Account, Run: r.Run,
		Outcome: audit.None, PolicyHash: policyHash, Approval: a.ID,
	}
}

// Describe says in one line exactly what a approves: "payout-bot on
// stripe: POST /v1/transfers amount=25000 currency=usd destination=acct_1
// (250.00 USD)".
func (a *Approval) Describe() string {
	r := a.Request
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := r.Agent + " on " + r.Vendor + ": " + r.Method + " " + r.Path
	for _, k := range keys {
		s += " " + k + "=" + r.Params[k]
	}
	if r.AmountText != "" {
		s += " (" + r.AmountText + ")"
	}
	if r.Run != "" {
		s += " for run " + r.Run
	}
	return s
}
