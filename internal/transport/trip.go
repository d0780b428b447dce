package transport

import (
	"github.com/keybrake/keybrake/policy"
)

// trip halts the agent when a rate limit with halt: true has refused its
// call: a loop that hits its velocity limit is stopped until a person
// looks, not throttled to the limit for the rest of the day. The Brake
// keeps the halt where it outlives the process (the kill switch file, or
// the fleet's store), audits it and pages; the call itself stays refused
// by its limit.
func (t *RoundTripper) trip(c *call, l policy.Limit, v policy.Verdict) {
	if t.env.tripper == nil {
		return
	}
	t.env.tripper(t.agent, l.Rule, v.Reason)
}
