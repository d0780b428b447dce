// Classify stage: reading the amount and currency a money-moving call
// names from its request, or the lookup that Resolve must make instead.

package stripe

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// state is the memo a money-moving call carries from Classify through
// Resolve to Settle.
type state struct {
	kind kind

	// needSubject is Resolve's need.Customer: a customer scope is in
	// force, so the customer of every object the call acts on is found.
	needSubject bool

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
func price(c *vendors.Call, p form, k kind, vars map[string]string) error {
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
				return invalid(codeBadID, "destination=%q is not an account ID (acct_...)", vendors.Truncate(dest, vendors.QuoteLimit))
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
	c.Lookup = "GET /v1/" + collection + "/" + id
	st.lookup = c.Lookup[len("GET "):] // the same path, not a second copy of it
	st.object, st.id = object, id
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
func scalar(p form, name string) (string, bool, error) {
	// The keys nested under name follow name+"[" in order; the first
	// of them is named.
	if i, _ := slices.BinarySearch(p.keys, name+"["); i < len(p.keys) && strings.HasPrefix(p.keys[i], name+"[") {
		return "", false, invalid(codeBadParam, "%s must be a single value, not %s", name, p.keys[i])
	}
	v, ok := p.Values[name]
	if !ok {
		return "", false, nil
	}
	return v[0], true, nil
}

// explicit returns an optional integer amount parameter, -1 when absent.
func explicit(p form, name string) (int64, error) {
	v, ok, err := optionalAmount(p, name)
	if err != nil || !ok {
		return -1, err
	}
	return v, nil
}

func optionalAmount(p form, name string) (int64, bool, error) {
	v, ok, err := scalar(p, name)
	if err != nil || !ok {
		return 0, false, err
	}
	if !isAmount(v) {
		return 0, false, invalid(codeBadAmount, "%s=%q is not a whole number of minor units of at most 8 digits", name, vendors.Truncate(v, vendors.QuoteLimit))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, invalid(codeBadAmount, "%s=%q: %v", name, v, err)
	}
	return n, true, nil
}

// amountAndCurrency returns the required amount and currency of a call
// that names both.
func amountAndCurrency(p form) (int64, money.Currency, error) {
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
		return 0, "", invalid(codeBadCurrency, "currency=%q is not a currency Keybrake knows", vendors.Truncate(v, vendors.QuoteLimit))
	}
	return amt, cur, nil
}

// boolParam reads a boolean as stripe-go writes it; anything else might
// be read by Stripe otherwise.
func boolParam(p form, name string, def bool) (bool, error) {
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
	return false, invalid(codeBadParam, "%s=%q: want true or false", name, vendors.Truncate(v, vendors.QuoteLimit))
}

// captureMethod returns a payment intent's capture method, "automatic" when
// absent.
func captureMethod(p form) (string, error) {
	cm, err := optionalCaptureMethod(p)
	if cm == "" {
		cm = "automatic"
	}
	return cm, err
}

func optionalCaptureMethod(p form) (string, error) {
	v, ok, err := scalar(p, "capture_method")
	if err != nil || !ok {
		return "", err
	}
	if !validCaptureMethod(v) {
		return "", invalid(codeBadParam, "capture_method=%q: want automatic, automatic_async or manual", vendors.Truncate(v, vendors.QuoteLimit))
	}
	return v, nil
}

func validCaptureMethod(v string) bool {
	return v == "automatic" || v == "automatic_async" || v == "manual"
}
