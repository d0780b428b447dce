package keybrake_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/resend/resend-go/v2"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakeresend"
	"github.com/keybrake/keybrake/internal/testenv"
)

const resendKey = "re_123456789_abcdefghijklmnop"

const emailPolicy = `version: 1
vendors:
  resend:
    prices:
      email: 0.0004 USD
agents:
  mail-bot:
    resend:
      daily_cap: 1.00 USD
      daily_count: 3
      allow: [POST /emails, POST /emails/batch]
  pricey-bot:
    resend:
      daily_cap: 0.01 USD
      allow: [POST /emails, POST /emails/batch]
  batch-bot:
    resend:
      daily_cap: 1.00 USD
      daily_count: 150
      allow: [POST /emails/batch]
  scoped-bot:
    resend:
      daily_cap: 1.00 USD
      allow: [POST /emails, POST /emails/batch]
      recipients: ["@example.com"]
      from: ["alerts@example.com"]
      max_recipients: 2
`

// resendSDK is resend-go for an agent over the Brake's chain, with a
// counter of what reaches the server.
func resendSDK(t testing.TB, kb *keybrake.Brake, agent, key string) (*resend.Client, *counting) {
	wire := newCounting(nil)
	c := resend.NewCustomClient(&http.Client{Transport: kb.Transport(agent, keybrake.Resend, wire)}, key)
	return c, wire
}

func email(to ...string) *resend.SendEmailRequest {
	return &resend.SendEmailRequest{From: "Alerts <alerts@example.com>", To: to, Subject: "Your receipt", Text: "Thanks."}
}

// resendDenial checks an error from resend-go is a Keybrake refusal: the
// SDK keeps only its message, and AsDenial still recovers the decision.
func resendDenial(t testing.TB, err error, decision keybrake.Decision, code string) *keybrake.Denial {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	d, ok := keybrake.AsDenial(err)
	if !ok {
		t.Fatalf("AsDenial(%q) found no denial", err)
	}
	if d.Decision != decision || d.Code != code {
		t.Fatalf("denial %+v, want %s %s", d, decision, code)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		t.Fatalf("a refusal reached resend-go as a transport error: %v", err)
	}
	return d
}

// TestEmailsAgainstPrism: resend-go through Keybrake against a mock built
// from Resend's own OpenAPI description: emails stop at the daily count and
// at the money cap, and AsDenial works on resend-go's error.
func TestEmailsAgainstPrism(t *testing.T) {
	mock := testenv.Prism(t, testenv.Spec(t, "resend/resend.json"))
	kb := openBrake(t, emailPolicy, keybrake.Options{Endpoints: map[keybrake.Vendor]string{keybrake.Resend: mock}})

	mail, wire := resendSDK(t, kb, "mail-bot", resendKey)
	for i := 0; i < 3; i++ {
		if _, err := mail.Emails.Send(email("a@example.com")); err != nil {
			t.Fatalf("email %d: %v", i, err)
		}
	}
	_, err := mail.Emails.Send(email("a@example.com"))
	d := resendDenial(t, err, keybrake.Capped, "keybrake_daily_count")
	if d.Rule != "agents.mail-bot.resend.daily_count" || d.Status != 402 {
		t.Fatalf("denial %+v", d)
	}
	if n := wire.count("POST /emails"); n != 3 {
		t.Fatalf("%d emails reached Prism, want 3", n)
	}

	// 0.01 USD at 0.0004 an email: a batch of 25, then the money cap.
	pricey, _ := resendSDK(t, kb, "pricey-bot", resendKey)
	if _, err := pricey.Batch.Send(emails(25)); err != nil {
		t.Fatal(err)
	}
	_, err = pricey.Emails.Send(email("b@example.com"))
	resendDenial(t, err, keybrake.Capped, "keybrake_daily_cap")

	// A batch Prism accepts counts every email in it, whatever Prism's
	// one-entry answer says.
	batch, _ := resendSDK(t, kb, "batch-bot", resendKey)
	if _, err := batch.Batch.Send(emails(100)); err != nil {
		t.Fatal(err)
	}
	_, err = batch.Batch.Send(emails(100))
	resendDenial(t, err, keybrake.Capped, "keybrake_daily_count")
}

