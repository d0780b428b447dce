package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// objectRE is the uri of a message or call: the path Reconcile fetches.
var objectRE = map[kind]*regexp.Regexp{
	kindMessage: regexp.MustCompile(`^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages/((?:SM|MM)[0-9a-f]{32})\.json$`),
	kindCall:    regexp.MustCompile(`^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Calls/(CA[0-9a-f]{32})\.json$`),
}

// Settle reads a 2xx answer to a call that can move money. Twilio answers
// a new message or call with "price": null, priced minutes later: Settle
// then reports the call's own estimate (c.Amount, from the policy's
// prices) with Estimated set, for a Reconciler pass to correct. An answer
// that already has a price (its absolute value, in price_unit, which must
// be the call's currency) settles exactly. Object is the resource's uri,
// the path Reconcile fetches; Units is a message's num_segments, or -1 (as
// many as were reserved) for a call or when Twilio does not say. A call
// that moves no money settles at zero. Every failure wraps ErrSettle.
// Settle is safe for concurrent use.
func (Vendor) Settle(c *vendors.Call, body []byte) (vendors.Settlement, error) {
	if !c.MovesMoney {
		return vendors.Settlement{Units: -1}, nil
	}
	k := kindOf(c.Operation)
	if k != kindMessage && k != kindCall {
		return vendors.Settlement{}, fmt.Errorf("%w: operation %q does not move money", ErrSettle, c.Operation)
	}
	r, err := parseResource(body, k)
	if err != nil {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: %w", ErrSettle, c.Operation, err)
	}
	if c.Account != "" && r.account != c.Account {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: answered %s of account %s, the call was for %s", ErrSettle, c.Operation, r.sid, r.account, c.Account)
	}
	st := vendors.Settlement{Object: r.uri, Units: -1}
	if k == kindMessage && r.segments >= 0 {
		st.Units = r.segments
	}
	if !r.priced {
		st.Moved, st.Estimated = c.Amount, true
		return st, nil
	}
	if r.price.Currency != c.Amount.Currency {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: priced in %s, the call in %q", ErrSettle, c.Operation, r.price.Currency, c.Amount.Currency)
	}
	st.Moved = r.price
	return st, nil
}

// Reconcile fetches a message or call that Settle left estimated and
// reports its real price: done is false while Twilio still answers
// "price": null. operation is "messages.create" or "calls.create", object
// the uri Settle reported; currency is the reservation's, which
// price_unit must equal. A message that is never priced (Twilio does not
// bill some failures) stays counted at its estimate. Every failure wraps
// ErrReconcile. Reconcile is safe for concurrent use.
func (Vendor) Reconcile(ctx context.Context, operation, object string, currency money.Currency, get vendors.Getter) (money.Amount, bool, error) {
	k := kindOf(operation)
	re := objectRE[k]
	if re == nil {
		return money.Amount{}, false, fmt.Errorf("%w: operation %q is not priced later", ErrReconcile, operation)
	}
	if !re.MatchString(object) {
		return money.Amount{}, false, fmt.Errorf("%w: %q is not the uri of a %s", ErrReconcile, vendors.Truncate(object, vendors.QuoteLimit), operation)
	}
	status, body, err := get(ctx, object)
	if err != nil {
		return money.Amount{}, false, fmt.Errorf("%w: GET %s: %w", ErrReconcile, object, err)
	}
	if status != 200 {
		return money.Amount{}, false, fmt.Errorf("%w: GET %s answered %d", ErrReconcile, object, status)
	}
	r, err := parseResource(body, k)
	if err != nil {
		return money.Amount{}, false, fmt.Errorf("%w: GET %s: %w", ErrReconcile, object, err)
	}
	if r.uri != object {
		return money.Amount{}, false, fmt.Errorf("%w: GET %s answered %s", ErrReconcile, object, r.uri)
	}
	if !r.priced {
		return money.Amount{}, false, nil
	}
	if r.price.Currency != currency {
		return money.Amount{}, false, fmt.Errorf("%w: %s is priced in %s, the reservation is in %q", ErrReconcile, object, r.price.Currency, currency)
	}
	return r.price, true, nil
}

