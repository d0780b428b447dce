package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// Idempotency keys: a key seen before is decided by store.KeySeen; these
// are the answers every store must give.

func idem(key, fp string) *store.Idempotency { return &store.Idempotency{Key: key, Fingerprint: fp} }

func testKeyReused(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("agent/stripe/k1", "fp1")})
	for _, settle := range []bool{false, true} {
		if settle {
			complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{60}})
		}
		before := snap(t, s, "usd")
		got := reserve(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 1)}, Idempotency: idem("agent/stripe/k1", "fp2")})
		if got.Result != store.KeyReused || got.ID != 0 {
			t.Fatalf("Reserve with another fingerprint = %+v, want KeyReused", got)
		}
		before.same(t, s, "after KeyReused")
	}
}

func testKeyInUse(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	before := snap(t, s, "usd")
	got := reserve(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 10)}, Idempotency: idem("k", "fp")})
	if got.Result != store.KeyInUse || got.ID != 0 {
		t.Fatalf("Reserve while the first is in flight = %+v, want KeyInUse", got)
	}
	before.same(t, s, "after KeyInUse")
	if r := record(t, s, a.ID); r.Outcome != audit.Reserved {
		t.Errorf("first record became %s", r.Outcome)
	}
}

func testReplayAfterSettled(t *testing.T, s store.Store) {
	holds := []audit.Hold{hold("usd", 100, 60)}
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: holds, Idempotency: idem("k", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{60}, Moved: usd(60)})
	for i := 1; i <= 2; i++ {
		got := reserve(t, s, &store.Reservation{Record: call(i), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
		if got.Result != store.Replayed || got.ID == 0 || got.ID == a.ID || got.RetryOf != a.ID || len(got.Holds) != 0 {
			t.Fatalf("retry %d = %+v, want Replayed of %d with no holds", i, got, a.ID)
		}
		wantCounter(t, s, "usd", store.Counter{Settled: 60})
		r := record(t, s, got.ID)
		if r.Outcome != audit.Reserved || len(r.Holds) != 0 || r.RetryOf != a.ID || r.Agent != "refund-bot" {
			t.Fatalf("replay record = %+v", r)
		}
		complete(t, s, &store.Completion{ID: got.ID, Outcome: audit.Settled, Settled: nil, Moved: usd(60), Status: 200})
		if r := record(t, s, got.ID); r.Outcome != audit.Replayed || r.Status != 200 {
			t.Errorf("completed replay record = %+v, want Outcome replayed", r)
		}
		wantCounter(t, s, "usd", store.Counter{Settled: 60})
	}
	if r := record(t, s, a.ID); r.Outcome != audit.Settled {
		t.Errorf("original record became %s", r.Outcome)
	}
	// A replay still in flight does not block another replay: the key
	// still points at the settled call.
	x := reserve(t, s, &store.Reservation{Record: call(5), Idempotency: idem("k", "fp")})
	y := reserve(t, s, &store.Reservation{Record: call(6), Idempotency: idem("k", "fp")})
	if x.Result != store.Replayed || y.Result != store.Replayed || x.ID == y.ID {
		t.Fatalf("concurrent replays = %+v, %+v", x, y)
	}
	// A replay may be completed as Replayed directly.
	complete(t, s, &store.Completion{ID: x.ID, Outcome: audit.Replayed, Status: 200})
	if r := record(t, s, x.ID); r.Outcome != audit.Replayed {
		t.Errorf("record = %+v, want replayed", r)
	}
	// Another fingerprint is still refused.
	if got := reserve(t, s, &store.Reservation{Record: call(7), Idempotency: idem("k", "other")}); got.Result != store.KeyReused {
		t.Errorf("other fingerprint = %+v, want KeyReused", got)
	}
}

func testRetryAfterReleased(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Released, Status: 429})
	// Another call takes most of the limit meanwhile: the retry is checked
	// again and refused.
	other := admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 50)}})
	before := snap(t, s, "usd")
	got := reserve(t, s, &store.Reservation{Record: call(2), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	if got.Result != store.OverLimit || got.Used != 50 {
		t.Fatalf("retry = %+v, want OverLimit with Used 50", got)
	}
	before.same(t, s, "after refused retry")
	complete(t, s, &store.Completion{ID: other.ID, Outcome: audit.Released})

	b := reserve(t, s, &store.Reservation{Record: call(3), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	if b.Result != store.Admitted || b.RetryOf != a.ID || !holdsEqual(b.Holds, []audit.Hold{hold("usd", 100, 60)}) {
		t.Fatalf("retry = %+v, want Admitted, RetryOf %d, the caller's holds", b, a.ID)
	}
	wantCounter(t, s, "usd", store.Counter{Pending: 60})
	if r := record(t, s, b.ID); r.RetryOf != a.ID || r.Outcome != audit.Reserved {
		t.Errorf("retry record = %+v", r)
	}
	if r := record(t, s, a.ID); r.Outcome != audit.Released {
		t.Errorf("released record became %s", r.Outcome)
	}
	// The key now points at the retry, which is in flight.
	if got := reserve(t, s, &store.Reservation{Record: call(4), Idempotency: idem("k", "fp")}); got.Result != store.KeyInUse {
		t.Fatalf("third attempt = %+v, want KeyInUse", got)
	}
	complete(t, s, &store.Completion{ID: b.ID, Outcome: audit.Settled, Settled: []int64{60}})
	if got := reserve(t, s, &store.Reservation{Record: call(5), Idempotency: idem("k", "fp")}); got.Result != store.Replayed || got.RetryOf != b.ID {
		t.Fatalf("attempt after the retry settled = %+v, want Replayed of %d", got, b.ID)
	}
}

func testTakeOverUnknown(t *testing.T, s store.Store) {
	first := []audit.Hold{hold("usd", 100, 60), {Key: "calls", Unit: "units", Limit: 5, Amount: 1}}
	a := admit(t, s, &store.Reservation{Record: call(0), Holds: first, Idempotency: idem("k", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Unknown, Status: 500})
	// Fill the rest of the limit: a fresh reservation of 60 would not fit,
	// a takeover does, because its money is already counted.
	admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 40)}})
	wantCounter(t, s, "usd", store.Counter{Pending: 40, Unknown: 60})

	// The retry asks for other holds (say the policy changed); it takes
	// over the first call's holds exactly.
	b := reserve(t, s, &store.Reservation{Record: call(2), Holds: []audit.Hold{hold("usd", 100, 99), hold("new", 1, 1)}, Idempotency: idem("k", "fp")})
	if b.Result != store.Admitted || b.RetryOf != a.ID || !holdsEqual(b.Holds, first) {
		t.Fatalf("retry = %+v, want Admitted, RetryOf %d, holds %+v", b, a.ID, first)
	}
	wantCounter(t, s, "usd", store.Counter{Pending: 100})
	wantCounter(t, s, "calls", store.Counter{Pending: 1})
	wantCounter(t, s, "new", store.Counter{})
	if r := record(t, s, a.ID); r.Outcome != audit.Retried {
		t.Errorf("earlier record is %s, want retried", r.Outcome)
	}
	if r := record(t, s, b.ID); r.Outcome != audit.Reserved || r.RetryOf != a.ID || !holdsEqual(r.Holds, first) {
		t.Errorf("retry record = %+v", r)
	}
	// The key points at the retry now.
	if got := reserve(t, s, &store.Reservation{Record: call(3), Idempotency: idem("k", "fp")}); got.Result != store.KeyInUse {
		t.Fatalf("third attempt = %+v, want KeyInUse", got)
	}
	complete(t, s, &store.Completion{ID: b.ID, Outcome: audit.Settled, Settled: []int64{55, 1}})
	wantCounter(t, s, "usd", store.Counter{Settled: 55, Pending: 40})
	wantCounter(t, s, "calls", store.Counter{Settled: 1})
	// The earlier record can no longer be completed.
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled}); !errors.Is(err, store.ErrNotReserved) {
		t.Errorf("Complete of the retried record = %v, want ErrNotReserved", err)
	}

	// A takeover that ends Unknown again can be taken over again.
	c := admit(t, s, &store.Reservation{Record: call(4), Holds: []audit.Hold{hold("x", 10, 10)}, Idempotency: idem("k2", "fp")})
	complete(t, s, &store.Completion{ID: c.ID, Outcome: audit.Unknown})
	d := admit(t, s, &store.Reservation{Record: call(5), Idempotency: idem("k2", "fp")})
	complete(t, s, &store.Completion{ID: d.ID, Outcome: audit.Unknown})
	e := admit(t, s, &store.Reservation{Record: call(6), Idempotency: idem("k2", "fp")})
	if e.RetryOf != d.ID || !holdsEqual(e.Holds, []audit.Hold{hold("x", 10, 10)}) {
		t.Fatalf("second takeover = %+v", e)
	}
	wantCounter(t, s, "x", store.Counter{Pending: 10})
	complete(t, s, &store.Completion{ID: e.ID, Outcome: audit.Released})
	wantCounter(t, s, "x", store.Counter{})
}

