// Package store is where Keybrake keeps what must survive the process: the
// day's counters against every limit, the reservation each call holds, the
// idempotency keys it has seen, and the audit record of every call.
//
// The interface is shaped around the operations a call needs (reserve,
// complete, append, query), not around any database. A reservation and the
// call's audit record are one record: Reserve commits it, durably, before a
// byte of the call leaves the process; Complete finishes it after the
// response. A crash in between leaves a record that says so and keeps its
// money counted.
//
// Implementations: store/bolt (embedded bbolt file, the default) and
// store/postgres (fleets of agent processes). store/storetest holds the
// conformance suite every implementation runs.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
)

// Sentinel errors. Implementations wrap them with %w and detail.
var (
	ErrClosed      = errors.New("store: closed")
	ErrNotFound    = errors.New("store: no such record")
	ErrNotReserved = errors.New("store: record is not reserved")
	ErrLocked      = errors.New("store: database is locked by another process")
	ErrNotEstimate = errors.New("store: record is not a settled estimate")
)

// Store is the durable state of one or more Brakes. Every method is safe for
// concurrent use, honours ctx while it waits, and returns an error when it
// cannot do what it says; a caller treats any error as "not done" and fails
// closed.
type Store interface {
	// Reserve atomically checks that every hold fits its limit (settled,
	// pending and unknown amounts of the counter plus this hold must not
	// exceed Limit), and if all fit and the idempotency key allows it, adds
	// the holds to their counters as pending and writes r.Record with
	// Outcome Reserved and a new ID. The write is durable when Reserve
	// returns Admitted or Replayed. For every other result nothing is
	// written. See Result for idempotency keys.
	Reserve(ctx context.Context, r *Reservation) (Admission, error)

	// Complete finishes a Reserved record: Outcome Settled moves each hold
	// from pending to settled at c.Settled[i]; Released removes the holds;
	// Unknown keeps them counted as unknown. It returns ErrNotFound for an
	// unknown ID and ErrNotReserved when the record is not Reserved.
	Complete(ctx context.Context, c *Completion) error

	// Resettle replaces the estimated settlement of a Settled record
	// (Estimated true: the vendor had not priced it yet) with the real
	// one: each hold's counter moves from its estimate to settled[i], the
	// record's Settled becomes moved and Estimated false. It returns
	// ErrNotFound for an unknown ID and ErrNotEstimate for a record that
	// is not a settled estimate (already reconciled, for one).
	Resettle(ctx context.Context, id uint64, settled []int64, moved money.Amount) error

	// Append writes a record that holds nothing (a refused call) and
	// returns its ID.
	Append(ctx context.Context, r *audit.Record) (uint64, error)

	// Query calls fn for each selected record, oldest first, and stops at
	// the first error fn returns, which Query returns.
	Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error

	// Counter returns the totals of one counter; a counter never used is
	// the zero Counter.
	Counter(ctx context.Context, key string) (Counter, error)

	// Fact and SetFact keep small facts that never change once learned,
	// such as the currency of a charge. Fact reports ok false when the key
	// was never set.
	Fact(ctx context.Context, key string) (value string, ok bool, err error)
	SetFact(ctx context.Context, key, value string) error

	// Close waits for writes in progress and releases the store. Methods
	// called after Close return ErrClosed.
	Close() error
}

// Reservation is what Reserve commits.
type Reservation struct {
	// Record is the call's audit record. Reserve sets its ID, Outcome
	// (Reserved) and Holds (from Holds below); the caller fills the rest.
	Record audit.Record
	// Holds are the limits the call counts against, in each limit's unit.
	Holds []audit.Hold
	// Idempotency, when set, ties the reservation to an idempotency key.
	Idempotency *Idempotency
}

// Idempotency identifies a write the vendor will execute at most once.
type Idempotency struct {
	Key         string // scoped by the caller: agent, vendor and the request's key
	Fingerprint string // a hash of method, path and body; a different one is a different request
}

// Result is the answer of Reserve.
type Result int

const (
	// Admitted: every hold fit; the record is written Reserved with them.
	Admitted Result = iota + 1
	// OverLimit: hold number Admission.Hold does not fit; Admission.Used is
	// that counter's total before this call. Nothing was written.
	OverLimit
	// Replayed: the key was seen with the same fingerprint and that call
	// settled, so the vendor will replay its answer and move nothing new.
	// The record is written Reserved with no holds and RetryOf set.
	Replayed
	// KeyReused: the key was seen with another fingerprint. Nothing written.
	KeyReused
	// KeyInUse: the key's earlier call is still Reserved (in flight).
	// Nothing written.
	KeyInUse
)

// Retries of a key whose earlier call was Released reserve afresh (limits
// checked again). Retries of a key whose earlier call is Unknown take over
// its holds without checking limits again: the money is already counted.
// The earlier record becomes Retried, the new one is written Reserved with
// those holds and RetryOf set, and Reserve returns Admitted.

// Admission is what Reserve decided.
type Admission struct {
	Result  Result
	ID      uint64 // the written record, for Admitted and Replayed
	Hold    int    // for OverLimit: the index of the hold that did not fit
	Used    int64  // for OverLimit: that counter's total before this call
	RetryOf uint64 // for Admitted after Unknown, and Replayed: the earlier record
	Holds   []audit.Hold
}

// Completion finishes a Reserved record.
type Completion struct {
	ID      uint64
	Outcome audit.Outcome // Settled, Released or Unknown
	// Settled is, for Outcome Settled, what each hold actually moved, in
	// the hold's unit and order. Missing entries count zero.
	Settled []int64
	// What the record learns from the response.
	Moved     money.Amount // the record's Settled: what the vendor says moved
	Estimated bool         // Moved is an estimate the vendor will price later
	Object    string       // the vendor object the call made or acted on
	Status    int
	RequestID string
	Duration  time.Duration
	Reason    string // replaces the record's Reason when not empty
}

// Counter is the running total of one limit's key.
type Counter struct {
	Settled int64 // moved, as the vendor confirmed
	Pending int64 // held by calls in flight
	Unknown int64 // held by calls whose outcome is unknown
}

// Total is what counts against the limit.
func (c Counter) Total() int64 { return c.Settled + c.Pending + c.Unknown }
