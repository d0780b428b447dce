// Package fakefault is the fault injection the fake vendor APIs share
// (fakes/fakestripe, fakes/faketwilio, fakes/fakeresend), with
// the plumbing of their servers that is the same in each: the request
// log, the writing of an answer, and starting a fake for a test.
//
// A fake keeps its own Fault type, with the fields only its vendor has
// (Stripe's error type and Stripe-Should-Retry, Twilio's error code,
// Resend's error name), and its own exported API; it delegates to this
// package for what every fake does alike:
//
//   - Faults holds the faults: Add (what a fake's Inject does once it
//     has checked its own fields), Clear, On and its Scope (FailNext,
//     ExecuteThenFail, DelayNext, HangNext, ExecuteThenHang), Take, which
//     matches a request to the first fault with uses left and uses it up,
//     and Serve, which runs a request through the fault it drew: the wait
//     of Delay or Hang, bounded by the request's context and by Close,
//     before the work or, with Execute, after it, then the fault's answer
//     in place of the real one when the fault has a Status.
//   - A Rule is what every fake's Fault says alike (which requests, how
//     many, what happens to them); the fake renders the answer itself,
//     as a func() Response given to Add, so the error body stays the
//     vendor's.
//   - Log is the record of requests, kept as the fake's own Request type
//     and guarded by the fake's lock, so that an entry changes atomically
//     with the state its request changed.
//   - Response is an answer not yet written, and Start serves a fake on
//     a loopback httptest.Server for the duration of a test.
//
// Nothing here knows a vendor: the panics of a broken setup name the
// fake they came from, as before the machinery was shared.
package fakefault
