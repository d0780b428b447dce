package keybrake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
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
	vd, ok := registry[v]
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
		get := b.reconcileGetter(v, r.Host, authorize)
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
		settled := make([]int64, len(r.Holds))
		for i, h := range r.Holds {
			if h.Unit == "units" {
				settled[i] = h.Settled
				continue
			}
			a, err := pol.Convert(moved, money.Currency(h.Unit))
			if err != nil {
				return res, fmt.Errorf("keybrake: reconcile call %d: %w", r.ID, err)
			}
			settled[i] = a.Micros
		}
		if err := b.store.Resettle(ctx, r.ID, settled, moved); err != nil {
			res.Failed++
			errs = append(errs, fmt.Errorf("call %d: %w", r.ID, err))
			continue
		}
		res.Settled++
	}
	return res, errors.Join(errs...)
}

// reconcileGetter fetches from the vendor with the given credentials,
// through the Brake's own transport (not an agent's chain: these are
// Keybrake's reads, not the agent's calls).
func (b *Brake) reconcileGetter(v Vendor, host string, authorize func(*http.Request)) vendors.Getter {
	return func(ctx context.Context, path string) (int, []byte, error) {
		u, err := url.Parse(path)
		if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return 0, nil, fmt.Errorf("reconcile path %q is not an absolute path", path)
		}
		target := url.URL{Scheme: "https", Host: host, Path: u.Path, RawQuery: u.RawQuery}
		if ep := b.endpoints[v]; ep != nil {
			target.Scheme, target.Host, target.Path = ep.Scheme, ep.Host, ep.Path+u.Path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
		if err != nil {
			return 0, nil, err
		}
		authorize(req)
		resp, err := b.base.RoundTrip(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		const limit = 1 << 20
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err == nil && len(body) > limit {
			err = fmt.Errorf("response over %d bytes", limit)
		}
		return resp.StatusCode, body, err
	}
}
