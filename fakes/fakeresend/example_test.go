package fakeresend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"

	"github.com/resend/resend-go/v2"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakeresend"
	"github.com/keybrake/keybrake/money"
)

// An agent's test: the agent sends emails through resend-go wrapped by
// Keybrake until its daily cap refuses one with 402, and the emails the
// fake Resend actually sent are the ones Keybrake's audit log says
// settled, at the policy's price.
func Example_emailsToTheCap() {
	fr := fakeresend.New()
	ts := httptest.NewServer(fr)
	defer ts.Close()
	defer fr.Close() // runs first: releases requests a Hang holds

	dir, err := os.MkdirTemp("", "fakeresend-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	policyFile := filepath.Join(dir, "keybrake.yaml")
	if err := os.WriteFile(policyFile, []byte(`version: 1
vendors:
  resend:
    prices:
      email: 0.0030 USD
agents:
  mail-bot:
    resend:
      daily_cap: 0.01 USD
      allow: [POST /emails]
`), 0o600); err != nil {
		log.Fatal(err)
	}
	kb, err := keybrake.Open(keybrake.Options{
		PolicyFile: policyFile,
		DBPath:     filepath.Join(dir, "keybrake.db"),
		// resend-go still addresses api.resend.com; the Brake sends it here.
		Endpoints: map[keybrake.Vendor]string{keybrake.Resend: ts.URL},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer kb.Close()
	rc := resend.NewCustomClient(kb.HTTPClient("mail-bot", keybrake.Resend), fakeresend.DefaultAPIKey)

	for i := 1; ; i++ {
		sent, err := rc.Emails.Send(&resend.SendEmailRequest{
			From: "Alerts <alerts@example.com>", To: []string{"ada@example.com"},
			Subject: "Your receipt", Text: "Thanks.",
		})
		if d, ok := keybrake.AsDenial(err); ok {
			fmt.Printf("email %d: %s (%d) by %s\n", i, d.Decision, d.Status, d.Rule)
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("email %d: %s\n", i, sent.Id)
	}
	fmt.Println("fake Resend sent:", fr.Sent(), "emails to", fr.Recipients(), "recipients")

	var dump bytes.Buffer
	if err := kb.Dump(&dump, audit.Query{Agent: "mail-bot"}); err != nil {
		log.Fatal(err)
	}
	settled, calls := money.Amount{Currency: "USD"}, 0
	for dec := json.NewDecoder(&dump); dec.More(); {
		var r audit.Record
		if err := dec.Decode(&r); err != nil {
			log.Fatal(err)
		}
		if r.Outcome != audit.Settled {
			continue
		}
		if settled, err = settled.Add(r.Settled); err != nil {
			log.Fatal(err)
		}
		calls++
	}
	fmt.Println("audit settled:", settled, "in", calls, "calls")
	fmt.Println("equal:", calls == fr.Sent())
	// Output:
	// email 1: 00000000-0000-4000-8000-000000000001
	// email 2: 00000000-0000-4000-8000-000000000002
	// email 3: 00000000-0000-4000-8000-000000000003
	// email 4: capped (402) by agents.mail-bot.resend.daily_cap
	// fake Resend sent: 3 emails to 3 recipients
	// audit settled: 0.009 USD in 3 calls
	// equal: true
}

// A permissive batch sends the valid emails and reports the others: what
// Keybrake must count is what the answer's data says, not the batch size.
func ExampleServer_permissiveBatch() {
	fr := fakeresend.New()
	ts := httptest.NewServer(fr)
	defer ts.Close()
	defer fr.Close()

	rc := resend.NewCustomClient(nil, fakeresend.DefaultAPIKey)
	rc.BaseURL, _ = url.Parse(ts.URL + "/")

	emails := []*resend.SendEmailRequest{
		{From: "agent@keybrake.dev", To: []string{"ada@example.com", "grace@example.com"}, Subject: "Hi", Text: "Hello"},
		{From: "agent@keybrake.dev", To: []string{"not an address"}, Subject: "Hi", Text: "Hello"},
		{From: "agent@keybrake.dev", To: []string{"alan@example.com"}, Subject: "Hi", Text: "Hello"},
	}
	res, err := rc.Batch.SendWithOptions(context.Background(), emails, &resend.BatchSendEmailOptions{
		IdempotencyKey:  "newsletter-2026-03",
		BatchValidation: resend.BatchValidationPermissive,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range res.Data {
		fmt.Println("sent", d.Id)
	}
	for _, e := range res.Errors {
		fmt.Println("refused", e.Index)
	}
	fmt.Println("emails:", fr.Sent(), "recipients:", fr.Recipients())

	// A retry of the same batch under the same key sends nothing more.
	if _, err := rc.Batch.SendWithOptions(context.Background(), emails, &resend.BatchSendEmailOptions{
		IdempotencyKey:  "newsletter-2026-03",
		BatchValidation: resend.BatchValidationPermissive,
	}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("after the retry:", fr.Sent())
	// Output:
	// sent 00000000-0000-4000-8000-000000000001
	// sent 00000000-0000-4000-8000-000000000002
	// refused 1
	// emails: 2 recipients: 3
	// after the retry: 2
}
