package admin_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/store"
)

// TestStatusSpend: the day's spend per agent, vendor and currency, hour
// by hour: settled calls count what moved, calls in flight or unknown
// what they hold; released, refused and other days' calls nothing.
func TestStatusSpend(t *testing.T) {
	f := newFixture(t)
	day, _ := time.Parse("2006-01-02", f.day)
	ctx := context.Background()
	write := func(agent string, at time.Duration, held, moved money.Amount, outcome audit.Outcome) {
		t.Helper()
		r := f.call(0, held)
		r.Time, r.Agent = day.Add(at), agent
		a, err := f.s.Reserve(ctx, &store.Reservation{Record: r, Holds: []audit.Hold{{Key: "k/" + string(held.Currency), Unit: string(held.Currency), Limit: -1, Amount: held.Micros}}})
		if err != nil || a.Result != store.Admitted {
			t.Fatalf("Reserve = %+v, %v", a, err)
		}
		if outcome == audit.Reserved {
			return
		}
		c := &store.Completion{ID: a.ID, Outcome: outcome, Status: 200}
		if outcome == audit.Settled {
			c.Settled, c.Moved = []int64{moved.Micros}, moved
		}
		if err := f.s.Complete(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	eur := func(s string) money.Amount { a, _ := money.Parse(s + " EUR"); return a }
	write("refund-bot", 9*time.Hour+time.Minute, usd("30.00"), usd("25.00"), audit.Settled) // 25.00 at 09
	write("refund-bot", 9*time.Hour+59*time.Minute, usd("10.00"), usd("10.00"), audit.Settled)
	write("refund-bot", 14*time.Hour, usd("40.00"), money.Amount{}, audit.Unknown) // still counted
	write("refund-bot", 23*time.Hour+59*time.Minute, usd("5.00"), money.Amount{}, audit.Reserved)
	write("refund-bot", 15*time.Hour, usd("7.00"), money.Amount{}, audit.Released) // nothing moved
	write("refund-bot", -time.Minute, usd("99.00"), usd("99.00"), audit.Settled)   // yesterday
	write("refund-bot", 24*time.Hour, usd("99.00"), usd("99.00"), audit.Settled)   // tomorrow
	write("refund-bot", 10*time.Hour, eur("3.00"), eur("3.00"), audit.Settled)     // its own row
	write("another-bot", 0, usd("1.00"), usd("1.00"), audit.Settled)
	f.refuse(time.Hour, "refund-bot", "capped")

	s, err := localStatus(f, parsePolicy(t))
	if err != nil {
		t.Fatal(err)
	}
	var usdHours, eurHours, other [24]int64
	usdHours[9], usdHours[14], usdHours[23] = usd("35.00").Micros, usd("40.00").Micros, usd("5.00").Micros
	eurHours[10] = eur("3.00").Micros
	other[0] = usd("1.00").Micros
	want := []admin.AgentSpend{
		{Agent: "another-bot", Vendor: "stripe", Currency: "USD", Hours: other},
		{Agent: "refund-bot", Vendor: "stripe", Currency: "EUR", Hours: eurHours},
		{Agent: "refund-bot", Vendor: "stripe", Currency: "USD", Hours: usdHours},
	}
	if !reflect.DeepEqual(s.Spend, want) {
		t.Fatalf("spend:\n got %+v\nwant %+v", s.Spend, want)
	}
	if total, ok := s.Spend[2].Total(); !ok || total != usd("80.00").Micros {
		t.Errorf("Total = %d, %v", total, ok)
	}

	b, err := json.Marshal(s.Spend[2])
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	json.Unmarshal(b, &raw)
	if h := raw["hours"].([]any); len(h) != 24 || h[9] != "35.00" || h[0] != "0.00" || raw["currency"] != "USD" {
		t.Errorf("JSON = %s", b)
	}
	var back admin.AgentSpend
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, s.Spend[2]) {
		t.Errorf("round trip = %+v, %v", back, err)
	}
}
