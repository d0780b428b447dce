package stripe

import (
	"mime"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// The codes of the refusals Classify and Resolve return as *vendors.Invalid.
const (
	codeBadMethod      = "keybrake_bad_method"       // not GET, POST or DELETE
	codeWrongHost      = "keybrake_wrong_host"       // an API path on the Connect host, and so on
	codeBadContentType = "keybrake_bad_content_type" // not application/x-www-form-urlencoded
	codeQueryOnWrite   = "keybrake_query_on_write"   // Stripe merges a write's query into its body
	codeBodyOnGet      = "keybrake_body_on_get"      // a GET carries its parameters in the query
	codeBadParams      = "keybrake_bad_params"       // the form does not parse strictly
	codeDuplicateParam = "keybrake_duplicate_param"  // Stripe keeps the last, url.Values.Get the first
	codeBadParamName   = "keybrake_bad_param_name"   // a key Stripe's parser might read differently
	codeBadParam       = "keybrake_bad_param"        // a value Keybrake relies on is not one it can read
	codeMissingParam   = "keybrake_missing_param"    // a parameter the amount depends on is absent
	codeBadAmount      = "keybrake_bad_amount"       // an amount that is not a plain integer of minor units
	codeBadCurrency    = "keybrake_bad_currency"     // an unknown currency
	codeBadID          = "keybrake_bad_id"           // an ID without its kind's prefix
	codeBadHeader      = "keybrake_bad_header"       // Stripe-Account or Idempotency-Key unreadable
	codeAmountUnknown  = "keybrake_amount_unknown"   // the request does not say how much it moves
)

func invalid(code, format string, args ...any) error {
	return vendors.Invalidf(code, format, args...)
}

const formType = "application/x-www-form-urlencoded"

// decimalRE is a *_decimal amount: minor units with up to 12 decimals.
var decimalRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?$`)

// validKey reports whether key is a parameter name as stripe-go writes
// it, ^[a-z0-9_]+(\[[^\[\]]*\])*$: a lower-case name and bracketed
// sub-keys. It rules out "amount " (from "amount+"), stray brackets and
// every other shape a Rack-style parser might read differently from Go.
// Written out rather than an expression: every parameter of every call
// passes here.
func validKey(key string) bool {
	i := 0
	for i < len(key) && (key[i] >= 'a' && key[i] <= 'z' || key[i] >= '0' && key[i] <= '9' || key[i] == '_') {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(key) {
		if key[i] != '[' {
			return false
		}
		end := strings.IndexAny(key[i+1:], "[]")
		if end < 0 || key[i+1+end] != ']' {
			return false
		}
		i += end + 2
	}
	return true
}

// isAmount reports whether v is Stripe's integer amount,
// ^(0|[1-9][0-9]{0,7})$: at most 8 digits, no sign, no leading zero
// (strconv.ParseInt would accept "+100" and "0100").
func isAmount(v string) bool {
	if len(v) == 0 || len(v) > 8 || v[0] == '0' && len(v) > 1 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// Classify reads a Stripe request strictly and says what it does. It
// refuses, with an *vendors.Invalid, anything Stripe might read otherwise
// than Keybrake does: see the package documentation for the rules.
func (Vendor) Classify(r *vendors.Request) (*vendors.Call, error) {
	if err := checkHost(r.Host, r.Path); err != nil {
		return nil, err
	}
	hs := readHeaders(r.Header)
	raw, err := rawParams(r, hs.contentType)
	if err != nil {
		return nil, err
	}
	params, keys, err := parseParams(raw)
	if err != nil {
		return nil, err
	}
	if err := checkParams(params, keys); err != nil {
		return nil, err
	}
	account, err := singleHeader("Stripe-Account", hs.account)
	if err != nil {
		return nil, err
	}
	if account != "" && !idPatterns["account"].MatchString(account) {
		return nil, invalid(codeBadHeader, "Stripe-Account %q is not an account ID (acct_...)", account)
	}
	idem, err := singleHeader("Idempotency-Key", hs.idempotencyKey)
	if err != nil {
		return nil, err
	}
	if len(idem) > 255 {
		return nil, invalid(codeBadHeader, "Idempotency-Key is longer than Stripe's 255 characters")
	}

	col, id, err := collectionID(r.Path)
	if err != nil {
		return nil, err
	}
	e, vars, err := match(r.Method, r.Path)
	if err != nil {
		return nil, err
	}
	c := &vendors.Call{
		Params:         params,
		Audit:          auditParams(params),
		Customer:       params.Get("customer"),
		Account:        account,
		IdempotencyKey: idem,
		Uncapped:       uncapped(r.Method, r.Path),
	}
	// Anything under /v1/customers/{id}, listed or not, touches that
	// customer.
	if col == "customers" && id != "" {
		if c.Customer != "" && c.Customer != id {
			return nil, invalid(codeBadParam, "the path names customer %s, the parameters %s", id, c.Customer)
		}
		c.Customer = id
	}
	if e == nil {
		scope(c, nil, r.Method, col, id, nil)
		return c, nil
	}
	c.Operation = e.op
	if e.kind != kindNone {
		c.MovesMoney = true
		c.Count = 1
		if err := price(c, form{params, keys}, e.kind, vars); err != nil {
			return nil, err
		}
	}
	scope(c, e, r.Method, col, id, vars)
	return c, nil
}

// checkHost keeps each backend's paths on its own host. A configured
// endpoint (a mock, a proxy) serves every path and is not checked.
func checkHost(host, path string) error {
	api := strings.HasPrefix(path, "/v1/")
	switch host {
	case APIHost:
		if !api {
			return invalid(codeWrongHost, "%s serves /v1/ paths, not %s", host, path)
		}
	case ConnectHost:
		if !strings.HasPrefix(path, "/oauth/") {
			return invalid(codeWrongHost, "%s serves /oauth/ paths, not %s", host, path)
		}
	case UploadsHost:
		if path != "/v1/files" && !strings.HasPrefix(path, "/v1/files/") {
			return invalid(codeWrongHost, "%s serves /v1/files, not %s", host, path)
		}
	}
	return nil
}

// rawParams returns the encoded parameters of a request: the query of a
// GET, the form body of a write.
func rawParams(r *vendors.Request, contentType []string) (string, error) {
	switch r.Method {
	case "GET":
		if len(r.Body) > 0 {
			return "", invalid(codeBodyOnGet, "a GET request carries a body; Stripe reads GET parameters from the query only")
		}
		if len(contentType) > 0 {
			// stripe-go labels its GETs as forms too.
			if err := checkContentType(contentType); err != nil {
				return "", err
			}
		}
		return r.Query, nil
	case "POST", "DELETE":
		if r.Query != "" {
			return "", invalid(codeQueryOnWrite, "a %s carries a query string; Stripe merges it into the body parameters, so Keybrake refuses it", r.Method)
		}
		if err := checkContentType(contentType); err != nil {
			return "", err
		}
		return string(r.Body), nil
	}
	return "", invalid(codeBadMethod, "Stripe's API uses GET, POST and DELETE, not %s", r.Method)
}

// checkContentType accepts exactly one Content-Type, the form type, with at
// most a charset of utf-8: percent-encoded UTF-8 is what Stripe decodes, so
// that one parameter changes nothing. Any other parameter or charset, a
// multipart body (file uploads included) or JSON is refused.
func checkContentType(values []string) error {
	if len(values) != 1 {
		return invalid(codeBadContentType, "want one Content-Type %s, got %d", formType, len(values))
	}
	v := values[0]
	if v == formType {
		return nil
	}
	mt, ps, err := mime.ParseMediaType(v)
	if err != nil || mt != formType || len(ps) != 1 || !strings.EqualFold(ps["charset"], "utf-8") {
		return invalid(codeBadContentType, "Content-Type %q: Keybrake reads only %s (optionally ; charset=utf-8)", v, formType)
	}
	return nil
}

// parseParams decodes an encoded form strictly: vendors.FormPairs refuses
// empty pairs, pairs without "=", ";" and bad escapes; parseParams, invalid
// names and repeated names. keys are the names, in order.
func parseParams(raw string) (params url.Values, keys []string, err error) {
	n := strings.Count(raw, "&") + 1
	params = make(url.Values, n)
	// One array holds every name and then every value, each name's slice
	// of values a window of it: one allocation for the form rather than
	// one a parameter.
	both := make([]string, 2*n)
	keys, values := both[:0:n], both[n:n:2*n]
	err = vendors.FormPairs(raw, func(key, val string) error {
		if key == "" {
			return invalid(codeBadParamName, "a parameter has an empty name")
		}
		if !validKey(key) {
			return invalid(codeBadParamName, "parameter name %q is not name[sub]... in lower case", vendors.Truncate(key, vendors.QuoteLimit))
		}
		if _, dup := params[key]; dup {
			return invalid(codeDuplicateParam, "parameter %q appears more than once; Stripe would keep the last", key)
		}
		values = append(values, val)
		params[key] = values[len(values)-1 : len(values) : len(values)]
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(keys)
	return params, keys, nil
}

// form is a request's parameters and their names in order, read once, so
// that no check walks the map again to find a name.
type form struct {
	url.Values
	keys []string
}

// paramName is what a key "a[b][c]" says of itself: its base name a, its
// last name c, whether it has sub-keys, and whether it lies under a
// metadata hash (a name before the last is "metadata"), whose values
// Stripe stores as free text and never reads as money.
type paramName struct {
	base, last string
	nested     bool
	inMetadata bool
}

// readName reads a key's names where they are, without splitting it:
// every parameter of every call is read here.
func readName(key string) paramName {
	base, rest, _ := strings.Cut(key, "[")
	n := paramName{base: base, last: base}
	if rest == "" {
		return n
	}
	n.nested = true
	rest = strings.TrimSuffix(rest, "]")
	for more := true; more; {
		var name string
		name, rest, more = strings.Cut(rest, "][")
		n.inMetadata = n.inMetadata || n.last == "metadata"
		n.last = name
	}
	return n
}

func isIntegerAmount(name string) bool {
	return name == "amount" || strings.HasSuffix(name, "_amount") || name == "amount_to_capture" || name == "quantity"
}

func isDecimalAmount(name string) bool { return strings.HasSuffix(name, "_decimal") }

// sibling returns the key naming name next to key: for
// "line_items[0][price_data][unit_amount]" and "currency",
// "line_items[0][price_data][currency]".
func sibling(key, name string) string {
	if i := strings.LastIndexByte(key, '['); i >= 0 {
		return key[:i] + "[" + name + "]"
	}
	return name
}

// checkParams checks the values of every amount, currency and subject ID,
// wherever they are.
func checkParams(params url.Values, keys []string) error {
	// In key order, so a request with two faults always gets the same
	// refusal.
	for _, key := range keys {
		v := params[key][0]
		n := readName(key)
		if n.inMetadata {
			continue
		}
		name := n.last
		switch {
		case isIntegerAmount(name):
			if !isAmount(v) {
				return invalid(codeBadAmount, "%s=%q is not a whole number of minor units of at most 8 digits", key, vendors.Truncate(v, vendors.QuoteLimit))
			}
			if name == "quantity" {
				continue
			}
			if cv, ok := params[sibling(key, "currency")]; ok {
				if cur, err := money.ParseCurrency(cv[0]); err == nil {
					if err := checkThreeDecimal(key, v, cur); err != nil {
						return err
					}
				}
			}
		case isDecimalAmount(name):
			if !decimalRE.MatchString(v) {
				return invalid(codeBadAmount, "%s=%q is not a plain decimal amount", key, vendors.Truncate(v, vendors.QuoteLimit))
			}
		case name == "currency":
			if _, err := money.ParseCurrency(v); err != nil {
				return invalid(codeBadCurrency, "%s=%q is not a currency Keybrake knows", key, vendors.Truncate(v, vendors.QuoteLimit))
			}
		}
		if re := subjectIDs[n.base]; re != nil {
			if n.nested {
				return invalid(codeBadParam, "%s must be an ID, not a hash (%s)", n.base, key)
			}
			if !re.MatchString(v) {
				return invalid(codeBadID, "%s=%q is not a %s ID (%s)", key, vendors.Truncate(v, vendors.QuoteLimit), key, re)
			}
		}
	}
	return nil
}

// subjectIDs are the top-level parameters Keybrake looks up or reports as
// the call's subject: customer, and those naming an object of a customer
// (subjectParams).
var subjectIDs = func() map[string]*idPattern {
	m := map[string]*idPattern{"customer": idPatterns["customer"]}
	for _, sp := range subjectParams {
		m[sp.name] = idPatterns[sp.kind]
	}
	return m
}()

// checkThreeDecimal refuses an amount Stripe would refuse in a currency
// with three decimals, whose last digit must be 0.
func checkThreeDecimal(key, v string, cur money.Currency) error {
	if exp, _ := cur.Exponent(); exp == 3 && !strings.HasSuffix(v, "0") {
		return invalid(codeBadAmount, "%s=%s: amounts in %s must end in 0", key, v, cur)
	}
	return nil
}

// singleHeader returns the value of a header that may appear at most once.
func singleHeader(name string, vs []string) (string, error) {
	if len(vs) > 1 {
		return "", invalid(codeBadHeader, "%s appears %d times", name, len(vs))
	}
	if len(vs) == 0 {
		return "", nil
	}
	return vs[0], nil
}

// headers are the request headers Classify reads, each gathered from
// every key that names it in any case: http.Header canonicalises on Set; a
// hand-built map might not.
type headers struct {
	contentType, account, idempotencyKey []string
}

// readHeaders reads them in one pass over h, not one a name: a pass costs
// as much as the rest of reading the headers.
func readHeaders(h map[string][]string) headers {
	var hs headers
	for k, vs := range h {
		switch {
		case strings.EqualFold(k, "Content-Type"):
			hs.contentType = appendValues(hs.contentType, vs)
		case strings.EqualFold(k, "Stripe-Account"):
			hs.account = appendValues(hs.account, vs)
		case strings.EqualFold(k, "Idempotency-Key"):
			hs.idempotencyKey = appendValues(hs.idempotencyKey, vs)
		}
	}
	return hs
}

// appendValues returns vs itself for a header's first key, as in an
// http.Header, where there is only one: no copy for each call. A second
// key's values go in a new array, never into the header's own.
func appendValues(out, vs []string) []string {
	if out == nil {
		return vs
	}
	return append(out[:len(out):len(out)], vs...)
}

// auditParams keeps what vendors.RedactParam allows of every parameter.
func auditParams(params url.Values) map[string]string {
	if len(params) == 0 {
		return nil
	}
	out := make(map[string]string, len(params))
	for k, vs := range params {
		if v, keep := vendors.RedactParam(k, vs[0]); keep {
			// Metadata keys are the caller's free text too.
			out[vendors.RedactText(k)] = v
		}
	}
	return out
}
