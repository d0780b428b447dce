package stripe

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/vendors"
)

func TestClassifySubjects(t *testing.T) {
	tests := []struct {
		name          string
		req           *vendors.Request
		subjectLookup string
		customer      string
		noCustomer    bool
		refundOf      string
		creates       string
	}{
		// Objects of a customer, by ID, with any method and sub-path.
		{"charge retrieve", req("GET", "/v1/charges/ch_1", "expand[0]=customer"), "GET /v1/charges/ch_1", "", false, "", ""},
		{"charge update", req("POST", "/v1/charges/ch_1", "description=x"), "GET /v1/charges/ch_1", "", false, "", ""},
		{"charge update naming a customer", req("POST", "/v1/charges/py_1", "customer=cus_1"), "GET /v1/charges/py_1", "cus_1", false, "", ""},
		{"charge capture", req("POST", "/v1/charges/ch_1/capture", ""), "", "", false, "", ""},
		{"charge refunds list", req("GET", "/v1/charges/ch_1/refunds", ""), "GET /v1/charges/ch_1", "", false, "", ""},
		{"charge refund retrieve", req("GET", "/v1/charges/ch_1/refunds/re_1", ""), "GET /v1/charges/ch_1", "", false, "", ""},
		{"charge dispute (unlisted)", req("POST", "/v1/charges/ch_1/dispute", "metadata[a]=b"), "GET /v1/charges/ch_1", "", false, "", ""},
		{"intent retrieve", req("GET", "/v1/payment_intents/pi_1", ""), "GET /v1/payment_intents/pi_1", "", false, "", ""},
		{"intent update", req("POST", "/v1/payment_intents/pi_1", "customer=cus_2"), "GET /v1/payment_intents/pi_1", "cus_2", false, "", ""},
		{"intent cancel", req("POST", "/v1/payment_intents/pi_1/cancel", ""), "GET /v1/payment_intents/pi_1", "", false, "", ""},
		{"intent confirm", req("POST", "/v1/payment_intents/pi_1/confirm", ""), "", "", false, "", ""},
		{"intent increment", req("POST", "/v1/payment_intents/pi_1/increment_authorization", "amount=10"), "GET /v1/payment_intents/pi_1", "", false, "", ""},
		{"intent balance (unlisted)", req("POST", "/v1/payment_intents/pi_1/apply_customer_balance", ""), "GET /v1/payment_intents/pi_1", "", false, "", ""},
		{"invoice retrieve", req("GET", "/v1/invoices/in_1", ""), "GET /v1/invoices/in_1", "", false, "", ""},
		{"invoice pay", req("POST", "/v1/invoices/in_1/pay", ""), "", "", false, "", ""},
		{"invoice finalize (unlisted)", req("POST", "/v1/invoices/in_1/finalize", ""), "GET /v1/invoices/in_1", "", false, "", ""},
		{"invoice lines (unlisted)", req("GET", "/v1/invoices/in_1/lines", ""), "GET /v1/invoices/in_1", "", false, "", ""},
		{"subscription update", req("POST", "/v1/subscriptions/sub_1", "cancel_at_period_end=true"), "GET /v1/subscriptions/sub_1", "", false, "", ""},
		{"subscription cancel", req("DELETE", "/v1/subscriptions/sub_1", ""), "GET /v1/subscriptions/sub_1", "", false, "", ""},
		{"setup intent confirm", req("POST", "/v1/setup_intents/seti_1/confirm", ""), "GET /v1/setup_intents/seti_1", "", false, "", ""},
		{"payment method attach", req("POST", "/v1/payment_methods/pm_1/attach", "customer=cus_3"), "GET /v1/payment_methods/pm_1", "cus_3", false, "", ""},
		{"payment method detach", req("POST", "/v1/payment_methods/card_1/detach", ""), "GET /v1/payment_methods/card_1", "", false, "", ""},
		{"test payment method", req("GET", "/v1/payment_methods/pm_card_visa", ""), "GET /v1/payment_methods/pm_card_visa", "", false, "", ""},
		{"checkout session expire", req("POST", "/v1/checkout/sessions/cs_test_a1/expire", ""), "GET /v1/checkout/sessions/cs_test_a1", "", false, "", ""},
		{"checkout session items", req("GET", "/v1/checkout/sessions/cs_1/line_items", ""), "GET /v1/checkout/sessions/cs_1", "", false, "", ""},
		{"quote accept", req("POST", "/v1/quotes/qt_1/accept", ""), "GET /v1/quotes/qt_1", "", false, "", ""},
		{"credit note void", req("POST", "/v1/credit_notes/cn_1/void", ""), "GET /v1/credit_notes/cn_1", "", false, "", ""},
		{"refund retrieve", req("GET", "/v1/refunds/re_1", ""), "GET /v1/refunds/re_1", "", false, "", ""},
		{"refund cancel", req("POST", "/v1/refunds/pyr_1/cancel", ""), "GET /v1/refunds/pyr_1", "", false, "", ""},
		{"dispute close", req("POST", "/v1/disputes/dp_1/close", ""), "GET /v1/disputes/dp_1", "", false, "", ""},
		{"invoice item", req("DELETE", "/v1/invoiceitems/ii_1", ""), "GET /v1/invoiceitems/ii_1", "", false, "", ""},
		{"subscription item", req("POST", "/v1/subscription_items/si_1", "quantity=2"), "GET /v1/subscription_items/si_1", "", false, "", ""},
		{"subscription schedule", req("POST", "/v1/subscription_schedules/sub_sched_1/release", ""), "GET /v1/subscription_schedules/sub_sched_1", "", false, "", ""},

		// Creates that name an object of a customer.
		{"refund of a charge", req("POST", "/v1/refunds", "charge=ch_1"), "", "", false, "ch_1", ""},
		{"refund of an intent", req("POST", "/v1/refunds", "payment_intent=pi_1"), "", "", false, "", ""},
		{"legacy charge refund", req("POST", "/v1/charges/ch_1/refund", ""), "", "", false, "ch_1", ""},
		{"charge refunds", req("POST", "/v1/charges/py_1/refunds", ""), "", "", false, "py_1", ""},
		{"credit note", req("POST", "/v1/credit_notes", "invoice=in_1&amount=5"), "", "", false, "", ""},
		{"credit note naming a charge first", req("POST", "/v1/credit_notes", "charge=ch_1&invoice=in_1&amount=5"), "GET /v1/charges/ch_1", "", false, "", ""},
		{"credit note naming a refund", req("POST", "/v1/credit_notes", "invoice=in_1&amount=5&refund=re_1"), "GET /v1/refunds/re_1", "", false, "", ""},
		{"invoice item", req("POST", "/v1/invoiceitems", "customer=cus_1&invoice=in_1&amount=100&currency=usd"), "GET /v1/invoices/in_1", "cus_1", false, "", ""},
		{"invoice from a subscription", req("POST", "/v1/invoices", "subscription=sub_1&customer=cus_1"), "GET /v1/subscriptions/sub_1", "cus_1", false, "", ""},
		{"subscription item create", req("POST", "/v1/subscription_items", "subscription=sub_1&price=price_1"), "GET /v1/subscriptions/sub_1", "", false, "", ""},
		{"schedule from subscription", req("POST", "/v1/subscription_schedules", "from_subscription=sub_1"), "GET /v1/subscriptions/sub_1", "", false, "", ""},

		// Lists name a customer only by filter.
		{"every charge", req("GET", "/v1/charges", "limit=100"), "", "", false, "", ""},
		{"a customer's charges", req("GET", "/v1/charges", "customer=cus_1"), "", "cus_1", false, "", ""},
		{"an intent's charges", req("GET", "/v1/charges", "payment_intent=pi_1"), "GET /v1/payment_intents/pi_1", "", false, "", ""},
		{"a customer's charges of an intent", req("GET", "/v1/charges", "customer=cus_1&payment_intent=pi_1"), "", "cus_1", false, "", ""},
		{"a charge's refunds", req("GET", "/v1/refunds", "charge=ch_1"), "GET /v1/charges/ch_1", "", false, "", ""},
		{"every refund", req("GET", "/v1/refunds", ""), "", "", false, "", ""},
		{"a subscription's invoices", req("GET", "/v1/invoices", "subscription=sub_1"), "GET /v1/subscriptions/sub_1", "", false, "", ""},
		{"upcoming of a schedule", req("GET", "/v1/invoices/upcoming", "schedule=sub_sched_1"), "GET /v1/subscription_schedules/sub_sched_1", "", false, "", ""},
		{"setup attempts", req("GET", "/v1/setup_attempts", "setup_intent=seti_1"), "GET /v1/setup_intents/seti_1", "", false, "", ""},
		{"customer search", req("GET", "/v1/customers/search", "query=email%3A%27a%40x.example%27"), "", "", false, "", ""},
		{"charge search", req("GET", "/v1/charges/search", "query=customer%3A%27cus_1%27"), "", "", false, "", ""},
		{"transfer retrieve", req("GET", "/v1/transfers/tr_1", ""), "", "", false, "", ""},
		{"balance transactions", req("GET", "/v1/balance_transactions", ""), "", "", false, "", ""},

		// Customers themselves.
		{"customer create", req("POST", "/v1/customers", "email=a%40x.example"), "", "", false, "", "customer"},
		{"customer update", req("POST", "/v1/customers/cus_1", "name=A"), "", "cus_1", false, "", ""},
		{"customer sources", req("GET", "/v1/customers/cus_1/sources", ""), "", "cus_1", false, "", ""},
		{"subscription create", req("POST", "/v1/subscriptions", "customer=cus_5&items[0][price]=price_1"), "", "cus_5", false, "", ""},

		// Operations that touch no customer's object.
		{"charge without customer", req("POST", "/v1/charges", "amount=100&currency=usd&source=tok_visa"), "", "", true, "", ""},
		{"charge with customer", req("POST", "/v1/charges", "amount=100&currency=usd&customer=cus_1"), "", "cus_1", false, "", ""},
		{"intent without customer", req("POST", "/v1/payment_intents", "amount=100&currency=usd"), "", "", true, "", ""},
		{"intent with customer", req("POST", "/v1/payment_intents", "amount=100&currency=usd&customer=cus_1"), "", "cus_1", false, "", ""},
		{"checkout without customer", req("POST", "/v1/checkout/sessions", "mode=payment"), "", "", true, "", ""},
		{"checkout with customer", req("POST", "/v1/checkout/sessions", "mode=payment&customer=cus_1"), "", "cus_1", false, "", ""},
		{"payment link", req("POST", "/v1/payment_links", "line_items[0][price]=price_1&line_items[0][quantity]=1"), "", "", true, "", ""},
		{"payment link update", req("POST", "/v1/payment_links/plink_1", "active=false"), "", "", true, "", ""},
		{"transfer", req("POST", "/v1/transfers", "amount=100&currency=usd&destination=acct_1"), "", "", true, "", ""},
		{"reversal", req("POST", "/v1/transfers/tr_1/reversals", ""), "", "", true, "", ""},
		{"payout", req("POST", "/v1/payouts", "amount=100&currency=usd"), "", "", true, "", ""},
		{"payout cancel", req("POST", "/v1/payouts/po_1/cancel", ""), "", "", true, "", ""},
		{"topup", req("POST", "/v1/topups", "amount=100&currency=usd"), "", "", true, "", ""},
		{"fee refund", req("POST", "/v1/application_fees/fee_1/refunds", ""), "", "", true, "", ""},
		{"unknown write", req("POST", "/v1/reviews/prv_1/approve", ""), "", "", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.req)
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			if c.SubjectLookup != tt.subjectLookup {
				t.Errorf("SubjectLookup = %q, want %q", c.SubjectLookup, tt.subjectLookup)
			}
			if c.Customer != tt.customer {
				t.Errorf("Customer = %q, want %q", c.Customer, tt.customer)
			}
			if c.NoCustomer != tt.noCustomer {
				t.Errorf("NoCustomer = %v, want %v", c.NoCustomer, tt.noCustomer)
			}
			if c.RefundOf != tt.refundOf {
				t.Errorf("RefundOf = %q, want %q", c.RefundOf, tt.refundOf)
			}
			if c.Creates != tt.creates {
				t.Errorf("Creates = %q, want %q", c.Creates, tt.creates)
			}
			checkScope(t, c)
			if c.Recipients != nil || c.Senders != nil {
				t.Errorf("Recipients %q Senders %q on Stripe", c.Recipients, c.Senders)
			}
		})
	}
}

