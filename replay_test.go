package keybrake_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resend/resend-go/v2"
	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/twilio/twilio-go"
	twclient "github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakeresend"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/fakes/faketwilio"
	"github.com/keybrake/keybrake/internal/replay"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store/bolt"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// mixedPolicy decides calls of the three vendors by every kind of limit
// and scope whose inputs the audit record keeps.
const mixedPolicy = `version: 1
vendors:
  twilio:
    prices:
      sms:
        default: 0.0079 USD
        "+44": 0.0400 USD
  resend:
    prices:
      email: 0.0004 USD
agents:
  refund-bot:
    stripe:
      daily_cap: 45.00 USD
      per_call_max: 20.00 USD
      rate:
        - {count: 30, per: 1m}
      allow:
        - POST /v1/refunds
        - GET /v1/charges/{id}
      customers:
        ids: [cus_a, cus_b]
        daily_cap: 30.00 USD
  sms-bot:
    twilio:
      daily_cap: 0.10 USD
      daily_count: 6
      allow:
        - POST /2010-04-01/Accounts/{sid}/Messages.json
      to: ["+1*", "+447700900123"]
      from: ["+15005550006"]
  mail-bot:
    resend:
      daily_cap: 1.00 USD
      daily_count: 4
      allow: [POST /emails]
      from: ["alerts@example.com"]
`

// mixedDatabase writes the audit log of calls made through the real
// SDKs against the fakes, allowed, capped, blocked and scoped, and
// returns the database file, closed.
func mixedDatabase(t *testing.T) string {
	t.Helper()
	fs, stripeURL := fakestripe.Start(t)
	ft, twilioURL := faketwilio.Start(t)
	_ = ft
	_, resendURL := fakeresend.Start(t)
	for _, c := range []string{"cus_a", "cus_b", "cus_c"} {
		fs.AddCustomer(c)
	}
	for i, c := range []string{"cus_a", "cus_a", "cus_a", "cus_b", "cus_b", "cus_c", "cus_b", "cus_a"} {
		fs.AddCharge(fakestripe.Charge{ID: "ch_" + string(rune('1'+i)), Amount: 5000, Currency: "usd", Customer: c, Captured: true})
	}
	db := filepath.Join(t.TempDir(), "keybrake.db")
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: writePolicy(t, mixedPolicy), DBPath: db,
		Endpoints: map[keybrake.Vendor]string{keybrake.Stripe: stripeURL, keybrake.Twilio: twilioURL, keybrake.Resend: resendURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()

	sc := client.New("sk_test_replay", stripevendor.Backends(kb.HTTPClient("refund-bot", keybrake.Stripe)))
	refund := func(charge string, cents int64) error {
		_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String(charge), Amount: stripego.Int64(cents)})
		return err
	}
	tc := &twclient.Client{Credentials: twclient.NewCredentials(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken),
		HTTPClient: kb.HTTPClient("sms-bot", keybrake.Twilio)}
	tc.SetAccountSid(faketwilio.DefaultAccountSID)
	tw := twilio.NewRestClientWithParams(twilio.ClientParams{Client: tc})
	text := func(to, from string) error {
		_, err := tw.Api.CreateMessage((&api.CreateMessageParams{}).SetTo(to).SetFrom(from).SetBody("Your code is 123456"))
		return err
	}
	rc := resend.NewCustomClient(kb.HTTPClient("mail-bot", keybrake.Resend), fakeresend.DefaultAPIKey)
	mail := func(from string, to ...string) error {
		_, err := rc.Emails.Send(&resend.SendEmailRequest{From: from, To: to, Subject: "Your receipt", Text: "Thanks."})
		return err
	}
	want := func(what string, err error, d keybrake.Decision) {
		t.Helper()
		got := keybrake.Allowed
		if den, ok := keybrake.AsDenial(err); ok {
			got = den.Decision
		} else if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got != d {
			t.Fatalf("%s: %s, want %s (%v)", what, got, d, err)
		}
	}
	want("refund ch_1", refund("ch_1", 1500), keybrake.Allowed)
	want("refund ch_2 over the per-call maximum", refund("ch_2", 2500), keybrake.Capped)
	want("refund ch_2", refund("ch_2", 1000), keybrake.Allowed)
	want("refund ch_1 again", refund("ch_1", 500), keybrake.Capped) // max_refunds_per_charge: 1
	want("refund ch_3 over cus_a's cap", refund("ch_3", 1000), keybrake.Capped)
	want("refund ch_6 of a customer out of scope", refund("ch_6", 100), keybrake.Scoped)
	want("refund ch_4", refund("ch_4", 1500), keybrake.Allowed)
	want("refund ch_5 over the daily cap", refund("ch_5", 1500), keybrake.Capped)
	_, err = sc.Charges.New(&stripego.ChargeParams{Amount: stripego.Int64(100), Currency: stripego.String("usd")})
	want("a charge", err, keybrake.Blocked)

	want("sms", text("+15551234567", "+15005550006"), keybrake.Allowed)
	want("sms to the UK number", text("+447700900123", "+15005550006"), keybrake.Allowed)
	want("sms to another UK number", text("+447700900999", "+15005550006"), keybrake.Scoped)
	want("sms from another number", text("+15551234567", "+15005550007"), keybrake.Scoped)
	for i := 0; i < 4; i++ {
		want("sms", text("+15551234567", "+15005550006"), keybrake.Allowed)
	}
	want("sms over the daily count", text("+15551234567", "+15005550006"), keybrake.Capped)

	for i := 0; i < 4; i++ {
		want("email", mail("Alerts <alerts@example.com>", "ada@example.com"), keybrake.Allowed)
	}
	want("email over the daily count", mail("Alerts <alerts@example.com>", "ada@example.com"), keybrake.Capped)
	want("email from another sender", mail("Other <other@example.com>", "ada@example.com"), keybrake.Scoped)
	return db
}