func emails(n int) []*resend.SendEmailRequest {
	out := make([]*resend.SendEmailRequest, n)
	for i := range out {
		out[i] = email(fmt.Sprintf("user%d@example.com", i))
	}
	return out
}

// TestBatchCountsEveryEmail against a fake Resend that sends what it is
// given: a batch of 100 counts 100, by money and by count; a permissive
// batch whose items partly fail counts what was sent.
func TestBatchCountsEveryEmail(t *testing.T) {
	fake, base := fakeresend.Start(t)
	fake.SetAPIKeys(resendKey)
	kb := openBrake(t, emailPolicy, keybrake.Options{Endpoints: map[keybrake.Vendor]string{keybrake.Resend: base}})
	batch, _ := resendSDK(t, kb, "batch-bot", resendKey)
	if _, err := batch.Batch.Send(emails(100)); err != nil {
		t.Fatal(err)
	}
	if fake.Sent() != 100 {
		t.Fatalf("fake sent %d", fake.Sent())
	}
	recs := dump(t, kb, audit.Query{Decision: keybrake.Allowed})
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	// 100 emails at 0.0004 USD.
	if r.Reserved.Micros != 40_000 || r.Settled.Micros != 40_000 {
		t.Fatalf("batch record %+v", r)
	}
	var units int64
	for _, h := range r.Holds {
		if h.Unit == "units" {
			units = h.Settled
		}
	}
	if units != 100 {
		t.Fatalf("holds %+v", r.Holds)
	}
	// 50 more fit the daily count of 150; 51 do not.
	if _, err := batch.Batch.Send(emails(51)); err == nil {
		t.Fatal("a batch over the daily count was sent")
	}
	if _, err := batch.Batch.Send(emails(50)); err != nil {
		t.Fatal(err)
	}
	if fake.Sent() != 150 {
		t.Fatalf("fake sent %d", fake.Sent())
	}
}

// TestRecipientScope: every to, cc and bcc address of every email must be
// in the agent's recipients, from its senders, and no email may have too
// many recipients.
func TestRecipientScope(t *testing.T) {
	fake, base := fakeresend.Start(t)
	fake.SetAPIKeys(resendKey)
	kb := openBrake(t, emailPolicy, keybrake.Options{Endpoints: map[keybrake.Vendor]string{keybrake.Resend: base}})
	mail, _ := resendSDK(t, kb, "scoped-bot", resendKey)
	if _, err := mail.Emails.Send(email("a@example.com", "b@example.com")); err != nil {
		t.Fatal(err)
	}
	e := email("a@example.com")
	e.Bcc = []string{"leak@gmail.com"}
	_, err := mail.Emails.Send(e)
	d := resendDenial(t, err, keybrake.Scoped, "keybrake_out_of_scope")
	if d.Rule != "agents.scoped-bot.resend.recipients" || !strings.Contains(d.Reason, "leak@gmail.com") {
		t.Fatalf("denial %+v", d)
	}
	_, err = mail.Emails.Send(email("a@example.com", "b@example.com", "c@example.com"))
	resendDenial(t, err, keybrake.Scoped, "keybrake_out_of_scope")
	e = email("a@example.com")
	e.From = "CEO <ceo@example.com>"
	_, err = mail.Emails.Send(e)
	resendDenial(t, err, keybrake.Scoped, "keybrake_out_of_scope")
	b := emails(2)
	b[1].To = []string{"x@other.org"}
	_, err = mail.Batch.Send(b)
	resendDenial(t, err, keybrake.Scoped, "keybrake_out_of_scope")
	if fake.Sent() != 1 {
		t.Fatalf("fake sent %d emails, want 1", fake.Sent())
	}
}
