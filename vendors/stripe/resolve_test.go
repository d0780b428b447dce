package stripe

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// fakeStripe answers lookups from a map of path to status and body, and
// records what was fetched.
type fakeStripe struct {
	answers map[string]answer
	fetched []string
}

type answer struct {
	status int
	body   string
	err    error
}

func (f *fakeStripe) get(ctx context.Context, path string) (int, []byte, error) {
	f.fetched = append(f.fetched, path)
	a, ok := f.answers[path]
	if !ok {
		return 404, []byte(`{"error":{"type":"invalid_request_error","code":"resource_missing"}}`), nil
	}
	return a.status, []byte(a.body), a.err
}

func ok200(body string) answer { return answer{status: 200, body: body} }

func charge(id string, amount, captured, refunded int64, cur, customer string) answer {
	cus := "null"
	if customer != "" {
		cus = fmt.Sprintf("%q", customer)
	}
	return ok200(fmt.Sprintf(`{"id":%q,"object":"charge","amount":%d,"amount_captured":%d,"amount_refunded":%d,"captured":%v,"currency":%q,"customer":%s}`,
		id, amount, captured, refunded, captured > 0, cur, cus))
}

func intent(id string, amount, capturable, received int64, method, cur string) answer {
	return ok200(fmt.Sprintf(`{"id":%q,"object":"payment_intent","amount":%d,"amount_capturable":%d,"amount_received":%d,"capture_method":%q,"currency":%q,"customer":"cus_pi"}`,
		id, amount, capturable, received, method, cur))
}

