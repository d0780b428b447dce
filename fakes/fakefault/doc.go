// Package fakefault is the machinery the fake vendor APIs share
// (fakes/fakestripe, fakes/faketwilio, fakes/fakeresend): their fault
// injection, their request log, the writing of an answer, and starting a
// fake for a test. A test of an agent does not import it, except to name
// a Scope or an Injector; it uses a fake's Server, whose fault methods
// come from here, so that they read and behave the same in every fake.
//
// A fake keeps its own Fault type, with the fields only its vendor has
// (Stripe's error type and Stripe-Should-Retry, Twilio's error code,
// Resend's error name), and its own Inject for it; everything else about
// faults is this package's:
//
//   - Injector is what a fake's Server embeds, and so what a test calls:
//     FailNext, ExecuteThenFail, Delay, Hang, ClearFaults, and On with
//     its Scope (FailNext, ExecuteThenFail, DelayNext, HangNext,
//     ExecuteThenHang) for the requests of one method and path prefix.
//   - Faults holds the faults: Add (what a fake's Inject does once it has
//     checked its own fields), Clear, Take, which matches a request to
//     the first fault with uses left and uses it up, and Serve, which runs
//     a request through the fault it drew: the wait of Delay or Hang,
//     bounded by the request's context and by Close, before the work or,
//     with Execute, after it, then the fault's answer in place of the real
//     one when the fault has a Status.
//   - A Rule is what every fake's Fault says alike (which requests, how
//     many, what happens to them); the fake renders the answer itself, as
//     a func() Response given to Add, so the error body stays the
//     vendor's.
//   - Log is the record of requests, kept as the fake's own Request type
//     and guarded by the fake's lock, so that an entry changes atomically
//     with the state its request changed.
//   - Response is an answer not yet written, and Start serves a fake on a
//     loopback httptest.Server for the duration of a test, closing the
//     fake (which releases held requests) before the server.
//
// Nothing here knows a vendor: the panics of a broken setup (a fault for
// no request, a success status, a fault with no effect) carry the name of
// the fake they came from, given to New.
package fakefault
