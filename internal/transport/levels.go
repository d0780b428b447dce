package transport

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/keybrake/keybrake/policy"
)

// Early warning (alert_at: [50%, 80%]): after a call is admitted, a
// background goroutine reads the counters of its limits that have alert
// levels and raises each level once per counter (a day's, a week's, a
// month's: the key names the period), the first time a reservation takes
// the counter to it. "Once" is kept in the store as a fact, so a restart
// or another process on a shared store does not raise it again (two
// processes crossing at the same instant may both raise it). The call
// never waits for any of this; a level read late is raised late, never
// missed, because the next call over it raises it.

// levelQueue bounds the admitted calls waiting to be looked at; past it
// a call's levels are skipped, and the next call's raise them.
const levelQueue = 1024

type levelCheck struct {
	agent, vendor string
	limits        []policy.Limit
}

type levels struct {
	env   *Env
	raise func(agent, vendor string, l policy.Limit, pct, used int64)

	mu     sync.Mutex
	queue  chan levelCheck
	closed bool
	done   chan struct{}
}

func newLevels(e *Env, raise func(agent, vendor string, l policy.Limit, pct, used int64)) *levels {
	lv := &levels{env: e, raise: raise, queue: make(chan levelCheck, levelQueue), done: make(chan struct{})}
	go lv.run()
	return lv
}

// offer queues the call's limits that have alert levels.
func (lv *levels) offer(agent, vendor string, limits []policy.Limit) {
	if lv == nil {
		return
	}
	var watched []policy.Limit
	for _, l := range limits {
		if len(l.AlertAt) > 0 {
			watched = append(watched, l)
		}
	}
	if len(watched) == 0 {
		return
	}
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if lv.closed {
		return
	}
	select {
	case lv.queue <- levelCheck{agent, vendor, watched}:
	default:
	}
}

func (lv *levels) run() {
	defer close(lv.done)
	for c := range lv.queue {
		for _, l := range c.limits {
			lv.check(c.agent, c.vendor, l)
		}
	}
}

// check raises the levels l's counter has reached and that were never
// raised for it.
func (lv *levels) check(agent, vendor string, l policy.Limit) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	st := lv.env.store
	ctr, err := st.Counter(ctx, l.Key)
	if err != nil {
		lv.env.report(fmt.Errorf("keybrake: reading %s for its alert levels: %w", l.Key, err))
		return
	}
	used := ctr.Total()
	for _, pct := range l.AlertAt {
		// The level, rounded up: 50% of 5 calls is reached at 3. A Max
		// too large to multiply (over 92 billion USD in micros) is
		// divided first.
		var level int64
		if l.Max <= (1<<63-1)/100 {
			level = (l.Max*pct + 99) / 100
		} else {
			level = l.Max / 100 * pct
		}
		if used < level {
			break
		}
		fact := "alert/" + l.Key + "/" + strconv.FormatInt(pct, 10)
		if _, seen, err := st.Fact(ctx, fact); err != nil || seen {
			if err != nil {
				lv.env.report(fmt.Errorf("keybrake: reading alert level %s: %w", fact, err))
			}
			continue
		}
		if err := st.SetFact(ctx, fact, "raised"); err != nil {
			lv.env.report(fmt.Errorf("keybrake: keeping alert level %s: %w", fact, err))
			continue
		}
		lv.raise(agent, vendor, l, pct, used)
	}
}

// close stops taking calls and waits for those queued.
func (lv *levels) close() {
	if lv == nil {
		return
	}
	lv.mu.Lock()
	if !lv.closed {
		lv.closed = true
		close(lv.queue)
	}
	lv.mu.Unlock()
	<-lv.done
}
