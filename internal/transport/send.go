package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/vendors"
)

// readBody reads the whole request body, at most limit bytes, and closes it
// on every path: RoundTrip owns the caller's body from its first line.
func readBody(req *http.Request, limit int64) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	b, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return nil, vendors.Invalidf("keybrake_bad_body", "request body could not be read: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, vendors.Invalidf("keybrake_body_too_large", "request body is over the %d-byte limit", limit)
	}
	return b, nil
}

// outgoing builds the request that goes on the wire: a clone of the
// caller's, never the caller's itself, addressed to the configured endpoint
// when there is one, with a body that can be replayed.
func (t *RoundTripper) outgoing(c *call) *http.Request {
	out := c.req.Clone(c.req.Context())
	out.URL.Path = c.target.path
	out.URL.RawPath = ""
	if t.endpoint != nil {
		out.URL.Scheme = t.endpoint.Scheme
		out.URL.Host = t.endpoint.Host
		out.URL.Path = strings.TrimSuffix(t.endpoint.Path, "/") + c.target.path
	}
	out.Host = ""
	setBody(out, c.body)
	return out
}

func setBody(r *http.Request, body []byte) {
	if len(body) == 0 {
		r.Body = http.NoBody
		r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		r.ContentLength = 0
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
}

// lookupLimit bounds a lookup's response body.
const lookupLimit = 1 << 20

// getter fetches from the vendor with the call's own credentials through the
// same underlying transport, for what the request does not carry.
func (t *RoundTripper) getter(c *call) vendors.Getter {
	header := make(http.Header, len(c.req.Header))
	for k, vs := range c.req.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Idempotency-Key", "Content-Length", "Content-Type", "Transfer-Encoding":
			continue
		}
		header[k] = append([]string(nil), vs...)
	}
	if lh, ok := t.vendor.(vendors.LookupHeaderer); ok {
		for k, vs := range lh.LookupHeader() {
			header[k] = append([]string(nil), vs...)
		}
	}
	return func(ctx context.Context, path string) (int, []byte, error) {
		return Fetch(ctx, t.next, c.target.host, t.endpoint, path, header)
	}
}

// Fetch GETs path (an absolute path with its query) from host over https,
// or from endpoint (a base URL) when it is set, through next, with a copy
// of header, and returns the status and the body, refusing bodies over
// 1 MiB. It is Keybrake's own read of the vendor: a call's lookups, and
// Reconcile's.
func Fetch(ctx context.Context, next http.RoundTripper, host string, endpoint *url.URL, path string, header http.Header) (int, []byte, error) {
	u, err := url.Parse(path)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
		return 0, nil, fmt.Errorf("lookup path %q is not an absolute path", path)
	}
	target := url.URL{Scheme: "https", Host: host, Path: u.Path, RawQuery: u.RawQuery}
	if endpoint != nil {
		target.Scheme = endpoint.Scheme
		target.Host = endpoint.Host
		target.Path = strings.TrimSuffix(endpoint.Path, "/") + u.Path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, lookupLimit+1))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if len(b) > lookupLimit {
		return resp.StatusCode, nil, fmt.Errorf("lookup response is over %d bytes", lookupLimit)
	}
	return resp.StatusCode, b, nil
}

// send puts the call on the wire and arranges for its reservation to be
// settled from the response.
func (t *RoundTripper) send(c *call, adm store.Admission) (*http.Response, error) {
	resp, err := t.next.RoundTrip(t.outgoing(c))
	return t.answer(c, adm, resp, err)
}

// answer hands the vendor's answer (or next's error) to the caller, and
// arranges for the reservation adm to be settled from it.
func (t *RoundTripper) answer(c *call, adm store.Admission, resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		outcome, why := audit.Unknown, "no response: "
		if nothingSent(err) {
			outcome, why = audit.Released, "not sent: "
		}
		t.complete(c, completion{outcome: outcome, reason: why + err.Error()})
		return nil, err
	}
	c.rec.Status = resp.StatusCode
	c.rec.RequestID = t.requestID(resp.Header)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if (c.vc.MovesMoney || c.vc.Creates != "") && adm.Result != store.Replayed {
			if adm.RetryOf == 0 && t.replayed(resp.Header) {
				// A key the store had forgotten and the vendor had not. (A
				// retry of a recorded attempt, RetryOf set, is settled from
				// the body the vendor replays: its first attempt's money.)
				t.complete(c, completion{outcome: audit.Settled, settlement: vendors.Settlement{Units: 0},
					reason: "the vendor replayed an earlier answer to this idempotency key: nothing new moved"})
				return resp, nil
			}
			resp.Body = t.settleOnRead(c, resp.Body)
			return resp, nil
		}
		t.complete(c, completion{outcome: audit.Settled, settlement: vendors.Settlement{Units: -1}})
	case resp.StatusCode >= 500:
		t.complete(c, completion{outcome: audit.Unknown, reason: fmt.Sprintf("vendor answered %d: the outcome is unknown", resp.StatusCode)})
	case resp.StatusCode >= 400:
		t.complete(c, completion{outcome: audit.Released, reason: fmt.Sprintf("vendor refused it with %d", resp.StatusCode)})
	default:
		// 1xx and 3xx: the vendor did not say it executed or refused it.
		t.complete(c, completion{outcome: audit.Unknown, reason: fmt.Sprintf("vendor answered %d", resp.StatusCode)})
	}
	return resp, nil
}

// ErrNotSent, wrapped in an error the next RoundTripper returns, says that
// nothing of the request was sent (the proxy could not present the
// vendor's secret): the call's reservation is released, not left unknown.
var ErrNotSent = errors.New("not sent")

