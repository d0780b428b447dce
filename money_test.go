package keybrake_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
)

// The tests in this file run stripe-go against fakes/fakestripe, a fake
// Stripe that keeps state, because stripe-mock answers fixed amounts and
// cannot show what moved, nor fail after moving money.

const capPolicy = `version: 1
fx:
  JPY: 0.0068 USD
vendors:
  stripe:
    daily_cap: 150.00 USD
agents:
  refund-bot:
    stripe:
      daily_cap: 100.00 USD
      per_call_max: 30.00 USD
      allow:
        - POST /v1/refunds
  other-bot:
    stripe:
      daily_cap: 100.00 USD
      allow:
        - POST /v1/refunds
`

func refund(charge string, amount int64) *stripego.RefundParams {
	p := &stripego.RefundParams{Charge: stripego.String(charge)}
	if amount > 0 {
		p.Amount = stripego.Int64(amount)
	}
	return p
}

// sdkNoRetry is stripe-go with retries off, for tests of what one attempt
// leaves behind.
func sdkNoRetry(kb *keybrake.Brake, agent string) *client.API {
	hc := &http.Client{Transport: kb.Transport(agent, keybrake.Stripe, nil)}
	b := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{
		HTTPClient: hc, MaxNetworkRetries: stripego.Int64(0),
	})
	return client.New(testenv.StripeMockKey, &stripego.Backends{API: b, Connect: b, Uploads: b})
}

func fakeEndpoint(url string) map[keybrake.Vendor]string {
	return map[keybrake.Vendor]string{keybrake.Stripe: url}
}

func outcomes(recs []audit.Record) map[audit.Outcome]int {
	m := map[audit.Outcome]int{}
	for _, r := range recs {
		m[r.Outcome]++
	}
	return m
}

// TestConcurrentRefundsNeverOvershoot races 200 refunds against one cap:
// exactly as many pass as fit, not one minor unit more moves, and the
// totals survive a restart.
func TestConcurrentRefundsNeverOvershoot(t *testing.T) {
	fs, url := fakestripe.Start(t)
	for i := 0; i < 200; i++ {
		fs.AddCharge(fakestripe.Charge{ID: fmt.Sprintf("ch_race%d", i), Amount: 5000, Currency: "usd", Captured: true})
	}
	dbPath := filepath.Join(t.TempDir(), "keybrake.db")
	policyFile := writePolicy(t, capPolicy)
	kb := openBrake(t, "", keybrake.Options{PolicyFile: policyFile, DBPath: dbPath, Endpoints: fakeEndpoint(url)})
	bot := newSDK(t, kb, "refund-bot")

	var allowed, capped atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := bot.Refunds.New(refund(fmt.Sprintf("ch_race%d", i), 700))
			if err == nil {
				allowed.Add(1)
				return
			}
			if d, ok := keybrake.AsDenial(err); ok && d.Decision == keybrake.Capped {
				capped.Add(1)
				return
			}
			t.Errorf("refund %d: %v", i, err)
		}(i)
	}
	wg.Wait()
	// 100.00 USD / 7.00 USD = 14 refunds, 98.00 USD.
	if allowed.Load() != 14 || capped.Load() != 186 {
		t.Fatalf("allowed %d, capped %d; want 14 and 186", allowed.Load(), capped.Load())
	}
	if moved := fs.Moved()["usd"]; moved != 9800 {
		t.Fatalf("fake Stripe moved %d cents, want 9800", moved)
	}
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart on the same day sees the same totals: 2.00 USD fits
	// exactly, one cent more does not.
	kb = openBrake(t, "", keybrake.Options{PolicyFile: policyFile, DBPath: dbPath, Endpoints: fakeEndpoint(url)})
	bot = newSDK(t, kb, "refund-bot")
	if _, err := bot.Refunds.New(refund("ch_race0", 201)); err == nil {
		t.Fatal("a refund over the cap passed after a restart")
	}
	if _, err := bot.Refunds.New(refund("ch_race0", 200)); err != nil {
		t.Fatalf("a refund reaching the cap exactly: %v", err)
	}
	_, err := bot.Refunds.New(refund("ch_race1", 1))
	stripeErr(t, err, 402)
	if moved := fs.Moved()["usd"]; moved != 10000 {
		t.Fatalf("fake Stripe moved %d cents, want 10000", moved)
	}
}

