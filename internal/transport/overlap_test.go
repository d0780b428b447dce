package transport_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/transport"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// A call that moves nothing is sent while its record is written, and
// answered only once the record is durable. These tests prove the overlap
// by making each side wait for the other, never by timing it.

// hookedStore runs before(ctx, r) at the start of every Reserve, and
// counts the Reserves that returned from the store below.
type hookedStore struct {
	store.Store
	before func(ctx context.Context, r *store.Reservation) error
	done   atomic.Int64
}

func (s *hookedStore) Reserve(ctx context.Context, r *store.Reservation) (store.Admission, error) {
	if s.before != nil {
		if err := s.before(ctx, r); err != nil {
			return store.Admission{}, err
		}
	}
	adm, err := s.Store.Reserve(ctx, r)
	s.done.Add(1)
	return adm, err
}

// wire is the vendor side of an overlap fixture: the stub, and a channel
// closed when the first request reaches it.
type wire struct {
	stub *vendorStub
	seen chan struct{}
	once sync.Once
	// answer, when set, replaces the stub's answer.
	answer func(*http.Request) (*http.Response, error)
}

func (w *wire) RoundTrip(req *http.Request) (*http.Response, error) {
	w.once.Do(func() { close(w.seen) })
	if w.answer != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return w.answer(req)
	}
	return w.stub.RoundTrip(req)
}

func (w *wire) sent() bool {
	select {
	case <-w.seen:
		return true
	default:
		return false
	}
}

type overlapFixture struct {
	*fixture
	hooked   *hookedStore
	wire     *wire
	mu       sync.Mutex
	reported []error
}

// newOverlapFixture is newFixture over a hookedStore, with the policy
// given by pols (nil: the test policy) and a wire that says when it was
// reached.
func newOverlapFixture(t *testing.T, agent string, pols func() (*policy.Policy, error)) *overlapFixture {
	t.Helper()
	if pols == nil {
		pol, err := policy.Parse("test.yaml", []byte(testPolicy))
		if err != nil {
			t.Fatal(err)
		}
		pols = func() (*policy.Policy, error) { return pol, nil }
	}
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "kb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &overlapFixture{hooked: &hookedStore{Store: bs}, wire: &wire{stub: &vendorStub{}, seen: make(chan struct{})}}
	env := transport.NewEnv(transport.Config{Store: f.hooked, Policy: pols, Report: func(err error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.reported = append(f.reported, err)
	}})
	t.Cleanup(func() {
		env.Close()
		bs.Close()
	})
	f.fixture = &fixture{env: env, store: bs, stub: f.wire.stub, rt: transport.New(env, agent, stripevendor.Vendor{}, nil, f.wire)}
	return f
}

// waitForTheWire makes a Reserve wait until the call has reached the
// vendor: a transport that wrote the record before sending would never
// get there, and the bound only turns that hang into a failure.
func (f *overlapFixture) waitForTheWire(ctx context.Context, _ *store.Reservation) error {
	select {
	case <-f.wire.seen:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return errors.New("the call was not sent while its record was being written")
	}
}

