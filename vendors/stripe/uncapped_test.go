package stripe

import (
	"strings"
	"testing"

	"github.com/keybrake/keybrake/vendors"
)

// TestClassifyUncapped checks which calls are marked as moving money
// Keybrake does not count, and that counted and read-only calls are not.
func TestClassifyUncapped(t *testing.T) {
	tests := []struct {
		name string
		r    *vendors.Request
		want string // a part of the reason; "" for none
	}{
		{"subscription create", req("POST", "/v1/subscriptions", "customer=cus_5&items[0][price]=price_1"), "subscription"},
		{"subscription update", req("POST", "/v1/subscriptions/sub_1", "proration_behavior=always_invoice"), "prorations"},
		{"subscription cancel", req("DELETE", "/v1/subscriptions/sub_1", "invoice_now=true"), "invoice_now"},
		{"subscription resume", req("POST", "/v1/subscriptions/sub_1/resume", ""), "resuming"},
		{"subscription item create", req("POST", "/v1/subscription_items", "subscription=sub_1&price=price_1"), "subscription"},
		{"subscription item delete", req("DELETE", "/v1/subscription_items/si_1", ""), "prorations"},
		{"subscription schedule", req("POST", "/v1/subscription_schedules", "customer=cus_1"), "schedule"},
		{"invoice create", req("POST", "/v1/invoices", "customer=cus_1"), "automatic collection"},
		{"invoice update", req("POST", "/v1/invoices/in_1", "auto_advance=true"), "invoice"},
		{"invoice finalize", req("POST", "/v1/invoices/in_1/finalize", ""), "automatic collection"},
		{"invoice item", req("POST", "/v1/invoiceitems", "customer=cus_1&amount=100&currency=usd"), "next invoice"},
		{"quote accept", req("POST", "/v1/quotes/qt_1/accept", ""), "quote"},
		{"customer balance", req("POST", "/v1/customers/cus_1/balance_transactions", "amount=500&currency=usd"), "balance"},
		{"apply customer balance", req("POST", "/v1/payment_intents/pi_1/apply_customer_balance", ""), "cash balance"},
		{"payout reverse", req("POST", "/v1/payouts/po_1/reverse", ""), "payout"},
		{"terminal payment", req("POST", "/v1/terminal/readers/tmr_1/process_payment_intent", "payment_intent=pi_1"), "in-person"},
		{"issuing card", req("POST", "/v1/issuing/cards", "cardholder=ich_1&currency=usd&type=virtual"), "Issuing"},
		{"treasury outbound payment", req("POST", "/v1/treasury/outbound_payments", "amount=100&currency=usd"), "Treasury"},

		{"invoice pay is counted", req("POST", "/v1/invoices/in_1/pay", ""), ""},
		{"invoice send moves nothing itself", req("POST", "/v1/invoices/in_1/send", ""), ""},
		{"refund is counted", req("POST", "/v1/refunds", "charge=ch_1&amount=100"), ""},
		{"subscription read", req("GET", "/v1/subscriptions/sub_1", ""), ""},
		{"issuing read", req("GET", "/v1/issuing/cards", ""), ""},
		{"customer update", req("POST", "/v1/customers/cus_1", "name=x"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.r)
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			switch {
			case tt.want == "" && c.Uncapped != "":
				t.Errorf("Uncapped = %q, want none", c.Uncapped)
			case tt.want != "" && !strings.Contains(c.Uncapped, tt.want):
				t.Errorf("Uncapped = %q, want it to mention %q", c.Uncapped, tt.want)
			}
		})
	}
}
