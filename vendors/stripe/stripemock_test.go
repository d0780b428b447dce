package stripe

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/vendors"
)

// mockGetter fetches from stripe-mock as the transport's Getter fetches
// from Stripe: a GET with the call's key.
func mockGetter(base string) vendors.Getter {
	return func(ctx context.Context, path string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer sk_test_123")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, body, err
	}
}

// TestSubjectsAgainstStripeMock reads the customer of every kind of object
// from stripe-mock's answers (API 2023-10-16), so that the fields Resolve
// reads are the ones Stripe's OpenAPI fixtures carry. stripe-mock's
// charges, intents, setup intents, payment methods and checkout sessions
// have no customer; its invoices, subscriptions and the rest have one;
// refunds and disputes are their charges'.
func TestSubjectsAgainstStripeMock(t *testing.T) {
	base := testenv.StripeMock(t)
	get := mockGetter(base)
	for kind, o := range owners {
		t.Run(kind, func(t *testing.T) {
			c, err := Vendor{}.Classify(req("GET", "/v1/"+o.collection+"/"+sampleIDs[kind], ""))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{Customer: true}, get, memFacts{}); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			none := map[string]bool{"charge": true, "payment_intent": true, "setup_intent": true, "payment_method": true,
				"checkout_session": true, "refund": true, "dispute": true}[kind]
			if c.NoCustomer != none || (c.Customer != "") == none {
				t.Errorf("Customer %q NoCustomer %v; stripe-mock's %s has a customer: %v", c.Customer, c.NoCustomer, o.object, !none)
			}
		})
	}
	t.Run("refund of an intent", func(t *testing.T) {
		c, err := Vendor{}.Classify(req("POST", "/v1/refunds", "payment_intent=pi_1&amount=100"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{Customer: true}, get, nil); err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		// stripe-mock's intent has latest_charge null and no customer.
		if c.RefundOf != "" || !c.NoCustomer || c.Amount != usd(t, 100) {
			t.Errorf("RefundOf %q NoCustomer %v Amount %v", c.RefundOf, c.NoCustomer, c.Amount)
		}
	})
	t.Run("customer metadata", func(t *testing.T) {
		md, err := Vendor{}.CustomerMetadata(context.Background(), "cus_1", get)
		if err != nil || md == nil {
			t.Fatalf("CustomerMetadata = %v, %v", md, err)
		}
	})
	t.Run("customer create settles its ID", func(t *testing.T) {
		c, err := Vendor{}.Classify(req("POST", "/v1/customers", "email=a%40x.example"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := http.NewRequest("POST", base+"/v1/customers", strings.NewReader("email=a%40x.example"))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Bearer sk_test_123")
		r.Header.Set("Content-Type", formType)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stripe-mock answered %d %s", resp.StatusCode, body)
		}
		st, err := Vendor{}.Settle(c, body)
		if err != nil || !idPatterns["customer"].MatchString(st.Object) {
			t.Fatalf("Settle = %+v, %v", st, err)
		}
	})
}
