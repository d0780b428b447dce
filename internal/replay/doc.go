// Package replay decides recorded calls again under another policy: what
// `keybrake policy replay` prints. Give Replay a parsed policy and the
// audit records of a window, in the order the store wrote them, and it
// returns a Report: per agent, the calls whose decision changes (from ->
// to, by rule), the money the new policy would have stopped or let
// through, the first call it would cap, and the calls it could not
// decide again with certainty, each with why. It is pure: no store, no
// clock, no vendor.
//
// # How a call is decided again
//
// As the transport decides it: policy.Authorize on the request the
// record keeps (method, path, parameters, customer, account, run,
// refund_of, uncapped), then policy.Decide with whom the call touches
// and what it moves (audit.Record's "What replay needs" fields), for the
// call's day in the new policy's time zone, then its limits against
// counters simulated in memory as the store counts them (counters.go):
// day, week and month counters, per customer, per run and per charge,
// and rolling windows over the records' times.
//
// The counters count what the new policy would have admitted. A call
// both policies admit counts what its record says still counts: its
// settlement, nothing once released, all of its reservation while its
// outcome is unknown. A call only the new policy admits counts its amount
// as decided, which is an estimate (Agent.Estimated): the vendor never
// saw it. Records before Report.Since fill the counters and are not
// reported; Warmup says how far back they must go.
//
// # What is not replayed
//
// Events are not calls. Refusals the policy file did not make are counted
// by reason in Agent.NotReplayed, never as changed: revoked (a kill
// switch, a halt, a trip, a fleet stop, an unknown agent key), error (the
// store, a lookup, an unknown amount), a refusal of the request itself or
// of its idempotency key, and any decision replay does not know (such as
// held). A call whose decision would rest on an input the record does not
// hold is decided as well as the record allows and listed in
// Agent.Uncertain with the input it lacks: a customer's metadata, whether
// the agent created the customer, a customer never looked up because no
// scope needed it, recipients the audit log never keeps (email
// addresses), a parameter a rule names that the record masks, drops as a
// secret or keeps only as a summary (Twilio's Body). A parameter the
// record holds no trace of was not sent.
//
// Replay is exact for calls made one at a time. Calls in flight together
// are replayed in the order the store wrote their records; a call that
// was released after another was decided counted while it was in flight,
// and counts nothing in the replay.
package replay
