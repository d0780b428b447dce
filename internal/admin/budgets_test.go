package admin_test

import (
	"context"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// TestStatusBudgets: status lists the week's and month's limits, what each
// rolling window holds now and when its oldest call leaves, and the
// agents their rate limits tripped.
func TestStatusBudgets(t *testing.T) {
	f := newFixture(t)
	pol, err := policy.Parse("/etc/keybrake.yaml", []byte(`version: 1
timezone: Europe/Berlin
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      weekly_cap: 2000.00 USD
      monthly_count: 300
      rate:
        - {count: 20, per: 1m, halt: true}
      allow: [POST /v1/refunds]
`))
	if err != nil {
		t.Fatal(err)
	}
	day := "2026-12-03" // a Thursday
	now := time.Now()
	ctx := context.Background()
	for i, ago := range []time.Duration{50 * time.Second, 10 * time.Second, 90 * time.Second} {
		r := f.call(0, usd("1.00"))
		r.Time = now.Add(-ago)
		holds := []audit.Hold{
			{Key: "agent/refund-bot/stripe/week/2026-12-06/USD", Unit: "USD", Limit: usd("2000.00").Micros, Amount: usd("1.00").Micros},
			{Key: "agent/refund-bot/stripe/rate/1m0s/calls", Unit: "calls", Limit: 20, Amount: 1, Window: time.Minute},
		}
		if a, err := f.s.Reserve(ctx, &store.Reservation{Record: r, Holds: holds}); err != nil || a.Result != store.Admitted {
			t.Fatalf("reserve %d: %+v, %v", i, a, err)
		}
	}
	tripped := pol.WithStops(policy.Stops{Tripped: map[string]policy.Trip{"refund-bot": {Rule: "agents.refund-bot.stripe.rate[0]", By: "the kill switch /etc/keybrake.yaml.halt"}}})
	s, err := admin.ComputeStatus(ctx, f.s, tripped, nil, day, policy.Stops{})
	if err != nil {
		t.Fatal(err)
	}
	byRule := map[string]admin.LimitStatus{}
	for _, l := range s.Limits {
		byRule[l.Rule] = l
	}
	week := byRule["agents.refund-bot.stripe.weekly_cap"]
	if week.Key != "agent/refund-bot/stripe/week/2026-12-06/USD" || week.Pending != usd("3.00").Micros ||
		!week.Frees.Equal(time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("weekly cap: %+v, want 3.00 USD pending, freeing Monday 00:00 in Berlin", week)
	}
	if month := byRule["agents.refund-bot.stripe.monthly_count"]; month.Key != "agent/refund-bot/stripe/month/2026-12-31/units" || month.Max != 300 {
		t.Errorf("monthly count: %+v", month)
	}
	rate := byRule["agents.refund-bot.stripe.rate[0]"]
	// The call 90 s ago has left the window; the one 50 s ago leaves
	// next, 10 s from now.
	if rate.Window != time.Minute || rate.Pending != 2 || rate.Max != 20 || rate.Frees.Sub(now) != 10*time.Second {
		t.Errorf("rate window: %+v, want 2 of 20 calls, the first leaving in 10s", rate)
	}
	if got := s.Tripped["refund-bot"]; got.Rule != "agents.refund-bot.stripe.rate[0]" {
		t.Errorf("tripped: %+v", s.Tripped)
	}
}
