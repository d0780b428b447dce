// Command approvals walks through an approval, offline: a payout agent
// whose transfers need a person. Its first transfer is held (403, decision
// held) with an approval id; its retries wait for that same approval and
// open no other; an operator approves exactly that request; the agent's
// next call of it goes through once, and the one after is held again. A
// transfer that differs by one cent, or goes elsewhere, is a request of its
// own.
//
// It runs against an embedded fake Stripe (fakes/fakestripe), with the
// operator's side played by Brake.Approve, as `keybrake approve ID`
// would:
//
//	go run ./examples/approvals
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

const policy = `version: 1
agents:
  payout-bot:
    stripe:
      daily_cap: 5000.00 USD
      approve_above: 200.00 USD        # refunds moving more need a person
      approve: [POST /v1/transfers]    # every transfer needs a person
      allow: [POST /v1/transfers, POST /v1/refunds]
`

func main() {
	log.SetFlags(0)
	stripego.DefaultLeveledLogger = &stripego.LeveledLogger{Level: stripego.LevelNull}
	dir, err := os.MkdirTemp("", "keybrake-approvals-")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := run(os.Stdout, dir); err != nil {
		log.Fatal(err)
	}
}

// result is what the walk-through saw, for its test.
type result struct {
	first, retried, other, after string // approval ids
	moved                        int    // transfers that reached Stripe
}

func run(w io.Writer, dir string) (*result, error) {
	fs := fakestripe.New()
	srv := httptest.NewServer(fs)
	defer srv.Close()
	policyFile := filepath.Join(dir, "keybrake.yaml")
	if err := os.WriteFile(policyFile, []byte(policy), 0o600); err != nil {
		return nil, err
	}
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: policyFile, DBPath: filepath.Join(dir, "keybrake.db"),
		Endpoints: map[keybrake.Vendor]string{keybrake.Stripe: srv.URL}})
	if err != nil {
		return nil, err
	}
	defer kb.Close()
	sc := client.New("sk_test_example", stripevendor.Backends(kb.HTTPClient("payout-bot", keybrake.Stripe)))
	transfer := func(cents int64, dest string) (*keybrake.Denial, error) {
		_, err := sc.Transfers.New(&stripego.TransferParams{Amount: stripego.Int64(cents), Currency: stripego.String("usd"),
			Destination: stripego.String(dest)})
		if err == nil {
			return nil, nil
		}
		if d, ok := keybrake.AsDenial(err); ok {
			return d, nil
		}
		return nil, err
	}
	held := func(what string, cents int64, dest string) (string, error) {
		d, err := transfer(cents, dest)
		switch {
		case err != nil:
			return "", err
		case d == nil || d.Decision != keybrake.Held:
			return "", fmt.Errorf("%s: %+v, want it held", what, d)
		}
		fmt.Fprintf(w, "%-34s %d %s, waits for %s\n", what+":", d.Status, d.Code, d.ApprovalID)
		return d.ApprovalID, nil
	}
	res := &result{}
	fmt.Fprintln(w, "payout-bot sends 250.00 USD to acct_1; every transfer needs a person.")
	if res.first, err = held("the transfer", 25000, "acct_1"); err != nil {
		return nil, err
	}
	for range 3 {
		if res.retried, err = held("the agent retries", 25000, "acct_1"); err != nil {
			return nil, err
		}
	}
	if res.other, err = held("250.01 USD instead", 25001, "acct_1"); err != nil {
		return nil, err
	}

	ctx := context.Background()
	list, err := kb.Approvals(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "\nkeybrake approvals lists %d:\n", len(list))
	for _, a := range list {
		fmt.Fprintf(w, "  %s %s: %s\n", a.ID, a.State, a.What)
	}
	fmt.Fprintf(w, "\nalice approves %s (keybrake approve %s --by alice)\n", res.first, res.first)
	if err := kb.Approve(ctx, res.first, "alice"); err != nil {
		return nil, err
	}
	d, err := transfer(25000, "acct_1")
	if err != nil {
		return nil, err
	}
	if d != nil {
		return nil, errors.New("the approved transfer was refused: " + d.Reason)
	}
	fmt.Fprintln(w, "the agent's next transfer of exactly that: sent")
	if res.after, err = held("and the same transfer once more", 25000, "acct_1"); err != nil {
		return nil, err
	}
	res.moved = len(fs.Movements())
	fmt.Fprintf(w, "\n%d transfer reached Stripe: the one alice approved, once.\n", res.moved)
	return res, nil
}
