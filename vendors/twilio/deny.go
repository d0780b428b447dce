package twilio

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/twilio/twilio-go/client"

	"github.com/keybrake/keybrake/vendors"
)

// The error codes of Keybrake's refusals, in twilio-go's
// *client.TwilioRestError Code: 900000 plus the HTTP status. Twilio's own
// error codes have five digits, so these six-digit ones never collide
// with them.
const (
	CodeRevoked = 900401 // the agent or its key is revoked, or every agent is halted
	CodeCapped  = 900402 // over a daily cap, a per-call maximum or a count limit
	CodeBlocked = 900403 // not on the allow list, or a request Keybrake cannot read
	CodeError   = 900503 // Keybrake could not decide: store, policy or lookup failure
)

// codeBase is added to the HTTP status to make a Code.
const codeBase = 900000

// moreInfo is where a person reads what a refusal means.
const moreInfo = "https://github.com/keybrake/keybrake#decisions"

// restError is Twilio's error body as twilio-go decodes it into a
// *client.TwilioRestError, with the fields of *client.RestErrorV1 beside
// it: twilio-go first decodes an error of its "v1.0" services (Voice v3,
// Numbers v3, ...) as RestErrorV1 and sends the request again when that
// fails, so a body that reads as both is refused after one attempt
// whatever service the agent called.
type restError struct {
	Code     int                        `json:"code"`
	Message  string                     `json:"message"`
	MoreInfo string                     `json:"more_info"`
	Status   int                        `json:"status"`
	Details  map[string]json.RawMessage `json:"details,omitempty"`

	HTTPStatusCode int                        `json:"httpStatusCode"`
	Params         map[string]json.RawMessage `json:"params,omitempty"`
	UserError      bool                       `json:"userError"`
}

// Deny renders a refusal as Twilio's own error: a complete HTTP/1.1
// response with the refusal's status, Content-Type application/json,
// Twilio-Request-Id r.RequestID, and the body
//
//	{"code":900402,"message":"...","more_info":"...","status":402,"details":{"keybrake":{...}}, ...}
//
// which twilio-go v1.31 returns, after exactly one attempt (it never
// retries these services), as a *client.TwilioRestError whose Status is
// the refusal's and whose Details["keybrake"] holds r.Details. Code is
// 900000 plus the status (CodeCapped and its siblings). A status outside
// 400-599, which twilio-go would not read as an error, becomes 503;
// Details that are not valid JSON are carried as a JSON string so nothing
// is lost. Deny does not read or close req's body.
func (Vendor) Deny(req *http.Request, r vendors.Refusal) *http.Response {
	status := r.Status
	if status < 400 || status > 599 {
		status = http.StatusServiceUnavailable
	}
	var details json.RawMessage
	if len(r.Details) > 0 {
		if json.Valid(r.Details) {
			details = json.RawMessage(r.Details)
		} else {
			details, _ = json.Marshal(string(r.Details))
		}
	}
	msg := r.Message
	if msg == "" {
		msg = r.Code
	}
	e := restError{
		Code:           codeBase + status,
		Message:        msg,
		MoreInfo:       moreInfo,
		Status:         status,
		HTTPStatusCode: status,
		UserError:      true,
	}
	if details != nil {
		e.Details = map[string]json.RawMessage{"keybrake": details}
		e.Params = e.Details
	}
	body, err := json.Marshal(e)
	if err != nil {
		// Only a bug could get here; the SDK still needs an error body
		// it decodes.
		body = []byte(`{"code":900503,"message":"Keybrake refused the call","status":503,"httpStatusCode":503}`)
	}
	h := http.Header{}
	if r.RequestID != "" {
		h.Set("Twilio-Request-Id", r.RequestID)
	}
	return vendors.JSONResponse(req, status, h, body)
}

// RefusalDetails finds the Details of a refusal Deny rendered in an error
// from twilio-go: a *client.TwilioRestError (or, from a v1.0 service, a
// *client.RestErrorV1), wrapped or not, whose Details (Params) carry
// "keybrake". twilio-go decodes those details into Go values, so they come
// back re-marshalled: the same JSON object, with keys sorted and numbers
// as float64 (exact up to 2^53). ok is false for every other error,
// Twilio's own included.
func (Vendor) RefusalDetails(err error) ([]byte, bool) {
	var found map[string]any
	var te *client.TwilioRestError
	var v1 *client.RestErrorV1
	switch {
	case errors.As(err, &te) && te != nil:
		found = te.Details
	case errors.As(err, &v1) && v1 != nil:
		found = v1.Params
	default:
		return nil, false
	}
	d, ok := found["keybrake"]
	if !ok || d == nil {
		return nil, false
	}
	b, merr := json.Marshal(d)
	if merr != nil {
		return nil, false
	}
	return b, true
}
