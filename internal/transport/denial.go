package transport

import (
	"encoding/json"
	"fmt"

	"github.com/keybrake/keybrake/policy"
)

// Denial is a refused call: the decision, the rule that made it and why. It
// travels to the agent inside the vendor's own error response (see
// vendors.Vendor.Deny) and is recovered from the SDK's error by
// keybrake.AsDenial. It is also returned as an error, wrapped by net/http,
// where a RoundTripper cannot answer with a response.
type Denial struct {
	Decision policy.Decision `json:"decision"`
	Code     string          `json:"code"`   // keybrake_<reason>
	Rule     string          `json:"rule"`   // the policy rule: "agents.refund-bot.stripe.daily_cap"
	Reason   string          `json:"reason"` // for a person
	Agent    string          `json:"agent"`
	Vendor   string          `json:"vendor"`
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Status   int             `json:"status"`  // the HTTP status the vendor SDK saw
	CallID   uint64          `json:"call_id"` // the audit record; 0 when it could not be written
	Policy   string          `json:"policy"`  // hash of the policy that decided
}

// Error reads as one line a person can act on.
func (d *Denial) Error() string {
	return fmt.Sprintf("keybrake: %s %s %s for agent %q: %s (rule %s, code %s)",
		d.Decision, d.Method, d.Path, d.Agent, d.Reason, d.Rule, d.Code)
}

// RequestID is the identifier the refusal carries in the vendor's request-id
// header, pointing at the audit record.
func (d *Denial) RequestID() string {
	if d.CallID == 0 {
		return "kb_unrecorded"
	}
	return fmt.Sprintf("kb_%d", d.CallID)
}

func (d *Denial) details() []byte {
	b, err := json.Marshal(d)
	if err != nil {
		// A Denial holds only strings and integers.
		panic(err)
	}
	return b
}

// DecodeDenial reads the details a vendor carried back from a refusal.
func DecodeDenial(details []byte) (*Denial, error) {
	var d Denial
	if err := json.Unmarshal(details, &d); err != nil {
		return nil, fmt.Errorf("keybrake: refusal details: %w", err)
	}
	if !d.Decision.Valid() || d.Decision == policy.Allowed {
		return nil, fmt.Errorf("keybrake: refusal details carry no refusal")
	}
	return &d, nil
}
