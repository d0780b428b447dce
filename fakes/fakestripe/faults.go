package fakestripe

import (
	"fmt"
	"net/http"
	"time"

	"github.com/keybrake/keybrake/fakes/fakefault"
)

// Fault is a failure the server injects into the requests it matches.
// Faults are tried in the order they were added; a request takes the
// first that matches and has uses left, and at most one.
//
// Without Execute, the fault strikes before anything else (as a load
// balancer or an overloaded front end would): Delay or Hang first, then,
// when Status is set, the fault's answer, and nothing is done or saved
// under the idempotency key; without Status the request then proceeds.
//
// With Execute, the request is handled in full first (money moves, the
// result is saved under its idempotency key), then Delay or Hang, then,
// when Status is set, the fault's answer replaces the real one: the client
// cannot know what happened, and a retry with the same Idempotency-Key
// replays the real result. This models a response lost on its way back
// (a gateway error, a dropped connection), not a Stripe-side 500, whose
// body Stripe itself would save and replay.
type Fault struct {
	Method     string // match this method only; "" matches any
	PathPrefix string // match paths starting with this; "" matches any
	// Times is how many matching requests the fault strikes; 0 or less
	// strikes every one until ClearFaults.
	Times int

	Execute bool          // do the work first (see above)
	Delay   time.Duration // wait this long before answering; the client may give up first
	Hang    bool          // never answer: wait until the client gives up or Close

	// Status, when not 0, is the answer: Stripe's error body for the
	// status (api_error for 5xx, rate_limit for 429, card_declined for
	// 402, idempotency_key_in_use for 409...), unless Body is set.
	Status int
	Type   string // overrides the error type in the body
	Code   string // overrides the error code in the body
	// Body, when set, is sent as is with Content-Type text/html instead
	// of a Stripe error: what a proxy in front of Stripe sends, which
	// stripe-go does not recognise as a Stripe error and retries.
	Body string
	// ShouldRetry, when set ("true" or "false"), is sent as the
	// Stripe-Should-Retry header, which stripe-go obeys.
	ShouldRetry string
}

// Inject adds a fault. It panics if f is not a usable fault (a status
// outside 400-599, no effect at all), as a broken test setup should.
func (s *Server) Inject(f Fault) {
	s.faults.Check(f.rule())
	if f.ShouldRetry != "" && f.ShouldRetry != "true" && f.ShouldRetry != "false" {
		panic(fmt.Sprintf("fakestripe: ShouldRetry %q is neither true nor false", f.ShouldRetry))
	}
	s.faults.Add(f.rule(), f.response)
}

// Scope adds faults limited to some requests; get one from On. It is
// fakefault's, shared by every fake.
type Scope = fakefault.Scope

// rule is the part of f the shared machinery matches and acts on.
func (f Fault) rule() fakefault.Rule {
	return fakefault.Rule{
		Method: f.Method, PathPrefix: f.PathPrefix, Times: f.Times,
		Execute: f.Execute, Delay: f.Delay, Hang: f.Hang, Status: f.Status,
	}
}

// statusAnswer is the answer of a fault with only a Status, as On's
// scopes add.
func statusAnswer(status int) fakefault.Response { return Fault{Status: status}.response() }

// response renders the fault's answer.
func (f Fault) response() fakefault.Response {
	h := http.Header{}
	if f.ShouldRetry != "" {
		h.Set("Stripe-Should-Retry", f.ShouldRetry)
	}
	if f.Body != "" {
		h.Set("Content-Type", "text/html")
		return fakefault.Response{Status: f.Status, Body: []byte(f.Body), Header: h}
	}
	e := &apiError{status: f.Status, typ: "invalid_request_error", message: "fakestripe: injected fault"}
	switch {
	case f.Status == http.StatusUnauthorized:
		e.message = "Invalid API Key provided."
	case f.Status == http.StatusPaymentRequired:
		e.typ, e.code, e.declineCode, e.message = "card_error", "card_declined", "generic_decline", "Your card was declined."
	case f.Status == http.StatusNotFound:
		e.code = "resource_missing"
	case f.Status == http.StatusConflict:
		e.code, e.message = "idempotency_key_in_use", "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through)."
	case f.Status == http.StatusTooManyRequests:
		e.code, e.message = "rate_limit", "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."
	case f.Status >= 500:
		e.typ, e.message = "api_error", "An unknown error occurred (fakestripe: injected fault)."
	}
	if f.Type != "" {
		e.typ = f.Type
	}
	if f.Code != "" {
		e.code = f.Code
	}
	return fakefault.Response{Status: f.Status, Body: e.body(), Header: h}
}

// idemKey scopes an idempotency key to the account acting, as Stripe
// scopes keys to an account.
type idemKey struct{ account, key string }

// saved is the result kept for an idempotency key.
type saved struct {
	fingerprint string // method, path and parameters of the first request
	status      int
	body        []byte
	requestID   string
}
