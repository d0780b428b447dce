package notify

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
)

// Alert is one message to a person: an event and how often it happened in
// the span it covers.
//
// A burst is the run of occurrences of one key (Kind, Agent, Vendor, Rule)
// with no gap as long as the Dispatcher's Window. Its first alert has Count
// 1 and Total 1; later alerts report the occurrences since the previous one
// (Count, from Since) and since the burst began (Total, from First); the
// last one has Final set.
type Alert struct {
	// Kind is the decision ("capped", "revoked", "blocked", "scoped",
	// "error") or the event ("policy_invalid").
	Kind   string
	Agent  string
	Vendor string
	Rule   string
	Code   string // the first occurrence's code
	Reason string // the first occurrence's reason, for a person

	Count int64 // occurrences this alert reports: 1 for the first, 0 or more for a Final one
	Total int64 // occurrences since the burst began

	// First and Last are the records' own Time (the Dispatcher's clock for
	// a record without one), so they match the audit log.
	First time.Time // the burst's first occurrence
	Last  time.Time // its latest occurrence so far
	Since time.Time // where the span Count covers begins: First, or the time of the burst's previous alert

	// Dropped counts records of any key that were not counted because the
	// queue (or the table of keys) was full, since the previous alert of
	// any key. The audit log still has them.
	Dropped int64

	// Final marks the burst's last alert: a whole Window passed with no
	// occurrence, or the Dispatcher is closing. A burst of one occurrence
	// has no Final alert; its first alert said everything.
	Final bool
}

// Notifier delivers alerts. Notify must honour ctx: return promptly, with
// an error, once it is done. A Dispatcher calls Notify from several
// goroutines at once (never for the same key at once).
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, a Alert) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, a Alert) error { return f(ctx, a) }

// DefaultEvents are the events that alert when Options.Events is nil: a
// policy that failed to load, which either refuses every call or keeps
// running on rules someone tried to change; an agent halted by its own
// rate limit (a trip), which waits for a person; a cap reaching one of
// its alert_at levels; and a held call asking for a person's approval.
var DefaultEvents = []string{"policy_invalid", "trip", "alert", "approval"}

// Options configures a Dispatcher. Zero fields mean the defaults given.
type Options struct {
	// Window groups occurrences of a key. A burst ends when no occurrence
	// comes for a whole Window; while it lasts, an alert reports the count
	// at the end of each window in which any occurred (held back up to half
	// a Window when the key went quiet, see the package doc). Zero means 1
	// minute.
	Window time.Duration

	// MaxWindow bounds how far the window grows: each window that reports
	// occurrences is followed by one twice as long, so that an agent stuck
	// all night posts a dozen messages, not five hundred. The burst still
	// ends after a single quiet Window. Zero means 1 hour; a value below
	// Window means Window (no growth).
	MaxWindow time.Duration

	// Queue is the number of records Offer can hold before it drops them.
	// Zero means 1024.
	Queue int

	// Concurrency is the number of deliveries in flight at once, across
	// keys; alerts of one key are delivered one at a time, in order. Zero
	// means 4.
	Concurrency int

	// Timeout bounds each delivery attempt. Zero means 5 s.
	Timeout time.Duration

	// RetryDelay is the wait before the one retry of a failed delivery.
	// Zero means 1 s; negative means failed deliveries are not retried.
	RetryDelay time.Duration

	// Events lists the record events (audit.Record.Event) that alert. nil
	// means DefaultEvents; an empty non-nil slice means none.
	Events []string

	// Report receives each delivery that failed for good (after its
	// retry). It may be called from several goroutines at once and must
	// not block for long. nil drops the errors; Stats still counts them.
	Report func(error)

	// Now is the clock; nil means time.Now. Tests use a fake clock.
	Now func() time.Time
}

// Stats are a Dispatcher's counters since it started. They are a snapshot
// taken without stopping the Dispatcher, exact once Close has returned.
type Stats struct {
	Offered   int64 // records that alert, handed to Offer (queued, counted or dropped)
	Dropped   int64 // of those, dropped: the queue or the key table was full, or the Dispatcher was closed
	Alerts    int64 // alerts formed
	Delivered int64 // alerts the Notifier accepted
	Failed    int64 // alerts not delivered: failed after the retry, or abandoned by Close
	Retried   int64 // failed first attempts that were tried again
}

// Dispatcher groups records into alerts and delivers them in the
// background: the first occurrence of a key at once, then one alert per
// window with the count, then a final one. It never blocks its caller.
//
// Create one with NewDispatcher; the zero value is not usable, but a nil
// *Dispatcher ignores every record. All methods are safe for concurrent
// use. Close it to deliver what is pending and stop its goroutines.
type Dispatcher struct {
	n    Notifier
	opts Options

	events map[string]bool
	queue  chan occurrence

	closed atomic.Bool

	// The counters written on every record are kept off the cache line
	// Offer reads (queue, closed, events) and off each other's: a storm
	// writes dropped from every caller and received from the loop.
	_        [64]byte
	dropped  atomic.Int64
	_        [56]byte
	received atomic.Int64 // records taken off the queue by the loop
	_        [56]byte
	stats    struct {
		alerts, delivered, failed, retried atomic.Int64
	}

	closeOnce sync.Once
	closeReq  chan closeRequest
	syncReq   chan syncRequest   // tests: drain and flush at the clock
	pause     chan chan struct{} // tests: hold the loop until the channel is closed
	results   chan result
	done      chan struct{}

	// cancel stops deliveries in flight once Close's context is done.
	cancel context.CancelFunc

	maxKeys int
}

