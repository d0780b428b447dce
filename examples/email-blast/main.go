// Command email-blast replays a newsletter agent gone wrong: a bug
// appends the subscriber list to itself on every retry, and the agent
// sends batch after batch. Through Keybrake, emails go out until the
// agent's daily count, addresses outside the domains it may write to are
// refused, and every further batch is refused before it leaves the
// process; keybrake.AsDenial recovers the decision from resend-go's
// error, which keeps only a message.
//
// With no setup it runs offline against an embedded fake Resend (see
// fakes/fakeresend). With RESEND_API_KEY set it runs against
// api.resend.com, sending to Resend's test addresses.
//
//	go run ./examples/email-blast
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/resend/resend-go/v2"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakeresend"
	"github.com/keybrake/keybrake/money"
)

const policyText = `version: 1
vendors:
  resend:
    prices:
      email: 0.0004 USD          # your plan's price per email
agents:
  newsletter-bot:
    resend:
      daily_cap: 1.00 USD
      daily_count: 1000          # emails a day
      allow:
        - POST /emails
        - POST /emails/batch
      recipients: ["@example.com", "@resend.dev"]
      from: ["news@example.com", "onboarding@resend.dev"]
      max_recipients: 1          # one subscriber an email, never a To: list
`

func main() {
	rounds := flag.Int("rounds", 30, "how many times the buggy agent resends the whole list")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "keybrake-email-")
	if err != nil {
		log.Fatal(err)
	}
	policyFile := filepath.Join(dir, "keybrake.yaml")
	if err := os.WriteFile(policyFile, []byte(policyText), 0o600); err != nil {
		log.Fatal(err)
	}

	key, from, domain := os.Getenv("RESEND_API_KEY"), "onboarding@resend.dev", "resend.dev"
	var fake *fakeresend.Server
	var endpoints map[keybrake.Vendor]string
	where := "api.resend.com"
	if key == "" {
		fake = fakeresend.New()
		key, from, domain = fakeresend.DefaultAPIKey, "news@example.com", "example.com"
		srv := httptest.NewServer(fake)
		defer srv.Close()
		endpoints = map[keybrake.Vendor]string{keybrake.Resend: srv.URL}
		where = "embedded fake Resend"
	}

	kb, err := keybrake.Open(keybrake.Options{
		PolicyFile: policyFile,
		DBPath:     filepath.Join(dir, "keybrake.db"),
		Endpoints:  endpoints,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer kb.Close()

	// The agent's Resend client over Keybrake's chain.
	rc := resend.NewCustomClient(kb.HTTPClient("newsletter-bot", keybrake.Resend), key)

	// 100 subscribers; a few imported from a partner list by mistake.
	var list []string
	for i := 0; i < 100; i++ {
		addr := fmt.Sprintf("subscriber%03d@%s", i, domain)
		if i%25 == 24 {
			addr = fmt.Sprintf("lead%03d@partner.example.org", i)
		}
		list = append(list, addr)
	}
	fmt.Printf("Runaway newsletter: the list of %d is sent %d times, in batches of up to 100 (%s).\n", len(list), *rounds, where)
	var firstRefusal error
	for round := 0; round < *rounds; round++ {
		batch := make([]*resend.SendEmailRequest, 0, 100)
		send := func() {
			if _, err := rc.Batch.Send(batch); err != nil && firstRefusal == nil {
				firstRefusal = err
			}
			batch = batch[:0]
		}
		for _, to := range list {
			batch = append(batch, &resend.SendEmailRequest{From: "News <" + from + ">", To: []string{to}, Subject: "This week", Text: "Hello!"})
			if len(batch) == 100 {
				send()
			}
		}
		if len(batch) > 0 {
			send()
		}
		// The bug: the partner leads were dropped, so the retry sends
		// only clean addresses from now on, twice as many.
		if round == 0 {
			var clean []string
			for _, to := range list {
				if !strings.HasSuffix(to, ".org") {
					clean = append(clean, to)
				}
			}
			list = append(clean, clean...)
		}
	}
	if d, ok := keybrake.AsDenial(firstRefusal); ok {
		fmt.Printf("\nThe first refusal, recovered from resend-go's error by keybrake.AsDenial:\n  %s by %s: %s\n", d.Decision, d.Rule, d.Reason)
	}

	var buf bytes.Buffer
	if err := kb.Dump(&buf, audit.Query{Agent: "newsletter-bot"}); err != nil {
		log.Fatal(err)
	}
	by := map[keybrake.Decision]int{}
	spent := money.Amount{Currency: "USD"}
	dec := json.NewDecoder(&buf)
	for {
		var r audit.Record
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			log.Fatal(err)
		}
		by[r.Decision]++
		if r.Outcome == audit.Settled {
			spent, _ = spent.Add(r.Settled)
		}
	}
	fmt.Printf("\nFrom the audit log:\n")
	fmt.Printf("  batches sent:      %d, %s\n", by[keybrake.Allowed], spent)
	fmt.Printf("  out of scope:      %d batches refused (an address outside the allowed domains)\n", by[keybrake.Scoped])
	fmt.Printf("  capped:            %d batches refused (the daily count of 1,000 emails)\n", by[keybrake.Capped])
	if fake != nil {
		fmt.Printf("Fake Resend delivered %d emails.\n", fake.Sent())
	}
	fmt.Printf("Policy and audit database: %s\n", dir)
}
