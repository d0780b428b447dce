package transport

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/vendors"
)

// RoundTripper is the brake for one agent on one vendor: an
// http.RoundTripper that decides every request before it reaches next.
// It is safe for concurrent use; the zero value is not usable, build it
// with New.
type RoundTripper struct {
	env      *Env
	agent    string
	vendor   vendors.Vendor
	info     vendors.Info    // the vendor's description, read once
	hosts    map[string]bool // the vendor's official hosts
	endpoint *url.URL        // where the vendor's traffic goes; nil: the official hosts
	next     http.RoundTripper
}

var _ http.RoundTripper = (*RoundTripper)(nil)

// New returns the brake for agent on vendor v over next. endpoint, when not
// nil, is a base URL (scheme, host, optional path prefix) that receives the
// vendor's traffic: requests addressed to an official host are sent there,
// and requests addressed to it directly are accepted too.
func New(env *Env, agent string, v vendors.Vendor, endpoint *url.URL, next http.RoundTripper) *RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	hosts := make(map[string]bool)
	for _, h := range v.Hosts() {
		hosts[h] = true
	}
	return &RoundTripper{env: env, agent: agent, vendor: v, info: v.Info(), hosts: hosts, endpoint: endpoint, next: next}
}

// call is one request on its way through the stages.
type call struct {
	req    *http.Request
	start  time.Time
	day    string
	pol    *policy.Policy
	body   []byte
	target target
	vc     *vendors.Call
	rule   *policy.Rule   // the allow rule, once authorized
	needs  policy.Needs   // what deciding the call needs beyond its request
	who    policy.Subject // whom the call touches, as far as known
	charge policy.Charge  // what the call counts, once decided
	rec    audit.Record
	done   func() // ends the call for Drain, once; see admit
}

// RoundTrip is the story of one call: check and classify it, authorize it
// by the policy, resolve what the request does not say (its amount,
// currency or customer), gather what Keybrake knows or must fetch of whom
// it touches, decide its scope, price and limits, reserve its money
// durably against every limit, send it, and settle the reservation from
// the response. Every path writes one audit record. A refusal is a response in
// the vendor's own error format, never an error, so the SDK surfaces it as
// its usual error and does not retry it.
func (t *RoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.begin(req)
	if v, ok := t.admit(c); !ok {
		return t.refuse(c, v)
	}
	body, err := readBody(req, t.env.bodyLimit)
	if err != nil {
		return t.refuse(c, invalid(err))
	}
	c.body = body
	if err := req.Context().Err(); err != nil {
		t.refuse(c, cancelled(err))
		return nil, err
	}
	if v, ok := t.classify(c); !ok {
		return t.refuse(c, v)
	}
	if v, ok := t.authorize(c); !ok {
		return t.refuse(c, v)
	}
	if v, ok := t.resolve(c); !ok {
		return t.refuse(c, v)
	}
	if v, ok := t.gather(c); !ok {
		return t.refuse(c, v)
	}
	if v, ok := t.decide(c); !ok {
		return t.refuse(c, v)
	}
	adm, v, ok := t.reserve(c)
	if !ok {
		return t.refuse(c, v)
	}
	if v, ok := t.recheck(c); !ok {
		return t.refuseReserved(c, adm, v)
	}
	return t.send(c, adm)
}

func (t *RoundTripper) begin(req *http.Request) *call {
	now := t.env.now()
	c := &call{req: req, start: now, day: t.env.days.day(now)}
	c.rec = audit.Record{
		Time:   now,
		Agent:  t.agent,
		Vendor: t.vendor.Name(),
		Method: req.Method,
		KeyID:  KeyID(req.Header),
	}
	if req.URL != nil {
		c.rec.Host = req.URL.Host
		c.rec.Path = req.URL.EscapedPath()
	}
	return c
}

// classify refuses what cannot be read with certainty and asks the vendor
// what the call is.
func (t *RoundTripper) classify(c *call) (policy.Verdict, bool) {
	tg, err := t.check(c.req)
	if err != nil {
		return invalid(err), false
	}
	c.target = tg
	c.rec.Path = tg.path
	vc, err := t.vendor.Classify(&vendors.Request{
		Method: c.req.Method,
		Host:   tg.host,
		Path:   tg.path,
		Query:  c.req.URL.RawQuery,
		Header: c.req.Header.Clone(),
		Body:   c.body,
	})
	if err != nil {
		return invalid(err), false
	}
	c.vc = vc
	c.rec.Operation = vc.Operation
	c.rec.Params = vc.Audit
	c.rec.IdempotencyKey = vc.IdempotencyKey
	c.rec.Customer = vc.Customer
	c.rec.Account = vc.Account
	c.rec.Amount = vc.Amount
	return policy.Verdict{}, true
}

