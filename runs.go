package keybrake

import (
	"context"

	"github.com/keybrake/keybrake/internal/transport"
)

// WithRun returns ctx tagging every call made with it as part of run (a
// task, a ticket: "ticket-4312"). The run is in each call's audit record
// (audit --run) and a grant's per_run budget counts each run apart; a
// grant with per_run refuses calls with no run unless allow_no_run. A run
// id is 1 to 128 visible ASCII characters without "/": a call with a bad
// one is refused (keybrake_bad_run), never counted under a cleaned one.
// Through keybrake serve the header Keybrake-Run does the same.
func WithRun(ctx context.Context, run string) context.Context {
	return transport.WithRun(ctx, run)
}

// WithPrincipal returns ctx tagging every call made with it as made on
// behalf of principal, who delegated the run ("alice@example.com"): 1 to
// 256 visible ASCII characters, in each audit record (audit --principal).
// Through keybrake serve the header Keybrake-On-Behalf-Of does the same.
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return transport.WithPrincipal(ctx, principal)
}
