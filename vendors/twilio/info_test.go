package twilio

import (
	"errors"
	"testing"

	"github.com/keybrake/keybrake/vendors"
)

// sharedSettings is the policy's shared settings for Twilio, as Units reads
// them: a key not set is 0 or false.
type sharedSettings map[string]int64

func (s sharedSettings) Count(key string) int64 { return s[key] }
func (s sharedSettings) Flag(key string) bool   { return s[key] != 0 }

func TestUnits(t *testing.T) {
	const to = "+15558675310"
	assume := sharedSettings{"assume_call_minutes": 30}
	tests := []struct {
		name     string
		priced   vendors.Priced
		settings sharedSettings
		item     string
		quantity int64
		unpriced string // the Unpriced key, when refused
	}{
		{"sms counts its segments", vendors.Priced{Item: "sms", Destination: to, Quantity: 3}, nil, "sms", 3, ""},
		{"mms counts one", vendors.Priced{Item: "mms", Destination: to, Quantity: 1}, assume, "mms", 1, ""},
		{"call with TimeLimit counts its minutes", vendors.Priced{Item: "call_minute", Destination: to, Quantity: 2}, nil, "call_minute", 2, ""},
		{"call with TimeLimit ignores assume_call_minutes", vendors.Priced{Item: "call_minute", Destination: to, Quantity: 2}, assume, "call_minute", 2, ""},
		{"call without TimeLimit is refused", vendors.Priced{Item: "call_minute", Destination: to, Quantity: -1}, nil, "", 0, "assume_call_minutes"},
		{"call without TimeLimit, other settings", vendors.Priced{Item: "call_minute", Destination: to, Quantity: -1}, sharedSettings{"broadcast_emails": 5}, "", 0, "assume_call_minutes"},
		{"call without TimeLimit counts assume_call_minutes", vendors.Priced{Item: "call_minute", Destination: to, Quantity: -1}, assume, "call_minute", 30, ""},
	}
	units := Vendor{}.Info().Units
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item, quantity, err := units(tt.priced, tt.settings)
			if tt.unpriced != "" {
				var up *vendors.Unpriced
				if !errors.As(err, &up) || up.Key != tt.unpriced || up.Code != "keybrake_call_unbounded" || up.Reason == "" {
					t.Fatalf("Units = %q, %d, %v; want *vendors.Unpriced %s keybrake_call_unbounded", item, quantity, err, tt.unpriced)
				}
				return
			}
			if err != nil || item != tt.item || quantity != tt.quantity {
				t.Fatalf("Units = %q, %d, %v; want %q, %d", item, quantity, err, tt.item, tt.quantity)
			}
		})
	}
}

// TestUnitsOfClassifiedCalls follows a call from Classify to Units: what
// TimeLimit leaves unbounded, assume_call_minutes bounds.
func TestUnitsOfClassifiedCalls(t *testing.T) {
	const call = "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx"
	tests := []struct {
		name     string
		params   string
		settings sharedSettings
		minutes  int64 // 0: refused
	}{
		{"TimeLimit rounds up to minutes", call + "&TimeLimit=61", nil, 2},
		{"TimeLimit wins over assume_call_minutes", call + "&TimeLimit=61", sharedSettings{"assume_call_minutes": 30}, 2},
		{"no TimeLimit, no assumption", call, nil, 0},
		{"no TimeLimit, assumed", call, sharedSettings{"assume_call_minutes": 30}, 30},
	}
	units := Vendor{}.Info().Units
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(req("POST", calls, tt.params))
			if err != nil || c.Priced == nil {
				t.Fatalf("Classify = %+v, %v", c, err)
			}
			item, minutes, err := units(*c.Priced, tt.settings)
			var up *vendors.Unpriced
			switch {
			case tt.minutes == 0 && !errors.As(err, &up):
				t.Fatalf("Units = %q, %d, %v; want *vendors.Unpriced", item, minutes, err)
			case tt.minutes != 0 && (err != nil || item != "call_minute" || minutes != tt.minutes):
				t.Fatalf("Units = %q, %d, %v; want call_minute, %d", item, minutes, err, tt.minutes)
			}
		})
	}
}
