package keybrake

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/keybrake/keybrake/internal/transport"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/vendors"
)

// The proxy is the Brake's second front door: an http.Handler that an
// agent in any language reaches by changing its SDK's base URL. The agent
// presents a Keybrake agent key (kb_...) where the vendor's SDK puts the
// vendor secret; the key says which agent and which vendor the call is
// for. The call then goes through the same chain as HTTPClient's, and
// below the chain the agent's credential is replaced by the vendor's
// secret, which the agent never holds. A call without a key Keybrake
// knows is refused with 401 in the vendor's own error format and audited;
// nothing of it is forwarded.

// AgentKey is what an agent key stands for.
type AgentKey struct {
	ID     string // "kbk_...": shown in the audit record, never the key
	Agent  string
	Vendor Vendor
}

// KeyResult says what a key lookup found.
type KeyResult int

// The results of a key lookup.
const (
	KeyUnknown     KeyResult = iota // no such key
	KeyFound                        // the key is in force
	KeyRevoked                      // the key was revoked
	KeyUnavailable                  // the keys cannot be read now: every key is refused (503)
)

// KeyFinder finds the agent a presented key belongs to. Implementations
// must compare keys in constant time and be safe for concurrent use.
type KeyFinder interface {
	FindKey(token string) (AgentKey, KeyResult)
}

// ProxyOptions configures Brake.Proxy. Zero fields mean the documented
// defaults.
type ProxyOptions struct {
	// Keys finds the agent of each presented key. Required.
	Keys KeyFinder
	// Secret returns a vendor's secret, keyed by the names the vendor
	// declares (vendors.Custody.SecretNames: STRIPE_SECRET_KEY; the
	// Twilio account SID and auth token; RESEND_API_KEY). nil reads the
	// environment. It is called for every call, so a rotated secret is
	// used at once; it must be cheap.
	Secret func(v Vendor, names []string) (map[string]string, error)
	// MaxInFlight bounds the calls in flight through the proxy; beyond it
	// a call is refused with 503 (keybrake_busy), audited. Zero means
	// 256.
	MaxInFlight int
}

// Proxy returns the proxy: one handler for every vendor whose package
// implements vendors.Custody. It is safe for concurrent use; Shutdown
// drains its calls like any other.
func (b *Brake) Proxy(opts ProxyOptions) (http.Handler, error) {
	if opts.Keys == nil {
		return nil, errors.New("keybrake: ProxyOptions.Keys is required")
	}
	if opts.Secret == nil {
		opts.Secret = envSecret
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 256
	}
	p := &proxy{b: b, opts: opts, slots: make(chan struct{}, opts.MaxInFlight), forwarders: map[AgentKey]*httputil.ReverseProxy{}}
	for _, v := range b.vendors.sorted() {
		if c, ok := v.(vendors.Custody); ok {
			p.vendors = append(p.vendors, custodian{Vendor: v, Custody: c})
		}
	}
	if len(p.vendors) == 0 {
		return nil, errors.New("keybrake: no vendor of this Brake can be proxied (none implements vendors.Custody)")
	}
	return p, nil
}

func envSecret(_ Vendor, names []string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for _, n := range names {
		v := os.Getenv(n)
		if v == "" {
			return nil, fmt.Errorf("$%s is not set", n)
		}
		out[n] = v
	}
	return out, nil
}

type custodian struct {
	vendors.Vendor
	vendors.Custody
}

type proxy struct {
	b       *Brake
	opts    ProxyOptions
	vendors []custodian
	slots   chan struct{}

	mu         sync.Mutex
	forwarders map[AgentKey]*httputil.ReverseProxy
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	owner, ok := p.owner(r.URL.EscapedPath())
	if !ok {
		if r.Body != nil {
			r.Body.Close()
		}
		http.Error(w, "keybrake: no vendor Keybrake proxies serves "+r.URL.Path, http.StatusNotFound)
		p.b.report(fmt.Errorf("keybrake proxy: %s %s is no vendor's path; answered 404", r.Method, truncatePath(r.URL.Path)))
		return
	}
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	default:
		p.refuse(w, r, owner, AgentKey{}, policy.Verdict{Decision: policy.Error, Rule: "proxy", Code: "keybrake_busy",
			Reason: fmt.Sprintf("the proxy has %d calls in flight, its limit; try again shortly", cap(p.slots))})
		return
	}
	key, v, ok := p.identify(r, owner)
	if !ok {
		p.refuse(w, r, owner, key, v)
		return
	}
	vd := p.custodian(key.Vendor)
	if v, ok := p.presentable(r, key, vd); !ok {
		p.refuse(w, r, owner, key, v)
		return
	}
	r, v, ok = tagRun(r)
	if !ok {
		p.refuse(w, r, owner, key, v)
		return
	}
	p.forwarder(key, vd).ServeHTTP(w, r)
}

// The headers that tag a call with its run and principal (WithRun,
// WithPrincipal); they go no further than the proxy.
const (
	runHeader       = "Keybrake-Run"
	principalHeader = "Keybrake-On-Behalf-Of"
)

