package keybrake

// Traces: OpenTelemetry spans of the calls, on Options.TracerProvider.
//
// With a TracerProvider every call a chain sees (HTTPClient, Transport,
// the proxy), allowed or refused, is one span of kind internal, started in
// the request's context and ended with the call's final audit record: for
// a call whose response is settled from its body, once the caller has
// read or closed the body. Its name is "keybrake <vendor> <operation>"
// ("keybrake stripe refunds.create"), or "keybrake <vendor> <METHOD>" for
// a call the vendor's endpoint table does not name (its path holds ids);
// it starts as the latter and is renamed once the call is classified.
// Its attributes, read from the final record, are the audit log's:
//
//	keybrake.agent, keybrake.vendor, keybrake.operation
//	keybrake.decision      allowed, blocked, scoped, capped, revoked, held, error
//	keybrake.refused       true for every refusal
//	keybrake.rule          the rule that decided ("agents.refund-bot.stripe.daily_cap")
//	keybrake.code          the refusal's code (refusals only)
//	keybrake.amount        what the call can move, an exact decimal in major
//	keybrake.currency      units ("25.00") and its currency (calls that move money)
//	keybrake.settled       what moved, as amount (settled calls)
//	keybrake.outcome       none, reserved, settled, released, unknown, ...
//	keybrake.record_id     the audit record's ID
//	http.request.method, http.response.status_code (the vendor's, or the refusal's)
//
// Status Error marks a failure only: the store failed (a 503
// keybrake_store_error, or a refusal whose record could not be written),
// or the vendor gave no answer or a 5xx. A refusal is a decision, not a
// failure: Unset, like an allowed call. No customer or account id,
// request parameter, idempotency key, key, path or query, and no reason
// text (it can name a customer), is ever an attribute or a span name.
//
// The request a chain sends carries the span in its context, so an
// otelhttp transport below the chain (Transport's next) makes the vendor
// call's client span its child, and an otelhttp transport or handler
// above it is its parent. A nil TracerProvider traces nothing and costs
// nothing: the chain then passes the caller's context on unchanged.

import (
	"runtime/debug"

	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the Brake's spans.
const tracerName = "github.com/keybrake/keybrake"

// newTracer is the chains' tracer on tp, nil without one.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	var opts []trace.TracerOption
	if v := moduleVersion(); v != "" {
		opts = append(opts, trace.WithInstrumentationVersion(v))
	}
	return tp.Tracer(tracerName, opts...)
}

// moduleVersion is the version of this module the program was built
// with, "" when it is not known (a build from a work tree says "(devel)").
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := bi.Main.Version
	if bi.Main.Path != tracerName {
		v = ""
		for _, d := range bi.Deps {
			if d.Path == tracerName {
				v = d.Version
				if d.Replace != nil {
					v = d.Replace.Version
				}
			}
		}
	}
	if v == "(devel)" {
		return ""
	}
	return v
}
