package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// payoutsVendor is Keybrake's knowledge of the payouts API, written
// outside Keybrake against the vendors.Vendor contract alone. The API has
// two endpoints:
//
//	POST /v1/payouts       {"amount": 2500, "currency": "usd", "recipient": "acct_..."}  moves amount
//	GET  /v1/payouts/{id}  moves nothing
//
// and answers a payout with {"id": "po_...", "amount": 2500, "currency":
// "usd", "status": "paid"}. The zero value is ready to use; it holds no
// state and is safe for concurrent use.
type payoutsVendor struct{}

var _ vendors.Vendor = payoutsVendor{}

const (
	apiHost          = "api.payouts.example"
	jsonType         = "application/json"
	descriptionLimit = 100 // characters
)

// The codes of the refusals Classify returns as *vendors.Invalid.
const (
	codeUnknownEndpoint = "keybrake_unknown_endpoint" // not one of the API's two endpoints
	codeBadID           = "keybrake_bad_id"           // a payout ID that is not po_...
	codeUnexpectedQuery = "keybrake_unexpected_query" // the API takes no query string
	codeUnexpectedBody  = "keybrake_unexpected_body"  // a GET with a body
	codeBadContentType  = "keybrake_bad_content_type" // a POST body that is not application/json
	codeBadHeader       = "keybrake_bad_header"       // an Idempotency-Key, which the API does not honour
	codeBadJSON         = "keybrake_bad_json"         // not exactly one JSON object
	codeDuplicateKey    = "keybrake_duplicate_key"    // a JSON key twice
	codeUnknownParam    = "keybrake_unknown_param"    // a field the API does not document
	codeMissingParam    = "keybrake_missing_param"    // amount, currency or recipient absent
	codeBadParam        = "keybrake_bad_param"        // a field of the wrong type or an unreadable value
)

var (
	payoutID    = regexp.MustCompile(`^po_[A-Za-z0-9]{1,64}$`)
	recipientID = regexp.MustCompile(`^acct_[A-Za-z0-9]{1,64}$`)
	// minorUnits is a positive whole number of minor units as JSON writes
	// it: no sign, fraction, exponent or leading zero, and small enough
	// that no currency's micros overflow.
	minorUnits = regexp.MustCompile(`^[1-9][0-9]{0,11}$`)
	isoLower   = regexp.MustCompile(`^[a-z]{3}$`)
	// refusalMark finds the token Deny writes into a refusal's message;
	// "payouts" in it keeps another vendor's token from reading as ours.
	refusalMark = regexp.MustCompile(`\[payouts (kbr_[0-9a-f]{16})\]`)
)

// recipients matches connected accounts exactly: a policy lists the
// acct_... IDs a grant may pay out to.
var recipients = &vendors.Matcher{
	Noun: "recipient", Plural: "recipients",
	Check: func(entry string) error {
		if !recipientID.MatchString(entry) {
			return fmt.Errorf("%q: want an account ID (acct_...)", entry)
		}
		return nil
	},
	Match: func(entry, value string) bool { return entry == value },
}

func (payoutsVendor) Name() string { return "payouts" }

// Hosts returns a fresh slice each time, so a caller cannot change
// another's.
func (payoutsVendor) Hosts() []string { return []string{apiHost} }

// Info declares what a policy may say of the payouts API beyond the common
// keys: a grant may list its recipients. Payouts are never priced by the
// policy; the request says what they move.
func (payoutsVendor) Info() vendors.Info {
	return vendors.Info{
		Help: "Payouts (examples/custom-vendor): POST /v1/payouts moves its amount; grants may list recipients",
		Grant: []vendors.Key{
			{Name: "recipients", Kind: vendors.ListKey, Subject: vendors.Recipients, Match: recipients,
				Help: "the accounts (acct_...) a payout may go to"},
		},
		RequestIDHeaders: []string{"Request-Id"},
		Secrets:          []string{`pk_(?:live|test)_[A-Za-z0-9]+`},
	}
}

