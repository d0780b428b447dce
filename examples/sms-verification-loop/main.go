// Command sms-verification-loop replays a stuck verification loop: an
// agent resends a login code again and again, and an SMS pumping attack
// slips premium-rate numbers into its queue. Through Keybrake the codes go
// out until the agent's daily cap, numbers outside the destinations it may
// reach are refused, and every further send is answered 402 by twilio-go's
// own error before it leaves the process.
//
// With no setup it runs offline against an embedded fake Twilio (see
// fakes/faketwilio), which prices messages after sending them, as
// Twilio does; the demo then reconciles the estimates to the real prices.
// With TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN set (Twilio's test
// credentials, which send nothing) it runs against api.twilio.com.
//
//	go run ./examples/sms-verification-loop
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"

	"github.com/twilio/twilio-go"
	twclient "github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/faketwilio"
	"github.com/keybrake/keybrake/money"
)

const policyText = `version: 1
vendors:
  twilio:
    prices:
      sms:
        default: 0.0079 USD       # Twilio's US list price a segment; set yours
        "+44": 0.0400 USD
agents:
  verify-bot:
    twilio:
      daily_cap: 0.50 USD
      daily_count: 100            # segments a day
      allow:
        - POST /2010-04-01/Accounts/{sid}/Messages.json
      to: ["+1*"]                 # US and Canada only: no premium-rate pumping
      from: [+15005550006]
`

func main() {
	attempts := flag.Int("attempts", 1000, "sends the stuck loop tries")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "keybrake-sms-")
	if err != nil {
		log.Fatal(err)
	}
	policyFile := filepath.Join(dir, "keybrake.yaml")
	if err := os.WriteFile(policyFile, []byte(policyText), 0o600); err != nil {
		log.Fatal(err)
	}

	sid, token := os.Getenv("TWILIO_ACCOUNT_SID"), os.Getenv("TWILIO_AUTH_TOKEN")
	var fake *faketwilio.Server
	var endpoints map[keybrake.Vendor]string
	where := "api.twilio.com"
	if sid == "" {
		fake = faketwilio.New()
		sid, token = faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken
		fake.SetCredentials(sid, token)
		fake.SetPrice("+1", "0.0083") // what Twilio bills may differ from the list price
		srv := httptestServer(fake)
		defer srv.close()
		endpoints = map[keybrake.Vendor]string{keybrake.Twilio: srv.url}
		where = "embedded fake Twilio"
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

	// The agent's Twilio client: its HTTP client is Keybrake's chain.
	c := &twclient.Client{Credentials: twclient.NewCredentials(sid, token), HTTPClient: kb.HTTPClient("verify-bot", keybrake.Twilio)}
	c.SetAccountSid(sid)
	tw := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})

	fmt.Printf("Stuck verification loop: %d sends (%s); one in ten to a premium-rate number.\n", *attempts, where)
	var firstCap error
	for i := 0; i < *attempts; i++ {
		to := "+15005550006"
		if i%10 == 9 {
			to = "+882345678901" // an international premium-rate range
		}
		p := (&api.CreateMessageParams{}).SetTo(to).SetFrom("+15005550006").SetBody(fmt.Sprintf("Your code is %06d", i))
		_, err := tw.Api.CreateMessage(p)
		var te *twclient.TwilioRestError
		if errors.As(err, &te) && te.Status == 402 && firstCap == nil {
			firstCap = err
		}
	}
	if firstCap != nil {
		fmt.Printf("\nWhat the agent saw once the cap held:\n  %v\n", firstCap)
	}
	summary(kb, "From the audit log")

	if fake != nil {
		n := fake.PriceMessages()
		res, err := kb.Reconcile(context.Background(), keybrake.Twilio, func(r *http.Request) { r.SetBasicAuth(sid, token) })
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("\nTwilio priced %d messages; Reconcile settled %d estimates at the real price.\n", n, res.Settled)
		summary(kb, "After reconciliation")
		spent := fake.Spent()["USD"]
		fmt.Printf("Fake Twilio's own bill: %s\n", spent)
	}
	fmt.Printf("Policy and audit database: %s\n", dir)
}

func summary(kb *keybrake.Brake, title string) {
	var buf bytes.Buffer
	if err := kb.Dump(&buf, audit.Query{Agent: "verify-bot"}); err != nil {
		log.Fatal(err)
	}
	by := map[keybrake.Decision]int{}
	moved := money.Amount{Currency: "USD"}
	estimated := 0
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
			moved, _ = moved.Add(r.Settled)
			if r.Estimated {
				estimated++
			}
		}
	}
	fmt.Printf("\n%s:\n", title)
	fmt.Printf("  sent:           %d messages, %s (%d still estimates)\n", by[keybrake.Allowed], moved, estimated)
	fmt.Printf("  out of scope:   %d premium-rate sends refused (403)\n", by[keybrake.Scoped])
	fmt.Printf("  capped (402):   %d sends refused\n", by[keybrake.Capped])
}
