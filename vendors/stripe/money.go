package stripe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// ErrLookup wraps every failure of Resolve to read what a call needs from
// Stripe: the fetch failed, Stripe did not answer 200, or the answer is not
// the object asked for. The call must then be refused.
var ErrLookup = errors.New("stripe: lookup failed")

// ErrSettle wraps every failure of Settle to read what moved. The
// reservation then stays counted at what was reserved.
var ErrSettle = errors.New("stripe: cannot read what moved")

// state is the memo a money-moving call carries from Classify through
// Resolve to Settle.
type state struct {
	kind kind

	// What Resolve fetches: "/v1/charges/ch_1", an object of type object
	// whose id is id.
	lookup, object, id string

	// explicit is the amount the request names, in minor units of a
	// currency only the lookup knows; -1 when the request names none.
	explicit int64
	// captureMethod is a payment intent confirmation's override.
	captureMethod string

	// before is what the object had already moved before this call
	// (captured, received, paid, refunded), known once looked up; -1
	// when unknown, and Settle then counts the whole of it.
	before int64

	// subjects are the objects whose customer is the call's, the first
	// one SubjectLookup; decided is the path of the one the money
	// lookup has already told the customer of.
	subjects []subject
	decided  string
}

// price fills in the money of a money-moving call: the amount when the
// request says it, or the lookup that will.
func price(c *vendors.Call, k kind, vars map[string]string) error {
	p := c.Params
	st := &state{kind: k, explicit: -1, before: -1}
	c.State = st
	var err error
	switch k {
	case kindChargeCreate:
		amt, cur, err := amountAndCurrency(p)
		if err != nil {
			return err
		}
		capture, err := boolParam(p, "capture", true)
		if err != nil {
			return err
		}
		if !capture {
			amt = 0 // an authorisation: money moves at charges.capture
		}
		return setAmount(c, amt, cur)

	case kindPaymentIntentCreate:
		amt, cur, err := amountAndCurrency(p)
		if err != nil {
			return err
		}
		confirm, err := boolParam(p, "confirm", false)
		if err != nil {
			return err
		}
		cm, err := captureMethod(p)
		if err != nil {
			return err
		}
		if !confirm || cm == "manual" {
			amt = 0 // money moves at confirm or capture
		}
		st.before = 0
		return setAmount(c, amt, cur)

	case kindTransferCreate, kindPayoutCreate, kindTopupCreate:
		amt, cur, err := amountAndCurrency(p)
		if err != nil {
			return err
		}
		if k == kindTransferCreate {
			dest, ok, err := scalar(p, "destination")
			if err != nil {
				return err
			}
			if ok && !idPatterns["account"].MatchString(dest) {
				return invalid(codeBadID, "destination=%q is not an account ID (acct_...)", truncate(dest))
			}
		}
		return setAmount(c, amt, cur)

	case kindPaymentIntentIncrement:
		// amount is the new authorised total; nothing moves until
		// payment_intents.capture, which is priced then.
		if _, ok, err := optionalAmount(p, "amount"); err != nil {
			return err
		} else if !ok {
			return invalid(codeMissingParam, "increment_authorization needs amount")
		}
		return nil

	case kindChargeCapture, kindChargeRefundLegacy, kindChargeRefunds:
		if st.explicit, err = explicit(p, "amount"); err != nil {
			return err
		}
		lookup(c, st, "charges", "charge", vars["charge"])

	case kindPaymentIntentConfirm:
		if st.captureMethod, err = optionalCaptureMethod(p); err != nil {
			return err
		}
		lookup(c, st, "payment_intents", "payment_intent", vars["payment_intent"])

	case kindPaymentIntentCapture:
		if st.explicit, err = explicit(p, "amount_to_capture"); err != nil {
			return err
		}
		lookup(c, st, "payment_intents", "payment_intent", vars["payment_intent"])

	case kindRefundCreate:
		ch, hasCh, err := scalar(p, "charge")
		if err != nil {
			return err
		}
		pi, hasPI, err := scalar(p, "payment_intent")
		if err != nil {
			return err
		}
		if hasCh == hasPI {
			return invalid(codeMissingParam, "a refund names exactly one of charge and payment_intent")
		}
		if st.explicit, err = explicit(p, "amount"); err != nil {
			return err
		}
		if hasCh {
			lookup(c, st, "charges", "charge", ch)
		} else {
			lookup(c, st, "payment_intents", "payment_intent", pi)
		}

	case kindTransferReversal:
		if st.explicit, err = explicit(p, "amount"); err != nil {
			return err
		}
		lookup(c, st, "transfers", "transfer", vars["transfer"])

	case kindFeeRefund:
		if st.explicit, err = explicit(p, "amount"); err != nil {
			return err
		}
		lookup(c, st, "application_fees", "application_fee", vars["fee"])

	case kindInvoicePay:
		lookup(c, st, "invoices", "invoice", vars["invoice"])

	case kindCreditNoteCreate:
		inv, ok, err := scalar(p, "invoice")
		if err != nil {
			return err
		}
		if !ok {
			return invalid(codeMissingParam, "a credit note names its invoice")
		}
		if st.explicit, err = explicit(p, "amount"); err != nil {
			return err
		}
		if st.explicit < 0 {
			// Without amount, the note is the sum of its parts.
			sum, any := int64(0), false
			for _, name := range []string{"refund_amount", "credit_amount", "out_of_band_amount"} {
				v, err := explicit(p, name)
				if err != nil {
					return err
				}
				if v >= 0 {
					sum, any = sum+v, true
				}
			}
			if !any {
				return invalid(codeAmountUnknown, "a credit note without amount, refund_amount, credit_amount or out_of_band_amount is priced by its lines, which Keybrake cannot total; name the amount")
			}
			st.explicit = sum
		}
		lookup(c, st, "invoices", "invoice", inv)

	default:
		return fmt.Errorf("stripe: no price for operation %q", c.Operation)
	}
	return nil
}

