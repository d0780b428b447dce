package resend

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"

	"github.com/keybrake/keybrake/vendors"
)

// errorBody is Resend's error body, which resend-go reads (its
// InvalidRequestError and DefaultError). Keybrake adds the refusal's
// details for clients that read the body themselves; resend-go keeps only
// the message.
type errorBody struct {
	StatusCode int             `json:"statusCode"`
	Name       string          `json:"name"`
	Message    string          `json:"message"`
	Keybrake   json.RawMessage `json:"keybrake,omitempty"`
}

// detailFields are the fields of a refusal's details the message repeats.
type detailFields struct {
	Decision string `json:"decision"`
	Code     string `json:"code"`
	Rule     string `json:"rule"`
	Reason   string `json:"reason"`
}

// messageRE reads the message Deny writes, wherever it sits in an error's
// text (behind resend-go's "[ERROR]: ", a *url.Error's "Post \"...\": ", or
// any %w wrapping). The reason is free text: the greedy (.*) makes the
// trailer the last one in the text, so a reason that quotes something
// looking like a trailer cannot stand in for it. Rule and request are Go
// quoted strings.
var messageRE = regexp.MustCompile(`(?s)Keybrake refused this call \((blocked|scoped|capped|revoked|held|error)\): (.*) \(rule ("(?:[^"\\]|\\.)*"), code (keybrake_[a-z0-9_]+), status ([1-5][0-9][0-9]), request ("(?:[^"\\]|\\.)*"), (kbr_[0-9a-f]{16})\)`)

var (
	codeRE    = regexp.MustCompile(`^keybrake_[a-z0-9_]+$`)
	callIDRE  = regexp.MustCompile(`^kb_([1-9][0-9]{0,18})$`)
	decisions = map[string]bool{"blocked": true, "scoped": true, "capped": true, "revoked": true, "held": true, "error": true}
)

// Deny renders a refusal as Resend's own error: an HTTP/1.1 response with
// the refusal's status, Content-Type application/json, and the body
//
//	{"statusCode": 402, "name": "keybrake_capped", "message": "...", "keybrake": {details}}
//
// resend-go turns every non-2xx answer but 429 into
// errors.New("[ERROR]: " + message) and makes no second attempt, so
// everything the agent's runner can learn is in the message, which reads
//
//	Keybrake refused this call (<decision>): <reason> (rule <rule>, code <code>, status <status>, request <request>, <token>)
//
// where decision, reason and rule come from r.Details (decision falls back
// to the status's: 401 revoked, 402 capped, 403 blocked, else error;
// reason to r.Message), rule and request are Go-quoted strings, code is
// r.Code (keybrake_refused if it is not keybrake_[a-z0-9_]+), and token is
// a fresh vendors.NewRefusalToken under which Deny remembers r.Details
// (or, when they are not valid JSON, the details RefusalDetails would
// rebuild). A status outside 400-599, or 429 (which resend-go would turn
// into a *resend.RateLimitError inviting a retry), becomes 503. Deny does
// not read or close req's body. Safe for concurrent use.
func (Vendor) Deny(req *http.Request, r vendors.Refusal) *http.Response {
	status := r.Status
	if status < 400 || status > 599 || status == http.StatusTooManyRequests {
		status = http.StatusServiceUnavailable
	}
	var f detailFields
	validDetails := len(r.Details) > 0 && json.Valid(r.Details)
	if validDetails {
		_ = json.Unmarshal(r.Details, &f) // details of another shape keep their defaults
	}
	if !decisions[f.Decision] {
		f.Decision = decisionFor(status)
	}
	f.Code = r.Code
	if !codeRE.MatchString(f.Code) {
		f.Code = "keybrake_refused"
	}
	if f.Reason == "" {
		f.Reason = r.Message
	}
	if f.Reason == "" {
		f.Reason = "no reason given"
	}
	token := vendors.NewRefusalToken()
	msg := "Keybrake refused this call (" + f.Decision + "): " + f.Reason +
		" (rule " + strconv.Quote(f.Rule) + ", code " + f.Code + ", status " + strconv.Itoa(status) +
		", request " + strconv.Quote(r.RequestID) + ", " + token + ")"

	details := r.Details
	if !validDetails {
		details = rebuild(f, status, r.RequestID)
	}
	vendors.RememberRefusal(token, details)

	body, err := json.Marshal(errorBody{StatusCode: status, Name: f.Code, Message: msg, Keybrake: json.RawMessage(details)})
	if err != nil {
		// Only a bug could get here; resend-go still needs a message.
		body, _ = json.Marshal(errorBody{StatusCode: status, Name: f.Code, Message: msg})
	}
	return vendors.JSONResponse(req, status, nil, body)
}

func decisionFor(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "revoked"
	case http.StatusPaymentRequired:
		return "capped"
	case http.StatusForbidden:
		return "blocked"
	}
	return "error"
}

// RefusalDetails finds, in an error from resend-go, the details of a
// refusal Deny rendered: it reads Deny's message anywhere in err.Error()
// (so through *url.Error and any %w or %v wrapping), and returns the
// details remembered under its token. When this process has forgotten
// them (another process denied, or more than the memory holds came
// since), it rebuilds them from the message:
//
//	{"decision", "code", "rule", "reason", "status", "vendor": "resend", "call_id" (when request is kb_<n>)}
//
// ok is false for a nil error and every error without Deny's message.
// Safe for concurrent use.
func (Vendor) RefusalDetails(err error) (details []byte, ok bool) {
	if err == nil {
		return nil, false
	}
	m := messageRE.FindStringSubmatch(err.Error())
	if m == nil {
		return nil, false
	}
	if d, ok := vendors.RecallRefusal(m[7]); ok {
		return d, true
	}
	rule, err1 := strconv.Unquote(m[3])
	request, err2 := strconv.Unquote(m[6])
	if err1 != nil || err2 != nil {
		return nil, false
	}
	status, _ := strconv.Atoi(m[5])
	return rebuild(detailFields{Decision: m[1], Code: m[4], Rule: rule, Reason: m[2]}, status, request), true
}

// rebuild writes the details a message carries, as keybrake.AsDenial
// reads them.
func rebuild(f detailFields, status int, request string) []byte {
	d := struct {
		Decision string `json:"decision"`
		Code     string `json:"code"`
		Rule     string `json:"rule"`
		Reason   string `json:"reason"`
		Vendor   string `json:"vendor"`
		Status   int    `json:"status"`
		CallID   uint64 `json:"call_id,omitempty"`
	}{Decision: f.Decision, Code: f.Code, Rule: f.Rule, Reason: f.Reason, Vendor: "resend", Status: status}
	if m := callIDRE.FindStringSubmatch(request); m != nil {
		d.CallID, _ = strconv.ParseUint(m[1], 10, 64)
	}
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // strings and integers only
	}
	return b
}
