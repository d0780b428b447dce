package transport

import (
	"context"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/store"
)

// Metrics sees what a chain does, for the Brake's Prometheus collector.
// Its methods must be cheap and must not block: they run on the call's
// path. Latencies are measured with the real clock (time.Since), never
// Config.Now, so an injected clock does not flatten them.
type Metrics interface {
	// Decided is the time from classify to decided (allowed or refused
	// by the policy) of one call.
	Decided(elapsed time.Duration)
	// Committed is the duration of one store write a call waits on or
	// queues: op is "reserve" or "complete".
	Committed(op string, elapsed time.Duration, err error)
	// Reserved is money a call has durably held (a Reserve admitted, not
	// a replay).
	Reserved(agent, vendor string, a money.Amount)
	// Finished is a call's record in its final state as the chain knows
	// it: a refusal (Decision not Allowed), or an allowed call with its
	// Outcome (Settled with Settled set, Released, Unknown) and Reserved.
	// It is called once a call.
	Finished(rec *audit.Record)
}

type noMetrics struct{}

func (noMetrics) Decided(time.Duration)                  {}
func (noMetrics) Committed(string, time.Duration, error) {}
func (noMetrics) Reserved(string, string, money.Amount)  {}
func (noMetrics) Finished(*audit.Record)                 {}

// timedStore times the writes the chain's calls commit.
type timedStore struct {
	store.Store
	m Metrics
}

func (s timedStore) Reserve(ctx context.Context, r *store.Reservation) (store.Admission, error) {
	start := time.Now()
	adm, err := s.Store.Reserve(ctx, r)
	s.m.Committed("reserve", time.Since(start), err)
	return adm, err
}

func (s timedStore) Complete(ctx context.Context, c *store.Completion) error {
	start := time.Now()
	err := s.Store.Complete(ctx, c)
	s.m.Committed("complete", time.Since(start), err)
	return err
}
