package twilio

import (
	"mime"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keybrake/keybrake/vendors"
)

// The codes of the refusals Classify returns as *vendors.Invalid.
const (
	codeBadMethod      = "keybrake_bad_method"          // not GET, POST or DELETE
	codeWrongHost      = "keybrake_wrong_host"          // a Verify path on api.twilio.com, and so on
	codeBadPath        = "keybrake_bad_path"            // a format other than .json, a segment in another case
	codeBadContentType = "keybrake_bad_content_type"    // not exactly application/x-www-form-urlencoded
	codeQueryOnWrite   = "keybrake_query_on_write"      // a query on a POST or DELETE
	codeBodyOnGet      = "keybrake_body_on_get"         // a body on a GET or DELETE
	codeBadParams      = "keybrake_bad_params"          // the form does not parse strictly
	codeDuplicateParam = "keybrake_duplicate_param"     // a scalar given twice, or two names differing in case
	codeBadParamName   = "keybrake_bad_param_name"      // a name twilio-go would never send
	codeUnknownParam   = "keybrake_unknown_param"       // a parameter the create endpoints do not define
	codeBadParam       = "keybrake_bad_param"           // a value Keybrake relies on is not one it can read
	codeMissingParam   = "keybrake_missing_param"       // To on a message or call
	codeBadID          = "keybrake_bad_id"              // a SID of the wrong kind or shape
	codeBadDestination = "keybrake_bad_destination"     // To is not an E.164 phone number
	codeAmountUnknown  = "keybrake_amount_unknown"      // the request does not say how many segments it sends
	codeUnsupported    = "keybrake_unsupported_channel" // WhatsApp and other channel addresses are not priced
)

func invalid(code, format string, args ...any) error {
	return vendors.Invalidf(code, format, args...)
}

const formType = "application/x-www-form-urlencoded"

