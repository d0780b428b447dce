package stripe

import (
	"net/http"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// TestScopeOfStripeGoCalls checks what Classify says of the customers
// touched by calls as stripe-go sends them: none is refused, and each
// names its customer, the GET that will tell it, or none.
func TestScopeOfStripeGoCalls(t *testing.T) {
	s := stripego.String
	i := stripego.Int64
	tests := []struct {
		name          string
		call          func(sc *client.API) error
		subjectLookup string
		customer      string
		noCustomer    bool
		creates       string
	}{
		{"setup intent confirm", func(sc *client.API) error {
			_, err := sc.SetupIntents.Confirm("seti_1", &stripego.SetupIntentConfirmParams{PaymentMethod: s("pm_card_visa")})
			return err
		}, "GET /v1/setup_intents/seti_1", "", false, ""},
		{"payment method attach", func(sc *client.API) error {
			_, err := sc.PaymentMethods.Attach("pm_card_visa", &stripego.PaymentMethodAttachParams{Customer: s("cus_1")})
			return err
		}, "GET /v1/payment_methods/pm_card_visa", "cus_1", false, ""},
		{"quote accept", func(sc *client.API) error {
			_, err := sc.Quotes.Accept("qt_1", nil)
			return err
		}, "GET /v1/quotes/qt_1", "", false, ""},
		{"dispute close", func(sc *client.API) error {
			_, err := sc.Disputes.Close("dp_1", nil)
			return err
		}, "GET /v1/disputes/dp_1", "", false, ""},
		{"refund retrieve", func(sc *client.API) error {
			_, err := sc.Refunds.Get("re_1", nil)
			return err
		}, "GET /v1/refunds/re_1", "", false, ""},
		{"refunds of a charge", func(sc *client.API) error {
			it := sc.Refunds.List(&stripego.RefundListParams{Charge: s("ch_1")})
			it.Next()
			return it.Err()
		}, "GET /v1/charges/ch_1", "", false, ""},
		{"invoice item", func(sc *client.API) error {
			_, err := sc.InvoiceItems.New(&stripego.InvoiceItemParams{Customer: s("cus_1"), Invoice: s("in_1"), Amount: i(100), Currency: s("usd")})
			return err
		}, "GET /v1/invoices/in_1", "cus_1", false, ""},
		{"subscription item", func(sc *client.API) error {
			_, err := sc.SubscriptionItems.New(&stripego.SubscriptionItemParams{Subscription: s("sub_1"), Price: s("price_1"), Quantity: i(2)})
			return err
		}, "GET /v1/subscriptions/sub_1", "", false, ""},
		{"subscription schedule", func(sc *client.API) error {
			_, err := sc.SubscriptionSchedules.New(&stripego.SubscriptionScheduleParams{FromSubscription: s("sub_1")})
			return err
		}, "GET /v1/subscriptions/sub_1", "", false, ""},
		{"subscription cancel", func(sc *client.API) error {
			_, err := sc.Subscriptions.Cancel("sub_1", nil)
			return err
		}, "GET /v1/subscriptions/sub_1", "", false, ""},
		{"invoice finalize", func(sc *client.API) error {
			_, err := sc.Invoices.FinalizeInvoice("in_1", nil)
			return err
		}, "GET /v1/invoices/in_1", "", false, ""},
		{"checkout session expire", func(sc *client.API) error {
			_, err := sc.CheckoutSessions.Expire("cs_test_a1", nil)
			return err
		}, "GET /v1/checkout/sessions/cs_test_a1", "", false, ""},
		{"customer create", func(sc *client.API) error {
			p := &stripego.CustomerParams{Email: s("a@x.example")}
			p.AddMetadata("created_by", "refund-bot")
			_, err := sc.Customers.New(p)
			return err
		}, "", "", false, "customer"},
		{"every customer", func(sc *client.API) error {
			it := sc.Customers.List(&stripego.CustomerListParams{Email: s("a@x.example")})
			it.Next()
			return it.Err()
		}, "", "", false, ""},
		{"payout", func(sc *client.API) error {
			_, err := sc.Payouts.New(&stripego.PayoutParams{Amount: i(100), Currency: s("usd")})
			return err
		}, "", "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &classifying{}
			sc := client.New("sk_test_x", Backends(&http.Client{Transport: rec}))
			if err := tt.call(sc); err != nil {
				t.Fatalf("stripe-go: %v", err)
			}
			if len(rec.calls) != 1 || rec.errs[0] != nil {
				t.Fatalf("%d requests, Classify: %v", len(rec.calls), rec.errs)
			}
			c := rec.calls[0]
			if c.SubjectLookup != tt.subjectLookup || c.Customer != tt.customer || c.NoCustomer != tt.noCustomer || c.Creates != tt.creates {
				t.Errorf("SubjectLookup %q Customer %q NoCustomer %v Creates %q; want %q %q %v %q",
					c.SubjectLookup, c.Customer, c.NoCustomer, c.Creates, tt.subjectLookup, tt.customer, tt.noCustomer, tt.creates)
			}
		})
	}
}