// resource is what Settle and Reconcile read of a message or call.
type resource struct {
	sid, account, uri string
	priced            bool
	price             money.Amount // absolute value, when priced
	segments          int64        // num_segments; -1 when absent or unreadable
}

// parseResource reads a message or call: sid, account_sid and uri must
// agree (uri is the canonical path of that sid in that account); price is
// null or a decimal string with price_unit a currency.
func parseResource(body []byte, k kind) (resource, error) {
	var o struct {
		Sid         string          `json:"sid"`
		AccountSid  string          `json:"account_sid"`
		URI         string          `json:"uri"`
		Price       json.RawMessage `json:"price"`
		PriceUnit   json.RawMessage `json:"price_unit"`
		NumSegments json.RawMessage `json:"num_segments"`
	}
	if err := json.Unmarshal(body, &o); err != nil {
		return resource{}, fmt.Errorf("not a JSON object: %w", err)
	}
	m := objectRE[k].FindStringSubmatch(o.URI)
	if m == nil {
		return resource{}, fmt.Errorf("uri %q is not a canonical %s path", vendors.Truncate(o.URI, vendors.QuoteLimit), kindName(k))
	}
	if m[1] != o.AccountSid || m[2] != o.Sid {
		return resource{}, fmt.Errorf("uri %s disagrees with sid %q and account_sid %q", o.URI, vendors.Truncate(o.Sid, vendors.QuoteLimit), vendors.Truncate(o.AccountSid, vendors.QuoteLimit))
	}
	r := resource{sid: o.Sid, account: o.AccountSid, uri: o.URI, segments: -1}
	if n, ok := naturalField(o.NumSegments); ok {
		r.segments = n
	}
	if isNull(o.Price) {
		return r, nil
	}
	price, err := decimalField(o.Price)
	if err != nil {
		return resource{}, fmt.Errorf("price: %w", err)
	}
	var unit string
	if isNull(o.PriceUnit) || json.Unmarshal(o.PriceUnit, &unit) != nil {
		return resource{}, fmt.Errorf("price %s without a price_unit", price)
	}
	cur, err := money.ParseCurrency(unit)
	if err != nil {
		return resource{}, fmt.Errorf("price_unit: %w", err)
	}
	a, err := money.ParsePrice(price + " " + string(cur))
	if err != nil {
		return resource{}, fmt.Errorf("price: %w", err)
	}
	r.priced, r.price = true, a
	return r, nil
}

func kindName(k kind) string {
	if k == kindCall {
		return "call"
	}
	return "message"
}

func isNull(v json.RawMessage) bool {
	return len(v) == 0 || bytes.Equal(v, []byte("null"))
}

// decimalRE is a price as Twilio writes it: "-0.00790", "0.03", "-1".
var decimalRE = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?$`)

// decimalField reads a price given as a JSON string (as Twilio sends it)
// or, to be safe, a JSON number, exactly from its text, and returns its
// absolute value with trailing zeros past six decimals dropped: what
// money.ParsePrice reads.
func decimalField(v json.RawMessage) (string, error) {
	s := string(v)
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(v, &s); err != nil {
			return "", err
		}
	}
	if !decimalRE.MatchString(s) {
		return "", fmt.Errorf("%s is not a plain decimal", vendors.Truncate(string(v), vendors.QuoteLimit))
	}
	s = strings.TrimPrefix(s, "-")
	if whole, frac, ok := strings.Cut(s, "."); ok && len(frac) > 6 {
		frac = strings.TrimRight(frac, "0")
		switch {
		case len(frac) > 6:
			return "", fmt.Errorf("%s has more than six decimals", s)
		case frac == "":
			s = whole
		default:
			s = whole + "." + frac
		}
	}
	return s, nil
}

var naturalRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})$`)

// naturalField reads a count given as a JSON string ("2", as Twilio
// sends num_segments) or number.
func naturalField(v json.RawMessage) (int64, bool) {
	if isNull(v) {
		return 0, false
	}
	s := string(v)
	if strings.HasPrefix(s, `"`) && json.Unmarshal(v, &s) != nil {
		return 0, false
	}
	if !naturalRE.MatchString(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