// waitFor fails the test when ch is not closed in a while: a transport
// that does not overlap the two would otherwise hang it.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("waited in vain for %s", what)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReadIsSentWhileItsRecordIsWritten: the record's write waits for the
// vendor to have the request, so the call can only succeed if the two
// overlap; the answer still comes after the write.
func TestReadIsSentWhileItsRecordIsWritten(t *testing.T) {
	f := newOverlapFixture(t, "bot", nil)
	f.hooked.before = f.waitForTheWire
	req, _ := newRequest(t, "GET", "https://api.stripe.com/v1/charges/ch_1", "")
	resp, err := f.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if written := f.hooked.done.Load(); written != 1 {
		t.Fatalf("answered with %d records written, want 1", written)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(body, `"ch_1"`) {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	recs := f.records(t)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	if r := recs[0]; r.Decision != policy.Allowed || r.Outcome != audit.Settled || r.Status != 200 || r.RequestID != "req_stub" {
		t.Fatalf("record %+v", r)
	}
}

// TestMoneyIsReservedBeforeItIsSent: the store refuses a refund that
// reached the vendor before its reservation did, and none does.
func TestMoneyIsReservedBeforeItIsSent(t *testing.T) {
	f := newOverlapFixture(t, "bot", nil)
	f.hooked.before = func(context.Context, *store.Reservation) error {
		f.stub.mu.Lock() // the wire saw the charge lookup; the refund is a POST
		defer f.stub.mu.Unlock()
		for _, r := range f.stub.received {
			if strings.HasPrefix(r, "POST ") {
				return errors.New("the call reached the vendor before its reservation was written")
			}
		}
		return nil
	}
	req, _ := newRequest(t, "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=1000")
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := f.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	recs := f.records(t)
	if len(recs) != 1 || recs[0].Outcome != audit.Settled || recs[0].Settled.Micros != 10_000_000 {
		t.Fatalf("records %+v", recs)
	}
}

// TestReadWaitsForItsRecord: the vendor has answered, but the answer does
// not reach the agent until the record is durable.
func TestReadWaitsForItsRecord(t *testing.T) {
	f := newOverlapFixture(t, "bot", nil)
	entered, release := make(chan struct{}), make(chan struct{})
	f.hooked.before = func(context.Context, *store.Reservation) error {
		close(entered)
		<-release
		return nil
	}
	type result struct {
		resp    *http.Response
		err     error
		written int64
	}
	done := make(chan result, 1)
	req, _ := newRequest(t, "GET", "https://api.stripe.com/v1/charges/ch_1", "")
	go func() {
		resp, err := f.rt.RoundTrip(req)
		done <- result{resp, err, f.hooked.done.Load()}
	}()
	waitFor(t, entered, "the record's write")
	waitFor(t, f.wire.seen, "the call to reach the vendor while its record is written")
	// A transport that handed the answer over without waiting for the
	// write shows it here; a correct one waits for release whatever
	// the window.
	select {
	case r := <-done:
		t.Fatalf("the answer (%v) reached the agent before its record was written", r.err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	readAll(t, r.resp)
	if r.resp.StatusCode != 200 || r.written != 1 {
		t.Fatalf("status %d with %d records written", r.resp.StatusCode, r.written)
	}
}

// TestReadWhoseRecordFailsIsRefused: when the record cannot be written,
// the vendor's answer is withheld and closed, the agent gets the store
// error, and the refusal is in the log when the store takes it.
func TestReadWhoseRecordFailsIsRefused(t *testing.T) {
	tests := []struct {
		name   string
		answer func(*http.Request) (*http.Response, error)
		sent   string // what the record says happened to the call
	}{
		{"vendor answered", nil, "its answer (200) was withheld"},
		{"vendor failed", func(*http.Request) (*http.Response, error) {
			return nil, errors.New("connection reset")
		}, "no answer came: connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newOverlapFixture(t, "bot", nil)
			f.hooked.before = func(context.Context, *store.Reservation) error { return errors.New("disk full") }
			vendorBody := &trackedBody{Reader: strings.NewReader(`{"id":"ch_1"}`)}
			f.wire.answer = tt.answer
			if tt.answer == nil {
				f.wire.answer = func(req *http.Request) (*http.Response, error) {
					return &http.Response{StatusCode: 200, Header: http.Header{"Request-Id": {"req_1"}}, Body: vendorBody, Request: req}, nil
				}
			}
			req, _ := newRequest(t, "GET", "https://api.stripe.com/v1/charges/ch_1", "")
			resp, err := f.rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != 503 || !strings.Contains(body, "keybrake_store_error") || strings.Contains(body, `"ch_1"}`) {
				t.Fatalf("status %d body %s", resp.StatusCode, body)
			}
			if tt.answer == nil && !vendorBody.closed.Load() {
				t.Error("the vendor's withheld answer was not closed")
			}
			recs := f.records(t)
			if len(recs) != 1 {
				t.Fatalf("%d records, want the refusal", len(recs))
			}
			r := recs[0]
			if r.Decision != policy.Error || r.Code != "keybrake_store_error" || r.Outcome != audit.None ||
				!strings.Contains(r.Reason, "disk full") || !strings.Contains(r.Reason, tt.sent) {
				t.Fatalf("record %+v", r)
			}
		})
	}
}

// TestReadOnAClosedStore: with nothing writable at all, the agent still
// gets the store error, and the lost record is reported.
func TestReadOnAClosedStore(t *testing.T) {
	f := newOverlapFixture(t, "bot", nil)
	f.store.Close()
	req, _ := newRequest(t, "GET", "https://api.stripe.com/v1/charges/ch_1", "")
	resp, err := f.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 503 || !strings.Contains(body, "keybrake_store_error") {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reported) != 1 || !errors.Is(f.reported[0], store.ErrClosed) {
		t.Fatalf("reported %v, want the refusal's lost record", f.reported)
	}
}

// TestReadIsRecheckedBeforeItIsSent: a policy that revokes the agent
// after the call was authorized stops it before it is sent, as it stops
// a money call after its reservation.
func TestReadIsRecheckedBeforeItIsSent(t *testing.T) {
	allow, err := policy.Parse("test.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	revoke, err := policy.Parse("test.yaml", []byte(strings.Replace(testPolicy, "  bot:\n", "  bot:\n    revoked: true\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int64
	f := newOverlapFixture(t, "bot", func() (*policy.Policy, error) {
		if loads.Add(1) == 1 {
			return allow, nil // authorize
		}
		return revoke, nil // recheck, and everything after
	})
	req, _ := newRequest(t, "GET", "https://api.stripe.com/v1/charges/ch_1", "")
	resp, err := f.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != 401 || f.wire.sent() || f.hooked.done.Load() != 0 {
		t.Fatalf("status %d, sent %v, %d reservations", resp.StatusCode, f.wire.sent(), f.hooked.done.Load())
	}
	recs := f.records(t)
	if len(recs) != 1 || recs[0].Decision != policy.Revoked || recs[0].PolicyHash != revoke.Hash {
		t.Fatalf("records %+v", recs)
	}
}

// TestReadWhoseCallerGivesUp: a caller that gives up while the record is
// written gets its context's error at once; the record is finished in the
// background with what the vendor answered, and Drain waits for it.
func TestReadWhoseCallerGivesUp(t *testing.T) {
	f := newOverlapFixture(t, "bot", nil)
	entered, release := make(chan struct{}), make(chan struct{})
	f.hooked.before = func(context.Context, *store.Reservation) error {
		close(entered)
		<-release
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := newRequest(t, "GET", "https://api.stripe.com/v1/charges/ch_1", "")
	errc := make(chan error, 1)
	go func() {
		resp, err := f.rt.RoundTrip(req.WithContext(ctx))
		if resp != nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, entered, "the record's write")
	waitFor(t, f.wire.seen, "the call to reach the vendor while its record is written")
	cancel()
	// The write is still held: only the caller's context can end the call.
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("RoundTrip = %v, want context.Canceled", err)
	}
	close(release)
	if err := f.env.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := f.records(t)
	if len(recs) != 1 || recs[0].Outcome != audit.Settled || recs[0].Status != 200 {
		t.Fatalf("records %+v", recs)
	}
}
