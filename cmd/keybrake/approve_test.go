package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	brake "github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store/postgres"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

const approvePolicy = `version: 1
agents:
  payout-bot:
    stripe:
      daily_cap: 5000.00 USD
      approve: [POST /v1/transfers]
      allow: [POST /v1/transfers]
`

// payoutBot is a Brake and stripe-go for payout-bot against a fake Stripe.
type payoutBot struct {
	kb   *brake.Brake
	sc   *client.API
	fake *fakestripe.Server
}

func openPayoutBot(t *testing.T, opts brake.Options, fake *fakestripe.Server, url string) *payoutBot {
	t.Helper()
	opts.Endpoints = map[brake.Vendor]string{brake.Stripe: url}
	kb, err := brake.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kb.Close() })
	return &payoutBot{kb: kb, sc: client.New("sk_test_payout", stripevendor.Backends(kb.HTTPClient("payout-bot", brake.Stripe))), fake: fake}
}

// transfer sends 250.00 USD to acct_1: the denial, nil when it went through.
func (p *payoutBot) transfer(t *testing.T) *brake.Denial {
	t.Helper()
	_, err := p.sc.Transfers.New(&stripego.TransferParams{Amount: stripego.Int64(25000), Currency: stripego.String("usd"),
		Destination: stripego.String("acct_1")})
	if err == nil {
		return nil
	}
	d, ok := brake.AsDenial(err)
	if !ok {
		t.Fatalf("transfer: %v", err)
	}
	return d
}

var approvalID = regexp.MustCompile(`apr_[0-9a-f]{16}`)

// checkApprovals runs `keybrake approvals` and `keybrake approve` on db
// for the held call d, then says what approve printed.
func checkApprovals(t *testing.T, db string, d *brake.Denial) {
	t.Helper()
	if d == nil || d.Decision != brake.Held || !approvalID.MatchString(d.ApprovalID) {
		t.Fatalf("transfer: %+v; want held with an approval id", d)
	}
	out, errs, code := keybrake(t, nil, "approvals", "--db", db)
	if code != 0 || !strings.Contains(out, d.ApprovalID) || !strings.Contains(out, "pending") ||
		!strings.Contains(out, "payout-bot on stripe: POST /v1/transfers amount=25000 currency=usd destination=acct_1 (250.00 USD)") {
		t.Fatalf("approvals: %d %q %q", code, out, errs)
	}
	out, errs, code = keybrake(t, nil, "approve", d.ApprovalID, "--by", "alice", "--ttl", "15m", "--db", db)
	if code != 0 || !strings.Contains(out, d.ApprovalID+" approved, once") || !strings.Contains(out, "destination=acct_1 (250.00 USD)") {
		t.Fatalf("approve: %d %q %q", code, out, errs)
	}
	_, errs, code = keybrake(t, nil, "deny", d.ApprovalID, "--db", db)
	if code != 1 || !strings.Contains(errs, "already decided") {
		t.Fatalf("deny after approve: %d %q", code, errs)
	}
	_, errs, code = keybrake(t, nil, "approve", "apr_nope", "--db", db)
	if code == 0 || !strings.Contains(errs, "not an approval id") {
		t.Fatalf("approve of a bad id: %d %q", code, errs)
	}
}

// With the agent running, approve goes through its admin socket (bbolt's
// lock keeps the command out of the file); with none, through the file.
func TestApproveCommandOnAFile(t *testing.T) {
	fake, url := fakestripe.Start(t)
	db := filepath.Join(t.TempDir(), "keybrake.db")
	opts := brake.Options{PolicyFile: writePolicy(t, approvePolicy), DBPath: db}
	p := openPayoutBot(t, opts, fake, url)
	checkApprovals(t, db, p.transfer(t)) // the live Brake, on keybrake.db.sock
	if d := p.transfer(t); d != nil {
		t.Fatalf("the approved transfer: %+v", d)
	}
	second := p.transfer(t)
	if second == nil || second.Decision != brake.Held {
		t.Fatalf("the same transfer again: %+v; want held for a new approval", second)
	}
	p.kb.Close()
	checkApprovals(t, db, second) // the file, no agent running
	p = openPayoutBot(t, opts, fake, url)
	if d := p.transfer(t); d != nil {
		t.Fatalf("the transfer approved offline: %+v", d)
	}
	if n := len(fake.Movements()); n != 2 {
		t.Fatalf("%d transfers moved; want the two approved", n)
	}
	out, _, _ := keybrake(t, nil, "audit", "--db", db)
	if strings.Count(out, "approve") < 2 || !strings.Contains(out, "alice") {
		t.Errorf("the audit log does not show both approvals:\n%s", out)
	}
}

// With a shared store, an approval given by the command is seen by the
// process holding the call.
func TestApproveCommandOnAFleet(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	fake, url := fakestripe.Start(t)
	st, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := openPayoutBot(t, brake.Options{PolicyFile: writePolicy(t, approvePolicy), Store: st}, fake, url)
	checkApprovals(t, dsn, p.transfer(t))
	if d := p.transfer(t); d != nil {
		t.Fatalf("the transfer approved on the fleet: %+v", d)
	}
	if n := len(fake.Movements()); n != 1 {
		t.Fatalf("%d transfers moved; want 1", n)
	}
}
