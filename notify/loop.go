package notify

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The loop owns every key's state; nothing else touches it, so it needs no
// lock. It takes occurrences off the queue, forms alerts when windows end
// (by a real timer set from the Dispatcher's clock), and hands alerts to
// delivery goroutines, at most Concurrency at once and one per key.

// lane is one key: its open burst, if any, and its deliveries. A lane
// outlives its burst while an alert of it is still being delivered, so
// that the next burst's alerts of the same key queue behind it.
type lane struct {
	key    key
	burst  *burst
	busy   int  // alerts of this key queued or in flight
	flying bool // one of them is in flight
}

// burst is the run of occurrences of one key without a Window's gap.
// Windows go by the Dispatcher's clock (seen, windowEnd); first and last
// are the records' own times, for the person reading the alert.
type burst struct {
	code, reason string
	first, last  time.Time
	seen         time.Time // the latest occurrence by the Dispatcher's clock
	since        time.Time // the previous alert's time: where the current count begins
	total, count int64     // count: occurrences not yet reported
	window       time.Duration
	windowEnd    time.Time
}

type job struct {
	lane  *lane
	alert Alert
	page  bool // the first alert of a burst: delivered before other keys' window alerts
}

type result struct {
	job     job
	err     error
	retried bool
}

type loop struct {
	d      *Dispatcher
	lanes  map[key]*lane
	last   *lane // the lane of the latest record, while it is in lanes
	outbox []job

	inflight        int
	reportedDropped int64

	timer   *time.Timer
	armed   time.Time // the deadline the timer is set for; zero when stopped
	idle    []chan struct{}
	closing *closeRequest
	abandon bool
}

// run is the loop. Deliveries get ctx, which the Dispatcher cancels when
// Close gives up.
func (l *loop) run(ctx context.Context) {
	d := l.d
	defer close(d.done)
	l.timer = time.NewTimer(time.Hour)
	l.timer.Stop()
	defer l.timer.Stop()
	for {
		// Once closing, records still arriving (offered concurrently with
		// Close) wait in the queue and are counted as dropped by exit.
		queue, closeReq := d.queue, d.closeReq
		var closeDone <-chan struct{}
		if l.closing != nil {
			queue, closeReq = nil, nil
			if !l.abandon {
				closeDone = l.closing.ctx.Done()
			}
		}
		rearm := true
		var flushed chan struct{}
		select {
		case o := <-queue:
			now := d.opts.Now()
			l.add(o, now)
			// One clock reading for the records that queued meanwhile.
			for n := len(queue); n > 0; n-- {
				l.add(<-queue, now)
			}
			// Adding to a burst only moves its deadline later (a timer
			// that fires early finds nothing to do), and a new burst arms
			// the timer itself: no need to look at every lane.
			rearm = false
		case <-l.timer.C:
			l.armed = time.Time{}
			l.flushAll(l.drain())
		case r := <-d.results:
			l.finished(r)
		case req := <-d.syncReq:
			l.flushAll(l.drain())
			if req.idle {
				l.idle = append(l.idle, req.ack)
			} else {
				flushed = req.ack
			}
		case release := <-d.pause:
			<-release
		case req := <-closeReq:
			l.closing = &req
			l.closeBursts(l.drain())
		case <-closeDone:
			l.giveUp()
		}
		l.dispatch(ctx)
		if flushed != nil {
			close(flushed)
		}
		if l.inflight == 0 && len(l.outbox) == 0 {
			for _, ack := range l.idle {
				close(ack)
			}
			l.idle = l.idle[:0]
			if l.closing != nil {
				l.exit()
				return
			}
		}
		if rearm && l.closing == nil {
			l.rearm()
		}
	}
}

// drain reads the clock, then takes every occurrence already queued, so
// that a flush at that time counts everything offered before it.
func (l *loop) drain() time.Time {
	now := l.d.opts.Now()
	for n := len(l.d.queue); n > 0; n-- {
		l.add(<-l.d.queue, now)
	}
	return now
}

