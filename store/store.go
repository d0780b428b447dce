// Package store is where Keybrake keeps what must survive the process: the
// day's counters against every limit, the reservation each call holds, the
// idempotency keys it has seen, and the audit record of every call.
//
// The interface is shaped around the operations a call needs (reserve,
// complete, append, query), not around any database. A reservation and the
// call's audit record are one record: for a call that can move money,
// Reserve commits it, durably, before a byte of the call leaves the
// process; for one that holds nothing (a read), the transport sends the
// call while Reserve commits and answers the agent only once it has.
// Complete finishes it after the response. A crash in between leaves a
// record that says so and keeps its money counted.
//
// # The audit chain
//
// The audit log must show when someone edited it behind the store's back.
// Records change after they are written (Reserve writes one, Complete and
// Resettle rewrite it), so a record cannot simply hash the one before it.
// Instead every write that creates or changes a record (Reserve, which
// may also retire an earlier record, Complete, Resettle, Append, and the
// recovery of a crashed process's reservations) also appends, in the same
// transaction, one entry per record to an append-only journal: the
// record's whole new state (or a hash of it, as store/bolt keeps),
// numbered in order, chained by SHA-256 to the entry before it. A refused
// operation appends nothing.
//
// A record as stored and read back carries PrevHash, which the store sets
// whatever the caller passed: the hash of the journal entry just before
// the record's latest entry (VerifyReport.HeadHash as it was before the
// write), so a dumped record shows where its state sits in the chain.
// Verify checks the chain and that every record is the state its latest
// entry holds; Prune cuts the oldest part of the journal and leaves a
// checkpoint where Verify starts.
//
// The chain shows edits made to part of the log. Someone who rewrites the
// journal from some point to its end, recomputing every hash, or who
// removes the newest entries and their records, leaves a chain that
// verifies; VerifyReport.Head and HeadHash are what to note elsewhere (a
// ticket, a log shipper) so that such a rewrite shows too. Counters and
// idempotency keys are not in the chain: they are the store's working
// state, not the log.
//
// store/bolt (one embedded bbolt file, held by one process) is the
// implementation Keybrake ships and opens by default. Any other type that
// implements Store can be passed in keybrake.Options.Store, your own
// included; store/storetest holds the conformance suite (Run, and
// RunRestart for data that outlives a Store) every implementation must
// pass before it keeps anyone's money.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// Sentinel errors. Implementations wrap them with %w and detail.
var (
	ErrClosed      = errors.New("store: closed")
	ErrNotFound    = errors.New("store: no such record")
	ErrNotReserved = errors.New("store: record is not reserved")
	// ErrLocked is wrapped when the database is held elsewhere: by
	// another process, or by another open of it in this one. The
	// wrapping error says which.
	ErrLocked      = errors.New("store: database is locked")
	ErrNotEstimate = errors.New("store: record is not a settled estimate")
	// ErrReadOnly is wrapped by every write to a store opened read-only
	// (to verify or read the log of a database no agent is using).
	ErrReadOnly = errors.New("store: opened read-only")
	// ErrChainBroken is wrapped by every *ChainError: the audit log was
	// changed other than through the store.
	ErrChainBroken = errors.New("store: audit chain broken")
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
	//
	// A hold with a Window counts in a rolling window (see Windows
	// below) rather than in a counter.
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

	// Query calls fn for each selected record, oldest first (by Time,
	// then ID; by ID when q.InIDOrder), and stops at the first error fn
	// returns, which Query returns. A query naming an Agent costs in
	// proportion to that agent's records in the window, a query with
	// After in proportion to the records after it, not to the log.
	Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error

	// Outstanding calls fn, in ID order, for every record whose money is
	// still counted but not settled: Outcome Reserved (in flight, or a
	// replay holding nothing) or Unknown (the vendor may have acted). It
	// costs in proportion to those records, not to the log, so `keybrake
	// status` stays instant however long the log is. It stops at the
	// first error fn returns, which it returns.
	Outstanding(ctx context.Context, fn func(*audit.Record) error) error

	// Counter returns the totals of one counter; a counter never used is
	// the zero Counter.
	Counter(ctx context.Context, key string) (Counter, error)

	// Window returns what still counts in the rolling window of key at
	// time at: one entry per record whose hold on key has not left it
	// (its record's Time is after at minus the hold's Window, later ones
	// included), oldest first. A key never used has none.
	Window(ctx context.Context, key string, at time.Time) ([]WindowEntry, error)

	// Counters calls fn, in key order (bytewise), for every counter whose
	// key begins with prefix and that was ever used, and stops at the
	// first error fn returns, which it returns. It costs in proportion to
	// those counters, not to the store: `keybrake status` lists one
	// grant's per-customer counters with it. fn may be called outside
	// any transaction; counters written meanwhile may or may not be seen.
	Counters(ctx context.Context, prefix string, fn func(key string, c Counter) error) error

	// Verify walks the audit chain from its start (or from the checkpoint
	// the last Prune left) and checks every link, then that every record in
	// the store equals the state its latest journal entry holds. It
	// returns what it checked and, for the first break, a *ChainError
	// saying which entry or record and what is wrong: altered, missing,
	// reordered, an extra record with no entry, a broken link. Breaks in
	// the journal come first, in journal order; then records, in the order
	// of their latest entries (records with no entry last). Any other
	// error means Verify could not finish (ctx ended, store closed, I/O).
	Verify(ctx context.Context) (VerifyReport, error)

	// Prune removes what is older than before, so that the store stays
	// bounded: records whose Time is before it, the counters of UTC days
	// before before's UTC day, the window entries that have left their
	// windows (Time + Window not after before), and the idempotency keys
	// older than both before and 24 hours (as the key's record's Time
	// says).
	//
	// A record still Reserved or Unknown is never pruned (its money is
	// still counted), nor are the counters it holds. A record an
	// idempotency key younger than 24 hours points at is kept with its
	// key, so a retry still replays. A counter's day is the latest
	// segment of its key, split at "/", that is a date "2006-01-02"; a
	// key with no such segment is never pruned. (This relies on a record
	// holding only counters of its own UTC day or a later one, as
	// Keybrake's limits do.)
	//
	// The journal is cut from its start: entries of removed records and
	// entries a later one supersedes go, and Prune leaves a checkpoint
	// where Verify starts. A record that stays while older entries go
	// (still counted, say) is carried forward: its current state is
	// appended again as a fresh entry, so the chain stays whole. A
	// removed record whose latest entry lies beyond the cut (it changed
	// after younger records were written) leaves a small tombstone entry
	// saying it was pruned, so that Verify knows it is gone; its older
	// entries go when a later cut reaches them.
	//
	// Prune refuses, with the *ChainError, to prune a chain that does not
	// verify: that would destroy the evidence. It may run in several
	// transactions; an error or an ended ctx leaves the store consistent,
	// and what was removed so far in the report.
	Prune(ctx context.Context, before time.Time) (PruneReport, error)

	// Fact and SetFact keep small facts that never change once learned,
	// such as the currency of a charge. Fact reports ok false when the key
	// was never set.
	Fact(ctx context.Context, key string) (value string, ok bool, err error)
	SetFact(ctx context.Context, key, value string) error

	// Close waits for writes in progress and releases the store. Methods
	// called after Close return ErrClosed.
	Close() error
}

