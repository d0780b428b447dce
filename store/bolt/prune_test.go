package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// sizes is what a store holds: records, journal entries, counters,
// idempotency keys, and the database's size (its pages in use and free,
// not the file, which bbolt grows in steps).
type sizes struct {
	records, entries, counters, keys int
	bytes                            int64
}

func measure(t *testing.T, s *Store) sizes {
	t.Helper()
	var z sizes
	if err := s.db.View(func(tx *bbolt.Tx) error {
		z.records = tx.Bucket(bucketRecords).Stats().KeyN
		z.entries = tx.Bucket(bucketJournal).Stats().KeyN
		z.counters = tx.Bucket(bucketCounters).Stats().KeyN
		z.keys = tx.Bucket(bucketIdem).Stats().KeyN
		z.bytes = tx.Size()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return z
}

// TestPruneKeepsTheStoreBounded writes a simulated month and a half of
// calls, a day at a time, and prunes at the end of each day with a 7-day
// retention, as a background job would. Each day has settled calls (some
// estimates, reconciled later in the day), refusals, calls left Unknown
// and retried the next day, and one call stuck Unknown since the first day
// that every Prune must carry forward. The records, journal entries,
// counters and keys must stay bounded, the database must stop growing
// once bbolt reuses the pages Prune frees, and the chain must verify.
func TestPruneKeepsTheStoreBounded(t *testing.T) {
	const (
		days      = 45
		perDay    = 200
		retention = 7
	)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	s, err := Open(filepath.Join(t.TempDir(), "keybrake.db"), &Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.db.NoSync = true // the test is about size, not durability
	ctx := context.Background()
	usd := func(cents int64) money.Amount { return money.Amount{Micros: cents * 10_000, Currency: "USD"} }

	reserve := func(tm time.Time, day, idem string) store.Admission {
		t.Helper()
		a, err := s.Reserve(ctx, &store.Reservation{
			Record: audit.Record{Time: tm, Agent: "bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
				Decision: policy.Allowed, Amount: usd(1099), Reserved: usd(1099),
				Params: map[string]string{"charge": "ch_3MmlLrLkdIwHu7ix0snN0B15", "amount": "1099"}},
			Holds: []audit.Hold{
				{Key: "agent/bot/stripe/" + day + "/USD", Unit: "USD", Limit: -1, Amount: usd(1099).Micros},
				{Key: "agent/bot/stripe/" + day + "/units", Unit: "units", Limit: -1, Amount: 1},
			},
			Idempotency: &store.Idempotency{Key: idem, Fingerprint: "fp"},
		})
		if err != nil || a.Result != store.Admitted {
			t.Fatalf("Reserve(%s) = %+v, %v", idem, a, err)
		}
		return a
	}
	settle := func(id uint64, estimated bool) {
		t.Helper()
		if err := s.Complete(ctx, &store.Completion{ID: id, Outcome: audit.Settled, Settled: []int64{usd(1099).Micros, 1},
			Moved: usd(1099), Estimated: estimated, Status: 200, RequestID: "req_1", Duration: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}

	stuck := reserve(start, start.Format(time.DateOnly), "stuck")
	if err := s.Complete(ctx, &store.Completion{ID: stuck.ID, Outcome: audit.Unknown}); err != nil {
		t.Fatal(err)
	}
	var (
		unknown []string // yesterday's Unknown calls' keys
		history []sizes
		pruning time.Duration
	)
	for d := 0; d < days; d++ {
		dayStart := start.AddDate(0, 0, d)
		day := dayStart.Format(time.DateOnly)
		var estimates []uint64
		// Yesterday's Unknown calls are retried, late yesterday and so
		// inside the store.ReplayWindow of their first attempt: the
		// retries take over.
		for i, key := range unknown {
			a := reserve(dayStart.Add(-time.Hour+time.Duration(i)*time.Second), day, key)
			settle(a.ID, false)
		}
		unknown = unknown[:0]
		for i := 0; i < perDay; i++ {
			tm := dayStart.Add(time.Duration(i) * time.Minute)
			now = tm
			key := fmt.Sprintf("bot/stripe/%d-%d", d, i)
			switch i % 10 {
			case 0, 1:
				if _, err := s.Append(ctx, &audit.Record{Time: tm, Agent: "bot", Vendor: "stripe", Decision: policy.Capped,
					Code: "keybrake_daily_cap", Reason: "daily cap reached", Status: 402}); err != nil {
					t.Fatal(err)
				}
			case 2:
				a := reserve(tm, day, key)
				if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Unknown, Status: 504}); err != nil {
					t.Fatal(err)
				}
				unknown = append(unknown, key)
			case 3:
				a := reserve(tm, day, key)
				settle(a.ID, true)
				estimates = append(estimates, a.ID)
			default:
				settle(reserve(tm, day, key).ID, false)
			}
		}
		for _, id := range estimates {
			if err := s.Resettle(ctx, id, []int64{usd(1200).Micros, 1}, usd(1200)); err != nil {
				t.Fatal(err)
			}
		}
		// The nightly prune keeps the last 7 days.
		now = dayStart.Add(23 * time.Hour)
		began := time.Now()
		rep, err := s.Prune(ctx, dayStart.AddDate(0, 0, 1-retention))
		if err != nil {
			t.Fatalf("day %d: Prune: %v", d, err)
		}
		pruning += time.Since(began)
		// Day 0's counters stay: the stuck call holds them.
		if d > retention && (rep.Records < perDay || rep.Counters != 2) {
			t.Fatalf("day %d: Prune = %+v, want a day of records (%d or more) and its 2 counters", d, rep, perDay)
		}
		z := measure(t, s)
		history = append(history, z)
		if d%5 == 0 || d == days-1 {
			t.Logf("day %2d: %5d records, %5d entries, %2d counters, %5d keys, %7d bytes; prune %+v",
				d, z.records, z.entries, z.counters, z.keys, z.bytes, rep)
		}
	}
	t.Logf("%d prunes took %v in all", days, pruning)

	// Bounds: 7 days of calls, their retries, the stuck call; at most 3
	// entries a record (reserved, settled, reconciled).
	last := history[len(history)-1]
	maxRecords := retention*(perDay+perDay/10) + 1
	if last.records > maxRecords || last.entries > 3*maxRecords || last.counters > 2*retention+2 || last.keys > maxRecords {
		t.Fatalf("after %d days: %+v; want at most %d records, %d entries, %d counters and keys", days, last, maxRecords, 3*maxRecords, 2*retention+2)
	}
	// Once the retention is full, the database stops growing: compare the
	// last days with the first full week of pruning.
	settled := history[3*retention]
	for d := 3 * retention; d < days; d++ {
		if history[d].bytes > settled.bytes*11/10 {
			t.Fatalf("day %d: %d bytes, more than 10%% above the %d of day %d: the database keeps growing", d, history[d].bytes, settled.bytes, 3*retention)
		}
	}
	rep, err := s.Verify(ctx)
	if err != nil || rep.Records != last.records || rep.Entries != last.entries {
		t.Fatalf("Verify = %+v, %v; want %d records and %d entries", rep, err, last.records, last.entries)
	}
	if c, _ := s.Counter(ctx, "agent/bot/stripe/"+start.Format(time.DateOnly)+"/USD"); c.Unknown != usd(1099).Micros {
		t.Fatalf("the stuck call's counter = %+v, want its money still counted", c)
	}
}

// TestPruneKeyRetentionUsesTheClock: whatever the cutoff, an idempotency
// key younger than 24 hours by Options.Now stays, and its record with it.
func TestPruneKeyRetentionUsesTheClock(t *testing.T) {
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	s, err := Open(filepath.Join(t.TempDir(), "keybrake.db"), &Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	ids := map[string]uint64{}
	for _, c := range []struct {
		key string
		ago time.Duration
	}{{"23h", 23 * time.Hour}, {"25h", 25 * time.Hour}, {"none", 25 * time.Hour}} {
		r := &store.Reservation{Record: audit.Record{Time: now.Add(-c.ago), Agent: c.key}}
		if c.key != "none" {
			r.Idempotency = &store.Idempotency{Key: c.key, Fingerprint: "fp"}
		}
		a, err := s.Reserve(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled}); err != nil {
			t.Fatal(err)
		}
		ids[c.key] = a.ID
	}
	rep, err := s.Prune(ctx, now)
	if err != nil || rep.Records != 2 || rep.IdempotencyKeys != 1 {
		t.Fatalf("Prune = %+v, %v; want the 25h-old records and key gone", rep, err)
	}
	var left []string
	s.Query(ctx, audit.Query{}, func(r *audit.Record) error { left = append(left, r.Agent); return nil })
	if fmt.Sprint(left) != "[23h]" {
		t.Fatalf("records left: %v, want the one whose key is 23 hours old", left)
	}
	// Two hours later the key is 25 hours old: it goes, with its record.
	now = now.Add(2 * time.Hour)
	if rep, err := s.Prune(ctx, now); err != nil || rep.Records != 1 || rep.IdempotencyKeys != 1 {
		t.Fatalf("Prune an hour later = %+v, %v", rep, err)
	}
}

// TestQuickLink2AgreesWithJSON: the fast reading of schema 2, which the
// upgrade uses, of a body's "id" and
// "prev" gives what encoding/json gives, for records the store writes
// (with parameters that look like links, too), and declines tombstones
// and bodies of another shape, which encoding/json then reads.
func TestQuickLink2AgreesWithJSON(t *testing.T) {
	prev := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	records := []audit.Record{
		{ID: 1, PrevHash: prev},
		{ID: 18446744073709551615, PrevHash: prev, Agent: "a", Params: map[string]string{"x": `,"prev":"` + prev + `"}`, "id": "7"}},
		{ID: 42, PrevHash: prev, Reason: `{"id":9,`, Amount: money.Amount{Micros: 10_000, Currency: "USD"}},
	}
	for _, r := range records {
		body, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		l, _, ok := quickLink2(body)
		var want link2
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		if !ok || l != want {
			t.Fatalf("quickLink2(%s) = %+v, %v; encoding/json reads %+v", body, l, ok, want)
		}
	}
	tomb := []byte(`{"id":5,"pruned":"2025-01-02T00:00:00Z","prev":"` + prev + `"}`)
	for _, body := range [][]byte{tomb, []byte(`{"prev":"` + prev + `","id":3}`), []byte(`{"id":3,"prev":"xyz"}`), []byte(`{"id":,"prev":"` + prev + `"}`)} {
		if l, _, ok := quickLink2(body); ok {
			t.Errorf("quickLink2(%s) = %+v, want it to decline", body, l)
		}
	}
	l, _, err := readLink2(tomb)
	if err != nil || l.ID != 5 || l.Pruned != "2025-01-02T00:00:00Z" {
		t.Fatalf("readLink2(tombstone) = %+v, %v", l, err)
	}
	if l, _, err := readLink2([]byte(`{"prev":"` + prev + `","id":3}`)); err != nil || l.ID != 3 || l.Prev != prev {
		t.Fatalf("readLink of another key order = %+v, %v", l, err)
	}
}

// TestCloseDuringPrune: Close ends a Prune between its chunks; the Prune
// returns ErrClosed (or had finished), and the file verifies after.
func TestCloseDuringPrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.db.NoSync = true
	ctx := context.Background()
	for i := 0; i < 3000; i++ {
		a, err := s.Reserve(ctx, benchReservation(int64(i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{10_990_000, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Prune(ctx, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		done <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil && !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Prune during Close = %v, want nil or ErrClosed", err)
	}
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Verify(ctx); err != nil {
		t.Fatalf("Verify after a Prune that Close ended: %v", err)
	}
}