func (l *loop) add(o occurrence, now time.Time) {
	d := l.d
	// A storm is one key: skip the map's hashing for a repeat.
	ln := l.last
	if ln == nil || ln.key != o.key {
		ln = l.lanes[o.key]
	}
	if ln == nil {
		if len(l.lanes) >= d.maxKeys {
			d.dropped.Add(1)
			return
		}
		ln = &lane{key: o.key}
		l.lanes[o.key] = ln
	}
	l.last = ln
	d.received.Add(1)
	// A record may arrive after its burst's quiet Window passed but before
	// the timer noticed: the old burst ends first, and this one pages.
	l.flush(ln, now)
	at := o.at
	if at.IsZero() {
		at = now
	}
	b := ln.burst
	if b == nil {
		b = &burst{
			code: o.code, reason: o.reason,
			first: at, last: at, seen: now, since: at,
			total: 1, window: d.opts.Window, windowEnd: now.Add(d.opts.Window),
		}
		ln.burst = b
		l.send(ln, b, 1, false, true)
		if dl := b.windowEnd; l.armed.IsZero() || dl.Before(l.armed) {
			l.arm(dl)
		}
		return
	}
	b.count++
	b.total++
	if at.After(b.last) {
		b.last = at
	}
	b.seen = now
}

// flush forms the alert a lane owes at now, if any: the final one of a
// burst quiet for a whole Window, or the count of a window that has ended.
// A window's count waits while an earlier alert of the key is still being
// delivered (it grows, Since stays), which bounds the alerts queued per key.
func (l *loop) flush(ln *lane, now time.Time) {
	b := ln.burst
	if b == nil {
		return
	}
	switch {
	case now.Sub(b.seen) >= l.d.opts.Window:
		ln.burst = nil
		if b.total > 1 {
			l.send(ln, b, b.count, true, false)
		}
	case !now.Before(l.due(b)) && b.count > 0 && ln.busy == 0:
		l.send(ln, b, b.count, false, false)
		b.since, b.count = now, 0
		if b.window *= 2; b.window > l.d.opts.MaxWindow {
			b.window = l.d.opts.MaxWindow
		}
		b.windowEnd = now.Add(b.window)
	}
}

// due is when a window's count goes out: at the window's end, unless the
// key has been quiet for the window's last half. Then it waits up to half
// a Window more, by which time either the burst has ended (and the final
// alert carries the count, one message instead of a "still going"
// followed at once by "over") or it has resumed.
func (l *loop) due(b *burst) time.Time {
	half := l.d.opts.Window / 2
	if b.windowEnd.Sub(b.seen) >= half {
		return b.windowEnd.Add(half)
	}
	return b.windowEnd
}

// flushAll flushes every lane and forgets the lanes with nothing left.
func (l *loop) flushAll(now time.Time) {
	for _, ln := range l.lanes {
		l.flush(ln, now)
		if ln.burst == nil && ln.busy == 0 {
			l.forget(ln)
		}
	}
}

func (l *loop) forget(ln *lane) {
	delete(l.lanes, ln.key)
	if l.last == ln {
		l.last = nil
	}
}

// closeBursts ends every burst for Close: the occurrences not yet reported
// go out in a final alert; a burst with none left says nothing more.
func (l *loop) closeBursts(now time.Time) {
	l.flushAll(now)
	for _, ln := range l.lanes {
		if b := ln.burst; b != nil {
			ln.burst = nil
			if b.count > 0 {
				l.send(ln, b, b.count, true, false)
			}
		}
	}
	l.timer.Stop()
	l.armed = time.Time{}
}

// send forms an alert and queues it for delivery.
func (l *loop) send(ln *lane, b *burst, count int64, final, page bool) {
	d := l.d
	dropped := d.dropped.Load()
	a := Alert{
		Kind: ln.key.kind, Agent: ln.key.agent, Vendor: ln.key.vendor, Rule: ln.key.rule,
		Code: b.code, Reason: b.reason,
		Count: count, Total: b.total,
		First: b.first, Last: b.last, Since: b.since,
		Dropped: dropped - l.reportedDropped,
		Final:   final,
	}
	l.reportedDropped = dropped
	ln.busy++
	d.stats.alerts.Add(1)
	l.outbox = append(l.outbox, job{lane: ln, alert: a, page: page})
}

// dispatch starts deliveries while there is room: first the pages (a
// burst's first alert, the one that must reach someone within a second),
// then the rest in order, never two of one key at once and never one of a
// key ahead of an earlier one of the same key.
func (l *loop) dispatch(ctx context.Context) {
	for l.inflight < l.d.opts.Concurrency && len(l.outbox) > 0 && !l.abandon {
		i := l.next(true)
		if i < 0 {
			i = l.next(false)
		}
		if i < 0 {
			return
		}
		j := l.outbox[i]
		l.outbox = append(l.outbox[:i], l.outbox[i+1:]...)
		j.lane.flying = true
		l.inflight++
		go l.d.deliver(ctx, j)
	}
}

