package stripe

import (
	"strings"

	"github.com/keybrake/keybrake/internal/pattern"
)

// kind is how an operation moves money; kindNone moves none.
type kind int

const (
	kindNone kind = iota
	kindChargeCreate
	kindChargeCapture
	kindChargeRefundLegacy // POST /v1/charges/{id}/refund: answers with the charge
	kindChargeRefunds      // POST /v1/charges/{id}/refunds: answers with a refund
	kindPaymentIntentCreate
	kindPaymentIntentConfirm
	kindPaymentIntentCapture
	kindPaymentIntentIncrement
	kindRefundCreate
	kindTransferCreate
	kindTransferReversal
	kindPayoutCreate
	kindTopupCreate
	kindInvoicePay
	kindFeeRefund
	kindCreditNoteCreate
)

// endpoint is one row of the endpoint table.
type endpoint struct {
	method string
	path   pattern.Pattern
	op     string
	kind   kind
}

func ep(method, template, op string, k kind) endpoint {
	return endpoint{method: method, path: pattern.MustCompile(template), op: op, kind: k}
}

// endpoints names the calls Keybrake knows. Placeholder names are ID kinds
// (see idPatterns), so a path whose ID has the wrong prefix is refused
// rather than matched. A call not listed here gets Operation "" and moves
// no money as far as Keybrake knows: the policy's allowlist alone decides
// whether it passes (doc.go lists what that leaves unprotected).
var endpoints = []endpoint{
	// Money-moving calls.
	ep("POST", "/v1/charges", "charges.create", kindChargeCreate),
	ep("POST", "/v1/charges/{charge}/capture", "charges.capture", kindChargeCapture),
	ep("POST", "/v1/charges/{charge}/refund", "charges.refund", kindChargeRefundLegacy),
	ep("POST", "/v1/charges/{charge}/refunds", "charge_refunds.create", kindChargeRefunds),
	ep("POST", "/v1/payment_intents", "payment_intents.create", kindPaymentIntentCreate),
	ep("POST", "/v1/payment_intents/{payment_intent}/confirm", "payment_intents.confirm", kindPaymentIntentConfirm),
	ep("POST", "/v1/payment_intents/{payment_intent}/capture", "payment_intents.capture", kindPaymentIntentCapture),
	ep("POST", "/v1/payment_intents/{payment_intent}/increment_authorization", "payment_intents.increment_authorization", kindPaymentIntentIncrement),
	ep("POST", "/v1/refunds", "refunds.create", kindRefundCreate),
	ep("POST", "/v1/transfers", "transfers.create", kindTransferCreate),
	ep("POST", "/v1/transfers/{transfer}/reversals", "transfer_reversals.create", kindTransferReversal),
	ep("POST", "/v1/payouts", "payouts.create", kindPayoutCreate),
	ep("POST", "/v1/topups", "topups.create", kindTopupCreate),
	ep("POST", "/v1/invoices/{invoice}/pay", "invoices.pay", kindInvoicePay),
	ep("POST", "/v1/application_fees/{fee}/refunds", "application_fee_refunds.create", kindFeeRefund),
	ep("POST", "/v1/credit_notes", "credit_notes.create", kindCreditNoteCreate),

	// Calls that move nothing when made; checkout sessions and payment
	// links collect money later, from the customer, not from the agent's
	// call.
	ep("POST", "/v1/checkout/sessions", "checkout.sessions.create", kindNone),
	ep("GET", "/v1/checkout/sessions", "checkout.sessions.list", kindNone),
	ep("GET", "/v1/checkout/sessions/{checkout_session}", "checkout.sessions.retrieve", kindNone),
	ep("POST", "/v1/checkout/sessions/{checkout_session}/expire", "checkout.sessions.expire", kindNone),
	ep("POST", "/v1/payment_links", "payment_links.create", kindNone),
	ep("GET", "/v1/payment_links", "payment_links.list", kindNone),
	ep("GET", "/v1/payment_links/{payment_link}", "payment_links.retrieve", kindNone),
	ep("POST", "/v1/payment_links/{payment_link}", "payment_links.update", kindNone),

	ep("GET", "/v1/charges", "charges.list", kindNone),
	ep("GET", "/v1/charges/search", "charges.search", kindNone),
	ep("GET", "/v1/charges/{charge}", "charges.retrieve", kindNone),
	ep("POST", "/v1/charges/{charge}", "charges.update", kindNone),
	ep("GET", "/v1/charges/{charge}/refunds", "charge_refunds.list", kindNone),
	ep("GET", "/v1/charges/{charge}/refunds/{refund}", "charge_refunds.retrieve", kindNone),
	ep("GET", "/v1/payment_intents", "payment_intents.list", kindNone),
	ep("GET", "/v1/payment_intents/search", "payment_intents.search", kindNone),
	ep("GET", "/v1/payment_intents/{payment_intent}", "payment_intents.retrieve", kindNone),
	ep("POST", "/v1/payment_intents/{payment_intent}", "payment_intents.update", kindNone),
	ep("POST", "/v1/payment_intents/{payment_intent}/cancel", "payment_intents.cancel", kindNone),
	ep("GET", "/v1/refunds", "refunds.list", kindNone),
	ep("GET", "/v1/refunds/{refund}", "refunds.retrieve", kindNone),
	ep("POST", "/v1/refunds/{refund}", "refunds.update", kindNone),
	ep("POST", "/v1/refunds/{refund}/cancel", "refunds.cancel", kindNone),
	ep("GET", "/v1/customers", "customers.list", kindNone),
	ep("GET", "/v1/customers/search", "customers.search", kindNone),
	ep("POST", "/v1/customers", "customers.create", kindNone),
	ep("GET", "/v1/customers/{customer}", "customers.retrieve", kindNone),
	ep("POST", "/v1/customers/{customer}", "customers.update", kindNone),
	ep("DELETE", "/v1/customers/{customer}", "customers.delete", kindNone),
	ep("GET", "/v1/transfers", "transfers.list", kindNone),
	ep("GET", "/v1/transfers/{transfer}", "transfers.retrieve", kindNone),
	ep("GET", "/v1/transfers/{transfer}/reversals", "transfer_reversals.list", kindNone),
	ep("GET", "/v1/transfers/{transfer}/reversals/{transfer_reversal}", "transfer_reversals.retrieve", kindNone),
	ep("GET", "/v1/payouts", "payouts.list", kindNone),
	ep("GET", "/v1/payouts/{payout}", "payouts.retrieve", kindNone),
	ep("POST", "/v1/payouts/{payout}/cancel", "payouts.cancel", kindNone),
	ep("GET", "/v1/topups", "topups.list", kindNone),
	ep("GET", "/v1/topups/{topup}", "topups.retrieve", kindNone),
	ep("POST", "/v1/topups/{topup}/cancel", "topups.cancel", kindNone),
	ep("GET", "/v1/invoices", "invoices.list", kindNone),
	ep("GET", "/v1/invoices/search", "invoices.search", kindNone),
	ep("GET", "/v1/invoices/upcoming", "invoices.upcoming", kindNone),
	ep("GET", "/v1/invoices/{invoice}", "invoices.retrieve", kindNone),
	ep("POST", "/v1/invoices/{invoice}/void", "invoices.void", kindNone),
	ep("POST", "/v1/invoices/{invoice}/send", "invoices.send", kindNone),
	ep("GET", "/v1/application_fees", "application_fees.list", kindNone),
	ep("GET", "/v1/application_fees/{fee}", "application_fees.retrieve", kindNone),
	ep("GET", "/v1/application_fees/{fee}/refunds", "application_fee_refunds.list", kindNone),
	ep("GET", "/v1/application_fees/{fee}/refunds/{fee_refund}", "application_fee_refunds.retrieve", kindNone),
	ep("GET", "/v1/credit_notes", "credit_notes.list", kindNone),
	ep("GET", "/v1/credit_notes/preview", "credit_notes.preview", kindNone),
	ep("GET", "/v1/credit_notes/{credit_note}", "credit_notes.retrieve", kindNone),
	ep("POST", "/v1/credit_notes/{credit_note}/void", "credit_notes.void", kindNone),
	ep("GET", "/v1/disputes", "disputes.list", kindNone),
	ep("GET", "/v1/disputes/{dispute}", "disputes.retrieve", kindNone),
	ep("GET", "/v1/balance", "balance.retrieve", kindNone),
	ep("GET", "/v1/balance_transactions", "balance_transactions.list", kindNone),
	ep("GET", "/v1/balance_transactions/{balance_transaction}", "balance_transactions.retrieve", kindNone),
	ep("POST", "/oauth/token", "oauth.token", kindNone),
	ep("POST", "/oauth/deauthorize", "oauth.deauthorize", kindNone),
}

