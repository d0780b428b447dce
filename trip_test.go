package keybrake_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/notify"
	"github.com/keybrake/keybrake/store/postgres"
)

// Trips and early warnings (the budgets issue): what a rate limit with
// halt: true does to its agent, here and across a fleet, and alert_at.

const tripPolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 5000.00 USD
      rate:
        - {count: 20, per: 1m, halt: true}
      allow: [POST /v1/refunds]
  other-bot:
    stripe:
      daily_cap: 5000.00 USD
      allow: [POST /v1/refunds]
`

// TestRateTrip: the 21st call trips the agent; calls after the window
// frees are still 401 until a person resumes it, across a restart; the
// trip is audited and pages once; other agents carry on.
func TestRateTrip(t *testing.T) {
	url := refunds(t, 1)
	clk := newClock(t, "2026-12-03T10:00:00Z")
	policyFile := writePolicy(t, tripPolicy)
	dbPath := filepath.Join(t.TempDir(), "keybrake.db")
	var mu sync.Mutex
	var pages []notify.Alert
	notifier := notify.NotifierFunc(func(_ context.Context, a notify.Alert) error {
		mu.Lock()
		defer mu.Unlock()
		if a.Kind == "trip" {
			pages = append(pages, a)
		}
		return nil
	})
	open := func() *keybrake.Brake {
		kb, err := keybrake.Open(keybrake.Options{PolicyFile: policyFile, DBPath: dbPath, Endpoints: fakeEndpoint(url),
			Clock: clk.Now, Notifier: notifier})
		if err != nil {
			t.Fatal(err)
		}
		return kb
	}
	kb := open()
	bot := sdkNoRetry(kb, "refund-bot")
	for i := range 20 {
		if d := refundOnce(t, bot, 100); d != nil {
			t.Fatalf("call %d: %v", i+1, d)
		}
		clk.add(100 * time.Millisecond)
	}
	if d := refundOnce(t, bot, 100); d == nil || d.Code != "keybrake_rate_count" {
		t.Fatalf("21st call: %+v, want keybrake_rate_count", d)
	}
	tripped := func(when string) {
		t.Helper()
		d := refundOnce(t, bot, 100)
		if d == nil || d.Code != "keybrake_tripped" || d.Status != 401 || d.Decision != keybrake.Revoked ||
			d.Rule != "agents.refund-bot.stripe.rate[0]" || !strings.Contains(d.Reason, "keybrake resume refund-bot") {
			t.Fatalf("%s: %+v, want 401 keybrake_tripped naming the rule", when, d)
		}
	}
	tripped("the 22nd call")
	clk.add(2 * time.Minute)
	tripped("after the window freed")
	if d := refundOnce(t, sdkNoRetry(kb, "other-bot"), 100); d != nil {
		t.Fatalf("another agent: %v", d)
	}
	halt, err := os.ReadFile(policyFile + ".halt")
	if err != nil || !strings.Contains(string(halt), "refund-bot # tripped by agents.refund-bot.stripe.rate[0] at 2026-12-03T10:00:02Z") {
		t.Fatalf("kill switch %q, %v: want the trip kept there", halt, err)
	}
	settled := 0
	for _, r := range dump(t, kb, audit.Query{Agent: "refund-bot", Decision: keybrake.Allowed}) {
		if r.Outcome != audit.Settled || len(r.Holds) != 2 || r.Holds[1].Unit != "calls" || r.Holds[1].Settled != 1 {
			t.Fatalf("an admitted refund's record: %+v, want settled, its call counted", r)
		}
		settled++
	}
	if settled != 20 {
		t.Fatalf("%d admitted refunds settled, want 20", settled)
	}
	var trips []audit.Record
	for _, r := range dump(t, kb, audit.Query{}) {
		if r.Event == "trip" {
			trips = append(trips, r)
		}
	}
	if len(trips) != 1 || trips[0].Params["agent"] != "refund-bot" || trips[0].Params["rule"] != "agents.refund-bot.stripe.rate[0]" {
		t.Fatalf("trip events %+v, want one naming refund-bot and its rule", trips)
	}
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(pages) != 1 || pages[0].Agent != "refund-bot" {
		t.Fatalf("pages %+v, want one for refund-bot", pages)
	}
	mu.Unlock()

	kb = open()
	defer kb.Close()
	bot = sdkNoRetry(kb, "refund-bot")
	tripped("after a restart")
	kb.Resume()
	if d := refundOnce(t, bot, 100); d != nil {
		t.Fatalf("after Resume: %v", d)
	}
	if _, err := os.Stat(policyFile + ".halt"); !os.IsNotExist(err) {
		t.Fatalf("the kill switch of a trip alone outlived Resume: %v", err)
	}
}

// TestAlertAt: a cap's alert levels are raised once each, when a
// reservation reaches them, through the notifier and the audit log; a
// restart does not raise them again.
func TestAlertAt(t *testing.T) {
	url := refunds(t, 1)
	policyFile := writePolicy(t, `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 10.00 USD
      alert_at: [50%, 80%]
      allow: [POST /v1/refunds]
