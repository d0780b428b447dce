package transport_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/transport"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store/bolt"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// seen is a transport.Metrics that keeps what it is told.
type seen struct {
	mu       sync.Mutex
	decided  int
	commits  map[string]int
	reserved []money.Amount
	finished []audit.Record
}

func (s *seen) Decided(time.Duration) { s.mu.Lock(); s.decided++; s.mu.Unlock() }
func (s *seen) Committed(op string, _ time.Duration, _ error) {
	s.mu.Lock()
	s.commits[op]++
	s.mu.Unlock()
}
func (s *seen) Reserved(_, _ string, a money.Amount) {
	s.mu.Lock()
	s.reserved = append(s.reserved, a)
	s.mu.Unlock()
}
func (s *seen) Finished(r *audit.Record) {
	s.mu.Lock()
	s.finished = append(s.finished, *r)
	s.mu.Unlock()
}

// failingRefunds answers a refund of 20.00 with a 500, the rest as the stub.
type failingRefunds struct{ *vendorStub }

func (f failingRefunds) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil {
		return f.vendorStub.RoundTrip(req)
	}
	b, _ := io.ReadAll(req.Body)
	req.Body.Close()
	if strings.Contains(string(b), "amount=2000") {
		return &http.Response{StatusCode: 500, Status: "500", Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{}`)), Request: req}, nil
	}
	req.Body = io.NopCloser(strings.NewReader(string(b)))
	return f.vendorStub.RoundTrip(req)
}

// TestMetricsSeeEveryCallOnce: every call's final record reaches Metrics
// exactly once and as the store keeps it; the money reserved is the
// records' Reserved; both store writes are timed.
func TestMetricsSeeEveryCallOnce(t *testing.T) {
	pol, err := policy.Parse("test.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "kb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &seen{commits: map[string]int{}}
	env := transport.NewEnv(transport.Config{Store: st, Policy: func() (*policy.Policy, error) { return pol, nil }, Metrics: m})
	defer st.Close()
	defer env.Close()
	rt := transport.New(env, "bot", stripevendor.Vendor{}, nil, failingRefunds{&vendorStub{}})

	calls := []struct{ method, url, body string }{
		{"POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=1000"}, // settled
		{"POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=2000"}, // 500: unknown
		{"GET", "https://api.stripe.com/v1/charges/ch_1", ""},                    // holds nothing
		{"POST", "https://api.stripe.com/v1/customers", "email=a%40b.c"},         // blocked
		{"POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=9000"}, // over per_call_max
	}
	for _, c := range calls {
		req, _ := newRequest(t, c.method, c.url, c.body)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err := env.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	st.Query(context.Background(), audit.Query{}, func(r *audit.Record) error { recs = append(recs, *r); return nil })

	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.finished) != len(calls) || len(recs) != len(calls) {
		t.Fatalf("%d calls, %d records, Metrics saw %d", len(calls), len(recs), len(m.finished))
	}
	var wantReserved, gotReserved int64
	byID := map[uint64]audit.Record{}
	for _, r := range recs {
		byID[r.ID] = r
		wantReserved += r.Reserved.Micros
	}
	for _, a := range m.reserved {
		gotReserved += a.Micros
	}
	if gotReserved != wantReserved || wantReserved != 30_000_000 {
		t.Errorf("reserved %d micros, the records %d", gotReserved, wantReserved)
	}
	outcomes := map[audit.Outcome]int{}
	for _, f := range m.finished {
		r := byID[f.ID]
		if f.Decision != r.Decision || f.Code != r.Code || f.Outcome != r.Outcome || f.Settled != r.Settled || f.Reserved != r.Reserved {
			t.Errorf("Metrics saw %s/%s/%s settled %v reserved %v; the store keeps %s/%s/%s settled %v reserved %v",
				f.Decision, f.Code, f.Outcome, f.Settled, f.Reserved, r.Decision, r.Code, r.Outcome, r.Settled, r.Reserved)
		}
		outcomes[f.Outcome]++
	}
	if outcomes[audit.Settled] != 2 || outcomes[audit.Unknown] != 1 || outcomes[audit.None] != 2 {
		t.Errorf("outcomes %v", outcomes)
	}
	if m.commits["reserve"] != 3 || m.commits["complete"] != 3 {
		t.Errorf("store writes timed: %v", m.commits)
	}
	if m.decided < 3 {
		t.Errorf("%d decisions timed", m.decided)
	}
}
