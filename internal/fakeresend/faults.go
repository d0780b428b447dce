package fakeresend

import (
	"fmt"
	"net/http"
	"strings"
	"time"
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

	used int
}

// Inject adds a fault. It panics if f is not a usable fault (a status
// outside 400-599, no effect at all), as a broken test setup should.
func (s *Server) Inject(f Fault) {
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		panic(fmt.Sprintf("fakeresend: fault status %d is not an error status", f.Status))
	}
	if f.Status == 0 && f.Delay <= 0 && !f.Hang {
		panic("fakeresend: a fault needs a Status, a Delay or Hang")
	}
	f.used = 0
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// FailNext answers the next n requests with status and Resend's error
// body, doing nothing. FailNext(n, 429) is Resend's rate limit. It panics
// if n < 1.
func (s *Server) FailNext(n, status int) { s.On("", "").FailNext(n, status) }

// ExecuteThenFail lets the next n requests do their work (emails are
// sent, the result is saved under the idempotency key), then answers
// status instead of the result. It panics if n < 1.
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

// Scope adds faults limited to some requests; get one from On (the zero
// Scope is not usable). It is a value, safe to copy and share.
type Scope struct {
	s              *Server
	method, prefix string
}

func (sc Scope) fault(n int, f Fault) {
	if n < 1 {
		panic(fmt.Sprintf("fakeresend: fault for %d requests", n))
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
// never answers: the client times out on emails that were sent.
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

// The rate limit Resend documents by default: 2 requests a second. The
// headers follow the IETF draft Resend cites.
const (
	rateLimit      = "2"
	rateLimitReset = "1"
)

// response renders the fault's answer.
func (f *Fault) response() response {
	h := http.Header{}
	if f.Body != "" {
		h.Set("Content-Type", "text/html")
		return response{status: f.Status, body: []byte(f.Body), header: h}
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
	res.header = h
	return res
}
