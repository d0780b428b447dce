package keybrake_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
)

// The proxy's tests run stripe-go pointed at the proxy's base URL, as an
// agent in another language would point its SDK, with fakes/fakestripe
// behind it: the fake stands in for Stripe and shows what reached it and
// what moved.

// keyTable is a KeyFinder over a fixed table, standing in for the keys
// file (internal/keys has its own tests).
type keyTable map[string]struct {
	key keybrake.AgentKey
	res keybrake.KeyResult
}

func (k keyTable) FindKey(token string) (keybrake.AgentKey, keybrake.KeyResult) {
	e, ok := k[token]
	if !ok {
		return keybrake.AgentKey{}, keybrake.KeyUnknown
	}
	return e.key, e.res
}

var (
	// Built from parts, so no scanner mistakes them for real keys.
	stripeSecret = "sk_" + "test_" + strings.Repeat("S", 24)
	agentKey     = "kb_" + strings.Repeat("a", 40)
	revokedKey   = "kb_" + strings.Repeat("r", 40)
	twilioKey    = "kb_" + strings.Repeat("t", 40)
)

type proxied struct {
	fake *fakestripe.Server
	url  string // the proxy's base URL
	kb   *keybrake.Brake

	mu   sync.Mutex
	auth []string // the Authorization headers that reached the fake
	tags []string // the Keybrake-Run and -On-Behalf-Of headers that reached it: none should
}

func (p *proxied) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.auth...)
}

