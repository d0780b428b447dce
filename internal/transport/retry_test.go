package transport_test

import (
	"context"
	"errors"
	"io"
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

// failingStore stands in for a database that refuses writes for a while
// (PostgreSQL unreachable, a disk that is full): its first `fail`
// Completes return err and write nothing; the rest go to the bbolt store
// below.
type failingStore struct {
	store.Store
	fail  atomic.Int64
	err   error
	calls atomic.Int64
}

func (s *failingStore) Complete(ctx context.Context, c *store.Completion) error {
	s.calls.Add(1)
	if s.fail.Add(-1) >= 0 {
		return s.err
	}
	return s.Store.Complete(ctx, c)
}

type reports struct {
	mu  sync.Mutex
	all []string
}

func (r *reports) add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, err.Error())
}

func (r *reports) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.all, "\n")
}

// retryFixture is a chain over a failingStore; close closes its Env.
func retryFixture(t *testing.T, fail int64, err error) (*transport.RoundTripper, *failingStore, *reports, func()) {
	t.Helper()
	pol, perr := policy.Parse("test.yaml", []byte(testPolicy))
	if perr != nil {
		t.Fatal(perr)
	}
	st, oerr := bolt.Open(filepath.Join(t.TempDir(), "kb.db"), nil)
	if oerr != nil {
		t.Fatal(oerr)
	}
	fs := &failingStore{Store: st, err: err}
	fs.fail.Store(fail)
	rep := &reports{}
	env := transport.NewEnv(transport.Config{Store: fs, Policy: func() (*policy.Policy, error) { return pol, nil }, Report: rep.add})
	var once sync.Once
	closeEnv := func() { once.Do(func() { env.Close() }) }
	t.Cleanup(func() {
		closeEnv()
		st.Close()
	})
	return transport.New(env, "bot", stripevendor.Vendor{}, nil, &vendorStub{}), fs, rep, closeEnv
}

