// Package notify pages a person when Keybrake refuses calls, without
// flooding them when an agent stuck in a loop is refused thousands of times
// a minute.
//
// A Dispatcher takes every audit record (Offer), keeps the refusals and the
// alerting events, and groups them by key: the kind (the decision, or the
// event), the agent, the vendor and the rule that decided. For each key:
//
//   - the first occurrence since the key was last quiet is delivered at
//     once (Count 1): this is the page, and it goes ahead of every other
//     key's pending summaries;
//   - later occurrences are counted; at the end of each window in which any
//     came, one alert reports the window's count and the running total
//     ("capped 1,204 more times since 03:13, 3,999 in all since 03:12").
//     If the key has been quiet for the window's last half, the count
//     waits up to half a Window more: either the burst ends and the final
//     alert carries it, or the key resumes and it goes out then. A burst
//     shorter than half a Window is thus two messages, the page and the
//     final one, never a "still going" that is already stale;
//   - each window that reported is followed by one twice as long, up to
//     Options.MaxWindow, so a loop that runs all night yields a dozen
//     messages rather than hundreds;
//   - a whole Window (the base length) with no occurrence ends the burst,
//     with a Final alert carrying what was not yet reported, unless the
//     burst was a single occurrence. The next occurrence pages again.
//
// With the defaults (1 minute, growing to 1 hour), 4,000 capped calls in
// 90 seconds give three messages: the page within milliseconds, the count
// at the end of the first minute, and the final one a minute after the
// last call.
//
// Offer never blocks and never fails: it copies the few fields an alert
// needs into a bounded queue and returns; when the queue is full it drops
// the record and counts it, and the next alert says how many were dropped
// (the audit log keeps every record regardless). A single goroutine owns
// the grouping state; deliveries run on goroutines of their own, at most
// Options.Concurrency at once, each bounded by Options.Timeout, so a slow
// or failing Notifier delays other alerts at worst and never the calls.
// Alerts of one key are delivered one at a time, in order; while one is
// still being delivered, the key's next window count waits and grows
// instead of queueing, so the backlog stays one alert per key.
//
// A failed delivery is retried once, after Options.RetryDelay; if the retry
// fails too, the error goes to Options.Report and the alert is counted as
// failed. Its occurrences are not carried into the next alert, but Total
// in every later alert of the burst still counts them. A page that could
// not be delivered is not sent again: the next alert of the burst (or the
// next burst) is the next chance to reach someone.
//
// Close forms the final alert of every burst with unreported occurrences,
// delivers what is pending within its context and stops the goroutines.
//
// The clock (Options.Now) is read when a record is offered and when a
// window is due; deadlines are kept by a real timer, so a test with a fake
// clock drives the windows itself rather than sleeping across them.
//
// The Slack incoming-webhook Notifier is in notify/slack.
package notify