func startProxy(t *testing.T) *proxied {
	t.Helper()
	p := &proxied{fake: fakestripe.New()}
	p.fake.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 90000, Currency: "usd", Captured: true})
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auth = append(p.auth, r.Header.Get("Authorization"))
		p.tags = append(p.tags, r.Header.Values("Keybrake-Run")...)
		p.tags = append(p.tags, r.Header.Values("Keybrake-On-Behalf-Of")...)
		p.mu.Unlock()
		p.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(vendor.Close)
	p.kb = openBrake(t, capPolicy, keybrake.Options{Endpoints: fakeEndpoint(vendor.URL)})
	h, err := p.kb.Proxy(keybrake.ProxyOptions{
		Keys: keyTable{
			agentKey:   {keybrake.AgentKey{ID: "kbk_refund", Agent: "refund-bot", Vendor: keybrake.Stripe}, keybrake.KeyFound},
			revokedKey: {keybrake.AgentKey{ID: "kbk_old", Agent: "refund-bot", Vendor: keybrake.Stripe}, keybrake.KeyRevoked},
			twilioKey:  {keybrake.AgentKey{ID: "kbk_sms", Agent: "refund-bot", Vendor: keybrake.Twilio}, keybrake.KeyFound},
		},
		Secret: func(v keybrake.Vendor, names []string) (map[string]string, error) {
			if v != keybrake.Stripe {
				return nil, errors.New("no secret for " + string(v))
			}
			return map[string]string{"STRIPE_SECRET_KEY": stripeSecret}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// stripeAt is stripe-go pointed at the proxy with key, retries off.
func stripeAt(base, key string) *client.API {
	b := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{
		URL: stripego.String(base), MaxNetworkRetries: stripego.Int64(0),
	})
	return client.New(key, &stripego.Backends{API: b, Connect: b, Uploads: b})
}

func TestProxyBrakesWithTheAgentsKeyAndPresentsTheSecret(t *testing.T) {
	p := startProxy(t)
	sc := stripeAt(p.url, agentKey)
	for i := 0; i < 4; i++ {
		if _, err := sc.Refunds.New(refund("ch_1", 2500)); err != nil {
			t.Fatalf("refund %d: %v", i+1, err)
		}
	}
	_, err := sc.Refunds.New(refund("ch_1", 2500))
	var se *stripego.Error
	if !errors.As(err, &se) || se.HTTPStatusCode != 402 {
		t.Fatalf("fifth refund: %v, want stripe-go's 402", err)
	}
	d, ok := keybrake.AsDenial(err)
	if !ok || d.Decision != keybrake.Capped || d.Rule != "agents.refund-bot.stripe.daily_cap" {
		t.Fatalf("AsDenial = %+v, %v", d, ok)
	}
	for _, a := range p.seen() {
		if a != "Bearer "+stripeSecret {
			t.Fatalf("the vendor saw Authorization %q, want the proxy's secret", a)
		}
	}
	if n := p.fake.RequestsTo("POST", "/v1/refunds"); n != 4 {
		t.Fatalf("%d refunds reached the vendor, want the 4 allowed", n)
	}
	if len(p.seen()) == 0 {
		t.Fatal("nothing reached the vendor")
	}
	recs := dump(t, p.kb, audit.Query{})
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5", len(recs))
	}
	for _, r := range recs {
		if r.KeyID != "kbk_refund" || r.Agent != "refund-bot" {
			t.Fatalf("record %d: key %q agent %q, want kbk_refund, refund-bot", r.ID, r.KeyID, r.Agent)
		}
	}
}

func TestProxyRefusesWhatItCannotIdentify(t *testing.T) {
	p := startProxy(t)
	tests := []struct {
		name string
		auth string // the whole Authorization header; "" for none
		code string
	}{
		{"no key", "", "keybrake_no_key"},
		{"malformed header", "Bearer", "keybrake_no_key"},
		{"unknown agent key", "Bearer kb_" + strings.Repeat("u", 40), "keybrake_unknown_key"},
		{"not a keybrake key", "Bearer hello", "keybrake_unknown_key"},
		{"revoked key", "Bearer " + revokedKey, "keybrake_key_revoked"},
		{"another vendor's key", "Bearer " + twilioKey, "keybrake_key_wrong_vendor"},
		{"the real secret", "Bearer " + stripeSecret, "keybrake_vendor_secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(p.seen())
			req, _ := http.NewRequest("POST", p.url+"/v1/refunds", strings.NewReader("charge=ch_1&amount=100"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 || !strings.Contains(body.String(), tt.code) {
				t.Fatalf("%d %s, want 401 with %s", resp.StatusCode, body.String(), tt.code)
			}
			if resp.Header.Get("Stripe-Should-Retry") != "false" {
				t.Fatalf("Stripe-Should-Retry = %q, want false", resp.Header.Get("Stripe-Should-Retry"))
			}
			if n := len(p.seen()); n != before {
				t.Fatalf("a refused call reached the vendor")
			}
			if strings.Contains(body.String(), stripeSecret) {
				t.Fatal("the refusal repeats the secret")
			}
		})
	}
	var out bytes.Buffer
	if err := p.kb.Dump(&out, audit.Query{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), stripeSecret) || strings.Contains(out.String(), agentKey) {
		t.Fatal("the audit log holds a secret or an agent key")
	}
	codes := map[string]int{}
	for _, r := range dump(t, p.kb, audit.Query{}) {
		codes[r.Code]++
	}
	for _, tt := range tests {
		if codes[tt.code] == 0 {
			t.Errorf("no audit record of %s", tt.code)
		}
	}
}

func TestProxyIgnoresWhereTheAgentSaysItIsGoing(t *testing.T) {
	p := startProxy(t)
	req, _ := http.NewRequest("GET", p.url+"/v1/charges/ch_1", nil)
	req.Header.Set("Authorization", "Bearer "+agentKey)
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	recs := dump(t, p.kb, audit.Query{})
	if len(recs) != 1 || recs[0].Host != "api.stripe.com" {
		t.Fatalf("records %+v, want one call to api.stripe.com", recs)
	}
}

func TestProxyAnswersUnknownPathsWithoutForwarding(t *testing.T) {
	p := startProxy(t)
	resp, err := http.Get(p.url + "/not/a/vendor/path")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || len(p.seen()) != 0 {
		t.Fatalf("%d, %d calls forwarded; want 404 and none", resp.StatusCode, len(p.seen()))
	}

}

// TestProxyTagsRunsFromHeaders: Keybrake-Run and Keybrake-On-Behalf-Of
// tag the call's record, count against nothing the vendor sees, and a
// header given twice or a bad run is refused.
func TestProxyTagsRunsFromHeaders(t *testing.T) {
	p := startProxy(t)
	sc := stripeAt(p.url, agentKey)
	tagged := func(run ...string) *stripego.RefundParams {
		r := refund("ch_1", 100)
		r.Headers = http.Header{}
		for _, v := range run {
			r.Headers.Add("Keybrake-Run", v)
		}
		r.Headers.Set("Keybrake-On-Behalf-Of", "alice@example.com")
		return r
	}
	if _, err := sc.Refunds.New(tagged("ticket-4312")); err != nil {
		t.Fatal(err)
	}
	_, err := sc.Refunds.New(tagged("has space"))
	if d, ok := keybrake.AsDenial(err); !ok || d.Code != "keybrake_bad_run" || d.Status != 403 {
		t.Fatalf("a run with a space: %v, want 403 keybrake_bad_run", err)
	}
	// Given twice, either could be meant: refused. (stripe-go sends one
	// value per header; an agent in another language may send two.)
	req, _ := http.NewRequest("POST", p.url+"/v1/refunds", strings.NewReader("charge=ch_1&amount=100"))
	req.Header.Set("Authorization", "Bearer "+agentKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Add("Keybrake-Run", "ticket-1")
	req.Header.Add("Keybrake-Run", "ticket-2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "keybrake_bad_run") || !strings.Contains(string(body), "given 2 times") {
		t.Fatalf("two runs: %d %s, want 403 keybrake_bad_run", resp.StatusCode, body)
	}
	p.mu.Lock()
	if len(p.tags) != 0 {
		t.Fatalf("the vendor saw %q: the run's headers must stop at the proxy", p.tags)
	}
	p.mu.Unlock()
	recs := dump(t, p.kb, audit.Query{Run: "ticket-4312"})
	if len(recs) != 1 || recs[0].Principal != "alice@example.com" || recs[0].Outcome != audit.Settled {
		t.Fatalf("records of run ticket-4312: %+v", recs)
	}
}