// TestRefundWithoutAmount reserves what remains refundable, found by a
// lookup, and settles at what the refund moved.
func TestRefundWithoutAmount(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_rest", Amount: 3000, Currency: "usd", Captured: true, AmountRefunded: 1000})
	fs.AddCharge(fakestripe.Charge{ID: "ch_big", Amount: 9000, Currency: "usd", Captured: true})
	kb := openBrake(t, capPolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})
	bot := newSDK(t, kb, "refund-bot")

	r, err := bot.Refunds.New(refund("ch_rest", 0))
	if err != nil {
		t.Fatal(err)
	}
	if r.Amount != 2000 {
		t.Fatalf("refunded %d", r.Amount)
	}
	// All that remains of ch_big is 90.00 USD, over the 30.00 maximum.
	_, err = bot.Refunds.New(refund("ch_big", 0))
	stripeErr(t, err, 402)
	if fs.Refunded("ch_big") != 0 {
		t.Fatal("the refund over the per-call maximum moved money")
	}
	recs := dump(t, kb, audit.Query{Decision: keybrake.Allowed})
	if len(recs) != 1 {
		t.Fatalf("%d allowed records", len(recs))
	}
	rec := recs[0]
	if rec.Outcome != audit.Settled || rec.Reserved.Micros != 20_000_000 || rec.Settled.Micros != 20_000_000 ||
		rec.Lookup != "GET /v1/charges/ch_rest" || rec.RequestID == "" || rec.Status != 200 {
		t.Fatalf("record: %+v", rec)
	}
}

// TestRefundCountsInTheChargeCurrency: a refund carries no currency; 1000
// on a yen charge is 1000 yen, counted against the USD cap at the policy's
// rate, and refused where the policy gives no rate.
func TestRefundCountsInTheChargeCurrency(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_yen", Amount: 100000, Currency: "jpy", Captured: true})
	fs.AddCharge(fakestripe.Charge{ID: "ch_eur", Amount: 1000, Currency: "eur", Captured: true})
	kb := openBrake(t, capPolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})
	bot := newSDK(t, kb, "refund-bot")

	if _, err := bot.Refunds.New(refund("ch_yen", 1000)); err != nil {
		t.Fatal(err)
	}
	recs := dump(t, kb, audit.Query{Decision: keybrake.Allowed})
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.Amount.Currency != "JPY" || r.Amount.Micros != 1000_000_000 {
		t.Fatalf("amount %v, want 1000 JPY", r.Amount)
	}
	// 1000 JPY at 0.0068 USD is 6.80 USD.
	if len(r.Holds) != 2 || r.Holds[0].Unit != "USD" || r.Holds[0].Amount != 6_800_000 || r.Holds[0].Settled != 6_800_000 {
		t.Fatalf("holds %+v", r.Holds)
	}
	// 4500 JPY is 30.60 USD: over the 30.00 USD per-call maximum.
	_, err := bot.Refunds.New(refund("ch_yen", 4500))
	stripeErr(t, err, 402)

	_, err = bot.Refunds.New(refund("ch_eur", 100))
	stripeErr(t, err, 403)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Code != "keybrake_currency_not_capped" {
		t.Fatalf("EUR refund: %+v", d)
	}
	if fs.Refunded("ch_eur") != 0 {
		t.Fatal("the EUR refund moved money")
	}
}

