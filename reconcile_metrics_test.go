package keybrake_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/faketwilio"
)

// reconcilePolicy estimates an SMS at 0.0079 USD to +1 and 0.0400 to +44,
// with room for every message the test sends.
const reconcilePolicy = `version: 1
vendors:
  twilio:
    prices:
      sms:
        default: 0.0079 USD
        "+44": 0.0400 USD
agents:
  sms-bot:
    twilio:
      daily_cap: 1.00 USD
      allow:
        - POST /2010-04-01/Accounts/{sid}/Messages.json
      to: ["+1*", "+447700900123"]
`

// settledInAudit sums the audit's settled money of calls by
// "agent=...,currency=...,vendor=...", as the money metrics label it.
func settledInAudit(t *testing.T, kb *keybrake.Brake) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, r := range dump(t, kb, audit.Query{}) {
		if r.Event == "" && r.Outcome == audit.Settled && r.Settled.Micros > 0 {
			out[fmt.Sprintf("agent=%s,currency=%s,vendor=%s", r.Agent, r.Settled.Currency, r.Vendor)] += float64(r.Settled.Micros)
		}
	}
	return out
}

// TestMetricsFollowReconcile: messages settle at the policy's estimates;
// Twilio then prices the +1 ones above their estimate and the +44 one
// below it, and Reconcile settles them at those prices. Before, settled
// is the audit's estimates and nothing is reconciled; after, settled is
// unchanged (a counter never falls), and settled + up - down is what the
// audit now says moved, each direction by exactly its difference.
func TestMetricsFollowReconcile(t *testing.T) {
	fake, url := faketwilio.Start(t)
	fake.SetCredentials(twilioSID, twilioToken)
	fake.SetPrice("+1", "0.0100")  // 0.0021 above the estimate
	fake.SetPrice("+44", "0.0200") // 0.0200 below it
	db := filepath.Join(t.TempDir(), "keybrake.db")
	kb := openBrake(t, reconcilePolicy, keybrake.Options{DBPath: db, Endpoints: map[keybrake.Vendor]string{keybrake.Twilio: url}})
	tw, _, _ := twilioSDK(t, kb, "sms-bot")
	for _, to := range []string{"+15551234567", "+15557654321", "+447700900123"} {
		if _, err := tw.Api.CreateMessage(sms(to, "hello")); err != nil {
			t.Fatal(err)
		}
	}

	const key = "agent=sms-bot,currency=USD,vendor=twilio"
	estimates := settledInAudit(t, kb)
	if estimates[key] != 2*7_900+40_000 {
		t.Fatalf("the audit settled %v, want the estimates 2 x 0.0079 + 0.0400 USD", estimates)
	}
	fams := scrape(t, db+".sock")
	if got := series(fams, "keybrake_money_settled_micros_total"); fmt.Sprint(got) != fmt.Sprint(estimates) {
		t.Fatalf("settled before Reconcile: %v, the audit %v", got, estimates)
	}
	if got := series(fams, "keybrake_money_reconciled_micros_total"); len(got) != 0 {
		t.Fatalf("reconciled before Reconcile: %v", got)
	}

	if n := fake.PriceMessages(); n != 3 {
		t.Fatalf("priced %d", n)
	}
	res, err := kb.Reconcile(context.Background(), keybrake.Twilio, func(r *http.Request) { r.SetBasicAuth(twilioSID, twilioToken) })
	if err != nil || res.Settled != 3 {
		t.Fatalf("Reconcile: %+v, %v", res, err)
	}
	// A second Reconcile finds nothing estimated and counts nothing again.
	if res, err := kb.Reconcile(context.Background(), keybrake.Twilio, func(r *http.Request) { r.SetBasicAuth(twilioSID, twilioToken) }); err != nil || res.Checked != 0 {
		t.Fatalf("second Reconcile: %+v, %v", res, err)
	}

	audited := settledInAudit(t, kb)
	if audited[key] != 2*10_000+20_000 {
		t.Fatalf("the audit settled %v after Reconcile, want the prices 2 x 0.0100 + 0.0200 USD", audited)
	}
	fams = scrape(t, db+".sock")
	settled := series(fams, "keybrake_money_settled_micros_total")
	moved := series(fams, "keybrake_money_reconciled_micros_total")
	if fmt.Sprint(settled) != fmt.Sprint(estimates) {
		t.Errorf("settled after Reconcile: %v, want the estimates %v unchanged", settled, estimates)
	}
	up, down := moved["agent=sms-bot,currency=USD,direction=up,vendor=twilio"], moved["agent=sms-bot,currency=USD,direction=down,vendor=twilio"]
	if up != 2*2_100 || down != 20_000 || len(moved) != 2 {
		t.Errorf("reconciled %v, want up 2 x 0.0021 and down 0.0200 USD", moved)
	}
	if got := settled[key] + up - down; got != audited[key] || len(audited) != 1 {
		t.Errorf("settled %v + up %v - down %v = %v, the audit %v", settled[key], up, down, got, audited)
	}
}
