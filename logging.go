package keybrake

import (
	"context"
	"log/slog"

	"github.com/keybrake/keybrake/audit"
)

// Logs: what the Brake says of itself, as log/slog records on
// Options.Logger. Two kinds:
//
//	level ERROR, message "keybrake: failure", attribute error: a failure
//	    no caller can be told of (a completion that could not be written,
//	    its money still counted; an audit event lost; a prune that failed;
//	    a watcher rebuilt). The same errors reach Options.ErrorLog.
//	level INFO (ERROR for policy_invalid), message "keybrake: event",
//	    attributes event (policy_reload, policy_invalid, kill_switch,
//	    revoke, halt), reason, policy (the hash in force) and record (the
//	    audit record's ID): what changed what the agents may do.
//
// Calls are not logged: the audit log is their record. Nothing logged
// holds a secret, an agent key or a card number; reasons are the audit's,
// redacted as it is.

// logFailure logs err, a failure no caller can be told of.
func (b *Brake) logFailure(err error) {
	if l := b.opts.Logger; l != nil {
		l.LogAttrs(context.Background(), slog.LevelError, "keybrake: failure", slog.String("error", err.Error()))
	}
}

// logEvent logs a policy event the audit log now holds as record rec.
func (b *Brake) logEvent(rec *audit.Record) {
	l := b.opts.Logger
	if l == nil {
		return
	}
	level := slog.LevelInfo
	if rec.Event == "policy_invalid" {
		level = slog.LevelError
	}
	l.LogAttrs(context.Background(), level, "keybrake: event",
		slog.String("event", rec.Event), slog.String("reason", rec.Reason),
		slog.String("policy", rec.PolicyHash), slog.Uint64("record", rec.ID))
}