// Classify reads a payouts request strictly. Anything the API might read
// otherwise than Keybrake does is refused with a *vendors.Invalid: another
// endpoint (the API has two, and an unknown POST could move money), a
// query string, a body on a GET, an Idempotency-Key (the API ignores it),
// a POST whose body is not one JSON object of exactly the documented
// fields, each once and of its own type. It is pure and safe for
// concurrent use.
func (payoutsVendor) Classify(r *vendors.Request) (*vendors.Call, error) {
	if r.Query != "" {
		return nil, vendors.Invalidf(codeUnexpectedQuery, "the payouts API takes no query string")
	}
	switch {
	case r.Method == http.MethodPost && r.Path == "/v1/payouts":
		return classifyCreate(r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.Path, "/v1/payouts/"):
		id := strings.TrimPrefix(r.Path, "/v1/payouts/")
		if !payoutID.MatchString(id) {
			return nil, vendors.Invalidf(codeBadID, "%q is not a payout ID (po_...)", vendors.Truncate(id, vendors.QuoteLimit))
		}
		if len(r.Body) > 0 {
			return nil, vendors.Invalidf(codeUnexpectedBody, "a GET carries a body")
		}
		return &vendors.Call{Operation: "payouts.retrieve", Params: url.Values{}, Audit: map[string]string{"payout": id}}, nil
	}
	return nil, vendors.Invalidf(codeUnknownEndpoint, "%s %s is not an endpoint of the payouts API",
		vendors.Truncate(r.Method, vendors.QuoteLimit), vendors.Truncate(r.Path, vendors.QuoteLimit))
}

func classifyCreate(r *vendors.Request) (*vendors.Call, error) {
	if len(headerValues(r.Header, "Idempotency-Key")) > 0 {
		// An agent that sends one believes a retry is safe; the API
		// would pay out twice.
		return nil, vendors.Invalidf(codeBadHeader, "the payouts API does not deduplicate by Idempotency-Key")
	}
	ct := headerValues(r.Header, "Content-Type")
	if len(ct) != 1 || !isJSONType(ct[0]) {
		return nil, vendors.Invalidf(codeBadContentType, "want one Content-Type %s, got %q",
			jsonType, vendors.Truncate(strings.Join(ct, ", "), vendors.QuoteLimit))
	}
	m, err := members(r.Body)
	if err != nil {
		return nil, err
	}
	for _, k := range vendors.SortedKeys(m) {
		switch k {
		case "amount", "currency", "recipient", "description":
		default:
			return nil, vendors.Invalidf(codeUnknownParam, "field %q is not one the payouts API documents", vendors.Truncate(k, vendors.QuoteLimit))
		}
	}
	for _, k := range []string{"amount", "currency", "recipient"} {
		if _, ok := m[k]; !ok {
			return nil, vendors.Invalidf(codeMissingParam, "a payout needs %s", k)
		}
	}
	amount, cur, err := readAmount(m["amount"], m["currency"])
	if err != nil {
		return nil, err
	}
	recipient, err := stringField(m, "recipient")
	if err != nil {
		return nil, err
	}
	if !recipientID.MatchString(recipient) {
		return nil, vendors.Invalidf(codeBadParam, "recipient %q is not an account ID (acct_...)", vendors.Truncate(recipient, vendors.QuoteLimit))
	}
	c := &vendors.Call{
		Operation:  "payouts.create",
		Params:     url.Values{"amount": {string(m["amount"])}, "currency": {cur}, "recipient": {recipient}},
		Audit:      map[string]string{"recipient": recipient},
		MovesMoney: true,
		Amount:     amount,
		Count:      1,
		Recipients: []string{recipient},
	}
	if _, ok := m["description"]; ok {
		d, err := stringField(m, "description")
		if err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(d) > descriptionLimit || strings.ContainsFunc(d, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, vendors.Invalidf(codeBadParam, "description must be at most %d characters without control characters", descriptionLimit)
		}
		c.Params.Set("description", d)
		// Free text: someone may paste a key or a card number into it.
		if v, keep := vendors.RedactParam("description", d); keep {
			c.Audit["description"] = v
		}
	}
	return c, nil
}

