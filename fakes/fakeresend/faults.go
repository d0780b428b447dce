package fakeresend

import (
	"net/http"
	"time"

	"github.com/keybrake/keybrake/fakes/fakefault"
)

// Fault is a failure the server injects into the requests it matches.
// Faults are tried in the order they were added; a request takes the
// first that matches and has uses left, and at most one.
// The zero Fault does nothing and Inject refuses it: a fault needs a
// Status, a Delay or Hang.
//
// Without Execute, the fault strikes before anything else (as a load
// balancer, a rate limiter or an overloaded front end would): Delay or
// Hang first, then, when Status is set, the fault's answer, and nothing is
// done or saved under the idempotency key; without Status the request
// then proceeds.
//
// With Execute, the request is handled in full first (emails are sent,
// the result is saved under its Idempotency-Key), then Delay or Hang,
// then, when Status is set, the fault's answer replaces the real one: the
// client cannot know whether the emails went out, and a retry with the
// same Idempotency-Key replays the real result.
type Fault struct {
	Method     string // match this method only; "" matches any
	PathPrefix string // match paths starting with this; "" matches any
	// Times is how many matching requests the fault strikes; 0 or less
	// strikes every one until ClearFaults.
	Times int

	Execute bool          // do the work first (see above)
	Delay   time.Duration // wait this long before answering; the client may give up first
	Hang    bool          // never answer: wait until the client gives up or Close

	// Status, when not 0, is the answer: Resend's error body for the
	// status (rate_limit_exceeded with the ratelimit-* and retry-after
	// headers for 429, concurrent_idempotent_requests for 409,
	// internal_server_error for 500, application_error for other 5xx...),
	// unless Body is set.
	Status int
	Name   string // overrides the error name in the body, as "daily_quota_exceeded"
	// Body, when set, is sent as is with Content-Type text/html instead
	// of a Resend error: what a proxy in front of Resend sends.
	Body string
}

// Inject adds a fault. It panics if f is not a usable fault (a status
// outside 400-599, no effect at all), as a broken test setup should.
func (s *Server) Inject(f Fault) { s.faults.Add(f.rule(), f.response) }

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

// The rate limit Resend documents by default: 2 requests a second. The
// headers follow the IETF draft Resend cites.
const (
	rateLimit      = "2"
	rateLimitReset = "1"
)

// response renders the fault's answer.
func (f Fault) response() fakefault.Response {
	h := http.Header{}
	if f.Body != "" {
		h.Set("Content-Type", "text/html")
		return fakefault.Response{Status: f.Status, Body: []byte(f.Body), Header: h}
	}
	e := &apiError{status: f.Status, name: nameValidation, message: "fakeresend: injected fault"}
	switch {
	case f.Status == http.StatusUnauthorized:
		e.name, e.message = nameMissingAPIKey, "Missing API key in the authorization header."
	case f.Status == http.StatusForbidden:
		e.name, e.message = nameInvalidAPIKey, "API key is invalid."
	case f.Status == http.StatusNotFound:
		e.name, e.message = nameNotFound, "The requested endpoint does not exist."
	case f.Status == http.StatusMethodNotAllowed:
		e.name, e.message = nameMethodNotAllowed, "Method is not allowed for the requested path."
	case f.Status == http.StatusConflict:
		e.name, e.message = nameConcurrentIdem, "Same idempotency key used while original request is still in progress."
	case f.Status == http.StatusTooManyRequests:
		e.name, e.message = nameRateLimitExceeded, "Too many requests. You can only make "+rateLimit+" requests per second. See rate limit response headers for more information."
		h.Set("Ratelimit-Limit", rateLimit)
		h.Set("Ratelimit-Remaining", "0")
		h.Set("Ratelimit-Reset", rateLimitReset)
		h.Set("Retry-After", rateLimitReset)
	case f.Status == http.StatusUnavailableForLegalReasons:
		e.name, e.message = nameSecurityError, "We may have found a security issue with the request."
	case f.Status == http.StatusInternalServerError:
		e.name, e.message = nameInternalServerError, "An unexpected error occurred (fakeresend: injected fault)."
	case f.Status > 500:
		e.name, e.message = nameApplicationError, "An unexpected error occurred (fakeresend: injected fault)."
	}
	if f.Name != "" {
		e.name = f.Name
	}
	res := errorResponse(e)
	res.Header = h
	return res
}
