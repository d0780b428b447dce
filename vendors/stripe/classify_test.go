package stripe

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// req builds a request to api.stripe.com as stripe-go would send it: a form
// Content-Type on every method, the body for writes, the query for GETs.
func req(method, path, params string, header ...string) *vendors.Request {
	r := &vendors.Request{
		Method: method,
		Host:   APIHost,
		Path:   path,
		Header: http.Header{"Content-Type": {formType}},
	}
	if method == "GET" {
		r.Query = params
	} else {
		r.Body = []byte(params)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			r.Header.Del(header[i])
			continue
		}
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func withHost(r *vendors.Request, host string) *vendors.Request { r.Host = host; return r }

func withQuery(r *vendors.Request, q string) *vendors.Request { r.Query = q; return r }

func withBody(r *vendors.Request, b string) *vendors.Request { r.Body = []byte(b); return r }

func withContentType(r *vendors.Request, ct ...string) *vendors.Request {
	r.Header.Del("Content-Type")
	for _, v := range ct {
		r.Header.Add("Content-Type", v)
	}
	return r
}

func TestClassifyRefusals(t *testing.T) {
	long := strings.Repeat("k", 256)
	tests := []struct {
		name string
		req  *vendors.Request
		code string
	}{
		// Methods and hosts.
		{"PUT", req("PUT", "/v1/charges/ch_1", "amount=1"), codeBadMethod},
		{"PATCH", req("PATCH", "/v1/charges/ch_1", ""), codeBadMethod},
		{"HEAD", req("HEAD", "/v1/charges/ch_1", ""), codeBadMethod},
		{"oauth on api host", req("POST", "/oauth/token", "code=ac_1"), codeWrongHost},
		{"api on connect host", withHost(req("POST", "/v1/refunds", "charge=ch_1"), ConnectHost), codeWrongHost},
		{"charges on files host", withHost(req("POST", "/v1/charges", "amount=1&currency=usd"), UploadsHost), codeWrongHost},
		{"files prefix trick", withHost(req("GET", "/v1/filesx", ""), UploadsHost), codeWrongHost},
		{"non-v1 on api host", req("GET", "/v2/charges", ""), codeWrongHost},

		// Content types.
		{"no content type on write", withContentType(req("POST", "/v1/refunds", "charge=ch_1")), codeBadContentType},
		{"json", withContentType(req("POST", "/v1/refunds", `{"charge":"ch_1"}`), "application/json"), codeBadContentType},
		{"multipart", withContentType(req("POST", "/v1/refunds", "x"), "multipart/form-data; boundary=x"), codeBadContentType},
		{"two content types", withContentType(req("POST", "/v1/refunds", "charge=ch_1"), formType, formType), codeBadContentType},
		{"latin-1 charset", withContentType(req("POST", "/v1/refunds", "charge=ch_1"), formType+"; charset=iso-8859-1"), codeBadContentType},
		{"extra parameter", withContentType(req("POST", "/v1/refunds", "charge=ch_1"), formType+"; charset=utf-8; x=y"), codeBadContentType},
		{"other parameter", withContentType(req("POST", "/v1/refunds", "charge=ch_1"), formType+"; boundary=x"), codeBadContentType},
		{"form prefix", withContentType(req("POST", "/v1/refunds", "charge=ch_1"), formType+"x"), codeBadContentType},
		{"json on get", withContentType(req("GET", "/v1/charges", ""), "application/json"), codeBadContentType},
		{"form content type accepted", withContentType(req("POST", "/v1/refunds", "charge=ch_1"), formType), ""},

		// Where parameters live.
		{"query on POST", withQuery(req("POST", "/v1/refunds", "charge=ch_1"), "amount=99999"), codeQueryOnWrite},
		{"query on DELETE", withQuery(req("DELETE", "/v1/customers/cus_1", ""), "x=1"), codeQueryOnWrite},
		{"body on GET", withBody(req("GET", "/v1/charges/ch_1", ""), "amount=1"), codeBodyOnGet},

		// Parameter syntax.
		{"semicolon", req("POST", "/v1/refunds", "amount=1;currency=usd&charge=ch_1"), codeBadParams},
		{"bad escape", req("POST", "/v1/refunds", "charge=ch_1&amount=%zz"), codeBadParams},
		{"bad escape in name", req("POST", "/v1/refunds", "charge=ch_1&am%zzount=1"), codeBadParams},
		{"empty pair", req("POST", "/v1/refunds", "charge=ch_1&&amount=1"), codeBadParams},
		{"trailing ampersand", req("POST", "/v1/refunds", "charge=ch_1&"), codeBadParams},
		{"no equals", req("POST", "/v1/refunds", "charge=ch_1&amount"), codeBadParams},
		{"empty name", req("POST", "/v1/refunds", "charge=ch_1&=5"), codeBadParamName},
		{"amount plus", req("POST", "/v1/refunds", "charge=ch_1&amount+=100"), codeBadParamName},
		{"upper-case name", req("POST", "/v1/refunds", "charge=ch_1&Amount=100"), codeBadParamName},
		{"stray bracket", req("POST", "/v1/refunds", "charge=ch_1&amount]=1"), codeBadParamName},
		{"unclosed bracket", req("POST", "/v1/refunds", "charge=ch_1&metadata[a=1"), codeBadParamName},
		{"nested bracket", req("POST", "/v1/refunds", "charge=ch_1&metadata[a[b]]=1"), codeBadParamName},
		{"escaped nul", req("POST", "/v1/refunds", "charge=ch_1&amount%00=1"), codeBadParamName},
		{"duplicate amount", req("POST", "/v1/refunds", "charge=ch_1&amount=1&amount=99999"), codeDuplicateParam},
		{"duplicate by escape", req("POST", "/v1/charges/ch_1", "metadata[a]=1&metadata%5Ba%5D=2"), codeDuplicateParam},
		{"duplicate on GET", req("GET", "/v1/charges", "limit=1&limit=100"), codeDuplicateParam},

		// Amounts.
		{"plus sign", req("POST", "/v1/refunds", "charge=ch_1&amount=%2B100"), codeBadAmount},
		{"leading zero", req("POST", "/v1/refunds", "charge=ch_1&amount=0100"), codeBadAmount},
		{"negative", req("POST", "/v1/refunds", "charge=ch_1&amount=-1"), codeBadAmount},
		{"exponent", req("POST", "/v1/refunds", "charge=ch_1&amount=1e3"), codeBadAmount},
		{"decimal", req("POST", "/v1/refunds", "charge=ch_1&amount=10.5"), codeBadAmount},
		{"nine digits", req("POST", "/v1/refunds", "charge=ch_1&amount=123456789"), codeBadAmount},
		{"empty amount", req("POST", "/v1/refunds", "charge=ch_1&amount="), codeBadAmount},
		{"space", req("POST", "/v1/refunds", "charge=ch_1&amount=+100"), codeBadAmount},
		{"nested unit_amount", req("POST", "/v1/checkout/sessions", "line_items[0][price_data][unit_amount]=01"), codeBadAmount},
		{"application_fee_amount", req("POST", "/v1/charges", "amount=100&currency=usd&application_fee_amount=x"), codeBadAmount},
		{"fractional quantity", req("POST", "/v1/checkout/sessions", "line_items[0][quantity]=1.5"), codeBadAmount},
		{"amount_to_capture", req("POST", "/v1/payment_intents/pi_1/capture", "amount_to_capture=-5"), codeBadAmount},
		{"decimal two points", req("POST", "/v1/prices", "unit_amount_decimal=1.2.3"), codeBadAmount},
		{"decimal 13 places", req("POST", "/v1/prices", "unit_amount_decimal=1.1234567890123"), codeBadAmount},
		{"decimal leading zero", req("POST", "/v1/prices", "unit_amount_decimal=01.5"), codeBadAmount},
		{"decimal trailing point", req("POST", "/v1/prices", "unit_amount_decimal=1."), codeBadAmount},
		{"three-decimal KWD", req("POST", "/v1/charges", "amount=1005&currency=kwd"), codeBadAmount},
		{"three-decimal fee", req("POST", "/v1/charges", "amount=1000&currency=bhd&application_fee_amount=15"), codeBadAmount},
		{"three-decimal nested", req("POST", "/v1/checkout/sessions", "line_items[0][price_data][unit_amount]=1005&line_items[0][price_data][currency]=tnd"), codeBadAmount},

		// Currencies.
		{"unknown currency", req("POST", "/v1/charges", "amount=100&currency=xyz"), codeBadCurrency},
		{"short currency", req("POST", "/v1/charges", "amount=100&currency=us"), codeBadCurrency},
		{"nested currency", req("POST", "/v1/checkout/sessions", "line_items[0][price_data][currency]=dollars"), codeBadCurrency},

		// IDs.
		{"charge as intent", req("POST", "/v1/refunds", "charge=pi_1"), codeBadID},
		{"charge with space", req("POST", "/v1/refunds", "charge=ch_1%20"), codeBadID},
		{"charge confusable", req("POST", "/v1/refunds", "charge=%D1%81h_1"), codeBadID},
		{"intent as charge", req("POST", "/v1/refunds", "payment_intent=ch_1"), codeBadID},
		{"customer", req("POST", "/v1/charges", "amount=100&currency=usd&customer=cus-1"), codeBadID},
		{"invoice", req("POST", "/v1/credit_notes", "invoice=ch_1&amount=100"), codeBadID},
		{"path charge", req("POST", "/v1/charges/pi_1/capture", ""), codeBadID},
		{"path intent", req("POST", "/v1/payment_intents/ch_1/confirm", ""), codeBadID},
		{"path transfer", req("POST", "/v1/transfers/xx_1/reversals", ""), codeBadID},
		{"path fee", req("POST", "/v1/application_fees/ch_1/refunds", ""), codeBadID},
		{"path invoice", req("POST", "/v1/invoices/foo/pay", ""), codeBadID},
		{"path invoice literal misused", req("POST", "/v1/invoices/upcoming/pay", ""), codeBadID},
		{"path unknown sub-resource", req("GET", "/v1/charges/x1/refunds", ""), codeBadID},
		{"path nested refund", req("GET", "/v1/charges/ch_1/refunds/fr_1", ""), codeBadID},
		{"path nested reversal", req("GET", "/v1/transfers/tr_1/reversals/re_1", ""), codeBadID},
		{"path customer", req("DELETE", "/v1/customers/acct_1", ""), codeBadID},
		{"path checkout session", req("GET", "/v1/checkout/sessions/sess_1", ""), codeBadID},
		{"search posted", req("POST", "/v1/charges/search", ""), codeBadID},
		{"transfer destination", req("POST", "/v1/transfers", "amount=100&currency=usd&destination=ba_1"), codeBadID},
		{"customer as hash", req("POST", "/v1/charges", "amount=100&currency=usd&customer[id]=cus_1"), codeBadParam},
		{"invoice as hash", req("GET", "/v1/invoices", "invoice[x]=in_1"), codeBadParam},
		{"customer path and param differ, unlisted", req("POST", "/v1/customers/cus_1/sources", "customer=cus_2"), codeBadParam},
		{"customer path and param differ", req("POST", "/v1/customers/cus_1", "customer=cus_2"), codeBadParam},

		// Headers.
		{"bad account", req("POST", "/v1/refunds", "charge=ch_1", "Stripe-Account", "acct-1"), codeBadHeader},
		{"two accounts", req("POST", "/v1/refunds", "charge=ch_1", "Stripe-Account", "acct_1", "Stripe-Account", "acct_2"), codeBadHeader},
		{"two idempotency keys", req("POST", "/v1/refunds", "charge=ch_1", "Idempotency-Key", "a", "Idempotency-Key", "b"), codeBadHeader},
		{"long idempotency key", req("POST", "/v1/refunds", "charge=ch_1", "Idempotency-Key", long), codeBadHeader},

		// Values the money depends on.
		{"amount as hash", req("POST", "/v1/refunds", "charge=ch_1&amount[x]=5"), codeBadParam},
		{"charge as hash", req("POST", "/v1/refunds", "charge[id]=ch_1"), codeBadParam},
		{"currency as hash", req("POST", "/v1/charges", "amount=100&currency[x]=usd"), codeBadParam},
		{"capture yes", req("POST", "/v1/charges", "amount=100&currency=usd&capture=yes"), codeBadParam},
		{"confirm 1", req("POST", "/v1/payment_intents", "amount=100&currency=usd&confirm=1"), codeBadParam},
		{"capture_method auto", req("POST", "/v1/payment_intents", "amount=100&currency=usd&capture_method=auto"), codeBadParam},
		{"confirm capture_method", req("POST", "/v1/payment_intents/pi_1/confirm", "capture_method=MANUAL"), codeBadParam},
		{"charge without amount", req("POST", "/v1/charges", "currency=usd"), codeMissingParam},
		{"charge without currency", req("POST", "/v1/charges", "amount=100"), codeMissingParam},
		{"intent without amount", req("POST", "/v1/payment_intents", "currency=usd&confirm=true"), codeMissingParam},
		{"payout without currency", req("POST", "/v1/payouts", "amount=100"), codeMissingParam},
		{"refund of nothing", req("POST", "/v1/refunds", "amount=100"), codeMissingParam},
		{"refund of both", req("POST", "/v1/refunds", "charge=ch_1&payment_intent=pi_1"), codeMissingParam},
		{"increment without amount", req("POST", "/v1/payment_intents/pi_1/increment_authorization", ""), codeMissingParam},
		{"credit note without invoice", req("POST", "/v1/credit_notes", "amount=100"), codeMissingParam},
		{"credit note by lines", req("POST", "/v1/credit_notes", "invoice=in_1&lines[0][type]=invoice_line_item&lines[0][invoice_line_item]=il_1&lines[0][quantity]=1"), codeAmountUnknown},
		{"credit note of nothing", req("POST", "/v1/credit_notes", "invoice=in_1"), codeAmountUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.req)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Classify: %v, want accepted", err)
				}
				return
			}
			var inv *vendors.Invalid
			if !errors.As(err, &inv) {
				t.Fatalf("Classify = %+v, %v; want *vendors.Invalid %s", c, err, tt.code)
			}
			if inv.Code != tt.code {
				t.Fatalf("Code = %s (%s), want %s", inv.Code, inv.Reason, tt.code)
			}
			if inv.Reason == "" {
				t.Errorf("Reason is empty")
			}
		})
	}
}

