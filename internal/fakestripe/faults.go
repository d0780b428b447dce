package fakestripe

import (
	"fmt"
	"net/http"
	"strings"
	"time"
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

	used int
}

// Inject adds a fault. It panics if f is not a usable fault (a status
// outside 400-599, no effect at all), as a broken test setup should.
func (s *Server) Inject(f Fault) {
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		panic(fmt.Sprintf("fakestripe: fault status %d is not an error status", f.Status))
	}
	if f.Status == 0 && f.Delay <= 0 && !f.Hang {
		panic("fakestripe: a fault needs a Status, a Delay or Hang")
	}
	if f.ShouldRetry != "" && f.ShouldRetry != "true" && f.ShouldRetry != "false" {
		panic(fmt.Sprintf("fakestripe: ShouldRetry %q is neither true nor false", f.ShouldRetry))
	}
	f.used = 0
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// FailNext answers the next n requests with status and Stripe's error
// body, doing nothing. It panics if n < 1.
func (s *Server) FailNext(n, status int) { s.On("", "").FailNext(n, status) }

// ExecuteThenFail lets the next n requests do their work (money moves,
// the result is saved under the idempotency key), then answers status
// instead of the result. It panics if n < 1.
func (s *Server) ExecuteThenFail(n, status int) { s.On("", "").ExecuteThenFail(n, status) }

// Delay makes every following request wait d before it is handled, until
// ClearFaults. A client that gives up first gets no answer and nothing is
// done.
func (s *Server) Delay(d time.Duration) { s.Inject(Fault{Delay: d}) }

// Hang makes every following request wait, unanswered and with nothing
// done, until the client gives up or Close; until ClearFaults.
func (s *Server) Hang() { s.Inject(Fault{Hang: true}) }

// ClearFaults removes every fault. Requests already waiting keep waiting.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// On returns a scope whose faults strike only requests with this method
// ("" for any) and a path starting with pathPrefix ("" for any).
func (s *Server) On(method, pathPrefix string) Scope {
	return Scope{s: s, method: method, prefix: pathPrefix}
}

// Scope adds faults limited to some requests; see On.
type Scope struct {
	s              *Server
	method, prefix string
}

func (sc Scope) fault(n int, f Fault) {
	if n < 1 {
		panic(fmt.Sprintf("fakestripe: fault for %d requests", n))
	}
	f.Method, f.PathPrefix, f.Times = sc.method, sc.prefix, n
	sc.s.Inject(f)
}

// FailNext answers the next n matching requests with status, doing nothing.
func (sc Scope) FailNext(n, status int) { sc.fault(n, Fault{Status: status}) }

// ExecuteThenFail does the work of the next n matching requests, then
// answers status instead of the result.
func (sc Scope) ExecuteThenFail(n, status int) {
	sc.fault(n, Fault{Status: status, Execute: true})
}

// DelayNext makes the next n matching requests wait d before they are
// handled.
func (sc Scope) DelayNext(n int, d time.Duration) { sc.fault(n, Fault{Delay: d}) }

// HangNext leaves the next n matching requests unanswered, with nothing
// done, until their clients give up or Close.
func (sc Scope) HangNext(n int) { sc.fault(n, Fault{Hang: true}) }

// ExecuteThenHang does the work of the next n matching requests, then
// never answers: the client times out on a call whose money moved.
func (sc Scope) ExecuteThenHang(n int) { sc.fault(n, Fault{Execute: true, Hang: true}) }

// takeFault returns the fault for r, using it up. s.mu is held.
func (s *Server) takeFault(r *http.Request) *Fault {
	path := r.URL.EscapedPath()
	for i, f := range s.faults {
		if f.Method != "" && f.Method != r.Method {
			continue
		}
		if !strings.HasPrefix(path, f.PathPrefix) {
			continue
		}
		f.used++
		if f.Times > 0 && f.used >= f.Times {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		cp := *f
		return &cp
	}
	return nil
}

// wait holds the request for the fault's Delay or Hang. It returns false
// when the client gave up or Close released it: the request must then be
// dropped unanswered.
func (s *Server) wait(r *http.Request, f *Fault) bool {
	var timeout <-chan time.Time
	switch {
	case f.Hang:
	case f.Delay > 0:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		timeout = t.C
	default:
		return true
	}
	select {
	case <-timeout:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closed:
		return false
	}
}

// response renders the fault's answer.
func (f *Fault) response() response {
	h := http.Header{}
	if f.ShouldRetry != "" {
		h.Set("Stripe-Should-Retry", f.ShouldRetry)
	}
	if f.Body != "" {
		h.Set("Content-Type", "text/html")
		return response{status: f.Status, body: []byte(f.Body), header: h}
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
	return response{status: f.Status, body: e.body(), header: h}
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
