package store_test

import (
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// TestKeySeen is the rule both stores apply to a key seen before; the
// conformance suite (storetest) checks each store's answers to it.
func TestKeySeen(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	soon, late := t0.Add(time.Minute), t0.Add(store.ReplayWindow)
	cases := []struct {
		name    string
		outcome audit.Outcome
		fp      string
		at      time.Time
		rule    store.KeyRule
		refusal store.Result
	}{
		{"in flight", audit.Reserved, "a", soon, store.KeyRefuse, store.KeyInUse},
		{"settled", audit.Settled, "a", soon, store.KeyReplay, 0},
		{"replayed", audit.Replayed, "a", soon, store.KeyReplay, 0},
		{"released", audit.Released, "a", soon, store.KeyAfresh, 0},
		{"unknown", audit.Unknown, "a", soon, store.KeyTakeover, 0},
		{"another request", audit.Settled, "b", soon, store.KeyRefuse, store.KeyReused},
		{"another request in flight", audit.Reserved, "b", soon, store.KeyRefuse, store.KeyReused},
		{"retried", audit.Retried, "a", soon, store.KeyCorrupt, 0},
		{"none", audit.None, "a", soon, store.KeyCorrupt, 0},
		// Forgotten comes first: whatever the outcome or fingerprint.
		{"forgotten, settled", audit.Settled, "a", late, store.KeyNew, 0},
		{"forgotten, in flight", audit.Reserved, "a", late, store.KeyNew, 0},
		{"forgotten, another request", audit.Settled, "b", late, store.KeyNew, 0},
		{"forgotten, retried", audit.Retried, "a", late, store.KeyNew, 0},
		{"a second short of forgotten", audit.Settled, "a", late.Add(-time.Second), store.KeyReplay, 0},
		{"a clock stepped back", audit.Settled, "a", t0.Add(-time.Hour), store.KeyReplay, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prev := &audit.Record{ID: 7, Time: t0, Outcome: c.outcome}
			rule, refusal := store.KeySeen(prev, "a", c.at, c.fp)
			if rule != c.rule || refusal != c.refusal {
				t.Errorf("KeySeen = %d, %d; want %d, %d", rule, refusal, c.rule, c.refusal)
			}
		})
	}
}
