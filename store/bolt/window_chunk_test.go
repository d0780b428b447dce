package bolt

import (
	"context"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// TestPruneWindowsInChunks: Prune removes window entries in transactions
// of pruneChunk entries examined, and removes exactly those that left.
func TestPruneWindowsInChunks(t *testing.T) {
	s := openTest(t)
	s.db.NoSync = true // the transactions, not the disk
	ctx := context.Background()
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	const n = 2*pruneChunk + 100
	for i := range n {
		r := &store.Reservation{Record: audit.Record{Time: t0.Add(time.Duration(i) * time.Millisecond)},
			Holds: []audit.Hold{{Key: "w", Unit: "units", Limit: -1, Amount: 1, Window: time.Second}}}
		if a, err := s.Reserve(ctx, r); err != nil || a.Result != store.Admitted {
			t.Fatalf("Reserve %d = %+v, %v", i, a, err)
		}
	}
	// Entry i leaves at 1 s + i ms: as of this cutoff all but the last
	// 100 have.
	before := t0.Add(time.Second + (n-101)*time.Millisecond)
	commits := s.commits.Load()
	rep, err := s.Prune(ctx, before)
	if err != nil || rep.Windows != n-100 {
		t.Fatalf("Prune = %+v, %v; want %d window entries removed", rep, err, n-100)
	}
	if c := s.commits.Load() - commits; c < 3 {
		t.Fatalf("Prune committed %d transactions, want the window entries' in 3", c)
	}
	es, err := s.Window(ctx, "w", t0)
	if err != nil || len(es) != 100 || !es[0].Time.Equal(t0.Add((n-100)*time.Millisecond)) {
		t.Fatalf("Window after Prune: %d entries, the first %+v, %v; want the last 100", len(es), es[0], err)
	}
}
