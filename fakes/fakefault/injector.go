package fakefault

import "time"

// Injector is the fault injection every fake's Server offers a test, the
// same in each: a Server embeds the Injector of its Faults and adds only
// its own Inject, for its Fault type with the fields its vendor has. What
// "doing the work" means (money moves, a message is billed, emails go
// out) is the fake's, and its Fault type says.
//
// The zero Injector is not usable; get one from Faults.Injector. It is a
// value, safe to copy and for concurrent use. Each method panics on a
// broken setup (n < 1, a status outside 400-599, a delay of 0 or less),
// naming the fake.
type Injector struct{ faults *Faults }

// Injector returns the Injector that adds to fs.
func (fs *Faults) Injector() Injector { return Injector{faults: fs} }

// FailNext answers the next n requests with status and the fake's error
// body for it, doing nothing.
func (in Injector) FailNext(n, status int) { in.On("", "").FailNext(n, status) }

// ExecuteThenFail lets the next n requests do their work, then answers
// status instead of the result: the answer lost on its way back.
func (in Injector) ExecuteThenFail(n, status int) { in.On("", "").ExecuteThenFail(n, status) }

// Delay makes every following request wait d before it is handled, until
// ClearFaults. A client that gives up first gets no answer and nothing is
// done.
func (in Injector) Delay(d time.Duration) { in.faults.Add(Rule{Delay: d}, nil) }

// Hang makes every following request wait, unanswered and with nothing
// done, until its client gives up or the fake is closed; until
// ClearFaults.
func (in Injector) Hang() { in.faults.Add(Rule{Hang: true}, nil) }

// ClearFaults removes every fault. Requests already waiting keep waiting.
func (in Injector) ClearFaults() { in.faults.Clear() }

// On returns a scope whose faults strike only requests with this method
// ("" for any) and an escaped path starting with pathPrefix ("" for any),
// as in fs.On("POST", "/v1/refunds").ExecuteThenFail(1, 500).
func (in Injector) On(method, pathPrefix string) Scope { return in.faults.On(method, pathPrefix) }