func lookup(c *vendors.Call, st *state, collection, object, id string) {
	st.lookup = "/v1/" + collection + "/" + id
	st.object, st.id = object, id
	c.Lookup = "GET " + st.lookup
}

func setAmount(c *vendors.Call, minor int64, cur money.Currency) error {
	a, err := money.FromMinor(minor, cur)
	if err != nil {
		return invalid(codeBadAmount, "%d %s: %v", minor, cur, err)
	}
	c.Amount = a
	return nil
}

// scalar returns a parameter that must be a single value: "amount", never
// "amount[x]", which a Rack-style parser would read as a hash that
// Keybrake's reading of "amount" would miss.
func scalar(p url.Values, name string) (string, bool, error) {
	nested := ""
	for k := range p {
		if strings.HasPrefix(k, name+"[") && (nested == "" || k < nested) {
			nested = k
		}
	}
	if nested != "" {
		return "", false, invalid(codeBadParam, "%s must be a single value, not %s", name, nested)
	}
	v, ok := p[name]
	if !ok {
		return "", false, nil
	}
	return v[0], true, nil
}

// explicit returns an optional integer amount parameter, -1 when absent.
func explicit(p url.Values, name string) (int64, error) {
	v, ok, err := optionalAmount(p, name)
	if err != nil || !ok {
		return -1, err
	}
	return v, nil
}

func optionalAmount(p url.Values, name string) (int64, bool, error) {
	v, ok, err := scalar(p, name)
	if err != nil || !ok {
		return 0, false, err
	}
	if !amountRE.MatchString(v) {
		return 0, false, invalid(codeBadAmount, "%s=%q is not a whole number of minor units of at most 8 digits", name, truncate(v))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, invalid(codeBadAmount, "%s=%q: %v", name, v, err)
	}
	return n, true, nil
}

// amountAndCurrency returns the required amount and currency of a call
// that names both.
func amountAndCurrency(p url.Values) (int64, money.Currency, error) {
	amt, ok, err := optionalAmount(p, "amount")
	if err != nil {
		return 0, "", err
	}
	if !ok {
		return 0, "", invalid(codeMissingParam, "amount is required")
	}
	v, ok, err := scalar(p, "currency")
	if err != nil {
		return 0, "", err
	}
	if !ok {
		return 0, "", invalid(codeMissingParam, "currency is required")
	}
	cur, err := money.ParseCurrency(v)
	if err != nil {
		return 0, "", invalid(codeBadCurrency, "currency=%q is not a currency Keybrake knows", truncate(v))
	}
	return amt, cur, nil
}

// boolParam reads a boolean as stripe-go writes it; anything else might
// be read by Stripe otherwise.
func boolParam(p url.Values, name string, def bool) (bool, error) {
	v, ok, err := scalar(p, name)
	if err != nil || !ok {
		return def, err
	}
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, invalid(codeBadParam, "%s=%q: want true or false", name, truncate(v))
}

