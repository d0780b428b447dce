package transport

import (
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
)

// Traces: one OpenTelemetry span per call the chain sees, allowed or
// refused, from its first stage to its final record, the one Metrics
// sees. The span starts in the request's context, so a caller's span (an
// otelhttp handler or transport above the chain) is its parent; and the
// call's request carries the span from then on, so its lookups, its store
// writes and the request sent to next (an otelhttp transport below the
// chain) are its children.
//
// The span's attributes are read from the final record alone (spanEnd),
// so they are what the audit log says of the call. Its status is Error
// only when something failed: the store, or the vendor (no response, a
// 5xx). A refusal is Keybrake doing its work, not a failure: its status is
// Unset, and keybrake.refused, keybrake.decision and keybrake.code say
// what refused it. Nothing a call names of whom it touches or how it is
// paid (customer, account, parameters, idempotency key, the path's ids,
// the query) and no free-text reason is ever an attribute.

// The attribute keys of a call's span.
const (
	attrAgent     = attribute.Key("keybrake.agent")
	attrVendor    = attribute.Key("keybrake.vendor")
	attrOperation = attribute.Key("keybrake.operation")
	attrDecision  = attribute.Key("keybrake.decision")
	attrRefused   = attribute.Key("keybrake.refused")
	attrRule      = attribute.Key("keybrake.rule")
	attrCode      = attribute.Key("keybrake.code")
	attrAmount    = attribute.Key("keybrake.amount")
	attrCurrency  = attribute.Key("keybrake.currency")
	attrSettled   = attribute.Key("keybrake.settled")
	attrOutcome   = attribute.Key("keybrake.outcome")
	attrRecordID  = attribute.Key("keybrake.record_id")
	attrMethod    = attribute.Key("http.request.method")
	attrStatus    = attribute.Key("http.response.status_code")
)

// startSpan begins the call's span, when the Brake traces, and gives the
// call a shallow copy of its request that carries it (the caller's request
// is not modified). Without a tracer the request is left as it came, at
// no cost.
func (t *RoundTripper) startSpan(c *call) {
	if t.env.tracer == nil {
		return
	}
	method := spanMethod(c.req.Method)
	ctx, span := t.env.tracer.Start(c.req.Context(), "keybrake "+t.vendor.Name()+" "+method,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrAgent.String(t.agent), attrVendor.String(t.vendor.Name()), attrMethod.String(method)))
	c.req = c.req.WithContext(ctx)
	c.span = span
}

// finished hands a call's final record to the metrics and ends its span.
// It is called once a call.
func (t *RoundTripper) finished(c *call, rec *audit.Record) {
	t.env.metrics.Finished(rec)
	if c.span != nil {
		spanEnd(c.span, rec)
	}
}

// spanEnd names span by the call's operation, sets its attributes and
// status from rec, and ends it.
func spanEnd(span trace.Span, rec *audit.Record) {
	method := spanMethod(rec.Method)
	what := rec.Operation
	if what == "" {
		what = method // an endpoint the vendor does not list: its path holds ids
	}
	span.SetName("keybrake " + rec.Vendor + " " + what)
	refused := rec.Decision != policy.Allowed
	attrs := make([]attribute.KeyValue, 0, 14)
	attrs = append(attrs,
		attrDecision.String(string(rec.Decision)),
		attrRefused.Bool(refused),
		attrOutcome.String(string(rec.Outcome)),
	)
	if rec.Operation != "" {
		attrs = append(attrs, attrOperation.String(rec.Operation))
	}
	if rec.Rule != "" {
		attrs = append(attrs, attrRule.String(rec.Rule))
	}
	if refused && rec.Code != "" {
		attrs = append(attrs, attrCode.String(rec.Code))
	}
	if rec.Amount.Currency != "" {
		attrs = append(attrs, attrAmount.String(rec.Amount.Decimal()), attrCurrency.String(string(rec.Amount.Currency)))
	}
	if rec.Outcome == audit.Settled && rec.Settled.Currency != "" {
		attrs = append(attrs, attrSettled.String(rec.Settled.Decimal()))
	}
	if rec.ID != 0 {
		attrs = append(attrs, attrRecordID.Int64(int64(rec.ID)))
	}
	if rec.Status != 0 {
		attrs = append(attrs, attrStatus.Int(rec.Status))
	}
	span.SetAttributes(attrs...)
	if failed := spanFailure(rec); failed != "" {
		span.SetStatus(codes.Error, failed)
	}
	span.End()
}

// spanFailure says what failed in a call whose record is rec, or "" when
// nothing did: a refusal, or an answer the vendor gave below 500. The
// description is fixed text, never an error's, which can hold the URL.
func spanFailure(rec *audit.Record) string {
	switch {
	case rec.Code == "keybrake_store_error":
		return "keybrake_store_error: the store failed"
	case rec.Decision != policy.Allowed && rec.ID == 0:
		return "the refusal's audit record could not be written"
	case rec.Decision != policy.Allowed:
		return ""
	case rec.Status == 0:
		return "the vendor did not answer"
	case rec.Status >= 500:
		return fmt.Sprintf("the vendor answered %d", rec.Status)
	}
	return ""
}

// spanMethod is the request's method as a span names it: one of HTTP's,
// or _OTHER (OpenTelemetry's convention), so a caller's typo does not
// make a span name of its own.
func spanMethod(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return m
	case "":
		return "GET" // net/http's meaning of an empty method
	}
	return "_OTHER"
}
