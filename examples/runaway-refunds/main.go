// Command runaway-refunds replays the incident Keybrake exists for: a refund
// agent stuck on a customer cohort fires thousands of refunds as fast as it
// can. It runs the loop twice. Under the daily cap alone, the refunds pass
// until the agent's daily cap and every further call is answered 402
// before it leaves the process. With a velocity limit that trips, the
// 21st refund in a minute halts the agent, and every call after is
// answered 401 until a person resumes it: 20 refunds instead of 50, and
// the loop is stopped in well under a second.
//
// With no setup it runs offline against an embedded fake Stripe (see
// fakes/fakestripe). With STRIPE_KEY set to a test-mode key it runs
// against Stripe's test mode, or against STRIPE_BASE_URL (stripe-mock, for
// instance) when that is set too:
//
//	go run ./examples/runaway-refunds
//	STRIPE_KEY=sk_test_... go run ./examples/runaway-refunds -attempts 80
//	STRIPE_KEY=sk_test_123 STRIPE_BASE_URL=http://127.0.0.1:12111 go run ./examples/runaway-refunds
//
// Then look at it: the run prints the keybrake ui command that serves the
// incident page on its database (-dir keeps it where you say).
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
	"sync"
	"sync/atomic"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/money"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// The two policies the loop runs against: the daily cap alone, and the
// same cap with a velocity limit that halts the agent when it trips.
const capOnly = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD      # all money this agent moves on Stripe per UTC day
      per_call_max: 50.00 USD
      allow:
        - POST /v1/refunds
        - GET /v1/charges/{id}
`

const withVelocity = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      per_call_max: 50.00 USD
      rate:
        - {count: 20, per: 1m, halt: true}   # a 21st refund in any minute halts the agent until a person resumes it
      allow:
        - POST /v1/refunds
        - GET /v1/charges/{id}
`

func main() {
	attempts := flag.Int("attempts", 4300, "refunds the stuck loop tries")
	workers := flag.Int("workers", 8, "concurrent refunds in flight")
	amount := flag.Int64("amount", 1000, "each refund, in cents")
	cohort := flag.Int("cohort", 300, "customers in the cohort (offline only)")
	dir := flag.String("dir", "", "where to keep the policies and the databases (default: a new temporary directory)")
	flag.Parse()
	log.SetFlags(0)
	stripego.DefaultLeveledLogger = &stripego.LeveledLogger{Level: stripego.LevelNull}

	if *dir == "" {
		d, err := os.MkdirTemp("", "keybrake-runaway-")
		if err != nil {
			log.Fatal(err)
		}
		*dir = d
	}
	loop := loop{attempts: *attempts, workers: *workers, amount: *amount, cohort: *cohort}
	capped, err := loop.run("the daily cap alone", filepath.Join(*dir, "cap"), capOnly)
	if err != nil {
		log.Fatal(err)
	}
	tripped, err := loop.run("the cap and a velocity limit {count: 20, per: 1m, halt: true}", filepath.Join(*dir, "velocity"), withVelocity)
	if err != nil {
		log.Fatal(err)
	}

	fmt.Printf("\nSide by side, the same stuck loop of %d refunds:\n", *attempts)
	fmt.Printf("  the daily cap alone:      %3d refunds got through (%s); the cap held %s into the loop\n",
		capped.allowed, capped.moved, capped.stoppedAfter.Round(time.Millisecond))
	fmt.Printf("  with the velocity limit:  %3d refunds got through (%s); the trip halted refund-bot %s into the loop\n",
		tripped.allowed, tripped.moved, tripped.stoppedAfter.Round(time.Millisecond))
	fmt.Printf("  and refund-bot stays halted until a person runs: keybrake resume refund-bot --policy %s\n", tripped.policyFile)
	fmt.Printf("See the cap alone second by second on the incident page:\n  go run ./cmd/keybrake ui --db %s --policy %s\n",
		capped.db, capped.policyFile)
}

// loop is the stuck agent: attempts refunds of amount, workers at a time.
type loop struct {
	attempts, workers, cohort int
	amount                    int64
}

// outcome is what one run of the loop let through, read back from the
// audit log.
type outcome struct {
	allowed      int
	moved        money.Amount
	stoppedAfter time.Duration // from the first call to the first refusal
	db           string
	policyFile   string
}

// run runs the loop through a Brake of policy, keeping the policy and the
// database in dir.
func (l loop) run(name, dir, policy string) (*outcome, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out := &outcome{db: filepath.Join(dir, "keybrake.db"), policyFile: filepath.Join(dir, "keybrake.yaml")}
	if err := os.WriteFile(out.policyFile, []byte(policy), 0o600); err != nil {
		return nil, err
	}
	// A kill switch left by an earlier run (-dir) would halt this one.
	if err := os.Remove(out.policyFile + ".halt"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	target, err := setUp(l.cohort, l.amount)
	if err != nil {
		return nil, err
	}
	defer target.close()

	kb, err := keybrake.Open(keybrake.Options{PolicyFile: out.policyFile, DBPath: out.db, Endpoints: target.endpoints})
	if err != nil {
		return nil, err
	}
	defer kb.Close()

	// The agent's Stripe client: one line wraps it.
	sc := client.New(target.key, stripevendor.Backends(kb.HTTPClient("refund-bot", keybrake.Stripe)))

	fmt.Printf("\n== %s ==\nStuck loop: %d refunds of %s over %d charges (%s), %d at a time.\n",
		name, l.attempts, usd(l.amount), len(target.charges), target.name, l.workers)
	start := time.Now()
	var firstDenial atomic.Pointer[error]
	var failed atomic.Int64
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < l.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				ch := target.charges[i%len(target.charges)]
				_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String(ch), Amount: stripego.Int64(l.amount)})
				if err == nil {
					continue
				}
				if _, ok := keybrake.AsDenial(err); ok {
					firstDenial.CompareAndSwap(nil, &err)
					continue
				}
				if failed.Add(1) == 1 {
					log.Printf("a refund failed at Stripe, not at Keybrake: %v", err)
				}
			}
		}()
	}
	for i := 0; i < l.attempts; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)

	if e := firstDenial.Load(); e != nil {
		fmt.Printf("What the agent saw once Keybrake held:\n  %v\n", *e)
	}
	if err := summarize(kb, elapsed, failed.Load(), out); err != nil {
		return nil, err
	}
	if target.moved != nil {
		fmt.Printf("Fake Stripe's own tally of refunds:  %s\n", usd(target.moved()))
	}
	return out, nil
}