// Windows
//
// A hold whose Window is not zero counts in a rolling window: "no more
// than 20 calls in any minute". Window keys and counter keys are separate
// namespaces; Counter and Counters never report a window.
//
// What counts against such a hold's Limit is every hold on the same Key,
// of any record, whose record's Time is after the reserving record's
// Time minus the hold's Window; records later than the reserving one
// count too, so that records reserved slightly out of time order (several
// callers, several processes) never let more into any interval of length
// Window than Limit. Each counts what it still holds, as a counter would:
// pending while Reserved, its settlement once Settled, all of it while
// Unknown; a Released hold leaves the window, and a settlement below the
// hold leaves only what was settled. A Retried record's holds count from
// the Time of the record that took them over. Checking and recording a
// windowed hold is atomic with every other hold of the reservation.
//
// A reservation holds a window key at most once; a second hold on it is
// refused with an error and writes nothing. When a windowed hold does not
// fit, Admission.Used is what its window counted before the call and
// Admission.Frees says when, nothing else changing, enough will have left
// the window for it to fit. Prune removes the window entries that have
// left their windows as of before; an entry may be gone by the time a
// record completes, which is then nothing to move.

// WindowEntry is one record's hold still counted in a rolling window.
type WindowEntry struct {
	Time    time.Time     // the record's Time
	Record  uint64        // its ID
	Window  time.Duration // the hold's Window: it leaves at Time + Window
	Counter               // what it holds
}

