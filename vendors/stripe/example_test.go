package stripe_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake/vendors"
	"github.com/keybrake/keybrake/vendors/stripe"
)

// A refund names no currency: Keybrake looks the charge up, so that 100 on
// a yen charge counts as 100 yen, not 1 dollar.
func ExampleVendor_Resolve() {
	v := stripe.Vendor{}
	c, err := v.Classify(&vendors.Request{
		Method: "POST", Host: "api.stripe.com", Path: "/v1/refunds",
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body:   []byte("charge=ch_1&amount=100"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Operation, "|", c.Lookup)

	get := func(ctx context.Context, path string) (int, []byte, error) {
		return 200, []byte(`{"id":"ch_1","object":"charge","amount":5000,"amount_refunded":0,"currency":"jpy","customer":"cus_7"}`), nil
	}
	// No facts are known yet; what never changes about the charge is
	// returned for the transport to keep, and spares the next refund of
	// it with an amount the lookup.
	learned, err := v.Resolve(context.Background(), c, vendors.Need{}, get, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Amount, "|", c.Customer)
	fmt.Println(learned)
	// Output:
	// refunds.create | GET /v1/charges/ch_1
	// 100 JPY | cus_7
	// [{stripe//charge/ch_1 jpy cus_7}]
}

// Under a customer scope, a call on an object by ID learns whose object it
// is: a refund's customer is its charge's.
func ExampleVendor_Resolve_scope() {
	v := stripe.Vendor{}
	c, err := v.Classify(&vendors.Request{
		Method: "POST", Host: "api.stripe.com", Path: "/v1/refunds/re_1/cancel",
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Operation, "|", c.SubjectLookup)

	objects := map[string]string{
		"/v1/refunds/re_1": `{"id":"re_1","object":"refund","charge":"ch_1","currency":"usd"}`,
		"/v1/charges/ch_1": `{"id":"ch_1","object":"charge","currency":"usd","customer":"cus_7"}`,
	}
	get := func(ctx context.Context, path string) (int, []byte, error) {
		fmt.Println("GET", path)
		return 200, []byte(objects[path]), nil
	}
	need := vendors.Need{Customer: true} // the transport's, when a customer scope is in force
	if _, err := v.Resolve(context.Background(), c, need, get, nil); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Customer, c.NoCustomer)
	// Output:
	// refunds.cancel | GET /v1/refunds/re_1
	// GET /v1/refunds/re_1
	// GET /v1/charges/ch_1
	// cus_7 false
}

// A scope that selects customers by metadata reads it with the call's own
// credentials.
func ExampleVendor_CustomerMetadata() {
	get := func(ctx context.Context, path string) (int, []byte, error) {
		return 200, []byte(`{"id":"cus_7","object":"customer","metadata":{"cohort":"beta"}}`), nil
	}
	md, err := stripe.Vendor{}.CustomerMetadata(context.Background(), "cus_7", get)
	fmt.Println(md, err)
	// Output: map[cohort:beta] <nil>
}

// A duplicated amount is refused: Stripe would keep the last, Go's
// url.Values.Get the first.
func ExampleVendor_Classify() {
	_, err := stripe.Vendor{}.Classify(&vendors.Request{
		Method: "POST", Host: "api.stripe.com", Path: "/v1/refunds",
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body:   []byte("charge=ch_1&amount=1&amount=99999"),
	})
	var inv *vendors.Invalid
	if errors.As(err, &inv) {
		fmt.Println(inv.Code)
	}
	// Output: keybrake_duplicate_param
}

// A refusal reaches the agent as stripe-go's own error, after one attempt.
func ExampleVendor_Deny() {
	v := stripe.Vendor{}
	deny := roundTripper(func(req *http.Request) (*http.Response, error) {
		return v.Deny(req, vendors.Refusal{
			Status: 402, Code: "keybrake_capped", Message: "refund-bot has 12.00 USD left today",
			RequestID: "kb_42", Details: []byte(`{"decision":"capped"}`),
		}), nil
	})
	sc := client.New("sk_test_123", stripe.Backends(&http.Client{Transport: deny}))

	_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String("ch_1")})
	var se *stripego.Error
	if errors.As(err, &se) {
		fmt.Println(se.HTTPStatusCode, se.Code, se.RequestID)
	}
	details, ok := v.RefusalDetails(err)
	fmt.Println(string(details), ok)
	// Output:
	// 402 keybrake_capped kb_42
	// {"decision":"capped"} true
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
