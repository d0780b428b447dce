package storetest

import (
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

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
