package transport

import (
	"context"
	"fmt"

	"github.com/keybrake/keybrake/policy"
)

// Runs: a runner tags each call with the run (task) it is made for, and
// who delegated it, through the request's context (keybrake.WithRun,
// WithPrincipal; the proxy's Keybrake-Run and Keybrake-On-Behalf-Of
// headers). They are recorded on every call; per_run counts each run.

type runKey struct{}

type principalKey struct{}

// WithRun returns ctx tagging its calls with run.
func WithRun(ctx context.Context, run string) context.Context {
	return context.WithValue(ctx, runKey{}, run)
}

// WithPrincipal returns ctx tagging its calls as made on behalf of p.
func WithPrincipal(ctx context.Context, p string) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// RunOf returns the run and principal ctx tags, and whether each is set.
func RunOf(ctx context.Context) (run string, hasRun bool, principal string, hasPrincipal bool) {
	run, hasRun = ctx.Value(runKey{}).(string)
	principal, hasPrincipal = ctx.Value(principalKey{}).(string)
	return run, hasRun, principal, hasPrincipal
}

// tag records the call's run and principal, refusing a bad one: it is
// never cut or cleaned into one that would count elsewhere.
func (t *RoundTripper) tag(c *call) (policy.Verdict, bool) {
	run, hasRun, principal, hasPrincipal := RunOf(c.req.Context())
	if hasRun {
		if err := policy.CheckRun(run); err != nil {
			return policy.Verdict{Decision: policy.Blocked, Rule: "run", Code: "keybrake_bad_run",
				Reason: fmt.Sprintf("run %.140q refused: %v", run, err)}, false
		}
		c.rec.Run = run
	}
	if hasPrincipal {
		if err := policy.CheckPrincipal(principal); err != nil {
			return policy.Verdict{Decision: policy.Blocked, Rule: "run", Code: "keybrake_bad_principal",
				Reason: fmt.Sprintf("principal %.270q refused: %v", principal, err)}, false
		}
		c.rec.Principal = principal
	}
	return policy.Verdict{}, true
}
