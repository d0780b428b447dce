package bolt_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

// A call's life in the store: reserve against a daily cap before sending,
// settle from the response, and the cap refuses what no longer fits.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "keybrake")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := bolt.Open(filepath.Join(dir, "keybrake.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	refund, _ := money.Parse("300.00 USD")
	dailyCap, _ := money.Parse("500.00 USD")
	reservation := func() *store.Reservation {
		return &store.Reservation{
			Record: audit.Record{
				Time: time.Now(), Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
				Decision: policy.Allowed, Amount: refund, Reserved: refund,
			},
			Holds: []audit.Hold{{Key: "2025-06-01/refund-bot/USD", Unit: "USD", Limit: dailyCap.Micros, Amount: refund.Micros}},
		}
	}

	a, err := s.Reserve(ctx, reservation())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first refund admitted:", a.Result == store.Admitted)

	// The vendor refunded 250.00 of the 300.00 held.
	moved, _ := money.Parse("250.00 USD")
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{moved.Micros}, Moved: moved, Status: 200}); err != nil {
		log.Fatal(err)
	}
	c, _ := s.Counter(ctx, "2025-06-01/refund-bot/USD")
	fmt.Println("settled today:", money.Amount{Micros: c.Total(), Currency: "USD"})

	b, err := s.Reserve(ctx, reservation())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("second refund over the cap:", b.Result == store.OverLimit, "used:", money.Amount{Micros: b.Used, Currency: "USD"})
	// Output:
	// first refund admitted: true
	// settled today: 250.00 USD
	// second refund over the cap: true used: 250.00 USD
}
