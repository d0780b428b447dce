package postgres_test

import (
	"testing"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
)

// BenchmarkReserveComplete: one call's two writes, Reserve and Complete,
// on one hot counter, from parallel callers of one Store. This is the
// figure batching is to improve (see doc.go, Left to do).
func BenchmarkReserveComplete(b *testing.B) {
	s := open(b, testenv.PostgresSchema(b), nil)
	defer s.Close()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
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
