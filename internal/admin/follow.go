package admin

import (
	"context"
	"errors"
	"time"

	"github.com/keybrake/keybrake/audit"
)

// Querier is the part of a Source that Follow polls.
type Querier interface {
	Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error
}

// QueryFunc adapts a function to a Querier.
type QueryFunc func(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error

// Query calls f.
func (f QueryFunc) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	return f(ctx, q, fn)
}

// Lookback is how far before each poll Follow reads again: a record whose
// Time is older than that when it is written is not followed. A record's
// Time is when its call started, and a call may spend a while (vendor
// lookups, a refusal after a slow one) before its record is written.
//
// Every poll decodes every record of the Lookback again (the store can
// only be asked by time), some 10 to 30 microseconds each: at 100 calls a
// second, 6,000 records. Follow therefore waits at least four times as long
// as its last poll took before the next, so that a follower never takes
// more than about a fifth of a core from the agent.
const Lookback = time.Minute

// SettleWait is how long Follow holds back a record still Reserved, so that
// a call in flight is usually passed on with its outcome.
const SettleWait = 2 * time.Second

// errLimit ends a poll once q.Limit records were passed on.
var errLimit = errors.New("admin: follow limit reached")

// Follow calls fn for every record q selects and then for every selected
// record that appears later, once each, polling src every interval (200 ms
// when zero or less), or less often when a poll is slow (see Lookback). Each poll re-reads the Lookback before it and passes
// on only records not passed before; a record still Reserved is held back
// up to SettleWait (see the package doc). Records come oldest first within
// a poll.
//
// It returns ctx.Err() when ctx ends, the first error of src or fn, or nil
// once q.Limit records were passed on (0: no limit) or, with q.Until set,
// once no record before Until can appear any more. Memory is bounded by
// the records of the last Lookback.
func Follow(ctx context.Context, src Querier, q audit.Query, interval time.Duration, fn func(*audit.Record) error) error {
	return follow(ctx, src, q, interval, time.Now, fn, nil)
}

// follow is Follow with a clock and a hook called after every poll (the
// handler flushes its stream there).
func follow(ctx context.Context, src Querier, q audit.Query, interval time.Duration, now func() time.Time,
	fn func(*audit.Record) error, polled func() error) error {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	f := &follower{q: q, fn: fn, emitted: map[uint64]time.Time{}, held: map[uint64]heldRecord{}}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		start := time.Now()
		done, err := f.poll(ctx, src, now())
		if err == nil && polled != nil {
			err = polled()
		}
		if done || err != nil {
			return err
		}
		t.Reset(max(interval, 4*time.Since(start)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

type heldRecord struct {
	firstSeen time.Time // by the poll clock
	at        time.Time // the record's Time
}

// follower is the state of one Follow.
type follower struct {
	q       audit.Query
	fn      func(*audit.Record) error
	since   time.Time // where the next poll reads from; zero before the first
	polled  bool
	sent    int
	emitted map[uint64]time.Time // records passed on, with their Time, down to since
	held    map[uint64]heldRecord
}

// poll reads once and passes on what is new. done reports that nothing
// more will be passed on.
func (f *follower) poll(ctx context.Context, src Querier, now time.Time) (done bool, err error) {
	pq := f.q
	pq.Limit = 0
	if f.polled && f.since.After(pq.Since) {
		pq.Since = f.since
	}
	seen := make(map[uint64]bool, len(f.held))
	err = src.Query(ctx, pq, func(r *audit.Record) error {
		if _, ok := f.emitted[r.ID]; ok {
			return nil
		}
		if r.Outcome == audit.Reserved {
			h, ok := f.held[r.ID]
			if !ok {
				h = heldRecord{firstSeen: now, at: r.Time}
				f.held[r.ID] = h
			}
			if now.Sub(h.firstSeen) < SettleWait {
				seen[r.ID] = true
				return nil
			}
		}
		delete(f.held, r.ID)
		f.emitted[r.ID] = r.Time
		if err := f.fn(r); err != nil {
			return err
		}
		f.sent++
		if f.q.Limit > 0 && f.sent >= f.q.Limit {
			return errLimit
		}
		return nil
	})
	if errors.Is(err, errLimit) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	f.polled = true

	// A held record the store no longer returns (pruned, say) must not
	// pin the window.
	for id := range f.held {
		if !seen[id] {
			delete(f.held, id)
		}
	}
	// The next poll must see every record written from now on: those
	// whose Time is at most Lookback before now, and the held ones.
	since := now.Add(-Lookback)
	for _, h := range f.held {
		if h.at.Before(since) {
			since = h.at
		}
	}
	if since.After(f.since) {
		f.since = since
	}
	for id, at := range f.emitted {
		if at.Before(f.since) {
			delete(f.emitted, id)
		}
	}
	if !f.q.Until.IsZero() && !f.since.Before(f.q.Until) && len(f.held) == 0 {
		return true, nil
	}
	return false, nil
}