// captureMethod returns a payment intent's capture method, "automatic" when
// absent.
func captureMethod(p url.Values) (string, error) {
	cm, err := optionalCaptureMethod(p)
	if cm == "" {
		cm = "automatic"
	}
	return cm, err
}

func optionalCaptureMethod(p url.Values) (string, error) {
	v, ok, err := scalar(p, "capture_method")
	if err != nil || !ok {
		return "", err
	}
	if !validCaptureMethod(v) {
		return "", invalid(codeBadParam, "capture_method=%q: want automatic, automatic_async or manual", truncate(v))
	}
	return v, nil
}

func validCaptureMethod(v string) bool {
	return v == "automatic" || v == "automatic_async" || v == "manual"
}

// Resolve completes a call in two steps.
//
// When Lookup is set, it fetches the charge, payment intent, transfer,
// invoice or application fee the call moves money on and fills in Amount
// in that object's currency, what the object had already moved (for
// Settle), the charge a refund of a payment intent draws on (RefundOf, the
// intent's latest_charge), and Customer, or NoCustomer when a charge,
// intent or invoice has none.
//
// When NeedSubject is set, it then finds the customer of every object the
// call acts on or names that the first step has not told (SubjectLookup is
// the first of them; see "Scope" in the package documentation), from facts
// when a settled customer is kept there, and fills in Customer, or
// NoCustomer for an object that has none. Every object must belong to the
// customer the request names, if it names one.
//
// It does nothing else. Every failure wraps ErrLookup, except an amount the
// looked-up currency makes invalid, which is an *vendors.Invalid; a
// Lookup or SubjectLookup that Classify did not set is refused without
// fetching. Resolve is safe for concurrent use on distinct calls.
func (Vendor) Resolve(ctx context.Context, c *vendors.Call, get vendors.Getter, facts vendors.Facts) error {
	st, _ := c.State.(*state)
	if c.Lookup != "" {
		if st == nil || st.lookup == "" || c.Lookup != "GET "+st.lookup {
			return fmt.Errorf("%w: %q was not set by Classify", ErrLookup, c.Lookup)
		}
		if err := resolveMoney(ctx, c, st, get, facts); err != nil {
			return err
		}
	}
	if c.SubjectLookup != "" && (st == nil || c.SubjectLookup != "GET "+st.subjectPath()) {
		return fmt.Errorf("%w: %q was not set by Classify", ErrLookup, c.SubjectLookup)
	}
	if !c.NeedSubject || st == nil || len(st.subjects) == 0 {
		return nil
	}
	// Every object of a customer the call names, the Lookup's included
	// when that did not tell its customer (a remembered charge without
	// one).
	return resolveSubjects(ctx, c, st, get, facts)
}

// resolveMoney performs a call's Lookup.
func resolveMoney(ctx context.Context, c *vendors.Call, st *state, get vendors.Getter, facts vendors.Facts) error {
	if done, err := resolveFromFacts(ctx, c, st, facts); done || err != nil {
		return err
	}
	status, body, err := get(ctx, st.lookup)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrLookup, c.Lookup, err)
	}
	if status != 200 {
		return fmt.Errorf("%w: %s answered %d", ErrLookup, c.Lookup, status)
	}
	o, err := parseObject(body, st.object)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrLookup, c.Lookup, err)
	}
	if err := resolve(c, st, o); err != nil {
		var inv *vendors.Invalid
		if errors.As(err, &inv) {
			return err
		}
		return fmt.Errorf("%w: %s: %w", ErrLookup, c.Lookup, err)
	}
	if ow, owned := owners[st.object]; facts != nil && (!owned || ow.settled) {
		// A payment intent's customer can change, so nothing of it is
		// kept. The customer was read by resolve.
		cus, _, _ := o.customer()
		// A fact that cannot be kept costs the next call a lookup,
		// nothing more.
		_ = facts.SetFact(ctx, factKey(c, st), objectFact{currency: c.Amount.Currency, customer: cus}.String())
	}
	return nil
}

// objectFact is what never changes about a charge, transfer, fee or
// other object: its currency, "" for an object without one, and its
// customer, "" for none. An empty customer is not settled (a charge
// without a customer may be given one): only its currency may be relied
// on.
type objectFact struct {
	currency money.Currency
	customer string
}

