package faketwilio

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

	used int
}

// Inject adds a fault. It panics if f is not a usable fault (a status
// outside 400-599, no effect at all), as a broken test setup should.
func (s *Server) Inject(f Fault) {
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		panic(fmt.Sprintf("faketwilio: fault status %d is not an error status", f.Status))
	}
	if f.Status == 0 && f.Delay <= 0 && !f.Hang {
		panic("faketwilio: a fault needs a Status, a Delay or Hang")
	}
	f.used = 0
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// FailNext answers the next n requests with status and Twilio's error
// body, doing nothing. It panics if n < 1.
func (s *Server) FailNext(n, status int) { s.On("", "").FailNext(n, status) }

// ExecuteThenFail lets the next n requests do their work (messages are
// created and billed), then answers status instead of the result. It
// panics if n < 1.
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
		panic(fmt.Sprintf("faketwilio: fault for %d requests", n))
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
// never answers: the client times out on a message that was sent.
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
	if f.Body != "" {
		h := http.Header{}
		h.Set("Content-Type", "text/html")
		return response{status: f.Status, body: []byte(f.Body), header: h}
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
