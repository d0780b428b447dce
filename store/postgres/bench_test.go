package postgres_test

import (
	"sync/atomic"
	"testing"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/postgres"
)

// BenchmarkReserveComplete: one call's two writes, Reserve and Complete,
// on one hot counter, from parallel callers of one Store, which shares
// transactions between them (batch.go). go run ./bench/fleet measures the
// same through stripe-go and Brake, against a baseline.
func BenchmarkReserveComplete(b *testing.B) {
	s := open(b, testenv.PostgresSchema(b), nil)
	defer s.Close()
	benchReserveComplete(b, []*postgres.Store{s})
}

// BenchmarkReserveCompleteFleet: the same from four Stores with pools of
// their own, as four processes would: their batches meet on the hot
// counter row.
func BenchmarkReserveCompleteFleet(b *testing.B) {
	dsn := testenv.PostgresSchema(b)
	var stores []*postgres.Store
	for i := 0; i < 4; i++ {
		s := open(b, dsn, nil)
		defer s.Close()
		stores = append(stores, s)
	}
	benchReserveComplete(b, stores)
}

func benchReserveComplete(b *testing.B, stores []*postgres.Store) {
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := stores[int(next.Add(1))%len(stores)]
		i := 0
		for pb.Next() {
			i++
			a, err := s.Reserve(ctx, &store.Reservation{Record: call(i), Holds: []audit.Hold{{Key: "hot", Unit: "USD", Limit: -1, Amount: 1}}})
			if err != nil {
				b.Error(err)
				return
			}
			if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{1}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