// headerValues are the values of header name under any spelling of it:
// http.Header canonicalises on Set, a hand-built map might not.
func headerValues(h http.Header, name string) []string {
	var out []string
	for k, vs := range h {
		if strings.EqualFold(k, name) {
			out = append(out, vs...)
		}
	}
	return out
}

// isJSONType accepts application/json, alone or with charset=utf-8.
func isJSONType(v string) bool {
	if v == jsonType {
		return true
	}
	mt, ps, err := mime.ParseMediaType(v)
	return err == nil && mt == jsonType && len(ps) == 1 && strings.EqualFold(ps["charset"], "utf-8")
}

// members reads body as exactly one JSON object and returns its members
// as written. It refuses what two JSON readers may read differently:
// bytes that are not UTF-8 (encoding/json would replace them), anything
// after the object, and a key given twice (encoding/json keeps the last,
// other readers the first).
func members(body []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(body) || !json.Valid(body) {
		return nil, vendors.Invalidf(codeBadJSON, "the body is not one valid JSON value")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, vendors.Invalidf(codeBadJSON, "the body is not a JSON object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, vendors.Invalidf(codeBadJSON, "the body does not parse: %v", err)
		}
		k := t.(string) // json.Valid holds: an object's tokens start with a key
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, vendors.Invalidf(codeBadJSON, "field %q does not parse: %v", vendors.Truncate(k, vendors.QuoteLimit), err)
		}
		if _, dup := m[k]; dup {
			return nil, vendors.Invalidf(codeDuplicateKey, "field %q appears twice", vendors.Truncate(k, vendors.QuoteLimit))
		}
		m[k] = bytes.TrimSpace(v)
	}
	return m, nil
}

// readAmount reads a whole number of minor units in a lower-case ISO 4217
// currency: {"amount": 2500, "currency": "usd"} is 25.00 USD. 2500.0,
// 2.5e3, "2500", 0 and "USD" are refused: a payout that could read as two
// amounts is not sent.
func readAmount(rawAmount, rawCurrency json.RawMessage) (money.Amount, string, error) {
	if !minorUnits.Match(rawAmount) {
		return money.Amount{}, "", vendors.Invalidf(codeBadParam, "amount %s is not a positive whole number of minor units",
			vendors.Truncate(string(rawAmount), vendors.QuoteLimit))
	}
	var cur string
	if err := json.Unmarshal(rawCurrency, &cur); err != nil || !isoLower.MatchString(cur) {
		return money.Amount{}, "", vendors.Invalidf(codeBadParam, "currency %s is not a lower-case ISO 4217 code",
			vendors.Truncate(string(rawCurrency), vendors.QuoteLimit))
	}
	c, err := money.ParseCurrency(cur)
	if err != nil {
		return money.Amount{}, "", vendors.Invalidf(codeBadParam, "%v", err)
	}
	var minor int64
	for _, d := range rawAmount {
		minor = minor*10 + int64(d-'0')
	}
	a, err := money.FromMinor(minor, c)
	if err != nil {
		return money.Amount{}, "", vendors.Invalidf(codeBadParam, "amount %d %s: %v", minor, cur, err)
	}
	return a, cur, nil
}

func stringField(m map[string]json.RawMessage, k string) (string, error) {
	var s string
	raw := m[k]
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", vendors.Invalidf(codeBadParam, "%s must be a string", k)
	}
	return s, nil
}

// Resolve has nothing to fetch: a payout's request says all Keybrake
// needs, and payouts have no customers. Classify never asks for a lookup,
// so a call that carries one did not come from it and is refused.
func (payoutsVendor) Resolve(_ context.Context, c *vendors.Call, _ vendors.Need, _ vendors.Getter, _ vendors.Facts) ([]vendors.Fact, error) {
	if c.Lookup != "" || c.SubjectLookup != "" {
		return nil, fmt.Errorf("payouts: no lookup is defined, got %q", strings.TrimSpace(c.Lookup+" "+c.SubjectLookup))
	}
	return nil, nil
}