// occurrence is what the loop needs of one record. It is copied out of the
// record so the caller keeps its record and the queue holds no pointers
// into it.
type occurrence struct {
	key
	code, reason string
	at           time.Time // the record's Time, for the alert's First and Last; zero if it had none
}

// key identifies a burst.
type key struct {
	kind, agent, vendor, rule string
}

// syncRequest asks the loop to take what is queued and flush at the clock
// now; ack is closed then, or once no delivery is pending if idle is set.
type syncRequest struct {
	ack  chan struct{}
	idle bool
}

type closeRequest struct {
	ctx  context.Context
	done chan error
}

// maxKeys bounds the table of keys; a record of a new key beyond it is
// dropped (and counted) instead of growing memory without end. Keys are
// agents × rules × kinds, so a real deployment stays far below it.
const maxKeys = 4096

// NewDispatcher returns a Dispatcher delivering to n and starts its
// goroutine. Deliveries run on goroutines of their own, at most
// Options.Concurrency at once.
func NewDispatcher(n Notifier, opts Options) *Dispatcher {
	return newDispatcher(n, opts, maxKeys)
}

func newDispatcher(n Notifier, opts Options, keys int) *Dispatcher {
	if opts.Window <= 0 {
		opts.Window = time.Minute
	}
	if opts.MaxWindow == 0 {
		opts.MaxWindow = time.Hour
	}
	if opts.MaxWindow < opts.Window {
		opts.MaxWindow = opts.Window
	}
	if opts.Queue <= 0 {
		opts.Queue = 1024
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Events == nil {
		opts.Events = DefaultEvents
	}
	d := &Dispatcher{
		n:        n,
		opts:     opts,
		events:   make(map[string]bool, len(opts.Events)),
		queue:    make(chan occurrence, opts.Queue),
		closeReq: make(chan closeRequest),
		syncReq:  make(chan syncRequest),
		pause:    make(chan chan struct{}),
		// Room for every delivery in flight, so a finishing delivery never
		// waits for the loop.
		results: make(chan result, opts.Concurrency),
		done:    make(chan struct{}),
		maxKeys: keys,
	}
	for _, e := range opts.Events {
		d.events[e] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	l := &loop{d: d, lanes: map[key]*lane{}}
	go l.run(ctx)
	return d
}

// Offer hands a record over without blocking: it copies what an alert
// needs and returns at once. Records with Decision "allowed", records with
// neither a decision nor an event, and events not in Options.Events are
// ignored. A full queue, or a closed Dispatcher, drops the record and
// counts it (Stats.Dropped, Alert.Dropped). Offer does not keep r.
//
// The record's Time is what alerts show as First and Last, so that they
// match the audit log to the nanosecond; grouping into windows goes by the
// Dispatcher's clock when the record is taken off the queue, so a record
// with a wrong or missing Time is still grouped right. Offer reads no
// clock: on the call path it costs a channel send.
func (d *Dispatcher) Offer(r *audit.Record) {
	if d == nil || r == nil {
		return
	}
	var kind string
	switch {
	case r.Event != "":
		if !d.events[r.Event] {
			return
		}
		kind = r.Event
	case r.Decision == policy.Allowed || r.Decision == "" || r.Decision == policy.Held:
		// A held call is expected; its alert is the "approval" event its
		// approval request raises, once however often it is retried.
		return
	default:
		kind = string(r.Decision)
	}
	if d.closed.Load() {
		d.dropped.Add(1)
		return
	}
	o := occurrence{
		key:    key{kind: kind, agent: r.Agent, vendor: r.Vendor, rule: r.Rule},
		code:   r.Code,
		reason: r.Reason,
		at:     r.Time,
	}
	select {
	case d.queue <- o:
	default:
		d.dropped.Add(1)
	}
}

// Close stops taking records, forms the final alert of every burst with
// occurrences not yet reported, and waits until every alert has been
// delivered or has failed, or until ctx is done. In that case the
// deliveries still pending are abandoned (counted as failed), those in
// flight are cancelled, and Close returns ctx.Err() without waiting for
// them; its goroutines end as soon as the Notifier honours the
// cancellation. Delivery failures go to Options.Report, not to Close's
// result. Calling Close again waits for the first Close to finish.
func (d *Dispatcher) Close(ctx context.Context) error {
	if d == nil {
		return nil
	}
	if d.done == nil {
		return errors.New("notify: Close of a Dispatcher not made by NewDispatcher")
	}
	var first bool
	d.closeOnce.Do(func() { first = true })
	if !first {
		select {
		case <-d.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d.closed.Store(true)
	req := closeRequest{ctx: ctx, done: make(chan error, 1)}
	d.closeReq <- req
	return <-req.done
}

// Stats returns the Dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	if d == nil {
		return Stats{}
	}
	dropped := d.dropped.Load()
	return Stats{
		Offered:   d.received.Load() + int64(len(d.queue)) + dropped,
		Dropped:   dropped,
		Alerts:    d.stats.alerts.Load(),
		Delivered: d.stats.delivered.Load(),
		Failed:    d.stats.failed.Load(),
		Retried:   d.stats.retried.Load(),
	}
}
