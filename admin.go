package keybrake

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/approval"
	"github.com/keybrake/keybrake/internal/transport"
)

// serveAdmin serves the admin socket, when there is one.
func (b *Brake) serveAdmin() error {
	path := b.opts.AdminSocket
	if path == "" && b.opts.DBPath != "" && b.opts.Store == nil {
		path = b.opts.DBPath + ".sock"
	}
	if path == "" || path == "-" {
		return nil
	}
	src := &admin.Local{Store: b.store, Now: b.opts.Clock, State: b.adminState}
	srv, err := admin.Serve(path, admin.Handler(&flushing{Local: src, env: b.env, metrics: b.metrics.handler, decide: b.decideApproval}))
	if err != nil {
		err = fmt.Errorf("keybrake: admin socket %s: %w", path, err)
		if b.opts.AdminSocket == "" {
			// The default socket is a convenience: the agent runs on
			// without it, and the operator is told why the command
			// cannot read the live database.
			b.report(err)
			return nil
		}
		return err
	}
	b.admin = srv
	return nil
}

// flushing lets queries see the settlements of calls that have answered.
type flushing struct {
	*admin.Local
	env     *transport.Env
	metrics http.Handler // GET /metrics (metrics.go)
	decide  func(ctx context.Context, id string, approve bool, by string, ttl time.Duration) (*approval.Approval, error)
}

// DecideApproval is the admin socket's POST /approvals/decide
// (admin.Approver): Brake.Approve and Deny, audited by this Brake.
func (f *flushing) DecideApproval(ctx context.Context, id string, approve bool, by string, ttl time.Duration) (*approval.Approval, error) {
	return f.decide(ctx, id, approve, by, ttl)
}

// Metrics is the admin socket's /metrics (admin.MetricsSource).
func (f *flushing) Metrics() http.Handler { return f.metrics }

func (f *flushing) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	if err := f.env.Flush(ctx); err != nil {
		return err
	}
	return f.Local.Query(ctx, q, fn)
}

// adminState is what the admin socket's status reads besides the store.
// Stops names the source of each stop beyond the file (the kill switch
// and its path, Brake.Halt, a fleet's stop), for when no policy is in
// force to carry them; without it status could only say "the agent
// runner".
func (b *Brake) adminState() admin.State {
	pol, err := b.policies.inForce()
	// The stops beyond the file, each with its source, read under one
	// lock: what is halted and revoked follows from them.
	return admin.State{PolicyFile: b.opts.PolicyFile, Policy: pol, PolicyErr: err,
		Stops: b.policies.stopSources(), Warnings: b.opts.Warnings, Day: b.env.LastDay()}
}