// errSettle wraps every failure of Settle to read what a payout moved; the
// reservation then stays counted as unknown.
var errSettle = errors.New("payouts: cannot read what moved")

// Settle reads the answer to a payout: the amount it names moved, in the
// call's currency, once the payout is paid or pending. Any other answer
// (a currency other than the call's, an amount that is not a whole
// number, a status it does not know) is an error wrapping errSettle. It
// is pure and safe for concurrent use.
func (payoutsVendor) Settle(c *vendors.Call, body []byte) (vendors.Settlement, error) {
	if !c.MovesMoney {
		return vendors.Settlement{Units: -1}, nil
	}
	m, err := members(body)
	if err != nil {
		return vendors.Settlement{}, fmt.Errorf("%w: %w", errSettle, err)
	}
	id, err := stringField(m, "id")
	if err != nil || !payoutID.MatchString(id) {
		return vendors.Settlement{}, fmt.Errorf("%w: the answer names no payout", errSettle)
	}
	moved, cur, err := readAmount(m["amount"], m["currency"])
	if err != nil {
		return vendors.Settlement{}, fmt.Errorf("%w: %w", errSettle, err)
	}
	if moved.Currency != c.Amount.Currency {
		return vendors.Settlement{}, fmt.Errorf("%w: the answer is in %s, the call in %s", errSettle, cur, c.Amount.Currency)
	}
	switch status, _ := stringField(m, "status"); status {
	case "paid", "pending":
		return vendors.Settlement{Moved: moved, Object: id, Units: 1}, nil
	default:
		return vendors.Settlement{}, fmt.Errorf("%w: payout %s has status %q", errSettle, id, vendors.Truncate(status, vendors.QuoteLimit))
	}
}

// Deny answers a refusal as the payouts API answers its own errors, with
// the refusal's status (401, 402, 403 or 503; anything outside 400-599
// becomes 503), its request ID in Request-Id, and the body
//
//	{"error": {"code", "message", "request_id"}, "keybrake": {details}}
//
// The client keeps the body in its *apiError and makes no second attempt.
// The message ends in "[payouts kbr_...]", a token under which Deny
// remembers the details, so that an error that kept only its text still
// leads RefusalDetails to them. Deny does not read or close req's body.
func (payoutsVendor) Deny(req *http.Request, r vendors.Refusal) *http.Response {
	status := r.Status
	if status < 400 || status > 599 {
		status = http.StatusServiceUnavailable
	}
	details := r.Details
	if !json.Valid(details) {
		details = nil // the refusal still stands; AsDenial just cannot read it
	}
	token := vendors.NewRefusalToken()
	if details != nil {
		vendors.RememberRefusal(token, details)
	}
	body, err := json.Marshal(errorBody{
		Error:    apiErrorBody{Code: r.Code, Message: r.Message + " [payouts " + token + "]", RequestID: r.RequestID},
		Keybrake: details,
	})
	if err != nil {
		panic(err) // strings and valid JSON only
	}
	return vendors.JSONResponse(req, status, http.Header{"Request-Id": {r.RequestID}}, body)
}

// RefusalDetails finds the details of a refusal Deny rendered: in the
// *apiError the client returns, or, for an error that kept only its text,
// by the token in its message. ok is false for every other error.
func (payoutsVendor) RefusalDetails(err error) ([]byte, bool) {
	if err == nil {
		return nil, false
	}
	var ae *apiError
	if errors.As(err, &ae) && len(ae.Keybrake) > 0 {
		return ae.Keybrake, true
	}
	if m := refusalMark.FindStringSubmatch(err.Error()); m != nil {
		return vendors.RecallRefusal(m[1])
	}
	return nil, false
}
