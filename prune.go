package keybrake

import (
	"context"
	"fmt"
	"time"
)

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
