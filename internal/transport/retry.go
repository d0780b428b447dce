package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keybrake/keybrake/store"
)

// A completion the store could not write (the database unreachable, a
// write that timed out) is not given up: it is written again, with
// growing pauses, until it lands. Meanwhile its record stays Reserved and
// its money counted against every limit, so nothing is lost and nothing is
// spent twice; once it lands the counters say what moved. What cannot
// pass by waiting (the record is no longer Reserved, the store is closed
// or refuses the arguments) is reported once and not retried.
//
// The completions kept are bounded (retryKept). Past the bound a failed
// completion is reported and left: its record stays Reserved, still
// counted, until the store's recovery turns it Unknown (store/postgres,
// when the session ends) or a person reconciles it. Close makes one last
// attempt and reports what is left the same way.

const (
	retryFirst = 100 * time.Millisecond
	retryLast  = 5 * time.Second
)

// retryKept bounds the completions waiting to be written again; a var for
// the test of the bound.
var retryKept = 10000

type retrier struct {
	st     store.Store
	report func(error)

	mu      sync.Mutex
	pending []*store.Completion

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newRetrier(st store.Store, report func(error)) *retrier {
	r := &retrier{st: st, report: report, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// permanent reports whether writing a completion again cannot succeed.
func permanent(err error) bool {
	return errors.Is(err, store.ErrNotReserved) || errors.Is(err, store.ErrNotFound) ||
		errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrReadOnly)
}

// failed takes a completion the store did not write with err.
func (r *retrier) failed(sc *store.Completion, err error) {
	if permanent(err) {
		r.report(&Failure{Op: "completion_write", Record: sc.ID,
			Err: fmt.Errorf("keybrake: completion of call %d (%s) could not be written; its reservation stays counted: %w", sc.ID, sc.Outcome, err)})
		return
	}
	r.mu.Lock()
	if len(r.pending) >= retryKept {
		n := len(r.pending)
		r.mu.Unlock()
		r.report(&Failure{Op: "completion_write", Record: sc.ID,
			Err: fmt.Errorf("keybrake: completion of call %d (%s) could not be written, and %d more wait to be written again, the most kept; "+
				"this one is not kept: its record stays reserved and its money counted until it is recovered or reconciled: %w", sc.ID, sc.Outcome, n, err)})
		return
	}
	r.pending = append(r.pending, sc)
	r.mu.Unlock()
	r.report(&Failure{Op: "completion_write", Record: sc.ID,
		Err: fmt.Errorf("keybrake: completion of call %d (%s) could not be written; it is written again until it lands, its reservation counted meanwhile: %w", sc.ID, sc.Outcome, err)})
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *retrier) run() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
		}
		for wait := retryFirst; ; wait = min(2*wait, retryLast) {
			t := time.NewTimer(wait)
			select {
			case <-r.stop:
				t.Stop()
				return
			case <-t.C:
			}
			if r.attempt() {
				break
			}
		}
	}
}

// attempt writes every pending completion once and reports whether none
// is left.
func (r *retrier) attempt() bool {
	r.mu.Lock()
	batch := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		left   []*store.Completion
		landed int
	)
	sem := make(chan struct{}, 64) // concurrent, so that a group-committing store batches them
	for _, sc := range batch {
		wg.Add(1)
		sem <- struct{}{}
		go func(sc *store.Completion) {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			defer cancel()
			err := r.st.Complete(ctx, sc)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				landed++
			case permanent(err):
				r.report(&Failure{Op: "completion_retry", Record: sc.ID,
					Err: fmt.Errorf("keybrake: completion of call %d (%s), written again, cannot be written; its reservation stays counted: %w", sc.ID, sc.Outcome, err)})
			default:
				left = append(left, sc)
			}
		}(sc)
	}
	wg.Wait()
	if landed > 0 {
		r.report(&Failure{Op: "completions_written", Recovered: len(left) == 0,
			Err: fmt.Errorf("keybrake: %d completions the store had failed to write are written now; %d still wait", landed, len(left))})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(left, r.pending...)
	return len(r.pending) == 0
}

// close stops retrying after one last attempt, and reports what is left.
func (r *retrier) close() {
	close(r.stop)
	<-r.done
	if r.attempt() {
		return
	}
	r.mu.Lock()
	n := len(r.pending)
	r.mu.Unlock()
	r.report(&Failure{Op: "completions_left",
		Err: fmt.Errorf("keybrake: closing with %d completions the store could not write; their records stay reserved and their money counted until they are recovered or reconciled", n)})
}
