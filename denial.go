package keybrake

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keybrake/keybrake/internal/transport"
)

// Denial is a refused call: the decision, the rule that made it and why.
// It travels to the agent inside the vendor's own error response, so the
// SDK surfaces its usual error type (*stripe.Error, twilio-go's
// *client.TwilioRestError, resend-go's error), and AsDenial recovers it
// from that error. A Denial is a value; its zero value is no refusal.
type Denial struct {
	Decision Decision `json:"decision"`
	Code     string   `json:"code"`   // keybrake_<reason>
	Rule     string   `json:"rule"`   // the policy rule: "agents.refund-bot.stripe.daily_cap"
	Reason   string   `json:"reason"` // for a person
	Agent    string   `json:"agent"`
	Vendor   string   `json:"vendor"`
	Method   string   `json:"method"`
	Path     string   `json:"path"`
	Status   int      `json:"status"`  // the HTTP status the vendor SDK saw
	CallID   uint64   `json:"call_id"` // the audit record; 0 when it could not be written
	Policy   string   `json:"policy"`  // hash of the policy that decided
	// ApprovalID is the approval a held call waits for ("apr_..."): tell
	// the operator, who approves it with `keybrake approve ID` or
	// Brake.Approve. The same request, retried, waits for the same one.
	ApprovalID string `json:"approval_id,omitempty"`
}

// Error reads as one line a person can act on.
func (d *Denial) Error() string {
	return fmt.Sprintf("keybrake: %s %s %s for agent %q: %s (rule %s, code %s)",
		d.Decision, d.Method, d.Path, d.Agent, d.Reason, d.Rule, d.Code)
}

// RequestID is the identifier the refusal carries in the vendor's
// request-id header ("kb_42"), pointing at the audit record;
// "kb_unrecorded" when the record could not be written.
func (d *Denial) RequestID() string { return transport.CallName(d.CallID) }

// AsDenial recovers the decision from an error a vendor SDK returned for a
// refused call: stripe-go's *stripe.Error, twilio-go's error, resend-go's
// error, the error of a vendor given in Options.Vendors, or an error
// wrapping a *Denial. ok is false for any other error.
func AsDenial(err error) (*Denial, bool) {
	if err == nil {
		return nil, false
	}
	var d *Denial
	if errors.As(err, &d) {
		return d, true
	}
	for _, v := range known().sorted() {
		if details, ok := v.RefusalDetails(err); ok {
			if d, derr := decodeDenial(details); derr == nil {
				return d, true
			}
		}
	}
	return nil, false
}

// decodeDenial reads the details a vendor carried back from a refusal.
func decodeDenial(details []byte) (*Denial, error) {
	var d Denial
	if err := json.Unmarshal(details, &d); err != nil {
		return nil, fmt.Errorf("keybrake: refusal details: %w", err)
	}
	if !d.Decision.Valid() || d.Decision == Allowed {
		return nil, errors.New("keybrake: refusal details carry no refusal")
	}
	return &d, nil
}