func TestResolve(t *testing.T) {
	objects := map[string]answer{
		// stripe-mock's charge fixture.
		"/v1/charges/ch_mock":           charge("ch_mock", 100, 0, 0, "usd", ""),
		"/v1/charges/ch_usd":            charge("ch_usd", 1000, 1000, 250, "usd", "cus_1"),
		"/v1/charges/ch_auth":           charge("ch_auth", 1000, 0, 0, "usd", "cus_1"),
		"/v1/charges/ch_jpy":            charge("ch_jpy", 1000, 1000, 300, "jpy", ""),
		"/v1/charges/ch_kwd":            charge("ch_kwd", 5000, 5000, 0, "kwd", ""),
		"/v1/payment_intents/pi_auto":   intent("pi_auto", 2000, 0, 0, "automatic", "usd"),
		"/v1/payment_intents/pi_async":  intent("pi_async", 2000, 0, 0, "automatic_async", "eur"),
		"/v1/payment_intents/pi_manual": intent("pi_manual", 2000, 0, 0, "manual", "usd"),
		"/v1/payment_intents/pi_held":   intent("pi_held", 2000, 1099, 0, "manual", "usd"),
		"/v1/payment_intents/pi_paid":   intent("pi_paid", 1500, 0, 1500, "automatic", "gbp"),
		"/v1/transfers/tr_1":            ok200(`{"id":"tr_1","object":"transfer","amount":1000,"amount_reversed":400,"currency":"usd"}`),
		"/v1/invoices/in_1":             ok200(`{"id":"in_1","object":"invoice","amount_remaining":2500,"amount_paid":100,"currency":"usd","customer":"cus_9"}`),
		"/v1/invoices/in_eur":           ok200(`{"id":"in_eur","object":"invoice","amount_remaining":0,"amount_paid":0,"currency":"eur","customer":{"id":"cus_8","object":"customer"}}`),
		"/v1/application_fees/fee_1":    ok200(`{"id":"fee_1","object":"application_fee","amount":300,"amount_refunded":100,"currency":"usd","account":"acct_1"}`),
	}
	tests := []struct {
		name     string
		req      *vendors.Request
		amount   money.Amount
		customer string
		before   int64
	}{
		{"capture the stripe-mock fixture", req("POST", "/v1/charges/ch_mock/capture", ""), usd(t, 100), "", 0},
		{"capture the rest", req("POST", "/v1/charges/ch_auth/capture", ""), usd(t, 1000), "cus_1", 0},
		{"capture part", req("POST", "/v1/charges/ch_auth/capture", "amount=400"), usd(t, 400), "cus_1", 0},
		{"legacy refund of the rest", req("POST", "/v1/charges/ch_usd/refund", ""), usd(t, 750), "cus_1", 250},
		{"charge refunds of the rest", req("POST", "/v1/charges/ch_usd/refunds", ""), usd(t, 750), "cus_1", -1},
		{"refund the rest of a charge", req("POST", "/v1/refunds", "charge=ch_usd"), usd(t, 750), "cus_1", -1},
		{"refund 100 of a yen charge is 100 yen", req("POST", "/v1/refunds", "charge=ch_jpy&amount=100"), amt(t, 100, "JPY"), "", -1},
		{"refund the rest in yen", req("POST", "/v1/refunds", "charge=ch_jpy"), amt(t, 700, "JPY"), "", -1},
		{"refund in KWD", req("POST", "/v1/refunds", "charge=ch_kwd&amount=1000"), amt(t, 1000, "KWD"), "", -1},
		{"refund an intent", req("POST", "/v1/refunds", "payment_intent=pi_paid"), amt(t, 1500, "GBP"), "cus_pi", -1},
		{"refund the customer named", req("POST", "/v1/refunds", "charge=ch_usd&customer=cus_1"), usd(t, 750), "cus_1", -1},
		{"confirm automatic", req("POST", "/v1/payment_intents/pi_auto/confirm", ""), usd(t, 2000), "cus_pi", 0},
		{"confirm automatic_async", req("POST", "/v1/payment_intents/pi_async/confirm", ""), amt(t, 2000, "EUR"), "cus_pi", 0},
		{"confirm manual", req("POST", "/v1/payment_intents/pi_manual/confirm", ""), usd(t, 0), "cus_pi", 0},
		{"confirm overridden to manual", req("POST", "/v1/payment_intents/pi_auto/confirm", "capture_method=manual"), usd(t, 0), "cus_pi", 0},
		{"confirm overridden to automatic", req("POST", "/v1/payment_intents/pi_manual/confirm", "capture_method=automatic"), usd(t, 2000), "cus_pi", 0},
		{"capture what is capturable", req("POST", "/v1/payment_intents/pi_held/capture", ""), usd(t, 1099), "cus_pi", 0},
		{"capture part of an intent", req("POST", "/v1/payment_intents/pi_held/capture", "amount_to_capture=500"), usd(t, 500), "cus_pi", 0},
		{"reverse the rest", req("POST", "/v1/transfers/tr_1/reversals", ""), usd(t, 600), "", -1},
		{"reverse part", req("POST", "/v1/transfers/tr_1/reversals", "amount=50"), usd(t, 50), "", -1},
		{"pay an invoice", req("POST", "/v1/invoices/in_1/pay", ""), usd(t, 2500), "cus_9", 100},
		{"refund a fee", req("POST", "/v1/application_fees/fee_1/refunds", ""), usd(t, 200), "", -1},
		{"credit note amount", req("POST", "/v1/credit_notes", "invoice=in_eur&amount=500"), amt(t, 500, "EUR"), "cus_8", -1},
		{"credit note parts", req("POST", "/v1/credit_notes", "invoice=in_1&refund_amount=300&out_of_band_amount=25"), usd(t, 325), "cus_9", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.req)
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			f := &fakeStripe{answers: objects}
			if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, f.get, nil); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if len(f.fetched) != 1 || "GET "+f.fetched[0] != c.Lookup {
				t.Errorf("fetched %v for Lookup %q", f.fetched, c.Lookup)
			}
			if c.Amount != tt.amount {
				t.Errorf("Amount = %v, want %v", c.Amount, tt.amount)
			}
			if c.Customer != tt.customer {
				t.Errorf("Customer = %q, want %q", c.Customer, tt.customer)
			}
			if st := c.State.(*state); st.before != tt.before {
				t.Errorf("before = %d, want %d", st.before, tt.before)
			}
		})
	}
}