// String is "usd cus_1", "-" standing for what is empty.
func (f objectFact) String() string {
	cur, cus := strings.ToLower(string(f.currency)), f.customer
	if cur == "" {
		cur = "-"
	}
	if cus == "" {
		cus = "-"
	}
	return cur + " " + cus
}

func parseObjectFact(s string) (objectFact, error) {
	cur, cus, ok := strings.Cut(s, " ")
	if !ok {
		return objectFact{}, fmt.Errorf("fact %q is not \"currency customer\"", s)
	}
	var c money.Currency
	if cur != "-" {
		var err error
		if c, err = money.ParseCurrency(cur); err != nil {
			return objectFact{}, err
		}
	}
	if cus == "-" {
		cus = ""
	} else if !idPatterns["customer"].MatchString(cus) {
		return objectFact{}, fmt.Errorf("fact %q names no customer", s)
	}
	return objectFact{currency: c, customer: cus}, nil
}

// factKey names the facts of the object a call's Lookup fetches.
func factKey(c *vendors.Call, st *state) string {
	return objectFactKey(c.Account, st.object, st.id)
}

// objectFactKey names an object's facts, per connected account: the same
// ID on two accounts is two objects.
func objectFactKey(account, object, id string) string {
	return "stripe/" + account + "/" + object + "/" + id
}

// resolveFromFacts completes, without a lookup, a call that names its
// amount and needs only the currency (and customer) of the object it acts
// on: a refund, reversal or fee refund whose object was looked up before.
// done is false when the call needs the lookup anyway.
func resolveFromFacts(ctx context.Context, c *vendors.Call, st *state, facts vendors.Facts) (done bool, err error) {
	if facts == nil || st.explicit < 0 {
		return false, nil
	}
	switch st.kind {
	case kindRefundCreate, kindChargeRefunds, kindTransferReversal, kindFeeRefund:
	default:
		return false, nil // Settle needs what the object moved before
	}
	ow, owned := owners[st.object]
	if owned && !ow.settled {
		// A payment intent: its customer can change, and a refund of
		// it needs its latest charge (RefundOf).
		return false, nil
	}
	v, ok, err := facts.Fact(ctx, factKey(c, st))
	if err != nil || !ok {
		return false, nil // look it up instead
	}
	f, err := parseObjectFact(v)
	if err != nil || f.currency == "" {
		return false, nil
	}
	if err := checkLookedUpCurrency(c.Params, f.currency); err != nil {
		return true, err
	}
	if f.customer != "" {
		if err := setSubject(c, st.object+" "+st.id, f.customer); err != nil {
			return true, fmt.Errorf("%w: %w", ErrLookup, err)
		}
		st.decided = st.lookup
	}
	a, err := money.FromMinor(st.explicit, f.currency)
	if err != nil {
		return true, fmt.Errorf("%w: %w", ErrLookup, err)
	}
	c.Amount = a
	return true, nil
}