// Leaves is when e leaves its window.
func (e WindowEntry) Leaves() time.Time { return e.Time.Add(e.Window) }

// FirstLeave is when the first of entries leaves its window (zero for
// none): not always the oldest entry's, since entries reserved with
// different windows leave in another order than their Times'.
func FirstLeave(entries []WindowEntry) time.Time {
	var first time.Time
	for i, e := range entries {
		if i == 0 || e.Leaves().Before(first) {
			first = e.Leaves()
		}
	}
	return first
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

// Admission is what Reserve decided.
type Admission struct {
	Result  Result
	ID      uint64 // the written record, for Admitted and Replayed
	Hold    int    // for OverLimit: the index of the hold that did not fit
	Used    int64  // for OverLimit: that counter's total before this call
	RetryOf uint64 // for Admitted after Unknown, and Replayed: the earlier record
	// Frees is for OverLimit on a windowed hold: the earliest time at
	// which enough will have left its window for the hold to fit; zero
	// when it never will (its Amount exceeds its Limit).
	Frees time.Time
	Holds []audit.Hold
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
	// Refused, when set, makes the record a refusal: its Decision, Code,
	// Rule and policy hash replace the record's. It is for a call refused after its
	// reservation was written (the policy changed while it waited), which
	// is never sent; Outcome must be Released.
	Refused *Refusal
}

// Refusal is the decision that refused a call after its reservation.
type Refusal struct {
	Decision policy.Decision // not Allowed
	Code     string
	Rule     string
	Policy   string // the hash of the policy that refused; "" keeps the record's
}

// Counter is the running total of one limit's key.
type Counter struct {
	Settled int64 // moved, as the vendor confirmed
	Pending int64 // held by calls in flight
	Unknown int64 // held by calls whose outcome is unknown
}

// Total is what counts against the limit.
func (c Counter) Total() int64 { return c.Settled + c.Pending + c.Unknown }

// VerifyReport is what Verify checked.
type VerifyReport struct {
	// Checkpoint is the journal entry Verify started after: 0 for the
	// start of the chain, else the last entry a Prune removed.
	Checkpoint uint64
	// Entries is the number of journal entries checked; Records the
	// number of records compared with their latest entry.
	Entries int
	Records int
	// Head is the last journal entry checked, HeadHash its hash (hex).
	// Noting them elsewhere lets a later Verify show that the chain was
	// rewritten from some entry to its end.
	Head     uint64
	HeadHash string
}

// PruneReport is what Prune removed.
type PruneReport struct {
	Records         int // records removed
	Entries         int // journal entries removed (tombstones added are not counted)
	Carried         int // records kept and re-appended as fresh entries
	Counters        int // counters removed
	Windows         int // window entries removed
	IdempotencyKeys int // idempotency keys removed
	// Checkpoint is the journal entry Verify now starts after.
	Checkpoint uint64
}

// ChainProblem says what is wrong at a break in the audit chain.
type ChainProblem string

// The problems Verify reports.
const (
	// ChainAltered: an entry's contents no longer match its hash, or a
	// record differs from the state its latest entry holds.
	ChainAltered ChainProblem = "altered"
	// ChainMissing: entries are missing from the journal, or a record
	// its journal holds is missing from the store.
	ChainMissing ChainProblem = "missing"
	// ChainReordered: an entry holds another position's entry, or a
	// record holds another record.
	ChainReordered ChainProblem = "reordered"
	// ChainExtra: a record or entry the store never wrote.
	ChainExtra ChainProblem = "extra"
	// ChainBrokenLink: an entry, intact itself, does not name the hash of
	// the entry before it: that entry was replaced with its hash
	// recomputed, or the link was.
	ChainBrokenLink ChainProblem = "broken link"
)

// ChainError is the first break Verify found. It wraps ErrChainBroken.
type ChainError struct {
	Problem ChainProblem
	// Entry is the journal entry at the break, 0 when the break is a
	// record with no entry.
	Entry uint64
	// Record is the record concerned, 0 when it cannot be told.
	Record uint64
	// Detail says what is wrong, for a person, naming the entry or
	// record.
	Detail string
}

// Error is the Detail, which names the entry or record, after a prefix.
func (e *ChainError) Error() string { return "store: audit chain broken: " + e.Detail }

// Unwrap returns ErrChainBroken.
func (e *ChainError) Unwrap() error { return ErrChainBroken }

// Stops is what a store shared by several processes (store/postgres)
// implements so that a halt or a revocation made anywhere stops the whole
// fleet: the stops are kept in the store, and every process watches them.
// A Brake whose Options.Store implements it writes Brake.Halt, Resume,
// Revoke and Restore there, and the command's halt, resume, revoke,
// restore and keys revoke with --db postgres:// write there too.
//
// A store held by one process has no fleet to stop and does not implement
// it: store/bolt's stops are the Brake's own (Brake.Halt, the kill switch
// file). store/storetest.RunStops is the conformance suite.
//
// SetStop and ClearStop that change something also append one audit
// record of the change (Event "halt" for StopHalt, "revoke" otherwise,
// Vendor "keybrake", Outcome audit.None, naming Stop.By and the Agent or
// KeyID), atomically with it: a stop is never in force without its
// record, nor a record written for a stop that is not. A call that
// changes nothing writes nothing. Every method is safe for concurrent use.
type Stops interface {
	// SetStop puts s in force. When a stop of s.Kind and s.Subject is
	// already in force it changes nothing and returns that one with
	// changed false; otherwise it returns s as stored, changed true. A
	// zero s.Time means the store's clock. A stop of an unknown kind, with
	// no By, or a StopRevoke or StopKey with no Subject is refused with
	// an error and writes nothing.
	SetStop(ctx context.Context, s Stop) (inForce Stop, changed bool, err error)

	// ClearStop lifts the stop of s.Kind and s.Subject; s.By, s.Reason and
	// s.Time say who lifted it, for the audit record. It reports false
	// when no such stop was in force.
	ClearStop(ctx context.Context, s Stop) (changed bool, err error)

	// ReadStops returns the stops in force, ordered by Kind, then Subject.
	ReadStops(ctx context.Context) ([]Stop, error)

	// WatchStops calls fn with the stops in force as soon as it watches
	// (so a change made between an earlier ReadStops and the watch is not
	// missed), then each time they change, from one goroutine, one call
	// at a time, until ctx ends; it then returns ctx's error. A change in
	// another process reaches fn within a second. When the stops cannot
	// be read, fn is called with the error (once, until a read succeeds
	// again) and nil stops: the caller keeps the stops it has.
	WatchStops(ctx context.Context, fn func(stops []Stop, err error)) error
}

// StopKind says what a Stop stops.
type StopKind string

// The kinds of stop.
const (
	// StopHalt halts every agent (Subject "") or the agent Subject names,
	// as the kill switch file does; keybrake resume lifts every halt.
	StopHalt StopKind = "halt"
	// StopRevoke revokes the agent Subject names, as revoked: true in the
	// policy does.
	StopRevoke StopKind = "revoke"
	// StopKey revokes the keybrake serve agent key whose id (kbk_...)
	// Subject is, as keybrake keys revoke does in the keys file.
	StopKey StopKind = "key"
)

// Stop is one fleet-wide halt or revocation, with who made it, when and
// why, which a refused call's reason and keybrake status name.
type Stop struct {
	Kind    StopKind
	Subject string // the agent or key id; "" for a StopHalt of every agent
	// By says who made it, as a person reads it: "keybrake halt --db on
	// HOST by USER", "Brake.Halt in pid 4242 on HOST". Required.
	By     string
	Reason string    // why, in words; may be empty
	Time   time.Time // when; the store keeps it to the microsecond at least
}

// Source is how a refusal names the stop: By, and when, in UTC, and why.
func (s Stop) Source() string {
	out := s.By + " at " + s.Time.UTC().Format(time.RFC3339)
	if s.Reason != "" {
		out += " (" + s.Reason + ")"
	}
	return out
}
