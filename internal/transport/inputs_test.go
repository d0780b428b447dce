package transport

import (
	"reflect"
	"testing"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/vendors"
)

// TestRecordInputs: a record keeps recipients, senders and a price's
// destination only where its audit parameters already hold them.
func TestRecordInputs(t *testing.T) {
	for _, tt := range []struct {
		name   string
		params map[string]string
		vc     vendors.Call
		want   audit.Record
	}{
		{"an SMS", map[string]string{"To": "+15551234567", "From": "+15005550006"},
			vendors.Call{MovesMoney: true, Count: -1, Recipients: []string{"+15551234567"}, Senders: []string{"+15005550006"},
				Priced: &vendors.Priced{Item: "sms", Destination: "+15551234567", Quantity: 1}},
			audit.Record{MovesMoney: true, Count: -1, Recipients: []string{"+15551234567"}, Senders: []string{"+15005550006"},
				Priced: &vendors.Priced{Item: "sms", Destination: "+15551234567", Quantity: 1}}},
		{"an email", map[string]string{"from": "Alerts <Alerts@example.com>", "recipients": "1"},
			vendors.Call{MovesMoney: true, Count: -1, Recipients: []string{"ada@example.com"}, Senders: []string{"alerts@example.com"},
				MostRecipients: 1, Priced: &vendors.Priced{Item: "email", Quantity: 1, Recipients: 1}},
			audit.Record{MovesMoney: true, Count: -1, Senders: []string{"alerts@example.com"}, RecipientsWithheld: true,
				MostRecipients: 1, Priced: &vendors.Priced{Item: "email", Quantity: 1, Recipients: 1}}},
		{"a refund whose customer a scope did not need", map[string]string{"charge": "ch_1"},
			vendors.Call{MovesMoney: true, Count: 1, RefundOf: "ch_1", SubjectLookup: "GET /v1/charges/ch_1", Uncapped: "why"},
			audit.Record{MovesMoney: true, Count: 1, RefundOf: "ch_1", CustomerUnknown: true, Uncapped: true}},
		{"a customer created", nil, vendors.Call{Creates: "customer"}, audit.Record{CreatesCustomer: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := audit.Record{Params: tt.params}
			recordInputs(&rec, &tt.vc, false)
			rec.Params = nil
			if !reflect.DeepEqual(rec, tt.want) {
				t.Fatalf("record\n got %+v\nwant %+v", rec, tt.want)
			}
		})
	}
}
