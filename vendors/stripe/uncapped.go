package stripe

import (
	"strings"

	"github.com/keybrake/keybrake/internal/pattern"
)

// uncappedCall is a call that can move money Keybrake does not count: the
// money moves later, on Stripe's schedule or from a balance, by an amount
// the request does not say. Classify marks such calls (Call.Uncapped) so
// that the policy refuses them unless a rule accepts them knowingly
// (uncapped: true): an allowlist entry alone would otherwise hand the
// agent that power outside every cap.
type uncappedCall struct {
	method string
	path   pattern.Pattern // matched when prefix is ""
	prefix string          // every path under it
	why    string
}

func uc(method, template, why string) uncappedCall {
	return uncappedCall{method: method, path: pattern.MustCompile(template), why: why}
}

const (
	whySubscription = "Stripe invoices and charges a subscription itself, often at once"
	whyInvoice      = "Stripe finalizes and charges an invoice itself (automatic collection)"
	whyInvoiceItem  = "invoice items are charged with the customer's next invoice"
	whyBalance      = "a customer's balance pays their invoices"
)

var uncappedCalls = []uncappedCall{
	uc("POST", "/v1/subscriptions", whySubscription),
	uc("POST", "/v1/subscriptions/{id}", "an update can invoice and charge prorations at once"),
	uc("DELETE", "/v1/subscriptions/{id}", "a cancellation can invoice and charge at once (invoice_now)"),
	uc("POST", "/v1/subscriptions/{id}/resume", "resuming can invoice and charge at once"),
	uc("POST", "/v1/subscription_items", whySubscription),
	uc("POST", "/v1/subscription_items/{id}", "an update can invoice and charge prorations at once"),
	uc("DELETE", "/v1/subscription_items/{id}", "a removal can invoice and charge prorations at once"),
	uc("POST", "/v1/subscription_schedules", "a schedule starts subscriptions, which Stripe charges itself"),
	uc("POST", "/v1/subscription_schedules/{id}", "a schedule starts subscriptions, which Stripe charges itself"),
	uc("POST", "/v1/invoices", whyInvoice),
	uc("POST", "/v1/invoices/{id}", "an update changes what Stripe charges for the invoice"),
	uc("POST", "/v1/invoices/{id}/finalize", whyInvoice),
	uc("POST", "/v1/invoiceitems", whyInvoiceItem),
	uc("POST", "/v1/invoiceitems/{id}", whyInvoiceItem),
	uc("POST", "/v1/quotes/{id}/accept", "an accepted quote creates invoices or a subscription Stripe charges itself"),
	uc("POST", "/v1/customers/{id}/balance_transactions", whyBalance),
	uc("POST", "/v1/customers/{id}/balance_transactions/{txn}", whyBalance),
	uc("POST", "/v1/payment_intents/{id}/apply_customer_balance", "pays the intent from the customer's cash balance"),
	uc("POST", "/v1/payouts/{id}/reverse", "reverses a payout"),
	uc("POST", "/v1/terminal/readers/{id}/process_payment_intent", "collects an in-person payment"),
	uc("POST", "/v1/terminal/readers/{id}/refund_payment", "refunds an in-person payment"),
	{method: "POST", prefix: "/v1/issuing/", why: "Issuing cards and authorizations spend the account's money"},
	{method: "POST", prefix: "/v1/treasury/", why: "Treasury moves money out of financial accounts"},
}

// uncappedByShape indexes the uncapped calls matched by a template, and
// uncappedPrefixes lists those matched by a prefix. The prefixes come last
// in the table, so trying the templates first keeps the table's order.
var uncappedByShape, uncappedPrefixes = func() (map[shape][]uncappedCall, []uncappedCall) {
	m := make(map[shape][]uncappedCall)
	var prefixes []uncappedCall
	for _, u := range uncappedCalls {
		if u.prefix != "" {
			prefixes = append(prefixes, u)
			continue
		}
		if len(prefixes) > 0 {
			panic("stripe: uncapped call " + u.path.String() + " follows a prefix")
		}
		sh := templateShape(u.method, u.path)
		m[sh] = append(m[sh], u)
	}
	return m, prefixes
}()

// uncapped returns why a call can move money Keybrake does not count, or
// "" when it cannot (or Keybrake counts it).
func uncapped(method, path string) string {
	for _, u := range uncappedByShape[shapeOf(method, path)] {
		if _, ok := matchPath(u.path, path); ok {
			return u.why
		}
	}
	for _, u := range uncappedPrefixes {
		if u.method == method && strings.HasPrefix(path, u.prefix) {
			return u.why
		}
	}
	return ""
}