// refund makes one 10.00 USD refund and reads its answer to the end, so
// that its completion is handed to the store.
func refund(t *testing.T, rt *transport.RoundTripper) {
	t.Helper()
	req, _ := newRequest(t, "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=1000")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// only returns the one record in st.
func only(t *testing.T, st store.Store) audit.Record {
	t.Helper()
	var recs []audit.Record
	if err := st.Query(context.Background(), audit.Query{}, func(r *audit.Record) error { recs = append(recs, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	return recs[0]
}

var errUnreachable = errors.New("dial tcp 10.0.0.7:5432: connect: connection refused")

func TestFailedCompletionIsWrittenAgainUntilItLands(t *testing.T) {
	rt, fs, rep, _ := retryFixture(t, 3, errUnreachable)
	refund(t, rt)
	// Until it lands the money stays counted (pending); afterwards it is
	// settled. Polled, not timed: the pauses grow from 100 ms.
	deadline := time.Now().Add(30 * time.Second)
	var rec audit.Record
	for {
		rec = only(t, fs.Store)
		if rec.Outcome != audit.Reserved || time.Now().After(deadline) {
			break
		}
		c, err := fs.Counter(context.Background(), rec.Holds[0].Key)
		if err != nil || c.Total() != rec.Holds[0].Amount {
			t.Fatalf("while the completion waits, counter %s = %+v (%v), want its hold %d counted", rec.Holds[0].Key, c, err, rec.Holds[0].Amount)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rec.Outcome != audit.Settled {
		t.Fatalf("record %d is %s, want settled once the store takes the completion\nreports:\n%s", rec.ID, rec.Outcome, rep.text())
	}
	c, err := fs.Counter(context.Background(), rec.Holds[0].Key)
	if err != nil || c.Settled != rec.Holds[0].Amount || c.Pending != 0 {
		t.Fatalf("counter after the completion landed: %+v (%v), want %d settled and nothing pending", c, err, rec.Holds[0].Amount)
	}
	if got := fs.calls.Load(); got != 4 {
		t.Errorf("Complete was called %d times, want 4 (3 failures, then the one that landed)", got)
	}
	// The recovery is reported after the write that landed, so it may
	// come a moment after the record reads settled.
	for !strings.Contains(rep.text(), "are written now") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	text := rep.text()
	for _, want := range []string{"written again until it lands", "connection refused", "1 completions the store had failed to write are written now"} {
		if !strings.Contains(text, want) {
			t.Errorf("reports do not say %q:\n%s", want, text)
		}
	}
}

func TestCompletionThatCannotLandIsNotRetried(t *testing.T) {
	rt, fs, rep, closeEnv := retryFixture(t, 1, store.ErrNotReserved)
	refund(t, rt)
	closeEnv() // waits for the completion and the last retry attempt
	if got := fs.calls.Load(); got != 1 {
		t.Errorf("Complete was called %d times for a record no longer reserved, want 1", got)
	}
	if text := rep.text(); !strings.Contains(text, "stays counted") || strings.Contains(text, "written again") {
		t.Errorf("reports:\n%s\nwant the one failure, not a retry", text)
	}
}

func TestCloseReportsCompletionsLeftUnwritten(t *testing.T) {
	rt, fs, rep, closeEnv := retryFixture(t, 1<<30, errUnreachable)
	refund(t, rt)
	closeEnv()
	rec := only(t, fs.Store)
	if rec.Outcome != audit.Reserved {
		t.Fatalf("record is %s, want still reserved: the store never took its completion", rec.Outcome)
	}
	c, err := fs.Counter(context.Background(), rec.Holds[0].Key)
	if err != nil || c.Pending != rec.Holds[0].Amount {
		t.Fatalf("counter %+v (%v): the unwritten call's money must stay counted", c, err)
	}
	if text := rep.text(); !strings.Contains(text, "closing with 1 completions the store could not write") {
		t.Errorf("reports:\n%s\nwant what Close left said", text)
	}
}

func TestCompletionsKeptForRetryAreBounded(t *testing.T) {
	defer transport.SetRetryKept(1)()
	rt, fs, rep, closeEnv := retryFixture(t, 1<<30, errUnreachable)
	refund(t, rt)
	refund(t, rt)
	closeEnv()
	text := rep.text()
	if !strings.Contains(text, "1 more wait to be written again, the most kept; this one is not kept") {
		t.Errorf("reports:\n%s\nwant the second completion refused a place", text)
	}
	var reserved int
	fs.Query(context.Background(), audit.Query{}, func(r *audit.Record) error {
		if r.Outcome == audit.Reserved {
			reserved++
		}
		return nil
	})
	if reserved != 2 {
		t.Errorf("%d records reserved, want both: neither completion was written, both stay counted", reserved)
	}
}

// hangingStore stands in for a database that accepts connections and
// never answers: Reserve waits for its context.
type hangingStore struct{ store.Store }

func (hangingStore) Reserve(ctx context.Context, _ *store.Reservation) (store.Admission, error) {
	<-ctx.Done()
	return store.Admission{}, ctx.Err()
}

func TestStoreThatDoesNotAnswerIsARefusalWithinTheBound(t *testing.T) {
	defer transport.SetWriteTimeout(50 * time.Millisecond)()
	pol, err := policy.Parse("test.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "kb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	env := transport.NewEnv(transport.Config{Store: hangingStore{st}, Policy: func() (*policy.Policy, error) { return pol, nil }})
	defer env.Close()
	stub := &vendorStub{}
	rt := transport.New(env, "bot", stripevendor.Vendor{}, nil, stub)
	req, _ := newRequest(t, "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=1000")
	resp, err := rt.RoundTrip(req) // the caller's context has no deadline
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "keybrake_store_error") || !strings.Contains(string(body), "did not answer within 50ms") {
		t.Fatalf("answer %d %s, want 503 keybrake_store_error naming the bound", resp.StatusCode, body)
	}
	stub.mu.Lock()
	defer stub.mu.Unlock()
	for _, r := range stub.received { // the charge's lookup may have gone; the refund must not
		if strings.HasPrefix(r, "POST ") {
			t.Fatalf("the call was sent although its reservation was never written: %s", r)
		}
	}
}