func TestClassifySubjectRefusals(t *testing.T) {
	tests := []struct {
		name string
		req  *vendors.Request
		code string
	}{
		{"setup intent path", req("GET", "/v1/setup_intents/pi_1", ""), codeBadID},
		{"quote path", req("POST", "/v1/quotes/quote_1/accept", ""), codeBadID},
		{"payment method path", req("GET", "/v1/payment_methods/ba_1", ""), codeBadID},
		{"invoice item path", req("GET", "/v1/invoiceitems/in_1", ""), codeBadID},
		{"subscription item path", req("GET", "/v1/subscription_items/sub_1", ""), codeBadID},
		{"schedule path", req("GET", "/v1/subscription_schedules/sub_1", ""), codeBadID},
		{"subscription param", req("POST", "/v1/invoiceitems", "customer=cus_1&subscription=si_1"), codeBadID},
		{"from_subscription param", req("POST", "/v1/subscription_schedules", "from_subscription=sub_sched_1"), codeBadID},
		{"schedule param", req("GET", "/v1/invoices/upcoming", "schedule=sub_1"), codeBadID},
		{"setup_intent param", req("GET", "/v1/setup_attempts", "setup_intent=pi_1"), codeBadID},
		{"refund param", req("POST", "/v1/credit_notes", "invoice=in_1&amount=1&refund=ch_1"), codeBadID},
		{"subscription as hash", req("GET", "/v1/invoices", "subscription[id]=sub_1"), codeBadParam},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.req)
			var inv *vendors.Invalid
			if !errors.As(err, &inv) || inv.Code != tt.code {
				t.Fatalf("Classify = %+v, %v; want %s", c, err, tt.code)
			}
		})
	}
}

