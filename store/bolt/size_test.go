package bolt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// TestSizeAtScale writes KEYBRAKE_BOLT_SIZE_N calls (unset: the test is
// skipped) as a real call writes them, Reserve then Complete, one at a
// time, and reports the file's bytes a record, bbolt's statistics of
// every bucket, and how long the reads `keybrake status` and `keybrake
// audit` make take at that size. It asserts nothing about time (the
// machine is shared): it is a measurement, run by hand or with a small N
// in CI:
//
//	KEYBRAKE_BOLT_SIZE_N=1000000 go test ./store/bolt -run TestSizeAtScale -v -timeout 2h
func TestSizeAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KEYBRAKE_BOLT_SIZE_N"))
	if n <= 0 {
		t.Skip("set KEYBRAKE_BOLT_SIZE_N to the number of calls to write")
	}
	dir := t.TempDir()
	if d := os.Getenv("KEYBRAKE_BOLT_SIZE_DIR"); d != "" {
		dir = d
	}
	path := filepath.Join(dir, "size.db")
	reuse := os.Getenv("KEYBRAKE_BOLT_SIZE_REUSE") != "" // measure the reads of a file written before
	if !reuse {
		os.Remove(path)
	}
	s, err := Open(path, &Options{Linger: -1}) // the caller completes before it reserves again
	if err != nil {
		t.Fatal(err)
	}
	s.db.NoSync = true // the file's size, not the disk's speed
	ctx := context.Background()
	const agents = 8
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	step := 10 * 24 * time.Hour / time.Duration(n) // ten days of calls
	start := time.Now()
	var last time.Time
	for i := 0; i < n && !reuse; i++ {
		at := t0.Add(time.Duration(i) * step)
		r, c := refundCall(i, fmt.Sprintf("refund-bot-%d", i%agents), at)
		a, err := s.Reserve(ctx, r)
		if err != nil || a.Result != store.Admitted {
			t.Fatal(a, err)
		}
		c.ID = a.ID
		if err := s.Complete(ctx, c); err != nil {
			t.Fatal(err)
		}
		last = at
	}
	if reuse {
		last = t0.Add(time.Duration(n-1) * step)
	}
	write := time.Since(start)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d calls written in %v (%v a call, no fsync)", n, write.Round(time.Millisecond), (write / time.Duration(n)).Round(time.Microsecond))
	t.Logf("file: %d bytes, %.0f bytes a record", fi.Size(), float64(fi.Size())/float64(n))

	start = time.Now()
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Open: %v", time.Since(start).Round(time.Microsecond))
	defer s.Close()
	s.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			st := b.Stats()
			t.Logf("bucket %-12s keys %8d  leaf pages %7d (%5.1f%% used)  branch pages %5d  bytes a record %6.1f", name, st.KeyN,
				st.LeafPageN, 100*float64(st.LeafInuse)/float64(max(1, st.LeafAlloc)), st.BranchPageN,
				float64(st.LeafAlloc+st.BranchAlloc)/float64(n))
			return nil
		})
	})
	time1 := func(what string, fn func() (int, error)) {
		start := time.Now()
		got, err := fn()
		if err != nil {
			t.Fatal(what, err)
		}
		t.Logf("%s: %d records in %v", what, got, time.Since(start).Round(time.Microsecond))
	}
	query := func(q audit.Query) func() (int, error) {
		return func() (int, error) {
			k := 0
			err := s.Query(ctx, q, func(*audit.Record) error { k++; return nil })
			return k, err
		}
	}
	time1("Outstanding", func() (int, error) {
		k := 0
		err := s.Outstanding(ctx, func(*audit.Record) error { k++; return nil })
		return k, err
	})
	time1("one agent, the last hour", query(audit.Query{Agent: "refund-bot-3", Since: last.Add(-time.Hour)}))
	time1("one agent, the whole log", query(audit.Query{Agent: "refund-bot-3"}))
	time1("a minute's window", query(audit.Query{Since: last.Add(-30 * time.Minute), Until: last.Add(-29 * time.Minute)}))
	time1("after the last 100", query(audit.Query{After: uint64(n) - 100}))
	start = time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close after the reads: %v", time.Since(start).Round(time.Microsecond))

	start = time.Now()
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	open := time.Since(start)
	start = time.Now()
	s.Close()
	t.Logf("Open again: %v, Close right after: %v", open.Round(time.Microsecond), time.Since(start).Round(time.Microsecond))

	// Close while a Prune verifies (it would remove nothing: the cutoff
	// is before every record).
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	pruned := make(chan error, 1)
	go func() {
		_, err := s.Prune(ctx, t0)
		pruned <- err
	}()
	time.Sleep(200 * time.Millisecond)
	start = time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close 200ms into a Prune: %v (the Prune returned %v)", time.Since(start).Round(time.Microsecond), <-pruned)
}

// refundCall is call i of a refund agent as the transport stores it: a
// Stripe refund of $10.99 with stripe-go's idempotency key, its two day
// holds, and its completion, settled (Unknown every thousandth call), for
// the ID Reserve gives it.
func refundCall(i int, agent string, at time.Time) (*store.Reservation, *store.Completion) {
	usd := money.Amount{Micros: 10_990_000, Currency: "USD"}
	day := at.Format(time.DateOnly)
	key := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(i*2654435761), i%65536, i%4096, (i/7)%4096, uint64(i)*0x9e3779b97f4a7c15>>16)
	r := &store.Reservation{
		Record: audit.Record{
			Time: at, Agent: agent, Vendor: "stripe", Method: "POST", Host: "api.stripe.com", Path: "/v1/refunds",
			Operation: "refunds.create", Decision: policy.Allowed, Rule: "agents." + agent + ".stripe.allow[0]",
			Reason:         "every check passed",
			Params:         map[string]string{"charge": fmt.Sprintf("ch_3MmlLrLkdIwHu7ix%010d", i), "amount": "1099"},
			IdempotencyKey: key, KeyID: "kid_1a2b", Amount: usd, Reserved: usd,
			PolicyHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			// What replay needs of a refund.
			MovesMoney: true, Count: 1, RefundOf: fmt.Sprintf("ch_3MmlLrLkdIwHu7ix%010d", i),
		},
		Holds: []audit.Hold{
			{Key: "agent/" + agent + "/stripe/" + day + "/USD", Unit: "USD", Limit: -1, Amount: usd.Micros},
			{Key: "agent/" + agent + "/stripe/" + day + "/calls", Unit: "units", Limit: -1, Amount: 1},
		},
		Idempotency: &store.Idempotency{Key: agent + "\x00stripe\x00\x00" + key, Fingerprint: fmt.Sprintf("%064x", uint64(i)*0x9e3779b97f4a7c15)},
	}
	c := &store.Completion{Outcome: audit.Settled, Settled: []int64{usd.Micros, 1}, Moved: usd,
		Object: fmt.Sprintf("re_3MmlLrLkdIwHu7ix%010d", i), Status: 200, RequestID: fmt.Sprintf("req_%014x", uint64(i)*2654435761),
		Duration: 312_456 * time.Microsecond}
	if i%1000 == 999 {
		c = &store.Completion{Outcome: audit.Unknown, Status: 504}
	}
	return r, c
}
