package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/store"
)

// TestRecordPagesStayFull: the records bucket keeps its pages full however
// many calls are in flight when their records complete. Each call reserves
// in a commit of its own and completes inflight calls later, as a caller
// among inflight concurrent ones does. Without pageFill, 16 or more in
// flight left 43% to 53% of each page used (the page split while its
// records were reserved, and again when they grew), against 86% serially.
// The figure is bbolt's own accounting of the file, not a time.
func TestRecordPagesStayFull(t *testing.T) {
	for _, inflight := range []int{1, 16, 64} {
		t.Run(fmt.Sprint(inflight), func(t *testing.T) {
			s := openUnsynced(t)
			ctx := context.Background()
			t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
			var flying []*store.Completion // oldest first
			const n = 1500
			for i := 0; i < n; i++ {
				r, c := refundCall(i, "refund-bot", t0.Add(time.Duration(i)*time.Second))
				a, err := s.Reserve(ctx, r)
				if err != nil {
					t.Fatal(err)
				}
				c.ID = a.ID
				flying = append(flying, c)
				for len(flying) == inflight || (i == n-1 && len(flying) > 0) {
					if err := s.Complete(ctx, flying[0]); err != nil {
						t.Fatal(err)
					}
					flying = flying[1:]
				}
			}
			st, used := leafUse(s, bucketRecords)
			t.Logf("%d in flight: %d leaf pages, %.1f%% used, %.0f bytes a record", inflight, st.LeafPageN, 100*used, float64(st.LeafAlloc)/n)
			if used < 0.75 {
				t.Errorf("records' leaf pages are %.1f%% used with %d calls in flight; want at least 75%%", 100*used, inflight)
			}
		})
	}
}

// TestIdempotencyPagesStayFull: keys that come in order (stripe-go's start
// with the time in nanoseconds) fill their pages; random ones (UUIDs) keep
// bbolt's even split, which suits them. Without pageFill, stripe-go's keys
// left their pages 49% used, with some late or none.
func TestIdempotencyPagesStayFull(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	// stripeGoKey is the key stripe-go makes for call i: the time in
	// nanoseconds and six random characters.
	stripeGoKey := func(i int) string {
		return fmt.Sprintf("%d_%06x", t0.Add(time.Duration(i)*time.Millisecond).UnixNano(), i*7919%(1<<24))
	}
	for _, c := range []struct {
		name string
		key  func(i int) string // nil keeps refundCall's UUID
		want float64
	}{
		{"stripe-go", stripeGoKey, 0.75},
		// One call in ten reaches the store after the next ten.
		{"stripe-go, some late", func(i int) string {
			switch {
			case i%20 == 0:
				i += 10
			case i%20 == 10:
				i -= 10
			}
			return stripeGoKey(i)
		}, 0.7},
		{"uuid", nil, 0.6},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openUnsynced(t)
			ctx := context.Background()
			const n = 3000
			for i := 0; i < n; i++ {
				agent := fmt.Sprintf("bot-%d", i%2) // two runs of keys
				r, done := refundCall(i, agent, t0.Add(time.Duration(i)*time.Millisecond))
				if c.key != nil {
					r.Record.IdempotencyKey = c.key(i)
					r.Idempotency.Key = agent + "\x00stripe\x00\x00" + r.Record.IdempotencyKey
				}
				a, err := s.Reserve(ctx, r)
				if err != nil || a.Result != store.Admitted {
					t.Fatal(a, err)
				}
				done.ID = a.ID
				if err := s.Complete(ctx, done); err != nil {
					t.Fatal(err)
				}
			}
			st, used := leafUse(s, bucketIdem)
			t.Logf("%s keys: %d leaf pages, %.1f%% used, %.0f bytes a key", c.name, st.LeafPageN, 100*used, float64(st.LeafAlloc)/n)
			if used < c.want {
				t.Errorf("idempotency leaf pages are %.1f%% used with %s keys; want at least %.0f%%", 100*used, c.name, 100*c.want)
			}
		})
	}
}

// openUnsynced opens a store whose caller completes before it reserves
// again, and whose commits skip the fsync: the pages, not the disk.
func openUnsynced(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "k.db"), &Options{Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.db.NoSync = true
	return s
}

// leafUse is bbolt's accounting of bucket's leaf pages, and the share of
// them in use.
func leafUse(s *Store, bucket []byte) (bbolt.BucketStats, float64) {
	var st bbolt.BucketStats
	s.db.View(func(tx *bbolt.Tx) error { st = tx.Bucket(bucket).Stats(); return nil })
	return st, float64(st.LeafInuse) / float64(max(st.LeafAlloc, 1))
}
