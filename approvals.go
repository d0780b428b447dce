package keybrake

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keybrake/keybrake/internal/approval"
	"github.com/keybrake/keybrake/money"
)

// Approvals (approve_above and approve in the policy): a call the policy
// holds is refused with 403, decision held, code
// keybrake_approval_required, and Denial.ApprovalID naming the approval it
// waits for. A person approves it here, with `keybrake approve ID`, or on
// the incident page; the agent's next call of exactly that request is
// then admitted once. Never from the agent's side: no call through the
// Brake's transport or proxy approves anything.

// DefaultApprovalTTL is how long an approval request waits for a person,
// and how long an approval stands once given.
const DefaultApprovalTTL = approval.DefaultTTL

// ErrApprovalNotFound is returned for an approval id nobody asked for.
var ErrApprovalNotFound = approval.ErrNotFound

// ErrApprovalDecided is returned for an approval already approved or
// denied, used or expired.
var ErrApprovalDecided = approval.ErrDecided

// Approval is a held request and where it stands.
type Approval struct {
	ID     string
	Agent  string
	Vendor string
	Method string
	Path   string
	// Params are the request's parameters as the audit log keeps them.
	Params   map[string]string
	Amount   money.Amount
	Customer string
	Account  string
	Run      string
	Rule     string    // the policy rule that held it
	Asked    time.Time // when a call first asked for it
	// State is "pending", "approved", "denied", "used" or "expired".
	State string
	By    string    // who approved or denied it
	Until time.Time // an approval stands, a denial holds, until then
	// What says in one line exactly what it approves.
	What string
}

// Approve approves the held request id as by (who approves: a name the
// audit log keeps) for DefaultApprovalTTL. Audited.
func (b *Brake) Approve(ctx context.Context, id, by string) error {
	_, err := b.decideApproval(ctx, id, true, by, 0)
	return err
}

// ApproveFor is Approve standing for ttl rather than DefaultApprovalTTL.
func (b *Brake) ApproveFor(ctx context.Context, id, by string, ttl time.Duration) (Approval, error) {
	a, err := b.decideApproval(ctx, id, true, by, ttl)
	if err != nil {
		return Approval{}, err
	}
	return approvalOf(a, b.opts.Clock()), nil
}

// Deny refuses the held request id as by: calls of exactly that request
// are refused (blocked, keybrake_approval_denied) for DefaultApprovalTTL.
// Audited.
func (b *Brake) Deny(ctx context.Context, id, by string) error {
	_, err := b.decideApproval(ctx, id, false, by, 0)
	return err
}

// Approvals lists the approvals still open (pending or approved and not
// yet used) that calls held in the last day asked for, oldest first.
func (b *Brake) Approvals(ctx context.Context) ([]Approval, error) {
	list, err := b.book().Open(ctx, b.opts.Clock().Add(-approval.Lookback))
	if err != nil {
		return nil, err
	}
	out := make([]Approval, len(list))
	for i, a := range list {
		out[i] = approvalOf(a, b.opts.Clock())
	}
	return out, nil
}

// decideApproval is Approve and Deny, and the admin socket's POST
// /approvals/decide (admin.go).
func (b *Brake) decideApproval(ctx context.Context, id string, approve bool, by string, ttl time.Duration) (*approval.Approval, error) {
	if by == "" {
		return nil, errors.New("keybrake: say who decides the approval (by)")
	}
	a, err := b.book().Decide(ctx, id, approve, by, ttl)
	if err != nil {
		return nil, fmt.Errorf("keybrake: %w", err)
	}
	b.recordEvent(approval.Decided(a, b.opts.Clock(), b.policyHash()))
	return a, nil
}

func (b *Brake) book() *approval.Book { return approval.NewBook(b.store, b.opts.Clock) }

// opened is the transport's Opened: a held call asked for a person's
// approval. The audit event ("approval") pages through the notifier, once
// per request however often the agent retries.
func (b *Brake) opened(a *approval.Approval) {
	b.recordEvent(approval.Event(a, "approval", b.opts.Clock(), b.policyHash()))
}

func (b *Brake) policyHash() string {
	if pol, err := b.policies.inForce(); err == nil {
		return pol.Hash
	}
	return ""
}

func approvalOf(a *approval.Approval, now time.Time) Approval {
	r := a.Request
	out := Approval{
		ID: a.ID, Agent: r.Agent, Vendor: r.Vendor, Method: r.Method, Path: r.Path, Params: r.Params,
		Amount: r.Amount, Customer: r.Customer, Account: r.Account, Run: r.Run, Rule: r.Rule, Asked: r.Time,
		State: string(a.State(now)), What: a.Describe(),
	}
	if d := a.Decision; d != nil {
		out.By, out.Until = d.By, d.Until
	}
	return out
}