// TestVendorCapIsShared: two agents on one Stripe account share the
// vendor-wide cap.
func TestVendorCapIsShared(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_shared", Amount: 90000, Currency: "usd", Captured: true})
	kb := openBrake(t, capPolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})
	a, b := newSDK(t, kb, "refund-bot"), newSDK(t, kb, "other-bot")
	for i := 0; i < 3; i++ {
		if _, err := a.Refunds.New(refund("ch_shared", 3000)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := b.Refunds.New(refund("ch_shared", 3000)); err != nil {
			t.Fatal(err)
		}
	}
	// 150.00 USD moved: other-bot is under its own cap but not the vendor's.
	_, err := b.Refunds.New(refund("ch_shared", 1))
	stripeErr(t, err, 402)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Rule != "vendors.stripe.daily_cap" {
		t.Fatalf("denial %+v", d)
	}
}

// TestUnknownOutcomesStayCounted: a 500 after the refund executed, and a
// timeout, leave the money counted; a retry with the same idempotency key
// takes the reservation over and counts it once.
func TestUnknownOutcomesStayCounted(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_u", Amount: 90000, Currency: "usd", Captured: true})
	kb := openBrake(t, capPolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})

	// 500 on a POST: stripe-go does not retry it. Outcome unknown.
	fs.On("POST", "/v1/refunds").ExecuteThenFail(1, 500)
	_, err := sdkNoRetry(kb, "refund-bot").Refunds.New(refund("ch_u", 3000))
	stripeErr(t, err, 500)

	// A timeout: the fake holds the answer; the caller gives up.
	fs.On("POST", "/v1/refunds").HangNext(1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	p := refund("ch_u", 2500)
	p.Context = ctx
	_, err = sdkNoRetry(kb, "refund-bot").Refunds.New(p)
	cancel()
	if err == nil {
		t.Fatal("the hung refund returned no error")
	}

	// 503: stripe-go retries with the same idempotency key; the fake
	// replays the saved result. Counted once.
	fs.On("POST", "/v1/refunds").ExecuteThenFail(1, 503)
	bot := newSDK(t, kb, "refund-bot")
	if _, err := bot.Refunds.New(refund("ch_u", 2000)); err != nil {
		t.Fatalf("retried refund: %v", err)
	}
	if n := bot.sdkSide.count("POST /v1/refunds"); n != 2 {
		t.Fatalf("stripe-go made %d attempts, want 2", n)
	}

	recs := dump(t, kb, audit.Query{Agent: "refund-bot"})
	got := outcomes(recs)
	if got[audit.Unknown] != 2 || got[audit.Retried] != 1 || got[audit.Settled] != 1 || len(recs) != 4 {
		t.Fatalf("outcomes %v in %d records", got, len(recs))
	}
	// Counted: 30.00 + 25.00 unknown, 20.00 settled = 75.00 USD of 100.00.
	_, err = bot.Refunds.New(refund("ch_u", 2501))
	stripeErr(t, err, 402)
	if _, err := bot.Refunds.New(refund("ch_u", 2500)); err != nil {
		t.Fatalf("the refund that fits: %v", err)
	}
}

// TestReusedIdempotencyKey: the same key with another body is refused and
// never forwarded.
func TestReusedIdempotencyKey(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_k", Amount: 9000, Currency: "usd", Captured: true})
	kb := openBrake(t, capPolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})
	bot := newSDK(t, kb, "refund-bot")
	p := refund("ch_k", 100)
	p.SetIdempotencyKey("key-1")
	if _, err := bot.Refunds.New(p); err != nil {
		t.Fatal(err)
	}
	p = refund("ch_k", 2900)
	p.SetIdempotencyKey("key-1")
	_, err := bot.Refunds.New(p)
	stripeErr(t, err, 403)
	if d, _ := keybrake.AsDenial(err); d == nil || d.Code != "keybrake_idempotency_key_reused" {
		t.Fatalf("denial %+v", d)
	}
	if n := bot.wire.count("POST /v1/refunds"); n != 1 {
		t.Fatalf("%d refunds reached Stripe, want 1", n)
	}
	// The same key and body again is a replay: Stripe answers the saved
	// refund and nothing new is counted.
	p = refund("ch_k", 100)
	p.SetIdempotencyKey("key-1")
	if _, err := bot.Refunds.New(p); err != nil {
		t.Fatal(err)
	}
	if fs.Refunded("ch_k") != 100 {
		t.Fatalf("refunded %d", fs.Refunded("ch_k"))
	}
	recs := dump(t, kb, audit.Query{Decision: keybrake.Allowed})
	if got := outcomes(recs); got[audit.Settled] != 1 || got[audit.Replayed] != 1 {
		t.Fatalf("outcomes %v", got)
	}
}

