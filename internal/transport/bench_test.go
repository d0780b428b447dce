package transport_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/transport"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// nullStore admits every reservation and keeps nothing but facts (the
// charge's currency, learnt by the first refund's lookup), so that a
// benchmark measures the transport's own work, not a disk's.
type nullStore struct {
	store.Store // nil: the methods a call does not use panic
	ids         atomic.Uint64
	facts       sync.Map
}

func (s *nullStore) Reserve(_ context.Context, r *store.Reservation) (store.Admission, error) {
	return store.Admission{Result: store.Admitted, ID: s.ids.Add(1), Holds: r.Holds}, nil
}
func (s *nullStore) Complete(context.Context, *store.Completion) error { return nil }
func (s *nullStore) Append(context.Context, *audit.Record) (uint64, error) {
	return s.ids.Add(1), nil
}
func (s *nullStore) Fact(_ context.Context, key string) (string, bool, error) {
	v, ok := s.facts.Load(key)
	if !ok {
		return "", false, nil
	}
	return v.(string), true, nil
}
func (s *nullStore) SetFact(_ context.Context, key, value string) error {
	s.facts.Store(key, value)
	return nil
}
func (s *nullStore) Counter(context.Context, string) (store.Counter, error) {
	return store.Counter{}, nil
}
func (s *nullStore) Counters(context.Context, string, func(string, store.Counter) error) error {
	return nil
}
func (s *nullStore) Resettle(context.Context, uint64, []int64, money.Amount) error { return nil }

// BenchmarkRoundTrip is the transport's own cost of one call, from the
// SDK's request to the end of its response body, over a store that writes
// nothing and a vendor stub that answers at once.
func BenchmarkRoundTrip(b *testing.B) {
	pol, err := policy.Parse("test.yaml", []byte(testPolicy))
	if err != nil {
		b.Fatal(err)
	}
	st := &nullStore{}
	env := transport.NewEnv(transport.Config{Store: st, Policy: func() (*policy.Policy, error) { return pol, nil }})
	defer env.Close()
	stub := &vendorStub{}
	rt := transport.New(env, "bot", stripevendor.Vendor{}, nil, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := stub.RoundTrip(r)
		stub.mu.Lock()
		stub.received = stub.received[:0] // keep the stub's log from growing
		stub.mu.Unlock()
		return resp, err
	}))
	tests := []struct {
		name, method, url, body string
	}{
		{"refund", "POST", "https://api.stripe.com/v1/refunds", "charge=ch_1&amount=1000"},
		{"read", "GET", "https://api.stripe.com/v1/charges/ch_1", ""},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			var seq atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, err := http.NewRequest(tt.method, tt.url, nil)
					if err != nil {
						b.Fatal(err)
					}
					if tt.body != "" {
						req.Body = io.NopCloser(strings.NewReader(tt.body))
						req.ContentLength = int64(len(tt.body))
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
						req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d", seq.Add(1)))
					}
					req.Header.Set("Authorization", "Bearer sk_test_123")
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
}
