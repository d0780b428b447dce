package keybrake_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
)

// The budgets issue's tests, through stripe-go against the fake Stripe
// (which stands in for Stripe where money must really move), with an
// injected clock.

// clock is an injected clock tests move by hand.
type clock struct{ now atomic.Pointer[time.Time] }

func newClock(t testing.TB, rfc3339 string) *clock {
	c := &clock{}
	c.set(t, rfc3339)
	return c
}

func (c *clock) set(t testing.TB, rfc3339 string) {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, rfc3339)
	if err != nil {
		t.Fatal(err)
	}
	c.now.Store(&tm)
}

func (c *clock) at(tm time.Time)     { c.now.Store(&tm) }
func (c *clock) add(d time.Duration) { c.at(c.Now().Add(d)) }
func (c *clock) Now() time.Time      { return *c.now.Load() }

// refunds makes a fake Stripe with n charges of 1,000.00 USD, ch_0 to
// ch_<n-1>.
func refunds(t testing.TB, n int) string {
	t.Helper()
	fs, url := fakestripe.Start(t)
	for i := range n {
		fs.AddCharge(fakestripe.Charge{ID: fmt.Sprintf("ch_%d", i), Amount: 100000, Currency: "usd", Captured: true})
	}
	return url
}

// refundOnce makes one refund of cents on ch_0 and returns the denial,
// nil when it was allowed.
func refundOnce(t testing.TB, bot *client.API, cents int64) *keybrake.Denial {
	t.Helper()
	_, err := bot.Refunds.New(refund("ch_0", cents))
	return denialOf(t, err)
}

// denialOf is err's denial, nil for no error; any other error fails t.
func denialOf(t testing.TB, err error) *keybrake.Denial {
	t.Helper()
	if err == nil {
		return nil
	}
	d, ok := keybrake.AsDenial(err)
	if !ok {
		t.Fatalf("refund: %v, not a denial", err)
	}
	return d
}

const ratePolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 5000.00 USD
      rate:
        - {count: 20, per: 1m}
      allow: [POST /v1/refunds]
`

// TestRateWindowExact: 20 calls in a minute pass and the 21st is refused;
// it is admitted again at 60 s after the first, not a moment before; and
// 20 calls late in one minute and 20 early in the next, which a
// fixed-bucket counter would admit, are refused where a sliding window
// must refuse them.
func TestRateWindowExact(t *testing.T) {
	url := refunds(t, 1)
	clk := newClock(t, "2026-12-03T10:00:00Z")
	kb := openBrake(t, ratePolicy, keybrake.Options{Endpoints: fakeEndpoint(url), Clock: clk.Now})
	bot := sdkNoRetry(kb, "refund-bot")
	start := clk.Now()
	for i := range 20 {
		clk.at(start.Add(time.Duration(i) * time.Second))
		if d := refundOnce(t, bot, 100); d != nil {
			t.Fatalf("call %d: %v", i+1, d)
		}
	}
	d := refundOnce(t, bot, 100)
	if d == nil || d.Code != "keybrake_rate_count" || d.Status != 402 || d.Decision != keybrake.Capped ||
		d.Rule != "agents.refund-bot.stripe.rate[0]" {
		t.Fatalf("21st call: %+v, want capped 402 keybrake_rate_count", d)
	}
	if want := "the window admits it at 2026-12-03T10:01:00Z (in 41s)"; !strings.Contains(d.Reason, want) {
		t.Fatalf("reason %q, want it to say %q", d.Reason, want)
	}
	clk.at(start.Add(time.Minute - time.Millisecond))
	if d := refundOnce(t, bot, 100); d == nil || d.Code != "keybrake_rate_count" {
		t.Fatalf("a millisecond before the first call leaves the window: %+v, want refused", d)
	}
	clk.at(start.Add(time.Minute))
	if d := refundOnce(t, bot, 100); d != nil {
		t.Fatalf("at 60 s after the first call: %v, want admitted", d)
	}

	// Fixed buckets would admit these: 20 in 10:02:50-10:02:59, 20 in
	// 10:03:00-10:03:09. In any minute, only 20 may pass.
	clk.set(t, "2026-12-03T10:02:50Z")
	for i := range 20 {
		clk.add(time.Duration(min(i, 1)) * 450 * time.Millisecond)
		if d := refundOnce(t, bot, 100); d != nil {
			t.Fatalf("late call %d: %v", i, d)
		}
	}
	clk.set(t, "2026-12-03T10:03:00Z")
	refused := 0
	for range 20 {
		clk.add(450 * time.Millisecond)
		if d := refundOnce(t, bot, 100); d != nil {
			if d.Code != "keybrake_rate_count" {
				t.Fatalf("early call: %v", d)
			}
			refused++
		}
	}
	if refused != 20 {
		t.Fatalf("%d of the next minute's first 20 calls refused, want all 20: each is within a minute of the 20 before", refused)
	}
}

// TestRateWindowConcurrent: 200 goroutines against 20 calls a minute
// admit exactly 20; a money window admits to the minor unit; and both
// hold across Close and Open.
func TestRateWindowConcurrent(t *testing.T) {
	url := refunds(t, 1)
	clk := newClock(t, "2026-12-03T10:00:00Z")
	policyFile := writePolicy(t, `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 5000.00 USD
      rate:
        - {count: 20, per: 1m}
        - {spend: 50.00 USD, per: 10m}
      allow: [POST /v1/refunds]
