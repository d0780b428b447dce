package transport

import (
	"context"
	"errors"

	"github.com/keybrake/keybrake/policy"
)

// A revocation must stop calls already inside Keybrake, not only the next
// ones. A call waits in two places: on a lookup (a GET to the vendor, which
// can take seconds) and on the store's commit of its reservation
// (milliseconds). The lookup runs under a context that a policy change
// refusing the call cancels at once; after the reservation, recheck
// decides the call again before a byte of it is sent. A call that holds
// nothing is rechecked just before it is sent, its record written while
// it is on the wire.

// refusedWhileWaiting is the cause of a lookup's cancellation by a policy
// that no longer allows the call.
type refusedWhileWaiting struct {
	v    policy.Verdict
	hash string // the policy that refused
}

func (e *refusedWhileWaiting) Error() string {
	return "the call was refused while it waited: " + e.v.Reason
}

// untilRefused returns a context for what the call waits on, cancelled as
// soon as the policy in force changes and refuses the call. stop ends the
// watch; ok is false when the call was refused, with the verdict, and the
// audit record then names the policy that refused it.
func (t *RoundTripper) untilRefused(c *call) (ctx context.Context, stop func() (policy.Verdict, bool)) {
	parent := c.req.Context()
	if t.env.changed == nil {
		return parent, func() (policy.Verdict, bool) { return policy.Verdict{}, true }
	}
	r := t.policyRequest(c) // a copy: the lookup fills c.vc in while this watches
	ctx, cancel := context.WithCancelCause(parent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			changed := t.env.changed() // before the load: a change in between closes it
			if v, hash, refused := t.refusedNow(c.pol, r); refused {
				cancel(&refusedWhileWaiting{v: v, hash: hash})
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, func() (policy.Verdict, bool) {
		cancel(nil) // keeps an earlier cause
		<-done
		var rw *refusedWhileWaiting
		if errors.As(context.Cause(ctx), &rw) {
			c.rec.PolicyHash = rw.hash
			return rw.v, false
		}
		return policy.Verdict{}, true
	}
}

// refusedNow decides r again by the policy now in force, when it is not
// decided, the one r was allowed under.
func (t *RoundTripper) refusedNow(decided *policy.Policy, r policy.Request) (v policy.Verdict, hash string, refused bool) {
	pol, err := t.env.policy()
	if err != nil {
		return policy.Verdict{Decision: policy.Error, Rule: "policy", Code: "keybrake_policy_invalid",
			Reason: "no valid policy is in force: " + err.Error()}, "", true
	}
	if pol == decided {
		return policy.Verdict{}, "", false
	}
	if v, _ := pol.Authorize(r); v.Decision != policy.Allowed {
		return v, pol.Hash, true
	}
	return policy.Verdict{}, "", false
}
