package fakefault

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Rule is the part of a fault every fake's Fault has: which requests it
// strikes, how many, and what it does to them. The answer's body is the
// fake's own, rendered by the func given to Add (or New).
//
// Without Execute, the fault strikes before the request is handled:
// Delay or Hang first, then, when Status is set, the fault's answer and
// nothing done; without Status the request then proceeds. With Execute,
// the request is handled in full first, then Delay or Hang, then, when
// Status is set, the fault's answer replaces the real one.
//
// The zero Rule does nothing, and Add refuses it.
type Rule struct {
	Method     string // match this method only; "" matches any
	PathPrefix string // match escaped paths starting with this; "" matches any
	// Times is how many matching requests the fault strikes; 0 or less
	// strikes every one until Clear.
	Times int

	Execute bool          // handle the request first (see above)
	Delay   time.Duration // wait this long before answering; the client may give up first
	Hang    bool          // never answer: wait until the client gives up or Close
	Status  int           // when not 0, the status of the fault's answer (400-599)
}

// Faults is the list of faults of one fake, and the releasing of the
// requests they hold. Faults are tried in the order they were added; a
// request takes the first that matches and has uses left, and at most
// one.
//
// The zero value is not usable; call New. It is safe for concurrent use.
// A fake may call Take with its own lock held, to take a fault
// atomically with logging the request: Faults never calls out while it
// holds its lock, so that lock is always taken last.
type Faults struct {
	name   string                    // the fake's package, prefix of its panics
	answer func(status int) Response // the fake's answer for a fault added without one

	mu   sync.Mutex
	list []*fault

	closed    chan struct{}
	closeOnce sync.Once
}

type fault struct {
	Rule
	answer func() Response
	used   int
}

// New returns an empty list of faults for the fake named name
// ("fakestripe"), which prefixes the panics of a broken setup. answer
// renders the fake's error answer for a status: it answers the faults
// added with no answer of their own, as On's scopes add them.
func New(name string, answer func(status int) Response) *Faults {
	return &Faults{name: name, answer: answer, closed: make(chan struct{})}
}

// Check panics if r is not a usable fault: a status outside 400-599, or
// no effect at all (no Status, Delay or Hang), as a broken test setup
// should. Add checks too; a fake calls Check first when it has fields of
// its own to check after these.
func (fs *Faults) Check(r Rule) {
	if r.Status != 0 && (r.Status < 400 || r.Status > 599) {
		panic(fmt.Sprintf("%s: fault status %d is not an error status", fs.name, r.Status))
	}
	if r.Status == 0 && r.Delay <= 0 && !r.Hang {
		panic(fs.name + ": a fault needs a Status, a Delay or Hang")
	}
}

// Add adds a fault with rule r whose answer, when r.Status is set, is
// answer's; a nil answer is the fake's answer for r.Status (see New). It
// panics as Check does.
func (fs *Faults) Add(r Rule, answer func() Response) {
	fs.Check(r)
	if answer == nil {
		answer = func() Response { return fs.answer(r.Status) }
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = append(fs.list, &fault{Rule: r, answer: answer})
}

// Clear removes every fault. Requests already waiting keep waiting.
func (fs *Faults) Clear() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = nil
}

// Close releases every request held by Delay or Hang: Serve drops each
// unanswered. After Close, a request that draws a Delay or Hang is
// dropped at once; others are served as usual. It is idempotent.
func (fs *Faults) Close() { fs.closeOnce.Do(func() { close(fs.closed) }) }

// On returns a scope whose faults strike only requests with this method
// ("" for any) and an escaped path starting with pathPrefix ("" for any).
func (fs *Faults) On(method, pathPrefix string) Scope {
	return Scope{fs: fs, method: method, prefix: pathPrefix}
}

// Scope adds faults limited to some requests; get one from On (the zero
// Scope is not usable). It is a value, safe to copy and share. Each
// method panics if n < 1, or as Check does.
type Scope struct {
	fs             *Faults
	method, prefix string
}

func (sc Scope) add(n int, r Rule) {
	if n < 1 {
		panic(fmt.Sprintf("%s: fault for %d requests", sc.fs.name, n))
	}
	r.Method, r.PathPrefix, r.Times = sc.method, sc.prefix, n
	sc.fs.Add(r, nil)
}

// FailNext answers the next n matching requests with status, doing nothing.
func (sc Scope) FailNext(n, status int) { sc.add(n, Rule{Status: status}) }

// ExecuteThenFail handles the next n matching requests, then answers
// status instead of the result.
func (sc Scope) ExecuteThenFail(n, status int) {
	sc.add(n, Rule{Status: status, Execute: true})
}

// DelayNext makes the next n matching requests wait d before they are
// handled.
func (sc Scope) DelayNext(n int, d time.Duration) { sc.add(n, Rule{Delay: d}) }

// HangNext leaves the next n matching requests unanswered, with nothing
// done, until their clients give up or Close.
func (sc Scope) HangNext(n int) { sc.add(n, Rule{Hang: true}) }

// ExecuteThenHang handles the next n matching requests, then never
// answers.
func (sc Scope) ExecuteThenHang(n int) { sc.add(n, Rule{Execute: true, Hang: true}) }

// Hit is the fault a request drew: its rule as it was when drawn, and its
// answer. A nil *Hit is no fault.
type Hit struct {
	Rule
	answer func() Response
}

// Take returns the fault for r, using it up, or nil when none matches. A
// fault whose Times are spent is removed.
func (fs *Faults) Take(r *http.Request) *Hit {
	path := r.URL.EscapedPath()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.list {
		if f.Method != "" && f.Method != r.Method {
			continue
		}
		if !strings.HasPrefix(path, f.PathPrefix) {
			continue
		}
		f.used++
		if f.Times > 0 && f.used >= f.Times {
			fs.list = append(fs.list[:i:i], fs.list[i+1:]...)
		}
		return &Hit{Rule: f.Rule, answer: f.answer}
	}
	return nil
}

// Serve runs a request through the fault it drew (nil for none) and
// returns what to answer: handle's response, or the fault's answer when
// the fault has a Status, before handle (which then is not called)
// without Execute, in place of handle's response with it.
//
// When the client gives up or Close releases the request during the
// fault's wait, Serve panics with http.ErrAbortHandler, which makes
// net/http drop the request without an answer and close the connection
// quietly: call it from a handler, with no lock held.
func (fs *Faults) Serve(r *http.Request, hit *Hit, handle func() Response) Response {
	if hit != nil && !hit.Execute {
		fs.hold(r, hit.Rule)
		if hit.Status != 0 {
			return hit.answer()
		}
	}
	res := handle()
	if hit != nil && hit.Execute {
		fs.hold(r, hit.Rule)
		if hit.Status != 0 {
			res = hit.answer()
		}
	}
	return res
}

// hold keeps the request for the rule's Delay or Hang. When the client
// gives up or Close releases the request first, it panics with
// http.ErrAbortHandler: the request is dropped unanswered.
func (fs *Faults) hold(r *http.Request, rule Rule) {
	var timeout <-chan time.Time
	switch {
	case rule.Hang:
	case rule.Delay > 0:
		t := time.NewTimer(rule.Delay)
		defer t.Stop()
		timeout = t.C
	default:
		return
	}
	select {
	case <-timeout:
	case <-r.Context().Done():
		panic(http.ErrAbortHandler)
	case <-fs.closed:
		panic(http.ErrAbortHandler)
	}
}
