package keybrake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

// The scopes of the spans these tests tell apart.
const (
	keybrakeScope = "github.com/keybrake/keybrake"
	otelhttpScope = "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// recording is an SDK tracer provider whose ended spans a test reads.
func recording(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return sr, tp
}

// spansOf are the ended spans of one instrumentation scope, in the order
// they ended.
func spansOf(sr *tracetest.SpanRecorder, scope string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.InstrumentationScope().Name == scope {
			out = append(out, s)
		}
	}
	return out
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// dumpLines is the Dump of kb's call records as the JSON objects it
// writes, keyed by record id: the audit log's own text of each field.
func dumpLines(t *testing.T, kb *keybrake.Brake) map[int64]map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := kb.Dump(&buf, audit.Query{}); err != nil {
		t.Fatal(err)
	}
	out := map[int64]map[string]any{}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	for dec.More() {
		var line map[string]any
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		if line["event"] != nil {
			continue
		}
		id, err := line["id"].(json.Number).Int64()
		if err != nil {
			t.Fatal(err)
		}
		out[id] = line
	}
	return out
}

// failingReserve is a store whose reservations fail while fail is set.
type failingReserve struct {
	store.Store
	fail atomic.Bool
}

func (s *failingReserve) Reserve(ctx context.Context, r *store.Reservation) (store.Admission, error) {
	if s.fail.Load() {
		return store.Admission{}, errors.New("disk on fire")
	}
	return s.Store.Reserve(ctx, r)
}