func usd(t *testing.T, minor int64) money.Amount { return amt(t, minor, "USD") }

func amt(t *testing.T, minor int64, c money.Currency) money.Amount {
	t.Helper()
	a, err := money.FromMinor(minor, c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestClassifyCalls(t *testing.T) {
	tests := []struct {
		name     string
		req      *vendors.Request
		op       string
		moves    bool
		amount   money.Amount
		lookup   string
		customer string
		account  string
	}{
		{"charge", req("POST", "/v1/charges", "amount=2000&currency=usd&customer=cus_1&source=tok_visa"),
			"charges.create", true, usd(t, 2000), "", "cus_1", ""},
		{"charge uncaptured", req("POST", "/v1/charges", "amount=2000&currency=usd&capture=false"),
			"charges.create", true, usd(t, 0), "", "", ""},
		{"charge captured explicitly", req("POST", "/v1/charges", "amount=2000&currency=usd&capture=true"),
			"charges.create", true, usd(t, 2000), "", "", ""},
		{"charge in yen", req("POST", "/v1/charges", "amount=100&currency=jpy"),
			"charges.create", true, amt(t, 100, "JPY"), "", "", ""},
		{"charge in KWD", req("POST", "/v1/charges", "amount=1250&currency=KWD"),
			"charges.create", true, amt(t, 1250, "KWD"), "", "", ""},
		{"charge for an account", req("POST", "/v1/charges", "amount=100&currency=eur", "Stripe-Account", "acct_9"),
			"charges.create", true, amt(t, 100, "EUR"), "", "", "acct_9"},
		{"capture all", req("POST", "/v1/charges/ch_1/capture", ""),
			"charges.capture", true, money.Amount{}, "GET /v1/charges/ch_1", "", ""},
		{"capture part", req("POST", "/v1/charges/py_1/capture", "amount=500"),
			"charges.capture", true, money.Amount{}, "GET /v1/charges/py_1", "", ""},
		{"legacy charge refund", req("POST", "/v1/charges/ch_1/refund", "amount=5"),
			"charges.refund", true, money.Amount{}, "GET /v1/charges/ch_1", "", ""},
		{"charge refunds", req("POST", "/v1/charges/ch_1/refunds", ""),
			"charge_refunds.create", true, money.Amount{}, "GET /v1/charges/ch_1", "", ""},
		{"intent confirmed", req("POST", "/v1/payment_intents", "amount=1099&currency=usd&confirm=true&customer=cus_2"),
			"payment_intents.create", true, usd(t, 1099), "", "cus_2", ""},
		{"intent confirmed async", req("POST", "/v1/payment_intents", "amount=1099&currency=usd&confirm=true&capture_method=automatic_async"),
			"payment_intents.create", true, usd(t, 1099), "", "", ""},
		{"intent manual", req("POST", "/v1/payment_intents", "amount=1099&currency=usd&confirm=true&capture_method=manual"),
			"payment_intents.create", true, usd(t, 0), "", "", ""},
		{"intent unconfirmed", req("POST", "/v1/payment_intents", "amount=1099&currency=usd"),
			"payment_intents.create", true, usd(t, 0), "", "", ""},
		{"intent confirm", req("POST", "/v1/payment_intents/pi_1/confirm", "payment_method=pm_card_visa"),
			"payment_intents.confirm", true, money.Amount{}, "GET /v1/payment_intents/pi_1", "", ""},
		{"intent capture", req("POST", "/v1/payment_intents/pi_1/capture", "amount_to_capture=500"),
			"payment_intents.capture", true, money.Amount{}, "GET /v1/payment_intents/pi_1", "", ""},
		{"intent increment", req("POST", "/v1/payment_intents/pi_1/increment_authorization", "amount=5000"),
			"payment_intents.increment_authorization", true, money.Amount{}, "", "", ""},
		{"refund of a charge", req("POST", "/v1/refunds", "charge=ch_1&amount=100"),
			"refunds.create", true, money.Amount{}, "GET /v1/charges/ch_1", "", ""},
		{"refund of an intent", req("POST", "/v1/refunds", "payment_intent=pi_1"),
			"refunds.create", true, money.Amount{}, "GET /v1/payment_intents/pi_1", "", ""},
		{"transfer", req("POST", "/v1/transfers", "amount=700&currency=usd&destination=acct_1"),
			"transfers.create", true, usd(t, 700), "", "", ""},
		{"reversal", req("POST", "/v1/transfers/tr_1/reversals", ""),
			"transfer_reversals.create", true, money.Amount{}, "GET /v1/transfers/tr_1", "", ""},
		{"payout", req("POST", "/v1/payouts", "amount=5000&currency=gbp"),
			"payouts.create", true, amt(t, 5000, "GBP"), "", "", ""},
		{"topup", req("POST", "/v1/topups", "amount=5000&currency=usd"),
			"topups.create", true, usd(t, 5000), "", "", ""},
		{"invoice pay", req("POST", "/v1/invoices/in_1/pay", ""),
			"invoices.pay", true, money.Amount{}, "GET /v1/invoices/in_1", "", ""},
		{"fee refund", req("POST", "/v1/application_fees/fee_1/refunds", "amount=10"),
			"application_fee_refunds.create", true, money.Amount{}, "GET /v1/application_fees/fee_1", "", ""},
		{"credit note", req("POST", "/v1/credit_notes", "invoice=in_1&amount=500"),
			"credit_notes.create", true, money.Amount{}, "GET /v1/invoices/in_1", "", ""},
		{"credit note by parts", req("POST", "/v1/credit_notes", "invoice=in_1&refund_amount=300&credit_amount=200&lines[0][quantity]=1"),
			"credit_notes.create", true, money.Amount{}, "GET /v1/invoices/in_1", "", ""},

		{"checkout session", req("POST", "/v1/checkout/sessions", "mode=payment&line_items[0][price_data][unit_amount]=1000&line_items[0][price_data][currency]=kwd&line_items[0][quantity]=3"),
			"checkout.sessions.create", false, money.Amount{}, "", "", ""},
		{"payment link", req("POST", "/v1/payment_links", "line_items[0][price]=price_1&line_items[0][quantity]=1"),
			"payment_links.create", false, money.Amount{}, "", "", ""},
		{"charge retrieve", req("GET", "/v1/charges/ch_1", "expand[0]=customer"),
			"charges.retrieve", false, money.Amount{}, "", "", ""},
		{"get without content type", req("GET", "/v1/balance", "", "Content-Type", ""),
			"balance.retrieve", false, money.Amount{}, "", "", ""},
		{"charge list by customer", req("GET", "/v1/charges", "customer=cus_3&limit=3&created[gte]=1"),
			"charges.list", false, money.Amount{}, "", "cus_3", ""},
		{"charge refund retrieve", req("GET", "/v1/charges/ch_1/refunds/pyr_1", ""),
			"charge_refunds.retrieve", false, money.Amount{}, "", "", ""},
		{"charge search", req("GET", "/v1/charges/search", "query=amount%3E100"),
			"charges.search", false, money.Amount{}, "", "", ""},
		{"upcoming invoice", req("GET", "/v1/invoices/upcoming", "customer=cus_3"),
			"invoices.upcoming", false, money.Amount{}, "", "cus_3", ""},
		{"customer sources (unlisted)", req("POST", "/v1/customers/cus_4/sources", "source=tok_visa"),
			"", false, money.Amount{}, "", "cus_4", ""},
		{"customer retrieve", req("GET", "/v1/customers/cus_4", ""),
			"customers.retrieve", false, money.Amount{}, "", "cus_4", ""},
		{"customer delete", req("DELETE", "/v1/customers/cus_4", ""),
			"customers.delete", false, money.Amount{}, "", "cus_4", ""},
		{"utf-8 charset", withContentType(req("POST", "/v1/customers/cus_4", "name=J%C3%BCrgen"), formType+"; charset=UTF-8"),
			"customers.update", false, money.Amount{}, "", "cus_4", ""},
		{"session retrieve", req("GET", "/v1/checkout/sessions/cs_test_a1B2", ""),
			"checkout.sessions.retrieve", false, money.Amount{}, "", "", ""},
		{"subscription (unknown)", req("POST", "/v1/subscriptions", "customer=cus_5&items[0][price]=price_1"),
			"", false, money.Amount{}, "", "cus_5", ""},
		{"metadata is free text", req("POST", "/v1/charges/ch_1", "metadata[amount]=10.99&metadata[currency]=dollars&metadata[charge]=x"),
			"charges.update", false, money.Amount{}, "", "", ""},
		{"oauth token", withHost(req("POST", "/oauth/token", "grant_type=authorization_code&code=ac_1"), ConnectHost),
			"oauth.token", false, money.Amount{}, "", "", ""},
		{"configured endpoint", withHost(req("POST", "/v1/refunds", "charge=ch_1"), "127.0.0.1:12111"),
			"refunds.create", true, money.Amount{}, "GET /v1/charges/ch_1", "", ""},
		{"upload host", withHost(req("GET", "/v1/files/file_1", ""), UploadsHost),
			"", false, money.Amount{}, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.req)
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			if c.Operation != tt.op {
				t.Errorf("Operation = %q, want %q", c.Operation, tt.op)
			}
			if c.MovesMoney != tt.moves {
				t.Errorf("MovesMoney = %v, want %v", c.MovesMoney, tt.moves)
			}
			wantCount := int64(0)
			if tt.moves {
				wantCount = 1
			}
			if c.Count != wantCount {
				t.Errorf("Count = %d, want %d", c.Count, wantCount)
			}
			if c.Amount != tt.amount {
				t.Errorf("Amount = %+v, want %+v", c.Amount, tt.amount)
			}
			if c.Lookup != tt.lookup {
				t.Errorf("Lookup = %q, want %q", c.Lookup, tt.lookup)
			}
			if c.Customer != tt.customer {
				t.Errorf("Customer = %q, want %q", c.Customer, tt.customer)
			}
			if c.Account != tt.account {
				t.Errorf("Account = %q, want %q", c.Account, tt.account)
			}
			if tt.moves && c.State == nil {
				t.Errorf("State is nil for a money-moving call")
			}
		})
	}
}

