package stripe

import (
	"context"
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
		checkScope(t, c)
	})
}

// checkScope checks what an accepted call says of its customers.
func checkScope(t *testing.T, c *vendors.Call) {
	t.Helper()
	st, _ := c.State.(*state)
	if c.SubjectLookup != "" {
		if _, ok := subjectOf(c.SubjectLookup); !ok {
			t.Fatalf("SubjectLookup %q is not the GET of an object of a customer", c.SubjectLookup)
		}
		if st == nil || c.SubjectLookup != "GET "+st.subjectPath() {
			t.Fatalf("SubjectLookup %q, State %+v", c.SubjectLookup, c.State)
		}
		if c.SubjectLookup == c.Lookup {
			t.Fatalf("Lookup and SubjectLookup are both %q: one object would be fetched twice", c.Lookup)
		}
	}
	// A money lookup on an object of a customer tells its customer:
	// Resolve must count it among the call's subjects.
	if l, ok := subjectOf(c.Lookup); ok && (st == nil || len(st.subjects) == 0 || st.subjects[0] != l) {
		t.Fatalf("Lookup %q is not the first subject of %+v", c.Lookup, c.State)
	}
	if c.NoCustomer && (c.Customer != "" || c.SubjectLookup != "") {
		t.Fatalf("NoCustomer with Customer %q, SubjectLookup %q", c.Customer, c.SubjectLookup)
	}
	if c.Customer != "" && !idPatterns["customer"].MatchString(c.Customer) {
		t.Fatalf("Customer %q", c.Customer)
	}
	if c.RefundOf != "" && (!idPatterns["charge"].MatchString(c.RefundOf) ||
		c.Operation != "refunds.create" && c.Operation != "charges.refund" && c.Operation != "charge_refunds.create") {
		t.Fatalf("RefundOf %q on %q", c.RefundOf, c.Operation)
	}
	if (c.Creates != "") != (c.Operation == "customers.create") || c.Creates != "" && c.Creates != "customer" {
		t.Fatalf("Creates %q on %q", c.Creates, c.Operation)
	}
	if c.Recipients != nil || c.Senders != nil {
		t.Fatalf("Recipients %q, Senders %q", c.Recipients, c.Senders)
	}
}

// subjectOf reads "GET /v1/<collection>/<id>" for an object of a
// customer.
func subjectOf(lookup string) (subject, bool) {
	path, ok := strings.CutPrefix(lookup, "GET /v1/")
	if !ok {
		return subject{}, false
	}
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return subject{}, false
	}
	kind, ok := ownerByCollection[path[:i]]
	if !ok || !idPatterns[kind].MatchString(path[i+1:]) {
		return subject{}, false
	}
	return subject{kind: kind, id: path[i+1:]}, true
}

// FuzzResolveSubject feeds Resolve arbitrary answers for a refund by ID
// and the object it names: it never panics, and either refuses with
// ErrLookup or says exactly one of a valid customer and no customer. What
// it learns names that customer, and once kept spares the next call every
// lookup and says the same customer.
func FuzzResolveSubject(f *testing.F) {
	f.Add([]byte(`{"id":"re_1","object":"refund","charge":"ch_1","currency":"usd"}`), []byte(`{"id":"ch_1","object":"charge","customer":"cus_1"}`))
	f.Add([]byte(`{"id":"re_1","object":"refund","charge":null,"payment_intent":"pi_1"}`), []byte(`{"id":"pi_1","object":"payment_intent","customer":null}`))
	f.Add([]byte(`{"id":"re_1","object":"refund","charge":{"id":"ch_1","customer":"cus_2"}}`), []byte(`{"id":"ch_1","object":"charge","customer":{"id":"cus_1","object":"customer","deleted":true}}`))
	f.Add([]byte(`{"id":"re_1","object":"refund","charge":"ch_1"}`), []byte(`{"id":"ch_1","object":"charge"}`))
	f.Fuzz(func(t *testing.T, refund, parent []byte) {
		r := req("POST", "/v1/refunds/re_1", "metadata[k]=v")
		c, err := Vendor{}.Classify(r)
		if err != nil {
			t.Fatal(err)
		}
		fetches := 0
		get := func(_ context.Context, path string) (int, []byte, error) {
			fetches++
			if path == "/v1/refunds/re_1" {
				return 200, refund, nil
			}
			return 200, parent, nil
		}
		facts := memFacts{}
		learned, err := Vendor{}.Resolve(context.Background(), c, vendors.Need{Customer: true}, get, facts)
		if err != nil {
			if !errors.Is(err, ErrLookup) {
				t.Fatalf("Resolve = %v, want ErrLookup", err)
			}
			return
		}
		if c.NoCustomer == (c.Customer != "") {
			t.Fatalf("Customer %q and NoCustomer %v", c.Customer, c.NoCustomer)
		}
		if c.Customer != "" && !idPatterns["customer"].MatchString(c.Customer) {
			t.Fatalf("Customer %q", c.Customer)
		}
		for _, l := range learned {
			if f, err := parseObjectFact(l.Value); err != nil || f.customer != c.Customer {
				t.Fatalf("fact %s = %q for Customer %q", l.Key, l.Value, c.Customer)
			}
		}
		facts.keep(learned)
		if _, ok := facts["stripe//refund/re_1"]; !ok {
			return
		}
		again, err := Vendor{}.Classify(r)
		if err != nil {
			t.Fatal(err)
		}
		fetches = 0
		if _, err := (Vendor{}).Resolve(context.Background(), again, vendors.Need{Customer: true}, get, facts); err != nil {
			t.Fatalf("from facts %v: %v", facts, err)
		}
		if fetches != 0 || again.Customer != c.Customer || again.NoCustomer {
			t.Fatalf("from facts %v: %d fetches, Customer %q NoCustomer %v; first Customer %q", facts, fetches, again.Customer, again.NoCustomer, c.Customer)
		}
	})
}