func TestCustomerlessOperationsExist(t *testing.T) {
	for op := range customerless {
		found := false
		for _, e := range endpoints {
			if e.op == op {
				found = true
				if e.method == "GET" {
					t.Errorf("%s is a read; reads of objects without a customer can expand customers' objects", op)
				}
			}
		}
		if !found {
			t.Errorf("%s is not in the endpoint table", op)
		}
	}
}

// sampleIDs is an ID of every kind of object of a customer.
var sampleIDs = map[string]string{
	"charge": "ch_1", "payment_intent": "pi_1", "invoice": "in_1", "subscription": "sub_1", "setup_intent": "seti_1",
	"payment_method": "pm_1", "checkout_session": "cs_test_1", "quote": "qt_1", "credit_note": "cn_1", "invoiceitem": "ii_1",
	"subscription_schedule": "sub_sched_1", "refund": "re_1", "dispute": "dp_1", "subscription_item": "si_1",
}

// TestEveryOwnerReachable checks that every kind in owners is a known
// collection whose path gives its own SubjectLookup back, and that each
// kind its via fields name is one too.
func TestEveryOwnerReachable(t *testing.T) {
	if len(sampleIDs) != len(owners) {
		t.Fatalf("sampleIDs has %d kinds, owners %d", len(sampleIDs), len(owners))
	}
	for kind, o := range owners {
		id := sampleIDs[kind]
		if col, ok := collections[o.collection]; !ok || col.id != kind {
			t.Errorf("%s: collection %q is not checked as a %s", kind, o.collection, kind)
		}
		path := "/v1/" + o.collection + "/" + id
		c, err := Vendor{}.Classify(req("GET", path, ""))
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
			continue
		}
		if c.SubjectLookup != "GET "+path {
			t.Errorf("GET %s: SubjectLookup %q", path, c.SubjectLookup)
		}
		for _, v := range o.via {
			if p, ok := owners[v.kind]; !ok || len(p.via) > 0 {
				t.Errorf("%s: %s names %q, not a kind with its own customer", kind, v.field, v.kind)
			}
		}
	}
	for _, sp := range subjectParams {
		if _, ok := owners[sp.kind]; !ok {
			t.Errorf("parameter %s names kind %q, not in owners", sp.name, sp.kind)
		}
	}
}

// objectJSON renders an object of a customer as Stripe answers it; a
// customer of "" is null, "absent" leaves the field out, "{...}" is an
// expanded customer.
func objectJSON(object, id, customer string, extra ...string) answer {
	fields := []string{fmt.Sprintf(`"id":%q`, id), fmt.Sprintf(`"object":%q`, object), `"currency":"usd"`}
	switch {
	case customer == "absent":
	case customer == "":
		fields = append(fields, `"customer":null`)
	case strings.HasPrefix(customer, "{"):
		fields = append(fields, `"customer":`+customer) // expanded
	default:
		fields = append(fields, fmt.Sprintf(`"customer":%q`, customer))
	}
	return ok200("{" + strings.Join(append(fields, extra...), ",") + "}")
}

// underScope is what Resolve is told of a call under a customer scope.
var underScope = vendors.Need{Customer: true}

// scoped classifies r, for a call to resolve under a customer scope
// (underScope).
func scoped(t *testing.T, r *vendors.Request) *vendors.Call {
	t.Helper()
	c, err := Vendor{}.Classify(r)
	if err != nil {
		t.Fatalf("Classify: %v", err)
	}
	return c
}

