package fakestripe

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// apiError is an answer in Stripe's error shape:
// {"error":{"type":...,"code":...,"message":...,"param":...}}.
type apiError struct {
	status      int
	typ         string
	code        string
	message     string
	param       string
	declineCode string
	charge      string // the failed charge of a card error
	intent      any    // the payment intent of a card error, rendered
	// executed marks an error the endpoint produced after it started
	// doing the work (a card decline): Stripe saves it under the
	// idempotency key. Parameter and state checks are not saved.
	executed bool
}

func (e *apiError) Error() string { return e.message }

type errorBody struct {
	Error errorFields `json:"error"`
}

type errorFields struct {
	Charge        string `json:"charge,omitempty"`
	Code          string `json:"code,omitempty"`
	DeclineCode   string `json:"decline_code,omitempty"`
	DocURL        string `json:"doc_url,omitempty"`
	Message       string `json:"message"`
	Param         string `json:"param,omitempty"`
	PaymentIntent any    `json:"payment_intent,omitempty"`
	Type          string `json:"type"`
}

func (e *apiError) body() []byte {
	f := errorFields{
		Charge:        e.charge,
		Code:          e.code,
		DeclineCode:   e.declineCode,
		Message:       e.message,
		Param:         e.param,
		PaymentIntent: e.intent,
		Type:          e.typ,
	}
	if e.code != "" {
		f.DocURL = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(e.code, "_", "-")
	}
	return mustJSON(errorBody{f})
}

func invalid(param, code, format string, args ...any) *apiError {
	return &apiError{
		status:  http.StatusBadRequest,
		typ:     "invalid_request_error",
		code:    code,
		message: fmt.Sprintf(format, args...),
		param:   param,
	}
}

// noSuch is a referenced object that does not exist: 404 for an ID in the
// path (param "id"), 400 for one in the parameters.
func noSuch(kind, id, param string) *apiError {
	e := invalid(param, "resource_missing", "No such %s: '%s'", kind, id)
	if param == "id" {
		e.status = http.StatusNotFound
	}
	return e
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("fakestripe: render %T: %v", v, err))
	}
	return append(b, '\n')
}

// nullable is an ID or text that Stripe writes as null when absent.
type nullable string

func (n nullable) MarshalJSON() ([]byte, error) {
	if n == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(n))
}

