package faketwilio_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/faketwilio"
	"github.com/keybrake/keybrake/money"
)

// An agent's test: the agent sends SMS through twilio-go wrapped by
// Keybrake until its daily cap refuses one with 402. Twilio answers a new
// message with "price": null, so Keybrake counts each at the policy's
// estimate; once the fake has priced them, Reconcile settles them at
// Twilio's price, and what the fake Twilio will bill is what Keybrake's
// audit log says settled.
func Example_smsToTheCap() {
	ft := faketwilio.New()
	ft.SetPrice("+1", "0.0083") // Twilio's price, above the policy's estimate
	ts := httptest.NewServer(ft)
	defer ts.Close()
	defer ft.Close() // runs first: releases requests a Hang holds

	dir, err := os.MkdirTemp("", "faketwilio-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	policyFile := filepath.Join(dir, "keybrake.yaml")
	if err := os.WriteFile(policyFile, []byte(`version: 1
vendors:
  twilio:
    prices:
      sms:
        default: 0.0079 USD
agents:
  sms-bot:
    twilio:
      daily_cap: 0.05 USD
      allow:
        - POST /2010-04-01/Accounts/{sid}/Messages.json
`), 0o600); err != nil {
		log.Fatal(err)
	}
	kb, err := keybrake.Open(keybrake.Options{
		PolicyFile: policyFile,
		DBPath:     filepath.Join(dir, "keybrake.db"),
		// twilio-go still addresses api.twilio.com; the Brake sends it here.
		Endpoints: map[keybrake.Vendor]string{keybrake.Twilio: ts.URL},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer kb.Close()
	c := &client.Client{
		Credentials: client.NewCredentials(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken),
		HTTPClient:  kb.HTTPClient("sms-bot", keybrake.Twilio),
	}
	c.SetAccountSid(faketwilio.DefaultAccountSID)
	tw := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})

	for i := 1; ; i++ {
		params := &api.CreateMessageParams{}
		params.SetTo("+15551234567").SetFrom("+15005550006").SetBody("Your code is 123456")
		m, err := tw.Api.CreateMessage(params)
		if d, ok := keybrake.AsDenial(err); ok {
			fmt.Printf("sms %d: %s (%d) by %s\n", i, d.Decision, d.Status, d.Rule)
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("sms %d: %s %s\n", i, *m.Sid, *m.Status)
	}

	ft.PriceMessages()
	res, err := kb.Reconcile(context.Background(), keybrake.Twilio, func(r *http.Request) {
		r.SetBasicAuth(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("reconciled:", res.Settled, "of", res.Checked)

	spent := ft.Spent()["USD"]
	fmt.Println("fake Twilio spent:", spent, "in", len(ft.Messages()), "messages")

	var dump bytes.Buffer
	if err := kb.Dump(&dump, audit.Query{Agent: "sms-bot"}); err != nil {
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
	fmt.Println("equal:", settled == spent)
	// Output:
	// sms 1: SM00000000000000000000000000000001 queued
	// sms 2: SM00000000000000000000000000000002 queued
	// sms 3: SM00000000000000000000000000000003 queued
	// sms 4: SM00000000000000000000000000000004 queued
	// sms 5: SM00000000000000000000000000000005 queued
	// sms 6: SM00000000000000000000000000000006 queued
	// sms 7: capped (402) by agents.sms-bot.twilio.daily_cap
	// reconciled: 6 of 6
	// fake Twilio spent: 0.0498 USD in 6 messages
	// audit settled: 0.0498 USD in 6 calls
	// equal: true
}

// A message is billed by its segments, but Twilio reports the price only
// after it has gone out: the create answer says "price": null.
func ExampleServer_PriceMessages() {
	ft := faketwilio.New()
	ft.SetPrice("+44", "0.0400")
	ts := httptest.NewServer(ft)
	defer ts.Close()
	defer ft.Close()

	c := &client.Client{
		Credentials: client.NewCredentials(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken),
		HTTPClient:  faketwilio.HTTPClient(ts.URL),
	}
	c.SetAccountSid(faketwilio.DefaultAccountSID)
	tw := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})

	params := &api.CreateMessageParams{}
	params.SetTo("+447700900123").SetFrom("+15005550006").SetBody(strings.Repeat("Your order has shipped. ", 10))
	m, err := tw.Api.CreateMessage(params)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*m.Sid, *m.Status, "segments:", *m.NumSegments, "price:", m.Price)

	ft.PriceMessages()
	m, err = tw.Api.FetchMessage(*m.Sid, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*m.Status, "price:", *m.Price, *m.PriceUnit)
	fmt.Println("spent:", ft.Spent()[faketwilio.PriceUnit])
	// Output:
	// SM00000000000000000000000000000001 queued segments: 2 price: <nil>
	// sent price: -0.08000 USD
	// spent: 0.08 USD
}

// A call costs nothing until it is over, then its started minutes.
func ExampleServer_CompleteCalls() {
	ft := faketwilio.New()
	ts := httptest.NewServer(ft)
	defer ts.Close()
	defer ft.Close()

	c := &client.Client{
		Credentials: client.NewCredentials(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken),
		HTTPClient:  faketwilio.HTTPClient(ts.URL),
	}
	c.SetAccountSid(faketwilio.DefaultAccountSID)
	tw := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})

	params := &api.CreateCallParams{}
	params.SetTo("+15558675310").SetFrom("+15005550006").SetUrl("https://example.com/twiml").SetTimeLimit(300)
	call, err := tw.Api.CreateCall(params)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*call.Sid, *call.Status, "price:", call.Price)

	ft.CompleteCalls(60) // the agent left it running; TimeLimit ends it at 5 minutes
	call, err = tw.Api.FetchCall(*call.Sid, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*call.Status, "duration:", *call.Duration, "price:", *call.Price)
	// Output:
	// CA00000000000000000000000000000001 queued price: <nil>
	// completed duration: 300 price: -0.07000
}
