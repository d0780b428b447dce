package transport

import (
	"fmt"
	"time"

	"github.com/keybrake/keybrake/internal/approval"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// The approval stage (approve_above and approve in the policy): a call the
// policy holds is refused until a person approves that exact request, and
// then admitted once. The approvals live in the store (internal/approval),
// so a retry finds the approval its first attempt opened, every process
// of a fleet sees the same one, and exactly one call uses it. Nothing here
// approves: only the operator's side does (Brake.Approve, the CLI, the
// incident page), never a call.

// approve lets a held call through when its approval stands, using it up,
// and refuses it otherwise: held while a person has not answered, blocked
// once a person denied it.
func (t *RoundTripper) approve(c *call) (policy.Verdict, bool) {
	if c.held == nil {
		return policy.Verdict{}, true
	}
	held := *c.held
	book := t.env.approvals
	ctx, cancel := t.env.writeContext(c.req.Context())
	defer cancel()
	a, opened, err := book.Hold(ctx, t.approvalRequest(c, held))
	if err != nil {
		return storeError("the call needs a person's approval, and the approvals could not be read: " + err.Error()), false
	}
	c.rec.Approval = a.ID
	if opened && t.env.opened != nil {
		t.env.opened(a) // an event, which alerts once per approval request
	}
	now := t.env.now()
	switch a.State(now) {
	case approval.Approved:
		// Used once the call's money is reserved (useApproval): a call a
		// cap refuses leaves the approval standing.
		c.approval, c.approvedBy = a, a.Decision.By
		return policy.Verdict{}, true
	case approval.Used:
		// A retry, with the same idempotency key, of the call that used
		// it: the store replays it or takes it over, which useApproval
		// checks.
		c.approvedBy, c.retrying = a.Decision.By, a
		return policy.Verdict{}, true
	case approval.Denied:
		d := a.Decision
		return policy.Verdict{Decision: policy.Blocked, Rule: held.Rule, Code: "keybrake_approval_denied",
			Reason: fmt.Sprintf("%s denied this exact call (%s) at %s; it is refused until %s", d.By, a.ID,
				d.Time.Format(time.RFC3339), d.Until.Format(time.RFC3339))}, false
	}
	held.Reason += fmt.Sprintf("; it waits for approval %s (keybrake approve %s), asked at %s",
		a.ID, a.ID, a.Request.Time.Format(time.RFC3339))
	return held, false
}

// useApproval uses up the approval the call goes through on, once every
// limit admitted it (adm is its reservation; zero for a call that holds
// nothing). Of calls racing for one approval, one uses it; the others are
// held again, for an approval of their own. A retry of the call that used
// an approval goes on only if the store took it for that call (a replay
// or a takeover of it): a retry the store reserved as a new call (its key
// past store.ReplayWindow) is a new request, and needs its own approval.
func (t *RoundTripper) useApproval(c *call, adm store.Admission) (policy.Verdict, bool) {
	if u := c.retrying; u != nil && adm.ID != 0 && u.Closing.By != CallName(adm.RetryOf) { // Used: Closing is set
		held := *c.held
		held.Reason = "approval " + u.ID + " was used by an earlier call with this idempotency key, which is past the time the vendor keeps it; this call is a new request and needs an approval of its own"
		return held, false
	}
	a := c.approval
	if a == nil {
		return policy.Verdict{}, true
	}
	by := approval.Token()
	if adm.ID != 0 {
		by = CallName(adm.ID)
	}
	ctx, cancel := t.env.writeContext(c.req.Context())
	defer cancel()
	used, err := t.env.approvals.Use(ctx, a.ID, by, c.vc.IdempotencyKey)
	if err != nil {
		return storeError("the approval " + a.ID + " could not be used: " + err.Error()), false
	}
	if !used {
		held := *c.held
		held.Reason = "approval " + a.ID + " was used by another call of this exact request at the same moment; this one needs its own"
		return held, false
	}
	return policy.Verdict{}, true
}

// approvalRequest is what the held call asks a person to approve.
func (t *RoundTripper) approvalRequest(c *call, held policy.Verdict) approval.Request {
	amount := c.charge.Amount
	if !c.vc.MovesMoney {
		amount = c.vc.Amount
	}
	return approval.Request{
		Binding: approval.Bind(t.agent, t.vendor.Name(), c.req.Method, c.target.path, c.vc.Params, amount, c.rec.Run),
		Agent:   t.agent, Vendor: t.vendor.Name(), Method: c.req.Method, Path: c.target.path,
		Params: c.vc.Audit, Amount: amount, Customer: c.vc.Customer, Account: c.vc.Account, Run: c.rec.Run,
		Rule: held.Rule, Reason: held.Reason, Key: c.vc.IdempotencyKey,
	}
}