`)
	dbPath := filepath.Join(t.TempDir(), "keybrake.db")
	open := func() (*keybrake.Brake, *client.API) {
		kb, err := keybrake.Open(keybrake.Options{PolicyFile: policyFile, DBPath: dbPath, Endpoints: fakeEndpoint(url), Clock: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return kb, sdkNoRetry(kb, "refund-bot")
	}
	race := func(bot *client.API, cents int64) (admitted int, codes map[string]int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes = map[string]int{}
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := bot.Refunds.New(refund("ch_0", cents))
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					admitted++
					return
				}
				d, ok := keybrake.AsDenial(err)
				if !ok {
					codes[err.Error()]++
					return
				}
				codes[d.Code]++
			}()
		}
		wg.Wait()
		return admitted, codes
	}
	kb, bot := open()
	if n, codes := race(bot, 100); n != 20 || codes["keybrake_rate_count"] != 180 {
		t.Fatalf("count window: %d admitted, refusals %v; want 20 and 180 keybrake_rate_count", n, codes)
	}
	// 2.50 USD each: exactly 20 fit in 50.00 USD, counted with the 20
	// calls above (1.00 USD each, 20.00 USD): 12 more. The count window
	// must not be what refuses them: a minute on, it is empty.
	clk.add(time.Minute)
	if n, codes := race(bot, 250); n != 12 || codes["keybrake_rate_spend"] != 188 {
		t.Fatalf("money window: %d admitted, refusals %v; want 12 and 188 keybrake_rate_spend", n, codes)
	}
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
	kb, bot = open()
	defer kb.Close()
	clk.add(time.Minute)
	if d := refundOnce(t, bot, 1); d == nil || d.Code != "keybrake_rate_spend" {
		t.Fatalf("after a restart, a cent over the money window: %+v, want keybrake_rate_spend", d)
	}
	if d := refundOnce(t, bot, 1); d == nil || !strings.Contains(d.Reason, "rate of 50.00 USD per 10m reached: 50.00 USD in the last 10m") {
		t.Fatalf("reason %+v does not say the window is full", d)
	}
}

// TestCalendarInBerlin: a daily cap in Europe/Berlin rolls at local
// midnight; weekly and monthly caps hold across days, including the day
// the clocks go back.
func TestCalendarInBerlin(t *testing.T) {
	url := refunds(t, 1)
	clk := newClock(t, "2026-10-22T21:30:00Z") // Thursday 23:30 CEST
	kb := openBrake(t, `version: 1
timezone: Europe/Berlin
agents:
  refund-bot:
    stripe:
      daily_cap: 10.00 USD
      weekly_cap: 25.00 USD
      monthly_cap: 35.00 USD
      allow: [POST /v1/refunds]
