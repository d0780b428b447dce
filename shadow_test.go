package keybrake_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store/bolt"
)

// The shadow policy (the policy-changes issue): decides every call a
// second time, changes nothing, and keeps its own counters.

const shadowReal = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 100.00 USD
      allow:
        - POST /v1/refunds
        - GET /v1/charges/{id}
`

// The candidate: a tighter cap, and no charge reads.
const shadowTight = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 50.00 USD
      allow: [POST /v1/refunds]
`

const shadowLoose = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 1000.00 USD
      allow:
        - POST /v1/refunds
        - GET /v1/charges/{id}
`

func TestShadowDecidesTwiceAndChangesNothing(t *testing.T) {
	url := refunds(t, 1)
	dir := t.TempDir()
	shadowFile := filepath.Join(dir, "shadow.yaml")
	if err := os.WriteFile(shadowFile, []byte(shadowTight), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := newClock(t, "2026-12-04T10:00:00Z")
	dbPath := filepath.Join(dir, "keybrake.db")
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: writePolicy(t, shadowReal), ShadowPolicyFile: shadowFile,
		DBPath: dbPath, Endpoints: fakeEndpoint(url), Clock: clk.Now, PolicyPoll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	bot := sdkNoRetry(kb, "refund-bot")
	// 20 + 20 + 20 + 20 + 20 + 20: the real cap admits five, the shadow's
	// two (its third would be 60.00 over 50.00).
	var denials []*keybrake.Denial
	for range 6 {
		denials = append(denials, refundOnce(t, bot, 2000))
	}
	for i, d := range denials[:5] {
		if d != nil {
			t.Fatalf("refund %d: %+v; the shadow must change nothing", i+1, d)
		}
	}
	if d := denials[5]; d == nil || d.Code != "keybrake_daily_cap" {
		t.Fatalf("refund 6: %+v; want the real cap's refusal", d)
	}
	if _, err := bot.Charges.Get("ch_0", nil); err != nil {
		t.Fatalf("a charge read the shadow would block: %v", err)
	}
	recs := dump(t, kb, audit.Query{})
	var calls []audit.Record
	for _, r := range recs {
		if r.Event == "" {
			calls = append(calls, r)
		}
	}
	if len(calls) != 7 {
		t.Fatalf("%d call records, want 7", len(calls))
	}
	for i, r := range calls {
		want := ""
		switch {
		case i >= 2 && i < 5: // the shadow would cap them
			want = "capped agents.refund-bot.stripe.daily_cap keybrake_daily_cap"
		case i == 5: // both cap it: no difference
		case i == 6: // the shadow has no allow rule for it
			want = "blocked agents.refund-bot.stripe.allow keybrake_not_allowed"
		}
		got := ""
		if r.Shadow != nil {
			got = string(r.Shadow.Decision) + " " + r.Shadow.Rule + " " + r.Shadow.Code
			if r.Shadow.Policy == "" || r.Shadow.Policy == r.PolicyHash {
				t.Errorf("call %d: shadow policy hash %q beside the real %q", i+1, r.Shadow.Policy, r.PolicyHash)
			}
		}
		if got != want {
			t.Errorf("call %d (%s %s, %s): shadow %q, want %q", i+1, r.Method, r.Path, r.Decision, got, want)
		}
	}
	// A loosened candidate: the real refusal is one the shadow admits.
	if err := os.WriteFile(shadowFile, []byte(shadowLoose), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shadow reload", func() bool { return hasEvent(t, kb, "shadow_reload") })
	if d := refundOnce(t, bot, 2000); d == nil || d.Code != "keybrake_daily_cap" {
		t.Fatalf("after the reload: %+v", d)
	}
	last := lastCall(t, kb)
	if last.Shadow == nil || last.Shadow.Decision != keybrake.Allowed || last.Shadow.Rule != "agents.refund-bot.stripe.allow[0]" {
		t.Fatalf("a call the loose shadow admits: shadow %+v", last.Shadow)
	}
	// A candidate that does not parse keeps the last valid one and says so.
	if err := os.WriteFile(shadowFile, []byte("version: 1\nagents: {refund-bot: {stripe: {daily_cap: lots}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shadow_invalid event", func() bool { return hasEvent(t, kb, "shadow_invalid") })
	if d := refundOnce(t, bot, 2000); d == nil || d.Code != "keybrake_daily_cap" {
		t.Fatalf("with an invalid shadow: %+v", d)
	}
	if l := lastCall(t, kb); l.Shadow == nil || l.Shadow.Decision != keybrake.Allowed {
		t.Fatalf("with an invalid shadow, the last valid one decides: %+v", l.Shadow)
	}
	kb.Close()
	// The shadow's counters are apart from the real ones: the real day
	// holds 100.00, the shadow's the 40.00 it admitted.
	st, err := bolt.Open(dbPath, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for key, want := range map[string]int64{
		"agent/refund-bot/stripe/2026-12-04/USD":        100_000_000,
		"shadow/agent/refund-bot/stripe/2026-12-04/USD": 40_000_000,
	} {
		c, err := st.Counter(t.Context(), key)
		if err != nil || c.Total() != want || c.Settled != want {
			t.Errorf("counter %s = %+v, %v; want %d settled", key, c, err, want)
		}
	}
}

// TestShadowCannotDecideWithoutALookup: a shadow that selects customers by
// metadata, under a real policy that needs no lookup, says it cannot
// decide rather than guessing; Keybrake makes no lookup for it.
func TestShadowCannotDecideWithoutALookup(t *testing.T) {
	url := refunds(t, 1)
	dir := t.TempDir()
	shadowFile := filepath.Join(dir, "shadow.yaml")
	if err := os.WriteFile(shadowFile, []byte(`version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 100.00 USD
      customers: {metadata: {tier: gold}}
      allow:
        - POST /v1/customers/{id}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: writePolicy(t, `version: 1
agents:
  refund-bot:
    stripe:
      allow:
        - POST /v1/customers/{id}
`), ShadowPolicyFile: shadowFile, DBPath: filepath.Join(dir, "keybrake.db"), Endpoints: fakeEndpoint(url)})
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	bot := sdkNoRetry(kb, "refund-bot")
	_, err = bot.Customers.Update("cus_1", &stripego.CustomerParams{Description: stripego.String("vip")})
	if d, ok := keybrake.AsDenial(err); ok {
		t.Fatalf("the real policy allows it: %+v", d)
	}
	l := lastCall(t, kb)
	if l.Shadow == nil || l.Shadow.Code != "keybrake_shadow_undecided" {
		t.Fatalf("shadow %+v; want keybrake_shadow_undecided", l.Shadow)
	}
}

func hasEvent(t *testing.T, kb *keybrake.Brake, event string) bool {
	for _, r := range dump(t, kb, audit.Query{}) {
		if r.Event == event {
			return true
		}
	}
	return false
}

func lastCall(t *testing.T, kb *keybrake.Brake) audit.Record {
	t.Helper()
	recs := dump(t, kb, audit.Query{})
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Event == "" {
			return recs[i]
		}
	}
	t.Fatal("no call recorded")
	return audit.Record{}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("no %s within 10s", what)
}
