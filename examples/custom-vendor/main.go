// Command custom-vendor brakes a vendor Keybrake does not know out of the
// box. The vendor is a made-up payouts API; everything Keybrake needs to
// know of it is in vendor.go, written against the vendors.Vendor contract
// (see vendors/doc.go) and handed to Keybrake in Options.Vendors. A
// policy then grants and caps it like any built-in vendor.
//
// An agent pays out 25.00 USD at a time until its daily cap of 100.00 USD
// refuses a payout with 402, before it leaves the process; the agent's
// error carries the decision, which keybrake.AsDenial recovers. The
// payouts API is a loopback server in server.go, so the example runs
// offline:
//
//	go run ./examples/custom-vendor
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// The policy names the vendor like any other. recipients is the vendor's
// own grant key, declared in its Info; the others are common to all.
const policyText = `version: 1
agents:
  payout-bot:
    payouts:
      daily_cap: 100.00 USD        # all this agent pays out per UTC day
      per_call_max: 50.00 USD
      recipients: [acct_alice, acct_bob]
      allow:
        - POST /v1/payouts
        - GET /v1/payouts/{id}
`

const (
	apiKey = "pk_test_payoutbot"
	agent  = "payout-bot"
	// maxAttempts bounds the loop should the cap never hold.
	maxAttempts = 20
)

func main() {
	log.SetFlags(0)
	dir, err := os.MkdirTemp("", "keybrake-payouts-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := run(os.Stdout, dir, nil); err != nil {
		log.Fatal(err)
	}
}

// brake is Keybrake opened with the payouts vendor, in front of the
// loopback payouts API.
type brake struct {
	kb     *keybrake.Brake
	api    *payoutsAPI
	client *payoutsClient // the agent's
	close  func()
}

// open writes the policy to dir and opens Keybrake there. clock nil means
// time.Now.
func open(dir string, clock func() time.Time) (*brake, error) {
	policyFile := filepath.Join(dir, "keybrake.yaml")
	if err := os.WriteFile(policyFile, []byte(policyText), 0o600); err != nil {
		return nil, err
	}
	api := newPayoutsAPI(apiKey)
	srv := httptest.NewServer(api)
	kb, err := keybrake.Open(keybrake.Options{
		PolicyFile: policyFile,
		DBPath:     filepath.Join(dir, "keybrake.db"),
		// The vendor of our own, under its name, and where its traffic
		// goes: the agent addresses api.payouts.example, Keybrake sends
		// the calls it allows to the loopback server.
		Vendors:   map[keybrake.Vendor]vendors.Vendor{"payouts": payoutsVendor{}},
		Endpoints: map[keybrake.Vendor]string{"payouts": srv.URL},
		Clock:     clock,
	})
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &brake{
		kb:     kb,
		api:    api,
		client: &payoutsClient{http: kb.HTTPClient(agent, "payouts"), key: apiKey},
		close: func() {
			kb.Close()
			srv.Close()
		},
	}, nil
}

// result is what a run did, for the test to check.
type result struct {
	paid    []*payout
	status  int              // of the refused payout
	denial  *keybrake.Denial // what AsDenial made of its error
	records []audit.Record
	ledger  map[string]int64 // the API's own tally, minor units by currency
}

// run pays out 25.00 USD at a time until Keybrake refuses a payout, and
// reads the audit log back.
func run(w io.Writer, dir string, clock func() time.Time) (*result, error) {
	b, err := open(dir, clock)
	if err != nil {
		return nil, err
	}
	defer b.close()
	ctx := context.Background()
	res := &result{}
	to := []string{"acct_alice", "acct_bob"}
	for i := 1; res.denial == nil; i++ {
		if i > maxAttempts {
			return nil, fmt.Errorf("%d payouts and the cap never refused one", maxAttempts)
		}
		p, err := b.client.create(ctx, 2500, "usd", to[(i-1)%len(to)])
		if err == nil {
			res.paid = append(res.paid, p)
			fmt.Fprintf(w, "payout %d: %s to %s: %s %s\n", i, minor(p.Amount, p.Currency), p.Recipient, p.ID, p.Status)
			continue
		}
		d, ok := keybrake.AsDenial(err)
		if !ok {
			return nil, fmt.Errorf("payout %d failed at the payouts API, not at Keybrake: %w", i, err)
		}
		var ae *apiError
		if errors.As(err, &ae) {
			res.status = ae.Status
		}
		res.denial = d
		fmt.Fprintf(w, "payout %d: %d %s\n", i, res.status, http.StatusText(res.status))
		fmt.Fprintf(w, "  keybrake.AsDenial: decision %s, code %s, rule %s\n", d.Decision, d.Code, d.Rule)
		fmt.Fprintf(w, "  %s\n", d.Reason)
	}

	if res.records, err = records(b.kb); err != nil {
		return nil, err
	}
	res.ledger = b.api.ledger()
	fmt.Fprintf(w, "\nAudit log (%s):\n", agent)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  id\tdecision\toperation\trecipient\tamount\tsettled\toutcome\trule")
	for _, r := range res.records {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Decision, r.Operation, r.Params["recipient"],
			shown(r.Amount), shown(r.Settled), r.Outcome, r.Rule)
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "\nThe payouts API's own ledger: %s\n", minor(res.ledger["usd"], "usd"))
	return res, nil
}

// records reads the agent's audit records back, oldest first.
func records(kb *keybrake.Brake) ([]audit.Record, error) {
	var buf bytes.Buffer
	if err := kb.Dump(&buf, audit.Query{Agent: agent}); err != nil {
		return nil, err
	}
	var out []audit.Record
	dec := json.NewDecoder(&buf)
	for {
		var r audit.Record
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
}

// minor renders n minor units of a lower-case currency code.
func minor(n int64, currency string) string {
	c, err := money.ParseCurrency(currency)
	if err != nil {
		return fmt.Sprintf("%d %s", n, currency)
	}
	a, err := money.FromMinor(n, c)
	if err != nil {
		return fmt.Sprintf("%d %s", n, currency)
	}
	return a.String()
}

func shown(a money.Amount) string {
	if a.IsZero() {
		return "-"
	}
	return a.String()
}
