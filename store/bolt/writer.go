package bolt

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/store"
)

// op is one write waiting for the writer goroutine.
type op struct {
	// apply does the operation in tx. It returns only internal errors
	// (corrupt data, overflow, I/O); outcomes a caller branches on are
	// left in the closure's variables. It may run more than once: once in
	// a batch that rolled back, once alone. It must therefore set every
	// result it reports on each run, and must read and check everything
	// before it writes anything, so that a refusal writes nothing.
	apply func(tx *bbolt.Tx) error
	state atomic.Uint32
	done  chan error // buffered: the writer never blocks on a caller that left
	// completes: the op only finishes a record (Complete, Resettle). A
	// batch of nothing else lingers for company.
	completes bool
}

// op states. The writer claims an op (queued -> claimed) before it applies
// it; a caller whose ctx ends cancels it (queued -> cancelled). Exactly one
// of the two wins.
const (
	opQueued uint32 = iota
	opClaimed
	opCancelled
)

// write queues apply for the writer and waits for it to be committed. If
// ctx ends while the op is still queued, the op is cancelled and never
// applied; once the writer has claimed it, write waits for the result, so
// a committed reservation is never reported as failed.
func (s *Store) write(ctx context.Context, apply func(tx *bbolt.Tx) error) error {
	return s.enqueue(ctx, &op{apply: apply, done: make(chan error, 1)})
}

// writeCompletion is write for an op that only finishes a record: the
// writer may hold it back for Options.Linger to commit it with the next op.
func (s *Store) writeCompletion(ctx context.Context, apply func(tx *bbolt.Tx) error) error {
	return s.enqueue(ctx, &op{apply: apply, done: make(chan error, 1), completes: true})
}

func (s *Store) enqueue(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	if s.readOnly {
		s.mu.RUnlock()
		return fmt.Errorf("%w: %s", store.ErrReadOnly, s.path)
	}
	select {
	case s.queue <- o:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opCancelled) {
			return ctx.Err()
		}
		return <-o.done
	}
}

// run is the writer goroutine. It takes the first queued op, drains every op
// already queued without waiting, and commits them in one transaction. A
// batch of completions only waits up to Options.Linger for one more op
// (then drains again); any other batch is committed at once.
func (s *Store) run() {
	defer close(s.done)
	batch := make([]*op, 0, maxBatch)
	var timer *time.Timer
	for first := range s.queue {
		batch = append(batch[:0], first)
		open := s.drain(&batch)
		if open && s.linger > 0 && len(batch) < maxBatch && onlyCompletions(batch) {
			s.lingers.Add(1)
			if timer == nil {
				timer = time.NewTimer(s.linger)
			} else {
				timer.Reset(s.linger)
			}
			select {
			case o, ok := <-s.queue:
				if ok {
					batch = append(batch, o)
					s.drain(&batch)
				}
			case <-timer.C:
			}
			timer.Stop()
		}
		s.commit(batch)
		clear(batch) // drop references to finished ops
	}
}

// drain appends every op already queued to batch, up to maxBatch, without
// waiting. It reports false when the queue is closed.
func (s *Store) drain(batch *[]*op) bool {
	for len(*batch) < maxBatch {
		select {
		case o, ok := <-s.queue:
			if !ok {
				return false
			}
			*batch = append(*batch, o)
		default:
			return true
		}
	}
	return true
}

func onlyCompletions(batch []*op) bool {
	for _, o := range batch {
		if !o.completes {
			return false
		}
	}
	return true
}

// failedOp says which op of a batch returned an error.
type failedOp struct{ err error }

func (f *failedOp) Error() string { return f.err.Error() }

// commit applies a batch in one transaction. If an op fails, the
// transaction rolls back and every op runs again alone, so only the failing
// caller sees its error (as bbolt's own Batch does).
func (s *Store) commit(batch []*op) {
	claimed := batch[:0]
	for _, o := range batch {
		if o.state.CompareAndSwap(opQueued, opClaimed) {
			claimed = append(claimed, o)
		}
	}
	if len(claimed) == 0 {
		return
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, o := range claimed {
			if err := o.apply(tx); err != nil {
				return &failedOp{err}
			}
		}
		s.fill.set(tx)
		return nil
	})
	var failed *failedOp
	if errors.As(err, &failed) && len(claimed) > 1 {
		for _, o := range claimed {
			err := s.db.Update(func(tx *bbolt.Tx) error {
				if err := o.apply(tx); err != nil {
					return err
				}
				s.fill.set(tx)
				return nil
			})
			s.commits.Add(1)
			s.applied.Add(1)
			o.done <- err
		}
		return
	}
	if failed != nil {
		err = failed.err
	}
	s.commits.Add(1)
	s.applied.Add(uint64(len(claimed)))
	for _, o := range claimed {
		o.done <- err
	}
}
