package stripe

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/keybrake/keybrake/vendors"
)

// apiError is Stripe's error body: stripe-go's API and Uploads backends
// decode {"error":{...}} into a *stripego.Error.
type apiError struct {
	Error refusalBody `json:"error"`
}

type refusalBody struct {
	Type     string          `json:"type"`
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Keybrake json.RawMessage `json:"keybrake,omitempty"`
}

// oauthError is the Connect backend's error body: stripe-go decodes the
// whole body into a *stripego.Error, reading OAuth's "error" and
// "error_description" beside the usual fields, so the usual fields go at
// the top level.
type oauthError struct {
	OAuthError       string `json:"error"`
	ErrorDescription string `json:"error_description"`
	refusalBody
}

// Deny renders a refusal as Stripe's own error: a complete HTTP/1.1
// response with the refusal's status, Content-Type application/json,
// Stripe-Should-Retry: false (so stripe-go makes no second attempt),
// Request-Id, and a JSON body stripe-go decodes into a *stripego.Error of
// type invalid_request_error whose LastResponse.RawJSON keeps r.Details
// under "keybrake". Requests to Connect's /oauth/ paths get the flat body
// the Connect backend decodes. A status outside 400-599, which stripe-go
// would read as success, becomes 503; Details that are not valid JSON are
// carried as a JSON string so nothing is lost. Deny does not read or close
// req's body.
func (Vendor) Deny(req *http.Request, r vendors.Refusal) *http.Response {
	status := r.Status
	if status < 400 || status > 599 {
		status = http.StatusServiceUnavailable
	}
	details := json.RawMessage(nil)
	if len(r.Details) > 0 {
		if json.Valid(r.Details) {
			details = json.RawMessage(r.Details)
		} else {
			details, _ = json.Marshal(string(r.Details))
		}
	}
	inner := refusalBody{
		Type:     string(stripego.ErrorTypeInvalidRequest),
		Code:     r.Code,
		Message:  r.Message,
		Keybrake: details,
	}
	var v any = apiError{Error: inner}
	if req != nil && req.URL != nil && strings.HasPrefix(req.URL.Path, "/oauth/") {
		v = oauthError{OAuthError: r.Code, ErrorDescription: r.Message, refusalBody: inner}
	}
	body, err := json.Marshal(v)
	if err != nil {
		// Only a bug could get here; the SDK still needs an error it
		// parses rather than one it retries.
		body = []byte(`{"error":{"type":"invalid_request_error","code":"keybrake_error","message":"Keybrake refused the call"}}`)
	}
	h := http.Header{}
	h.Set("Stripe-Should-Retry", "false")
	if r.RequestID != "" {
		h.Set("Request-Id", r.RequestID)
	}
	return vendors.JSONResponse(req, status, h, body)
}

// RefusalDetails finds the Details of a refusal Deny rendered in an error
// from stripe-go: a *stripego.Error (wrapped or not) whose raw response
// body carries a "keybrake" object, at error.keybrake for the API and
// Uploads backends or at the top level for Connect. ok is false for every
// other error, Stripe's own included.
func (Vendor) RefusalDetails(err error) ([]byte, bool) {
	var se *stripego.Error
	if !errors.As(err, &se) || se.LastResponse == nil {
		return nil, false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(se.LastResponse.RawJSON, &top) != nil {
		return nil, false
	}
	if d, ok := present(top["keybrake"]); ok {
		return d, true
	}
	var inner map[string]json.RawMessage
	if json.Unmarshal(top["error"], &inner) != nil {
		return nil, false
	}
	return present(inner["keybrake"])
}

func present(d json.RawMessage) ([]byte, bool) {
	if len(d) == 0 || bytes.Equal(d, []byte("null")) {
		return nil, false
	}
	return []byte(d), true
}