func TestResolveSubjects(t *testing.T) {
	objects := map[string]answer{
		"/v1/charges/ch_a":                       charge("ch_a", 1000, 1000, 0, "usd", "cus_A"),
		"/v1/charges/ch_none":                    charge("ch_none", 1000, 1000, 0, "usd", ""),
		"/v1/charges/ch_b":                       charge("ch_b", 1000, 1000, 0, "usd", "cus_B"),
		"/v1/payment_intents/pi_a":               objectJSON("payment_intent", "pi_a", "cus_A", `"amount":500,"amount_capturable":500,"amount_received":0,"capture_method":"manual"`),
		"/v1/payment_intents/pi_0":               objectJSON("payment_intent", "pi_0", "", `"amount":500,"amount_received":500,"latest_charge":null`),
		"/v1/invoices/in_a":                      objectJSON("invoice", "in_a", "cus_A"),
		"/v1/invoices/in_b":                      objectJSON("invoice", "in_b", "cus_B"),
		"/v1/subscriptions/sub_a":                objectJSON("subscription", "sub_a", "cus_A"),
		"/v1/subscriptions/sub_b":                objectJSON("subscription", "sub_b", "cus_B"),
		"/v1/setup_intents/seti_a":               objectJSON("setup_intent", "seti_a", `{"id":"cus_A","object":"customer"}`),
		"/v1/payment_methods/pm_0":               objectJSON("payment_method", "pm_0", ""),
		"/v1/checkout/sessions/cs_a":             ok200(`{"id":"cs_a","object":"checkout.session","currency":null,"customer":"cus_A"}`),
		"/v1/quotes/qt_a":                        objectJSON("quote", "qt_a", "cus_A"),
		"/v1/credit_notes/cn_a":                  objectJSON("credit_note", "cn_a", "cus_A"),
		"/v1/invoiceitems/ii_a":                  objectJSON("invoiceitem", "ii_a", "cus_A"),
		"/v1/subscription_schedules/sub_sched_a": objectJSON("subscription_schedule", "sub_sched_a", "cus_A"),
		"/v1/refunds/re_a":                       objectJSON("refund", "re_a", "absent", `"charge":"ch_a","payment_intent":null`),
		"/v1/refunds/re_pi":                      objectJSON("refund", "re_pi", "absent", `"charge":null,"payment_intent":"pi_a"`),
		"/v1/refunds/re_exp":                     objectJSON("refund", "re_exp", "absent", `"charge":{"id":"ch_a","object":"charge"}`),
		"/v1/disputes/dp_a":                      objectJSON("dispute", "dp_a", "absent", `"charge":"ch_a","payment_intent":"pi_a"`),
		"/v1/subscription_items/si_a":            ok200(`{"id":"si_a","object":"subscription_item","subscription":"sub_a"}`),
	}
	tests := []struct {
		name       string
		req        *vendors.Request
		customer   string
		noCustomer bool
		fetched    []string
	}{
		{"charge retrieve", req("GET", "/v1/charges/ch_a", ""), "cus_A", false, []string{"/v1/charges/ch_a"}},
		{"charge of no customer", req("GET", "/v1/charges/ch_none", ""), "", true, []string{"/v1/charges/ch_none"}},
		{"attach a customer to a charge of none", req("POST", "/v1/charges/ch_none", "customer=cus_A"), "cus_A", true, []string{"/v1/charges/ch_none"}},
		{"capture: one fetch for money and subject", req("POST", "/v1/charges/ch_a/capture", ""), "cus_A", false, []string{"/v1/charges/ch_a"}},
		{"capture of no customer", req("POST", "/v1/charges/ch_none/capture", ""), "", true, []string{"/v1/charges/ch_none"}},
		{"refund of an intent: one fetch", req("POST", "/v1/refunds", "payment_intent=pi_0"), "", true, []string{"/v1/payment_intents/pi_0"}},
		{"intent increment", req("POST", "/v1/payment_intents/pi_a/increment_authorization", "amount=900"), "cus_A", false, []string{"/v1/payment_intents/pi_a"}},
		{"expanded customer", req("POST", "/v1/setup_intents/seti_a/confirm", ""), "cus_A", false, []string{"/v1/setup_intents/seti_a"}},
		{"payment method of none", req("POST", "/v1/payment_methods/pm_0/attach", "customer=cus_A"), "cus_A", true, []string{"/v1/payment_methods/pm_0"}},
		{"checkout session without currency", req("POST", "/v1/checkout/sessions/cs_a/expire", ""), "cus_A", false, []string{"/v1/checkout/sessions/cs_a"}},
		{"quote", req("POST", "/v1/quotes/qt_a/finalize", ""), "cus_A", false, []string{"/v1/quotes/qt_a"}},
		{"credit note", req("GET", "/v1/credit_notes/cn_a", ""), "cus_A", false, []string{"/v1/credit_notes/cn_a"}},
		{"invoice item", req("POST", "/v1/invoiceitems/ii_a", "amount=5"), "cus_A", false, []string{"/v1/invoiceitems/ii_a"}},
		{"schedule", req("GET", "/v1/subscription_schedules/sub_sched_a", ""), "cus_A", false, []string{"/v1/subscription_schedules/sub_sched_a"}},
		{"refund by ID is its charge's", req("POST", "/v1/refunds/re_a", "metadata[k]=v"), "cus_A", false, []string{"/v1/refunds/re_a", "/v1/charges/ch_a"}},
		{"refund without charge is its intent's", req("GET", "/v1/refunds/re_pi", ""), "cus_A", false, []string{"/v1/refunds/re_pi", "/v1/payment_intents/pi_a"}},
		{"refund with expanded charge", req("GET", "/v1/refunds/re_exp", ""), "cus_A", false, []string{"/v1/refunds/re_exp", "/v1/charges/ch_a"}},
		{"dispute is its charge's", req("POST", "/v1/disputes/dp_a/close", ""), "cus_A", false, []string{"/v1/disputes/dp_a", "/v1/charges/ch_a"}},
		{"subscription item is its subscription's", req("GET", "/v1/subscription_items/si_a", ""), "cus_A", false, []string{"/v1/subscription_items/si_a", "/v1/subscriptions/sub_a"}},
		{"list filtered by charge", req("GET", "/v1/refunds", "charge=ch_a"), "cus_A", false, []string{"/v1/charges/ch_a"}},
		{"every object named is looked up", req("POST", "/v1/invoiceitems", "customer=cus_A&invoice=in_a&subscription=sub_a&amount=1&currency=usd"), "cus_A", false,
			[]string{"/v1/invoices/in_a", "/v1/subscriptions/sub_a"}},
		{"charge refunds naming an intent", req("POST", "/v1/charges/ch_a/refunds", "payment_intent=pi_a&amount=1"), "cus_A", false,
			[]string{"/v1/charges/ch_a", "/v1/payment_intents/pi_a"}},
		{"credit note: the invoice once, then the refund's charge", req("POST", "/v1/credit_notes", "invoice=in_a&amount=1&refund=re_a"), "cus_A", false,
			[]string{"/v1/invoices/in_a", "/v1/refunds/re_a", "/v1/charges/ch_a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := scoped(t, tt.req)
			f := &fakeStripe{answers: objects}
			if _, err := (Vendor{}).Resolve(context.Background(), c, underScope, f.get, nil); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if c.Customer != tt.customer || c.NoCustomer != tt.noCustomer {
				t.Errorf("Customer %q NoCustomer %v, want %q %v", c.Customer, c.NoCustomer, tt.customer, tt.noCustomer)
			}
			if !reflect.DeepEqual(f.fetched, tt.fetched) {
				t.Errorf("fetched %q, want %q", f.fetched, tt.fetched)
			}
		})
	}
}

