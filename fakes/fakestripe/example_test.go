package fakestripe_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/money"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// An agent's test: the agent refunds through stripe-go wrapped by Keybrake
// until its daily cap refuses a refund with 402, and the money the fake
// Stripe actually moved is the money Keybrake's audit log says settled.
func Example_refundsToTheCap() {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 10000, Currency: "usd", Captured: true})
	ts := httptest.NewServer(fs)
	defer ts.Close()
	defer fs.Close() // runs first: releases requests a Hang holds

	dir, err := os.MkdirTemp("", "fakestripe-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	policyFile := filepath.Join(dir, "keybrake.yaml")
	if err := os.WriteFile(policyFile, []byte(`version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 50.00 USD
      allow: [POST /v1/refunds]
`), 0o600); err != nil {
		log.Fatal(err)
	}
	kb, err := keybrake.Open(keybrake.Options{
		PolicyFile: policyFile,
		DBPath:     filepath.Join(dir, "keybrake.db"),
		// stripe-go still addresses api.stripe.com; the Brake sends it here.
		Endpoints: map[keybrake.Vendor]string{keybrake.Stripe: ts.URL},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer kb.Close()
	sc := client.New("sk_test_agent", stripevendor.Backends(kb.HTTPClient("refund-bot", keybrake.Stripe)))

	for i := 1; ; i++ {
		_, err := sc.Refunds.New(&stripe.RefundParams{Charge: stripe.String("ch_1"), Amount: stripe.Int64(2000)})
		if d, ok := keybrake.AsDenial(err); ok {
			fmt.Printf("refund %d: %s (%d) by %s\n", i, d.Decision, d.Status, d.Rule)
			break
		}
		if err != nil {
			log.Fatal(err) // the fake refused it: the charge ran out before the cap
		}
		fmt.Printf("refund %d: 20.00 USD\n", i)
	}

	moved, err := money.FromMinor(fs.Moved()["usd"], "USD")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("fake Stripe moved:", moved, "in", len(fs.Movements()), "refunds")

	var dump bytes.Buffer
	if err := kb.Dump(&dump, audit.Query{Agent: "refund-bot"}); err != nil {
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
	fmt.Println("equal:", settled == moved)
	// Output:
	// refund 1: 20.00 USD
	// refund 2: 20.00 USD
	// refund 3: capped (402) by agents.refund-bot.stripe.daily_cap
	// fake Stripe moved: 40.00 USD in 2 refunds
	// audit settled: 40.00 USD in 2 calls
	// equal: true
}

// A refund whose answer is lost: the money moves, the client sees a 500,
// and the retry under the same Idempotency-Key is replayed rather than
// refunding twice. stripe-go is pointed at the fake directly, with its
// retries off so that the test makes each attempt itself.
func ExampleServer_ExecuteThenFail() {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})
	ts := httptest.NewServer(fs)
	defer ts.Close()
	defer fs.Close()
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(ts.URL),
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	sc := client.New("sk_test_123", &stripe.Backends{API: backend, Connect: backend, Uploads: backend})

	fs.ExecuteThenFail(1, 500)
	params := &stripe.RefundParams{Charge: stripe.String("ch_1"), Amount: stripe.Int64(2000)}
	params.SetIdempotencyKey("refund-ch_1-1")
	_, err := sc.Refunds.New(params)
	fmt.Println("first attempt failed:", err != nil, "moved:", fs.Moved()["usd"])

	re, err := sc.Refunds.New(params)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("retry:", re.ID, re.Amount, "replayed:", re.LastResponse.Header.Get("Idempotent-Replayed"))
	fmt.Println("moved:", fs.Moved()["usd"], "refunded:", fs.Refunded("ch_1"))
	// Output:
	// first attempt failed: true moved: 2000
	// retry: re_fs0000000003 2000 replayed: true
	// moved: 2000 refunded: 2000
}
