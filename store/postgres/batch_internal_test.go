package postgres

import (
	"context"
	"sync"
	"testing"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
)

// TestConcurrentReservesShareTransactions: reservations made together
// commit in far fewer transactions than there are reservations, and each
// is answered on its own.
func TestConcurrentReservesShareTransactions(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, testenv.PostgresSchema(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 64
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		ids   sync.Map
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a, err := s.Reserve(ctx, &store.Reservation{Record: audit.Record{Agent: "a", Vendor: "stripe", Decision: "allowed"},
				Holds: []audit.Hold{{Key: "hot", Unit: "USD", Limit: -1, Amount: 1}}})
			if err != nil || a.Result != store.Admitted {
				t.Errorf("Reserve = %+v, %v", a, err)
				return
			}
			if _, dup := ids.LoadOrStore(a.ID, true); dup {
				t.Errorf("record %d given twice", a.ID)
			}
		}()
	}
	before := s.batch.batches.Load()
	close(start)
	wg.Wait()
	if got := s.batch.batches.Load() - before; got > n/4 {
		t.Errorf("%d reservations made together committed in %d transactions; want them to share", n, got)
	}
	if c, err := s.Counter(ctx, "hot"); err != nil || c.Pending != n {
		t.Fatalf("counter %+v, %v; want %d pending", c, err, n)
	}
}