// authorize decides the call by the policy in force when it arrived, on
// its request alone: the rule that allows it, and what deciding it further
// needs.
func (t *RoundTripper) authorize(c *call) (policy.Verdict, bool) {
	pol, err := t.env.policy()
	if err != nil {
		return policy.Verdict{Decision: policy.Error, Rule: "policy", Code: "keybrake_policy_invalid",
			Reason: "no valid policy is in force: " + err.Error()}, false
	}
	c.pol = pol
	c.rec.PolicyHash = pol.Hash
	v, rule := pol.Authorize(t.policyRequest(c))
	if v.Decision != policy.Allowed {
		return v, false
	}
	c.rule = rule
	c.needs = rule.Grant().Needs()
	c.rec.Rule = v.Rule
	return v, true
}

func (t *RoundTripper) policyRequest(c *call) policy.Request {
	return policy.Request{
		Agent:    t.agent,
		Vendor:   t.vendor.Name(),
		Method:   c.req.Method,
		Path:     c.target.path,
		Params:   c.vc.Params,
		Uncapped: c.vc.Uncapped,
		Customer: c.vc.Customer,
		Account:  c.vc.Account,
		RefundOf: c.vc.RefundOf,
	}
}

// resolve fetches what the request does not carry (an amount, a currency,
// the customer when the policy needs it) with the call's own credentials,
// and keeps what the vendor learned that never changes. A call whose money
// stays unknown is refused.
func (t *RoundTripper) resolve(c *call) (policy.Verdict, bool) {
	need := vendors.Need{Customer: c.needs.Customer}
	if c.vc.Lookup != "" || (need.Customer && c.vc.SubjectLookup != "") {
		ctx, stop := t.untilRefused(c)
		learned, err := t.vendor.Resolve(ctx, c.vc, need, t.getter(c), t.env.store)
		c.rec.Lookup = strings.TrimSpace(c.vc.Lookup + " " + c.vc.SubjectLookup)
		t.keep(c, learned)
		if v, ok := stop(); !ok {
			return v, false
		}
		if err != nil {
			if ctxErr := c.req.Context().Err(); ctxErr != nil {
				return cancelled(ctxErr), false
			}
			return policy.Verdict{Decision: policy.Error, Rule: c.rule.ID, Code: "keybrake_lookup_failed",
				Reason: fmt.Sprintf("%s failed: %v", c.rec.Lookup, err)}, false
		}
		c.rec.Customer = c.vc.Customer
		c.rec.Amount = c.vc.Amount
	}
	// A zero amount without a currency moves nothing (an authorisation
	// increment); any other amount must say its currency.
	if c.vc.MovesMoney && c.vc.Amount.Currency == "" && !c.vc.Amount.IsZero() {
		return policy.Verdict{Decision: policy.Error, Rule: c.rule.ID, Code: "keybrake_amount_unknown",
			Reason: "the call can move money but its amount or currency is unknown"}, false
	}
	return policy.Verdict{}, true
}

// keep writes the facts a vendor learned. One that cannot be kept costs a
// later call a lookup, nothing more.
func (t *RoundTripper) keep(c *call, learned []vendors.Fact) {
	if len(learned) == 0 {
		return
	}
	ctx, cancel := t.env.writeContext(c.req.Context())
	defer cancel()
	for _, f := range learned {
		if err := t.env.store.SetFact(ctx, f.Key, f.Value); err != nil {
			t.env.report(fmt.Errorf("keybrake: fact %s learned by a %s lookup could not be kept: %w", f.Key, t.vendor.Name(), err))
		}
	}
}

// decide asks the policy, with everything known of the call, whether it
// is in scope, what it costs and which counters it must fit.
func (t *RoundTripper) decide(c *call) (policy.Verdict, bool) {
	vc := c.vc
	v, charge := c.pol.Decide(policy.Call{
		Request:    t.policyRequest(c),
		Subject:    c.who,
		MovesMoney: vc.MovesMoney,
		Amount:     vc.Amount,
		Priced:     vc.Priced,
		Count:      vc.Count,
	}, c.rule, c.day)
	if v.Decision != policy.Allowed {
		return v, false
	}
	c.charge = charge
	// Settle reads the call's amount: a priced call's is the policy's.
	vc.Amount, vc.Count = charge.Amount, charge.Count
	c.rec.Amount = charge.Amount
	return v, true
}

