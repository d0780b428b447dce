package keybrake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
)

// These tests are the proxy's edges: what it does when it is full, when a
// request is too big, when the agent's headers try to steer it, and when
// a response is too big to hold. Like proxy_test.go they put
// fakes/fakestripe behind the proxy; where the test needs to see exactly
// what arrived, or to hold the vendor mid-answer, a handler of the test's
// own stands in front of it.

// hardPolicy is capPolicy's refund-bot, who may also list customers, so a
// call that moves no money reaches the vendor.
const hardPolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 100.00 USD
      per_call_max: 30.00 USD
      allow:
        - POST /v1/refunds
        - GET /v1/customers
`

// bound is how long a condition loop waits before the test fails: far
// more than any of them should take, and never asserted as a duration.
const bound = 10 * time.Second

// eventually polls cond until it holds or bound passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// proxyOver starts a proxy for kb's Brake over vendor, a stand-in for
// Stripe, with the agent keys of proxy_test.go and opts, and returns its
// base URL and the Brake.
func proxyOver(t *testing.T, policyText string, vendor http.Handler, opts keybrake.ProxyOptions) (string, *keybrake.Brake) {
	t.Helper()
	vs := httptest.NewServer(vendor)
	t.Cleanup(vs.Close)
	kb := openBrake(t, policyText, keybrake.Options{Endpoints: fakeEndpoint(vs.URL)})
	if opts.Keys == nil {
		opts.Keys = keyTable{
			agentKey: {keybrake.AgentKey{ID: "kbk_refund", Agent: "refund-bot", Vendor: keybrake.Stripe}, keybrake.KeyFound},
		}
	}
	if opts.Secret == nil {
		opts.Secret = func(keybrake.Vendor, []string) (map[string]string, error) {
			return map[string]string{"STRIPE_SECRET_KEY": stripeSecret}, nil
		}
	}
	h, err := kb.Proxy(opts)
	if err != nil {
		t.Fatal(err)
	}
	ps := httptest.NewServer(h)
	t.Cleanup(ps.Close)
	return ps.URL, kb
}

// refundReq is a refund of amount minor units of ch_1 through the proxy at
// base, with the agent's key.
func refundReq(ctx context.Context, base string, amount int) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/refunds", strings.NewReader(fmt.Sprintf("charge=ch_1&amount=%d", amount)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+agentKey)
	return req
}

// stripeError is the part of Stripe's error body the tests read.
type stripeError struct {
	Error struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// do sends req and returns the status and Stripe's error code, if the
// body is one.
func do(t *testing.T, req *http.Request) (int, string, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var se stripeError
	json.Unmarshal(b, &se)
	return resp.StatusCode, se.Error.Code, b
}

func records(t *testing.T, kb *keybrake.Brake, code string) []audit.Record {
	t.Helper()
	var out []audit.Record
	for _, r := range dump(t, kb, audit.Query{}) {
		if r.Code == code {
			out = append(out, r)
		}
	}
	return out
}

// TestProxyBusyBeyondMaxInFlight: with two calls held at the vendor and
// MaxInFlight 2, a third is answered 503 keybrake_busy in Stripe's
// format, audited, and sent nowhere; once the two end, calls pass again.
func TestProxyBusyBeyondMaxInFlight(t *testing.T) {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 90000, Currency: "usd", Captured: true})
	fs.On("POST", "/v1/refunds").HangNext(2)
	base, kb := proxyOver(t, capPolicy, fs, keybrake.ProxyOptions{MaxInFlight: 2})
	t.Cleanup(fs.Close) // before the servers' Close, which waits for held requests

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var held sync.WaitGroup
	for i := 0; i < 2; i++ {
		held.Add(1)
		go func() {
			defer held.Done()
			if resp, err := http.DefaultClient.Do(refundReq(ctx, base, 1000)); err == nil {
				resp.Body.Close()
			}
		}()
	}
	eventually(t, "two refunds held at the vendor", func() bool { return fs.RequestsTo("POST", "/v1/refunds") == 2 })
	before := fs.Requests()

	status, code, body := do(t, refundReq(context.Background(), base, 1000))
	if status != http.StatusServiceUnavailable || code != "keybrake_busy" {
		t.Fatalf("third call: %d %s, want 503 keybrake_busy in Stripe's format", status, body)
	}
	if n := fs.Requests(); n != before {
		t.Fatalf("the refused call reached the vendor: %d requests, were %d", n, before)
	}
	if recs := records(t, kb, "keybrake_busy"); len(recs) != 1 || recs[0].Decision != keybrake.Error || recs[0].Host != "api.stripe.com" {
		t.Fatalf("busy records %+v, want one Error for api.stripe.com", recs)
	}

	cancel() // the two agents give up; their slots must come back
	held.Wait()
	eventually(t, "a call to pass once the held ones ended", func() bool {
		status, code, body := do(t, refundReq(context.Background(), base, 1000))
		if status != http.StatusOK && code != "keybrake_busy" {
			t.Fatalf("after the held calls ended: %d %s", status, body)
		}
		return status == http.StatusOK
	})
}

// TestProxyRefusesABodyOverTheLimit: a body over the chain's 1 MiB limit
// is refused with keybrake_body_too_large and nothing reaches the vendor,
// not even the refund's lookup.
func TestProxyRefusesABodyOverTheLimit(t *testing.T) {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 90000, Currency: "usd", Captured: true})
	base, kb := proxyOver(t, capPolicy, fs, keybrake.ProxyOptions{})

	for _, tt := range []struct {
		name    string
		chunked bool
	}{{"with a length", false}, {"chunked", true}} {
		t.Run(tt.name, func(t *testing.T) {
			body := "charge=ch_1&amount=100&metadata[pad]=" + strings.Repeat("a", 1<<20)
			var r io.Reader = strings.NewReader(body)
			if tt.chunked {
				r = io.MultiReader(r) // no length known: sent chunked
			}
			req, _ := http.NewRequest("POST", base+"/v1/refunds", r)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+agentKey)
			status, code, b := do(t, req)
			if status != http.StatusForbidden || code != "keybrake_body_too_large" {
				t.Fatalf("%d %.300s, want 403 keybrake_body_too_large", status, b)
			}
			if n := fs.Requests(); n != 0 {
				t.Fatalf("%d requests reached the vendor", n)
			}
		})
	}
	if recs := records(t, kb, "keybrake_body_too_large"); len(recs) != 2 || recs[0].Agent != "refund-bot" {
		t.Fatalf("records %+v, want two for refund-bot", recs)
	}
	// Just under the limit still passes: the limit is the chain's, not a
	// smaller one of the proxy's.
	status, _, b := do(t, refundReq(context.Background(), base, 100))
	if status != http.StatusOK {
		t.Fatalf("a small refund after: %d %s", status, b)
	}
}

// TestProxyNeverForwardsHopByHopOrForwardingHeaders: what a client may say
// to the proxy about the connection, the proxy itself or where the call
// came from and is going never reaches the vendor, on the call or on its
// lookup, and the record's host is Stripe's whatever the agent named.
func TestProxyNeverForwardsHopByHopOrForwardingHeaders(t *testing.T) {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 90000, Currency: "usd", Captured: true})
	var mu sync.Mutex
	var arrived []*http.Request
	vendor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived = append(arrived, r.Clone(context.Background()))
		mu.Unlock()
		fs.ServeHTTP(w, r)
	})
	base, kb := proxyOver(t, capPolicy, vendor, keybrake.ProxyOptions{})

	banned := []string{"Connection", "Upgrade", "Te", "Trailer", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Named-By-Connection"}
	tests := []struct {
		name   string
		header map[string]string
		proxy  bool // sent through Transport.Proxy: absolute-form, Proxy-Authorization
	}{
		{"connection-named headers", map[string]string{"Connection": "keep-alive, X-Named-By-Connection", "X-Named-By-Connection": "1", "Keep-Alive": "timeout=5"}, false},
		{"te trailers", map[string]string{"Te": "trailers, deflate", "Trailer": "X-Late"}, false},
		{"upgrade", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, false},
		{"forwarding", map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http",
			"Forwarded": "for=203.0.113.7;host=evil.example;proto=http", "Proxy-Connection": "keep-alive"}, false},
		{"as a forward proxy", nil, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			arrived = nil
			mu.Unlock()
			client := http.DefaultClient
			target := base
			if tt.proxy {
				pu, _ := url.Parse(base)
				pu.User = url.UserPassword("agent", "proxy-secret")
				client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
				target = "http://evil.example"
			}
			req := refundReq(context.Background(), target, 100+i)
			req.Host = "evil.example"
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			mu.Lock()
			defer mu.Unlock()
			// The first call also looks the charge up; later ones know it.
			if n := len(arrived); n == 0 || arrived[n-1].Method != "POST" || (i == 0 && n != 2) {
				t.Fatalf("%d requests reached the vendor, want the refund (and the first time its lookup)", n)
			}
			for _, r := range arrived {
				if strings.Contains(r.Host, "evil") {
					t.Errorf("%s %s arrived for host %q", r.Method, r.URL.Path, r.Host)
				}
				for _, h := range banned {
					if v, ok := r.Header[h]; ok {
						t.Errorf("%s %s: the vendor got %s: %q", r.Method, r.URL.Path, h, v)
					}
				}
				if got := r.Header.Get("Authorization"); got != "Bearer "+stripeSecret {
					t.Errorf("%s %s: Authorization %q, want the held secret", r.Method, r.URL.Path, got)
				}
			}
		})
	}
	for _, r := range dump(t, kb, audit.Query{}) {
		if r.Host != "api.stripe.com" || r.Outcome != audit.Settled {
			t.Fatalf("record %d: host %q outcome %q, want api.stripe.com, settled", r.ID, r.Host, r.Outcome)
		}
	}
}

// TestProxyStreamsResponses: a list far larger than any buffer the chain
// keeps comes through byte for byte, and its head reaches the agent while
// the vendor is still writing the rest.
func TestProxyStreamsResponses(t *testing.T) {
	var list bytes.Buffer
	list.WriteString(`{"object":"list","url":"/v1/customers","has_more":false,"data":[`)
	for i := 0; list.Len() < 3<<20; i++ {
		if i > 0 {
			list.WriteString(",")
		}
		fmt.Fprintf(&list, `{"id":"cus_%08d","object":"customer","email":"c%d@example.com","metadata":{"n":"%d"}}`, i, i, i)
	}
	list.WriteString(`]}`)
	whole := list.Bytes()
	// The head is far smaller than any buffer on the way, so it arrives
	// only if the proxy flushes what it has.
	half := 1000

	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	vendor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" || r.URL.Path != "/v1/customers" || r.Header.Get("Authorization") != "Bearer "+stripeSecret {
			http.Error(w, `{"error":{"type":"invalid_request_error","message":"unexpected"}}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_stream")
		// With a length, as Stripe sends one: ReverseProxy flushes a body
		// of unknown length at once whatever its FlushInterval.
		w.Header().Set("Content-Length", strconv.Itoa(len(whole)))
		w.Write(whole[:half])
		w.(http.Flusher).Flush()
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		w.Write(whole[half:])
	})
	base, kb := proxyOver(t, hardPolicy, vendor, keybrake.ProxyOptions{})
	t.Cleanup(release) // before the servers' Close, which waits for the held handler

	req, _ := http.NewRequest("GET", base+"/v1/customers?limit=100", nil)
	req.Header.Set("Authorization", "Bearer "+agentKey)
	type head struct {
		resp  *http.Response
		bytes []byte
		err   error
	}
	got := make(chan head, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- head{err: err}
			return
		}
		b := make([]byte, half)
		_, err = io.ReadFull(resp.Body, b)
		got <- head{resp, b, err}
	}()
	var h head
	select {
	case h = <-got:
	case <-time.After(bound):
		t.Fatal("the head never arrived while the vendor held the rest: the proxy buffers responses")
	}
	if h.err != nil {
		t.Fatal(h.err)
	}
	resp, first := h.resp, h.bytes
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%d %.300s", resp.StatusCode, first)
	}
	release()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(first, rest...), whole) {
		t.Fatalf("the body changed on the way: %d bytes arrived, %d sent", len(first)+len(rest), len(whole))
	}
	if resp.Header.Get("Request-Id") != "req_stream" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers changed: %v", resp.Header)
	}
	recs := dump(t, kb, audit.Query{})
	if len(recs) != 1 || recs[0].Status != 200 || recs[0].RequestID != "req_stream" {
		t.Fatalf("records %+v", recs)
	}
}

// TestProxyRefusalsNameTheKeyTheyKnow: a key that is in the file but
// refused (revoked, or another vendor's) is named in its record by id and
// agent, so an audit of the agent shows its refused attempts too.
func TestProxyRefusalsNameTheKeyTheyKnow(t *testing.T) {
	p := startProxy(t)
	for _, key := range []string{revokedKey, twilioKey} {
		req := refundReq(context.Background(), p.url, 100)
		req.Header.Set("Authorization", "Bearer "+key)
		if status, _, b := do(t, req); status != http.StatusUnauthorized {
			t.Fatalf("%d %s, want 401", status, b)
		}
	}
	want := map[string]string{"keybrake_key_revoked": "kbk_old", "keybrake_key_wrong_vendor": "kbk_sms"}
	for code, id := range want {
		recs := records(t, p.kb, code)
		if len(recs) != 1 || recs[0].KeyID != id || recs[0].Agent != "refund-bot" {
			t.Errorf("%s records %+v, want one naming %s of refund-bot", code, recs, id)
		}
	}
}