// nothingSent reports whether a transport error certainly came before any
// byte of the request reached the vendor.
func nothingSent(err error) bool {
	if errors.Is(err, ErrNotSent) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// requestID is the vendor's ID of its answer, from the headers its Info
// names.
func (t *RoundTripper) requestID(h http.Header) string {
	for _, k := range t.info.RequestIDHeaders {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// replayed reports whether the vendor says its answer replays an earlier
// one (its Info's ReplayHeader).
func (t *RoundTripper) replayed(h http.Header) bool {
	return t.info.ReplayHeader != "" && strings.EqualFold(h.Get(t.info.ReplayHeader), "true")
}

// settleLimit bounds what is kept of a response body for settlement.
const settleLimit = 1 << 20

// settleOnRead streams the body to the caller and settles the reservation
// from it when the caller reaches its end or closes it; until then the
// call is in flight, and Drain waits for it.
func (t *RoundTripper) settleOnRead(c *call, body io.ReadCloser) io.ReadCloser {
	return &settlingBody{rc: body, settle: func(b []byte, err error) {
		if err != nil {
			t.complete(c, completion{outcome: audit.Unknown, reason: "response body unreadable: " + err.Error()})
			return
		}
		st, serr := t.vendor.Settle(c.vc, b)
		if serr != nil {
			t.complete(c, completion{outcome: audit.Unknown, reason: "response did not say what moved: " + serr.Error()})
			return
		}
		if c.vc.Creates == "customer" && st.Object != "" {
			t.rememberCreated(c, st.Object)
		}
		t.complete(c, completion{outcome: audit.Settled, settlement: st})
	}}
}

// settlingBody is not meant for concurrent Read calls, like any body, but
// a Close racing a Read (a caller giving up) must not settle twice or tear
// the buffer: mu guards the settlement state.
type settlingBody struct {
	rc     io.ReadCloser
	mu     sync.Mutex
	buf    bytes.Buffer
	over   bool
	done   bool
	settle func(body []byte, err error)
}

func (b *settlingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keep(p[:n])
	if err == io.EOF {
		b.finish(nil)
	} else if err != nil {
		b.finish(err)
	}
	return n, err
}

func (b *settlingBody) keep(p []byte) {
	if b.over {
		return
	}
	if b.buf.Len()+len(p) > settleLimit {
		b.over = true
		return
	}
	b.buf.Write(p)
}

// Close settles a body the caller did not read to the end by reading the
// rest itself, up to the limit.
func (b *settlingBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		_, err := io.Copy(writerFunc(b.keep), io.LimitReader(b.rc, settleLimit+1))
		b.finish(err)
	}
	return b.rc.Close()
}

func (b *settlingBody) finish(err error) {
	if b.done {
		return
	}
	b.done = true
	if err == nil && b.over {
		err = fmt.Errorf("over the %d-byte settlement limit", settleLimit)
	}
	b.settle(b.buf.Bytes(), err)
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// completion is what a response taught about a reserved call.
type completion struct {
	outcome    audit.Outcome
	settlement vendors.Settlement // for Settled
	reason     string
}

// complete hands the outcome of a reserved call to the store, and ends
// the call: Drain then waits for the write in the completer. The caller
// does not wait for the write: until it lands the reservation stays
// counted, which errs on the safe side.
func (t *RoundTripper) complete(c *call, cp completion) {
	defer c.done()
	sc := &store.Completion{
		ID:        c.rec.ID,
		Outcome:   cp.outcome,
		Status:    c.rec.Status,
		RequestID: c.rec.RequestID,
		Duration:  t.env.now().Sub(c.start),
		Reason:    cp.reason,
	}
	if cp.outcome == audit.Settled {
		sc.Moved = cp.settlement.Moved
		sc.Estimated = cp.settlement.Estimated
		sc.Object = cp.settlement.Object
		settled, err := t.settledHolds(c, cp.settlement)
		if err != nil {
			sc.Outcome = audit.Unknown
			sc.Moved = money.Amount{}
			sc.Reason = "settlement could not be counted: " + err.Error()
		}
		sc.Settled = settled
	}
	rec := c.rec // metrics: the record as this completion leaves it
	rec.Outcome, rec.Settled, rec.Status = sc.Outcome, sc.Moved, sc.Status
	t.finished(c, &rec)
	t.env.completer.enqueue(sc)
}

// settledHolds converts what moved into each hold's unit; a count hold
// settles at the units the vendor reports, at most those reserved.
func (t *RoundTripper) settledHolds(c *call, st vendors.Settlement) ([]int64, error) {
	return SettleHolds(c.pol, c.rec.Holds, st.Moved, func(h audit.Hold) int64 {
		if st.Units >= 0 && st.Units < h.Amount {
			return st.Units
		}
		return h.Amount
	})
}

// SettleHolds converts moved into each money hold's currency as the
// policy counts it (rounded up), gives each count hold units(h) and each
// hold of calls (a rate or run count) its one call: what a reservation's
// holds settle at. Reconcile shares it with the chain.
func SettleHolds(pol *policy.Policy, holds []audit.Hold, moved money.Amount, units func(audit.Hold) int64) ([]int64, error) {
	out := make([]int64, len(holds))
	for i, h := range holds {
		switch h.Unit {
		case "units":
			out[i] = units(h)
			continue
		case "calls": // a rate or run count: the call was made
			out[i] = h.Amount
			continue
		}
		if moved.IsZero() {
			continue
		}
		a, err := pol.Convert(moved, money.Currency(h.Unit))
		if err != nil {
			return nil, err
		}
		out[i] = a.Micros
	}
	return out, nil
}