// TestTracesMatchTheAudit: refunds through stripe-go up to the daily cap,
// then calls refused every way a call is (capped, blocked, an agent the
// policy does not know, a revoked one, a host that is not Stripe's, before
// the call is classified, and a store that fails): exactly one keybrake
// span a call, each saying what the call's audit record says, in the
// audit log's own text; Error only where the store failed; and nothing
// that identifies a customer, a charge or a key.
func TestTracesMatchTheAudit(t *testing.T) {
	fs, url := fakestripe.Start(t)
	for i := 0; i < 8; i++ {
		fs.AddCharge(fakestripe.Charge{ID: fmt.Sprintf("ch_t%d", i), Amount: 10000, Currency: "usd", Captured: true})
	}
	sr, tp := recording(t)
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "keybrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := &failingReserve{Store: bs}
	kb := openBrake(t, metricsPolicy, keybrake.Options{Store: st, Endpoints: fakeEndpoint(url), TracerProvider: tp})
	bot := sdkNoRetry(kb, "refund-bot")

	type want struct {
		decision, code string
		status         int64
		failed         bool
	}
	var wants []want
	for i := 0; i < 4; i++ {
		if _, err := bot.Refunds.New(refund(fmt.Sprintf("ch_t%d", i), 2500)); err != nil {
			t.Fatalf("refund %d: %v", i, err)
		}
		wants = append(wants, want{"allowed", "", 200, false})
	}
	_, err = bot.Refunds.New(refund("ch_t4", 2500))
	stripeErr(t, err, 402)
	wants = append(wants, want{"capped", "keybrake_daily_cap", 402, false})

	_, err = bot.Customers.New(&stripego.CustomerParams{Email: stripego.String("someone@example.com")})
	stripeErr(t, err, 403)
	wants = append(wants, want{"blocked", "keybrake_not_allowed", 403, false})

	_, err = sdkNoRetry(kb, "stranger").Refunds.New(refund("ch_t5", 100))
	se := stripeErr(t, err, 403)
	wants = append(wants, want{"blocked", string(se.Code), 403, false})

	kb.Revoke("refund-bot")
	_, err = bot.Refunds.New(refund("ch_t5", 100))
	se = stripeErr(t, err, 401)
	wants = append(wants, want{"revoked", string(se.Code), 401, false})
	kb.Restore("refund-bot")

	req, err := http.NewRequest("POST", "https://evil.example/v1/refunds", strings.NewReader("charge=ch_t6&amount=100"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testenv.StripeMockKey)
	resp, err := kb.HTTPClient("refund-bot", keybrake.Stripe).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("a host that is not Stripe's: %s", resp.Status)
	}
	wants = append(wants, want{"blocked", "keybrake_unknown_host", 403, false})

	st.fail.Store(true)
	_, err = bot.Refunds.New(refund("ch_t7", 100))
	stripeErr(t, err, 503)
	st.fail.Store(false)
	wants = append(wants, want{"error", "keybrake_store_error", 503, true})

	lines := dumpLines(t, kb)
	spans := spansOf(sr, keybrakeScope)
	if len(spans) != len(wants) || len(lines) != len(wants) {
		t.Fatalf("%d calls, %d records, %d keybrake spans", len(wants), len(lines), len(spans))
	}
	if n := len(sr.Ended()); n != len(spans) {
		t.Errorf("%d spans, %d of them keybrake's: the Brake's spans have another scope", n, len(spans))
	}
	seen := map[int64]bool{}
	for i, s := range spans {
		a := spanAttrs(s)
		w := wants[i]
		id := a["keybrake.record_id"].AsInt64()
		line, ok := lines[id]
		if !ok || seen[id] {
			t.Fatalf("span %d (%s): record_id %d names no record, or one already named", i, s.Name(), id)
		}
		seen[id] = true
		str := func(k string) string { v, _ := line[k].(string); return v }
		num := func(k string) int64 { n, _ := line[k].(json.Number).Int64(); return n }

		checks := []struct {
			key       attribute.Key
			got, want string
		}{
			{"keybrake.agent", a["keybrake.agent"].AsString(), str("agent")},
			{"keybrake.vendor", a["keybrake.vendor"].AsString(), str("vendor")},
			{"keybrake.operation", a["keybrake.operation"].AsString(), str("operation")},
			{"keybrake.decision", a["keybrake.decision"].AsString(), str("decision")},
			{"keybrake.decision (the call)", a["keybrake.decision"].AsString(), w.decision},
			{"keybrake.rule", a["keybrake.rule"].AsString(), str("rule")},
			{"keybrake.code", a["keybrake.code"].AsString(), str("code")},
			{"keybrake.code (the call)", a["keybrake.code"].AsString(), w.code},
			{"keybrake.outcome", a["keybrake.outcome"].AsString(), str("outcome")},
			{"keybrake.currency", a["keybrake.currency"].AsString(), str("currency")},
			{"http.request.method", a["http.request.method"].AsString(), str("method")},
			{"http.response.status_code", fmt.Sprint(a["http.response.status_code"].AsInt64()), fmt.Sprint(num("status"))},
			{"http.response.status_code (the call)", fmt.Sprint(a["http.response.status_code"].AsInt64()), fmt.Sprint(w.status)},
		}
		if str("currency") != "" {
			checks = append(checks, struct {
				key       attribute.Key
				got, want string
			}{"keybrake.amount", a["keybrake.amount"].AsString(), str("amount")})
		} else if v, ok := a["keybrake.amount"]; ok {
			t.Errorf("span %d: keybrake.amount %q for a record without a currency", i, v.String())
		}
		if str("outcome") == "settled" {
			checks = append(checks, struct {
				key       attribute.Key
				got, want string
			}{"keybrake.settled", a["keybrake.settled"].AsString(), str("settled")})
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("span %d (%s): %s %q, the record says %q", i, s.Name(), c.key, c.got, c.want)
			}
		}
		if w.decision == "allowed" {
			if a["keybrake.amount"].AsString() != "25.00" || a["keybrake.settled"].AsString() != "25.00" || a["keybrake.currency"].AsString() != "USD" {
				t.Errorf("span %d: amount %q settled %q %q, want 25.00 USD", i, a["keybrake.amount"].String(), a["keybrake.settled"].String(), a["keybrake.currency"].String())
			}
			if s.Name() != "keybrake stripe refunds.create" {
				t.Errorf("span %d: name %q", i, s.Name())
			}
		}
		if refused := a["keybrake.refused"]; refused.Type() != attribute.BOOL || refused.AsBool() != (w.decision != "allowed") {
			t.Errorf("span %d: keybrake.refused %v for a call %s", i, refused.String(), w.decision)
		}
		if failed := s.Status().Code == codes.Error; failed != w.failed {
			t.Errorf("span %d (%s, %s): status %v %q", i, w.decision, w.code, s.Status().Code, s.Status().Description)
		}
		if s.Parent().IsValid() {
			t.Errorf("span %d has a parent, and the caller had no span", i)
		}
		for _, kv := range s.Attributes() {
			v := kv.Value.String()
			for _, secret := range []string{"ch_t", "cus_", "sk_", "someone@", "evil.example", str("idempotency_key"), str("key_id"), str("request_id"), str("path")} {
				if secret != "" && strings.Contains(v, secret) {
					t.Errorf("span %d: attribute %s = %q holds %q", i, kv.Key, v, secret)
				}
			}
		}
		if strings.Contains(s.Name(), "/") || strings.Contains(s.Name(), "ch_") {
			t.Errorf("span %d: name %q holds a path", i, s.Name())
		}
	}
	if got := spans[len(spans)-2].Name(); got != "keybrake stripe POST" {
		t.Errorf("the call refused before it was classified: name %q, want keybrake stripe POST", got)
	}
	if got := spans[0].InstrumentationScope(); got.Name != keybrakeScope {
		t.Errorf("scope %+v", got)
	}
}

