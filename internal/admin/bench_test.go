package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// fill writes n finished calls over the last d, in batches (Reserve and
// Complete in parallel so the store group-commits).
func fill(b *testing.B, f *fixture, n int, d time.Duration) {
	b.Helper()
	ctx := context.Background()
	const workers = 64
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := w; i < n; i += workers {
				at := -d + time.Duration(i)*d/time.Duration(n)
				if i%10 == 0 {
					_, err := f.s.Append(ctx, &audit.Record{Time: f.now.Add(at), Agent: "refund-bot", Vendor: "stripe",
						Decision: policy.Capped, Status: 402, Outcome: audit.None})
					if err != nil {
						errs <- err
						return
					}
					continue
				}
				holds := f.holds(usd("0.01"))
				for i := range holds {
					holds[i].Limit = -1 // unlimited: the benchmark needs many calls
				}
				a, err := f.s.Reserve(ctx, &store.Reservation{Record: f.call(at, usd("1.00")), Holds: holds})
				if err == nil && a.Result != store.Admitted {
					err = fmt.Errorf("reserve: %+v", a)
				}
				if err == nil {
					err = f.s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{10_000, 10_000, 1},
						Moved: usd("1.00"), Status: 200})
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkComputeStatus measures a status over a log of n records: one
// counter per limit, and every record read for the open reservations.
func BenchmarkComputeStatus(b *testing.B) {
	for _, n := range []int{1_000, 20_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			f := newFixture(b)
			fill(b, f, n, time.Hour)
			pol := parsePolicy(b)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := admin.ComputeStatus(context.Background(), f.s, pol, nil, f.day, policy.Stops{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/record")
		})
	}
}

// BenchmarkHandlerAudit measures GET /audit of 100 records, from many
// clients at once.
func BenchmarkHandlerAudit(b *testing.B) {
	f := newFixture(b)
	fill(b, f, 100, time.Minute)
	h := admin.Handler(f.local(false))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/audit", nil))
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
			io.Copy(io.Discard, w.Body)
		}
	})
}

// BenchmarkFollowPoll measures one poll of a follow that is up to date,
// after an agent wrote a minute of 100 records a second: it asks only for
// the records after the last one it passed on, and there are none.
func BenchmarkFollowPoll(b *testing.B) {
	f := newFixture(b)
	n := int(time.Minute/time.Second) * 100
	fill(b, f, n, time.Minute)
	src := f.local(false)
	var last uint64
	err := src.Query(context.Background(), audit.Query{ByID: true}, func(r *audit.Record) error {
		last = r.ID
		return nil
	})
	if err != nil || last == 0 {
		b.Fatal(last, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		err := src.Query(context.Background(), audit.Query{After: last}, func(r *audit.Record) error {
			return fmt.Errorf("record %d after the last, %d", r.ID, last)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
