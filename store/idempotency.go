package store

import (
	"time"

	"github.com/keybrake/keybrake/audit"
)

// ReplayWindow is how long an idempotency key is remembered. The vendors
// keep a key 24 hours (Stripe may forget one once it is 24 hours old;
// Resend keeps it 24 hours) and then execute a request that carries it
// again, so a replay answered later would let money move uncounted.
//
// A reservation whose key's record is ReplayWindow or more older than its
// own (by Record.Time) is a new request, reserved afresh with its limits
// checked, whatever the earlier call's outcome or fingerprint. The key
// keeps pointing at that first record, so every later use of it is new
// too: the vendor's window runs from the key's first use, and a vendor
// that replayed the late call did not restart it. (A vendor that executed
// it anew did restart it, and its replays are then counted, which errs
// the safe way; see vendors.Info.ReplayHeader.)
//
// An hour short of the vendors' 24, so that a clock stepped back by less
// than that cannot make a forgotten key look remembered; a key the vendor
// still remembers in that hour is counted when it moves nothing, the safe
// way again.
const ReplayWindow = 23 * time.Hour

// KeyRetention is how long Prune keeps an idempotency key, and the record
// it points at, whatever its cutoff: the vendors' whole 24 hours, beyond
// ReplayWindow, so that a key is never gone while it may be remembered.
const KeyRetention = 24 * time.Hour

// KeyForgotten reports whether a key first used at first is forgotten for
// a reservation at next: ReplayWindow or more later.
func KeyForgotten(first, next time.Time) bool { return next.Sub(first) >= ReplayWindow }

// Idempotency identifies a write the vendor will execute at most once
// within ReplayWindow.
type Idempotency struct {
	Key         string // scoped by the caller: agent, vendor and the request's key
	Fingerprint string // a hash of method, path and body; a different one is a different request
}

// KeyRule is what a Reservation does whose idempotency key was seen: the
// rule every store applies to the key's record (the latest call that
// reserved with it), decided by KeySeen.
type KeyRule int

const (
	// KeyNew: the key's record is ReplayWindow or more older than this
	// call, so the vendor has forgotten the key. Reserve the call as one
	// without a key, its limits checked; the key keeps pointing at its
	// record (see ReplayWindow).
	KeyNew KeyRule = iota + 1
	// KeyRefuse: answer KeySeen's Result (KeyReused: another fingerprint;
	// KeyInUse: the record is still Reserved). Write nothing.
	KeyRefuse
	// KeyReplay: the record settled (Settled or Replayed), so the vendor
	// will replay its answer and move nothing new. Write the call
	// Reserved with no holds and RetryOf the record, and answer Replayed;
	// the key keeps pointing at its record.
	KeyReplay
	// KeyAfresh: the record was Released. Reserve the call with its own
	// holds, limits checked again, RetryOf the record; the key now points
	// at the call.
	KeyAfresh
	// KeyTakeover: the record is Unknown. The call takes over its holds
	// without checking limits (the money is counted already), RetryOf the
	// record, which becomes Retried; the key now points at the call, and
	// Reserve answers Admitted.
	KeyTakeover
	// KeyCorrupt: the record's Outcome is none a key can point at. The
	// store's data is corrupt: an error, never an admission.
	KeyCorrupt
)

// KeySeen decides a reservation at time at with fingerprint fp whose key
// points at prev, which was reserved with fingerprint prevFP. For
// KeyRefuse, the Result is the Admission's; for any other rule it is 0.
//
// A forgotten key is decided first: after ReplayWindow the key is the
// vendor's to reuse, whatever the earlier call's outcome or fingerprint.
func KeySeen(prev *audit.Record, prevFP string, at time.Time, fp string) (KeyRule, Result) {
	if KeyForgotten(prev.Time, at) {
		return KeyNew, 0
	}
	if fp != prevFP {
		return KeyRefuse, KeyReused
	}
	switch prev.Outcome {
	case audit.Reserved:
		return KeyRefuse, KeyInUse
	case audit.Settled, audit.Replayed:
		return KeyReplay, 0
	case audit.Released:
		return KeyAfresh, 0
	case audit.Unknown:
		return KeyTakeover, 0
	}
	return KeyCorrupt, 0
}
