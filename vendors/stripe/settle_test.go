package stripe

import (
	"context"
	"errors"
	"testing"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// call builds a classified money-moving call as Resolve leaves it.
func call(op string, a money.Amount, before int64) *vendors.Call {
	return &vendors.Call{Operation: op, MovesMoney: true, Count: 1, Amount: a,
		State: &state{kind: kindOf(op), explicit: -1, before: before}}
}

func TestSettle(t *testing.T) {
	jpy := func(n int64) money.Amount { return amt(t, n, "JPY") }
	tests := []struct {
		name string
		call *vendors.Call
		body string
		want money.Amount
	}{
		{"refund succeeded", call("refunds.create", usd(t, 100), -1),
			`{"id":"re_1","object":"refund","amount":100,"currency":"usd","status":"succeeded"}`, usd(t, 100)},
		{"refund pending", call("refunds.create", usd(t, 100), -1),
			`{"id":"re_1","object":"refund","amount":100,"currency":"usd","status":"pending"}`, usd(t, 100)},
		{"refund failed", call("refunds.create", usd(t, 100), -1),
			`{"id":"re_1","object":"refund","amount":100,"currency":"usd","status":"failed"}`, usd(t, 0)},
		{"refund canceled", call("refunds.create", usd(t, 100), -1),
			`{"id":"re_1","object":"refund","amount":100,"currency":"usd","status":"canceled"}`, usd(t, 0)},
		{"refund in yen, currency upper case", call("refunds.create", jpy(500), -1),
			`{"id":"re_1","object":"refund","amount":500,"currency":"JPY","status":"succeeded"}`, jpy(500)},
		{"charge refunds", call("charge_refunds.create", usd(t, 100), -1),
			`{"id":"re_1","object":"refund","amount":40,"currency":"usd","status":"succeeded"}`, usd(t, 40)},
		{"legacy charge refund", call("charges.refund", usd(t, 750), 250),
			`{"id":"ch_1","object":"charge","amount":1000,"amount_refunded":1000,"currency":"usd"}`, usd(t, 750)},
		{"charge captured", call("charges.create", usd(t, 2000), -1),
			`{"id":"ch_1","object":"charge","amount":2000,"amount_captured":2000,"captured":true,"currency":"usd","status":"succeeded"}`, usd(t, 2000)},
		{"charge authorised only", call("charges.create", usd(t, 0), -1),
			`{"id":"ch_1","object":"charge","amount":2000,"amount_captured":0,"captured":false,"currency":"usd"}`, usd(t, 0)},
		{"stripe-mock charge fixture", call("charges.create", usd(t, 100), -1),
			`{"id":"ch_1","object":"charge","amount":100,"amount_captured":0,"amount_refunded":0,"captured":false,"currency":"usd"}`, usd(t, 0)},
		{"capture", call("charges.capture", usd(t, 1000), 0),
			`{"id":"ch_1","object":"charge","amount":1000,"amount_captured":600,"captured":true,"currency":"usd"}`, usd(t, 600)},
		{"capture, before unknown", call("charges.capture", usd(t, 1000), -1),
			`{"id":"ch_1","object":"charge","amount":1000,"amount_captured":600,"captured":true,"currency":"usd"}`, usd(t, 600)},
		{"intent created and paid", call("payment_intents.create", usd(t, 1099), 0),
			`{"id":"pi_1","object":"payment_intent","amount":1099,"amount_received":1099,"currency":"usd","status":"succeeded"}`, usd(t, 1099)},
		{"intent needs action", call("payment_intents.create", usd(t, 1099), 0),
			`{"id":"pi_1","object":"payment_intent","amount":1099,"amount_received":0,"currency":"usd","status":"requires_action"}`, usd(t, 0)},
		{"intent confirmed", call("payment_intents.confirm", usd(t, 2000), 0),
			`{"id":"pi_1","object":"payment_intent","amount":2000,"amount_received":2000,"currency":"usd"}`, usd(t, 2000)},
		{"intent captured", call("payment_intents.capture", usd(t, 1099), 0),
			`{"id":"pi_123","object":"payment_intent","amount":1099,"amount_received":1099,"currency":"usd"}`, usd(t, 1099)},
		{"increment authorises nothing", &vendors.Call{Operation: "payment_intents.increment_authorization", MovesMoney: true},
			`{"id":"pi_1","object":"payment_intent","amount":5000,"amount_capturable":5000,"currency":"usd"}`, money.Amount{}},
		{"transfer", call("transfers.create", usd(t, 700), -1),
			`{"id":"tr_1","object":"transfer","amount":700,"amount_reversed":0,"currency":"usd"}`, usd(t, 700)},
		{"reversal", call("transfer_reversals.create", usd(t, 600), -1),
			`{"id":"trr_1","object":"transfer_reversal","amount":600,"currency":"usd","transfer":"tr_1"}`, usd(t, 600)},
		{"payout", call("payouts.create", amt(t, 5000, "GBP"), -1),
			`{"id":"po_1","object":"payout","amount":5000,"currency":"gbp","status":"pending"}`, amt(t, 5000, "GBP")},
		{"topup", call("topups.create", usd(t, 5000), -1),
			`{"id":"tu_1","object":"topup","amount":5000,"currency":"usd","status":"pending"}`, usd(t, 5000)},
		{"invoice paid", call("invoices.pay", usd(t, 2500), 100),
			`{"id":"in_1","object":"invoice","amount_paid":2600,"amount_remaining":0,"currency":"usd","status":"paid"}`, usd(t, 2500)},
		{"invoice paid, before unknown", call("invoices.pay", usd(t, 2500), -1),
			`{"id":"in_1","object":"invoice","amount_paid":2600,"amount_remaining":0,"currency":"usd"}`, usd(t, 2600)},
		{"fee refund", call("application_fee_refunds.create", usd(t, 200), -1),
			`{"id":"fr_1","object":"fee_refund","amount":200,"currency":"usd","fee":"fee_1"}`, usd(t, 200)},
		{"credit note", call("credit_notes.create", amt(t, 500, "EUR"), -1),
			`{"id":"cn_1","object":"credit_note","amount":500,"currency":"eur","invoice":"in_1"}`, amt(t, 500, "EUR")},
		{"call without State", &vendors.Call{Operation: "payment_intents.capture", MovesMoney: true, Amount: usd(t, 1099)},
			`{"id":"pi_1","object":"payment_intent","amount":1099,"amount_received":1099,"currency":"usd"}`, usd(t, 1099)},
		{"no money", &vendors.Call{Operation: "charges.retrieve"}, `not even JSON`, money.Amount{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Vendor{}.Settle(tt.call, []byte(tt.body))
			if err != nil {
				t.Fatalf("Settle: %v", err)
			}
			if got.Moved != tt.want {
				t.Errorf("Settle = %+v, want %+v", got.Moved, tt.want)
			}
		})
	}
}

func TestSettleFailures(t *testing.T) {
	tests := []struct {
		name string
		call *vendors.Call
		body string
	}{
		{"not JSON", call("refunds.create", usd(t, 100), -1), `<html>`},
		{"empty", call("refunds.create", usd(t, 100), -1), ``},
		{"array", call("refunds.create", usd(t, 100), -1), `[]`},
		{"wrong object", call("refunds.create", usd(t, 100), -1), `{"object":"charge","amount":100,"currency":"usd","status":"succeeded"}`},
		{"other currency", call("refunds.create", usd(t, 100), -1), `{"object":"refund","amount":100,"currency":"jpy","status":"succeeded"}`},
		{"unknown currency", call("refunds.create", usd(t, 100), -1), `{"object":"refund","amount":100,"currency":"zzz","status":"succeeded"}`},
		{"no currency", call("refunds.create", usd(t, 100), -1), `{"object":"refund","amount":100,"status":"succeeded"}`},
		{"no status", call("refunds.create", usd(t, 100), -1), `{"object":"refund","amount":100,"currency":"usd"}`},
		{"float amount", call("refunds.create", usd(t, 100), -1), `{"object":"refund","amount":1.5,"currency":"usd","status":"succeeded"}`},
		{"negative amount", call("transfers.create", usd(t, 100), -1), `{"object":"transfer","amount":-100,"currency":"usd"}`},
		{"amount as string", call("payouts.create", usd(t, 100), -1), `{"object":"payout","amount":"100","currency":"usd"}`},
		{"no captured", call("charges.create", usd(t, 100), -1), `{"object":"charge","amount_captured":100,"currency":"usd"}`},
		{"captured not a bool", call("charges.create", usd(t, 100), -1), `{"object":"charge","captured":"true","amount_captured":100,"currency":"usd"}`},
		{"captured total went down", call("charges.capture", usd(t, 100), 500), `{"object":"charge","amount_captured":100,"currency":"usd"}`},
		{"paid total went down", call("invoices.pay", usd(t, 100), 500), `{"object":"invoice","amount_paid":100,"currency":"usd"}`},
		{"call has no currency", call("refunds.create", money.Amount{}, -1), `{"object":"refund","amount":100,"currency":"usd","status":"succeeded"}`},
		{"unknown operation", &vendors.Call{Operation: "subscriptions.create", MovesMoney: true, Amount: usd(t, 1)}, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Vendor{}.Settle(tt.call, []byte(tt.body))
			if err == nil {
				t.Fatalf("Settle = %v, want an error", got)
			}
			if !errors.Is(err, ErrSettle) {
				t.Errorf("Settle error %v does not wrap ErrSettle", err)
			}
		})
	}
}

// TestClassifyResolveSettle follows one refund through the three stages.
func TestClassifyResolveSettle(t *testing.T) {
	v := Vendor{}
	c, err := v.Classify(req("POST", "/v1/invoices/in_1/pay", ""))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeStripe{answers: map[string]answer{
		"/v1/invoices/in_1": ok200(`{"id":"in_1","object":"invoice","amount_remaining":900,"amount_paid":100,"currency":"usd"}`),
	}}
	if _, err := v.Resolve(context.Background(), c, vendors.Need{}, f.get, nil); err != nil {
		t.Fatal(err)
	}
	got, err := v.Settle(c, []byte(`{"id":"in_1","object":"invoice","amount_remaining":0,"amount_paid":1000,"currency":"usd"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Amount != usd(t, 900) || got.Moved != usd(t, 900) || got.Object != "in_1" {
		t.Errorf("reserved %v, settled %v; want 9.00 USD both", c.Amount, got)
	}
}
