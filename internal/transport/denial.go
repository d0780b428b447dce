package transport

import (
	"encoding/json"
	"fmt"

	"github.com/keybrake/keybrake/policy"
)

// Details is a refusal as it travels to the agent inside the vendor's own
// error response (vendors.Vendor.Deny): the wire form of keybrake.Denial,
// which decodes it. The root package's tests hold the two to the same
// fields.
type Details struct {
	Decision policy.Decision `json:"decision"`
	Code     string          `json:"code"`
	Rule     string          `json:"rule"`
	Reason   string          `json:"reason"`
	Agent    string          `json:"agent"`
	Vendor   string          `json:"vendor"`
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Status   int             `json:"status"`
	CallID   uint64          `json:"call_id"`
	Policy   string          `json:"policy"`
	// ApprovalID is the approval a held call waits for (apr_...).
	ApprovalID string `json:"approval_id,omitempty"`
}

// RequestID is the identifier the refusal carries in the vendor's
// request-id header, pointing at the audit record.
func (d *Details) RequestID() string { return CallName(d.CallID) }

// CallName names the call whose audit record is id: "kb_42", and
// "kb_unrecorded" for 0, a call whose record could not be written.
func CallName(id uint64) string {
	if id == 0 {
		return "kb_unrecorded"
	}
	return fmt.Sprintf("kb_%d", id)
}

func (d *Details) encode() []byte {
	b, err := json.Marshal(d)
	if err != nil {
		// Details holds only strings and integers.
		panic(err)
	}
	return b
}