func testKeysAreIndependent(t *testing.T, s store.Store) {
	admit(t, s, &store.Reservation{Record: call(0), Holds: []audit.Hold{hold("usd", 100, 10)}, Idempotency: idem("a", "fp")})
	admit(t, s, &store.Reservation{Record: call(1), Holds: []audit.Hold{hold("usd", 100, 10)}, Idempotency: idem("b", "fp")})
	admit(t, s, &store.Reservation{Record: call(2), Holds: []audit.Hold{hold("usd", 100, 10)}})
	admit(t, s, &store.Reservation{Record: call(3), Holds: []audit.Hold{hold("usd", 100, 10)}})
	wantCounter(t, s, "usd", store.Counter{Pending: 40})
}

// An idempotency key the vendor has forgotten is a new request. Stripe
// and Resend keep a key 24 hours and then execute a request that carries
// it again; a store that still answered Replayed (or took over an Unknown
// call's holds, or refused KeyReused) would let that money move
// uncounted. So a key whose record is store.ReplayWindow or more older
// than the new reservation's is reserved afresh, limits checked; the key
// keeps pointing at its first use, so every later use is new too.

func testForgottenKeySettled(t *testing.T, s store.Store) {
	w := store.ReplayWindow
	a := admit(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{60}, Moved: usd(60)})

	// A second short of the window the vendor still replays it.
	r := reserve(t, s, &store.Reservation{Record: at(w - time.Second), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	if r.Result != store.Replayed || r.RetryOf != a.ID {
		t.Fatalf("retry inside the window = %+v, want Replayed of %d", r, a.ID)
	}
	complete(t, s, &store.Completion{ID: r.ID, Outcome: audit.Replayed, Status: 200})

	// At the window it is a new call: its limits are checked (60 more
	// does not fit under 100 beside the 60 settled) ...
	before := snap(t, s, "usd")
	if got := reserve(t, s, &store.Reservation{Record: at(w), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")}); got.Result != store.OverLimit {
		t.Fatalf("forgotten key over the limit = %+v, want OverLimit", got)
	}
	before.same(t, s, "after the forgotten key's OverLimit")
	// ... and what fits is counted.
	b := reserve(t, s, &store.Reservation{Record: at(w), Holds: []audit.Hold{hold("usd", 100, 30)}, Idempotency: idem("k", "fp")})
	if b.Result != store.Admitted || b.RetryOf != 0 || !holdsEqual(b.Holds, []audit.Hold{hold("usd", 100, 30)}) {
		t.Fatalf("forgotten key = %+v, want Admitted with its own holds and no RetryOf", b)
	}
	wantCounter(t, s, "usd", store.Counter{Settled: 60, Pending: 30})
	if r := record(t, s, a.ID); r.Outcome != audit.Settled {
		t.Errorf("the first call became %s", r.Outcome)
	}
	// The key still dates from its first use (the vendor's 24 hours run
	// from there whether it replayed b or not): every later use is a new
	// call, b in flight or settled.
	c := reserve(t, s, &store.Reservation{Record: at(w + time.Second), Holds: []audit.Hold{hold("usd", 100, 5)}, Idempotency: idem("k", "fp")})
	if c.Result != store.Admitted || c.RetryOf != 0 {
		t.Fatalf("a second use after the window, the first still in flight = %+v, want Admitted", c)
	}
	complete(t, s, &store.Completion{ID: b.ID, Outcome: audit.Settled, Settled: []int64{30}, Moved: usd(30)})
	d := reserve(t, s, &store.Reservation{Record: at(w + 2*time.Second), Holds: []audit.Hold{hold("usd", 100, 5)}, Idempotency: idem("k", "fp")})
	if d.Result != store.Admitted || d.RetryOf != 0 {
		t.Fatalf("a third use after the window = %+v, want Admitted", d)
	}
	wantCounter(t, s, "usd", store.Counter{Settled: 90, Pending: 10})
}

func testForgottenKeyOtherFingerprint(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{hold("usd", 100, 10)}, Idempotency: idem("k", "fp1")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{10}})
	if got := reserve(t, s, &store.Reservation{Record: at(time.Hour), Holds: []audit.Hold{hold("usd", 100, 10)}, Idempotency: idem("k", "fp2")}); got.Result != store.KeyReused {
		t.Fatalf("another request inside the window = %+v, want KeyReused", got)
	}
	b := reserve(t, s, &store.Reservation{Record: at(store.ReplayWindow), Holds: []audit.Hold{hold("usd", 100, 10)}, Idempotency: idem("k", "fp2")})
	if b.Result != store.Admitted {
		t.Fatalf("another request on a forgotten key = %+v, want Admitted", b)
	}
	wantCounter(t, s, "usd", store.Counter{Settled: 10, Pending: 10})
	if got := reserve(t, s, &store.Reservation{Record: at(store.ReplayWindow + time.Second), Idempotency: idem("k", "fp1")}); got.Result != store.Admitted {
		t.Fatalf("the first request again after the window = %+v, want Admitted: new too", got)
	}
}

