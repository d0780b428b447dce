package stripe

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// FuzzClassify checks that Classify never panics, refuses only with an
// *vendors.Invalid, and that whatever it accepts reads the same to Go's
// parser as to Keybrake: one value per name, valid names, valid amounts
// and currencies.
func FuzzClassify(f *testing.F) {
	f.Add("POST", "api.stripe.com", "/v1/refunds", "", formType, []byte("charge=ch_1&amount=100"))
	f.Add("POST", "api.stripe.com", "/v1/charges", "", formType, []byte("amount=2000&currency=usd&capture=false&metadata[k]=v"))
	f.Add("GET", "api.stripe.com", "/v1/charges/ch_1", "expand[0]=customer", formType, []byte(""))
	f.Add("POST", "api.stripe.com", "/v1/payment_intents", "", formType+"; charset=utf-8", []byte("amount=1099&currency=kwd&confirm=true"))
	f.Add("POST", "api.stripe.com", "/v1/refunds", "", formType, []byte("charge=ch_1&amount=1&amount=99999"))
	f.Add("POST", "api.stripe.com", "/v1/refunds", "", formType, []byte("amount=1;currency=usd&x=2"))
	f.Add("POST", "api.stripe.com", "/v1/credit_notes", "", formType, []byte("invoice=in_1&refund_amount=5&lines[0][amount]=5"))
	f.Add("POST", "connect.stripe.com", "/oauth/token", "", formType, []byte("grant_type=authorization_code&code=ac_1"))
	f.Fuzz(func(t *testing.T, method, host, path, query, contentType string, body []byte) {
		r := &vendors.Request{Method: method, Host: host, Path: path, Query: query, Body: body,
			Header: http.Header{"Content-Type": {contentType}}}
		c, err := Vendor{}.Classify(r)
		if err != nil {
			var inv *vendors.Invalid
			if !errors.As(err, &inv) || !strings.HasPrefix(inv.Code, "keybrake_") || inv.Reason == "" {
				t.Fatalf("Classify refused with %T %v, want *vendors.Invalid keybrake_...", err, err)
			}
			return
		}
		raw := query
		if method != "GET" {
			raw = string(body)
		}
		goParsed, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("accepted %q, which url.ParseQuery refuses: %v", raw, err)
		}
		if len(goParsed) != len(c.Params) {
			t.Fatalf("Params %v, url.ParseQuery %v", c.Params, goParsed)
		}
		for k, vs := range c.Params {
			if len(vs) != 1 || len(goParsed[k]) != 1 || goParsed[k][0] != vs[0] {
				t.Fatalf("key %q: Params %q, url.ParseQuery %q", k, vs, goParsed[k])
			}
			if !keyRE.MatchString(k) {
				t.Fatalf("accepted key %q", k)
			}
			ns := names(k)
			if inMetadata(ns) {
				continue
			}
			name := ns[len(ns)-1]
			switch {
			case isIntegerAmount(name) && !amountRE.MatchString(vs[0]):
				t.Fatalf("accepted amount %s=%q", k, vs[0])
			case isDecimalAmount(name) && !decimalRE.MatchString(vs[0]):
				t.Fatalf("accepted decimal %s=%q", k, vs[0])
			case name == "currency":
				if _, err := money.ParseCurrency(vs[0]); err != nil {
					t.Fatalf("accepted currency %s=%q", k, vs[0])
				}
			}
		}
		if c.Amount.Micros < 0 {
			t.Fatalf("negative amount %v", c.Amount)
		}
		if c.MovesMoney != (c.Count == 1) {
			t.Fatalf("MovesMoney %v with Count %d", c.MovesMoney, c.Count)
		}
		if c.Lookup != "" && (!c.MovesMoney || !strings.HasPrefix(c.Lookup, "GET /v1/")) {
			t.Fatalf("Lookup %q", c.Lookup)
		}
		if c.MovesMoney && method == "GET" {
			t.Fatalf("a GET moves money: %+v", c)
		}
	})
}
