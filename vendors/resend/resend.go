package resend

import (
	"github.com/keybrake/keybrake/vendors"
)

// APIHost is the one host resend-go talks to.
const APIHost = "api.resend.com"

// Vendor is Keybrake's knowledge of Resend. The zero value is ready to use;
// it holds no state and is safe for concurrent use. Deny and
// RefusalDetails share the process-wide refusal memory of package vendors.
type Vendor struct{}

var _ vendors.Vendor = Vendor{}

// Name returns "resend", the vendor's name in policies and audit records.
func (Vendor) Name() string { return "resend" }

// Hosts returns the host resend-go v2 calls. A fresh slice each time, so a
// caller cannot change another's.
func (Vendor) Hosts() []string { return []string{APIHost} }