// reserve holds the call's money in one durable write, before any byte of
// the call leaves.
func (t *RoundTripper) reserve(c *call) (store.Admission, policy.Verdict, bool) {
	r := &store.Reservation{Record: c.rec, Holds: holds(c.charge.Limits)}
	r.Record.Decision = policy.Allowed
	r.Record.Reason = "every check passed"
	if c.charge.PriceRule != "" {
		r.Record.Reason += "; priced by " + c.charge.PriceRule
	}
	r.Record.Reserved = c.charge.Amount
	if c.vc.IdempotencyKey != "" && c.req.Method != http.MethodGet {
		r.Idempotency = &store.Idempotency{
			Key:         t.agent + "\x00" + t.vendor.Name() + "\x00" + c.vc.Account + "\x00" + c.vc.IdempotencyKey,
			Fingerprint: fingerprint(c),
		}
	}
	ctx := c.req.Context()
	adm, err := t.env.store.Reserve(ctx, r)
	if err == nil && (adm.Result == store.OverLimit || adm.Result == store.KeyInUse) {
		// Calls that have answered may only have their completions still
		// queued (a release, a settlement below the reservation, an
		// earlier attempt of this key): let them land, then ask once more,
		// so that a refusal never rests on money already given back.
		if err = t.env.completer.flush(ctx); err == nil {
			adm, err = t.env.store.Reserve(ctx, r)
		}
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return adm, cancelled(ctxErr), false
		}
		return adm, policy.Verdict{Decision: policy.Error, Rule: "store", Code: "keybrake_store_error",
			Reason: "the reservation could not be written: " + err.Error()}, false
	}
	switch adm.Result {
	case store.Admitted, store.Replayed:
		c.rec = r.Record
		c.rec.ID = adm.ID
		c.rec.Holds = adm.Holds
		c.rec.RetryOf = adm.RetryOf
		c.rec.Outcome = audit.Reserved
		if adm.Result == store.Replayed {
			c.rec.Reserved = money.Amount{}
		}
		return adm, policy.Verdict{}, true
	case store.OverLimit:
		return adm, overLimit(c, adm), false
	case store.KeyReused:
		return adm, policy.Verdict{Decision: policy.Blocked, Rule: c.rule.ID, Code: "keybrake_idempotency_key_reused",
			Reason: fmt.Sprintf("idempotency key %q was used before for a different request", c.vc.IdempotencyKey)}, false
	case store.KeyInUse:
		return adm, policy.Verdict{Decision: policy.Blocked, Rule: c.rule.ID, Code: "keybrake_idempotency_key_in_use",
			Reason: fmt.Sprintf("a request with idempotency key %q is still in flight", c.vc.IdempotencyKey)}, false
	}
	return adm, policy.Verdict{Decision: policy.Error, Rule: "store", Code: "keybrake_store_error",
		Reason: fmt.Sprintf("the store answered an unknown result %d", adm.Result)}, false
}

func overLimit(c *call, adm store.Admission) policy.Verdict {
	limits := c.charge.Limits
	if adm.Hold < 0 || adm.Hold >= len(limits) {
		return policy.Verdict{Decision: policy.Error, Rule: "store", Code: "keybrake_store_error",
			Reason: fmt.Sprintf("the store refused hold %d of %d", adm.Hold, len(limits))}
	}
	l := limits[adm.Hold]
	if l.Unit == "units" {
		return policy.Verdict{Decision: policy.Capped, Rule: l.Rule, Code: "keybrake_daily_count",
			Reason: fmt.Sprintf("daily count of %d reached: %d used on %s, this call %d", l.Max, adm.Used, c.day, l.Add)}
	}
	cur := money.Currency(l.Unit)
	show := func(m int64) string { return money.Amount{Micros: m, Currency: cur}.String() }
	return policy.Verdict{Decision: policy.Capped, Rule: l.Rule, Code: "keybrake_daily_cap",
		Reason: fmt.Sprintf("daily cap of %s reached: %s used on %s, this call %s", show(l.Max), show(adm.Used), c.day, show(l.Add))}
}

// recheck decides the call again when the policy changed while it waited
// for a lookup or the store, so that a revocation stops calls already inside
// Keybrake.
func (t *RoundTripper) recheck(c *call) (policy.Verdict, bool) {
	v, hash, refused := t.refusedNow(c.pol, t.policyRequest(c))
	if refused {
		if hash != "" {
			c.rec.PolicyHash = hash
		}
		return v, false
	}
	return v, true
}

