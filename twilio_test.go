package keybrake_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/twilio/twilio-go"
	twclient "github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/faketwilio"
	"github.com/keybrake/keybrake/internal/testenv"
)

// twilioSID is the account of the Message example in Twilio's spec, which
// Prism answers with: Keybrake checks an answer is for the call's account.
const (
	twilioSID   = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	twilioToken = "0123456789abcdef0123456789abcdef"
)

const smsPolicy = `version: 1
vendors:
  twilio:
    prices:
      sms:
        default: 0.0079 USD      # Twilio's US list price a segment
        "+44": 0.0400 USD
      mms: 0.0200 USD
      call_minute:
        default: 0.0140 USD
agents:
  sms-bot:
    twilio:
      daily_cap: 0.05 USD
      allow:
        - POST /2010-04-01/Accounts/{sid}/Messages.json
        - POST /2010-04-01/Accounts/{sid}/Calls.json
      to: ["+1*", "+447700900123"]
  call-bot:
    twilio:
      daily_cap: 10.00 USD
      allow:
        - POST /2010-04-01/Accounts/{sid}/Calls.json
`

// twilioSDK is twilio-go for an agent, its HTTP client the Brake's chain,
// with a counter below the chain of what reaches the server.
func twilioSDK(t testing.TB, kb *keybrake.Brake, agent string) (*twilio.RestClient, *counting, *counting) {
	wire := newCounting(nil)
	side := newCounting(kb.Transport(agent, keybrake.Twilio, wire))
	c := &twclient.Client{Credentials: twclient.NewCredentials(twilioSID, twilioToken), HTTPClient: &http.Client{Transport: side}}
	c.SetAccountSid(twilioSID)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c}), side, wire
}

func sms(to, body string) *api.CreateMessageParams {
	return (&api.CreateMessageParams{}).SetTo(to).SetFrom("+15550001111").SetBody(body)
}

func twilioErr(t testing.TB, err error, status int) *twclient.TwilioRestError {
	t.Helper()
	var te *twclient.TwilioRestError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *client.TwilioRestError", err, err)
	}
	if te.Status != status {
		t.Fatalf("status %d, want %d: %v", te.Status, status, err)
	}
	return te
}

// TestSMSAgainstPrism: twilio-go through Keybrake against a mock built
// from Twilio's own OpenAPI description, which validates every request.
// SMS pass up to the cap; the next is a TwilioRestError 402, and never
// reaches the mock.
func TestSMSAgainstPrism(t *testing.T) {
	mock := testenv.Prism(t, testenv.TwilioSpecWithMediaURLFix(t))
	kb := openBrake(t, smsPolicy, keybrake.Options{Endpoints: map[keybrake.Vendor]string{keybrake.Twilio: mock}})
	tw, side, wire := twilioSDK(t, kb, "sms-bot")

	// 0.05 USD at 0.0079 a segment: six single-segment SMS (0.0474).
	for i := 0; i < 6; i++ {
		if _, err := tw.Api.CreateMessage(sms("+15551234567", "Your code is 123456")); err != nil {
			t.Fatalf("sms %d: %v", i, err)
		}
	}
	if n := wire.count("POST /2010-04-01/Accounts/" + twilioSID + "/Messages.json"); n != 6 {
		t.Fatalf("%d messages reached Prism, want 6", n)
	}
	before := side.all.Load()
	_, err := tw.Api.CreateMessage(sms("+15551234567", "Your code is 123456"))
	twilioErr(t, err, 402)
	if n := side.all.Load() - before; n != 1 {
		t.Fatalf("twilio-go made %d attempts, want 1", n)
	}
	if n := wire.count("POST /2010-04-01/Accounts/" + twilioSID + "/Messages.json"); n != 6 {
		t.Fatalf("the capped SMS reached Prism (%d messages)", n)
	}
	d, ok := keybrake.AsDenial(err)
	if !ok || d.Decision != keybrake.Capped || d.Rule != "agents.sms-bot.twilio.daily_cap" {
		t.Fatalf("denial %+v", d)
	}

	// A two-segment UCS-2 message costs two segments: over the cap too.
	_, err = tw.Api.CreateMessage(sms("+15551234567", "Code 123456 ✅ valid 10 minutes, do not share it with anyone at all, ever!"))
	twilioErr(t, err, 402)

	// Outside the destinations the agent may reach: scoped, 403.
	_, err = tw.Api.CreateMessage(sms("+882345678901", "hi"))
	twilioErr(t, err, 403)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Decision != keybrake.Scoped || d.Rule != "agents.sms-bot.twilio.to" {
		t.Fatalf("premium destination: %+v", d)
	}

	// Prism answers price null: each allowed SMS is counted at its
	// estimate, marked so.
	recs := dump(t, kb, audit.Query{Agent: "sms-bot", Decision: keybrake.Allowed})
	if len(recs) != 6 {
		t.Fatalf("%d allowed records", len(recs))
	}
	for _, r := range recs {
		if r.Outcome != audit.Settled || !r.Estimated || r.Settled.Micros != 7_900 || r.Object == "" {
			t.Fatalf("record %+v", r)
		}
	}
}

