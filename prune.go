package keybrake

import (
	"context"
	"fmt"
	"time"
)

// minRetention is the least Retention keeps; see startPruning.
const minRetention = 48 * time.Hour

// startPruning keeps the audit log bounded: a Prune now and every hour.
// A prune of a long log can take minutes; Shutdown cancels it rather than
// waiting, and the store leaves what it pruned so far consistent.
func (b *Brake) startPruning() {
	ctx, cancel := context.WithCancel(context.Background())
	b.stopPrune, b.pruned = cancel, make(chan struct{})
	keep := b.opts.Retention
	if keep == 0 {
		keep = DefaultRetention
	}
	if keep < 0 {
		close(b.pruned)
		return
	}
	// A store prunes a counter by the date its key names; a day of the
	// policy's time zone can run 14 hours past that date in UTC (a week
	// or a month ends on its last day too), so no shorter retention may
	// drop a counter still counting.
	keep = max(keep, minRetention)
	go func() {
		defer close(b.pruned)
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			pctx, stop := context.WithTimeout(ctx, 10*time.Minute)
			_, err := b.store.Prune(pctx, b.opts.Clock().Add(-keep))
			stop()
			if err != nil && ctx.Err() == nil {
				b.report(fmt.Errorf("keybrake: pruning the audit log: %w", err))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
