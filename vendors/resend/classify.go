package resend

import (
	"context"
	"mime"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/keybrake/keybrake/vendors"
)

// The codes of the refusals Classify returns as *vendors.Invalid.
const (
	codeBadMethod      = "keybrake_bad_method"       // not GET, POST, PATCH or DELETE
	codeBadPath        = "keybrake_bad_path"         // upper case in a path: Resend's paths and IDs are lower case
	codeBadID          = "keybrake_bad_id"           // a path ID that is not a UUID
	codeBadContentType = "keybrake_bad_content_type" // a body that is not application/json
	codeQueryOnWrite   = "keybrake_query_on_write"   // a POST, PATCH or DELETE with a query string
	codeUnexpectedBody = "keybrake_unexpected_body"  // a GET or DELETE with a body
	codeBadParams      = "keybrake_bad_params"       // a query string that does not parse strictly
	codeDuplicateParam = "keybrake_duplicate_param"  // a query parameter given twice
	codeBadParamName   = "keybrake_bad_param_name"   // a query or JSON key Keybrake cannot name unambiguously
	codeBadJSON        = "keybrake_bad_json"         // not one strict JSON value
	codeDuplicateKey   = "keybrake_duplicate_key"    // a JSON key twice, or two differing only in case
	codeUnknownParam   = "keybrake_unknown_param"    // a field Keybrake does not know in a body that sends mail
	codeMissingParam   = "keybrake_missing_param"    // from or to absent
	codeBadParam       = "keybrake_bad_param"        // a field of the wrong type or an unreadable value
	codeBadAddress     = "keybrake_bad_address"      // an address Keybrake cannot count as exactly one
	codeBadRecipients  = "keybrake_bad_recipients"   // no to, or more than 50 in one field
	codeBadBatch       = "keybrake_bad_batch"        // a batch that is not an array of 1 to 100 emails
	codeBadHeader      = "keybrake_bad_header"       // Idempotency-Key or x-batch-validation unusable
)

func invalid(code, format string, args ...any) error {
	return vendors.Invalidf(code, format, args...)
}

const jsonType = "application/json"

// Resend's limits, as documented.
const (
	maxRecipients = 50  // addresses in to; Keybrake holds cc, bcc and reply_to to the same
	maxBatch      = 100 // emails in one batch
	maxIdemKey    = 256 // characters in an Idempotency-Key
)

// Batch validation modes (the x-batch-validation header).
const (
	batchStrict     = "strict"     // Resend sends all or none; the default
	batchPermissive = "permissive" // Resend sends the valid emails and lists the others in errors
)

// queryKeyRE is a query parameter name as resend-go writes them (limit,
// after, before). Brackets are refused: a qs-style parser would read
// "a[b]=1" as an object.
var queryKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// state is what Settle needs to know of a batch beyond the Call itself.
type state struct {
	items      int64   // emails in the batch
	recipients []int64 // of each email, in order
}

