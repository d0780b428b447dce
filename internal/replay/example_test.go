package replay_test

import (
	"fmt"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/replay"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// Two refunds of 20.00 USD went through under a daily cap of 500.00 USD.
// Under a cap of 30.00 USD, the second would have been capped.
func ExampleReplay() {
	tighter, err := policy.Parse("new.yaml", []byte(`version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 30.00 USD
      allow: [POST /v1/refunds]
`))
	if err != nil {
		panic(err)
	}
	twenty := money.Amount{Micros: 20_000_000, Currency: "USD"}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var recs []*audit.Record
	for i := range 2 {
		recs = append(recs, &audit.Record{ID: uint64(i + 1), Time: at.Add(time.Duration(i) * time.Minute),
			Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds", Operation: "refunds.create",
			Decision: policy.Allowed, Rule: "agents.refund-bot.stripe.allow[0]", MovesMoney: true, Count: 1,
			Amount: twenty, Reserved: twenty, Settled: twenty, Outcome: audit.Settled})
	}
	rep := replay.Replay(tighter, recs, time.Time{})
	for _, a := range rep.Agents {
		for _, c := range a.Changed {
			fmt.Printf("call %d: %s -> %s by %s\n", c.ID, c.From.Decision, c.To.Decision, c.To.Rule)
		}
		fmt.Println("stopped:", a.Stopped)
	}
	// Output:
	// call 2: allowed -> capped by agents.refund-bot.stripe.daily_cap
	// stopped: [20.00 USD]
}
