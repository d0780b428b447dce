package bolt

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// BenchmarkCommitLeaves is why a reservation's commit costs about twice a
// bare one, and what would not change it. It times, interleaved (each
// iteration commits once in each), bare bbolt commits with fsync on: one
// 100-byte put; one put in each of 8 buckets (as a reservation writes its
// record, journal entry, indexes, idempotency key, counters and pending
// mark); 8 puts under 8 key prefixes of one bucket. Each tree holds
// 50,000 keys first, so that it has depth. It reports each variant's mean
// commit and the two ratios to the single put.
//
// On the team's 2-core machine (2026-12-03, three runs of -benchtime
// 1000x) 8buckets/1put was 1.79x-1.89x and 8prefixes/1put 1.63x-1.83x:
// the cost follows the leaves a commit dirties, not the number of trees,
// so folding the buckets into one would gain a tenth at most and not
// bring a reservation's commit near the bare one; fewer leaves a call
// would.
//
//	go test -run '^$' -bench CommitLeaves -benchtime 1000x ./store/bolt/
func BenchmarkCommitLeaves(b *testing.B) {
	v := make([]byte, 100)
	type variant struct {
		name      string
		puts      int
		oneBucket bool
		db        *bbolt.DB
		total     time.Duration
	}
	variants := []*variant{{name: "1put", puts: 1}, {name: "8buckets", puts: 8}, {name: "8prefixes", puts: 8, oneBucket: true}}
	putOne := func(vr *variant, tx *bbolt.Tx, p int, n uint64) error {
		k := make([]byte, 9)
		k[0] = byte(p)
		binary.BigEndian.PutUint64(k[1:], n)
		name := fmt.Sprintf("b%d", p)
		if vr.oneBucket {
			name = "b0"
		}
		bk, err := tx.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		return bk.Put(k, v)
	}
	put := func(vr *variant, tx *bbolt.Tx, n uint64) error {
		for p := range vr.puts {
			if err := putOne(vr, tx, p, n); err != nil {
				return err
			}
		}
		return nil
	}
	const prefill = 50_000
	for _, vr := range variants {
		db, err := bbolt.Open(filepath.Join(b.TempDir(), vr.name+".db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		vr.db = db
		// Prefix by prefix, so that every put of the prefill appends (a
		// transaction splits its nodes only at commit).
		if err := db.Update(func(tx *bbolt.Tx) error {
			for p := range vr.puts {
				for n := range uint64(prefill) {
					if err := putOne(vr, tx, p, n); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		for _, vr := range variants {
			t0 := time.Now()
			if err := vr.db.Update(func(tx *bbolt.Tx) error { return put(vr, tx, prefill+uint64(i)) }); err != nil {
				b.Fatal(err)
			}
			vr.total += time.Since(t0)
		}
	}
	mean := func(vr *variant) float64 { return float64(vr.total.Microseconds()) / float64(b.N) }
	for _, vr := range variants {
		b.ReportMetric(mean(vr), vr.name+"-µs/commit")
	}
	if base := mean(variants[0]); base > 0 {
		b.ReportMetric(mean(variants[1])/base, "8buckets/1put")
		b.ReportMetric(mean(variants[2])/base, "8prefixes/1put")
	}
}
