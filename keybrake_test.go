package keybrake_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChild); dir != "" {
		runCrashChild(dir)
	}
	// stripe-go logs every error response; the refusals here are expected.
	stripego.DefaultLeveledLogger = &stripego.LeveledLogger{Level: stripego.LevelNull}
	testenv.Main(m)
}

// issuePolicy is the policy of the core issue, verbatim.
const issuePolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD          # all money this agent moves on Stripe per UTC day
      per_call_max: 50.00 USD
      allow:
        - POST /v1/refunds
        - GET /v1/charges/{id}
        - GET /v1/payment_intents/{id}
        - method: POST
          path: /v1/payment_intents
          params: {capture_method: manual}   # immediate capture is not allowed
  billing-bot:
    revoked: true                     # every call answers 401
    stripe:
      daily_cap: 100000 JPY
      allow: [POST /v1/charges]
`

func writePolicy(t testing.TB, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keybrake.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// counting counts the requests that pass through it, by method and path.
type counting struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[string]int
	all  atomic.Int64
}

func newCounting(next http.RoundTripper) *counting {
	if next == nil {
		next = http.DefaultTransport
	}
	return &counting{next: next, seen: map[string]int{}}
}

func (c *counting) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.seen[req.Method+" "+req.URL.Path]++
	c.mu.Unlock()
	c.all.Add(1)
	return c.next.RoundTrip(req)
}

func (c *counting) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[key]
}

// sdk is stripe-go for one agent, with two counters: sdkSide sees every
// attempt stripe-go makes, wire every request that reaches the server.
type sdk struct {
	*client.API
	sdkSide *counting
	wire    *counting
}

func newSDK(t testing.TB, kb *keybrake.Brake, agent string) *sdk {
	t.Helper()
	wire := newCounting(nil)
	side := newCounting(kb.Transport(agent, keybrake.Stripe, wire))
	hc := &http.Client{Transport: side}
	return &sdk{API: client.New(testenv.StripeMockKey, stripevendor.Backends(hc)), sdkSide: side, wire: wire}
}

func openBrake(t testing.TB, policyText string, opts keybrake.Options) *keybrake.Brake {
	t.Helper()
	if opts.PolicyFile == "" {
		opts.PolicyFile = writePolicy(t, policyText)
	}
	if opts.DBPath == "" && opts.Store == nil {
		opts.DBPath = filepath.Join(t.TempDir(), "keybrake.db")
	}
	kb, err := keybrake.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kb.Close() })
	return kb
}

func dump(t testing.TB, kb *keybrake.Brake, q audit.Query) []audit.Record {
	t.Helper()
	var buf bytes.Buffer
	if err := kb.Dump(&buf, q); err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("dump line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func stripeErr(t testing.TB, err error, status int) *stripego.Error {
	t.Helper()
	var se *stripego.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *stripe.Error", err, err)
	}
	if se.HTTPStatusCode != status {
		t.Fatalf("status %d, want %d: %v", se.HTTPStatusCode, status, err)
	}
	return se
}

// TestIssuePolicyAgainstStripeMock is the core issue's acceptance test,
// with the real stripe-go against stripe-mock, which validates every
// request against Stripe's own OpenAPI description.
func TestIssuePolicyAgainstStripeMock(t *testing.T) {
	mock := testenv.StripeMock(t)
	kb := openBrake(t, issuePolicy, keybrake.Options{Endpoints: map[keybrake.Vendor]string{keybrake.Stripe: mock}})
	bot := newSDK(t, kb, "refund-bot")

	// stripe-mock answers every refund with amount 100 (1.00 USD), so the
	// 500.00 USD cap is reached after exactly 500 refunds of 1.00.
	const workers = 8
	var wg sync.WaitGroup
	var failures atomic.Int64
	jobs := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r, err := bot.Refunds.New(&stripego.RefundParams{Charge: stripego.String("ch_1"), Amount: stripego.Int64(100)})
				if err != nil || r.Amount != 100 {
					failures.Add(1)
					t.Errorf("refund within the cap: %v", err)
				}
			}
		}()
	}
	for i := 0; i < 500; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if failures.Load() > 0 {
		t.FailNow()
	}
	if got := bot.wire.count("POST /v1/refunds"); got != 500 {
		t.Fatalf("%d refunds reached stripe-mock, want 500", got)
	}
	// The charge's currency is looked up until Keybrake remembers it: at
	// most once for each worker racing at the start.
	if got := bot.wire.count("GET /v1/charges/ch_1"); got < 1 || got > workers {
		t.Errorf("%d currency lookups, want 1 to %d", got, workers)
	}

	before := bot.sdkSide.all.Load()
	_, err := bot.Refunds.New(&stripego.RefundParams{Charge: stripego.String("ch_1"), Amount: stripego.Int64(100)})
	se := stripeErr(t, err, 402)
	if attempts := bot.sdkSide.all.Load() - before; attempts != 1 {
		t.Fatalf("stripe-go made %d attempts at the capped refund, want 1", attempts)
	}
	if got := bot.wire.count("POST /v1/refunds"); got != 500 {
		t.Fatalf("the capped refund reached stripe-mock (%d refunds)", got)
	}
	d, ok := keybrake.AsDenial(err)
	if !ok {
		t.Fatalf("AsDenial(%v) found no denial", err)
	}
	if d.Decision != keybrake.Capped || d.Rule != "agents.refund-bot.stripe.daily_cap" || d.Code != "keybrake_daily_cap" || d.Status != 402 {
		t.Fatalf("denial = %+v", d)
	}
	if !strings.HasPrefix(se.RequestID, "kb_") {
		t.Errorf("RequestID %q does not point at the audit record", se.RequestID)
	}

	// Over the per-call maximum of 50.00 USD.
	_, err = bot.Refunds.New(&stripego.RefundParams{Charge: stripego.String("ch_1"), Amount: stripego.Int64(5001)})
	stripeErr(t, err, 402)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Code != "keybrake_per_call_max" {
		t.Fatalf("per-call maximum: %+v", d)
	}

	// Not allowed at all.
	_, err = bot.Transfers.New(&stripego.TransferParams{Amount: stripego.Int64(100), Currency: stripego.String("usd"), Destination: stripego.String("acct_1")})
	stripeErr(t, err, 403)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Decision != keybrake.Blocked || d.Code != "keybrake_not_allowed" {
		t.Fatalf("transfer: %+v", d)
	}

	// Immediate capture is not allowed; manual capture is.
	_, err = bot.PaymentIntents.New(&stripego.PaymentIntentParams{Amount: stripego.Int64(2000), Currency: stripego.String("usd"), CaptureMethod: stripego.String("automatic")})
	stripeErr(t, err, 403)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Code != "keybrake_param_not_allowed" {
		t.Fatalf("automatic capture: %+v", d)
	}
	pi, err := bot.PaymentIntents.New(&stripego.PaymentIntentParams{Amount: stripego.Int64(2000), Currency: stripego.String("usd"), CaptureMethod: stripego.String("manual")})
	if err != nil {
		t.Fatalf("manual capture: %v", err)
	}
	if pi.ID == "" {
		t.Fatal("manual capture: no intent")
	}

	// billing-bot is revoked.
	billing := newSDK(t, kb, "billing-bot")
	_, err = billing.Charges.New(&stripego.ChargeParams{Amount: stripego.Int64(100), Currency: stripego.String("jpy"), Source: &stripego.PaymentSourceSourceParams{Token: stripego.String("tok_visa")}})
	stripeErr(t, err, 401)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Decision != keybrake.Revoked || d.Rule != "agents.billing-bot.revoked" {
		t.Fatalf("billing-bot: %+v", d)
	}
	if n := billing.wire.all.Load(); n != 0 {
		t.Fatalf("a revoked agent's call reached stripe-mock %d times", n)
	}

	// The audit log has one record per call, with the fields the issue names.
	recs := dump(t, kb, audit.Query{Agent: "refund-bot"})
	counts := map[keybrake.Decision]int{}
	for _, r := range recs {
		counts[r.Decision]++
	}
	if counts[keybrake.Allowed] != 501 || counts[keybrake.Capped] != 2 || counts[keybrake.Blocked] != 2 {
		t.Fatalf("decisions in the audit log: %v", counts)
	}
	var buf bytes.Buffer
	if err := kb.Dump(&buf, audit.Query{Decision: keybrake.Capped, Limit: 1}); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"time", "agent", "vendor", "method", "path", "decision", "rule", "reason", "status", "amount", "currency", "outcome"} {
		if _, ok := line[f]; !ok {
			t.Errorf("dump line lacks %q: %s", f, buf.String())
		}
	}
	if line["amount"] != "1.00" || line["currency"] != "USD" || line["status"] != float64(402) {
		t.Errorf("capped record: %s", buf.String())
	}
}
