package keybrake

import (
	"context"
	"errors"
	"log/slog"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/transport"
)

// Logs: what the Brake says of itself, as log/slog records on
// Options.Logger. Two kinds:
//
//	level ERROR, message "keybrake: failure", attribute error: a failure
//	    no caller can be told of (a completion that could not be written,
//	    its money still counted; an audit event lost; a prune that failed;
//	    a watcher rebuilt). The same errors reach Options.ErrorLog. A
//	    failure of the fleet's stops (stops.go) adds op (fleet_stop_write,
//	    fleet_stops_read, fleet_stops_watch), and for a write method (the
//	    Brake method: Halt, Resume, Revoke, Restore) and agent (Revoke and
//	    Restore). A failure of a call's writes (internal/transport's
//	    Failure) adds op (audit_write, release_write, completion_write,
//	    completion_retry, completions_left, created_customer_write,
//	    fact_write), record (the audit record's ID) where there is one,
//	    and agent and vendor where it is one call's.
//	level INFO, message "keybrake: recovered", attributes error and op
//	    (completions_written, fleet_stops_read): the completions that had
//	    failed are all written now, the fleet's stops read again. A read
//	    of the fleet's stops that keeps failing is logged once, then once
//	    a minute.
//	level INFO (ERROR for policy_invalid), message "keybrake: event",
//	    attributes event (policy_reload, policy_invalid, kill_switch,
//	    revoke, halt, fleet_stops), reason, policy (the hash in force),
//	    record (the audit record's ID; 0 when it could not be written) and,
//	    for a revoke, agent: what changed what the agents may do.
//
// Calls are not logged: the audit log is their record. Nothing logged
// holds a secret, an agent key or a card number; reasons are the audit's,
// redacted as it is.

// failure is an error reported with what failed, for the log to key on:
// op is a fixed word, attrs what it acted on (never a secret or an id
// of a customer). ErrorLog receives it as the error it wraps would read.
type failure struct {
	op        string
	attrs     []slog.Attr
	err       error
	recovered bool // the failure is over: logged at INFO as "keybrake: recovered"
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// failed is err reported as a failure of op.
func failed(op string, err error, attrs ...slog.Attr) error {
	return &failure{op: op, attrs: attrs, err: err}
}

// recovered is a failure of op that is over, err saying so.
func recovered(op string, err error, attrs ...slog.Attr) error {
	return &failure{op: op, attrs: attrs, err: err, recovered: true}
}

// logFailure logs err, a failure no caller can be told of.
func (b *Brake) logFailure(err error) {
	l := b.opts.Logger
	if l == nil {
		return
	}
	attrs := []slog.Attr{slog.String("error", err.Error())}
	level, msg := slog.LevelError, "keybrake: failure"
	var f *failure
	var tf *transport.Failure
	switch {
	case errors.As(err, &f):
		attrs = append(append(attrs, slog.String("op", f.op)), f.attrs...)
		if f.recovered {
			level, msg = slog.LevelInfo, "keybrake: recovered"
		}
	case errors.As(err, &tf):
		attrs = append(attrs, slog.String("op", tf.Op))
		if tf.Record != 0 {
			attrs = append(attrs, slog.Uint64("record", tf.Record))
		}
		if tf.Agent != "" {
			attrs = append(attrs, slog.String("agent", tf.Agent), slog.String("vendor", tf.Vendor))
		}
		if tf.Recovered {
			level, msg = slog.LevelInfo, "keybrake: recovered"
		}
	}
	l.LogAttrs(context.Background(), level, msg, attrs...)
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
	attrs := []slog.Attr{slog.String("event", rec.Event), slog.String("reason", rec.Reason),
		slog.String("policy", rec.PolicyHash), slog.Uint64("record", rec.ID)}
	if agent := rec.Params["agent"]; agent != "" {
		attrs = append(attrs, slog.String("agent", agent))
	}
	l.LogAttrs(context.Background(), level, "keybrake: event", attrs...)
}
