package notify_test

import (
	"context"
	"fmt"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/notify"
	"github.com/keybrake/keybrake/policy"
)

// printer is a Notifier that prints each alert on one line.
type printer struct{}

func (printer) Notify(_ context.Context, a notify.Alert) error {
	state := "still going"
	if a.Final {
		state = "over"
	}
	fmt.Printf("%s: agent %s, rule %s: %d (of %d in all), %s: %s\n",
		a.Kind, a.Agent, a.Rule, a.Count, a.Total, state, a.Reason)
	return nil
}

// A stuck agent is capped three times in a row: the first refusal pages at
// once, the other two are counted and reported together, here by Close.
func ExampleDispatcher() {
	d := notify.NewDispatcher(printer{}, notify.Options{Window: time.Minute})
	capped := &audit.Record{
		Agent: "refund-bot", Vendor: "stripe", Decision: policy.Capped,
		Rule: "agents.refund-bot.stripe.daily_cap", Code: "keybrake_daily_cap",
		Reason: "daily cap 500.00 USD reached",
	}
	allowed := &audit.Record{Agent: "refund-bot", Vendor: "stripe", Decision: policy.Allowed}

	d.Offer(allowed) // ignored
	for range 3 {
		d.Offer(capped)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		fmt.Println(err)
	}
	s := d.Stats()
	fmt.Printf("offered %d, alerts %d, delivered %d\n", s.Offered, s.Alerts, s.Delivered)
	// Output:
	// capped: agent refund-bot, rule agents.refund-bot.stripe.daily_cap: 1 (of 1 in all), still going: daily cap 500.00 USD reached
	// capped: agent refund-bot, rule agents.refund-bot.stripe.daily_cap: 2 (of 3 in all), over: daily cap 500.00 USD reached
	// offered 3, alerts 2, delivered 2
}