// idPatterns are the IDs Keybrake checks, by placeholder name in the
// endpoint table and by parameter name. Stripe's IDs are a prefix, "_" and
// letters and digits; checking the prefix also stops an ID of one kind
// standing in for another and confusable look-alikes.
var idPatterns = map[string]*idPattern{
	"charge":              id(`^(ch|py)_[A-Za-z0-9]+$`, "ch_", "py_"),
	"payment_intent":      id(`^pi_[A-Za-z0-9]+$`, "pi_"),
	"customer":            id(`^cus_[A-Za-z0-9]+$`, "cus_"),
	"refund":              id(`^(re|pyr)_[A-Za-z0-9]+$`, "re_", "pyr_"),
	"transfer":            id(`^tr_[A-Za-z0-9]+$`, "tr_"),
	"transfer_reversal":   id(`^trr_[A-Za-z0-9]+$`, "trr_"),
	"invoice":             id(`^in_[A-Za-z0-9]+$`, "in_"),
	"fee":                 id(`^fee_[A-Za-z0-9]+$`, "fee_"),
	"fee_refund":          id(`^fr_[A-Za-z0-9]+$`, "fr_"),
	"payout":              id(`^po_[A-Za-z0-9]+$`, "po_"),
	"topup":               id(`^tu_[A-Za-z0-9]+$`, "tu_"),
	"credit_note":         id(`^cn_[A-Za-z0-9]+$`, "cn_"),
	"checkout_session":    id(`^cs_(test_|live_)?[A-Za-z0-9]+$`, "cs_", "cs_test_", "cs_live_"),
	"payment_link":        id(`^plink_[A-Za-z0-9]+$`, "plink_"),
	"dispute":             id(`^(dp|du)_[A-Za-z0-9]+$`, "dp_", "du_"),
	"subscription":        id(`^sub_[A-Za-z0-9]+$`, "sub_"),
	"balance_transaction": id(`^txn_[A-Za-z0-9]+$`, "txn_"),
	"account":             id(`^acct_[A-Za-z0-9]+$`, "acct_"),
	"setup_intent":        id(`^seti_[A-Za-z0-9]+$`, "seti_"),
	// Payment methods answer to their own pm_ IDs, to the card_ and src_
	// IDs of older integrations, and in test mode to fixtures such as
	// pm_card_visa.
	"payment_method":        id(`^(pm|card|src)_[A-Za-z0-9_]+$`, "pm_", "card_", "src_"),
	"quote":                 id(`^qt_[A-Za-z0-9]+$`, "qt_"),
	"invoiceitem":           id(`^ii_[A-Za-z0-9]+$`, "ii_"),
	"subscription_schedule": id(`^sub_sched_[A-Za-z0-9]+$`, "sub_sched_"),
	"subscription_item":     id(`^si_[A-Za-z0-9]+$`, "si_"),
}

