package keybrake

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/transport"
	"github.com/keybrake/keybrake/vendors"
)

// ReconcileResult says what Reconcile did.
type ReconcileResult struct {
	Checked  int // estimated calls made with the given credentials
	Settled  int // of those, now settled at the vendor's price
	Pending  int // not priced by the vendor yet; try again later
	OtherKey int // estimated calls made with other credentials, left alone
	Failed   int // lookups that failed; their estimates stay counted
}

// Reconcile settles calls whose money Keybrake had to estimate, because
// the vendor answered before pricing them (Twilio answers a new message
// with "price": null and prices it minutes later), at the price the vendor
// now reports. Until then the estimate counts against every limit, so a
// call is never free while it waits. authorize adds the credentials of the
// account the calls were made with to each request (for Twilio,
// req.SetBasicAuth(accountSID, authToken)); only calls made with those
// same credentials are reconciled. Run it from a timer, or after a batch of
// sends; it is safe to run again and concurrently with calls.
func (b *Brake) Reconcile(ctx context.Context, v Vendor, authorize func(*http.Request)) (ReconcileResult, error) {
	var res ReconcileResult
	vd, ok := b.vendors[v]
	if !ok {
		return res, fmt.Errorf("keybrake: vendor %q is not one Keybrake knows", v)
	}
	rc, ok := vd.(vendors.Reconciler)
	if !ok {
		return res, fmt.Errorf("keybrake: %s prices every call in its answer; nothing to reconcile", v)
	}
	probe, _ := http.NewRequest(http.MethodGet, "https://keybrake.invalid/", nil)
	authorize(probe)
	key := transport.KeyID(probe.Header)
	if key == "" {
		return res, errors.New("keybrake: authorize set no Authorization header")
	}
	if err := b.env.Flush(ctx); err != nil {
		return res, err
	}
	var estimated []audit.Record
	err := b.store.Query(ctx, audit.Query{Vendor: string(v)}, func(r *audit.Record) error {
		if r.Outcome == audit.Settled && r.Estimated {
			estimated = append(estimated, *r)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("keybrake: reconcile: %w", err)
	}
	pol, polErr := b.policies.inForce()
	var errs []error
	for _, r := range estimated {
		if r.KeyID != key {
			res.OtherKey++
			continue
		}
		res.Checked++
		get := b.reconcileGetter(v, r.Host, probe.Header)
		moved, done, err := rc.Reconcile(ctx, r.Operation, r.Object, r.Amount.Currency, get)
		switch {
		case err != nil:
			res.Failed++
			errs = append(errs, fmt.Errorf("call %d (%s): %w", r.ID, r.Object, err))
			continue
		case !done:
			res.Pending++
			continue
		case polErr != nil:
			return res, fmt.Errorf("keybrake: reconcile needs a valid policy to convert prices: %w", polErr)
		}
		settled, err := transport.SettleHolds(pol, r.Holds, moved, func(h audit.Hold) int64 { return h.Settled })
		if err != nil {
			return res, fmt.Errorf("keybrake: reconcile call %d: %w", r.ID, err)
		}
		if err := b.store.Resettle(ctx, r.ID, settled, moved); err != nil {
			res.Failed++
			errs = append(errs, fmt.Errorf("call %d: %w", r.ID, err))
			continue
		}
		b.metrics.resettled(&r, moved)
		res.Settled++
	}
	return res, errors.Join(errs...)
}

// reconcileGetter fetches from the vendor with the given credentials,
// through the Brake's own transport (not an agent's chain: these are
// Keybrake's reads, not the agent's calls).
func (b *Brake) reconcileGetter(v Vendor, host string, header http.Header) vendors.Getter {
	return func(ctx context.Context, path string) (int, []byte, error) {
		return transport.Fetch(ctx, b.base, host, b.endpoints[v], path, header)
	}
}