var (
	// keyRE is a parameter name as twilio-go writes it: a name of
	// letters and digits, dotted parts for nested ones
	// ("Config.AppId"), and a final < or > for range filters
	// ("DateSent<"). It rules out "To " (from "To+"), brackets, and
	// every other shape a server's parser might read differently.
	keyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*[<>]?$`)
	// e164RE is a phone number in E.164: "+", a country code that does
	// not start with 0, and at most 15 digits in all.
	e164RE = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	// timeLimitRE is a positive whole number of seconds.
	timeLimitRE = regexp.MustCompile(`^[1-9][0-9]{0,8}$`)
	// channelRE is a channel address ("whatsapp:+1...", "messenger:...",
	// "rcs:...") or a SIP or client address of a call.
	channelRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
)

// listParams are the parameters Twilio defines as lists, sent once per
// element (twilio-go: data.Add); any other name given twice is refused.
var listParams = map[string]bool{
	"MediaUrl": true, "PersistentAction": true, // Messages
	"StatusCallbackEvent": true, "RecordingStatusCallbackEvent": true, // Calls, Recordings, Participants
	"ConferenceStatusCallbackEvent": true, "ConferenceRecordingStatusCallbackEvent": true,
	"Permissions": true, // ConnectApps
	// Messaging and Verify.
	"Details.Fields": true, "EventTypes": true, "HelpKeywords": true, "MessageSamples": true,
	"OptInImageUrls": true, "OptInKeywords": true, "OptOutKeywords": true, "TrustProductSid": true,
	"UseCaseCategories": true,
}

// createParams are the parameters twilio-go v1.31 sends to the priced
// endpoints (CreateMessageParams, CreateCallParams). Any other is refused
// there: a parameter Twilio added later may change what a call costs.
var createParams = map[kind]map[string]bool{
	kindMessage: set("To", "StatusCallback", "ApplicationSid", "MaxPrice", "ProvideFeedback", "Attempt",
		"ValidityPeriod", "ForceDelivery", "ContentRetention", "AddressRetention", "SmartEncoded",
		"PersistentAction", "TrafficType", "ShortenUrls", "ScheduleType", "SendAt", "SendAsMms",
		"ContentVariables", "RiskCheck", "From", "FallbackFrom", "MessagingServiceSid", "Body",
		"MediaUrl", "ContentSid"),
	kindCall: set("To", "From", "Method", "FallbackUrl", "FallbackMethod", "StatusCallback",
		"StatusCallbackEvent", "StatusCallbackMethod", "SendDigits", "Timeout", "Record",
		"RecordingChannels", "RecordingStatusCallback", "RecordingStatusCallbackMethod",
		"RecordingConfigurationId", "SipAuthUsername", "SipAuthPassword", "MachineDetection",
		"MachineDetectionTimeout", "RecordingStatusCallbackEvent", "Trim", "CallerId",
		"MachineDetectionSpeechThreshold", "MachineDetectionSpeechEndThreshold",
		"MachineDetectionSilenceTimeout", "AsyncAmd", "AsyncAmdStatusCallback",
		"AsyncAmdStatusCallbackMethod", "Passports", "Byoc", "CallReason", "CallToken",
		"RecordingTrack", "TimeLimit", "ClientNotificationUrl", "Url", "Twiml", "ApplicationSid"),
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Classify reads a Twilio request strictly and says what it does. It
// refuses, with an *vendors.Invalid, anything Twilio might read otherwise
// than Keybrake does: see the package documentation for the rules.
func (Vendor) Classify(r *vendors.Request) (*vendors.Call, error) {
	if err := checkHost(r.Host, r.Path); err != nil {
		return nil, err
	}
	raw, err := rawParams(r)
	if err != nil {
		return nil, err
	}
	params, err := parseParams(raw)
	if err != nil {
		return nil, err
	}
	if err := checkPath(r.Path); err != nil {
		return nil, err
	}
	c := &vendors.Call{Params: params, Account: pathAccount(r.Path)}
	e := match(r.Method, r.Path)
	if e != nil {
		c.Operation = e.op
	}
	var body *bodyFacts
	switch {
	case e == nil:
	case e.kind == kindMessage:
		if body, err = priceMessage(c, params); err != nil {
			return nil, err
		}
	case e.kind == kindCall:
		if err := priceCall(c, params); err != nil {
			return nil, err
		}
	case e.kind == kindVerification:
		c.Count = 1 // one message sent, at Verify's price, which Keybrake does not count
	}
	c.Audit = auditParams(params, body)
	return c, nil
}

// pathAccount is the Account SID of a /2010-04-01/Accounts/{sid} path,
// listed in the endpoint table or not; checkPath has checked it.
func pathAccount(path string) string {
	segs := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 4)
	if len(segs) < 3 || segs[0] != "2010-04-01" || segs[1] != "Accounts" {
		return ""
	}
	return strings.TrimSuffix(segs[2], ".json")
}

// checkHost keeps each product's paths on its own hosts. A configured
// endpoint (a mock, a proxy) serves every path and is not checked.
func checkHost(host, path string) error {
	switch hostProduct[host] {
	case "api":
		if !strings.HasPrefix(path, "/2010-04-01/") {
			return invalid(codeWrongHost, "%s serves /2010-04-01/ paths, not %s", host, path)
		}
	case "messaging":
		if !strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, "/v2/") && !strings.HasPrefix(path, "/v3/") {
			return invalid(codeWrongHost, "%s serves /v1/, /v2/ and /v3/ paths, not %s", host, path)
		}
	case "verify":
		if !strings.HasPrefix(path, "/v2/") {
			return invalid(codeWrongHost, "%s serves /v2/ paths, not %s", host, path)
		}
	}
	return nil
}

// rawParams returns the encoded parameters of a request: the query of a
// GET, the form body of a POST. A DELETE carries none: twilio-go would put
// them in the query, and none of the DELETEs it sends to these products
// has any, so a query on a DELETE is refused like one on a POST.
func rawParams(r *vendors.Request) (string, error) {
	switch r.Method {
	case "GET", "DELETE":
		if len(r.Body) > 0 {
			return "", invalid(codeBodyOnGet, "a %s carries a body; twilio-go sends none", r.Method)
		}
		if r.Method == "DELETE" && r.Query != "" {
			return "", invalid(codeQueryOnWrite, "a DELETE carries a query string; twilio-go sends none to these products")
		}
		if ct := headerValues(r.Header, "Content-Type"); len(ct) > 0 {
			// twilio-go labels every request as a form.
			if err := checkContentType(ct); err != nil {
				return "", err
			}
		}
		return r.Query, nil
	case "POST":
		if r.Query != "" {
			return "", invalid(codeQueryOnWrite, "a POST carries a query string; Keybrake reads a POST's parameters from its body only, so it refuses one a server might merge")
		}
		if err := checkContentType(headerValues(r.Header, "Content-Type")); err != nil {
			return "", err
		}
		return string(r.Body), nil
	}
	return "", invalid(codeBadMethod, "Twilio's API, Messaging and Verify use GET, POST and DELETE, not %s", r.Method)
}

// checkContentType accepts exactly one Content-Type, exactly the form type
// as twilio-go sends it: no parameters, no JSON (the few Messaging and
// Verify endpoints twilio-go sends JSON to are refused), no multipart.
func checkContentType(values []string) error {
	if len(values) != 1 || values[0] != formType {
		got := strings.Join(values, ", ")
		if mt, _, err := mime.ParseMediaType(got); err == nil && mt == "application/json" {
			return invalid(codeBadContentType, "Content-Type %q: Keybrake reads only %s; Twilio's JSON endpoints are not supported", got, formType)
		}
		return invalid(codeBadContentType, "want one Content-Type %s, got %q", formType, got)
	}
	return nil
}

// parseParams decodes an encoded form strictly: vendors.FormPairs refuses
// empty pairs, pairs without "=", ";" and bad escapes; parseParams,
// invalid UTF-8, invalid names, a name given twice unless Twilio defines
// it as a list, and two names that differ only in case.
func parseParams(raw string) (url.Values, error) {
	params := url.Values{}
	folded := map[string]string{}
	err := vendors.FormPairs(raw, func(key, val string) error {
		if !keyRE.MatchString(key) {
			return invalid(codeBadParamName, "parameter name %q is not one twilio-go sends (letters and digits, dotted parts, a final < or >)", vendors.Truncate(key, vendors.QuoteLimit))
		}
		if !utf8.ValidString(val) {
			return invalid(codeBadParams, "parameter %q is not valid UTF-8", key)
		}
		lower := strings.ToLower(key)
		if prev, dup := folded[lower]; dup {
			if prev != key {
				return invalid(codeDuplicateParam, "parameters %q and %q differ only in case; Twilio might read either", prev, key)
			}
			if !listParams[key] {
				return invalid(codeDuplicateParam, "parameter %q appears more than once; only Twilio's list parameters may", key)
			}
		}
		folded[lower] = key
		params[key] = append(params[key], val)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return params, nil
}

// checkKnown refuses a parameter the priced endpoint does not define.
func checkKnown(k kind, params url.Values) error {
	known := createParams[k]
	for _, key := range vendors.SortedKeys(params) {
		if !known[key] {
			return invalid(codeUnknownParam, "parameter %q is not one twilio-go sends to this endpoint; it might change what the call costs", vendors.Truncate(key, vendors.QuoteLimit))
		}
	}
	return nil
}

// bodyFacts is what the audit keeps of a message's Body instead of its
// text.
type bodyFacts struct {
	chars    int
	segments int
	encoding string
}

// priceMessage prices messages.create: an MMS is one unit of "mms", an SMS
// as many units of "sms" as its body has segments, both priced by To.
func priceMessage(c *vendors.Call, p url.Values) (*bodyFacts, error) {
	if err := checkKnown(kindMessage, p); err != nil {
		return nil, err
	}
	to, err := destination(p)
	if err != nil {
		return nil, err
	}
	if from := p.Get("From"); channelRE.MatchString(from) {
		return nil, invalid(codeUnsupported, "From %q is a channel address; Keybrake prices SMS and MMS only", vendors.Truncate(from, vendors.QuoteLimit))
	}
	subjects(c, to, p)
	if _, ok := p["ContentSid"]; ok {
		return nil, invalid(codeAmountUnknown, "a ContentSid message is built from a template Keybrake cannot see, so its segments are unknown")
	}
	if shorten, err := boolParam(p, "ShortenUrls"); err != nil {
		return nil, err
	} else if shorten {
		return nil, invalid(codeAmountUnknown, "ShortenUrls=true rewrites the body's links, so its segments are unknown")
	}
	asMMS, err := boolParam(p, "SendAsMms")
	if err != nil {
		return nil, err
	}
	media := p["MediaUrl"]
	for _, m := range media {
		if m == "" {
			return nil, invalid(codeBadParam, "an empty MediaUrl: Keybrake cannot tell whether Twilio sends an MMS")
		}
	}
	var body *bodyFacts
	text := p.Get("Body")
	if text != "" {
		n, enc := Segments(text)
		body = &bodyFacts{chars: utf8.RuneCountInString(text), segments: n, encoding: enc}
	}
	if len(media) > 0 || asMMS {
		// MMS Converter sends an MMS to a carrier that cannot take one as
		// an SMS with a link, billed per segment; Twilio offers MMS in the
		// US and Canada only, so elsewhere the cost is unknown.
		if !strings.HasPrefix(to, "+1") {
			return nil, invalid(codeAmountUnknown, "an MMS to %s: outside +1 Twilio converts it to an SMS with a link, whose segments are unknown", countryHint(to))
		}
		c.MovesMoney, c.Count = true, 1
		c.Priced = &vendors.Priced{Item: "mms", Destination: to, Quantity: 1}
		return body, nil
	}
	if body == nil {
		return nil, invalid(codeAmountUnknown, "a message without Body or MediaUrl: its segments are unknown")
	}
	c.MovesMoney, c.Count = true, int64(body.segments)
	c.Priced = &vendors.Priced{Item: "sms", Destination: to, Quantity: int64(body.segments)}
	return body, nil
}

// priceCall prices calls.create: one unit of "call_minute" per started
// minute of TimeLimit, priced by To; unbounded (-1) without a TimeLimit.
func priceCall(c *vendors.Call, p url.Values) error {
	if err := checkKnown(kindCall, p); err != nil {
		return err
	}
	to, err := destination(p)
	if err != nil {
		return err
	}
	subjects(c, to, p)
	minutes := int64(-1)
	if v, ok := p["TimeLimit"]; ok {
		if !timeLimitRE.MatchString(v[0]) {
			return invalid(codeBadParam, "TimeLimit=%q is not a positive whole number of seconds", vendors.Truncate(v[0], vendors.QuoteLimit))
		}
		secs, _ := strconv.ParseInt(v[0], 10, 64)
		minutes = (secs + 59) / 60
	}
	c.MovesMoney, c.Count = true, 1
	c.Priced = &vendors.Priced{Item: "call_minute", Destination: to, Quantity: minutes}
	return nil
}

// subjects records whom a message or call reaches and who sends it, for
// the policy's to and from scopes: the sender is From, or the messaging
// service that picks one.
func subjects(c *vendors.Call, to string, p url.Values) {
	c.Recipients = []string{to}
	for _, name := range []string{"From", "MessagingServiceSid"} {
		if v := p.Get(name); v != "" {
			c.Senders = append(c.Senders, v)
		}
	}
}

// destination reads To as an E.164 number.
func destination(p url.Values) (string, error) {
	v, ok := p["To"]
	if !ok {
		return "", invalid(codeMissingParam, "To is missing")
	}
	to := v[0]
	if e164RE.MatchString(to) {
		return to, nil
	}
	if channelRE.MatchString(to) {
		return "", invalid(codeUnsupported, "To %q is a channel, SIP or client address; Keybrake prices E.164 phone numbers only", vendors.Truncate(to, vendors.QuoteLimit))
	}
	return "", invalid(codeBadDestination, "To %q is not an E.164 phone number (+ and 7 to 15 digits)", vendors.Truncate(to, vendors.QuoteLimit))
}

// countryHint shows the first digits of a number, enough to say where it
// goes without keeping the number in a message.
func countryHint(e164 string) string {
	if len(e164) > 4 {
		return e164[:4] + "..."
	}
	return e164
}

// boolParam reads an optional "true" or "false", as twilio-go writes them.
func boolParam(p url.Values, name string) (bool, error) {
	v, ok := p[name]
	if !ok {
		return false, nil
	}
	switch v[0] {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, invalid(codeBadParam, "%s=%q: want true or false", name, vendors.Truncate(v[0], vendors.QuoteLimit))
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

// droppedParams are parameters the audit log never keeps: message text
// (Body, kept as its length and segments), template variables, and
// verification codes.
var droppedParams = set("Body", "ContentVariables", "Code", "CustomCode", "CustomMessage")

// auditParams keeps what vendors.RedactParam allows of every parameter,
// list elements as Name[0], Name[1]. Twilio names are PascalCase, so
// RedactParam judges them in snake_case ("SipAuthPassword" as
// "sip_auth_password"). A message body is replaced by Body.chars,
// Body.segments and Body.encoding.
func auditParams(params url.Values, body *bodyFacts) map[string]string {
	if len(params) == 0 && body == nil {
		return nil
	}
	out := make(map[string]string, len(params)+3)
	for k, vs := range params {
		if droppedParams[k] {
			continue
		}
		last := k[strings.LastIndexByte(k, '.')+1:]
		for i, v := range vs {
			red, keep := vendors.RedactParam(snake(last), v)
			if !keep {
				break
			}
			name := k
			if listParams[k] {
				name = k + "[" + strconv.Itoa(i) + "]"
			}
			out[name] = red
		}
	}
	if body != nil {
		out["Body.chars"] = strconv.Itoa(body.chars)
		out["Body.segments"] = strconv.Itoa(body.segments)
		out["Body.encoding"] = body.encoding
	}
	return out
}

// snake turns "SipAuthPassword" into "sip_auth_password" and "DateSent<"
// into "date_sent<".
func snake(name string) string {
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
