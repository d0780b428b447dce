package stripe

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake/vendors"
)

// classifying hands every request stripe-go sends to Classify, as
// Keybrake's transport does, and records the result.
type classifying struct {
	mu    sync.Mutex
	reqs  []*vendors.Request
	calls []*vendors.Call
	errs  []error
}

func (c *classifying) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	r := &vendors.Request{
		Method: req.Method, Host: req.URL.Host, Path: req.URL.EscapedPath(), Query: req.URL.RawQuery,
		Header: req.Header.Clone(), Body: body,
	}
	call, err := Vendor{}.Classify(r)
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.calls = append(c.calls, call)
	c.errs = append(c.errs, err)
	c.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{}`)), Request: req}, nil
}

// TestClassifyAcceptsStripeGo checks that the strict reading refuses none
// of what stripe-go itself sends for the calls Keybrake prices, and names
// each one.
func TestClassifyAcceptsStripeGo(t *testing.T) {
	s := stripego.String
	i := stripego.Int64
	meta := map[string]string{"order": "6735", "note": "a&b=c [x]"}
	tests := []struct {
		op   string
		call func(sc *client.API) error
	}{
		{"charges.create", func(sc *client.API) error {
			p := &stripego.ChargeParams{Amount: i(2000), Currency: s("usd"), Customer: s("cus_1"), Capture: stripego.Bool(false),
				Description: s("order 6735")}
			p.Metadata = meta
			p.AddExpand("balance_transaction")
			_, err := sc.Charges.New(p)
			return err
		}},
		{"charges.capture", func(sc *client.API) error {
			_, err := sc.Charges.Capture("ch_1", &stripego.ChargeCaptureParams{Amount: i(500), ExchangeRate: stripego.Float64(1.5)})
			return err
		}},
		{"payment_intents.create", func(sc *client.API) error {
			_, err := sc.PaymentIntents.New(&stripego.PaymentIntentParams{Amount: i(1099), Currency: s("eur"), Confirm: stripego.Bool(true),
				CaptureMethod: s("manual"), PaymentMethod: s("pm_card_visa"), PaymentMethodTypes: []*string{s("card")},
				ApplicationFeeAmount: i(100), TransferData: &stripego.PaymentIntentTransferDataParams{Destination: s("acct_1"), Amount: i(900)}})
			return err
		}},
		{"payment_intents.confirm", func(sc *client.API) error {
			_, err := sc.PaymentIntents.Confirm("pi_1", &stripego.PaymentIntentConfirmParams{PaymentMethod: s("pm_card_visa"),
				CaptureMethod: s("automatic"), ReturnURL: s("https://example.com/back?x=1")})
			return err
		}},
		{"payment_intents.capture", func(sc *client.API) error {
			_, err := sc.PaymentIntents.Capture("pi_1", &stripego.PaymentIntentCaptureParams{AmountToCapture: i(500), FinalCapture: stripego.Bool(true)})
			return err
		}},
		{"payment_intents.increment_authorization", func(sc *client.API) error {
			_, err := sc.PaymentIntents.IncrementAuthorization("pi_1", &stripego.PaymentIntentIncrementAuthorizationParams{Amount: i(5000)})
			return err
		}},
		{"refunds.create", func(sc *client.API) error {
			p := &stripego.RefundParams{Charge: s("ch_1"), Amount: i(100), Reason: s("requested_by_customer")}
			p.Metadata = meta
			p.SetIdempotencyKey("refund-6735")
			p.SetStripeAccount("acct_1")
			_, err := sc.Refunds.New(p)
			return err
		}},
		{"transfers.create", func(sc *client.API) error {
			_, err := sc.Transfers.New(&stripego.TransferParams{Amount: i(700), Currency: s("usd"), Destination: s("acct_1")})
			return err
		}},
		{"transfer_reversals.create", func(sc *client.API) error {
			_, err := sc.TransferReversals.New(&stripego.TransferReversalParams{ID: s("tr_1"), Amount: i(50), RefundApplicationFee: stripego.Bool(true)})
			return err
		}},
		{"payouts.create", func(sc *client.API) error {
			_, err := sc.Payouts.New(&stripego.PayoutParams{Amount: i(5000), Currency: s("gbp"), Method: s("standard")})
			return err
		}},
		{"topups.create", func(sc *client.API) error {
			_, err := sc.Topups.New(&stripego.TopupParams{Amount: i(5000), Currency: s("usd"), Description: s("top")})
			return err
		}},
		{"invoices.pay", func(sc *client.API) error {
			_, err := sc.Invoices.Pay("in_1", &stripego.InvoicePayParams{OffSession: stripego.Bool(true)})
			return err
		}},
		{"application_fee_refunds.create", func(sc *client.API) error {
			_, err := sc.FeeRefunds.New(&stripego.FeeRefundParams{ID: s("fee_1"), Amount: i(10)})
			return err
		}},
		{"credit_notes.create", func(sc *client.API) error {
			_, err := sc.CreditNotes.New(&stripego.CreditNoteParams{Invoice: s("in_1"), RefundAmount: i(300), CreditAmount: i(200),
				Lines: []*stripego.CreditNoteLineParams{{Type: s("custom_line_item"), UnitAmount: i(500), Quantity: i(1), Description: s("x")}}})
			return err
		}},
		{"checkout.sessions.create", func(sc *client.API) error {
			_, err := sc.CheckoutSessions.New(&stripego.CheckoutSessionParams{Mode: s("payment"), SuccessURL: s("https://example.com/ok"),
				LineItems: []*stripego.CheckoutSessionLineItemParams{{Quantity: i(2), PriceData: &stripego.CheckoutSessionLineItemPriceDataParams{
					Currency: s("usd"), UnitAmountDecimal: stripego.Float64(1999.5),
					ProductData: &stripego.CheckoutSessionLineItemPriceDataProductDataParams{Name: s("T-shirt")}}}}})
			return err
		}},
		{"charges.retrieve", func(sc *client.API) error {
			p := &stripego.ChargeParams{}
			p.AddExpand("customer")
			_, err := sc.Charges.Get("ch_1", p)
			return err
		}},
		{"charges.list", func(sc *client.API) error {
			it := sc.Charges.List(&stripego.ChargeListParams{Customer: s("cus_1"), ListParams: stripego.ListParams{Limit: i(3)},
				CreatedRange: &stripego.RangeQueryParams{GreaterThan: 1700000000}})
			it.Next()
			return it.Err()
		}},
		{"customers.delete", func(sc *client.API) error {
			_, err := sc.Customers.Del("cus_1", nil)
			return err
		}},
		{"refunds.create", func(sc *client.API) error {
			_, err := sc.Refunds.New(&stripego.RefundParams{PaymentIntent: s("pi_1")})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			rec := &classifying{}
			sc := client.New("sk_test_x", Backends(&http.Client{Transport: rec}))
			if err := tt.call(sc); err != nil {
				t.Fatalf("stripe-go: %v", err)
			}
			if len(rec.calls) != 1 {
				t.Fatalf("%d requests", len(rec.calls))
			}
			if rec.errs[0] != nil {
				t.Fatalf("Classify refused what stripe-go sends: %v", rec.errs[0])
			}
			if got := rec.calls[0].Operation; got != tt.op {
				t.Errorf("Operation = %q, want %q", got, tt.op)
			}
		})
	}
}

func TestClassifyReadsStripeGoHeaders(t *testing.T) {
	rec := &classifying{}
	sc := client.New("sk_test_x", Backends(&http.Client{Transport: rec}))
	p := &stripego.RefundParams{Charge: stripego.String("ch_1")}
	p.SetIdempotencyKey("refund-6735")
	p.SetStripeAccount("acct_1")
	if _, err := sc.Refunds.New(p); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Transfers.New(&stripego.TransferParams{Amount: stripego.Int64(1), Currency: stripego.String("usd")}); err != nil {
		t.Fatal(err)
	}
	for _, err := range rec.errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := rec.calls[0]; c.IdempotencyKey != "refund-6735" || c.Account != "acct_1" {
		t.Errorf("IdempotencyKey, Account = %q, %q", c.IdempotencyKey, c.Account)
	}
	// stripe-go makes up a key for every write.
	if c := rec.calls[1]; c.IdempotencyKey == "" || c.Account != "" {
		t.Errorf("generated IdempotencyKey, Account = %q, %q", c.IdempotencyKey, c.Account)
	}
}