// vendorBehind serves fs and keeps the traceparent of each request.
func vendorBehind(t *testing.T, fs *fakestripe.Server) (url string, seen func() []string) {
	t.Helper()
	var mu sync.Mutex
	var parents []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		parents = append(parents, r.Method+" "+r.URL.Path+" "+r.Header.Get("Traceparent"))
		mu.Unlock()
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), parents...)
	}
}

// stripeOver is stripe-go on an http.Client with rt, retries off.
func stripeOver(rt http.RoundTripper) *client.API {
	b := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{
		HTTPClient: &http.Client{Transport: rt}, MaxNetworkRetries: stripego.Int64(0),
	})
	return client.New(testenv.StripeMockKey, &stripego.Backends{API: b, Connect: b, Uploads: b})
}

// TestTracesNestWithOtelhttp: otelhttp's client transport above the chain
// is the keybrake span's parent; below it (the chain's next), its client
// spans, the lookup's included, are the keybrake span's children, and the
// traceparent the vendor receives names them.
func TestTracesNestWithOtelhttp(t *testing.T) {
	t.Run("above", func(t *testing.T) {
		fs := fakestripe.New()
		fs.AddCharge(fakestripe.Charge{ID: "ch_a", Amount: 10000, Currency: "usd", Captured: true})
		url, _ := vendorBehind(t, fs)
		sr, tp := recording(t)
		kb := openBrake(t, metricsPolicy, keybrake.Options{Endpoints: fakeEndpoint(url), TracerProvider: tp})
		sc := stripeOver(otelhttp.NewTransport(kb.Transport("refund-bot", keybrake.Stripe, nil), otelhttp.WithTracerProvider(tp)))
		if _, err := sc.Refunds.New(refund("ch_a", 2500)); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Customers.New(&stripego.CustomerParams{}); err == nil {
			t.Fatal("a call the policy does not allow passed")
		}
		ours, theirs := spansOf(sr, keybrakeScope), spansOf(sr, otelhttpScope)
		if len(ours) != 2 || len(theirs) != 2 {
			t.Fatalf("%d keybrake spans, %d otelhttp spans; want 2 each", len(ours), len(theirs))
		}
		for i := range ours {
			k, o := ours[i], theirs[i]
			if k.Parent().SpanID() != o.SpanContext().SpanID() || k.SpanContext().TraceID() != o.SpanContext().TraceID() {
				t.Errorf("keybrake span %q: parent %v, want otelhttp's %q %v", k.Name(), k.Parent().SpanID(), o.Name(), o.SpanContext().SpanID())
			}
			if o.SpanKind() != trace.SpanKindClient || o.Parent().IsValid() {
				t.Errorf("otelhttp span %q: kind %v, parent %v", o.Name(), o.SpanKind(), o.Parent())
			}
		}
	})

	t.Run("below", func(t *testing.T) {
		fs := fakestripe.New()
		fs.AddCharge(fakestripe.Charge{ID: "ch_b", Amount: 10000, Currency: "usd", Captured: true})
		url, vendorSaw := vendorBehind(t, fs)
		sr, tp := recording(t)
		kb := openBrake(t, metricsPolicy, keybrake.Options{Endpoints: fakeEndpoint(url), TracerProvider: tp})
		below := otelhttp.NewTransport(nil, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{}))
		sc := stripeOver(kb.Transport("refund-bot", keybrake.Stripe, below))
		if _, err := sc.Refunds.New(refund("ch_b", 2500)); err != nil {
			t.Fatal(err)
		}
		ours, theirs := spansOf(sr, keybrakeScope), spansOf(sr, otelhttpScope)
		if len(ours) != 1 {
			t.Fatalf("%d keybrake spans, want 1", len(ours))
		}
		k := ours[0]
		if k.Parent().IsValid() {
			t.Errorf("the keybrake span has parent %v; the caller had none", k.Parent())
		}
		saw := vendorSaw()
		if len(theirs) == 0 || len(theirs) != len(saw) {
			t.Fatalf("%d otelhttp spans, %d requests at the vendor (%q)", len(theirs), len(saw), saw)
		}
		methods := map[string]int{}
		for i, o := range theirs {
			a := spanAttrs(o)
			methods[a["http.request.method"].AsString()]++
			if o.Parent().SpanID() != k.SpanContext().SpanID() || o.SpanContext().TraceID() != k.SpanContext().TraceID() {
				t.Errorf("otelhttp span %q: parent %v, want the keybrake span %v", o.Name(), o.Parent().SpanID(), k.SpanContext().SpanID())
			}
			if o.SpanKind() != trace.SpanKindClient {
				t.Errorf("otelhttp span %q: kind %v", o.Name(), o.SpanKind())
			}
			// The vendor's request names otelhttp's span as its parent, in
			// the keybrake span's trace.
			want := fmt.Sprintf("00-%s-%s-01", k.SpanContext().TraceID(), o.SpanContext().SpanID())
			if !strings.HasSuffix(saw[i], " "+want) {
				t.Errorf("the vendor saw %q, want traceparent %s", saw[i], want)
			}
		}
		if methods["POST"] != 1 {
			t.Errorf("otelhttp spans by method %v, want the refund's POST", methods)
		}
		if k.EndTime().Before(theirs[len(theirs)-1].EndTime()) {
			t.Error("the keybrake span ended before the vendor call it holds")
		}
	})
}

