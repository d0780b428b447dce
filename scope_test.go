package keybrake_test

import (
	"testing"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
)

const scopePolicy = `version: 1
agents:
  onboarding-bot:
    stripe:
      daily_cap: 1000.00 USD
      allow:
        - POST /v1/customers
        - POST /v1/refunds
        - POST /v1/charges
        - GET /v1/charges/{id}
        - GET /v1/charges
      customers:
        created_by_agent: true
  cohort-bot:
    stripe:
      daily_cap: 1000.00 USD
      allow:
        - POST /v1/refunds
      customers:
        ids: [cus_beta1, cus_beta2]
        daily_cap: 40.00 USD
  metadata-bot:
    stripe:
      daily_cap: 1000.00 USD
      allow:
        - POST /v1/refunds
      customers:
        metadata: {cohort: beta}
  connect-bot:
    stripe:
      daily_cap: 1000.00 USD
      allow:
        - POST /v1/refunds
      accounts:
        ids: [acct_allowed]
`

// The scope tests run against the fake Stripe because ownership needs
// state (stripe-mock's fixtures all share one customer) and against
// stripe-mock for the request shapes.

// TestCreatedByAgent: an agent that created cus_A may refund cus_A's
// charge, not cus_B's; refunding the same charge twice is refused.
func TestCreatedByAgent(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCustomer("cus_B")
	fs.AddCharge(fakestripe.Charge{ID: "ch_B", Amount: 5000, Currency: "usd", Customer: "cus_B", Captured: true})
	fs.AddCharge(fakestripe.Charge{ID: "ch_none", Amount: 5000, Currency: "usd", Captured: true})
	kb := openBrake(t, scopePolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})
	bot := newSDK(t, kb, "onboarding-bot")

	cus, err := bot.Customers.New(&stripego.CustomerParams{Email: stripego.String("a@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := bot.Charges.New(&stripego.ChargeParams{Amount: stripego.Int64(5000), Currency: stripego.String("usd"),
		Customer: stripego.String(cus.ID), Source: &stripego.PaymentSourceSourceParams{Token: stripego.String("tok_visa")}})
	if err != nil {
		t.Fatalf("charging the customer it created: %v", err)
	}
	if _, err := bot.Refunds.New(refund(ch.ID, 1000)); err != nil {
		t.Fatalf("refunding its own customer: %v", err)
	}
	// The second refund of the same charge: max_refunds_per_charge is 1.
	_, err = bot.Refunds.New(refund(ch.ID, 1000))
	stripeErr(t, err, 402)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Rule != "agents.onboarding-bot.stripe.customers.max_refunds_per_charge" ||
		d.Code != "keybrake_count_reached" || d.Reason != "count of 1 for the charge "+ch.ID+" reached: 1 used, this call 1" {
		t.Fatalf("second refund: %+v", d)
	}
	// Someone else's customer, found by looking up the charge.
	_, err = bot.Refunds.New(refund("ch_B", 1000))
	stripeErr(t, err, 403)
	d, _ := keybrake.AsDenial(err)
	if d == nil || d.Decision != keybrake.Scoped || d.Code != "keybrake_out_of_scope" || d.Rule != "agents.onboarding-bot.stripe.customers" {
		t.Fatalf("cus_B's charge: %+v", d)
	}
	// A charge with no customer is out of scope too.
	_, err = bot.Refunds.New(refund("ch_none", 1000))
	stripeErr(t, err, 403)
	// Reading cus_B's charge is acting on cus_B.
	_, err = bot.Charges.Get("ch_B", nil)
	stripeErr(t, err, 403)
	// A list of every customer's charges reaches cus_B.
	it := bot.Charges.List(&stripego.ChargeListParams{})
	it.Next()
	stripeErr(t, it.Err(), 403)
	if fs.Refunded("ch_B") != 0 || fs.Refunded("ch_none") != 0 || fs.Refunded(ch.ID) != 1000 {
		t.Fatalf("refunded: ch_B %d, ch_none %d, own %d", fs.Refunded("ch_B"), fs.Refunded("ch_none"), fs.Refunded(ch.ID))
	}

	// The dump filtered by customer returns exactly that customer's calls.
	recs := dump(t, kb, audit.Query{Customer: cus.ID})
	if len(recs) != 3 { // the charge, the refund, the refused second refund
		var ops []string
		for _, r := range recs {
			ops = append(ops, r.Operation+"/"+string(r.Decision))
		}
		t.Fatalf("%d records for %s: %v", len(recs), cus.ID, ops)
	}
	for _, r := range recs {
		if r.Customer != cus.ID {
			t.Fatalf("record of %s in %s's dump", r.Customer, cus.ID)
		}
	}
	if n := len(dump(t, kb, audit.Query{Customer: "cus_B"})); n != 2 {
		t.Fatalf("%d records for cus_B, want 2", n)
	}
}

