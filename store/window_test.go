package store_test

import (
	"testing"
	"time"

	"github.com/keybrake/keybrake/store"
)

// TestFirstLeave: entries reserved with different windows leave in
// another order than their Times'; the first to leave is not always the
// oldest.
func TestFirstLeave(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	if got := store.FirstLeave(nil); !got.IsZero() {
		t.Errorf("FirstLeave(nil) = %v, want zero", got)
	}
	es := []store.WindowEntry{
		{Time: t0, Window: time.Hour},                             // leaves 10:00
		{Time: t0.Add(time.Minute), Window: 10 * time.Minute},     // leaves 09:11
		{Time: t0.Add(2 * time.Minute), Window: 30 * time.Minute}, // leaves 09:32
	}
	if got, want := store.FirstLeave(es), t0.Add(11*time.Minute); !got.Equal(want) {
		t.Errorf("FirstLeave = %v, want %v (the second entry's)", got, want)
	}
}
