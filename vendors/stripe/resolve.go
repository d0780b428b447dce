// Resolve stage: the lookups a call makes before it is decided, for the
// amount and currency only the object it acts on knows, and for the
// customer it belongs to.

package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// ErrLookup wraps every failure of Resolve to read what a call needs from
// Stripe: the fetch failed, Stripe did not answer 200, or the answer is not
// the object asked for. The call must then be refused.
var ErrLookup = errors.New("stripe: lookup failed")

// Resolve completes a call in two steps.
//
// When Lookup is set, it fetches the charge, payment intent, transfer,
// invoice or application fee the call moves money on and fills in Amount
// in that object's currency, what the object had already moved (for
// Settle), the charge a refund of a payment intent draws on (RefundOf, the
// intent's latest_charge), and Customer, or NoCustomer when a charge,
// intent or invoice has none.
//
// When need.Customer is set, it then finds the customer of every object the
// call acts on or names that the first step has not told (SubjectLookup is
// the first of them; see "Scope" in the package documentation), from facts
// when a settled customer is kept there, and fills in Customer, or
// NoCustomer for an object that has none. Every object must belong to the
// customer the request names, if it names one.
//
// What never changes about an object it learns (its currency and
// customer) it returns, for the transport to keep in the store, and reads
// from facts next time. It does nothing else. Every failure wraps ErrLookup, except an amount the
// looked-up currency makes invalid, which is an *vendors.Invalid; a
// Lookup or SubjectLookup that Classify did not set is refused without
// fetching. Resolve is safe for concurrent use on distinct calls.
func (Vendor) Resolve(ctx context.Context, c *vendors.Call, need vendors.Need, get vendors.Getter, known vendors.Facts) ([]vendors.Fact, error) {
	st, _ := c.State.(*state)
	facts := &factBook{known: known}
	if st != nil {
		st.needSubject = need.Customer
	}
	if c.Lookup != "" {
		if st == nil || st.lookup == "" || c.Lookup != "GET "+st.lookup {
			return nil, fmt.Errorf("%w: %q was not set by Classify", ErrLookup, c.Lookup)
		}
		if err := resolveMoney(ctx, c, st, get, facts); err != nil {
			return facts.learned, err
		}
	}
	if c.SubjectLookup != "" && (st == nil || c.SubjectLookup != "GET "+st.subjectPath()) {
		return facts.learned, fmt.Errorf("%w: %q was not set by Classify", ErrLookup, c.SubjectLookup)
	}
	if !need.Customer || st == nil || len(st.subjects) == 0 {
		return facts.learned, nil
	}
	// Every object of a customer the call names, the Lookup's included
	// when that did not tell its customer (a remembered charge without
	// one).
	err := resolveSubjects(ctx, c, st, get, facts)
	return facts.learned, err
}

// factBook reads facts the store knows and notes those Resolve learns, for
// Resolve to return. known may be nil: nothing is known yet.
type factBook struct {
	known   vendors.Facts
	learned []vendors.Fact
}

func (b *factBook) fact(ctx context.Context, key string) (string, bool) {
	if b.known == nil {
		return "", false
	}
	v, ok, err := b.known.Fact(ctx, key)
	if err != nil {
		return "", false // look it up instead
	}
	return v, ok
}

func (b *factBook) learn(key, value string) {
	b.learned = append(b.learned, vendors.Fact{Key: key, Value: value})
}

// resolveMoney performs a call's Lookup.
func resolveMoney(ctx context.Context, c *vendors.Call, st *state, get vendors.Getter, facts *factBook) error {
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
	if ow, owned := owners[st.object]; !owned || ow.settled {
		// A payment intent's customer can change, so nothing of it is
		// kept. The customer was read by resolve.
		cus, _, _ := o.customer()
		facts.learn(factKey(c, st), objectFact{currency: c.Amount.Currency, customer: cus}.String())
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
func resolveFromFacts(ctx context.Context, c *vendors.Call, st *state, facts *factBook) (done bool, err error) {
	if st.explicit < 0 {
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
	v, ok := facts.fact(ctx, factKey(c, st))
	if !ok {
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
		if _, present := o["latest_charge"]; !present && st.needSubject {
			return errors.New("the payment intent does not say its latest charge (Stripe-Version before 2022-11-15?)")
		}
		ch, ok, err := o.optionalID("latest_charge")
		if err != nil {
			return err
		}
		if ok && !idPatterns["charge"].MatchString(ch) {
			return fmt.Errorf("latest_charge %q is not a charge ID", vendors.Truncate(ch, vendors.QuoteLimit))
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
		if st.needSubject {
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
	for _, key := range vendors.SortedKeys(p) {
		n := readName(key)
		if n.inMetadata {
			continue
		}
		name := n.last
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