// tagRun carries the run and principal headers into the call's context,
// where the chain checks and records them; a header given twice is
// refused, since either value could be the one meant.
func tagRun(r *http.Request) (*http.Request, policy.Verdict, bool) {
	ctx := r.Context()
	for _, h := range []string{runHeader, principalHeader} {
		vs := r.Header.Values(h)
		switch {
		case len(vs) > 1:
			code := "keybrake_bad_run"
			if h == principalHeader {
				code = "keybrake_bad_principal"
			}
			return r, policy.Verdict{Decision: policy.Blocked, Rule: "run", Code: code,
				Reason: fmt.Sprintf("%s is given %d times; give it once", h, len(vs))}, false
		case len(vs) == 1 && h == runHeader:
			ctx = transport.WithRun(ctx, vs[0])
		case len(vs) == 1:
			ctx = transport.WithPrincipal(ctx, vs[0])
		}
	}
	if ctx == r.Context() {
		return r, policy.Verdict{}, true
	}
	return r.WithContext(ctx), policy.Verdict{}, true
}

// flushEvery bounds how long a response body the vendor streams slowly
// waits in the proxy before what has come is passed on. A positive
// interval, not "flush every write": with -1, ReverseProxy sends the
// headers in a write (and a packet) of their own before the body of every
// answer, and the agent wakes twice; with 0 a slow body of known length
// would wait for its end. Bodies of unknown length and event streams are
// flushed at once whatever it is (ReverseProxy's own rule).
const flushEvery = 10 * time.Millisecond

// buffers are ReverseProxy's copy buffers: without a pool it makes a
// 32 KiB one for every answer, which at hundreds of calls a second is most
// of the proxy's garbage.
var buffers = bufferPool{sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ sync.Pool }

func (p *bufferPool) Get() []byte  { return *p.Pool.Get().(*[]byte) }
func (p *bufferPool) Put(b []byte) { p.Pool.Put(&b) }

// forwarder is the ReverseProxy of key's calls: its chain, and a Rewrite
// that sends the call to the vendor's host for its path without the
// agent's key. One per key, kept, like the chain.
func (p *proxy) forwarder(key AgentKey, vd custodian) *httputil.ReverseProxy {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rp, ok := p.forwarders[key]; ok {
		return rp
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			host, _ := vd.Host(pr.In.URL.EscapedPath())
			pr.Out.URL = &url.URL{Scheme: "https", Host: host, Path: pr.In.URL.Path, RawPath: pr.In.URL.RawPath, RawQuery: pr.In.URL.RawQuery}
			pr.Out.Host = ""
			pr.Out.Header.Del("Authorization") // the agent's key goes no further than here
			pr.Out.Header.Del(runHeader)       // nor do the run's tags: the chain has them
			pr.Out.Header.Del(principalHeader)
			// ReverseProxy puts back "Te: trailers" and an Upgrade after
			// stripping the hop-by-hop headers; a brake decides one
			// request and answer, never a tunnel, so neither goes on.
			pr.Out.Header.Del("Te")
			pr.Out.Header.Del("Connection")
			pr.Out.Header.Del("Upgrade")
		},
		Transport:     p.chainLocked(key, vd),
		FlushInterval: flushEvery,
		BufferPool:    &buffers,
		ErrorHandler:  func(w http.ResponseWriter, r *http.Request, err error) { unreachable(w, r, vd, err) },
	}
	p.forwarders[key] = rp
	return rp
}

// owner is the vendor whose error format a call is answered in before its
// key is known: the first that serves its path.
func (p *proxy) owner(path string) (custodian, bool) {
	for _, v := range p.vendors {
		if _, ok := v.Host(path); ok {
			return v, true
		}
	}
	return custodian{}, false
}

func (p *proxy) custodian(v Vendor) custodian {
	for _, c := range p.vendors {
		if c.Name() == string(v) {
			return c
		}
	}
	return custodian{}
}

// identify finds the agent key the request presents, the way the path's
// vendor's SDKs present a credential, or the verdict refusing it; a key
// that is in the file but refused (revoked, another vendor's) is returned
// with its verdict, so the refusal's record names it.
func (p *proxy) identify(r *http.Request, owner custodian) (AgentKey, policy.Verdict, bool) {
	verdict := func(code, format string, args ...any) policy.Verdict {
		return policy.Verdict{Decision: policy.Revoked, Rule: "keys", Code: code, Reason: fmt.Sprintf(format, args...)}
	}
	refused := func(code, format string, args ...any) (AgentKey, policy.Verdict, bool) {
		return AgentKey{}, verdict(code, format, args...), false
	}
	token, ok := owner.PresentedKey(r.Header)
	if !ok {
		return refused("keybrake_no_key", "no Keybrake agent key is presented the way %s's SDKs send a key (or the Authorization header is malformed)", owner.Name())
	}
	if !strings.HasPrefix(token, "kb_") {
		for _, v := range p.vendors {
			if v.LooksLikeSecret(token) {
				return refused("keybrake_vendor_secret", "the agent presented a %s secret (%s); give the agent its Keybrake key (kb_...) and keep the secret in the proxy", v.Name(), vendors.Fingerprint(token))
			}
		}
		return refused("keybrake_unknown_key", "the key presented is not a Keybrake agent key (kb_...)")
	}
	key, res := p.opts.Keys.FindKey(token)
	switch {
	case res == KeyUnavailable:
		return AgentKey{}, policy.Verdict{Decision: policy.Error, Rule: "keys", Code: "keybrake_keys_unavailable",
			Reason: "the proxy has no valid keys file in force; every key is refused until it is fixed"}, false
	case res == KeyRevoked:
		return key, verdict("keybrake_key_revoked", "agent key %s (agent %s) is revoked", key.ID, key.Agent), false
	case res != KeyFound:
		return refused("keybrake_unknown_key", "the agent key presented is not in the keys file")
	case p.b.policies.keyStoppedBy(key.ID) != "":
		// keybrake keys revoke --db: every replica on the fleet's store
		return key, verdict("keybrake_key_revoked", "agent key %s (agent %s) is revoked by %s", key.ID, key.Agent, p.b.policies.keyStoppedBy(key.ID)), false
	case string(key.Vendor) != owner.Name():
		return key, verdict("keybrake_key_wrong_vendor", "agent key %s is for %s, and this is a %s call", key.ID, key.Vendor, owner.Name()), false
	}
	return key, policy.Verdict{}, true
}

