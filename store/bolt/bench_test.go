package bolt

import (
	"context"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

func benchReservation(i int64) *store.Reservation {
	usd := money.Amount{Micros: 10_990_000, Currency: "USD"}
	return &store.Reservation{
		Record: audit.Record{
			Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i)), Agent: "refund-bot",
			Vendor: "stripe", Method: "POST", Host: "api.stripe.com", Path: "/v1/refunds", Operation: "refunds.create",
			Decision: policy.Allowed, Rule: "agents.refund-bot.stripe.allow[0]", Reason: "allowed",
			Params: map[string]string{"charge": "ch_3MmlLrLkdIwHu7ix0snN0B15", "amount": "1099"},
			KeyID:  "kid_1a2b", Customer: "cus_NffrFeUfNV2Hib", Amount: usd, Reserved: usd, PolicyHash: "sha256:0123456789abcdef",
		},
		Holds: []audit.Hold{
			{Key: "2025-06-01/refund-bot/stripe/USD", Unit: "USD", Limit: -1, Amount: usd.Micros},
			{Key: "2025-06-01/refund-bot/stripe/calls", Unit: "units", Limit: -1, Amount: 1},
		},
	}
}

// reportBatching reports how many operations shared each fsync'd commit.
func reportBatching(b *testing.B, s *Store, commits, applied uint64) {
	c, a := s.commits.Load()-commits, s.applied.Load()-applied
	if c > 0 {
		b.ReportMetric(float64(a)/float64(c), "ops/commit")
	}
}

// BenchmarkReserve is one caller at a time: every Reserve pays its own
// fsync'd commit.
func BenchmarkReserve(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	b.ReportAllocs()
	c, a := s.commits.Load(), s.applied.Load()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Reserve(ctx, benchReservation(int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportBatching(b, s, c, a)
}

// BenchmarkReserveParallel is many callers at once (GOMAXPROCS times
// -cpu's parallelism goroutines): group commit shares each fsync.
func BenchmarkReserveParallel(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32) // agents wait on the network, not the CPU
	c, a := s.commits.Load(), s.applied.Load()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Reserve(ctx, benchReservation(n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportBatching(b, s, c, a)
}

// BenchmarkReserveComplete is a whole call's store work: reserve, then
// settle, from many callers.
func BenchmarkReserveCompleteParallel(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a, err := s.Reserve(ctx, benchReservation(n.Add(1)))
			if err != nil {
				b.Error(err)
				return
			}
			if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{10_990_000, 1},
				Moved: money.Amount{Micros: 10_990_000, Currency: "USD"}, Status: 200, RequestID: "req_1", Duration: time.Millisecond}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCounter is the read every decision makes.
func BenchmarkCounterParallel(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	if _, err := s.Reserve(ctx, benchReservation(0)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Counter(ctx, "2025-06-01/refund-bot/stripe/USD"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerify walks a chain of 10,000 settled calls (20,000 entries).
func BenchmarkVerify(b *testing.B) {
	s := openTest(b)
	s.db.NoSync = true
	ctx := context.Background()
	const calls = 10_000
	settleCalls(b, s, calls)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if rep, err := s.Verify(ctx); err != nil || rep.Records != calls {
			b.Fatal(rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/calls, "ns/record")
}

// BenchmarkReserveParallelNoSync is BenchmarkReserveParallel without the
// fsync: what the store's own work costs a reservation (encoding, the
// audit chain's hash and extra put, bbolt's pages), apart from the disk.
func BenchmarkReserveParallelNoSync(b *testing.B) {
	s := openTest(b)
	s.db.NoSync = true
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Reserve(ctx, benchReservation(n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSerialCaller is one agent calling in turn, its completions
// handed to a completer goroutine as internal/transport does: with the
// writer's linger a call costs one commit, without it two.
func BenchmarkSerialCaller(b *testing.B) {
	for _, linger := range []time.Duration{-1, 0} {
		name := "linger=default"
		if linger < 0 {
			name = "linger=off"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(b.TempDir()+"/keybrake.db", &Options{Linger: linger})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			completions := make(chan uint64, 16)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for id := range completions {
					if err := s.Complete(ctx, &store.Completion{ID: id, Outcome: audit.Settled, Settled: []int64{10_990_000, 1},
						Moved: money.Amount{Micros: 10_990_000, Currency: "USD"}, Status: 200}); err != nil {
						b.Error(err)
					}
				}
			}()
			b.ReportAllocs()
			c, a := s.commits.Load(), s.applied.Load()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				adm, err := s.Reserve(ctx, benchReservation(int64(i)))
				if err != nil {
					b.Fatal(err)
				}
				spin(200 * time.Microsecond) // the vendor answers
				completions <- adm.ID
				spin(100 * time.Microsecond) // the agent reads it and calls again
			}
			close(completions)
			<-done
			b.StopTimer()
			b.ReportMetric(float64(s.commits.Load()-c)/float64(b.N), "commits/call")
			reportBatching(b, s, c, a)
		})
	}
}

// spin waits d without sleeping: time.Sleep may oversleep by a
// millisecond, longer than what it models.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		runtime.Gosched()
	}
}

// settleCalls writes n refunds, each reserved and settled, on 2025-06-01.
func settleCalls(b *testing.B, s *Store, n int) {
	ctx := context.Background()
	for i := 0; i < n; i++ {
		a, err := s.Reserve(ctx, benchReservation(int64(i)))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{10_990_000, 1},
			Moved: money.Amount{Micros: 10_990_000, Currency: "USD"}, Status: 200}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueryDay reads a day's records through the time index, as
// `keybrake status` does for the spend by hour: what a record costs to
// read back (its index entry, its body, its interned text, its chain link).
func BenchmarkQueryDay(b *testing.B) {
	s := openTest(b)
	s.db.NoSync = true
	ctx := context.Background()
	const calls = 10_000
	settleCalls(b, s, calls)
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		if err := s.Query(ctx, audit.Query{Since: day, Until: day.Add(24 * time.Hour)}, func(*audit.Record) error { n++; return nil }); err != nil || n != calls {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/calls, "ns/record")
}

// BenchmarkCallNoSync is one call's store work, Reserve then Complete,
// one after the other and without the fsync: the CPU the store costs a
// call (encoding, decoding, the chain's hashes, bbolt's pages), which at
// 64 callers is what bounds the calls a second, not the disk. (Without
// the linger: a Complete called in turn has no company to wait for.)
func BenchmarkCallNoSync(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "keybrake.db"), &Options{Linger: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.db.NoSync = true
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, err := s.Reserve(ctx, benchReservation(int64(i)))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{10_990_000, 1},
			Moved: money.Amount{Micros: 10_990_000, Currency: "USD"}, Status: 200, RequestID: "req_1", Duration: time.Millisecond}); err != nil {
			b.Fatal(err)
		}
	}
}
