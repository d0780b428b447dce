package transport

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/vendors"
)

// Refusals: every refused call is one audit record and an answer in the
// vendor's own error format.

// refuse records a refused call and answers it in the vendor's own format.
func (t *RoundTripper) refuse(c *call, v policy.Verdict) (*http.Response, error) {
	defer c.done()
	rec := t.refusal(c, v)
	rec.ID = 0
	rec.Outcome = audit.None
	rec.Reserved = money.Amount{}
	rec.Settled = money.Amount{}
	rec.Holds = nil
	if rec.PolicyHash == "" {
		if pol, err := t.env.policy(); err == nil {
			rec.PolicyHash = pol.Hash
		}
	}
	ctx, cancel := t.env.writeContext(c.req.Context())
	defer cancel()
	id, err := t.env.store.Append(ctx, &rec)
	if err != nil {
		t.env.report(&Failure{Op: "audit_write", Agent: t.agent, Vendor: t.vendor.Name(),
			Err: fmt.Errorf("keybrake: audit record of a refused call could not be written: %w", err)})
	}
	rec.ID = id
	t.finished(c, &rec)
	return t.deny(c, &rec, v)
}

// refuseReserved refuses a call whose reservation is written: its record
// becomes the refusal and its money is released, still one record a call.
func (t *RoundTripper) refuseReserved(c *call, adm store.Admission, v policy.Verdict) (*http.Response, error) {
	defer c.done()
	rec := t.refusal(c, v)
	rec.Outcome = audit.Released
	ctx, cancel := t.env.writeContext(c.req.Context())
	defer cancel()
	err := t.env.store.Complete(ctx, &store.Completion{
		ID: adm.ID, Outcome: audit.Released, Status: rec.Status, Duration: rec.Duration, Reason: v.Reason,
		Refused: &store.Refusal{Decision: v.Decision, Code: v.Code, Rule: v.Rule, Policy: rec.PolicyHash},
	})
	if err != nil {
		t.env.report(&Failure{Op: "release_write", Record: adm.ID, Agent: t.agent, Vendor: t.vendor.Name(),
			Err: fmt.Errorf("keybrake: reservation %d of a call refused before sending could not be released (it stays counted): %w", adm.ID, err)})
	}
	t.finished(c, &rec)
	return t.deny(c, &rec, v)
}

// refusal is the call's record as refused by v, with the shadow policy's
// decision when it differs (shadow.go).
func (t *RoundTripper) refusal(c *call, v policy.Verdict) audit.Record {
	rec := c.rec
	rec.Decision, rec.Rule, rec.Code, rec.Reason = v.Decision, v.Rule, v.Code, v.Reason
	rec.Shadow = t.shadowOfRefusal(c, v)
	rec.Status = v.Decision.Status()
	rec.Duration = t.env.now().Sub(c.start)
	return rec
}

// deny tells the alerts of a refusal whose record is written, and answers
// it in the vendor's own format.
func (t *RoundTripper) deny(c *call, rec *audit.Record, v policy.Verdict) (*http.Response, error) {
	t.env.observe(rec)
	d := &Details{
		Decision: v.Decision, Code: v.Code, Rule: v.Rule, Reason: v.Reason,
		Agent: t.agent, Vendor: t.vendor.Name(), Method: rec.Method, Path: rec.Path,
		Status: rec.Status, CallID: rec.ID, Policy: rec.PolicyHash, ApprovalID: rec.Approval,
	}
	resp := t.vendor.Deny(c.req, vendors.Refusal{
		Status:    d.Status,
		Code:      d.Code,
		Message:   fmt.Sprintf("Keybrake refused this call (%s): %s (rule %s)", d.Decision, d.Reason, d.Rule),
		RequestID: d.RequestID(),
		Details:   d.encode(),
	})
	return resp, nil
}

func invalid(err error) policy.Verdict {
	var inv *vendors.Invalid
	if errors.As(err, &inv) {
		return policy.Verdict{Decision: policy.Blocked, Rule: "request", Code: inv.Code, Reason: inv.Reason}
	}
	return policy.Verdict{Decision: policy.Blocked, Rule: "request", Code: "keybrake_bad_request", Reason: err.Error()}
}

func cancelled(err error) policy.Verdict {
	return policy.Verdict{Decision: policy.Error, Rule: "request", Code: "keybrake_cancelled",
		Reason: "the caller gave up before the call was sent: " + err.Error()}
}
