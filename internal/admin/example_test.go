package admin_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store/bolt"
)

// A Brake serves its store on a socket beside the database; the operator's
// CLI reads the last 90 seconds and today's caps through it while the agent
// holds the file.
func ExampleServe() {
	dir, err := os.MkdirTemp("", "keybrake")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "keybrake.db")
	st, err := bolt.Open(db, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	pol, err := policy.Parse("keybrake.yaml", []byte(`version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      allow: [POST /v1/refunds]
`))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	amount, _ := money.Parse("900.00 USD")
	st.Append(ctx, &audit.Record{Time: time.Now(), Agent: "refund-bot", Vendor: "stripe", Method: "POST",
		Path: "/v1/transfers", Amount: amount, Decision: policy.Blocked, Code: "keybrake_not_allowed", Status: 403})

	// In the agent's process.
	src := &admin.Local{Store: st, State: func() admin.State { return admin.State{Policy: pol} }}
	srv, err := admin.Serve(db+".sock", admin.Handler(src))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// In the operator's.
	c := admin.Dial(db + ".sock")
	err = c.Audit(ctx, audit.Query{Since: time.Now().Add(-90 * time.Second)}, false, func(r *audit.Record) error {
		fmt.Println(r.Agent, r.Decision, r.Status, r.Method, r.Path, r.Amount)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	s, err := c.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range s.Limits {
		used := money.Amount{Micros: l.Used(), Currency: money.Currency(l.Unit)}
		max := money.Amount{Micros: l.Max, Currency: money.Currency(l.Unit)}
		fmt.Printf("%s: %s of %s\n", l.Rule, used, max)
	}
	// Output:
	// refund-bot blocked 403 POST /v1/transfers 900.00 USD
	// agents.refund-bot.stripe.daily_cap: 0.00 USD of 500.00 USD
}