// summarize reads the incident back from the audit log into out.
func summarize(kb *keybrake.Brake, elapsed time.Duration, failed int64, out *outcome) error {
	var buf bytes.Buffer
	if err := kb.Dump(&buf, audit.Query{Agent: "refund-bot"}); err != nil {
		return err
	}
	dec := json.NewDecoder(&buf)
	byDecision := map[keybrake.Decision]int{}
	var first time.Time
	var firstRefused *audit.Record
	for {
		var r audit.Record
		if err := dec.Decode(&r); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if first.IsZero() {
			first = r.Time
		}
		byDecision[r.Decision]++
		if r.Outcome == audit.Settled && r.Operation == "refunds.create" {
			out.allowed++
			if out.moved.Currency == "" {
				out.moved.Currency = r.Settled.Currency
			}
			var err error
			if out.moved, err = out.moved.Add(r.Settled); err != nil {
				return err
			}
		}
		if r.Decision != keybrake.Allowed && firstRefused == nil {
			rc := r
			firstRefused = &rc
			out.stoppedAfter = r.Time.Sub(first)
		}
	}
	fmt.Printf("From the audit log (%s):\n", elapsed.Round(time.Millisecond))
	fmt.Printf("  allowed:        %d refunds, %s moved\n", byDecision[keybrake.Allowed], out.moved)
	fmt.Printf("  capped (402):   %d refunds, never sent\n", byDecision[keybrake.Capped])
	if n := byDecision[keybrake.Revoked]; n > 0 {
		fmt.Printf("  tripped (401):  %d refunds, never sent: the agent is halted\n", n)
	}
	if n := byDecision[keybrake.Blocked] + byDecision[keybrake.Error]; n > 0 {
		fmt.Printf("  other refusals: %d\n", n)
	}
	if failed > 0 {
		fmt.Printf("  failed at Stripe: %d\n", failed)
	}
	if firstRefused != nil {
		fmt.Printf("  first refused:  call %d at %s\n                  %s\n",
			firstRefused.ID, firstRefused.Time.Format(time.RFC3339Nano), firstRefused.Reason)
	}
	return nil
}

// target is the Stripe the agent talks to.
type target struct {
	name      string
	key       string
	endpoints map[keybrake.Vendor]string
	charges   []string
	moved     func() int64
	close     func()
}

func setUp(cohort int, amount int64) (*target, error) {
	key := os.Getenv("STRIPE_KEY")
	if key == "" {
		return offline(cohort)
	}
	t := &target{name: "Stripe test mode", key: key, close: func() {}}
	base := os.Getenv("STRIPE_BASE_URL")
	setup := &stripego.BackendConfig{}
	if base != "" {
		t.name = base
		t.endpoints = map[keybrake.Vendor]string{keybrake.Stripe: base}
		setup.URL = stripego.String(base)
	}
	// The runner's own setup, not the agent: one large charge to refund.
	b := stripego.GetBackendWithConfig(stripego.APIBackend, setup)
	runner := client.New(key, &stripego.Backends{API: b, Connect: b, Uploads: b})
	ch, err := runner.Charges.New(&stripego.ChargeParams{
		Amount:   stripego.Int64(99_999_99),
		Currency: stripego.String("usd"),
		Source:   &stripego.PaymentSourceSourceParams{Token: stripego.String("tok_visa")},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the charge to refund: %w", err)
	}
	t.charges = []string{ch.ID}
	return t, nil
}

// offline is a cohort of customers with a 100.00 USD charge each, on an
// embedded fake Stripe.
func offline(cohort int) (*target, error) {
	fs := fakestripe.New()
	srv := httptest.NewServer(fs)
	t := &target{
		name:      "embedded fake Stripe",
		key:       "sk_test_runaway",
		endpoints: map[keybrake.Vendor]string{keybrake.Stripe: srv.URL},
		moved:     func() int64 { return fs.Moved()["usd"] },
		close:     func() { fs.Close(); srv.Close() },
	}
	for i := 0; i < cohort; i++ {
		cus := fmt.Sprintf("cus_cohort%03d", i)
		fs.AddCustomer(cus)
		ch := fmt.Sprintf("ch_cohort%03d", i)
		fs.AddCharge(fakestripe.Charge{ID: ch, Amount: 10000, Currency: "usd", Customer: cus, Captured: true})
		t.charges = append(t.charges, ch)
	}
	return t, nil
}

func usd(cents int64) string {
	a, _ := money.FromMinor(cents, "USD")
	return a.String()
}
