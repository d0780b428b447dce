package transport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// The reserve stage: the call's money held against every limit in one
// durable write, before any byte of it leaves.

// reserve holds the call's money in one durable write, before any byte of
// the call leaves.
func (t *RoundTripper) reserve(c *call) (store.Admission, policy.Verdict, bool) {
	r := t.reservation(c)
	ctx := c.req.Context()
	// A store that does not answer (a database unreachable without a
	// refusal, a disk that hangs) is a refusal within writeTimeout, not
	// a call that waits as long as its caller would.
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	adm, err := t.env.store.Reserve(wctx, r)
	if err == nil && (adm.Result == store.OverLimit || adm.Result == store.KeyInUse) {
		// Calls that have answered may only have their completions still
		// queued (a release, a settlement below the reservation, an
		// earlier attempt of this key): let them land, then ask once more,
		// so that a refusal never rests on money already given back.
		if err = t.env.completer.flush(wctx); err == nil {
			adm, err = t.env.store.Reserve(wctx, r)
		}
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return adm, cancelled(ctxErr), false
		}
		if wctx.Err() != nil {
			return adm, storeError(fmt.Sprintf("the store did not answer within %s: %v", writeTimeout, err)), false
		}
		return adm, storeError("the reservation could not be written: " + err.Error()), false
	}
	v, ok := t.admitted(c, r, adm)
	return adm, v, ok
}

// reservation is what the store must commit for the call: its record, the
// holds of its limits and its idempotency key.
func (t *RoundTripper) reservation(c *call) *store.Reservation {
	r := &store.Reservation{Record: c.rec, Holds: append(holds(c.charge.Limits), c.shadowHolds...)}
	r.Record.Decision = policy.Allowed
	r.Record.Reason = "every check passed"
	if c.charge.PriceRule != "" {
		r.Record.Reason += "; priced by " + c.charge.PriceRule
	}
	if c.approvedBy != "" {
		r.Record.Reason += "; approved by " + c.approvedBy + " (" + c.rec.Approval + ")"
	}
	r.Record.Reserved = c.charge.Amount
	if t.idempotent(c) {
		r.Idempotency = &store.Idempotency{
			Key:         t.agent + "\x00" + t.vendor.Name() + "\x00" + c.vc.Account + "\x00" + c.vc.IdempotencyKey,
			Fingerprint: fingerprint(c),
		}
	}
	return r
}

// idempotent reports whether the store must check the call's idempotency
// key: a write that carries one.
func (t *RoundTripper) idempotent(c *call) bool {
	return c.vc.IdempotencyKey != "" && c.req.Method != http.MethodGet
}

// admitted reads what the store decided about r: the call's record is then
// the one written, or the verdict says why nothing was.
func (t *RoundTripper) admitted(c *call, r *store.Reservation, adm store.Admission) (policy.Verdict, bool) {
	switch adm.Result {
	case store.Admitted, store.Replayed:
		c.rec = r.Record
		c.rec.ID = adm.ID
		c.rec.Holds = adm.Holds
		c.rec.RetryOf = adm.RetryOf
		c.rec.Outcome = audit.Reserved
		if adm.Result == store.Replayed {
			c.rec.Reserved = money.Amount{}
		} else if !c.rec.Reserved.IsZero() {
			t.env.metrics.Reserved(t.agent, t.vendor.Name(), c.rec.Reserved)
		}
		if adm.Result == store.Admitted {
			t.env.levels.offer(t.agent, t.vendor.Name(), c.charge.Limits) // levels.go
		}
		return policy.Verdict{}, true
	case store.OverLimit:
		return t.overLimit(c, adm), false
	case store.KeyReused:
		return policy.Verdict{Decision: policy.Blocked, Rule: c.rule.ID, Code: "keybrake_idempotency_key_reused",
			Reason: fmt.Sprintf("idempotency key %q was used before for a different request", c.vc.IdempotencyKey)}, false
	case store.KeyInUse:
		return policy.Verdict{Decision: policy.Blocked, Rule: c.rule.ID, Code: "keybrake_idempotency_key_in_use",
			Reason: fmt.Sprintf("a request with idempotency key %q is still in flight", c.vc.IdempotencyKey)}, false
	}
	return storeError(fmt.Sprintf("the store answered an unknown result %d", adm.Result)), false
}

func storeError(reason string) policy.Verdict {
	return policy.Verdict{Decision: policy.Error, Rule: "store", Code: "keybrake_store_error", Reason: reason}
}

func (t *RoundTripper) overLimit(c *call, adm store.Admission) policy.Verdict {
	limits := c.charge.Limits
	if adm.Hold < 0 || adm.Hold >= len(limits) {
		return storeError(fmt.Sprintf("the store refused hold %d of %d", adm.Hold, len(limits)))
	}
	l := limits[adm.Hold]
	v := l.OverLimit(adm.Used, adm.Frees, c.start, c.pol.Zone())
	if l.Halt {
		t.trip(c, l, v) // trip.go
	}
	return v
}

func holds(limits []policy.Limit) []audit.Hold {
	if len(limits) == 0 {
		return nil
	}
	hs := make([]audit.Hold, len(limits))
	for i, l := range limits {
		hs[i] = audit.Hold{Key: l.Key, Unit: l.Unit, Limit: l.Max, Amount: l.Add, Window: l.Window}
	}
	return hs
}

// fingerprint identifies a write for its idempotency key: the same key with
// another method, path, account or body is another request.
func fingerprint(c *call) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n%s\n", c.req.Method, c.target.path, c.vc.Account)
	h.Write(c.body)
	return hex.EncodeToString(h.Sum(nil))
}
