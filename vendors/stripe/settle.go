// Settle stage: reading what a response says moved, and the reader of
// Stripe objects that Resolve's lookups share.

package stripe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// ErrSettle wraps every failure of Settle to read what moved. The
// reservation then stays counted at what was reserved.
var ErrSettle = errors.New("stripe: cannot read what moved")

// Settle reads what a 2xx response says moved, in the call's currency:
// see the package documentation for the field each operation reads. A
// call that moves no money settles at zero without reading the body,
// except a call that Creates a customer, whose new ID it returns in
// Object. Every failure wraps ErrSettle. Settle is safe for concurrent
// use.
func (Vendor) Settle(c *vendors.Call, body []byte) (vendors.Settlement, error) {
	if !c.MovesMoney {
		if c.Creates != "" {
			return settleCreate(c, body)
		}
		return vendors.Settlement{Units: -1}, nil
	}
	k := kindOf(c.Operation)
	if k == kindNone {
		return vendors.Settlement{}, fmt.Errorf("%w: operation %q does not move money", ErrSettle, c.Operation)
	}
	if k == kindPaymentIntentIncrement {
		return vendors.Settlement{Moved: c.Amount, Object: objectID(body), Units: -1}, nil // an authorisation moves nothing
	}
	before := int64(-1)
	if st, ok := c.State.(*state); ok {
		before = st.before
	}
	fail := func(err error) (vendors.Settlement, error) {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: %w", ErrSettle, c.Operation, err)
	}
	if c.Amount.Currency == "" {
		return fail(errors.New("the call has no currency; was it resolved?"))
	}
	o, err := parseObject(body, settledObject[k])
	if err != nil {
		return fail(err)
	}
	a, err := settle(k, c.Amount.Currency, before, o)
	if err != nil {
		return fail(err)
	}
	id, _ := o.str("id") // what objectID reads, from the one decode
	return vendors.Settlement{Moved: a, Object: id, Units: -1}, nil
}

// settleCreate reads the ID of the object a call that moves no money made
// (the new customer of customers.create), for the transport to remember.
func settleCreate(c *vendors.Call, body []byte) (vendors.Settlement, error) {
	if c.Creates != "customer" {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: Keybrake does not know how to read a created %q", ErrSettle, c.Operation, c.Creates)
	}
	o, err := parseObject(body, "customer")
	if err != nil {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: %w", ErrSettle, c.Operation, err)
	}
	id, err := o.str("id")
	if err != nil {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: %w", ErrSettle, c.Operation, err)
	}
	if !idPatterns["customer"].MatchString(id) {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: id %q is not a customer ID", ErrSettle, c.Operation, vendors.Truncate(id, vendors.QuoteLimit))
	}
	return vendors.Settlement{Object: id, Units: -1}, nil
}

// objectID reads the id of the object a response describes, or "".
func objectID(body []byte) string {
	var o struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &o) != nil {
		return ""
	}
	return o.ID
}

// settle reads what moved from o, the answer read as the call's object,
// in cur, the call's currency.
func settle(k kind, cur money.Currency, before int64, o object) (money.Amount, error) {
	obj := settledObject[k]
	got, err := o.currency()
	if err != nil {
		return money.Amount{}, err
	}
	if got != cur {
		return money.Amount{}, fmt.Errorf("the %s is in %s, the call in %s", obj, got, cur)
	}
	var moved int64
	switch k {
	case kindChargeCreate:
		captured, err := o.boolean("captured")
		if err != nil {
			return money.Amount{}, err
		}
		if captured {
			moved, err = o.integer("amount_captured")
		}
		if err != nil {
			return money.Amount{}, err
		}
	case kindChargeCapture:
		moved, err = o.since("amount_captured", before)
	case kindChargeRefundLegacy:
		moved, err = o.since("amount_refunded", before)
	case kindPaymentIntentCreate, kindPaymentIntentConfirm, kindPaymentIntentCapture:
		moved, err = o.since("amount_received", before)
	case kindInvoicePay:
		moved, err = o.since("amount_paid", before)
	case kindRefundCreate, kindChargeRefunds:
		var status string
		if status, err = o.str("status"); err != nil {
			return money.Amount{}, err
		}
		if status == "failed" || status == "canceled" {
			break
		}
		moved, err = o.integer("amount")
	default:
		moved, err = o.integer("amount")
	}
	if err != nil {
		return money.Amount{}, err
	}
	return money.FromMinor(moved, cur)
}

