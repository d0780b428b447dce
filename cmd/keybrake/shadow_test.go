package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	brake "github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// audit summary --shadow and status show per agent what the shadow policy
// would have decided otherwise, by decision and rule, and the first call.
func TestShadowInSummaryAndStatus(t *testing.T) {
	fake, url := fakestripe.Start(t)
	fake.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 100000, Currency: "usd", Captured: true})
	dir := t.TempDir()
	db := filepath.Join(dir, "keybrake.db")
	pol := writePolicy(t, "version: 1\nagents:\n  refund-bot:\n    stripe:\n      daily_cap: 500.00 USD\n      allow: [POST /v1/refunds]\n")
	shadow := filepath.Join(dir, "candidate.yaml")
	if err := os.WriteFile(shadow, []byte("version: 1\nagents:\n  refund-bot:\n    stripe:\n      daily_cap: 25.00 USD\n      allow: [POST /v1/refunds]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kb, err := brake.Open(brake.Options{PolicyFile: pol, ShadowPolicyFile: shadow, DBPath: db,
		Endpoints: map[brake.Vendor]string{brake.Stripe: url}})
	if err != nil {
		t.Fatal(err)
	}
	sc := client.New("sk_test_shadow", stripevendor.Backends(kb.HTTPClient("refund-bot", brake.Stripe)))
	for i := 0; i < 4; i++ { // 10.00 each: the shadow admits two
		if _, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String("ch_1"), Amount: stripego.Int64(1000)}); err != nil {
			t.Fatalf("refund %d: %v", i+1, err)
		}
	}
	kb.Close()
	out, errs, code := keybrake(t, nil, "audit", "summary", "--shadow", "--since", "1h", "--db", db)
	want := regexp.MustCompile(`SHADOW: calls the shadow policy would have decided otherwise in the range:\n` +
		`  refund-bot on stripe: 2 of 4 calls \(shadow policy [0-9a-f]{16}\)\n` +
		`        2  allowed -> capped  by agents\.refund-bot\.stripe\.daily_cap, keybrake_daily_cap\n` +
		`    first: #3 at \S+ \S+, POST /v1/refunds\n`)
	if code != 0 || !want.MatchString(out) {
		t.Fatalf("audit summary --shadow: %d %q\n%s", code, errs, out)
	}
	out, errs, code = keybrake(t, nil, "status", "--db", db, "--policy", pol)
	if code != 0 || !strings.Contains(out, "refund-bot on stripe: 2 of 4 calls") || !strings.Contains(out, "today (UTC)") {
		t.Fatalf("status: %d %q\n%s", code, errs, out)
	}
	// Without --shadow, the summary is as it was.
	out, _, _ = keybrake(t, nil, "audit", "summary", "--since", "1h", "--db", db)
	if strings.Contains(out, "SHADOW") {
		t.Fatalf("summary without --shadow shows the shadow:\n%s", out)
	}
}

// keybrake serve --shadow: a candidate decides every proxied call a second
// time; the agent sees only the policy in force, and the summary the
// difference.
func TestServeShadow(t *testing.T) {
	dir, vendor, key := serveDir(t)
	candidate := filepath.Join(dir, "candidate.yaml")
	if err := os.WriteFile(candidate, []byte(strings.Replace(servePolicy, "50.00 USD", "30.00 USD", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--endpoint", "stripe="+vendor, "--shadow", candidate)
	for i := 0; i < 2; i++ { // 25.00 each: the second is over the candidate's 30.00
		if status, body := refundAt(t, s.url, "Bearer "+key, "2500"); status != 200 {
			t.Fatalf("refund %d: %d %s; the shadow must change nothing", i+1, status, body)
		}
	}
	out, errs, code := keybrakeIn(t, dir, nil, "audit", "summary", "--shadow", "--since", "1h")
	if code != 0 || !strings.Contains(out, "refund-bot on stripe: 1 of 2 calls") || !strings.Contains(out, "allowed -> capped  by agents.refund-bot.stripe.daily_cap") {
		t.Fatalf("audit summary --shadow beside serve: %d %q\n%s", code, errs, out)
	}
	_, errs, code = keybrakeIn(t, dir, nil, "serve", "--listen", "127.0.0.1:0", "--admin", "-", "--shadow", filepath.Join(dir, "missing.yaml"), "--db", filepath.Join(dir, "other.db"))
	if code != 1 || !strings.Contains(errs, "shadow policy") {
		t.Fatalf("serve with a missing shadow file: %d %q", code, errs)
	}
}
