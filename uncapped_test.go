package keybrake_test

import (
	"testing"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
)

// TestUncappedMoneyNeedsConsent runs stripe-go against stripe-mock: a
// subscription moves money Keybrake cannot count (Stripe charges its
// invoices itself), so an allow rule alone refuses it and only a rule
// with uncapped: true lets it through, audited under that rule.
func TestUncappedMoneyNeedsConsent(t *testing.T) {
	mock := testenv.StripeMock(t)
	kb := openBrake(t, `version: 1
agents:
  billing-bot:
    stripe:
      daily_cap: 100.00 USD
      allow:
        - POST /v1/subscriptions
        - method: POST
          path: /v1/subscriptions/{id}
          params: {proration_behavior: none}
          uncapped: true
`, keybrake.Options{Endpoints: map[keybrake.Vendor]string{keybrake.Stripe: mock}})
	bot := newSDK(t, kb, "billing-bot")

	_, err := bot.Subscriptions.New(&stripego.SubscriptionParams{
		Customer: stripego.String("cus_1"),
		Items:    []*stripego.SubscriptionItemsParams{{Price: stripego.String("price_1")}},
	})
	stripeErr(t, err, 403)
	d, ok := keybrake.AsDenial(err)
	if !ok || d.Decision != keybrake.Blocked || d.Code != "keybrake_uncapped_money" || d.Rule != "agents.billing-bot.stripe.allow[0]" {
		t.Fatalf("subscription create: %+v", d)
	}
	if n := bot.wire.all.Load(); n != 0 {
		t.Fatalf("the refused subscription reached stripe-mock (%d requests)", n)
	}

	sub, err := bot.Subscriptions.Update("sub_1", &stripego.SubscriptionParams{ProrationBehavior: stripego.String("none")})
	if err != nil {
		t.Fatalf("subscription update under uncapped: true: %v", err)
	}
	if sub.ID == "" {
		t.Fatal("subscription update: no subscription in the answer")
	}

	recs := dump(t, kb, audit.Query{Agent: "billing-bot"})
	if len(recs) != 2 {
		t.Fatalf("%d audit records, want 2", len(recs))
	}
	if r := recs[0]; r.Decision != "blocked" || r.Rule != "agents.billing-bot.stripe.allow[0]" {
		t.Errorf("first record: decision %q rule %q", r.Decision, r.Rule)
	}
	if r := recs[1]; r.Decision != "allowed" || r.Rule != "agents.billing-bot.stripe.allow[1]" || r.Status != 200 {
		t.Errorf("second record: decision %q rule %q status %d", r.Decision, r.Rule, r.Status)
	}
}
