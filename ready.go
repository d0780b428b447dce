package keybrake

import (
	"context"
	"fmt"
)

// Ready reports whether the Brake can decide calls now: a valid policy is
// in force and the store answers. It is what a readiness probe asks (keybrake
// serve's /readyz); nil means ready. It is safe for concurrent use and
// bounded by ctx.
func (b *Brake) Ready(ctx context.Context) error {
	if _, err := b.policies.inForce(); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if _, _, err := b.store.Fact(ctx, lastDayFact); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
