package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/replay"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store/bolt"
)

// TestReplayReproducesTheDemo: replaying each run's own policy on its
// database decides every call as recorded, 8 refunds at a time included;
// replaying the velocity policy on the cap-only run stops what the trip
// stopped, from the 21st refund.
func TestReplayReproducesTheDemo(t *testing.T) {
	dir := t.TempDir()
	l := loop{attempts: 200, workers: 8, amount: 1000, cohort: 300}
	capped, err := l.run("the daily cap alone", filepath.Join(dir, "cap"), capOnly)
	if err != nil {
		t.Fatal(err)
	}
	tripped, err := l.run("the cap and a velocity limit", filepath.Join(dir, "velocity"), withVelocity)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []*outcome{capped, tripped} {
		p, err := policy.Load(run.policyFile)
		if err != nil {
			t.Fatal(err)
		}
		a := only(t, replay.Replay(p, records(t, run.db), time.Time{}))
		if len(a.Changed) != 0 || len(a.Reruled) != 0 || len(a.Uncertain) != 0 {
			t.Errorf("%s: %d changed, %d by another rule, %d uncertain; first changed %+v", run.db, len(a.Changed), len(a.Reruled), len(a.Uncertain), a.Changed)
		}
		if a.Replayed+total(a.NotReplayed) != l.attempts {
			t.Errorf("%s: %d replayed and %v not, want %d calls", run.db, a.Replayed, a.NotReplayed, l.attempts)
		}
	}

	p, err := policy.Load(tripped.policyFile)
	if err != nil {
		t.Fatal(err)
	}
	a := only(t, replay.Replay(p, records(t, capped.db), time.Time{}))
	if a.FirstCapped == nil || a.FirstCapped.To.Rule != "agents.refund-bot.stripe.rate[0]" {
		t.Fatalf("first capped %+v, want the velocity limit", a.FirstCapped)
	}
	// The cap let 50 refunds of 10.00 through, the trip 20.
	if len(a.Stopped) != 1 || a.Stopped[0].String() != "300.00 USD" {
		t.Fatalf("stopped %v, want 300.00 USD", a.Stopped)
	}
}

func only(t *testing.T, rep *replay.Report) *replay.Agent {
	t.Helper()
	if len(rep.Agents) != 1 || rep.Agents[0].Name != "refund-bot" {
		t.Fatalf("agents %+v, want refund-bot alone", rep.Agents)
	}
	return rep.Agents[0]
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func records(t *testing.T, db string) []*audit.Record {
	t.Helper()
	st, err := bolt.Open(db, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []*audit.Record
	if err := st.Query(context.Background(), audit.Query{ByID: true}, func(r *audit.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