// settledObject is the object type each money-moving call answers with.
var settledObject = map[kind]string{
	kindChargeCreate:         "charge",
	kindChargeCapture:        "charge",
	kindChargeRefundLegacy:   "charge",
	kindChargeRefunds:        "refund",
	kindPaymentIntentCreate:  "payment_intent",
	kindPaymentIntentConfirm: "payment_intent",
	kindPaymentIntentCapture: "payment_intent",
	kindRefundCreate:         "refund",
	kindTransferCreate:       "transfer",
	kindTransferReversal:     "transfer_reversal",
	kindPayoutCreate:         "payout",
	kindTopupCreate:          "topup",
	kindInvoicePay:           "invoice",
	kindFeeRefund:            "fee_refund",
	kindCreditNoteCreate:     "credit_note",
}

func kindOf(op string) kind {
	if op == "" {
		return kindNone
	}
	for i := range endpoints {
		if endpoints[i].op == op {
			return endpoints[i].kind
		}
	}
	return kindNone
}

// object is a Stripe object's top-level fields, undecoded.
type object map[string]json.RawMessage

// parseObject reads a JSON object of the given type.
func parseObject(body []byte, want string) (object, error) {
	var o object
	if err := json.Unmarshal(body, &o); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if o == nil {
		return nil, errors.New("not a JSON object: null")
	}
	typ, err := o.str("object")
	if err != nil {
		return nil, err
	}
	if typ != want {
		return nil, fmt.Errorf("answered a %q object, not a %q", typ, want)
	}
	return o, nil
}

func (o object) field(name string) (json.RawMessage, error) {
	v, ok := o[name]
	if !ok {
		return nil, fmt.Errorf("field %s is missing", name)
	}
	return v, nil
}

func (o object) str(name string) (string, error) {
	v, err := o.field(name)
	if err != nil {
		return "", err
	}
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", fmt.Errorf("field %s is not a string: %s", name, vendors.Truncate(string(v), vendors.QuoteLimit))
	}
	return s, nil
}

// optionalID reads a field that is null, an ID, or an expanded object
// with an id.
func (o object) optionalID(name string) (string, bool, error) {
	v, ok := o[name]
	if !ok || bytes.Equal(v, []byte("null")) {
		return "", false, nil
	}
	if len(v) > 0 && v[0] == '{' {
		inner := object{}
		if err := json.Unmarshal(v, &inner); err != nil {
			return "", false, fmt.Errorf("field %s: %w", name, err)
		}
		id, err := inner.str("id")
		if err != nil {
			return "", false, fmt.Errorf("field %s: %w", name, err)
		}
		return id, true, nil
	}
	s, err := o.str(name)
	if err != nil {
		return "", false, err
	}
	return s, true, nil
}

var naturalRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,17})$`)

// integer reads a non-negative integer field exactly; no float, no
// exponent.
func (o object) integer(name string) (int64, error) {
	v, err := o.field(name)
	if err != nil {
		return 0, err
	}
	if !naturalRE.Match(v) {
		return 0, fmt.Errorf("field %s is not a non-negative integer: %s", name, vendors.Truncate(string(v), vendors.QuoteLimit))
	}
	return strconv.ParseInt(string(v), 10, 64)
}

func (o object) boolean(name string) (bool, error) {
	v, err := o.field(name)
	if err != nil {
		return false, err
	}
	switch string(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("field %s is not a boolean: %s", name, vendors.Truncate(string(v), vendors.QuoteLimit))
}

// diff reads total - done, which must not be negative.
func (o object) diff(total, done string) (int64, error) {
	t, err := o.integer(total)
	if err != nil {
		return 0, err
	}
	d, err := o.integer(done)
	if err != nil {
		return 0, err
	}
	if d > t {
		return 0, fmt.Errorf("%s %d exceeds %s %d", done, d, total, t)
	}
	return t - d, nil
}

// since reads a running total and subtracts what it was before the call;
// before < 0 (unknown) counts the whole total, the safe direction.
func (o object) since(name string, before int64) (int64, error) {
	n, err := o.integer(name)
	if err != nil {
		return 0, err
	}
	if before < 0 {
		return n, nil
	}
	if n < before {
		return 0, fmt.Errorf("%s went down from %d to %d", name, before, n)
	}
	return n - before, nil
}

func (o object) currency() (money.Currency, error) {
	s, err := o.str("currency")
	if err != nil {
		return "", err
	}
	c, err := money.ParseCurrency(s)
	if err != nil {
		return "", err
	}
	return c, nil
}
