package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/transport"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store/bolt"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// tracedVendor answers refunds by their amount: 20.00 with a 500, 30.00
// with no response at all, 40.00 with a 404; the rest as the stub. It
// keeps the span context every request it receives carries.
type tracedVendor struct {
	*vendorStub
	mu   sync.Mutex
	seen []trace.SpanContext
}

func (v *tracedVendor) RoundTrip(req *http.Request) (*http.Response, error) {
	v.mu.Lock()
	v.seen = append(v.seen, trace.SpanContextFromContext(req.Context()))
	v.mu.Unlock()
	if req.Body == nil {
		return v.vendorStub.RoundTrip(req)
	}
	b, _ := io.ReadAll(req.Body)
	req.Body.Close()
	answer := func(status int) (*http.Response, error) {
		return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{}`)), Request: req}, nil
	}
	switch {
	case strings.Contains(string(b), "amount=2000"):
		return answer(500)
	case strings.Contains(string(b), "amount=3000"):
		return nil, errors.New("connection reset by peer")
	case strings.Contains(string(b), "amount=4000"):
		return answer(404)
	}
	req.Body = io.NopCloser(strings.NewReader(string(b)))
	return v.vendorStub.RoundTrip(req)
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestSpansSayWhatTheRecordSays: one span per call, a child of the
// caller's, named by the operation, with the record's decision, money and
// ID; Error only where the vendor failed, never for a refusal; and every
// request the chain sends (the lookup, the call) carries the span.
func TestSpansSayWhatTheRecordSays(t *testing.T) {
	pol, err := policy.Parse("test.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "kb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	env := transport.NewEnv(transport.Config{Store: st, Policy: func() (*policy.Policy, error) { return pol, nil },
		Tracer: tp.Tracer("test")})
	defer st.Close()
	defer env.Close()
	vendor := &tracedVendor{vendorStub: &vendorStub{}}
	rt := transport.New(env, "bot", stripevendor.Vendor{}, nil, vendor)

	type want struct {
		name, decision, outcome, code, amount string
		status                                int64
		failed                                bool
	}
	calls := []struct {
		name, method, url, body string
		want                    want
	}{
		{"settled", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=1000",
			want{"keybrake stripe refunds.create", "allowed", "settled", "", "10.00", 200, false}},
		{"vendor 500", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=2000",
			want{"keybrake stripe refunds.create", "allowed", "unknown", "", "20.00", 500, true}},
		{"no response", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=3000",
			want{"keybrake stripe refunds.create", "allowed", "unknown", "", "30.00", 0, true}},
		{"vendor 404", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=4000",
			want{"keybrake stripe refunds.create", "allowed", "released", "", "40.00", 404, false}},
		{"holds nothing", "GET", "https://api.stripe.com/v1/charges/ch_1", "",
			want{"keybrake stripe charges.retrieve", "allowed", "settled", "", "", 200, false}},
		{"over per_call_max", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=9000",
			want{"keybrake stripe refunds.create", "capped", "none", "keybrake_per_call_max", "90.00", 402, false}},
		{"blocked", "POST", "https://api.stripe.com/v1/customers", "email=a%40b.c",
			want{"keybrake stripe customers.create", "blocked", "none", "keybrake_not_allowed", "", 403, false}},
		{"refused before classify", "POST", "https://evil.example/v1/refunds", "charge=ch_1&amount=1000",
			want{"keybrake stripe POST", "blocked", "none", "keybrake_unknown_host", "", 403, false}},
	}
	tracer := tp.Tracer("caller")
	parents := map[string]trace.SpanContext{}
	for _, c := range calls {
		ctx, parent := tracer.Start(context.Background(), "caller "+c.name)
		req, _ := newRequest(t, c.method, c.url, c.body)
		resp, err := rt.RoundTrip(req.WithContext(ctx))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		parent.End()
		parents[c.name] = parent.SpanContext()
	}
	if err := env.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	byID := map[int64]audit.Record{}
	var recs []audit.Record
	st.Query(context.Background(), audit.Query{}, func(r *audit.Record) error {
		recs = append(recs, *r)
		byID[int64(r.ID)] = *r
		return nil
	})

	spans := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var ours []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		spans[s.SpanContext().SpanID()] = s
		if s.InstrumentationScope().Name == "test" {
			ours = append(ours, s)
		}
	}
	if len(ours) != len(calls) || len(recs) != len(calls) {
		t.Fatalf("%d calls, %d records, %d keybrake spans", len(calls), len(recs), len(ours))
	}
	for i, c := range calls {
		s := ours[i]
		a := attrs(s)
		w := c.want
		t.Run(c.name, func(t *testing.T) {
			if s.Parent().SpanID() != parents[c.name].SpanID() || s.SpanContext().TraceID() != parents[c.name].TraceID() {
				t.Errorf("span %q is not the caller's child", s.Name())
			}
			if s.SpanKind() != trace.SpanKindInternal {
				t.Errorf("kind %v", s.SpanKind())
			}
			if s.Name() != w.name {
				t.Errorf("name %q, want %q", s.Name(), w.name)
			}
			rec, ok := byID[a["keybrake.record_id"].AsInt64()]
			if !ok {
				t.Fatalf("keybrake.record_id %v names no record", a["keybrake.record_id"].String())
			}
			got := map[string]string{
				"decision": a["keybrake.decision"].AsString(), "outcome": a["keybrake.outcome"].AsString(),
				"code": a["keybrake.code"].AsString(), "amount": a["keybrake.amount"].AsString(),
				"rule": a["keybrake.rule"].AsString(), "agent": a["keybrake.agent"].AsString(),
				"method": a["http.request.method"].AsString(),
			}
			wantAttrs := map[string]string{"decision": w.decision, "outcome": w.outcome, "code": w.code,
				"amount": w.amount, "rule": rec.Rule, "agent": "bot", "method": c.method}
			for k, v := range wantAttrs {
				if got[k] != v {
					t.Errorf("%s %q, want %q", k, got[k], v)
				}
			}
			if string(rec.Decision) != w.decision || string(rec.Outcome) != w.outcome || rec.Code != w.code {
				t.Errorf("the record says %s/%s/%s", rec.Decision, rec.Outcome, rec.Code)
			}
			if refused := a["keybrake.refused"]; refused.Type() != attribute.BOOL || refused.AsBool() != (w.decision != "allowed") {
				t.Errorf("keybrake.refused %v", refused.String())
			}
			if st := a["http.response.status_code"].AsInt64(); st != w.status || int(st) != rec.Status {
				t.Errorf("status %d, want %d (the record %d)", st, w.status, rec.Status)
			}
			if failed := s.Status().Code == codes.Error; failed != w.failed {
				t.Errorf("status %v %q, want error %v", s.Status().Code, s.Status().Description, w.failed)
			}
			if s.Status().Code == codes.Ok {
				t.Error("status Ok: the chain leaves Ok to the application")
			}
		})
	}

	// Every request the chain sent, its lookups included, carries the span
	// of the call that sent it: the keybrake span is their parent.
	vendor.mu.Lock()
	defer vendor.mu.Unlock()
	if len(vendor.seen) < 6 {
		t.Fatalf("the vendor saw %d requests", len(vendor.seen))
	}
	for _, sc := range vendor.seen {
		s, ok := spans[sc.SpanID()]
		if !ok || s.InstrumentationScope().Name != "test" {
			t.Errorf("a request reached the vendor carrying span %v, not a keybrake span", sc.SpanID())
		}
	}
}

// TestClosedStoreSpanIsAnError: a store that cannot write is a failure of
// Keybrake, not a decision: the span's status is Error.
func TestClosedStoreSpanIsAnError(t *testing.T) {
	pol, err := policy.Parse("test.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "kb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	env := transport.NewEnv(transport.Config{Store: st, Policy: func() (*policy.Policy, error) { return pol, nil },
		Tracer: tp.Tracer("test")})
	defer env.Close()
	rt := transport.New(env, "bot", stripevendor.Vendor{}, nil, &vendorStub{})
	st.Close()
	req, _ := newRequest(t, "POST", "https://api.stripe.com/v1/charges", "amount=1000&currency=usd")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ended := sr.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans", len(ended))
	}
	a := attrs(ended[0])
	if ended[0].Status().Code != codes.Error || a["keybrake.code"].AsString() != "keybrake_store_error" || !a["keybrake.refused"].AsBool() {
		t.Fatalf("status %v, code %q", ended[0].Status(), a["keybrake.code"].String())
	}
	if _, ok := a["keybrake.record_id"]; ok {
		t.Errorf("a record_id %v for a record the store never wrote", a["keybrake.record_id"].String())
	}
}

// BenchmarkRoundTripTraced is BenchmarkRoundTrip's refund with a recording
// tracer (no exporter): what a span costs a call. BenchmarkRoundTrip itself
// is the cost with tracing off.
func BenchmarkRoundTripTraced(b *testing.B) {
	pol, err := policy.Parse("test.yaml", []byte(testPolicy))
	if err != nil {
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	env := transport.NewEnv(transport.Config{Store: &nullStore{}, Policy: func() (*policy.Policy, error) { return pol, nil },
		Tracer: tp.Tracer("bench")})
	defer env.Close()
	stub := &vendorStub{}
	rt := transport.New(env, "bot", stripevendor.Vendor{}, nil, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := stub.RoundTrip(r)
		stub.mu.Lock()
		stub.received = stub.received[:0]
		stub.mu.Unlock()
		return resp, err
	}))
	const body = "charge=ch_1&amount=1000"
	b.ReportAllocs()
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest("POST", "https://api.stripe.com/v1/refunds", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d", seq.Add(1)))
			req.Header.Set("Authorization", "Bearer sk_test_123")
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}
