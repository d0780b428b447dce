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

// SettleWait is how long Follow holds back a record still Reserved, so that
// a call in flight is usually passed on with its outcome.
const SettleWait = 2 * time.Second

// Lookback is how long after Until Follow keeps following: a record's Time
// is when its call started, and a call may spend a while (vendor lookups, a
// refusal after a slow one) before its record is written, so a record with
// a Time before Until can still appear that long after it.
const Lookback = time.Minute

// errLimit and errHeld end a poll early: q.Limit records were passed on,
// or a record in flight holds back the ones after it.
var (
	errLimit = errors.New("admin: follow limit reached")
	errHeld  = errors.New("admin: a record in flight holds back the rest")
)

// Follow calls fn for every record q selects and then for every selected
// record that appears later, once each and in the order the store wrote
// them (ID order), polling src every interval (200 ms when zero or less),
// or less often when a poll is slow.
//
// The first poll asks for what q selects, in ID order (audit.Query.ByID);
// every later one asks only for the records after the last one passed on
// (audit.Query.After), so a poll
// costs in proportion to what is new, nothing is read twice and nothing
// is missed, however late a record is written after its Time. A record
// still Reserved is held back, with every record after it, until it
// finishes or SettleWait has passed since Follow first saw it (then it is
// passed on as reserved, and not again when it settles): records stay in
// ID order, so the last ID passed on is an exact place to resume (see
// Resume).
//
// It returns ctx.Err() when ctx ends, the first error of src or fn, or nil
// once q.Limit records were passed on (0: no limit) or, with q.Until set,
// once Lookback has passed since Until and nothing is held back. Memory
// does not grow with the log.
func Follow(ctx context.Context, src Querier, q audit.Query, interval time.Duration, fn func(*audit.Record) error) error {
	return follow(ctx, src, q, interval, time.Now, fn, nil)
}

// Resume is the query that goes on where a Follow of q left off, once
// last (the ID of the last record it passed on, 0 for none) is known: to
// follow another source of the same log without a gap or a repeat.
func Resume(q audit.Query, last uint64) audit.Query {
	if last > q.After {
		q.After = last
	}
	return q
}

// follow is Follow with a clock and a hook called after every poll (the
// handler flushes its stream there).
func follow(ctx context.Context, src Querier, q audit.Query, interval time.Duration, now func() time.Time,
	fn func(*audit.Record) error, polled func() error) error {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	f := &follower{q: q, fn: fn}
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
		// A slow poll (a busy store) makes the next wait longer, so a
		// follower never takes more than about a fifth of a core.
		t.Reset(max(interval, 4*time.Since(start)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// follower is the state of one Follow.
type follower struct {
	q    audit.Query
	fn   func(*audit.Record) error
	last uint64 // the ID of the last record passed on
	sent int
	// held is the record in flight that holds back the rest, and when
	// Follow first saw it in flight (by the poll clock).
	held      uint64
	heldSince time.Time
}

// poll reads what is new and passes it on. done reports that nothing more
// will be passed on.
func (f *follower) poll(ctx context.Context, src Querier, now time.Time) (done bool, err error) {
	pq := Resume(f.q, f.last)
	pq.Limit, pq.ByID = 0, true
	held := false
	err = src.Query(ctx, pq, func(r *audit.Record) error {
		if r.Outcome == audit.Reserved {
			if f.held != r.ID {
				f.held, f.heldSince = r.ID, now
			}
			if now.Sub(f.heldSince) < SettleWait {
				held = true
				return errHeld
			}
		}
		f.held = 0
		f.last = r.ID
		if err := f.fn(r); err != nil {
			return err
		}
		f.sent++
		if f.q.Limit > 0 && f.sent >= f.q.Limit {
			return errLimit
		}
		return nil
	})
	switch {
	case errors.Is(err, errLimit):
		return true, nil
	case errors.Is(err, errHeld):
	case err != nil:
		return false, err
	}
	if !held {
		f.held = 0
	}
	if !f.q.Until.IsZero() && !held && !now.Before(f.q.Until.Add(Lookback)) {
		return true, nil
	}
	return false, nil
}
