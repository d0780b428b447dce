package transport_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/transport"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

const testPolicy = `version: 1
agents:
  bot:
    stripe:
      daily_cap: 100.00 USD
      per_call_max: 50.00 USD
      allow:
        - POST /v1/refunds
        - POST /v1/charges
        - GET /v1/charges/{id}
  gone:
    revoked: true
    stripe:
      allow: ["GET /v1/charges/{id}"]
`

// vendorStub stands in for Stripe where these tests need an answer: it
// answers a charge lookup, a refund and a charge, and records what reached
// it. It is not a Stripe model; fakes/fakestripe is.
type vendorStub struct {
	mu       sync.Mutex
	received []string
	hang     bool
}

func (v *vendorStub) RoundTrip(req *http.Request) (*http.Response, error) {
	body := ""
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		req.Body.Close()
		body = string(b)
	}
	v.mu.Lock()
	v.received = append(v.received, req.Method+" "+req.URL.String()+" "+body)
	hang := v.hang
	v.mu.Unlock()
	if hang {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	answer := `{}`
	switch {
	case req.Method == "GET" && req.URL.Path == "/v1/charges/ch_1":
		answer = `{"id":"ch_1","object":"charge","amount":9000,"amount_captured":9000,"amount_refunded":0,"captured":true,"currency":"usd","customer":null}`
	case req.URL.Path == "/v1/refunds":
		answer = `{"id":"re_1","object":"refund","amount":1000,"currency":"usd","status":"succeeded","charge":"ch_1"}`
	case req.URL.Path == "/v1/charges":
		answer = `{"id":"ch_2","object":"charge","amount":1000,"amount_captured":1000,"captured":true,"currency":"usd","status":"succeeded"}`
	}
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"application/json"}, "Request-Id": {"req_stub"}},
		Body:    io.NopCloser(strings.NewReader(answer)),
		Request: req,
	}, nil
}

func (v *vendorStub) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.received)
}

type fixture struct {
	env   *transport.Env
	store store.Store
	stub  *vendorStub
	rt    *transport.RoundTripper
}