`)
	dbPath := filepath.Join(t.TempDir(), "keybrake.db")
	var mu sync.Mutex
	var alerts []notify.Alert
	open := func() *keybrake.Brake {
		kb, err := keybrake.Open(keybrake.Options{PolicyFile: policyFile, DBPath: dbPath, Endpoints: fakeEndpoint(url),
			Notifier: notify.NotifierFunc(func(_ context.Context, a notify.Alert) error {
				mu.Lock()
				defer mu.Unlock()
				if a.Kind == "alert" && a.Count > 0 {
					alerts = append(alerts, a)
				}
				return nil
			}),
			NotifyOptions: notify.Options{Window: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		return kb
	}
	kb := open()
	bot := sdkNoRetry(kb, "refund-bot")
	// The levels are looked at behind the calls: wait for each raise
	// before the next call, so that each says what reached it.
	raised := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			got := 0
			for _, r := range dump(t, kb, audit.Query{}) {
				if r.Event == "alert" {
					got++
				}
			}
			if got == n {
				return
			}
			if got > n || time.Now().After(deadline) {
				t.Fatalf("%d alert events, want %d", got, n)
			}
		}
	}
	for i, cents := range []int64{300, 300, 300} { // 30%, 60%, 90%
		if d := refundOnce(t, bot, cents); d != nil {
			t.Fatalf("refund %d: %v", i, d)
		}
		raised([]int{0, 1, 2}[i])
	}
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
	kb = open()
	if d := refundOnce(t, sdkNoRetry(kb, "refund-bot"), 50); d != nil { // 95%: past both, raised already
		t.Fatalf("refund after the restart: %v", d)
	}
	var events []string
	for _, r := range dump(t, kb, audit.Query{}) {
		if r.Event == "alert" {
			events = append(events, r.Params["level"]+" "+r.Reason)
		}
	}
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"50% refund-bot on stripe reached 50% of its daily_cap of 10.00 USD (period ending " + time.Now().UTC().Format(time.DateOnly) + "): 6.00 USD counted",
		"80% refund-bot on stripe reached 80% of its daily_cap of 10.00 USD (period ending " + time.Now().UTC().Format(time.DateOnly) + "): 9.00 USD counted",
	}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Fatalf("alert events\n %q\nwant\n %q", events, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(alerts) != 2 || alerts[0].Agent != "refund-bot" || alerts[0].Rule != "agents.refund-bot.stripe.daily_cap" {
		t.Fatalf("alerts %+v, want the two levels", alerts)
	}
}

// TestRateTripReachesTheFleet: with a shared store, the trip is a fleet
// halt of the agent: another process refuses the agent's next calls as
// tripped, naming the rule, and a Resume anywhere lifts it everywhere.
func TestRateTripReachesTheFleet(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	url := refunds(t, 1)
	clk := newClock(t, "2026-12-03T10:00:00Z")
	open := func() (*keybrake.Brake, *client.API) {
		st, err := postgres.Open(context.Background(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		kb := openBrake(t, tripPolicy, keybrake.Options{Store: st, Endpoints: fakeEndpoint(url), Clock: clk.Now, PolicyPoll: -1})
		return kb, sdkNoRetry(kb, "refund-bot")
	}
	a, botA := open()
	b, botB := open()
	for i := range 20 {
		bot := []*client.API{botA, botB}[i%2]
		if d := refundOnce(t, bot, 100); d != nil {
			t.Fatalf("call %d: %v", i+1, d)
		}
	}
	if d := refundOnce(t, botA, 100); d == nil || d.Code != "keybrake_rate_count" {
		t.Fatalf("21st call: %+v", d)
	}
	clk.add(2 * time.Minute) // the window is empty again: only the trip refuses
	deadline := time.Now().Add(liveness)
	for {
		d := refundOnce(t, botB, 100)
		if d != nil && d.Code == "keybrake_tripped" {
			if !strings.Contains(d.Reason, "agents.refund-bot.stripe.rate[0]") || !strings.Contains(d.Reason, "the fleet's store") {
				t.Fatalf("the other process's refusal: %q", d.Reason)
			}
			break
		}
		if d == nil || time.Now().After(deadline) {
			t.Fatalf("the other process: %+v, want keybrake_tripped", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Resume()
	for deadline := time.Now().Add(liveness); ; time.Sleep(5 * time.Millisecond) {
		d := refundOnce(t, botA, 100)
		if d == nil {
			break
		}
		if d.Code != "keybrake_tripped" || time.Now().After(deadline) {
			t.Fatalf("the tripping process after a Resume elsewhere: %+v", d)
		}
	}
	if pol, _ := a.Policy(); pol.Agents["refund-bot"].Tripped != nil {
		t.Fatalf("still tripped: %+v", pol.Agents["refund-bot"].Tripped)
	}
}
