package policy

import (
	"testing"

	"github.com/keybrake/keybrake/money"
)

const pricedPolicy = `version: 1
vendors:
  twilio:
    daily_cap: 50.00 USD
    prices:
      sms:
        default: 0.0079 USD
        "+44": 0.0400 USD
        "+447": 0.0500 USD
      mms: 0.0200 USD
      call_minute:
        "+1": 0.0140 USD
    assume_call_minutes: 10
  resend:
    prices:
      email: 0.0004 USD
    bill_per_recipient: true
agents:
  a:
    twilio:
      allow: [POST /x]
`

func TestCost(t *testing.T) {
	p, err := Parse("p.yaml", []byte(pricedPolicy))
	if err != nil {
		t.Fatal(err)
	}
	usd := func(micros int64) money.Amount { return money.Amount{Micros: micros, Currency: "USD"} }
	tests := []struct {
		name     string
		vendor   string
		q        PriceQuery
		amount   money.Amount
		quantity int64
		code     string
	}{
		{"US sms, default price", "twilio", PriceQuery{Item: "sms", Destination: "+15551234567", Quantity: 3}, usd(23700), 3, ""},
		{"UK landline prefix", "twilio", PriceQuery{Item: "sms", Destination: "+442071234567", Quantity: 1}, usd(40000), 1, ""},
		{"longest prefix wins", "twilio", PriceQuery{Item: "sms", Destination: "+447700900123", Quantity: 2}, usd(100000), 2, ""},
		{"mms", "twilio", PriceQuery{Item: "mms", Destination: "+15551234567", Quantity: 1}, usd(20000), 1, ""},
		{"call with TimeLimit", "twilio", PriceQuery{Item: "call_minute", Destination: "+15551234567", Quantity: 5}, usd(70000), 5, ""},
		{"call without TimeLimit", "twilio", PriceQuery{Item: "call_minute", Destination: "+15551234567", Quantity: -1}, usd(140000), 10, ""},
		{"call to an unpriced country", "twilio", PriceQuery{Item: "call_minute", Destination: "+447700900123", Quantity: 1}, money.Amount{}, 0, "keybrake_no_price"},
		{"per recipient", "resend", PriceQuery{Item: "email", Quantity: 1, Recipients: 3}, usd(1200), 3, ""},
		{"broadcast without a count", "resend", PriceQuery{Item: "broadcast", Quantity: -1}, money.Amount{}, 0, "keybrake_broadcast_unbounded"},
		{"no prices at all", "stripe", PriceQuery{Item: "email", Quantity: 1}, money.Amount{}, 0, "keybrake_no_price"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, n, v := p.Cost(tt.vendor, tt.q)
			if tt.code != "" {
				if v.Decision != Blocked || v.Code != tt.code || v.Reason == "" {
					t.Fatalf("verdict %+v, want %s", v, tt.code)
				}
				return
			}
			if v.Decision != Allowed || a != tt.amount || n != tt.quantity {
				t.Fatalf("Cost = %v x%d %+v, want %v x%d", a, n, v, tt.amount, tt.quantity)
			}
		})
	}
	_, _, v := p.Cost("twilio", PriceQuery{Item: "call_minute", Destination: "+15551234567", Quantity: -1})
	if v.Rule != "vendors.twilio.prices.call_minute.+1" {
		t.Fatalf("rule %q", v.Rule)
	}
}

func TestPricesRefused(t *testing.T) {
	for name, text := range map[string]string{
		"unknown item":       "version: 1\nvendors:\n  twilio:\n    prices:\n      fax: 1.00 USD\nagents:\n  a: {}\n",
		"stripe has none":    "version: 1\nvendors:\n  stripe:\n    prices:\n      sms: 1.00 USD\nagents:\n  a: {}\n",
		"bad prefix":         "version: 1\nvendors:\n  twilio:\n    prices:\n      sms:\n        \"44\": 1.00 USD\nagents:\n  a: {}\n",
		"seven decimals":     "version: 1\nvendors:\n  twilio:\n    prices:\n      sms: 0.0000001 USD\nagents:\n  a: {}\n",
		"empty table":        "version: 1\nvendors:\n  twilio:\n    prices:\n      sms: {}\nagents:\n  a: {}\n",
		"assume not a count": "version: 1\nvendors:\n  twilio:\n    assume_call_minutes: ten\nagents:\n  a: {}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse("p.yaml", []byte(text)); err == nil {
				t.Fatal("parsed")
			}
		})
	}
}
