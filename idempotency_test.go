package keybrake_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/store"
)

// TestForgottenIdempotencyKeyIsCounted: Stripe forgets an idempotency
// key after 24 hours and then executes a request carrying it again, so
// Keybrake counts any use of a key past store.ReplayWindow (23 hours from
// its first use) as a new call: limits checked, money counted, unless
// Stripe's answer says it replayed (Idempotent-Replayed: true).
func TestForgottenIdempotencyKeyIsCounted(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_k", Amount: 90000, Currency: "usd", Captured: true})
	clk := newClock(t, "2026-12-03T01:00:00Z")
	kb := openBrake(t, capPolicy, keybrake.Options{Endpoints: fakeEndpoint(url), Clock: clk.Now})
	bot := newSDK(t, kb, "refund-bot")
	send := func() {
		t.Helper()
		p := refund("ch_k", 2500)
		p.SetIdempotencyKey("key-1")
		if _, err := bot.Refunds.New(p); err != nil {
			t.Fatal(err)
		}
	}
	last := func() audit.Record {
		recs := dump(t, kb, audit.Query{Agent: "refund-bot"})
		return recs[len(recs)-1]
	}
	send()
	clk.add(store.ReplayWindow - time.Minute)
	send() // Keybrake knows it for a retry: a replay, nothing counted
	if r := last(); r.Outcome != audit.Replayed {
		t.Fatalf("the retry inside the window: %+v, want replayed", r)
	}
	clk.add(time.Minute)
	send() // past the window: reserved as new; Stripe, at 23 h, still replays it
	if r := last(); r.Outcome != audit.Settled || r.Reserved.String() != "25.00 USD" || !r.Settled.IsZero() ||
		!strings.Contains(r.Reason, "the vendor replayed") {
		t.Fatalf("the retry Stripe replayed: %+v, want 25.00 reserved, settled at nothing, saying why", r)
	}
	clk.add(2 * time.Hour)
	fs.ForgetIdempotencyKeys() // Stripe, 25 h after the key's first use
	send()
	if r := last(); r.Outcome != audit.Settled || r.Settled.String() != "25.00 USD" || r.RetryOf != 0 {
		t.Fatalf("the retry Stripe executed again: %+v, want 25.00 settled", r)
	}
	if got := fs.Refunded("ch_k"); got != 5000 {
		t.Fatalf("Stripe refunded %d, want two refunds of 2500", got)
	}
	// Counted against the day's cap: 25.00 of 100.00 on 2026-12-04, so
	// three more of 25.00 fit and a fourth does not.
	for range 3 {
		if _, err := bot.Refunds.New(refund("ch_k", 2500)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := bot.Refunds.New(refund("ch_k", 2500))
	stripeErr(t, err, 402)
}
