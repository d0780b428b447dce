package transport

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/approval"
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
	keyID    string // the agent key the proxy authenticated; "": a fingerprint of Authorization
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

// WithKeyID returns a copy of t whose audit records name the agent key id
// (the proxy's kbk_...) instead of a fingerprint of the request's
// Authorization header.
func (t *RoundTripper) WithKeyID(id string) *RoundTripper {
	c := *t
	c.keyID = id
	return &c
}

// Refuse refuses req with v without deciding it: a front door (the proxy)
// that could not identify the agent. The refusal is audited and answered
// in the vendor's own format, like every refusal; req's body is closed.
func (t *RoundTripper) Refuse(req *http.Request, v policy.Verdict) (*http.Response, error) {
	c := t.begin(req)
	if cv, ok := t.admit(c); !ok {
		return t.refuse(c, cv)
	}
	if req.Body != nil {
		req.Body.Close()
	}
	return t.refuse(c, v)
}

// call is one request on its way through the stages.
type call struct {
	req    *http.Request
	start  time.Time
	day    string // in the policy's time zone, once decided
	pol    *policy.Policy
	body   []byte
	target target
	vc     *vendors.Call
	rule   *policy.Rule   // the allow rule, once authorized
	needs  policy.Needs   // what deciding the call needs beyond its request
	who    policy.Subject // whom the call touches, as far as known
	charge policy.Charge  // what the call counts, once decided
	// held is the policy's Held verdict, when the call needs a person's
	// approval (approve.go); approvedBy who gave the one it used.
	held       *policy.Verdict
	approval   *approval.Approval // the approved one it goes through on, used once reserved
	retrying   *approval.Approval // the used one whose call this claims to retry
	approvedBy string
	// gathered: who holds what gather learned (scope.go); shadowHolds
	// are the shadow policy's counters the call holds (shadow.go).
	gathered    bool
	shadowHolds []audit.Hold
	rec         audit.Record
	done        func() // ends the call for Drain, once; see admit
	// classified is when classify began, on the real clock (metrics).
	classified time.Time
	span       trace.Span // nil when the Brake does not trace (trace.go)
}

// RoundTrip is the story of one call: check and classify it, authorize it
// by the policy, resolve what the request does not say (its amount,
// currency or customer), gather what Keybrake knows or must fetch of whom
// it touches, decide its scope, price and limits, hold it for a person's
// approval when the policy says so, reserve its money
// durably against every limit, send it, and settle the reservation from
// the response. A call that holds nothing is sent while its record is
// written, and answered once the record is durable (overlap.go). Every
// path writes one audit record. A refusal is a response in
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
	if v, ok := t.tag(c); !ok { // run.go
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
	if v, ok := t.approve(c); !ok { // approve.go
		return t.refuse(c, v)
	}
	t.shadow(c) // shadow.go: decides nothing for the call
	if t.holdsNothing(c) {
		if v, ok := t.recheck(c); !ok {
			return t.refuse(c, v)
		}
		if v, ok := t.useApproval(c, store.Admission{}); !ok { // approve.go
			return t.refuse(c, v)
		}
		return t.sendRecording(c)
	}
	adm, v, ok := t.reserve(c)
	if !ok {
		return t.refuse(c, v)
	}
	if v, ok := t.recheck(c); !ok {
		return t.refuseReserved(c, adm, v)
	}
	if v, ok := t.useApproval(c, adm); !ok { // approve.go
		return t.refuseReserved(c, adm, v)
	}
	return t.send(c, adm)
}

func (t *RoundTripper) begin(req *http.Request) *call {
	now := t.env.now()
	c := &call{req: req, start: now}
	c.rec = audit.Record{
		Time:   now,
		Agent:  t.agent,
		Vendor: t.vendor.Name(),
		Method: req.Method,
		KeyID:  t.keyID,
	}
	if c.rec.KeyID == "" {
		c.rec.KeyID = KeyID(req.Header)
	}
	if req.URL != nil {
		c.rec.Host = req.URL.Host
		c.rec.Path = req.URL.EscapedPath()
	}
	t.startSpan(c) // traces: c.req carries the call's span from here on
	return c
}

// classify refuses what cannot be read with certainty and asks the vendor
// what the call is.
func (t *RoundTripper) classify(c *call) (policy.Verdict, bool) {
	c.classified = time.Now() // metrics: decision latency starts
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
	recordInputs(&c.rec, vc, false)
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
		Run:      c.rec.Run,
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
	recordInputs(&c.rec, c.vc, c.needs.Customer)
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
			t.env.report(&Failure{Op: "fact_write", Agent: t.agent, Vendor: t.vendor.Name(),
				Err: fmt.Errorf("keybrake: fact %s learned by a %s lookup could not be kept: %w", f.Key, t.vendor.Name(), err)})
		}
	}
}

// decide asks the policy, with everything known of the call, whether it
// is in scope, what it costs and which counters it must fit.
func (t *RoundTripper) decide(c *call) (policy.Verdict, bool) {
	defer func() { t.env.metrics.Decided(time.Since(c.classified)) }() // metrics
	vc := c.vc
	c.day = t.env.days.day(c.start, c.pol.Zone())
	v, charge := c.pol.Decide(policy.Call{
		Request:    t.policyRequest(c),
		Subject:    c.who,
		MovesMoney: vc.MovesMoney,
		Amount:     vc.Amount,
		Priced:     vc.Priced,
		Count:      vc.Count,
	}, c.rule, c.day)
	if v.Decision == policy.Held {
		held := v
		c.held = &held // approve.go decides it
		v = policy.Verdict{Decision: policy.Allowed, Rule: c.rule.ID}
	}
	if v.Decision != policy.Allowed {
		return v, false
	}
	c.charge = charge
	// Settle reads the call's amount: a priced call's is the policy's.
	vc.Amount, vc.Count = charge.Amount, charge.Count
	c.rec.Amount = charge.Amount
	return v, true
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