func TestResolveSubjectOnlyWhenNeeded(t *testing.T) {
	f := &fakeStripe{answers: map[string]answer{"/v1/charges/ch_a": charge("ch_a", 1, 1, 0, "usd", "cus_A")}}
	c, err := Vendor{}.Classify(req("GET", "/v1/charges/ch_a", ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, f.get, nil); err != nil {
		t.Fatal(err)
	}
	if len(f.fetched) != 0 || c.Customer != "" || c.NoCustomer {
		t.Fatalf("without Need.Customer: fetched %v, Customer %q, NoCustomer %v", f.fetched, c.Customer, c.NoCustomer)
	}
}

func TestResolveSubjectFailures(t *testing.T) {
	tests := []struct {
		name   string
		req    *vendors.Request
		answer map[string]answer
	}{
		{"fetch fails", req("GET", "/v1/charges/ch_1", ""), map[string]answer{"/v1/charges/ch_1": {err: errors.New("reset")}}},
		{"not found", req("GET", "/v1/charges/ch_1", ""), nil},
		{"not 200", req("GET", "/v1/charges/ch_1", ""), map[string]answer{"/v1/charges/ch_1": {status: 202, body: `{"id":"ch_1","object":"charge","customer":null}`}}},
		{"not JSON", req("GET", "/v1/charges/ch_1", ""), map[string]answer{"/v1/charges/ch_1": ok200(`<html>`)}},
		{"wrong object", req("GET", "/v1/charges/ch_1", ""), map[string]answer{"/v1/charges/ch_1": objectJSON("refund", "ch_1", "cus_1")}},
		{"other id", req("GET", "/v1/charges/ch_1", ""), map[string]answer{"/v1/charges/ch_1": objectJSON("charge", "ch_2", "cus_1")}},
		{"no customer field", req("GET", "/v1/charges/ch_1", ""), map[string]answer{"/v1/charges/ch_1": objectJSON("charge", "ch_1", "absent")}},
		{"customer not a string", req("GET", "/v1/charges/ch_1", ""), map[string]answer{"/v1/charges/ch_1": ok200(`{"id":"ch_1","object":"charge","customer":7}`)}},
		{"customer not a customer", req("GET", "/v1/charges/ch_1", ""), map[string]answer{"/v1/charges/ch_1": objectJSON("charge", "ch_1", "acct_1")}},
		{"expanded customer without id", req("GET", "/v1/charges/ch_1", ""), map[string]answer{"/v1/charges/ch_1": ok200(`{"id":"ch_1","object":"charge","customer":{"object":"customer"}}`)}},
		{"another customer than named", req("POST", "/v1/payment_intents/pi_1", "customer=cus_1"),
			map[string]answer{"/v1/payment_intents/pi_1": objectJSON("payment_intent", "pi_1", "cus_2")}},
		{"objects of two customers", req("POST", "/v1/invoiceitems", "customer=cus_1&invoice=in_1&subscription=sub_1"),
			map[string]answer{"/v1/invoices/in_1": objectJSON("invoice", "in_1", "cus_1"), "/v1/subscriptions/sub_1": objectJSON("subscription", "sub_1", "cus_2")}},
		{"objects of two customers, none named", req("GET", "/v1/checkout/sessions", "payment_intent=pi_1&subscription=sub_1"),
			map[string]answer{"/v1/payment_intents/pi_1": objectJSON("payment_intent", "pi_1", "cus_1"), "/v1/subscriptions/sub_1": objectJSON("subscription", "sub_1", "cus_2")}},
		{"refund of nothing", req("GET", "/v1/refunds/re_1", ""),
			map[string]answer{"/v1/refunds/re_1": objectJSON("refund", "re_1", "absent", `"charge":null,"payment_intent":null`)}},
		{"refund of no known field", req("GET", "/v1/refunds/re_1", ""), map[string]answer{"/v1/refunds/re_1": objectJSON("refund", "re_1", "absent")}},
		{"refund's charge not a charge", req("GET", "/v1/refunds/re_1", ""),
			map[string]answer{"/v1/refunds/re_1": objectJSON("refund", "re_1", "absent", `"charge":"pi_1"`)}},
		{"refund's charge fails", req("GET", "/v1/refunds/re_1", ""),
			map[string]answer{"/v1/refunds/re_1": objectJSON("refund", "re_1", "absent", `"charge":"ch_1"`)}},
		{"refund's charge without customer field", req("GET", "/v1/refunds/re_1", ""),
			map[string]answer{"/v1/refunds/re_1": objectJSON("refund", "re_1", "absent", `"charge":"ch_1"`), "/v1/charges/ch_1": objectJSON("charge", "ch_1", "absent")}},
		{"capture of a charge without customer field", req("POST", "/v1/charges/ch_1/capture", ""),
			map[string]answer{"/v1/charges/ch_1": ok200(`{"id":"ch_1","object":"charge","amount":1,"amount_captured":0,"currency":"usd"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := scoped(t, tt.req)
			f := &fakeStripe{answers: tt.answer}
			_, err := Vendor{}.Resolve(context.Background(), c, underScope, f.get, nil)
			if !errors.Is(err, ErrLookup) {
				t.Fatalf("Resolve = %v (Customer %q NoCustomer %v), want ErrLookup", err, c.Customer, c.NoCustomer)
			}
			seen := map[string]bool{}
			for _, p := range f.fetched {
				if seen[p] {
					t.Errorf("fetched %s twice: %v", p, f.fetched)
				}
				seen[p] = true
			}
		})
	}
}

func TestResolveRefusesForeignSubjectLookup(t *testing.T) {
	f := &fakeStripe{}
	c := &vendors.Call{Operation: "charges.retrieve", SubjectLookup: "GET /v1/charges/ch_1"}
	if _, err := (Vendor{}).Resolve(context.Background(), c, underScope, f.get, nil); !errors.Is(err, ErrLookup) {
		t.Errorf("no State: %v, want ErrLookup", err)
	}
	c = scoped(t, req("GET", "/v1/charges/ch_1", ""))
	c.SubjectLookup = "GET /v1/customers/cus_1"
	if _, err := (Vendor{}).Resolve(context.Background(), c, underScope, f.get, nil); !errors.Is(err, ErrLookup) {
		t.Errorf("changed SubjectLookup: %v, want ErrLookup", err)
	}
	c = scoped(t, req("GET", "/v1/charges", ""))
	c.SubjectLookup = "GET /v1/charges/ch_1"
	if _, err := (Vendor{}).Resolve(context.Background(), c, underScope, f.get, nil); !errors.Is(err, ErrLookup) {
		t.Errorf("SubjectLookup on a list: %v, want ErrLookup", err)
	}
	if len(f.fetched) != 0 {
		t.Errorf("fetched %v", f.fetched)
	}
}

// factStore is what the tests of facts resolve with: facts to read, and
// a place to keep what Resolve learned.
type factStore interface {
	vendors.Facts
	keep(learned []vendors.Fact)
}

// countingFacts is a memFacts that counts reads and can fail them.
type countingFacts struct {
	memFacts
	reads int
	fail  bool
}

func (f *countingFacts) Fact(ctx context.Context, k string) (string, bool, error) {
	f.reads++
	if f.fail {
		return "", false, errors.New("store closed")
	}
	return f.memFacts.Fact(ctx, k)
}

func TestResolveSubjectFacts(t *testing.T) {
	answers := map[string]answer{
		"/v1/charges/ch_a":         charge("ch_a", 1000, 1000, 0, "eur", "cus_A"),
		"/v1/charges/ch_none":      charge("ch_none", 1000, 1000, 0, "usd", ""),
		"/v1/payment_intents/pi_a": objectJSON("payment_intent", "pi_a", "cus_A"),
		"/v1/refunds/re_a":         objectJSON("refund", "re_a", "absent", `"charge":"ch_a"`),
		"/v1/refunds/re_pi":        objectJSON("refund", "re_pi", "absent", `"charge":null,"payment_intent":"pi_a"`),
		"/v1/quotes/qt_0":          objectJSON("quote", "qt_0", ""),
	}
	// resolve resolves r under a scope and keeps what it learned in
	// facts, as the transport does.
	resolve := func(t *testing.T, facts factStore, r *vendors.Request) (*vendors.Call, []string) {
		t.Helper()
		c := scoped(t, r)
		f := &fakeStripe{answers: answers}
		learned, err := Vendor{}.Resolve(context.Background(), c, underScope, f.get, facts)
		facts.keep(learned)
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		return c, f.fetched
	}

	t.Run("a settled customer is kept and read", func(t *testing.T) {
		facts := &countingFacts{memFacts: memFacts{}}
		if _, fetched := resolve(t, facts, req("GET", "/v1/charges/ch_a", "")); len(fetched) != 1 {
			t.Fatalf("first: fetched %v", fetched)
		}
		if got := facts.memFacts["stripe//charge/ch_a"]; got != "eur cus_A" {
			t.Fatalf("fact %q, want eur cus_A", got)
		}
		c, fetched := resolve(t, facts, req("POST", "/v1/charges/ch_a", "description=x"))
		if len(fetched) != 0 || c.Customer != "cus_A" {
			t.Fatalf("second: fetched %v, Customer %q", fetched, c.Customer)
		}
		// The money path reads the same fact: a refund with an amount
		// needs no lookup at all.
		c, fetched = resolve(t, facts, req("POST", "/v1/refunds", "charge=ch_a&amount=5"))
		if len(fetched) != 0 || c.Customer != "cus_A" || c.Amount != amt(t, 5, "EUR") {
			t.Fatalf("refund: fetched %v, Customer %q, Amount %v", fetched, c.Customer, c.Amount)
		}
	})
	t.Run("facts are per account", func(t *testing.T) {
		facts := memFacts{"stripe/acct_1/charge/ch_a": "eur cus_Z"}
		c, fetched := resolve(t, facts, req("GET", "/v1/charges/ch_a", ""))
		if len(fetched) != 1 || c.Customer != "cus_A" {
			t.Fatalf("fetched %v, Customer %q", fetched, c.Customer)
		}
		c, fetched = resolve(t, facts, req("GET", "/v1/charges/ch_a", "", "Stripe-Account", "acct_1"))
		if len(fetched) != 0 || c.Customer != "cus_Z" {
			t.Fatalf("for acct_1: fetched %v, Customer %q", fetched, c.Customer)
		}
	})
	t.Run("no customer is looked up again", func(t *testing.T) {
		facts := memFacts{}
		for i := 1; i <= 2; i++ {
			c, fetched := resolve(t, facts, req("GET", "/v1/charges/ch_none", ""))
			if len(fetched) != 1 || !c.NoCustomer {
				t.Fatalf("call %d: fetched %v, NoCustomer %v", i, fetched, c.NoCustomer)
			}
		}
		// The money path may still read the currency of such a fact,
		// but not take it for proof of no customer.
		facts["stripe//charge/ch_none"] = "usd -"
		c, fetched := resolve(t, facts, req("POST", "/v1/refunds", "charge=ch_none&amount=5"))
		if len(fetched) != 1 || !c.NoCustomer {
			t.Fatalf("refund under a scope: fetched %v, NoCustomer %v", fetched, c.NoCustomer)
		}
		c, err := Vendor{}.Classify(req("POST", "/v1/refunds", "charge=ch_none&amount=5"))
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeStripe{answers: answers}
		learned, err := Vendor{}.Resolve(context.Background(), c, vendors.Need{}, f.get, facts)
		if err != nil || len(f.fetched) != 0 {
			t.Fatalf("refund without a scope: %v, fetched %v", err, f.fetched)
		}
		facts.keep(learned)
		if _, fetched := resolve(t, facts, req("GET", "/v1/quotes/qt_0", "")); len(fetched) != 1 {
			t.Fatalf("quote: fetched %v", fetched)
		}
		if _, ok := facts["stripe//quote/qt_0"]; ok {
			t.Fatalf("kept a quote without customer: %v", facts)
		}
	})
	t.Run("a payment intent's customer is never kept", func(t *testing.T) {
		facts := memFacts{"stripe//payment_intent/pi_a": "usd cus_Z"}
		for i := 1; i <= 2; i++ {
			c, fetched := resolve(t, facts, req("POST", "/v1/payment_intents/pi_a/cancel", ""))
			if len(fetched) != 1 || c.Customer != "cus_A" {
				t.Fatalf("call %d: fetched %v, Customer %q", i, fetched, c.Customer)
			}
		}
		if facts["stripe//payment_intent/pi_a"] != "usd cus_Z" {
			t.Fatalf("facts %v", facts)
		}
		// The fact above would hide one learned: from nothing known,
		// nothing is kept either.
		facts = memFacts{}
		if _, fetched := resolve(t, facts, req("POST", "/v1/payment_intents/pi_a/cancel", "")); len(fetched) != 1 || len(facts) != 0 {
			t.Fatalf("from no facts: fetched %v, facts %v", fetched, facts)
		}
	})
	t.Run("a refund keeps its charge's customer", func(t *testing.T) {
		facts := memFacts{}
		if _, fetched := resolve(t, facts, req("GET", "/v1/refunds/re_a", "")); len(fetched) != 2 {
			t.Fatalf("first: fetched %v", fetched)
		}
		if facts["stripe//refund/re_a"] != "usd cus_A" || facts["stripe//charge/ch_a"] != "eur cus_A" {
			t.Fatalf("facts %v", facts)
		}
		c, fetched := resolve(t, facts, req("POST", "/v1/refunds/re_a/cancel", ""))
		if len(fetched) != 0 || c.Customer != "cus_A" {
			t.Fatalf("second: fetched %v, Customer %q", fetched, c.Customer)
		}
	})
	t.Run("a refund of an intent keeps nothing", func(t *testing.T) {
		facts := memFacts{}
		for i := 1; i <= 2; i++ {
			c, fetched := resolve(t, facts, req("GET", "/v1/refunds/re_pi", ""))
			if len(fetched) != 2 || c.Customer != "cus_A" {
				t.Fatalf("call %d: fetched %v, Customer %q", i, fetched, c.Customer)
			}
		}
		if len(facts) != 0 {
			t.Fatalf("facts %v", facts)
		}
	})
	t.Run("a failing store costs a lookup", func(t *testing.T) {
		facts := &countingFacts{memFacts: memFacts{"stripe//charge/ch_a": "eur cus_A"}, fail: true}
		c, fetched := resolve(t, facts, req("GET", "/v1/charges/ch_a", ""))
		if len(fetched) != 1 || c.Customer != "cus_A" || facts.reads == 0 {
			t.Fatalf("fetched %v, Customer %q, reads %d", fetched, c.Customer, facts.reads)
		}
	})
	t.Run("an unreadable fact costs a lookup", func(t *testing.T) {
		facts := memFacts{"stripe//charge/ch_a": "eur"}
		c, fetched := resolve(t, facts, req("GET", "/v1/charges/ch_a", ""))
		if len(fetched) != 1 || c.Customer != "cus_A" {
			t.Fatalf("fetched %v, Customer %q", fetched, c.Customer)
		}
	})
	t.Run("a remembered customer still refuses another one named", func(t *testing.T) {
		facts := memFacts{"stripe//charge/ch_a": "eur cus_A"}
		c := scoped(t, req("POST", "/v1/charges/ch_a", "customer=cus_B"))
		f := &fakeStripe{answers: answers}
		if _, err := (Vendor{}).Resolve(context.Background(), c, underScope, f.get, facts); !errors.Is(err, ErrLookup) || len(f.fetched) != 0 {
			t.Fatalf("Resolve = %v, fetched %v; want ErrLookup from facts", err, f.fetched)
		}
	})
}

func TestParseObjectFact(t *testing.T) {
	for in, want := range map[string]objectFact{
		"usd cus_1": {currency: "USD", customer: "cus_1"},
		"jpy -":     {currency: "JPY"},
		"- cus_1":   {customer: "cus_1"},
		"- -":       {},
	} {
		got, err := parseObjectFact(in)
		if err != nil || got != want {
			t.Errorf("parseObjectFact(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for _, in := range []string{"", "usd", "usd acct_1", "xxx cus_1", "usd cus_1 x", "usd  cus_1"} {
		if f, err := parseObjectFact(in); err == nil {
			t.Errorf("parseObjectFact(%q) = %+v, want an error", in, f)
		}
	}
}

func TestResolveRefundOf(t *testing.T) {
	intentWith := func(latest string) answer {
		return objectJSON("payment_intent", "pi_1", "cus_A", `"amount":100,"amount_received":100,"capture_method":"automatic"`+latest)
	}
	tests := []struct {
		name   string
		answer answer
		want   string
	}{
		{"latest charge", intentWith(`,"latest_charge":"ch_9"`), "ch_9"},
		{"expanded latest charge", intentWith(`,"latest_charge":{"id":"py_9","object":"charge"}`), "py_9"},
		{"no charge yet", intentWith(`,"latest_charge":null`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, need := range []bool{false, true} {
				c, err := Vendor{}.Classify(req("POST", "/v1/refunds", "payment_intent=pi_1&amount=10"))
				if err != nil {
					t.Fatal(err)
				}
				f := &fakeStripe{answers: map[string]answer{"/v1/payment_intents/pi_1": tt.answer}}
				// Facts never spare the lookup: the intent's latest
				// charge is not one.
				facts := memFacts{"stripe//payment_intent/pi_1": "usd cus_A"}
				if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{Customer: need}, f.get, facts); err != nil {
					t.Fatal(err)
				}
				if c.RefundOf != tt.want || len(f.fetched) != 1 || c.Customer != "cus_A" {
					t.Errorf("Need.Customer %v: RefundOf %q (want %q), fetched %v, Customer %q", need, c.RefundOf, tt.want, f.fetched, c.Customer)
				}
			}
		})
	}
	// An intent answered in an API version before latest_charge (the
	// request's Stripe-Version chooses it) says nothing of its charge:
	// without a scope nothing needs it, under one the refund is refused.
	for _, need := range []bool{false, true} {
		c, err := Vendor{}.Classify(req("POST", "/v1/refunds", "payment_intent=pi_1", "Stripe-Version", "2022-08-01"))
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeStripe{answers: map[string]answer{"/v1/payment_intents/pi_1": intentWith(``)}}
		_, err = Vendor{}.Resolve(context.Background(), c, vendors.Need{Customer: need}, f.get, nil)
		if need && !errors.Is(err, ErrLookup) || !need && (err != nil || c.RefundOf != "") {
			t.Errorf("no latest_charge, Need.Customer %v: %v, RefundOf %q", need, err, c.RefundOf)
		}
	}
	for _, bad := range []string{`,"latest_charge":"pi_2"`, `,"latest_charge":5`, `,"latest_charge":{"object":"charge"}`} {
		c, err := Vendor{}.Classify(req("POST", "/v1/refunds", "payment_intent=pi_1"))
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeStripe{answers: map[string]answer{"/v1/payment_intents/pi_1": intentWith(bad)}}
		if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, f.get, nil); !errors.Is(err, ErrLookup) {
			t.Errorf("latest_charge %s: %v, want ErrLookup", bad, err)
		}
	}
	// A refund of a charge says its charge without a lookup.
	c, err := Vendor{}.Classify(req("POST", "/v1/refunds", "charge=ch_1&amount=1"))
	if err != nil {
		t.Fatal(err)
	}
	if c.RefundOf != "ch_1" {
		t.Errorf("refund of a charge: RefundOf %q", c.RefundOf)
	}
}

func TestSettleCreatedCustomer(t *testing.T) {
	c, err := Vendor{}.Classify(req("POST", "/v1/customers", "email=a%40x.example&metadata[agent]=bot"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Creates != "customer" || c.MovesMoney {
		t.Fatalf("Creates %q MovesMoney %v", c.Creates, c.MovesMoney)
	}
	got, err := Vendor{}.Settle(c, []byte(`{"id":"cus_New1","object":"customer","email":"a@x.example","metadata":{"agent":"bot"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (vendors.Settlement{Object: "cus_New1", Units: -1}); got != want {
		t.Errorf("Settle = %+v, want %+v", got, want)
	}
	for _, body := range []string{
		``, `<html>`, `null`, `[]`,
		`{"id":"cus_1","object":"charge"}`,
		`{"object":"customer"}`,
		`{"id":7,"object":"customer"}`,
		`{"id":"acct_1","object":"customer"}`,
		`{"id":"cus_1 ","object":"customer"}`,
	} {
		if got, err := (Vendor{}).Settle(c, []byte(body)); !errors.Is(err, ErrSettle) {
			t.Errorf("Settle(%s) = %+v, %v; want ErrSettle", body, got, err)
		}
	}
	other := &vendors.Call{Operation: "subscriptions.create", Creates: "subscription"}
	if _, err := (Vendor{}).Settle(other, []byte(`{"id":"sub_1","object":"subscription"}`)); !errors.Is(err, ErrSettle) {
		t.Errorf("Creates subscription: %v, want ErrSettle", err)
	}
	// A call that neither moves money nor creates reads nothing.
	if got, err := (Vendor{}).Settle(&vendors.Call{Operation: "customers.update"}, []byte(`garbage`)); err != nil || got.Object != "" {
		t.Errorf("customers.update: %+v, %v", got, err)
	}
}

func TestCustomerMetadata(t *testing.T) {
	f := &fakeStripe{answers: map[string]answer{
		"/v1/customers/cus_1": ok200(`{"id":"cus_1","object":"customer","email":"a@x.example","metadata":{"cohort":"beta","created_by":"refund-bot","empty":""}}`),
	}}
	md, err := Vendor{}.CustomerMetadata(context.Background(), "cus_1", f.get)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"cohort": "beta", "created_by": "refund-bot", "empty": ""}; !reflect.DeepEqual(md, want) {
		t.Errorf("metadata %v, want %v", md, want)
	}
	if !reflect.DeepEqual(f.fetched, []string{"/v1/customers/cus_1"}) {
		t.Errorf("fetched %v", f.fetched)
	}
	f.answers["/v1/customers/cus_2"] = ok200(`{"id":"cus_2","object":"customer","deleted":false,"metadata":{}}`)
	if md, err := (Vendor{}).CustomerMetadata(context.Background(), "cus_2", f.get); err != nil || md == nil || len(md) != 0 {
		t.Errorf("empty metadata: %v, %v; want an empty map", md, err)
	}
}

func TestCustomerMetadataFailures(t *testing.T) {
	tests := []struct {
		name, id string
		answer   answer
	}{
		{"not a customer ID", "ch_1", ok200(`{"id":"ch_1","object":"customer","metadata":{}}`)},
		{"path in the ID", "cus_1/sources", ok200(`{"id":"cus_1/sources","object":"customer","metadata":{}}`)},
		{"fetch fails", "cus_1", answer{err: errors.New("timeout")}},
		{"not found", "cus_1", answer{status: 404, body: `{"error":{}}`}},
		{"not JSON", "cus_1", ok200(`{`)},
		{"wrong object", "cus_1", ok200(`{"id":"cus_1","object":"charge","metadata":{}}`)},
		{"other customer", "cus_1", ok200(`{"id":"cus_2","object":"customer","metadata":{}}`)},
		{"deleted", "cus_1", ok200(`{"id":"cus_1","object":"customer","deleted":true}`)},
		{"deleted with metadata", "cus_1", ok200(`{"id":"cus_1","object":"customer","deleted":true,"metadata":{"cohort":"beta"}}`)},
		{"deleted not a boolean", "cus_1", ok200(`{"id":"cus_1","object":"customer","deleted":"no","metadata":{}}`)},
		{"no metadata", "cus_1", ok200(`{"id":"cus_1","object":"customer"}`)},
		{"null metadata", "cus_1", ok200(`{"id":"cus_1","object":"customer","metadata":null}`)},
		{"metadata array", "cus_1", ok200(`{"id":"cus_1","object":"customer","metadata":["beta"]}`)},
		{"number value", "cus_1", ok200(`{"id":"cus_1","object":"customer","metadata":{"tier":2}}`)},
		{"null value", "cus_1", ok200(`{"id":"cus_1","object":"customer","metadata":{"tier":null}}`)},
		{"object value", "cus_1", ok200(`{"id":"cus_1","object":"customer","metadata":{"tier":{"a":"b"}}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeStripe{answers: map[string]answer{"/v1/customers/" + tt.id: tt.answer}}
			md, err := Vendor{}.CustomerMetadata(context.Background(), tt.id, f.get)
			if !errors.Is(err, ErrLookup) || md != nil {
				t.Fatalf("CustomerMetadata = %v, %v; want ErrLookup", md, err)
			}
			if !idPatterns["customer"].MatchString(tt.id) && len(f.fetched) != 0 {
				t.Errorf("fetched %v for a bad ID", f.fetched)
			}
		})
	}
}
