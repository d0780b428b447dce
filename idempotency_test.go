package keybrake_test

import (
	"testing"
	"time"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/store"
)

// TestForgottenIdempotencyKeyIsCounted: Stripe forgets an idempotency
// key after 24 hours and then executes a request carrying it again, so a
// retry that late is a new call to Keybrake: its limits checked and its
// money counted, not a replay that counts nothing. (The fake remembers
// keys for ever and replays it: Keybrake counts money that did not move,
// the safe way to be wrong.)
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
	send()
	clk.add(store.ReplayWindow - time.Minute)
	send() // a replay: nothing new counted
	clk.add(time.Minute)
	send() // forgotten: counted
	recs := dump(t, kb, audit.Query{Agent: "refund-bot"})
	if got := outcomes(recs); got[audit.Settled] != 2 || got[audit.Replayed] != 1 || len(recs) != 3 {
		t.Fatalf("outcomes %v in %d records, want 2 settled and 1 replayed", got, len(recs))
	}
	last := recs[len(recs)-1]
	if last.Outcome != audit.Settled || last.Reserved.String() != "25.00 USD" || last.RetryOf != 0 {
		t.Fatalf("the call after the window: %+v, want settled, 25.00 USD reserved, no RetryOf", last)
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