func testForgottenKeyUnknown(t *testing.T, s store.Store) {
	a := admit(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")})
	complete(t, s, &store.Completion{ID: a.ID, Outcome: audit.Unknown, Status: 500})
	// The vendor may have executed the first and will execute this one:
	// both stay counted, and this one's limit is checked.
	if got := reserve(t, s, &store.Reservation{Record: at(store.ReplayWindow), Holds: []audit.Hold{hold("usd", 100, 60)}, Idempotency: idem("k", "fp")}); got.Result != store.OverLimit {
		t.Fatalf("retry of a forgotten Unknown call over the limit = %+v, want OverLimit", got)
	}
	b := reserve(t, s, &store.Reservation{Record: at(store.ReplayWindow), Holds: []audit.Hold{hold("usd", 100, 40)}, Idempotency: idem("k", "fp")})
	if b.Result != store.Admitted || b.RetryOf != 0 || !holdsEqual(b.Holds, []audit.Hold{hold("usd", 100, 40)}) {
		t.Fatalf("retry of a forgotten Unknown call = %+v, want Admitted afresh", b)
	}
	wantCounter(t, s, "usd", store.Counter{Pending: 40, Unknown: 60})
	if r := record(t, s, a.ID); r.Outcome != audit.Unknown {
		t.Errorf("the Unknown call became %s; it stays counted as unknown", r.Outcome)
	}
}