// TestConnectionRefusedReleases: nothing reached the vendor, so nothing
// stays counted; a lookup that cannot reach the vendor refuses the call.
func TestConnectionRefusedReleases(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	kb := openBrake(t, `version: 1
agents:
  charge-bot:
    stripe:
      daily_cap: 10.00 USD
      allow: [POST /v1/charges, POST /v1/refunds]
`, keybrake.Options{Endpoints: fakeEndpoint(dead)})
	bot := sdkNoRetry(kb, "charge-bot")
	charge := &stripego.ChargeParams{Amount: stripego.Int64(1000), Currency: stripego.String("usd"),
		Source: &stripego.PaymentSourceSourceParams{Token: stripego.String("tok_visa")}}
	for i := 0; i < 3; i++ {
		if _, err := bot.Charges.New(charge); err == nil {
			t.Fatal("no error from a dead endpoint")
		} else if _, ok := keybrake.AsDenial(err); ok {
			t.Fatalf("a transport error became a denial: %v", err)
		}
	}
	recs := dump(t, kb, audit.Query{})
	if got := outcomes(recs); got[audit.Released] != 3 {
		t.Fatalf("outcomes %v, want 3 released", got)
	}

	// The refund needs the charge's currency, and the lookup cannot reach
	// Stripe: refused, with a reason.
	_, err = bot.Refunds.New(refund("ch_x", 100))
	d, ok := keybrake.AsDenial(err)
	if !ok || d.Code != "keybrake_lookup_failed" || d.Status != 503 || d.Decision != keybrake.Error {
		t.Fatalf("denial %+v (%v)", d, err)
	}
}

// TestDaysRollOverAndNeverGoBack uses an injected clock: a new UTC day
// opens a new budget; a clock that jumps back does not reopen an old one,
// not even across a restart.
func TestDaysRollOverAndNeverGoBack(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_d", Amount: 900000, Currency: "usd", Captured: true})
	var now atomic.Pointer[time.Time]
	set := func(s string) {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		now.Store(&tm)
	}
	clock := func() time.Time { return *now.Load() }
	dbPath := filepath.Join(t.TempDir(), "keybrake.db")
	policyFile := writePolicy(t, capPolicy)
	open := func() (*keybrake.Brake, *client.API) {
		kb := openBrake(t, "", keybrake.Options{PolicyFile: policyFile, DBPath: dbPath, Endpoints: fakeEndpoint(url), Clock: clock})
		return kb, newSDK(t, kb, "refund-bot").API
	}
	spend := func(bot *client.API) (n int) {
		for {
			if _, err := bot.Refunds.New(refund("ch_d", 2500)); err != nil {
				if d, ok := keybrake.AsDenial(err); !ok || d.Decision != keybrake.Capped {
					t.Fatalf("refund: %v", err)
				}
				return n
			}
			n++
		}
	}

	set("2026-11-25T23:59:00Z")
	kb, bot := open()
	if n := spend(bot); n != 4 {
		t.Fatalf("day 1: %d refunds, want 4", n)
	}
	set("2026-11-26T00:00:01Z")
	if n := spend(bot); n != 4 {
		t.Fatalf("day 2: %d refunds, want 4", n)
	}
	set("2026-11-25T23:00:00Z") // the clock jumps back an hour
	if n := spend(bot); n != 0 {
		t.Fatalf("after the clock went back: %d refunds, want 0", n)
	}
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
	_, bot = open()
	if n := spend(bot); n != 0 {
		t.Fatalf("after a restart with the clock still back: %d refunds, want 0", n)
	}
	if moved := fs.Moved()["usd"]; moved != 2*10000 {
		t.Fatalf("moved %d cents over two days, want 20000", moved)
	}
}

func newServer(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
