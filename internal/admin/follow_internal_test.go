package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
)

// memLog is an audit log in memory that answers queries as a store does:
// by Time, then ID, or by ID (q.InIDOrder). It counts the records each
// query reads.
type memLog struct {
	mu    sync.Mutex
	recs  map[uint64]audit.Record
	next  uint64
	reads int
}

func (m *memLog) add(at time.Time, agent string, o audit.Outcome) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs == nil {
		m.recs = map[uint64]audit.Record{}
	}
	m.next++
	m.recs[m.next] = audit.Record{ID: m.next, Time: at, Agent: agent, Decision: policy.Allowed, Outcome: o}
	return m.next
}

func (m *memLog) set(id uint64, o audit.Outcome) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.recs[id]
	r.Outcome = o
	m.recs[id] = r
}

func (m *memLog) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	m.mu.Lock()
	var out []audit.Record
	for _, r := range m.recs {
		if q.Match(&r) {
			out = append(out, r)
		}
	}
	m.reads += len(out)
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !q.InIDOrder() && !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID < out[j].ID
	})
	for i := range out {
		if q.Limit > 0 && i == q.Limit {
			break
		}
		if err := fn(&out[i]); err != nil {
			return err
		}
	}
	return nil
}

// passed records what a follower passes on.
type passed []string

func (p *passed) fn(r *audit.Record) error {
	*p = append(*p, fmt.Sprintf("%d %s", r.ID, r.Outcome))
	return nil
}

func (p *passed) take() []string {
	out := *p
	*p = nil
	return out
}

func TestFollower(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	log := &memLog{}
	var got passed
	f := &follower{q: audit.Query{Agent: "a"}, fn: got.fn}
	poll := func(now time.Time, want ...string) {
		t.Helper()
		done, err := f.poll(context.Background(), log, now)
		if err != nil || done {
			t.Fatalf("poll = %v, %v", done, err)
		}
		if g := got.take(); fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("at %v passed %q, want %q", now.Sub(t0), g, want)
		}
	}

	log.add(t0.Add(-time.Second), "a", audit.None)  // 1
	log.add(t0.Add(-time.Hour), "a", audit.Settled) // 2: an older call, written later
	log.add(t0.Add(-time.Second), "b", audit.None)  // 3: another agent
	log.add(t0, "a", audit.Reserved)                // 4: in flight
	log.add(t0, "a", audit.None)                    // 5: held back behind 4
	poll(t0, "1 none", "2 settled")                 // in the order written
	poll(t0.Add(200 * time.Millisecond))            // nothing new, nothing again
	log.set(4, audit.Settled)                       // settles
	log.add(t0.Add(-time.Hour), "a", audit.None)    // 6: written an hour after its call started
	poll(t0.Add(400*time.Millisecond), "4 settled", "5 none", "6 none")
	log.add(t0.Add(time.Second), "a", audit.Reserved) // 7: stays in flight
	poll(t0.Add(time.Second))
	poll(t0.Add(time.Second + SettleWait - time.Millisecond))
	poll(t0.Add(time.Second+SettleWait), "7 reserved") // passed on as it is
	log.set(7, audit.Settled)
	poll(t0.Add(4 * time.Second)) // and not again

	// A poll reads only what is new: nothing of the log before it.
	log.add(t0.Add(5*time.Second), "a", audit.None) // 8
	log.reads = 0
	poll(t0.Add(5*time.Second), "8 none")
	poll(t0.Add(6 * time.Second))
	if log.reads != 1 {
		t.Errorf("two polls read %d records; only record 8 is new", log.reads)
	}
	if f.last != 8 || f.held != 0 {
		t.Errorf("follower stands at %d, holding %d", f.last, f.held)
	}

	// Resuming elsewhere after the last ID passed on: no gap, no repeat.
	log.add(t0.Add(7*time.Second), "a", audit.None) // 9
	g := &follower{q: Resume(audit.Query{Agent: "a"}, f.last), fn: got.fn}
	if _, err := g.poll(context.Background(), log, t0.Add(7*time.Second)); err != nil {
		t.Fatal(err)
	}
	if p := got.take(); fmt.Sprint(p) != "[9 none]" {
		t.Errorf("resumed after 8: passed %q", p)
	}
}

func TestFollowerLimitAndUntil(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	log := &memLog{}
	for i := range 5 {
		log.add(t0.Add(time.Duration(i)*time.Second), "a", audit.None)
	}
	var got passed
	f := &follower{q: audit.Query{Limit: 3}, fn: got.fn}
	done, err := f.poll(context.Background(), log, t0)
	if !done || err != nil || len(got) != 3 {
		t.Errorf("limit 3: done %v, %v, passed %q", done, err, got)
	}

	got = nil
	f = &follower{q: audit.Query{Until: t0.Add(3 * time.Second)}, fn: got.fn}
	for _, at := range []time.Duration{0, time.Minute, Lookback + 2*time.Second} {
		if done, err := f.poll(context.Background(), log, t0.Add(at)); done || err != nil {
			t.Fatalf("at %v: done %v, %v", at, done, err)
		}
	}
	// Until is now more than Lookback ago: nothing before it can appear.
	if done, err := f.poll(context.Background(), log, t0.Add(Lookback+3*time.Second)); !done || err != nil {
		t.Errorf("after Until: done %v, %v", done, err)
	}
	if len(got) != 3 {
		t.Errorf("until: passed %q", got)
	}
}

func TestFollowEnds(t *testing.T) {
	log := &memLog{}
	log.add(time.Now(), "a", audit.None)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := Follow(ctx, log, audit.Query{}, time.Millisecond, func(*audit.Record) error {
		n++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("Follow after cancel = %v, %d records", err, n)
	}
	boom := errors.New("boom")
	log.add(time.Now(), "a", audit.None)
	if err := Follow(context.Background(), log, audit.Query{}, 0, func(*audit.Record) error { return boom }); err != boom {
		t.Errorf("Follow with a failing fn = %v", err)
	}
	failing := QueryFunc(func(context.Context, audit.Query, func(*audit.Record) error) error { return boom })
	if err := Follow(context.Background(), failing, audit.Query{}, 0, nil); err != boom {
		t.Errorf("Follow of a failing source = %v", err)
	}
}
