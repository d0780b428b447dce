package faketwilio

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
// balancer or an overloaded front end would): Delay or Hang first, then,
// when Status is set, the fault's answer, and nothing is done; without
// Status the request then proceeds.
//
// With Execute, the request is handled in full first (the message is
// created and will be billed), then Delay or Hang, then, when Status is
// set, the fault's answer replaces the real one: the client cannot know
// whether the message went out. Twilio has no idempotency key for
// messages or calls, so a retry sends again.
type Fault struct {
	Method     string // match this method only; "" matches any
	PathPrefix string // match paths starting with this; "" matches any
	// Times is how many matching requests the fault strikes; 0 or less
	// strikes every one until ClearFaults.
	Times int

	Execute bool          // do the work first (see above)
	Delay   time.Duration // wait this long before answering; the client may give up first
	Hang    bool          // never answer: wait until the client gives up or Close

	// Status, when not 0, is the answer: Twilio's error body for the
	// status (20003 for 401, 20404 for 404, 20429 for 429, 20500 for
	// 500, 20503 for 503, 20001 otherwise), unless Body is set.
	Status int
	Code   int // overrides the Twilio error code in the body
	// Body, when set, is sent as is with Content-Type text/html instead
	// of a Twilio error: what a proxy in front of Twilio sends, which
	// twilio-go reports as a decoding error rather than a
	// *client.TwilioRestError.
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

// response renders the fault's answer.
func (f Fault) response() fakefault.Response {
	if f.Body != "" {
		h := http.Header{}
		h.Set("Content-Type", "text/html")
		return fakefault.Response{Status: f.Status, Body: []byte(f.Body), Header: h}
	}
	e := &apiError{status: f.Status, code: codeBadRequest, message: "faketwilio: injected fault"}
	switch {
	case f.Status == http.StatusUnauthorized:
		e.code, e.message = codeAuthenticate, "Authenticate"
	case f.Status == http.StatusNotFound:
		e.code = codeNotFound
	case f.Status == http.StatusTooManyRequests:
		e.code, e.message = codeTooManyRequests, "Too Many Requests"
	case f.Status == http.StatusServiceUnavailable:
		e.code, e.message = codeUnavailable, "Service Unavailable (faketwilio: injected fault)"
	case f.Status >= 500:
		e.code, e.message = codeInternal, "Internal Server Error (faketwilio: injected fault)"
	}
	if f.Code != 0 {
		e.code = f.Code
	}
	return errorResponse(e)
}
