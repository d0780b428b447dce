package transport

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// DefaultBodyLimit is the largest request body Keybrake reads; larger
// bodies are refused. Vendor API calls are a few kilobytes.
const DefaultBodyLimit = 1 << 20

// Config is what every chain of one Brake shares.
type Config struct {
	Store store.Store // required
	// Policy returns the policy in force, or why none is. Called at least
	// once a call; it must be cheap (an atomic load).
	Policy func() (*policy.Policy, error) // required
	// PolicyChanged returns a channel that is closed when the policy
	// Policy returns is next replaced. With it, a call waiting on a lookup
	// is stopped as soon as a new policy refuses it (a revocation); nil:
	// such a call is decided again only once its lookup answers.
	PolicyChanged func() <-chan struct{}
	// Now is the clock; nil means time.Now. UTC days come from it.
	Now func() time.Time
	// BodyLimit bounds request bodies; zero means DefaultBodyLimit.
	BodyLimit int64
	// Report receives failures that no caller can be told of, such as a
	// completion that could not be written (its money stays counted).
	// nil drops them.
	Report func(error)
	// LastDay is the latest UTC day ("2006-01-02") already used, so a
	// clock that jumps backwards never reopens a closed day's budget.
	LastDay string
	// Observe sees the audit record of every refused call once it is
	// written (alerts). It must not block. nil: nothing observes.
	Observe func(*audit.Record)
}

// Env is the state shared by the chains of one Brake. It is safe for
// concurrent use. Close it after the last call.
type Env struct {
	store     store.Store
	policy    func() (*policy.Policy, error)
	changed   func() <-chan struct{}
	now       func() time.Time
	bodyLimit int64
	report    func(error)
	observe   func(*audit.Record)
	days      *dayClock
	completer *completer
	metadata  metadataCache
}

// NewEnv starts the shared state; it owns a goroutine until Close.
func NewEnv(cfg Config) *Env {
	e := &Env{
		store:     cfg.Store,
		policy:    cfg.Policy,
		changed:   cfg.PolicyChanged,
		now:       cfg.Now,
		bodyLimit: cfg.BodyLimit,
		report:    cfg.Report,
		observe:   cfg.Observe,
		days:      &dayClock{last: cfg.LastDay},
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.bodyLimit <= 0 {
		e.bodyLimit = DefaultBodyLimit
	}
	if e.report == nil {
		e.report = func(error) {}
	}
	if e.observe == nil {
		e.observe = func(*audit.Record) {}
	}
	e.completer = newCompleter(cfg.Store, e.report)
	return e
}

// Flush waits until every completion handed over before the call is
// written, so that a query sees the settled state of calls that answered.
func (e *Env) Flush(ctx context.Context) error { return e.completer.flush(ctx) }

// Close writes the completions still queued and stops. Calls made after
// Close are refused by the closed store.
func (e *Env) Close() error { return e.completer.close() }

// LastDay is the latest UTC day a call was counted on.
func (e *Env) LastDay() string { return e.days.latest() }

// writeTimeout bounds writes made on behalf of a caller that may have gone.
const writeTimeout = 10 * time.Second

// writeContext is for audit writes that must happen even when the caller
// has given up: the caller's values, not its cancellation.
func (e *Env) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
}

// dayClock turns instants into UTC days that never go backwards.
type dayClock struct {
	mu   sync.Mutex
	last string
}

func (d *dayClock) day(now time.Time) string {
	day := now.UTC().Format(time.DateOnly)
	d.mu.Lock()
	defer d.mu.Unlock()
	if day < d.last {
		return d.last
	}
	d.last = day
	return day
}

func (d *dayClock) latest() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// completer writes completions in the background so that a caller waits
// for one durable write per call, the reservation, and no more. Completions
// that queue up while a write is in progress are written together.
type completer struct {
	st     store.Store
	report func(error)

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*store.Completion
	queued  uint64 // completions ever enqueued
	written uint64 // completions ever finished (written or failed)
	closed  bool
	done    chan struct{}
}

// completerQueue bounds the completions waiting; past it callers write
// their own, which slows them instead of losing anything.
const completerQueue = 4096

func newCompleter(st store.Store, report func(error)) *completer {
	c := &completer{st: st, report: report, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go c.run()
	return c
}

func (c *completer) enqueue(sc *store.Completion) {
	c.mu.Lock()
	if c.closed || len(c.queue) >= completerQueue {
		c.mu.Unlock()
		c.write([]*store.Completion{sc})
		return
	}
	c.queue = append(c.queue, sc)
	c.queued++
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *completer) run() {
	defer close(c.done)
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.queue) == 0 && c.closed {
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()

		c.write(batch)

		c.mu.Lock()
		c.written += uint64(len(batch))
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// write hands a batch to the store concurrently, so that a store with group
// commit writes it in one transaction.
func (c *completer) write(batch []*store.Completion) {
	var wg sync.WaitGroup
	for _, sc := range batch {
		wg.Add(1)
		go func(sc *store.Completion) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			defer cancel()
			if err := c.st.Complete(ctx, sc); err != nil {
				c.report(fmt.Errorf("keybrake: completion of call %d (%s) could not be written; its reservation stays counted: %w", sc.ID, sc.Outcome, err))
			}
		}(sc)
	}
	wg.Wait()
}

// flush waits until everything enqueued before it is written.
func (c *completer) flush(ctx context.Context) error {
	c.mu.Lock()
	target := c.queued
	c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.written < target {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.cond.Wait()
	}
	return nil
}

func (c *completer) close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	<-c.done
	return nil
}