// idPattern is one kind of ID: one of its prefixes, then letters and
// digits (and "_", when the expression's class holds it). It is the
// expression it is written with, read by hand: every ID of every call is
// checked, and refusals quote the expression. The tests hold each to its
// expression.
type idPattern struct {
	expr       string
	prefixes   []string
	underscore bool
}

func id(expr string, prefixes ...string) *idPattern {
	return &idPattern{expr: expr, prefixes: prefixes, underscore: strings.HasSuffix(expr, "_]+$")}
}

// MatchString reports whether s is an ID of the kind.
func (p *idPattern) MatchString(s string) bool {
	for _, prefix := range p.prefixes {
		if rest, ok := strings.CutPrefix(s, prefix); ok && p.isBody(rest) {
			return true
		}
	}
	return false
}

func (p *idPattern) isBody(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' && p.underscore) {
			return false
		}
	}
	return s != ""
}

// String is the expression, for refusals.
func (p *idPattern) String() string { return p.expr }

// collection says what the segment after a known collection must be, for
// every path under it, listed in the table or not: an ID of the
// collection's kind, or one of Stripe's literal sub-resources.
type collection struct {
	id       string // key into idPatterns
	literals []string
}

var collections = map[string]collection{
	"charges":                {id: "charge", literals: []string{"search"}},
	"payment_intents":        {id: "payment_intent", literals: []string{"search"}},
	"customers":              {id: "customer", literals: []string{"search"}},
	"refunds":                {id: "refund"},
	"transfers":              {id: "transfer"},
	"invoices":               {id: "invoice", literals: []string{"search", "upcoming"}},
	"application_fees":       {id: "fee"},
	"payouts":                {id: "payout"},
	"topups":                 {id: "topup"},
	"credit_notes":           {id: "credit_note", literals: []string{"preview"}},
	"checkout/sessions":      {id: "checkout_session"},
	"payment_links":          {id: "payment_link"},
	"disputes":               {id: "dispute"},
	"subscriptions":          {id: "subscription", literals: []string{"search"}},
	"balance_transactions":   {id: "balance_transaction"},
	"setup_intents":          {id: "setup_intent"},
	"payment_methods":        {id: "payment_method"},
	"quotes":                 {id: "quote"},
	"invoiceitems":           {id: "invoiceitem"},
	"subscription_schedules": {id: "subscription_schedule"},
	"subscription_items":     {id: "subscription_item"},
}