// presentable checks, before the chain decides anything, that the proxy
// holds the vendor's secret and that it fits the call (Twilio: the
// account in the path is the one held).
func (p *proxy) presentable(r *http.Request, key AgentKey, vd custodian) (policy.Verdict, bool) {
	secret, err := p.opts.Secret(key.Vendor, vd.SecretNames())
	if err != nil {
		return policy.Verdict{Decision: policy.Error, Rule: "proxy", Code: "keybrake_no_secret",
			Reason: fmt.Sprintf("the proxy holds no %s secret: %v", key.Vendor, err)}, false
	}
	probe := r.Clone(r.Context())
	probe.Body = nil
	if err := vd.Present(probe, secret); err != nil {
		if errors.Is(err, vendors.ErrNoSecret) {
			return policy.Verdict{Decision: policy.Error, Rule: "proxy", Code: "keybrake_no_secret",
				Reason: fmt.Sprintf("the proxy's %s secret is unusable: %v", key.Vendor, err)}, false
		}
		return policy.Verdict{Decision: policy.Blocked, Rule: "proxy", Code: "keybrake_secret_mismatch",
			Reason: err.Error()}, false
	}
	return policy.Verdict{}, true
}

// refuse answers a call the proxy refuses before the chain decides it, in
// the owner's error format, with its audit record, which names the agent
// and key id of key when they are known.
func (p *proxy) refuse(w http.ResponseWriter, r *http.Request, owner custodian, key AgentKey, v policy.Verdict) {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.Host = "https", ""
	out.URL.Host, _ = owner.Host(r.URL.EscapedPath())
	out.Header.Del("Authorization")
	rt := transport.New(p.b.env, key.Agent, owner.Vendor, nil, nil)
	if key.ID != "" {
		rt = rt.WithKeyID(key.ID)
	}
	resp, err := rt.Refuse(out, v)
	if err != nil || resp == nil {
		http.Error(w, "keybrake: refused: "+v.Reason, v.Decision.Status())
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// unreachable answers a call the chain sent, or tried to, without getting
// the vendor's answer (its record says so: released if nothing was sent,
// unknown otherwise), as 502 in the vendor's own error format, so that
// the agent's SDK reads it as the vendor's error rather than failing to
// parse a body meant for another vendor's SDK.
func unreachable(w http.ResponseWriter, r *http.Request, vd custodian, err error) {
	resp := vd.Deny(r, vendors.Refusal{Status: http.StatusBadGateway, Code: "keybrake_vendor_unreachable",
		Message: "keybrake: the vendor could not be reached: " + err.Error()})
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// chainLocked is the agent's chain for key, over the custody step that
// presents the vendor's secret. Called with mu held, once per key.
func (p *proxy) chainLocked(key AgentKey, vd custodian) http.RoundTripper {
	custody := &presenting{vd: vd, secret: func() (map[string]string, error) { return p.opts.Secret(key.Vendor, vd.SecretNames()) }, next: p.b.base}
	return transport.New(p.b.env, key.Agent, vd.Vendor, p.b.endpoints[key.Vendor], custody).WithKeyID(key.ID)
}

// presenting puts the vendor's secret on each request the chain sends
// (the call and its lookups), on a clone: below the chain, after every
// decision.
type presenting struct {
	vd     custodian
	secret func() (map[string]string, error)
	next   http.RoundTripper
}

func (s *presenting) RoundTrip(req *http.Request) (*http.Response, error) {
	secret, err := s.secret()
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("keybrake proxy: the %s secret: %w (%w)", s.vd.Name(), err, transport.ErrNotSent)
	}
	out := req.Clone(req.Context())
	if err := s.vd.Present(out, secret); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("keybrake proxy: %w (%w)", err, transport.ErrNotSent)
	}
	return s.next.RoundTrip(out)
}

func truncatePath(p string) string { return vendors.Truncate(p, vendors.QuoteLimit) }