func TestResolveWithoutLookup(t *testing.T) {
	c, err := Vendor{}.Classify(req("POST", "/v1/charges", "amount=100&currency=usd"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeStripe{}
	learned, err := Vendor{}.Resolve(context.Background(), c, vendors.Need{}, f.get, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.fetched) != 0 || len(learned) != 0 {
		t.Errorf("fetched %v, learned %v for a call without Lookup", f.fetched, learned)
	}
	if c.Amount != usd(t, 100) {
		t.Errorf("Amount changed to %v", c.Amount)
	}
}

func TestResolveFailures(t *testing.T) {
	refund := "charge=ch_1"
	tests := []struct {
		name    string
		params  string
		answer  answer
		invalid string // an *vendors.Invalid code, else ErrLookup
	}{
		{"fetch fails", refund, answer{err: errors.New("connection refused")}, ""},
		{"not found", refund, answer{status: 404, body: `{"error":{}}`}, ""},
		{"server error", refund, answer{status: 500, body: `{}`}, ""},
		{"201 is not 200", refund, answer{status: 201, body: `{"id":"ch_1","object":"charge","amount":1,"amount_refunded":0,"currency":"usd"}`}, ""},
		{"not JSON", refund, ok200(`<html>`), ""},
		{"JSON array", refund, ok200(`[{"id":"ch_1"}]`), ""},
		{"JSON null", refund, ok200(`null`), ""},
		{"wrong object", refund, ok200(`{"id":"ch_1","object":"refund","amount":100,"amount_refunded":0,"currency":"usd"}`), ""},
		{"no object", refund, ok200(`{"id":"ch_1","amount":100,"amount_refunded":0,"currency":"usd"}`), ""},
		{"other id", refund, charge("ch_2", 100, 100, 0, "usd", ""), ""},
		{"no id", refund, ok200(`{"object":"charge","amount":100,"amount_refunded":0,"currency":"usd"}`), ""},
		{"no currency", refund, ok200(`{"id":"ch_1","object":"charge","amount":100,"amount_refunded":0}`), ""},
		{"unknown currency", refund, charge("ch_1", 100, 100, 0, "xxx", ""), ""},
		{"currency not a string", refund, ok200(`{"id":"ch_1","object":"charge","amount":100,"amount_refunded":0,"currency":840}`), ""},
		{"no amount", refund, ok200(`{"id":"ch_1","object":"charge","amount_refunded":0,"currency":"usd"}`), ""},
		{"float amount", refund, ok200(`{"id":"ch_1","object":"charge","amount":100.5,"amount_refunded":0,"currency":"usd"}`), ""},
		{"exponent amount", refund, ok200(`{"id":"ch_1","object":"charge","amount":1e2,"amount_refunded":0,"currency":"usd"}`), ""},
		{"negative amount", refund, ok200(`{"id":"ch_1","object":"charge","amount":-100,"amount_refunded":0,"currency":"usd"}`), ""},
		{"string amount", refund, ok200(`{"id":"ch_1","object":"charge","amount":"100","amount_refunded":0,"currency":"usd"}`), ""},
		{"huge amount", refund, ok200(`{"id":"ch_1","object":"charge","amount":99999999999999999999,"amount_refunded":0,"currency":"usd"}`), ""},
		{"refunded more than paid", refund, charge("ch_1", 100, 100, 200, "usd", ""), ""},
		{"other customer", refund + "&customer=cus_1", charge("ch_1", 100, 100, 0, "usd", "cus_2"), ""},
		{"customer not an id", refund, ok200(`{"id":"ch_1","object":"charge","amount":100,"amount_refunded":0,"currency":"usd","customer":7}`), ""},
		{"KWD amount not ending in 0", refund + "&amount=1005", charge("ch_1", 5000, 5000, 0, "kwd", ""), codeBadAmount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(req("POST", "/v1/refunds", tt.params))
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			f := &fakeStripe{answers: map[string]answer{"/v1/charges/ch_1": tt.answer}}
			_, err = Vendor{}.Resolve(context.Background(), c, vendors.Need{}, f.get, nil)
			if err == nil {
				t.Fatalf("Resolve succeeded with Amount %v", c.Amount)
			}
			if tt.invalid != "" {
				var inv *vendors.Invalid
				if !errors.As(err, &inv) || inv.Code != tt.invalid {
					t.Fatalf("Resolve = %v, want *vendors.Invalid %s", err, tt.invalid)
				}
				return
			}
			if !errors.Is(err, ErrLookup) {
				t.Fatalf("Resolve = %v, want ErrLookup", err)
			}
		})
	}
}

func TestResolveIntentFailures(t *testing.T) {
	tests := []struct{ name, path, body string }{
		{"unknown capture method", "/v1/payment_intents/pi_1/confirm",
			`{"id":"pi_1","object":"payment_intent","amount":100,"amount_received":0,"capture_method":"later","currency":"usd"}`},
		{"no capture method", "/v1/payment_intents/pi_1/confirm",
			`{"id":"pi_1","object":"payment_intent","amount":100,"amount_received":0,"currency":"usd"}`},
		{"no amount_received", "/v1/payment_intents/pi_1/confirm",
			`{"id":"pi_1","object":"payment_intent","amount":100,"capture_method":"automatic","currency":"usd"}`},
		{"no amount_capturable", "/v1/payment_intents/pi_1/capture",
			`{"id":"pi_1","object":"payment_intent","amount":100,"amount_received":0,"currency":"usd"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(req("POST", tt.path, ""))
			if err != nil {
				t.Fatal(err)
			}
			f := &fakeStripe{answers: map[string]answer{"/v1/payment_intents/pi_1": ok200(tt.body)}}
			if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, f.get, nil); !errors.Is(err, ErrLookup) {
				t.Fatalf("Resolve = %v, want ErrLookup", err)
			}
		})
	}
}

func TestResolveRefusesForeignLookup(t *testing.T) {
	// A Lookup Classify did not set (no State, or a different path) is
	// never fetched: Resolve would otherwise GET whatever it is told.
	f := &fakeStripe{}
	c := &vendors.Call{Operation: "refunds.create", MovesMoney: true, Lookup: "GET /v1/charges/ch_1"}
	if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, f.get, nil); !errors.Is(err, ErrLookup) {
		t.Errorf("no State: %v, want ErrLookup", err)
	}
	c, err := Vendor{}.Classify(req("POST", "/v1/refunds", "charge=ch_1"))
	if err != nil {
		t.Fatal(err)
	}
	c.Lookup = "GET /v1/charges/ch_2"
	if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, f.get, nil); !errors.Is(err, ErrLookup) {
		t.Errorf("changed Lookup: %v, want ErrLookup", err)
	}
	if len(f.fetched) != 0 {
		t.Errorf("fetched %v", f.fetched)
	}
}

// memFacts is an in-memory vendors.Facts.
type memFacts map[string]string

func (m memFacts) Fact(_ context.Context, k string) (string, bool, error) {
	v, ok := m[k]
	return v, ok, nil
}

// keep writes what Resolve learned as the transport writes it into the
// store: a fact once known keeps its first value, since the store refuses
// to change one.
func (m memFacts) keep(learned []vendors.Fact) {
	for _, f := range learned {
		if _, ok := m[f.Key]; !ok {
			m[f.Key] = f.Value
		}
	}
}

func TestResolveRemembersCurrencyAndCustomer(t *testing.T) {
	f := &fakeStripe{answers: map[string]answer{"/v1/charges/ch_y": charge("ch_y", 5000, 5000, 0, "jpy", "cus_A")}}
	facts := memFacts{}
	resolveRefund := func(body string) (*vendors.Call, error) {
		c, err := Vendor{}.Classify(req("POST", "/v1/refunds", body))
		if err != nil {
			t.Fatal(err)
		}
		learned, err := Vendor{}.Resolve(context.Background(), c, vendors.Need{}, f.get, facts)
		facts.keep(learned)
		return c, err
	}
	c, err := resolveRefund("charge=ch_y&amount=100")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.fetched) != 1 || facts["stripe//charge/ch_y"] != "jpy cus_A" {
		t.Fatalf("fetched %v, facts %v", f.fetched, facts)
	}
	if want := (money.Amount{Micros: 100_000_000, Currency: "JPY"}); c.Amount != want || c.Customer != "cus_A" {
		t.Fatalf("from the lookup: %v %q, want %v cus_A", c.Amount, c.Customer, want)
	}
	// The second refund with an amount needs nothing from Stripe: the
	// charge's currency and customer never change.
	c, err = resolveRefund("charge=ch_y&amount=200")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.fetched) != 1 {
		t.Fatalf("looked up again: %v", f.fetched)
	}
	if want := (money.Amount{Micros: 200_000_000, Currency: "JPY"}); c.Amount != want || c.Customer != "cus_A" {
		t.Fatalf("from facts: %v %q, want %v cus_A", c.Amount, c.Customer, want)
	}
	// Without an amount the remaining refundable amount is needed, which
	// changes: that is always looked up.
	if _, err := resolveRefund("charge=ch_y"); err != nil {
		t.Fatal(err)
	}
	if len(f.fetched) != 2 {
		t.Fatalf("a refund without amount was not looked up: %v", f.fetched)
	}
	// A remembered customer still refuses a request naming another one.
	c, _ = Vendor{}.Classify(req("POST", "/v1/refunds", "charge=ch_y&amount=1"))
	c.Customer = "cus_B"
	if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, f.get, facts); !errors.Is(err, ErrLookup) {
		t.Fatalf("customer mismatch from facts: %v", err)
	}
}
