package ui

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/keybrake/keybrake/internal/admin"
)

// spendEvery is how stale the page's spend per hour may be. Computing it
// reads every record of the day (admin.Source.Status), while the rest of
// "now" reads counters (Glance): a page redrawing on every change must not
// read the day's records each time.
const spendEvery = 10 * time.Second

// spendCache keeps the day's spend hour by hour, computed in the
// background at most every spendEvery.
type spendCache struct {
	mu      sync.Mutex
	day     string
	at      time.Time // when the kept spend was asked for
	spend   []admin.AgentSpend
	running bool
	failed  time.Time // when the last failed computation was asked for
}

// get returns the spend kept for day, nil when there is none yet, and
// starts computing it again when it is older than spendEvery.
func (c *spendCache) get(day string, src admin.Source, log *slog.Logger) []admin.AgentSpend {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running && (c.day != day || time.Since(c.at) >= spendEvery) && time.Since(c.failed) >= spendEvery {
		c.running = true
		go c.compute(src, log)
	}
	if c.day != day {
		return nil
	}
	return c.spend
}

func (c *spendCache) compute(src admin.Source, log *slog.Logger) {
	asked := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := src.Status(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running = false
	if err != nil {
		c.failed = asked
		log.Warn("keybrake ui: reading the day's spend per hour failed", "err", err)
		return
	}
	c.day, c.at, c.spend = st.Day, asked, st.Spend
}