// refuse records a refused call and answers it in the vendor's own format.
func (t *RoundTripper) refuse(c *call, v policy.Verdict) (*http.Response, error) {
	defer c.done()
	rec := t.refusal(c, v)
	rec.ID = 0
	rec.Outcome = audit.None
	rec.Reserved = money.Amount{}
	rec.Settled = money.Amount{}
	rec.Holds = nil
	if rec.PolicyHash == "" {
		if pol, err := t.env.policy(); err == nil {
			rec.PolicyHash = pol.Hash
		}
	}
	ctx, cancel := t.env.writeContext(c.req.Context())
	defer cancel()
	id, err := t.env.store.Append(ctx, &rec)
	if err != nil {
		t.env.report(fmt.Errorf("keybrake: audit record of a refused call could not be written: %w", err))
	}
	rec.ID = id
	return t.deny(c, &rec, v)
}

// refuseReserved refuses a call whose reservation is written: its record
// becomes the refusal and its money is released, still one record a call.
func (t *RoundTripper) refuseReserved(c *call, adm store.Admission, v policy.Verdict) (*http.Response, error) {
	defer c.done()
	rec := t.refusal(c, v)
	rec.Outcome = audit.Released
	ctx, cancel := t.env.writeContext(c.req.Context())
	defer cancel()
	err := t.env.store.Complete(ctx, &store.Completion{
		ID: adm.ID, Outcome: audit.Released, Status: rec.Status, Duration: rec.Duration, Reason: v.Reason,
		Refused: &store.Refusal{Decision: v.Decision, Code: v.Code, Rule: v.Rule, Policy: rec.PolicyHash},
	})
	if err != nil {
		t.env.report(fmt.Errorf("keybrake: reservation %d of a call refused before sending could not be released (it stays counted): %w", adm.ID, err))
	}
	return t.deny(c, &rec, v)
}

// refusal is the call's record as refused by v.
func (t *RoundTripper) refusal(c *call, v policy.Verdict) audit.Record {
	rec := c.rec
	rec.Decision, rec.Rule, rec.Code, rec.Reason = v.Decision, v.Rule, v.Code, v.Reason
	rec.Status = v.Decision.Status()
	rec.Duration = t.env.now().Sub(c.start)
	return rec
}

// deny tells the alerts of a refusal whose record is written, and answers
// it in the vendor's own format.
func (t *RoundTripper) deny(c *call, rec *audit.Record, v policy.Verdict) (*http.Response, error) {
	t.env.observe(rec)
	d := &Details{
		Decision: v.Decision, Code: v.Code, Rule: v.Rule, Reason: v.Reason,
		Agent: t.agent, Vendor: t.vendor.Name(), Method: rec.Method, Path: rec.Path,
		Status: rec.Status, CallID: rec.ID, Policy: rec.PolicyHash,
	}
	resp := t.vendor.Deny(c.req, vendors.Refusal{
		Status:    d.Status,
		Code:      d.Code,
		Message:   fmt.Sprintf("Keybrake refused this call (%s): %s (rule %s)", d.Decision, d.Reason, d.Rule),
		RequestID: d.RequestID(),
		Details:   d.encode(),
	})
	return resp, nil
}

func holds(limits []policy.Limit) []audit.Hold {
	if len(limits) == 0 {
		return nil
	}
	hs := make([]audit.Hold, len(limits))
	for i, l := range limits {
		hs[i] = audit.Hold{Key: l.Key, Unit: l.Unit, Limit: l.Max, Amount: l.Add}
	}
	return hs
}

func invalid(err error) policy.Verdict {
	var inv *vendors.Invalid
	if errors.As(err, &inv) {
		return policy.Verdict{Decision: policy.Blocked, Rule: "request", Code: inv.Code, Reason: inv.Reason}
	}
	return policy.Verdict{Decision: policy.Blocked, Rule: "request", Code: "keybrake_bad_request", Reason: err.Error()}
}

func cancelled(err error) policy.Verdict {
	return policy.Verdict{Decision: policy.Error, Rule: "request", Code: "keybrake_cancelled",
		Reason: "the caller gave up before the call was sent: " + err.Error()}
}

// KeyID is a short fingerprint of the credential in h, so the audit log
// tells keys apart without holding one: "key_" and 8 hex digits of the
// SHA-256 of the Authorization header; "" without one.
func KeyID(h http.Header) string {
	auth := h.Get("Authorization")
	if auth == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(auth))
	return "key_" + hex.EncodeToString(sum[:4])
}

// fingerprint identifies a write for its idempotency key: the same key with
// another method, path, account or body is another request.
func fingerprint(c *call) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n%s\n", c.req.Method, c.target.path, c.vc.Account)
	h.Write(c.body)
	return hex.EncodeToString(h.Sum(nil))
}