// fileRecords reads every record of the database file, in the order the
// store wrote them.
func fileRecords(t *testing.T, db string) []*audit.Record {
	t.Helper()
	st, err := bolt.Open(db, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []*audit.Record
	if err := st.Query(context.Background(), audit.Query{ByID: true}, func(r *audit.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func parsePolicy(t *testing.T, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Load(writePolicy(t, text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplayReproducesTheMixedLog: replaying the policy that decided the
// calls of the three vendors decides every one of them as recorded.
func TestReplayReproducesTheMixedLog(t *testing.T) {
	recs := fileRecords(t, mixedDatabase(t))
	rep := replay.Replay(parsePolicy(t, mixedPolicy), recs, time.Time{})
	replayed := 0
	for _, a := range rep.Agents {
		replayed += a.Replayed
		for _, c := range a.Changed {
			t.Errorf("%s call %d %s %s: %s %s -> %s %s (%s)", a.Name, c.ID, c.Method, c.Path, c.From.Decision, c.From.Rule, c.To.Decision, c.To.Rule, c.To.Reason)
		}
		for _, c := range a.Reruled {
			t.Errorf("%s call %d %s %s: %s by %s (%s) -> by %s (%s)", a.Name, c.ID, c.Method, c.Path, c.From.Decision, c.From.Rule, c.From.Code, c.To.Rule, c.To.Code)
		}
		for _, c := range a.Uncertain {
			t.Errorf("%s call %d uncertain: %s", a.Name, c.ID, c.Why)
		}
		if len(a.NotReplayed) > 0 {
			t.Errorf("%s: not replayed %v", a.Name, a.NotReplayed)
		}
	}
	if replayed != 24 {
		t.Errorf("%d calls replayed, want 24", replayed)
	}
	// Recipients' addresses are personal data: an email's never reach
	// the record, and its calls replay without them.
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "ada@example.com") {
			t.Errorf("record %d keeps an email recipient: %s", r.ID, b)
		}
		if r.Agent == "sms-bot" && r.Event == "" && (len(r.Recipients) != 1 || len(r.Senders) != 1 || r.Priced == nil || r.Priced.Destination != r.Recipients[0]) {
			t.Errorf("record %d does not keep its SMS destination and sender, which its To and From parameters hold: %s", r.ID, b)
		}
		if r.Agent == "mail-bot" && r.Event == "" && (!r.RecipientsWithheld || len(r.Senders) != 1 || r.Senders[0] != "alerts@example.com" && r.Senders[0] != "other@example.com") {
			t.Errorf("record %d: an email keeps its sender, and says its recipients are withheld: %s", r.ID, b)
		}
	}
	if r := recs[0]; r.Operation != "refunds.create" || !r.MovesMoney || r.RefundOf != "ch_1" || r.Customer != "cus_a" || r.Amount.String() != "15.00 USD" {
		t.Errorf("the first refund's record lacks what replay needs: %+v", r)
	}
}

// TestReplayTighterAndLooser: a tighter policy stops money the log let
// through, from the first call it caps; a looser one lets through money
// the log refused, as an estimate.
func TestReplayTighterAndLooser(t *testing.T) {
	recs := fileRecords(t, mixedDatabase(t))
	agent := func(rep *replay.Report, name string) *replay.Agent {
		for _, a := range rep.Agents {
			if a.Name == name {
				return a
			}
		}
		t.Fatalf("no agent %s in the report", name)
		return nil
	}

	tighter := strings.Replace(mixedPolicy, "daily_cap: 45.00 USD", "daily_cap: 20.00 USD", 1)
	a := agent(replay.Replay(parsePolicy(t, tighter), recs, time.Time{}), "refund-bot")
	if a.FirstCapped == nil || a.FirstCapped.Operation != "refunds.create" || a.FirstCapped.To.Rule != "agents.refund-bot.stripe.daily_cap" {
		t.Fatalf("first capped %+v", a.FirstCapped)
	}
	// ch_1's 15.00 fits, ch_2's 10.00 does not, and then ch_4's 15.00
	// does not either.
	if len(a.Changed) != 2 || a.Changed[0].From.Decision != policy.Allowed || a.Changed[0].To.Decision != policy.Capped {
		t.Fatalf("changed %+v", a.Changed)
	}
	if len(a.Stopped) != 1 || a.Stopped[0].String() != "25.00 USD" {
		t.Fatalf("stopped %v, want 25.00 USD", a.Stopped)
	}

	looser := strings.Replace(mixedPolicy, "daily_count: 6", "daily_count: 7", 1)
	a = agent(replay.Replay(parsePolicy(t, looser), recs, time.Time{}), "sms-bot")
	if len(a.Changed) != 1 || a.Changed[0].From.Decision != policy.Capped || a.Changed[0].To.Decision != policy.Allowed {
		t.Fatalf("changed %+v", a.Changed)
	}
	if a.Estimated != 1 || len(a.LetThrough) != 1 || a.LetThrough[0].String() != "0.0079 USD" {
		t.Fatalf("let through %v (%d estimated), want 0.0079 USD", a.LetThrough, a.Estimated)
	}
}