// TestTracingOffChangesNothing: without a TracerProvider the Brake starts
// no span, not even on the global provider, and the request it sends the
// vendor carries the caller's own context, the caller's span in it.
func TestTracingOffChangesNothing(t *testing.T) {
	global, gtp := recording(t)
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(gtp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_off", Amount: 10000, Currency: "usd", Captured: true})
	kb := openBrake(t, metricsPolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})

	var mu sync.Mutex
	var sent []context.Context
	next := roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.Method == "POST" {
			mu.Lock()
			sent = append(sent, r.Context())
			mu.Unlock()
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	callers, ctp := recording(t)
	ctx, span := ctp.Tracer("caller").Start(context.Background(), "caller")
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/refunds", strings.NewReader("charge=ch_off&amount=2500"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+testenv.StripeMockKey)
	resp, err := kb.Transport("refund-bot", keybrake.Stripe, next).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	span.End()
	if resp.StatusCode != 200 {
		t.Fatalf("refund: %s", resp.Status)
	}
	if len(sent) != 1 || sent[0] != ctx {
		t.Fatalf("the vendor's request carries another context than the caller's (%d sent)", len(sent))
	}
	if got := trace.SpanContextFromContext(sent[0]); got.SpanID() != span.SpanContext().SpanID() {
		t.Errorf("the vendor's request carries span %v, the caller's is %v", got.SpanID(), span.SpanContext().SpanID())
	}
	if n := len(global.Ended()); n != 0 {
		t.Errorf("%d spans on the global provider", n)
	}
	if n := len(callers.Ended()); n != 1 {
		t.Errorf("%d spans on the caller's provider, want its own", n)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestProxyTraces: behind otelhttp's handler the proxy's calls are
// keybrake spans whose parent is the server span, a call refused before
// the chain decides it (a key the proxy does not know) included.
func TestProxyTraces(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_p", Amount: 10000, Currency: "usd", Captured: true})
	sr, tp := recording(t)
	kb := openBrake(t, capPolicy, keybrake.Options{Endpoints: fakeEndpoint(url), TracerProvider: tp})
	h, err := kb.Proxy(keybrake.ProxyOptions{
		Keys: keyTable{agentKey: {keybrake.AgentKey{ID: "kbk_refund", Agent: "refund-bot", Vendor: keybrake.Stripe}, keybrake.KeyFound}},
		Secret: func(keybrake.Vendor, []string) (map[string]string, error) {
			return map[string]string{"STRIPE_SECRET_KEY": stripeSecret}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(otelhttp.NewHandler(h, "proxy", otelhttp.WithTracerProvider(tp)))
	t.Cleanup(srv.Close)

	if _, err := stripeAt(srv.URL, agentKey).Refunds.New(refund("ch_p", 2500)); err != nil {
		t.Fatal(err)
	}
	if _, err := stripeAt(srv.URL, "kb_"+strings.Repeat("z", 40)).Refunds.New(refund("ch_p", 2500)); err == nil {
		t.Fatal("a key the proxy does not know refunded")
	}
	ours, servers := spansOf(sr, keybrakeScope), spansOf(sr, otelhttpScope)
	if len(ours) != 2 || len(servers) != 2 {
		t.Fatalf("%d keybrake spans, %d server spans; want 2 each", len(ours), len(servers))
	}
	wantDecision := []string{"allowed", "revoked"}
	for i, k := range ours {
		o := servers[i]
		if o.SpanKind() != trace.SpanKindServer || k.Parent().SpanID() != o.SpanContext().SpanID() {
			t.Errorf("keybrake span %q: parent %v, want the server span %v (kind %v)", k.Name(), k.Parent().SpanID(), o.SpanContext().SpanID(), o.SpanKind())
		}
		a := spanAttrs(k)
		if got := a["keybrake.decision"].AsString(); got != wantDecision[i] {
			t.Errorf("keybrake span %d: decision %q, want %q", i, got, wantDecision[i])
		}
		if a["keybrake.record_id"].AsInt64() == 0 {
			t.Errorf("keybrake span %d has no record_id", i)
		}
	}
}
