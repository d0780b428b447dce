// Package builtin is the registry of the vendors Keybrake knows out of
// the box. Adding a vendor to Keybrake is its folder under vendors/ and
// one line here; nothing else names it. A vendor of your own goes in
// keybrake.Options.Vendors instead (see examples/custom-vendor).
package builtin

import (
	"github.com/keybrake/keybrake/vendors"
	"github.com/keybrake/keybrake/vendors/resend"
	"github.com/keybrake/keybrake/vendors/stripe"
	"github.com/keybrake/keybrake/vendors/twilio"
)

// Vendors returns the built-in vendors, in name order; a fresh slice each
// time.
func Vendors() []vendors.Vendor {
	return []vendors.Vendor{
		resend.Vendor{},
		stripe.Vendor{},
		twilio.Vendor{},
	}
}
