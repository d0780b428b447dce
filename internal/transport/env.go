package transport

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/approval"
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
	// LastDay is the latest day ("2006-01-02", in the policy's time
	// zone) already used, so a clock that jumps backwards never reopens
	// a closed day's budget.
	LastDay string
	// Observe sees the audit record of every refused call once it is
	// written (alerts). It must not block. nil: nothing observes.
	Observe func(*audit.Record)
	// Metrics sees every call's decision latency, store writes, money and
	// final record (metrics.go). nil: nothing is measured.
	Metrics Metrics
	// Tracer starts one span per call, ended with its final record
	// (trace.go). nil: no spans, and a call's requests carry the caller's
	// context unchanged.
	Tracer trace.Tracer
	// Trip halts an agent whose rate limit with halt: true refused a
	// call (trip.go): rule names the limit, reason says what it refused.
	// It must stop the agent's next calls before it returns. nil: a
	// rate limit's halt does nothing beyond its refusals.
	Trip func(agent, rule, reason string)
	// Level is told, once per counter and level, that a reservation took
	// a limit with alert_at to pct percent of its Max (levels.go); used
	// is the counter's total then. nil: alert levels are not watched.
	Level func(agent, vendor string, l policy.Limit, pct, used int64)
	// Opened is told of every approval request a held call opens
	// (approve.go), once however often the call is retried. nil: nobody
	// is told.
	Opened func(a *approval.Approval)
	// Shadow returns the shadow policy in force (shadow.go), with the
	// same stops as the real one; nil, or a nil func: none.
	Shadow func() *policy.Policy
}

// Env is the state shared by the chains of one Brake. It is safe for
// concurrent use. Drain it, then Close it, before closing the store.
type Env struct {
	store     store.Store
	policy    func() (*policy.Policy, error)
	changed   func() <-chan struct{}
	now       func() time.Time
	bodyLimit int64
	report    func(error)
	observe   func(*audit.Record)
	metrics   Metrics      // never nil
	tracer    trace.Tracer // nil: no spans
	tripper   func(agent, rule, reason string)
	levels    *levels // nil without Config.Level
	approvals *approval.Book
	opened    func(*approval.Approval)
	shadow    func() *policy.Policy // nil: no shadow policy
	days      *dayClock
	completer *completer
	metadata  metadataCache
	gate      gate
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
		tracer:    cfg.Tracer,
		tripper:   cfg.Trip,
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
	// metrics: timed store writes (transport/metrics.go).
	e.metrics = noMetrics{}
	if cfg.Metrics != nil {
		e.metrics = cfg.Metrics
		e.store = timedStore{Store: cfg.Store, m: cfg.Metrics}
	}
	e.completer = newCompleter(e.store, e.report)
	e.approvals = approval.NewBook(e.store, e.now)
	e.opened = cfg.Opened
	e.shadow = cfg.Shadow
	if cfg.Level != nil {
		e.levels = newLevels(e, cfg.Level)
	}
	e.gate.cond = sync.NewCond(&e.gate.mu)
	return e
}

// Flush waits until every completion handed over before the call is
// written, so that a query sees the settled state of calls that answered.
func (e *Env) Flush(ctx context.Context) error { return e.completer.flush(ctx) }

// Drain stops admitting calls and waits, until ctx is done, for the calls
// in flight to finish and write their records: refusals, and completions,
// which for a response the caller is still reading come once it reads the
// body to its end or closes it. A call arriving from then on is refused
// with 503 (code keybrake_closing), and its record is written while Close
// has not closed the store. At ctx's end Drain returns an error saying how
// many calls were still in flight, wrapping ctx.Err(); their reservations
// stay counted. It is safe to call more than once and concurrently.
func (e *Env) Drain(ctx context.Context) error {
	if n, err := e.gate.drain(ctx); err != nil {
		calls := "calls"
		if n == 1 {
			calls = "call"
		}
		return fmt.Errorf("keybrake: %d %s still in flight when the Brake closed; their money stays counted: %w", n, calls, err)
	}
	return e.completer.flush(ctx)
}