func TestClassifyParamsAuditAndKey(t *testing.T) {
	r := req("POST", "/v1/payment_intents",
		"amount=100&currency=usd&payment_method_data[card][number]=4242424242424242&payment_method_data[card][cvc]=123"+
			"&description=key+sk_live_abc123&metadata[sk_test_zzz]=1&metadata[note]=a%26b",
		"Idempotency-Key", "idem-1")
	c, err := Vendor{}.Classify(r)
	if err != nil {
		t.Fatal(err)
	}
	if c.IdempotencyKey != "idem-1" {
		t.Errorf("IdempotencyKey = %q", c.IdempotencyKey)
	}
	if got := c.Params.Get("metadata[note]"); got != "a&b" {
		t.Errorf("Params decoded metadata[note] = %q, want a&b", got)
	}
	if got := c.Params.Get("payment_method_data[card][cvc]"); got != "123" {
		t.Errorf("Params must keep what policy conditions read; cvc = %q", got)
	}
	want := map[string]string{
		"amount":                            "100",
		"currency":                          "usd",
		"payment_method_data[card][number]": "424242******4242",
		"description":                       "key [redacted]",
		"metadata[[redacted]]":              "1",
		"metadata[note]":                    "a&b",
	}
	if len(c.Audit) != len(want) {
		t.Errorf("Audit = %v, want %v", c.Audit, want)
	}
	for k, v := range want {
		if c.Audit[k] != v {
			t.Errorf("Audit[%q] = %q, want %q", k, c.Audit[k], v)
		}
	}
	if _, ok := c.Audit["payment_method_data[card][cvc]"]; ok {
		t.Errorf("Audit keeps the card security code")
	}
}