// TestCohort: a listed cohort, per-customer daily caps, and a cohort by
// metadata.
func TestCohort(t *testing.T) {
	fs, url := fakestripe.Start(t)
	for _, c := range []string{"cus_beta1", "cus_beta2", "cus_gamma"} {
		fs.AddCustomer(c)
		fs.AddCharge(fakestripe.Charge{ID: "ch_" + c[4:], Amount: 90000, Currency: "usd", Customer: c, Captured: true})
	}
	kb := openBrake(t, scopePolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})
	bot := newSDK(t, kb, "cohort-bot")
	for _, ch := range []string{"ch_beta1", "ch_beta2"} {
		if _, err := bot.Refunds.New(refund(ch, 4000)); err != nil {
			t.Fatalf("%s: %v", ch, err)
		}
	}
	_, err := bot.Refunds.New(refund("ch_gamma", 100))
	stripeErr(t, err, 403)
	// 40.00 USD per customer per day: beta1 is at its cap.
	_, err = bot.Refunds.New(refund("ch_beta1", 1))
	stripeErr(t, err, 402)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Rule != "agents.cohort-bot.stripe.customers.daily_cap" {
		t.Fatalf("per-customer cap: %+v", d)
	}
}

// TestLookupFailureRefuses: when Keybrake cannot tell whose charge it is,
// the call is refused, not guessed.
func TestLookupFailureRefuses(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCustomer("cus_beta1")
	fs.AddCharge(fakestripe.Charge{ID: "ch_beta1", Amount: 9000, Currency: "usd", Customer: "cus_beta1", Captured: true})
	kb := openBrake(t, scopePolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})
	fs.On("GET", "/v1/charges/ch_beta1").FailNext(1, 500)
	_, err := sdkNoRetry(kb, "cohort-bot").Refunds.New(refund("ch_beta1", 100))
	stripeErr(t, err, 503)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Code != "keybrake_lookup_failed" {
		t.Fatalf("denial %+v", d)
	}
	if fs.Refunded("ch_beta1") != 0 {
		t.Fatal("refunded although the lookup failed")
	}
}

// TestConnectAccountScope: a Stripe-Account the agent may not act for is
// refused, and so is the platform itself.
func TestConnectAccountScope(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_c1", Account: "acct_allowed", Amount: 9000, Currency: "usd", Captured: true})
	fs.AddCharge(fakestripe.Charge{ID: "ch_c2", Account: "acct_foreign", Amount: 9000, Currency: "usd", Captured: true})
	kb := openBrake(t, scopePolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})
	bot := newSDK(t, kb, "connect-bot")
	p := refund("ch_c1", 100)
	p.SetStripeAccount("acct_allowed")
	if _, err := bot.Refunds.New(p); err != nil {
		t.Fatal(err)
	}
	p = refund("ch_c2", 100)
	p.SetStripeAccount("acct_foreign")
	_, err := bot.Refunds.New(p)
	stripeErr(t, err, 403)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Rule != "agents.connect-bot.stripe.accounts" {
		t.Fatalf("foreign account: %+v", d)
	}
	_, err = bot.Refunds.New(refund("ch_c1", 100))
	stripeErr(t, err, 403)
}

// TestScopeShapesAgainstStripeMock: the scoped calls stripe-go makes are
// ones stripe-mock accepts; its fixtures name no customer, so a customer
// scope refuses them, and a cohort scope admits a charge named by ID.
func TestScopeShapesAgainstStripeMock(t *testing.T) {
	mock := testenv.StripeMock(t)
	kb := openBrake(t, scopePolicy, keybrake.Options{Endpoints: fakeEndpoint(mock)})
	bot := newSDK(t, kb, "onboarding-bot")
	cus, err := bot.Customers.New(&stripego.CustomerParams{Email: stripego.String("a@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	// stripe-mock answers the same customer ID to every create; it is
	// now one this agent created.
	if _, err := bot.Charges.New(&stripego.ChargeParams{Amount: stripego.Int64(100), Currency: stripego.String("usd"),
		Customer: stripego.String(cus.ID), Source: &stripego.PaymentSourceSourceParams{Token: stripego.String("tok_visa")}}); err != nil {
		t.Fatalf("charge of its customer on stripe-mock: %v", err)
	}
	_, err = bot.Refunds.New(refund("ch_1", 100)) // stripe-mock's ch_1 has no customer
	stripeErr(t, err, 403)
}
