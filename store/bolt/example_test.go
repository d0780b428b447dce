package bolt_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"

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

// Verify, as `keybrake audit verify` runs it: on a file no agent holds,
// opened read-only. An edit made to the file behind the store's back is
// reported at the first broken link.
func ExampleStore_Verify() {
	dir, err := os.MkdirTemp("", "keybrake")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keybrake.db")
	ctx := context.Background()

	s, err := bolt.Open(path, nil)
	if err != nil {
		log.Fatal(err)
	}
	refund, _ := money.Parse("25.00 USD")
	a, err := s.Reserve(ctx, &store.Reservation{
		Record: audit.Record{Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), Agent: "refund-bot", Vendor: "stripe",
			Method: "POST", Path: "/v1/refunds", Decision: policy.Allowed, Amount: refund, Reserved: refund},
		Holds: []audit.Hold{{Key: "agent/refund-bot/stripe/2025-06-01/USD", Unit: "USD", Limit: -1, Amount: refund.Micros}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{refund.Micros}, Moved: refund, Status: 200}); err != nil {
		log.Fatal(err)
	}
	s.Close()

	verify := func() {
		s, err := bolt.Open(path, &bolt.Options{ReadOnly: true})
		if err != nil {
			log.Fatal(err)
		}
		defer s.Close()
		rep, err := s.Verify(ctx)
		fmt.Printf("%d entries, %d records: %v\n", rep.Entries, rep.Records, err)
	}
	verify()

	// Someone removes the refund's record, editing the file directly.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	db.Update(func(tx *bbolt.Tx) error {
		records := tx.Bucket([]byte("records"))
		k := make([]byte, 8)
		binary.BigEndian.PutUint64(k, a.ID)
		return records.Delete(k)
	})
	db.Close()
	verify()
	// Output:
	// 2 entries, 1 records: <nil>
	// 2 entries, 0 records: store: audit chain broken: record 1 was removed: journal entry 2 holds its latest state
}