func TestClassifyDoesNotModifyRequest(t *testing.T) {
	r := req("POST", "/v1/refunds", "charge=ch_1&amount=100", "Idempotency-Key", "k")
	before := *r
	body := string(r.Body)
	if _, err := (Vendor{}).Classify(r); err != nil {
		t.Fatal(err)
	}
	if string(r.Body) != body || r.Path != before.Path || r.Query != before.Query || len(r.Header) != len(before.Header) {
		t.Errorf("Classify changed the request: %+v", r)
	}
}

func TestClassifyNonCanonicalHeaders(t *testing.T) {
	r := &vendors.Request{Method: "POST", Host: APIHost, Path: "/v1/refunds", Body: []byte("charge=ch_1"),
		Header: http.Header{"content-type": {formType}, "stripe-account": {"acct_1"}, "Stripe-Account": {"acct_2"}}}
	_, err := Vendor{}.Classify(r)
	var inv *vendors.Invalid
	if !errors.As(err, &inv) || inv.Code != codeBadHeader {
		t.Fatalf("two Stripe-Account headers in different case: %v, want %s", err, codeBadHeader)
	}
}

func TestNameAndHosts(t *testing.T) {
	v := Vendor{}
	if v.Name() != "stripe" {
		t.Errorf("Name = %q", v.Name())
	}
	h := v.Hosts()
	want := []string{"api.stripe.com", "connect.stripe.com", "files.stripe.com"}
	if strings.Join(h, ",") != strings.Join(want, ",") {
		t.Errorf("Hosts = %v, want %v", h, want)
	}
	h[0] = "evil.example"
	if v.Hosts()[0] != "api.stripe.com" {
		t.Errorf("Hosts shares its slice")
	}
}