// Close writes the completions still queued and stops. Call Drain first:
// a call still in flight after Close finds the store closed, and its
// completion is reported instead of written (its money stays counted).
func (e *Env) Close() error {
	e.levels.close()
	return e.completer.close()
}

// admit is the first stage of every call: it counts the call in flight,
// or refuses it once Drain has begun, closing the body it will not read.
// Whatever ends the call (its refusal, or the hand-over of its completion)
// calls c.done.
func (t *RoundTripper) admit(c *call) (policy.Verdict, bool) {
	done, ok := t.env.gate.enter()
	c.done = done
	if !ok {
		if c.req.Body != nil {
			c.req.Body.Close()
		}
		return policy.Verdict{Decision: policy.Error, Rule: "brake", Code: "keybrake_closing",
			Reason: "the Brake is closing; no new calls are admitted"}, false
	}
	return policy.Verdict{}, true
}

// LastDay is the latest day a call was counted on, in the policy's time
// zone.
func (e *Env) LastDay() string { return e.days.latest() }

// writeTimeout bounds writes made on behalf of a caller that may have
// gone, and the wait for a reservation; a var for tests of the bound.
var writeTimeout = 10 * time.Second

// writeContext is for audit writes that must happen even when the caller
// has given up: the caller's values, not its cancellation.
func (e *Env) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
}

// dayClock turns instants into days of the policy's time zone that never
// go backwards.
type dayClock struct {
	mu   sync.Mutex
	last string
}

func (d *dayClock) day(now time.Time, zone *time.Location) string {
	day := now.In(zone).Format(time.DateOnly)
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
	retry   *retrier // completions the store failed to write (retry.go)
}

// completerQueue bounds the completions waiting; past it callers write
// their own, which slows them instead of losing anything.
const completerQueue = 4096

func newCompleter(st store.Store, report func(error)) *completer {
	c := &completer{st: st, report: report, done: make(chan struct{}), retry: newRetrier(st, report)}
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
				c.retry.failed(sc, err)
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
	c.retry.close()
	return nil
}

// gate admits calls until Drain and counts those inside, so that Drain
// waits for exactly the calls admitted before it. A call refused while the
// admitted ones finish is counted too, until its record is written; once
// they have finished, refusals are no longer counted, so that a stream of
// them cannot hold Drain forever.
type gate struct {
	mu       sync.Mutex
	cond     *sync.Cond
	phase    phase
	calls    int // admitted and not yet done
	refusals int // refused while draining, record not yet written
}

type phase int

const (
	admitting phase = iota
	draining        // refusing, and waiting for the admitted calls
	drained         // refusing, waiting for nothing
)

func (g *gate) enter() (done func(), ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.phase {
	case admitting:
		g.calls++
		return sync.OnceFunc(func() { g.leave(&g.calls) }), true
	case draining:
		g.refusals++
		return sync.OnceFunc(func() { g.leave(&g.refusals) }), false
	}
	return func() {}, false
}

func (g *gate) leave(n *int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	*n--
	if *n == 0 {
		g.cond.Broadcast()
	}
}

// drain stops admitting and waits for the admitted calls, then for the
// refusals counted meanwhile. It returns the calls still in flight at
// ctx's end.
func (g *gate) drain(ctx context.Context) (int, error) {
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.phase == admitting {
		g.phase = draining
	}
	for g.calls > 0 {
		if err := ctx.Err(); err != nil {
			g.phase = drained
			return g.calls, err
		}
		g.cond.Wait()
	}
	g.phase = drained
	for g.refusals > 0 {
		if err := ctx.Err(); err != nil {
			return g.refusals, err
		}
		g.cond.Wait()
	}
	return 0, nil
}