// collectionID checks the ID segment of any /v1 path under a known
// collection: "/v1/charges/ch_1/anything" needs a charge ID. It returns the
// collection and the ID ("" for a literal such as "search").
func collectionID(path string) (name, id string, err error) {
	// Read segment by segment, as far as needed, without splitting the
	// path.
	v1, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	name, rest, more := strings.Cut(rest, "/")
	if v1 != "v1" || !more {
		return "", "", nil
	}
	if name == "checkout" {
		var sessions string
		if sessions, rest, more = strings.Cut(rest, "/"); sessions != "sessions" || !more {
			return "", "", nil
		}
		name = "checkout/sessions"
	}
	col, ok := collections[name]
	if !ok {
		return "", "", nil
	}
	id, _, _ = strings.Cut(rest, "/")
	for _, lit := range col.literals {
		if id == lit {
			return name, "", nil
		}
	}
	if !idPatterns[col.id].MatchString(id) {
		return "", "", invalid(codeBadID, "path segment %q is not a %s ID (%s)", id, col.id, idPatterns[col.id])
	}
	return name, id, nil
}

// shape is what a path must share with a template to match it: the
// method, the number of segments, and the first two segments, which
// every template of the tables writes out ("/v1/refunds"). The tables are
// indexed by it, so a call is matched against the few templates it could
// match rather than all of them.
type shape struct {
	method   string
	segments int
	head     string
}

func shapeOf(method, path string) shape {
	head := path
	if i := strings.IndexByte(path[min(1, len(path)):], '/'); i >= 0 {
		if j := strings.IndexByte(path[i+2:], '/'); j >= 0 {
			head = path[:i+2+j]
		}
	}
	return shape{method: method, segments: strings.Count(path, "/"), head: head}
}

// templateShape is the shape of the paths a template matches; it panics on
// a template whose first two segments are not literal, which the index
// could not hold.
func templateShape(method string, p pattern.Pattern) shape {
	sh := shapeOf(method, p.String())
	if strings.Contains(sh.head, "{") {
		panic("stripe: template " + p.String() + " has a placeholder in its first two segments")
	}
	return sh
}

// matchPath is p.Match(path), without splitting the path when the template
// has no placeholder and is the one path it matches.
func matchPath(p pattern.Pattern, path string) (map[string]string, bool) {
	if t := p.String(); !strings.Contains(t, "{") {
		return nil, path == t
	}
	return p.Match(path)
}

// endpointsByShape indexes endpoints, each shape's in table order.
var endpointsByShape = func() map[shape][]*endpoint {
	m := make(map[shape][]*endpoint)
	for i := range endpoints {
		e := &endpoints[i]
		sh := templateShape(e.method, e.path)
		m[sh] = append(m[sh], e)
	}
	return m
}()

// match finds the endpoint of a call, checking its path IDs. A nil
// endpoint with a nil error is a call Keybrake does not know.
func match(method, path string) (*endpoint, map[string]string, error) {
	for _, e := range endpointsByShape[shapeOf(method, path)] {
		vars, ok := matchPath(e.path, path)
		if !ok {
			continue
		}
		for name, v := range vars {
			if re := idPatterns[name]; re != nil && !re.MatchString(v) {
				return nil, nil, invalid(codeBadID, "path segment %q is not a %s ID (%s)", v, name, re)
			}
		}
		return e, vars, nil
	}
	return nil, nil, nil
}
