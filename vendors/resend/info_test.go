package resend

import (
	"errors"
	"testing"

	"github.com/keybrake/keybrake/vendors"
)

// sharedSettings is the policy's shared settings for Resend, as Units reads
// them: a key not set is 0 or false.
type sharedSettings map[string]int64

func (s sharedSettings) Count(key string) int64 { return s[key] }
func (s sharedSettings) Flag(key string) bool   { return s[key] != 0 }

func TestUnits(t *testing.T) {
	email := vendors.Priced{Item: "email", Quantity: 1, Recipients: 3}
	batch := vendors.Priced{Item: "email", Quantity: 2, Recipients: 5}
	broadcast := vendors.Priced{Item: "broadcast", Quantity: -1}
	perRecipient := sharedSettings{"bill_per_recipient": 1}
	tests := []struct {
		name     string
		priced   vendors.Priced
		settings sharedSettings
		quantity int64 // of "email"
		unpriced string
	}{
		{"an email counts one", email, nil, 1, ""},
		{"a batch counts its emails", batch, nil, 2, ""},
		{"broadcast_emails leaves an email alone", email, sharedSettings{"broadcast_emails": 1000}, 1, ""},
		{"an email billed per recipient", email, perRecipient, 3, ""},
		{"a batch billed per recipient", batch, perRecipient, 5, ""},
		{"a broadcast is refused", broadcast, nil, 0, "broadcast_emails"},
		{"a broadcast is refused per recipient too", broadcast, perRecipient, 0, "broadcast_emails"},
		{"a broadcast counts broadcast_emails", broadcast, sharedSettings{"broadcast_emails": 1000}, 1000, ""},
		{"a broadcast billed per recipient still counts broadcast_emails", broadcast, sharedSettings{"broadcast_emails": 1000, "bill_per_recipient": 1}, 1000, ""},
	}
	units := Vendor{}.Info().Units
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item, quantity, err := units(tt.priced, tt.settings)
			if tt.unpriced != "" {
				var up *vendors.Unpriced
				if !errors.As(err, &up) || up.Key != tt.unpriced || up.Code != "keybrake_broadcast_unbounded" || up.Reason == "" {
					t.Fatalf("Units = %q, %d, %v; want *vendors.Unpriced %s keybrake_broadcast_unbounded", item, quantity, err, tt.unpriced)
				}
				return
			}
			if err != nil || item != "email" || quantity != tt.quantity {
				t.Fatalf("Units = %q, %d, %v; want email, %d", item, quantity, err, tt.quantity)
			}
		})
	}
}

// TestUnitsOfClassifiedCalls follows calls from Classify to Units: an
// email's addresses across to, cc and bcc count when the plan bills per
// recipient, and a broadcast counts what the policy says it sends.
func TestUnitsOfClassifiedCalls(t *testing.T) {
	tests := []struct {
		name     string
		r        *vendors.Request
		settings sharedSettings
		quantity int64 // 0: refused
	}{
		{"email", req("POST", "/emails", emailJSON(`"cc":["b@x.example","c@x.example"],"bcc":"d@x.example"`)), nil, 1},
		{"email per recipient", req("POST", "/emails", emailJSON(`"cc":["b@x.example","c@x.example"],"bcc":"d@x.example"`)), sharedSettings{"bill_per_recipient": 1}, 4},
		{"batch per recipient", req("POST", "/emails/batch", batchJSON(3, func(int) string { return "" })), sharedSettings{"bill_per_recipient": 1}, 3},
		{"broadcast", req("POST", "/broadcasts/"+uuid1+"/send", ""), nil, 0},
		{"broadcast counted", req("POST", "/broadcasts/"+uuid1+"/send", ""), sharedSettings{"broadcast_emails": 250}, 250},
		{"broadcast created to send", req("POST", "/broadcasts", `{"segment_id":"`+uuid1+`","from":"a@x.example","subject":"s","send":true}`), sharedSettings{"broadcast_emails": 250}, 250},
	}
	units := Vendor{}.Info().Units
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.r)
			if err != nil || c.Priced == nil {
				t.Fatalf("Classify = %+v, %v", c, err)
			}
			item, quantity, err := units(*c.Priced, tt.settings)
			var up *vendors.Unpriced
			switch {
			case tt.quantity == 0 && !errors.As(err, &up):
				t.Fatalf("Units = %q, %d, %v; want *vendors.Unpriced", item, quantity, err)
			case tt.quantity != 0 && (err != nil || item != "email" || quantity != tt.quantity):
				t.Fatalf("Units = %q, %d, %v; want email, %d", item, quantity, err, tt.quantity)
			}
		})
	}
}