// list is Stripe's list envelope.
type list struct {
	Object  string `json:"object"`
	Data    []any  `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

func newList(url string, data []any) list {
	if data == nil {
		data = []any{}
	}
	return list{Object: "list", Data: data, HasMore: false, URL: url}
}

// params are a request's decoded parameters. Like Stripe's Rack parser, a
// key sent twice keeps its last value, and on POST the query string is
// merged with the body, the body winning.
type params struct {
	v    map[string]string
	keys []string // sorted, for messages and fingerprints
}

func newParams(query, body url.Values) params {
	p := params{v: map[string]string{}}
	for _, src := range []url.Values{query, body} {
		for k, vs := range src {
			if len(vs) > 0 {
				p.v[k] = vs[len(vs)-1]
			}
		}
	}
	for k := range p.v {
		p.keys = append(p.keys, k)
	}
	sort.Strings(p.keys)
	return p
}

// fingerprint identifies the parameters for idempotency comparisons.
func (p params) fingerprint() string {
	var b strings.Builder
	for _, k := range p.keys {
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.v[k]))
		b.WriteByte('&')
	}
	return b.String()
}

// allow refuses any parameter the endpoint does not model. Stripe refuses
// unknown parameters too; fakestripe also refuses real ones it does not
// model, so that a test never passes on behaviour that was silently
// ignored. An allowed name "x[]" admits "x[0]", "x[1]"...; "metadata"
// admits "metadata" and every "metadata[key]".
func (p params) allow(names ...string) *apiError {
	for _, k := range p.keys {
		if allowed(k, names) {
			continue
		}
		if k == "expand" || strings.HasPrefix(k, "expand[") {
			return invalid(k, "parameter_unknown", "Received unknown parameter: %s (fakestripe does not model expand)", k)
		}
		return invalid(k, "parameter_unknown", "Received unknown parameter: %s (fakestripe models only: %s)", k, strings.Join(names, ", "))
	}
	return nil
}

var indexed = regexp.MustCompile(`^\[[0-9]+\]$`)

func allowed(k string, names []string) bool {
	for _, n := range names {
		switch {
		case k == n:
			return true
		case n == "metadata" && strings.HasPrefix(k, "metadata[") && strings.HasSuffix(k, "]") && len(k) > len("metadata[]"):
			return true
		case strings.HasSuffix(n, "[]") && strings.HasPrefix(k, strings.TrimSuffix(n, "[]")) && indexed.MatchString(k[len(n)-2:]):
			return true
		}
	}
	return false
}

func (p params) has(k string) bool { _, ok := p.v[k]; return ok }

func (p params) str(k string) string { return p.v[k] }

func (p params) required(k string) (string, *apiError) {
	v, ok := p.v[k]
	if !ok {
		return "", invalid(k, "parameter_missing", "Missing required param: %s.", k)
	}
	if v == "" {
		return "", invalid(k, "parameter_invalid_empty", "You passed an empty string for '%s'. We assume empty values are an attempt to unset a parameter; however '%s' cannot be unset. You should remove '%s' from your request or supply a non-empty value.", k, k, k)
	}
	return v, nil
}

// maxAmount is the most Stripe accepts in an amount: eight digits.
const maxAmount = 99999999

var digits = regexp.MustCompile(`^[0-9]+$`)

// amount reads a positive integer amount in minor units. ok is false when
// the parameter is absent.
func (p params) amount(k string) (n int64, ok bool, err *apiError) {
	v, present := p.v[k]
	if !present {
		return 0, false, nil
	}
	if !digits.MatchString(v) {
		return 0, false, invalid(k, "parameter_invalid_integer", "Invalid integer: %s", v)
	}
	n, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil || n > maxAmount {
		return 0, false, invalid(k, "amount_too_large", "Amount must be no more than %d", maxAmount)
	}
	if n < 1 {
		return 0, false, invalid(k, "amount_too_small", "Amount must be at least 1")
	}
	return n, true, nil
}

func (p params) requiredAmount(k string) (int64, *apiError) {
	if _, err := p.required(k); err != nil {
		return 0, err
	}
	n, _, err := p.amount(k)
	return n, err
}

// boolean reads "true" or "false".
func (p params) boolean(k string, def bool) (bool, *apiError) {
	v, ok := p.v[k]
	if !ok {
		return def, nil
	}
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, invalid(k, "parameter_invalid_boolean", "Invalid boolean: %s", v)
}

var currencyCode = regexp.MustCompile(`^[A-Za-z]{3}$`)

// currency reads a three-letter code; Stripe answers it in lower case.
func (p params) currency(k string) (string, *apiError) {
	v, err := p.required(k)
	if err != nil {
		return "", err
	}
	if !currencyCode.MatchString(v) {
		return "", invalid(k, "", "Invalid currency: %s. Stripe currently supports these currencies: usd, eur, ...", strings.ToLower(v))
	}
	return strings.ToLower(v), nil
}

// oneOf reads an enumerated value.
func (p params) oneOf(k, def string, values ...string) (string, *apiError) {
	v, ok := p.v[k]
	if !ok {
		return def, nil
	}
	for _, a := range values {
		if v == a {
			return v, nil
		}
	}
	return "", invalid(k, "", "Invalid %s: must be one of %s", k, strings.Join(values, ", "))
}

// metadata returns the metadata[...] parameters merged into old: an empty
// value deletes a key, and "metadata" sent empty clears all, as on Stripe.
func (p params) metadata(old map[string]string) map[string]string {
	m := map[string]string{}
	if v, ok := p.v["metadata"]; !ok || v != "" {
		for k, v := range old {
			m[k] = v
		}
	}
	for _, k := range p.keys {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") {
			name = strings.TrimSuffix(name, "]")
			if p.v[k] == "" {
				delete(m, name)
			} else {
				m[name] = p.v[k]
			}
		}
	}
	return m
}

// values returns "x[0]", "x[1]"... in order.
func (p params) values(k string) []string {
	var out []string
	for i := 0; ; i++ {
		v, ok := p.v[fmt.Sprintf("%s[%d]", k, i)]
		if !ok {
			return out
		}
		out = append(out, v)
	}
}

// opt returns a nullable parameter value.
func (p params) opt(k string) nullable { return nullable(p.v[k]) }

var (
	apiKey    = regexp.MustCompile(`^(sk|rk)_test_[A-Za-z0-9]+$`)
	liveKey   = regexp.MustCompile(`^(sk|rk)_live_[A-Za-z0-9]+$`)
	accountID = regexp.MustCompile(`^acct_[A-Za-z0-9]+$`)
)

// authenticate checks the Authorization header the way Stripe answers
// stripe-go: Bearer with a secret or restricted key. The key itself is
// never kept or echoed.
func authenticate(h string) *apiError {
	unauthorized := func(msg string) *apiError {
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", message: msg}
	}
	if h == "" {
		return unauthorized("You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.")
	}
	key, ok := strings.CutPrefix(h, "Bearer ")
	switch {
	case !ok:
		return unauthorized("Invalid API Key provided: the Authorization header must be 'Bearer <key>' (fakestripe does not model Basic auth).")
	case liveKey.MatchString(key):
		return unauthorized("Invalid API Key provided: fakestripe accepts test-mode keys only (sk_test_..., rk_test_...).")
	case !apiKey.MatchString(key):
		return unauthorized("Invalid API Key provided.")
	}
	return nil
}