func newFixture(t *testing.T, agent string) *fixture {
	t.Helper()
	pol, err := policy.Parse("test.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "kb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	env := transport.NewEnv(transport.Config{Store: st, Policy: func() (*policy.Policy, error) { return pol, nil }})
	t.Cleanup(func() {
		env.Close()
		st.Close()
	})
	stub := &vendorStub{}
	return &fixture{env: env, store: st, stub: stub, rt: transport.New(env, agent, stripevendor.Vendor{}, nil, stub)}
}

func (f *fixture) records(t *testing.T) []audit.Record {
	t.Helper()
	if err := f.env.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	err := f.store.Query(context.Background(), audit.Query{}, func(r *audit.Record) error {
		out = append(out, *r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

func newRequest(t *testing.T, method, rawURL, body string) (*http.Request, *trackedBody) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	tb := &trackedBody{Reader: strings.NewReader(body)}
	if body != "" {
		req.Body = tb
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Authorization", "Bearer sk_test_123")
	return req, tb
}

// TestRefusedRequests is threats.md's "deny, do not normalise", one row an
// item: each request is refused with 403 and a specific code, audited, and
// never forwarded.
func TestRefusedRequests(t *testing.T) {
	big := "amount=100&currency=usd&description=" + strings.Repeat("x", 1<<20)
	tests := []struct {
		name   string
		method string
		url    string
		body   string
		edit   func(*http.Request)
		code   string
	}{
		{"dot segments", "POST", "https://api.stripe.com/v1/customers/x/../../transfers", "amount=1", nil, "keybrake_bad_path"},
		{"dot segment in raw path", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1", func(r *http.Request) { r.URL.Path = "/v1/./refunds" }, "keybrake_bad_path"},
		{"empty segment", "POST", "https://api.stripe.com/v1//refunds", "charge=ch_1", nil, "keybrake_bad_path"},
		{"trailing slash", "POST", "https://api.stripe.com/v1/refunds/", "charge=ch_1", nil, "keybrake_bad_path"},
		{"percent escape", "GET", "https://api.stripe.com/v1/%63harges/ch_1", "", nil, "keybrake_bad_path"},
		{"escaped slash", "GET", "https://api.stripe.com/v1/charges/ch_1%2F..%2Frefunds", "", nil, "keybrake_bad_path"},
		{"path parameter", "GET", "https://api.stripe.com/v1/charges/ch_1;x=1", "", nil, "keybrake_bad_path"},
		{"fragment", "GET", "https://api.stripe.com/v1/charges/ch_1#frag", "", nil, "keybrake_bad_url"},
		{"lower-case method", "post", "https://api.stripe.com/v1/refunds", "charge=ch_1", nil, "keybrake_bad_method"},
		{"unknown method", "TRACE", "https://api.stripe.com/v1/refunds", "", nil, "keybrake_bad_method"},
		{"method override header", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1", func(r *http.Request) { r.Header.Set("X-HTTP-Method-Override", "DELETE") }, "keybrake_method_override"},
		{"method override, other spelling", "GET", "https://api.stripe.com/v1/charges/ch_1", "", func(r *http.Request) { r.Header.Set("X-Method-Override", "POST") }, "keybrake_method_override"},
		{"unknown host", "POST", "https://api.stripe.com.evil.example/v1/refunds", "charge=ch_1", nil, "keybrake_unknown_host"},
		{"plain http to the official host", "POST", "http://api.stripe.com/v1/refunds", "charge=ch_1", nil, "keybrake_unknown_host"},
		{"upper-case host", "POST", "https://API.stripe.com/v1/refunds", "charge=ch_1", nil, "keybrake_unknown_host"},
		{"trailing dot host", "POST", "https://api.stripe.com./v1/refunds", "charge=ch_1", nil, "keybrake_unknown_host"},
		{"explicit port", "POST", "https://api.stripe.com:8443/v1/refunds", "charge=ch_1", nil, "keybrake_unknown_host"},
		{"userinfo", "POST", "https://evil@api.stripe.com/v1/refunds", "charge=ch_1", nil, "keybrake_bad_url"},
		{"Host header differs", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1", func(r *http.Request) { r.Host = "evil.example" }, "keybrake_host_mismatch"},
		{"query string on a write", "POST", "https://api.stripe.com/v1/refunds?amount=99999", "charge=ch_1&amount=1", nil, "keybrake_query_on_write"},
		{"duplicate scalar", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=1&amount=99999", nil, "keybrake_duplicate_param"},
		{"duplicate after decoding", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&metadata[a]=1&metadata%5Ba%5D=2", nil, "keybrake_duplicate_param"},
		{"semicolon separator", "POST", "https://api.stripe.com/v1/refunds", "amount=1;currency=usd&charge=ch_1", nil, "keybrake_bad_params"},
		{"bad escape", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=%zz", nil, "keybrake_bad_params"},
		{"key with a space", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount+=1", nil, "keybrake_bad_param_name"},
		{"wrong content type", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1", func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }, "keybrake_bad_content_type"},
		{"multipart", "POST", "https://api.stripe.com/v1/charges", "amount=1", func(r *http.Request) { r.Header.Set("Content-Type", "multipart/form-data; boundary=x") }, "keybrake_bad_content_type"},
		{"body over 1 MiB", "POST", "https://api.stripe.com/v1/charges", big, nil, "keybrake_body_too_large"},
		{"amount with a plus", "POST", "https://api.stripe.com/v1/charges", "amount=%2B100&currency=usd", nil, "keybrake_bad_amount"},
		{"amount with a leading zero", "POST", "https://api.stripe.com/v1/charges", "amount=0100&currency=usd", nil, "keybrake_bad_amount"},
		{"negative amount", "POST", "https://api.stripe.com/v1/charges", "amount=-100&currency=usd", nil, "keybrake_bad_amount"},
		{"decimal amount", "POST", "https://api.stripe.com/v1/charges", "amount=10.5&currency=usd", nil, "keybrake_bad_amount"},
		{"exponent amount", "POST", "https://api.stripe.com/v1/charges", "amount=1e3&currency=usd", nil, "keybrake_bad_amount"},
		{"amount over 8 digits", "POST", "https://api.stripe.com/v1/charges", "amount=100000000&currency=usd", nil, "keybrake_bad_amount"},
		{"three-decimal currency", "POST", "https://api.stripe.com/v1/charges", "amount=1005&currency=kwd", nil, "keybrake_bad_amount"},
		{"unknown currency", "POST", "https://api.stripe.com/v1/charges", "amount=100&currency=xyz", nil, "keybrake_bad_currency"},
		{"body on a GET", "GET", "https://api.stripe.com/v1/charges/ch_1", "expand[0]=customer", nil, "keybrake_body_on_get"},
		{"bad charge id", "POST", "https://api.stripe.com/v1/refunds", "charge=cus_1", nil, "keybrake_bad_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "bot")
			req, body := newRequest(t, "GET", "https://api.stripe.com/", tt.body)
			req.Method = tt.method
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			req.URL = u
			req.Host = u.Host
			if tt.edit != nil {
				tt.edit(req)
			}
			resp, err := f.rt.RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 403 {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
			if n := f.stub.count(); n != 0 {
				t.Fatalf("%d requests reached the vendor: %v", n, f.stub.received)
			}
			if tt.body != "" && !body.closed.Load() {
				t.Error("the caller's body was not closed")
			}
			recs := f.records(t)
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1", len(recs))
			}
			r := recs[0]
			if r.Decision != policy.Blocked || r.Code != tt.code || r.Reason == "" || r.Outcome != audit.None || r.Status != 403 {
				t.Fatalf("record: decision %s code %s (want %s) reason %q outcome %s", r.Decision, r.Code, tt.code, r.Reason, r.Outcome)
			}
		})
	}
}

// snapshot is what RoundTrip must not change of the caller's request.
type snapshot struct {
	Method, URL, Host string
	Header            http.Header
	ContentLength     int64
	Body              io.ReadCloser
	Ctx               context.Context
}

func snap(r *http.Request) snapshot {
	return snapshot{r.Method, r.URL.String(), r.Host, r.Header.Clone(), r.ContentLength, r.Body, r.Context()}
}

// TestRoundTripperContract: the caller's request is never modified, and
// its body is closed on every path, allowed or refused.
func TestRoundTripperContract(t *testing.T) {
	tests := []struct {
		name   string
		agent  string
		method string
		url    string
		body   string
		status int
	}{
		{"allowed refund", "bot", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=1000", 200},
		{"allowed charge", "bot", "POST", "https://api.stripe.com/v1/charges", "amount=1000&currency=usd", 200},
		{"allowed read", "bot", "GET", "https://api.stripe.com/v1/charges/ch_1", "", 200},
		{"blocked", "bot", "POST", "https://api.stripe.com/v1/transfers", "amount=1&currency=usd&destination=acct_1", 403},
		{"capped", "bot", "POST", "https://api.stripe.com/v1/charges", "amount=5001&currency=usd", 402},
		{"revoked", "gone", "GET", "https://api.stripe.com/v1/charges/ch_1", "", 401},
		{"unknown agent", "nobody", "GET", "https://api.stripe.com/v1/charges/ch_1", "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.agent)
			req, body := newRequest(t, tt.method, tt.url, tt.body)
			req.Header.Set("Idempotency-Key", "k-"+tt.name)
			before := snap(req)
			resp, err := f.rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if after := snap(req); !reflect.DeepEqual(before, after) {
				t.Fatalf("request modified:\nbefore %+v\nafter  %+v", before, after)
			}
			if tt.body != "" && !body.closed.Load() {
				t.Fatal("the caller's body was not closed")
			}
			if n := len(f.records(t)); n != 1 {
				t.Fatalf("%d audit records, want 1", n)
			}
		})
	}
}

// TestForwardedRequestCarriesReplayableBody: the request that goes on the
// wire has the body Keybrake decided on, a GetBody and a ContentLength,
// whatever the caller's body was (chunked, no GetBody).
func TestForwardedRequestCarriesReplayableBody(t *testing.T) {
	f := newFixture(t, "bot")
	var seen *http.Request
	f.rt = transport.New(f.env, "bot", stripevendor.Vendor{}, nil, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r
		return f.stub.RoundTrip(r)
	}))
	req, _ := newRequest(t, "POST", "https://api.stripe.com/v1/charges", "amount=1000&currency=usd")
	req.ContentLength = 0 // chunked, as resend-go sends
	resp, err := f.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen == req {
		t.Fatal("the caller's own request went on the wire")
	}
	if seen.ContentLength != int64(len("amount=1000&currency=usd")) || seen.GetBody == nil {
		t.Fatalf("forwarded ContentLength %d, GetBody %v", seen.ContentLength, seen.GetBody != nil)
	}
	b, _ := seen.GetBody()
	got, _ := io.ReadAll(b)
	if string(got) != "amount=1000&currency=usd" {
		t.Fatalf("GetBody gave %q", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestContextIsHonoured: a cancelled context stops the call before
// anything is sent, and a caller that gives up while the vendor hangs gets
// its error promptly, the money left counted as unknown.
func TestContextIsHonoured(t *testing.T) {
	f := newFixture(t, "bot")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, body := newRequest(t, "POST", "https://api.stripe.com/v1/charges", "amount=1000&currency=usd")
	if _, err := f.rt.RoundTrip(req.WithContext(ctx)); !errors.Is(err, context.Canceled) {
		t.Fatalf("RoundTrip = %v, want context.Canceled", err)
	}
	if !body.closed.Load() || f.stub.count() != 0 {
		t.Fatal("cancelled call: body not closed or request forwarded")
	}

	f.stub.hang = true
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ = newRequest(t, "POST", "https://api.stripe.com/v1/charges", "amount=1000&currency=usd")
	start := time.Now()
	if _, err := f.rt.RoundTrip(req.WithContext(ctx)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RoundTrip = %v, want DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("RoundTrip returned %v after the deadline", waited)
	}
	recs := f.records(t)
	last := recs[len(recs)-1]
	if last.Outcome != audit.Unknown || last.Reserved.Micros != 10_000_000 {
		t.Fatalf("hung call: %+v", last)
	}
	c, err := f.store.Counter(context.Background(), last.Holds[0].Key)
	if err != nil || c.Unknown != 10_000_000 {
		t.Fatalf("counter %+v, %v", c, err)
	}
}

// TestClosedStoreRefuses: a store that cannot write refuses the call with
// 503 and says why; nothing is sent.
func TestClosedStoreRefuses(t *testing.T) {
	f := newFixture(t, "bot")
	f.store.Close()
	req, body := newRequest(t, "POST", "https://api.stripe.com/v1/charges", "amount=1000&currency=usd")
	resp, err := f.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "keybrake_store_error") {
		t.Fatalf("status %d body %s", resp.StatusCode, b)
	}
	if f.stub.count() != 0 || !body.closed.Load() {
		t.Fatal("sent, or body not closed")
	}
}

// TestLookupPinsStripeVersion: the agent's Stripe-Version does not shape
// the answers Keybrake reads; its own lookups use the version it reads.
func TestLookupPinsStripeVersion(t *testing.T) {
	f := newFixture(t, "bot")
	var versions []string
	f.rt = transport.New(f.env, "bot", stripevendor.Vendor{}, nil, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == "GET" {
			versions = append(versions, r.Header.Get("Stripe-Version"))
		}
		return f.stub.RoundTrip(r)
	}))
	req, _ := newRequest(t, "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=1000")
	req.Header.Set("Stripe-Version", "2019-02-19")
	resp, err := f.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if len(versions) != 1 || versions[0] != "2023-10-16" {
		t.Fatalf("lookup versions %v", versions)
	}
}