// next returns the index of the first job in the outbox that may start
// (only pages when pagesOnly), or -1.
func (l *loop) next(pagesOnly bool) int {
	for i, j := range l.outbox {
		if j.lane.flying || (pagesOnly && !j.page) {
			continue
		}
		earlier := false
		for _, e := range l.outbox[:i] {
			if e.lane == j.lane {
				earlier = true
				break
			}
		}
		if !earlier {
			return i
		}
	}
	return -1
}

func (l *loop) finished(r result) {
	d := l.d
	l.inflight--
	ln := r.job.lane
	ln.flying = false
	ln.busy--
	if r.retried {
		d.stats.retried.Add(1)
	}
	if r.err != nil {
		d.stats.failed.Add(1)
	} else {
		d.stats.delivered.Add(1)
	}
	if l.closing != nil {
		return
	}
	// A window count may have waited for this delivery.
	l.flush(ln, l.d.opts.Now())
	if ln.burst == nil && ln.busy == 0 && l.lanes[ln.key] == ln {
		l.forget(ln)
	}
}

// giveUp is Close's context ending: alerts not started are abandoned and
// deliveries in flight cancelled; Close returns at once.
func (l *loop) giveUp() {
	l.abandon = true
	l.d.cancel()
	for _, j := range l.outbox {
		l.d.stats.failed.Add(1)
		l.d.report(j.alert, errors.New("not delivered: the dispatcher was closed first"))
	}
	l.outbox = nil
	l.closing.done <- l.closing.ctx.Err()
}

// exit ends the loop once nothing is pending. Records offered while Close
// ran are counted as dropped.
func (l *loop) exit() {
	for n := len(l.d.queue); n > 0; n-- {
		<-l.d.queue
		l.d.dropped.Add(1)
	}
	l.d.cancel()
	if !l.abandon {
		l.closing.done <- nil
	}
}

// rearm sets the timer for the earliest moment a lane may owe an alert.
func (l *loop) rearm() {
	var next time.Time
	for _, ln := range l.lanes {
		b := ln.burst
		if b == nil {
			continue
		}
		dl := b.seen.Add(l.d.opts.Window)
		if due := l.due(b); b.count > 0 && ln.busy == 0 && due.Before(dl) {
			dl = due
		}
		if next.IsZero() || dl.Before(next) {
			next = dl
		}
	}
	if next.IsZero() {
		if !l.armed.IsZero() {
			l.timer.Stop()
			l.armed = time.Time{}
		}
		return
	}
	if !next.Equal(l.armed) {
		l.arm(next)
	}
}

func (l *loop) arm(deadline time.Time) {
	wait := deadline.Sub(l.d.opts.Now())
	// The clock may jump; look again at least once a Window whatever it
	// says, and never wait a negative time.
	wait = min(max(wait, 0), l.d.opts.Window)
	l.timer.Reset(wait)
	l.armed = deadline
}

// deliver runs on its own goroutine: one attempt, and one retry after
// RetryDelay unless the Dispatcher gave up. A panicking Notifier is a
// failed delivery, not a crashed agent.
func (d *Dispatcher) deliver(ctx context.Context, j job) {
	err := d.attempt(ctx, j.alert)
	retried := false
	if err != nil && d.opts.RetryDelay >= 0 && ctx.Err() == nil {
		t := time.NewTimer(d.opts.RetryDelay)
		select {
		case <-t.C:
			retried = true
			err = d.attempt(ctx, j.alert)
		case <-ctx.Done():
			t.Stop()
		}
	}
	if err != nil {
		d.report(j.alert, err)
	}
	d.results <- result{job: j, err: err, retried: retried}
}

func (d *Dispatcher) attempt(ctx context.Context, a Alert) (err error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("notifier panicked: %v", p)
		}
	}()
	return d.n.Notify(ctx, a)
}

func (d *Dispatcher) report(a Alert, err error) {
	if d.opts.Report == nil {
		return
	}
	who := a.Agent
	if who == "" {
		who = "-"
	}
	d.opts.Report(fmt.Errorf("notify: %s alert (agent %s, vendor %s, rule %s, %d in all): %w",
		a.Kind, who, a.Vendor, a.Rule, a.Total, err))
}