`, keybrake.Options{Endpoints: fakeEndpoint(url), Clock: clk.Now})
	bot := sdkNoRetry(kb, "refund-bot")
	want := func(cents int64, code string) {
		t.Helper()
		d := refundOnce(t, bot, cents)
		switch {
		case code == "" && d != nil:
			t.Fatalf("%s: %v, want admitted", clk.Now(), d)
		case code != "" && (d == nil || d.Code != code):
			t.Fatalf("%s: %+v, want %s", clk.Now(), d, code)
		}
	}
	want(1000, "")
	want(1, "keybrake_daily_cap")
	clk.set(t, "2026-10-22T22:00:00Z") // Friday 00:00 CEST: a new day in Berlin, still Thursday in UTC
	want(1000, "")
	clk.set(t, "2026-10-25T10:00:00Z") // Sunday, 25 hours long
	want(500, "")
	d := refundOnce(t, bot, 1)
	if d == nil || d.Code != "keybrake_weekly_cap" || !strings.Contains(d.Reason, "the week 2026-10-19 to 2026-10-25") ||
		!strings.Contains(d.Reason, "starts again at 2026-10-26T00:00:00+01:00") {
		t.Fatalf("over the week: %+v", d)
	}
	clk.set(t, "2026-10-25T22:59:59Z") // Sunday 23:59:59 CET
	want(1, "keybrake_weekly_cap")
	clk.set(t, "2026-10-25T23:00:00Z") // Monday 00:00 CET: a new week
	want(1000, "")
	clk.set(t, "2026-10-26T23:00:00Z") // Tuesday: room in the day and the week, none in the month
	d = refundOnce(t, bot, 1)
	if d == nil || d.Code != "keybrake_monthly_cap" || !strings.Contains(d.Reason, "used in 2026-10") {
		t.Fatalf("over the month: %+v", d)
	}
	clk.set(t, "2026-10-31T23:00:00Z") // 1 November 00:00 CET
	want(1000, "")
}

// TestRuns: run A stops at its cap while run B and the agent's daily cap
// carry on; a call with no run id is refused; run and principal are in
// every record, and Query selects by them.
func TestRuns(t *testing.T) {
	url := refunds(t, 1)
	kb := openBrake(t, `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 30.00 USD
      per_run:
        cap: 10.00 USD
        count: 5
      allow: [POST /v1/refunds]
`, keybrake.Options{Endpoints: fakeEndpoint(url)})
	bot := sdkNoRetry(kb, "refund-bot")
	in := func(run, principal string) *stripego.RefundParams {
		p := refund("ch_0", 400)
		ctx := keybrake.WithRun(context.Background(), run)
		if principal != "" {
			ctx = keybrake.WithPrincipal(ctx, principal)
		}
		p.Context = ctx
		return p
	}
	try := func(p *stripego.RefundParams) *keybrake.Denial {
		_, err := bot.Refunds.New(p)
		return denialOf(t, err)
	}
	for i := range 2 {
		if d := try(in("ticket-A", "alice@example.com")); d != nil {
			t.Fatalf("run A, call %d: %v", i, d)
		}
	}
	if d := try(in("ticket-A", "alice@example.com")); d == nil || d.Code != "keybrake_run_cap" || !strings.Contains(d.Reason, "for run ticket-A") {
		t.Fatalf("run A over its cap: %+v", d)
	}
	for i := range 2 {
		if d := try(in("ticket-B", "")); d != nil {
			t.Fatalf("run B, call %d: %v", i, d)
		}
	}
	if d := try(refund("ch_0", 400)); d == nil || d.Code != "keybrake_no_run" || d.Status != 403 {
		t.Fatalf("no run: %+v, want 403 keybrake_no_run", d)
	}
	if d := try(in("bad run", "")); d == nil || d.Code != "keybrake_bad_run" {
		t.Fatalf("a run id with a space: %+v, want keybrake_bad_run", d)
	}
	// Runs C and D carry on to the agent's daily cap (30.00; 16.00 used
	// so far), which then stops run E.
	for _, run := range []string{"ticket-C", "ticket-C", "ticket-D"} {
		if d := try(in(run, "")); d != nil {
			t.Fatalf("%s: %v", run, d)
		}
	}
	if d := try(in("ticket-E", "")); d == nil || d.Code != "keybrake_daily_cap" {
		t.Fatalf("run E over the daily cap: %+v", d)
	}

	a := dump(t, kb, audit.Query{Run: "ticket-A"})
	if len(a) != 3 || a[0].Principal != "alice@example.com" || a[2].Code != "keybrake_run_cap" {
		t.Fatalf("run A's records: %+v", a)
	}
	if got := dump(t, kb, audit.Query{Principal: "alice@example.com"}); len(got) != 3 {
		t.Fatalf("alice's records: %d, want 3", len(got))
	}
	for _, r := range dump(t, kb, audit.Query{Run: "ticket-B"}) {
		if r.Run != "ticket-B" || r.Principal != "" {
			t.Fatalf("run B's record: %+v", r)
		}
	}
}