// Classify reads a Resend request strictly and says what it does. It
// refuses, with a *vendors.Invalid, anything Resend might read otherwise
// than Keybrake does: see the package documentation for the rules. It is
// pure and safe for concurrent use.
func (Vendor) Classify(r *vendors.Request) (*vendors.Call, error) {
	if err := checkPath(r.Method, r.Path); err != nil {
		return nil, err
	}
	e, ids, err := match(r.Method, r.Path)
	if err != nil {
		return nil, err
	}
	k, op := kindNone, ""
	if e != nil {
		k, op = e.kind, e.op
	}
	idem, err := idempotencyKey(r.Header, k)
	if err != nil {
		return nil, err
	}
	validation, err := batchValidation(r.Header, k)
	if err != nil {
		return nil, err
	}
	query, body, err := readRequest(r, k)
	if err != nil {
		return nil, err
	}
	c := &vendors.Call{Operation: op, IdempotencyKey: idem, Params: query}
	switch k {
	case kindEmailSend:
		err = classifyEmail(c, body)
	case kindEmailBatch:
		err = classifyBatch(c, body, validation)
	case kindBroadcastSend:
		err = classifyBroadcastSend(c, body, ids[0])
	case kindBroadcastCreate:
		err = classifyBroadcastCreate(c, body)
	default:
		err = classifyOther(c, body)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Resolve has nothing to fetch: a Resend call carries all Keybrake needs,
// and has no customers (the Need changes nothing). A call that asks for
// a lookup did not come from Classify and is refused.
func (Vendor) Resolve(_ context.Context, c *vendors.Call, _ vendors.Need, _ vendors.Getter, _ vendors.Facts) ([]vendors.Fact, error) {
	if c.Lookup != "" {
		return nil, invalid(codeBadParam, "Resend calls need no lookup, got %q", c.Lookup)
	}
	if c.SubjectLookup != "" {
		return nil, invalid(codeBadParam, "Resend calls need no lookup, got %q", c.SubjectLookup)
	}
	return nil, nil
}

// checkPath refuses methods resend-go does not use, and paths with
// anything but lower-case letters, digits, "-", "_", "." and "/": every
// Resend path and ID is written so, and a server that routes
// case-insensitively would read /EMAILS as /emails while Keybrake would
// not.
func checkPath(method, path string) error {
	switch method {
	case "GET", "POST", "PATCH", "DELETE":
	default:
		return invalid(codeBadMethod, "Resend's API uses GET, POST, PATCH and DELETE, not %s", vendors.Truncate(method, vendors.QuoteLimit))
	}
	if !strings.HasPrefix(path, "/") {
		return invalid(codeBadPath, "path %q does not start with /", vendors.Truncate(path, vendors.QuoteLimit))
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c >= 'A' && c <= 'Z' {
			return invalid(codeBadPath, "path %q has upper case; Resend's paths and IDs are lower case", vendors.Truncate(path, vendors.QuoteLimit))
		}
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/') {
			return invalid(codeBadPath, "path %q holds %q; Resend's paths hold only lower-case letters, digits, '-', '_', '.' and '/'", vendors.Truncate(path, vendors.QuoteLimit), c)
		}
	}
	return nil
}

// idempotencyKey returns the Idempotency-Key header. Resend honours it on
// POST /emails and POST /emails/batch only: anywhere else Keybrake would
// count a retry as a replay while Resend acted twice, so it is refused.
func idempotencyKey(h map[string][]string, k kind) (string, error) {
	vs := headerValues(h, "Idempotency-Key")
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", invalid(codeBadHeader, "Idempotency-Key appears %d times", len(vs))
	case k != kindEmailSend && k != kindEmailBatch:
		return "", invalid(codeBadHeader, "Resend honours Idempotency-Key only on POST /emails and /emails/batch; elsewhere a retry would act twice")
	}
	v := vs[0]
	if v == "" || len(v) > maxIdemKey {
		return "", invalid(codeBadHeader, "Idempotency-Key must have 1 to %d characters, has %d", maxIdemKey, len(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7E {
			return "", invalid(codeBadHeader, "Idempotency-Key holds a byte %#x outside printable ASCII", v[i])
		}
	}
	if v[0] == ' ' || v[len(v)-1] == ' ' {
		// A server trims them; Keybrake would hold two keys for Resend's one.
		return "", invalid(codeBadHeader, "Idempotency-Key starts or ends with a space")
	}
	return v, nil
}

// batchValidation returns the x-batch-validation mode of a batch, strict
// when absent as at Resend.
func batchValidation(h map[string][]string, k kind) (string, error) {
	vs := headerValues(h, "X-Batch-Validation")
	switch {
	case len(vs) == 0:
		return batchStrict, nil
	case len(vs) > 1:
		return "", invalid(codeBadHeader, "x-batch-validation appears %d times", len(vs))
	case k != kindEmailBatch:
		return "", invalid(codeBadHeader, "x-batch-validation applies only to POST /emails/batch")
	case vs[0] != batchStrict && vs[0] != batchPermissive:
		return "", invalid(codeBadHeader, "x-batch-validation %q is neither strict nor permissive", vendors.Truncate(vs[0], vendors.QuoteLimit))
	}
	return vs[0], nil
}

// readRequest returns the query parameters of a GET and the JSON body of a
// POST or PATCH (nil when there is none), and refuses the rest: a body on
// a GET or DELETE, a query on a write, a body that is not JSON.
func readRequest(r *vendors.Request, k kind) (url.Values, *jsonValue, error) {
	switch r.Method {
	case "GET", "DELETE":
		if len(r.Body) > 0 {
			return nil, nil, invalid(codeUnexpectedBody, "a %s carries a body; resend-go sends none", r.Method)
		}
		if r.Method == "DELETE" && r.Query != "" {
			return nil, nil, invalid(codeQueryOnWrite, "a DELETE carries a query string; resend-go sends none")
		}
		q, err := parseQuery(r.Query)
		return q, nil, err
	}
	if r.Query != "" {
		return nil, nil, invalid(codeQueryOnWrite, "a %s carries a query string; Keybrake reads a write's parameters from its JSON body only", r.Method)
	}
	ct := headerValues(r.Header, "Content-Type")
	if len(r.Body) == 0 && k != kindEmailSend && k != kindEmailBatch {
		// resend-go sends bodiless POSTs (cancel, verify) without a
		// Content-Type; one that names JSON is harmless.
		if len(ct) > 1 || len(ct) == 1 && !isJSONType(ct[0]) {
			return nil, nil, invalid(codeBadContentType, "Content-Type %q on an empty body; Keybrake reads only %s", vendors.Truncate(strings.Join(ct, ", "), vendors.QuoteLimit), jsonType)
		}
		return url.Values{}, nil, nil
	}
	if len(ct) != 1 || !isJSONType(ct[0]) {
		return nil, nil, invalid(codeBadContentType, "want one Content-Type %s, got %q", jsonType, vendors.Truncate(strings.Join(ct, ", "), vendors.QuoteLimit))
	}
	v, err := parseJSON(r.Body)
	if err != nil {
		return nil, nil, err
	}
	return url.Values{}, v, nil
}

// isJSONType accepts application/json, as resend-go sends it, and the same
// with the single parameter charset=utf-8: JSON is UTF-8 anyway.
func isJSONType(v string) bool {
	if v == jsonType {
		return true
	}
	mt, ps, err := mime.ParseMediaType(v)
	return err == nil && mt == jsonType && len(ps) == 1 && strings.EqualFold(ps["charset"], "utf-8")
}

// parseQuery decodes a query string strictly: vendors.FormPairs refuses
// empty pairs, pairs without "=", ";" and bad escapes; parseQuery, names
// resend-go would not write and repeated names.
func parseQuery(raw string) (url.Values, error) {
	params := url.Values{}
	err := vendors.FormPairs(raw, func(key, val string) error {
		if !queryKeyRE.MatchString(key) {
			return invalid(codeBadParamName, "query name %q is not a lower-case name", vendors.Truncate(key, vendors.QuoteLimit))
		}
		if _, dup := params[key]; dup {
			return invalid(codeDuplicateParam, "query parameter %q appears more than once", key)
		}
		params[key] = []string{val}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return params, nil
}

// classifyOther reads a call that sends no mail: its JSON body, when it
// has one, must be an object, and is flattened into Params for policy
// conditions. The audit log keeps the query (pagination) and the names of
// the body's fields, not their values: contacts and domains are personal
// data.
func classifyOther(c *vendors.Call, body *jsonValue) error {
	if body != nil {
		if body.kind != jsonObject {
			return invalid(codeBadParam, "the body is %s; Resend takes a JSON object here", body.kind)
		}
		if err := flatten(c.Params, "", body); err != nil {
			return err
		}
	}
	c.Audit = auditQuery(c.Params, body)
	if body != nil && len(body.members) > 0 {
		c.Audit["fields"] = fieldNames(body)
	}
	return nil
}

// classifyBroadcastSend reads POST /broadcasts/{id}/send. resend-go sends
// {"broadcast_id": id, "scheduled_at": ...}; the spec, {"scheduled_at"}.
// How many emails a broadcast sends depends on its audience, which
// Keybrake does not know: Priced.Quantity is -1 and the policy must say
// what a broadcast counts.
func classifyBroadcastSend(c *vendors.Call, body *jsonValue, id string) error {
	c.Audit = map[string]string{"broadcast": id}
	if body != nil {
		if body.kind != jsonObject {
			return invalid(codeBadParam, "the body is %s; Resend takes a JSON object here", body.kind)
		}
		for _, m := range body.members {
			switch m.key {
			case "broadcast_id":
				if m.value.kind != jsonString {
					return invalid(codeBadParam, "broadcast_id is %s, not a string", m.value.kind)
				}
				if m.value.text != "" && m.value.text != id {
					return invalid(codeBadParam, "broadcast_id %q is not the broadcast in the path, %s", vendors.Truncate(m.value.text, vendors.QuoteLimit), id)
				}
			case "scheduled_at":
				if m.value.kind != jsonString {
					return invalid(codeBadParam, "scheduled_at is %s, not a string", m.value.kind)
				}
				if m.value.text != "" {
					c.Audit["scheduled_at"] = vendors.RedactText(vendors.Truncate(m.value.text, vendors.QuoteLimit))
				}
			default:
				return invalid(codeUnknownParam, "field %q is not one Keybrake knows in a broadcast send", vendors.Truncate(m.key, vendors.QuoteLimit))
			}
		}
		if err := flatten(c.Params, "", body); err != nil {
			return err
		}
	}
	priceBroadcast(c)
	return nil
}

// classifyBroadcastCreate reads POST /broadcasts, which sends the
// broadcast at once when "send" is true. Only a JSON boolean is accepted
// there: JavaScript would take the string "false" as true.
func classifyBroadcastCreate(c *vendors.Call, body *jsonValue) error {
	if err := classifyOther(c, body); err != nil {
		return err
	}
	if body == nil {
		return nil
	}
	send := body.member("send")
	if send == nil {
		return nil
	}
	if send.kind != jsonBool {
		return invalid(codeBadParam, "send is %s; Keybrake reads only true or false", send.kind)
	}
	c.Audit["send"] = send.text
	if send.text == "true" {
		priceBroadcast(c)
	}
	return nil
}

func priceBroadcast(c *vendors.Call) {
	c.MovesMoney = true
	// Unknown, like the quantity: the transport counts what the policy
	// says a broadcast sends (broadcast_emails).
	c.Count = -1
	c.Priced = &vendors.Priced{Item: "broadcast", Quantity: -1}
	c.AudienceUnknown = true // the audience is saved at Resend, not in the request
}

// flatten writes v into params under key: an object's members as
// key[name], an array's items as key[0], key[1]..., strings as they are,
// numbers as written, booleans as true or false. A null writes nothing, so
// a policy condition on that name fails as if it were absent. Member names
// that are empty or hold "[" or "]" are refused: "a[b]" must name one
// thing only.
func flatten(params map[string][]string, key string, v *jsonValue) error {
	switch v.kind {
	case jsonObject:
		for _, m := range v.members {
			if m.key == "" || strings.ContainsAny(m.key, "[]") {
				return invalid(codeBadParamName, "JSON key %q is empty or holds a bracket", vendors.Truncate(m.key, vendors.QuoteLimit))
			}
			if err := flatten(params, sub(key, m.key), m.value); err != nil {
				return err
			}
		}
	case jsonArray:
		for i, item := range v.items {
			if err := flatten(params, key+"["+strconv.Itoa(i)+"]", item); err != nil {
				return err
			}
		}
	case jsonNull:
	default:
		params[key] = []string{v.text}
	}
	return nil
}

// sub names member name under key: "name" at the top, key[name] below.
func sub(key, name string) string {
	if key == "" {
		return name
	}
	return key + "[" + name + "]"
}

// auditQuery keeps what vendors.RedactParam allows of the query parameters.
func auditQuery(q url.Values, body *jsonValue) map[string]string {
	out := make(map[string]string)
	if body != nil {
		// The parameters came from the body; the audit log keeps none.
		return out
	}
	for k, vs := range q {
		if v, keep := vendors.RedactParam(k, vs[0]); keep {
			out[k] = v
		}
	}
	return out
}

// fieldNames lists an object's member names, sorted, for the audit log.
func fieldNames(v *jsonValue) string {
	names := make([]string, 0, len(v.members))
	for _, m := range v.members {
		names = append(names, vendors.RedactText(vendors.Truncate(m.key, vendors.QuoteLimit)))
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

func headerValues(h map[string][]string, name string) []string {
	// http.Header canonicalises on Set; a hand-built map might not.
	var out []string
	for k, vs := range h {
		if strings.EqualFold(k, name) {
			out = append(out, vs...)
		}
	}
	return out
}