// TestCallsNeedATimeLimit: without TimeLimit a call could run for hours and
// is refused; with it, it is reserved at the price times the minutes.
func TestCallsNeedATimeLimit(t *testing.T) {
	mock := testenv.Prism(t, testenv.TwilioSpecWithMediaURLFix(t))
	kb := openBrake(t, smsPolicy, keybrake.Options{Endpoints: map[keybrake.Vendor]string{keybrake.Twilio: mock}})
	tw, _, wire := twilioSDK(t, kb, "call-bot")
	call := func() *api.CreateCallParams {
		return (&api.CreateCallParams{}).SetTo("+15551234567").SetFrom("+15550001111").SetUrl("https://example.com/twiml")
	}
	_, err := tw.Api.CreateCall(call())
	twilioErr(t, err, 403)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Code != "keybrake_call_unbounded" {
		t.Fatalf("unbounded call: %+v", d)
	}
	if wire.all.Load() != 0 {
		t.Fatal("the unbounded call reached Prism")
	}
	if _, err := tw.Api.CreateCall(call().SetTimeLimit(150)); err != nil {
		t.Fatal(err)
	}
	recs := dump(t, kb, audit.Query{Decision: keybrake.Allowed})
	// 150 s is three started minutes at 0.0140 USD.
	if len(recs) != 1 || recs[0].Reserved.Micros != 42_000 || recs[0].Operation != "calls.create" {
		t.Fatalf("records %+v", recs)
	}
}

// TestReconcileSettlesAtTheRealPrice: against a fake Twilio that prices
// messages later, as Twilio does; the estimate counts until Reconcile
// reads the real price.
func TestReconcileSettlesAtTheRealPrice(t *testing.T) {
	fake, url := faketwilio.Start(t)
	fake.SetCredentials(twilioSID, twilioToken)
	fake.SetPrice("+1", "0.0100") // the real price, above the policy's 0.0079
	kb := openBrake(t, smsPolicy, keybrake.Options{Endpoints: map[keybrake.Vendor]string{keybrake.Twilio: url}})
	tw, _, _ := twilioSDK(t, kb, "sms-bot")
	for i := 0; i < 3; i++ {
		if _, err := tw.Api.CreateMessage(sms("+15551234567", "hello")); err != nil {
			t.Fatal(err)
		}
	}
	auth := func(r *http.Request) { r.SetBasicAuth(twilioSID, twilioToken) }
	res, err := kb.Reconcile(context.Background(), keybrake.Twilio, auth)
	if err != nil || res.Checked != 3 || res.Pending != 3 || res.Settled != 0 {
		t.Fatalf("before pricing: %+v, %v", res, err)
	}
	if n := fake.PriceMessages(); n != 3 {
		t.Fatalf("priced %d", n)
	}
	res, err = kb.Reconcile(context.Background(), keybrake.Twilio, auth)
	if err != nil || res.Settled != 3 {
		t.Fatalf("after pricing: %+v, %v", res, err)
	}
	for _, r := range dump(t, kb, audit.Query{Decision: keybrake.Allowed}) {
		if r.Estimated || r.Settled.Micros != 10_000 || r.Holds[0].Settled != 10_000 {
			t.Fatalf("reconciled record %+v", r)
		}
	}
	// 3 x 0.0100 = 0.03 counted; two more at the 0.0079 estimate would
	// make 0.0458, a third 0.0537: over the 0.05 cap.
	for i := 0; i < 2; i++ {
		if _, err := tw.Api.CreateMessage(sms("+15551234567", "hello")); err != nil {
			t.Fatal(err)
		}
	}
	_, err = tw.Api.CreateMessage(sms("+15551234567", "hello"))
	twilioErr(t, err, 402)
	// Another account's credentials reconcile nothing of this one.
	res, _ = kb.Reconcile(context.Background(), keybrake.Twilio, func(r *http.Request) { r.SetBasicAuth(twilioSID, "other") })
	if res.Checked != 0 || res.OtherKey != 2 {
		t.Fatalf("other key: %+v", res)
	}
}