func resolve(c *vendors.Call, st *state, o object) error {
	if id, err := o.str("id"); err != nil {
		return err
	} else if id != st.id {
		return fmt.Errorf("answered %s %q, not %q", st.object, id, st.id)
	}
	cur, err := o.currency()
	if err != nil {
		return err
	}
	// What the call moves unless the request says: the rest of the
	// object that is still open to it.
	var rest int64
	switch st.kind {
	case kindChargeCapture:
		rest, err = o.diff("amount", "amount_captured")
		if err == nil {
			st.before, err = o.integer("amount_captured")
		}
	case kindChargeRefundLegacy:
		rest, err = o.diff("amount", "amount_refunded")
		if err == nil {
			st.before, err = o.integer("amount_refunded")
		}
	case kindChargeRefunds, kindTransferReversal, kindFeeRefund:
		total, refunded := "amount", "amount_refunded"
		if st.kind == kindTransferReversal {
			refunded = "amount_reversed"
		}
		rest, err = o.diff(total, refunded)
	case kindRefundCreate:
		if st.object == "charge" {
			rest, err = o.diff("amount", "amount_refunded")
		} else {
			// An intent does not say what was refunded already;
			// everything received is the most a refund can be.
			rest, err = o.integer("amount_received")
		}
	case kindPaymentIntentConfirm:
		cm := st.captureMethod
		if cm == "" {
			if cm, err = o.str("capture_method"); err != nil {
				return err
			}
			if !validCaptureMethod(cm) {
				return fmt.Errorf("capture_method %q is not one Keybrake knows", cm)
			}
		}
		if rest, err = o.integer("amount"); err != nil {
			return err
		}
		if cm == "manual" {
			rest = 0 // authorised now, moved at payment_intents.capture
		}
		st.before, err = o.integer("amount_received")
	case kindPaymentIntentCapture:
		rest, err = o.integer("amount_capturable")
		if err == nil {
			st.before, err = o.integer("amount_received")
		}
	case kindInvoicePay:
		rest, err = o.integer("amount_remaining")
		if err == nil {
			st.before, err = o.integer("amount_paid")
		}
	case kindCreditNoteCreate:
		// The note's amount was summed from the request.
	default:
		return fmt.Errorf("operation %q has no lookup", c.Operation)
	}
	if err != nil {
		return err
	}
	if err := checkLookedUpCurrency(c.Params, cur); err != nil {
		return err
	}
	amt := rest
	if st.explicit >= 0 {
		amt = st.explicit
	}
	a, err := money.FromMinor(amt, cur)
	if err != nil {
		return err
	}
	if err := resolveCustomer(c, st, o); err != nil {
		return err
	}
	if st.kind == kindRefundCreate && st.object == "payment_intent" {
		// The charge the refund draws on. An intent without one
		// (latest_charge null) leaves RefundOf empty: Stripe refuses to
		// refund it anyway. A missing field is an API version before
		// 2022-11-15, which the request's Stripe-Version can ask for: a
		// call under a scope, which may count refunds per charge, is
		// refused rather than counted against no charge.
		if _, present := o["latest_charge"]; !present && c.NeedSubject {
			return errors.New("the payment intent does not say its latest charge (Stripe-Version before 2022-11-15?)")
		}
		ch, ok, err := o.optionalID("latest_charge")
		if err != nil {
			return err
		}
		if ok && !idPatterns["charge"].MatchString(ch) {
			return fmt.Errorf("latest_charge %q is not a charge ID", truncate(ch))
		}
		c.RefundOf = ch
	}
	c.Amount = a
	return nil
}

// resolveCustomer reads the customer of the object a Lookup fetched. For a
// charge, payment intent or invoice it decides the subject: Customer, or
// NoCustomer when the field is null; a missing field fails a call that
// needs its subject. Transfers and fees have no customer field.
func resolveCustomer(c *vendors.Call, st *state, o object) error {
	cus, present, err := o.customer()
	if err != nil {
		return err
	}
	if _, owned := owners[st.object]; !owned {
		if cus != "" {
			return setSubject(c, st.object+" "+st.id, cus)
		}
		return nil
	}
	if !present {
		if c.NeedSubject {
			return fmt.Errorf("the %s has no customer field", st.object)
		}
		return nil
	}
	if err := setSubject(c, st.object+" "+st.id, cus); err != nil {
		return err
	}
	st.decided = st.lookup
	return nil
}

// checkLookedUpCurrency applies the three-decimal rule to the amounts of a
// request whose currency only the lookup told.
func checkLookedUpCurrency(p url.Values, cur money.Currency) error {
	for _, key := range sortedKeys(p) {
		ns := names(key)
		if inMetadata(ns) {
			continue
		}
		name := ns[len(ns)-1]
		if !isIntegerAmount(name) || name == "quantity" {
			continue
		}
		if _, ok := p[sibling(key, "currency")]; ok {
			continue // checked by Classify against its own currency
		}
		if err := checkThreeDecimal(key, p[key][0], cur); err != nil {
			return err
		}
	}
	return nil
}

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
	a, err := settle(k, c.Amount.Currency, before, body)
	if err != nil {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: %w", ErrSettle, c.Operation, err)
	}
	return vendors.Settlement{Moved: a, Object: objectID(body), Units: -1}, nil
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
		return vendors.Settlement{}, fmt.Errorf("%w: %s: id %q is not a customer ID", ErrSettle, c.Operation, truncate(id))
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

func settle(k kind, cur money.Currency, before int64, body []byte) (money.Amount, error) {
	if cur == "" {
		return money.Amount{}, errors.New("the call has no currency; was it resolved?")
	}
	obj := settledObject[k]
	o, err := parseObject(body, obj)
	if err != nil {
		return money.Amount{}, err
	}
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
		return "", fmt.Errorf("field %s is not a string: %s", name, truncate(string(v)))
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
		return 0, fmt.Errorf("field %s is not a non-negative integer: %s", name, truncate(string(v)))
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
	return false, fmt.Errorf("field %s is not a boolean: %s", name, truncate(string(v)))
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
