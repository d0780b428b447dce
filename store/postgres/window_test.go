package postgres_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/postgres"
)

// Rolling windows across processes: what the conformance suite checks of
// one Store, for several Stores (each with its own pool, so as far as
// PostgreSQL can tell several processes) on one database.

func rate(key string, limit, amount int64) audit.Hold {
	return audit.Hold{Key: key, Unit: "units", Limit: limit, Amount: amount, Window: time.Minute}
}

func spend(key string, limit, amount int64) audit.Hold {
	return audit.Hold{Key: key, Unit: "USD", Limit: limit, Amount: amount, Window: time.Minute}
}

// windowAttempt is one reservation of a race and what it got.
type windowAttempt struct {
	rec   audit.Record
	holds []audit.Hold
	adm   store.Admission
	err   error
}

// raceWindows makes the reservations at once, reservation i through
// stores[i % len(stores)].
func raceWindows(t *testing.T, stores []*postgres.Store, attempts []*windowAttempt) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, a := range attempts {
		s := stores[i%len(stores)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a.adm, a.err = s.Reserve(ctx, &store.Reservation{Record: a.rec, Holds: a.holds})
		}()
	}
	close(start)
	wg.Wait()
	for _, a := range attempts {
		if a.err != nil {
			t.Fatalf("Reserve: %v", a.err)
		}
		if r := a.adm.Result; r != store.Admitted && r != store.OverLimit {
			t.Fatalf("Reserve: %+v, want Admitted or OverLimit", a.adm)
		}
	}
}

func admitted(attempts []*windowAttempt) []*windowAttempt {
	var out []*windowAttempt
	for _, a := range attempts {
		if a.adm.Result == store.Admitted {
			out = append(out, a)
		}
	}
	return out
}

func windowTotal(t *testing.T, s *postgres.Store, key string, at time.Time) (int64, []store.WindowEntry) {
	t.Helper()
	es, err := s.Window(ctx, key, at)
	if err != nil {
		t.Fatalf("Window(%q): %v", key, err)
	}
	var n int64
	for _, e := range es {
		n += e.Total()
	}
	return n, es
}

// TestFleetExactWindow: 200 reservations at once through three stores
// against rolling windows. A count of 20 a minute admits exactly 20, a
// money window of 1000 is filled to within the largest amount and never
// past it, the unchecked money window and the day's counter held beside
// them count exactly what was admitted, and records spread over three
// minutes are admitted so that no minute holds more than 20, whatever
// order they arrive in.
func TestFleetExactWindow(t *testing.T) {
	_, stores := fleet(t, 3, &postgres.Options{MaxConns: 4})
	t0 := call(0).Time
	const n = 200

	t.Run("count", func(t *testing.T) {
		attempts := make([]*windowAttempt, n)
		for i := range attempts {
			attempts[i] = &windowAttempt{rec: call(i), holds: []audit.Hold{
				rate("count", 20, 1), spend("count-usd", -1, 7), {Key: "count-day", Unit: "USD", Limit: -1, Amount: 7}}}
		}
		raceWindows(t, stores, attempts)
		in := admitted(attempts)
		if len(in) != 20 {
			t.Fatalf("%d admitted, want exactly 20", len(in))
		}
		first := in[0].rec.Time
		for _, a := range in {
			if a.rec.Time.Before(first) {
				first = a.rec.Time
			}
		}
		for _, a := range attempts {
			if a.adm.Result == store.OverLimit && (a.adm.Hold != 0 || a.adm.Used != 20 || !a.adm.Frees.Equal(first.Add(time.Minute))) {
				t.Fatalf("refusal %+v, want hold 0 with Used 20, freeing at %s (the earliest admitted + a minute)", a.adm, first.Add(time.Minute))
			}
		}
		for i, s := range stores {
			if got, _ := windowTotal(t, s, "count", t0); got != 20 {
				t.Fatalf("store %d: the count window holds %d, want 20", i, got)
			}
			if got, _ := windowTotal(t, s, "count-usd", t0); got != 7*20 {
				t.Fatalf("store %d: the money window holds %d, want exactly %d", i, got, 7*20)
			}
			if c, err := s.Counter(ctx, "count-day"); err != nil || c != (store.Counter{Pending: 7 * 20}) {
				t.Fatalf("store %d: counter %+v, %v; want %d pending", i, c, err, 7*20)
			}
		}
	})

	t.Run("money", func(t *testing.T) {
		const limit = 1000
		amounts := []int64{7, 3, 11, 5, 13}
		attempts := make([]*windowAttempt, n)
		for i := range attempts {
			attempts[i] = &windowAttempt{rec: call(i), holds: []audit.Hold{spend("money", limit, amounts[i%len(amounts)])}}
		}
		raceWindows(t, stores, attempts)
		var sum int64
		for _, a := range admitted(attempts) {
			sum += a.holds[0].Amount
		}
		if sum > limit || sum <= limit-13 {
			t.Fatalf("admitted %d against a window of %d with demand left over", sum, limit)
		}
		for _, a := range attempts {
			if a.adm.Result == store.OverLimit && (a.adm.Used+a.holds[0].Amount <= limit || a.adm.Used > sum || a.adm.Frees.IsZero()) {
				t.Fatalf("refusal of %d: %+v, with %d admitted in all", a.holds[0].Amount, a.adm, sum)
			}
		}
		if got, _ := windowTotal(t, stores[1], "money", t0); got != sum {
			t.Fatalf("the window holds %d, %d were admitted", got, sum)
		}
	})

	t.Run("sliding", func(t *testing.T) {
		attempts := make([]*windowAttempt, n)
		for i := range attempts {
			r := call(0)
			r.Time = t0.Add(time.Duration(i) * 900 * time.Millisecond) // three minutes
			attempts[i] = &windowAttempt{rec: r, holds: []audit.Hold{rate("sliding", 20, 1)}}
		}
		rand.Shuffle(len(attempts), func(i, j int) { attempts[i], attempts[j] = attempts[j], attempts[i] })
		raceWindows(t, stores, attempts)
		in := admitted(attempts)
		// Every refusal saw 20 in its window, so at least 20 are in.
		if len(in) < 20 {
			t.Fatalf("%d admitted, want at least 20", len(in))
		}
		for _, a := range in {
			k := 0
			for _, b := range in {
				if !b.rec.Time.Before(a.rec.Time) && b.rec.Time.Before(a.rec.Time.Add(time.Minute)) {
					k++
				}
			}
			if k > 20 {
				t.Fatalf("the minute from %s holds %d admitted records, more than 20", a.rec.Time, k)
			}
		}
		_, es := windowTotal(t, stores[2], "sliding", t0)
		var ids, want []uint64
		for _, e := range es {
			ids = append(ids, e.Record)
		}
		for _, a := range in {
			want = append(want, a.adm.ID)
		}
		slices.Sort(ids)
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Fatalf("the window lists records %v, %v were admitted", ids, want)
		}
	})

	rep, err := stores[0].Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records == 0 || rep.Records != rep.Entries {
		t.Fatalf("Verify = %+v; want one entry per record, as nothing completed", rep)
	}
}

// TestFleetWindowsMovedElsewhere: a store that did not reserve a record
// (and so read its window rows from the database) completes, resettles
// and takes it over, and one whose session expired has its windowed
// reservation recovered by another, each moving the record's rows.
func TestFleetWindowsMovedElsewhere(t *testing.T) {
	dsn, stores := fleet(t, 2, nil)
	a, b := stores[0], stores[1]
	t0 := call(0).Time
	reserve := func(s *postgres.Store, r audit.Record, idem *store.Idempotency, holds ...audit.Hold) store.Admission {
		t.Helper()
		adm, err := s.Reserve(ctx, &store.Reservation{Record: r, Holds: holds, Idempotency: idem})
		if err != nil {
			t.Fatal(err)
		}
		return adm
	}
	complete := func(s *postgres.Store, c *store.Completion) {
		t.Helper()
		if err := s.Complete(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	entries := func(key string) []store.WindowEntry {
		t.Helper()
		_, es := windowTotal(t, a, key, t0)
		return es
	}

	one := reserve(a, call(0), nil, rate("w", 2, 1), spend("m", 100, 60))
	two := reserve(a, call(1), nil, rate("w", 2, 1), spend("m", 100, 30))
	complete(b, &store.Completion{ID: one.ID, Outcome: audit.Settled, Settled: []int64{1, 20}, Moved: money.Amount{Micros: 20, Currency: "USD"}, Estimated: true})
	complete(b, &store.Completion{ID: two.ID, Outcome: audit.Released})
	if es := entries("m"); len(es) != 1 || es[0].Record != one.ID || es[0].Counter != (store.Counter{Settled: 20}) {
		t.Fatalf("money window after the completions elsewhere: %+v, want record %d settled 20", es, one.ID)
	}
	if err := b.Resettle(ctx, one.ID, []int64{1, 10}, money.Amount{Micros: 10, Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	if got := reserve(a, call(2), nil, spend("m", 100, 90)); got.Result != store.Admitted {
		t.Fatalf("90 beside the resettled 10: %+v, want Admitted", got)
	}
	if got := reserve(b, call(3), nil, spend("m", 100, 1)); got.Result != store.OverLimit || got.Used != 100 {
		t.Fatalf("1 more: %+v, want OverLimit with Used 100", got)
	}

	idem := &store.Idempotency{Key: "agent/stripe/k", Fingerprint: "fp"}
	first := reserve(a, call(4), idem, rate("t", 1, 1))
	complete(a, &store.Completion{ID: first.ID, Outcome: audit.Unknown})
	retry := call(0)
	retry.Time = t0.Add(30 * time.Second)
	took := reserve(b, retry, idem, rate("t", 1, 1))
	if took.Result != store.Admitted || took.RetryOf != first.ID {
		t.Fatalf("retry elsewhere: %+v, want Admitted taking over record %d", took, first.ID)
	}
	if es := entries("t"); len(es) != 1 || es[0].Record != took.ID || !es[0].Time.Equal(retry.Time) || es[0].Counter != (store.Counter{Pending: 1}) {
		t.Fatalf("window after the takeover: %+v, want record %d pending at %s", es, took.ID, retry.Time)
	}

	dead := open(t, dsn, &postgres.Options{SessionTimeout: 300 * time.Millisecond})
	lost := reserve(dead, call(5), nil, rate("c", 5, 1))
	dead.Crash()
	rescuer := open(t, dsn, &postgres.Options{Heartbeat: 20 * time.Millisecond})
	defer rescuer.Close()
	for deadline := time.Now().Add(60 * time.Second); ; {
		if es := entries("c"); len(es) == 1 && es[0].Counter == (store.Counter{Unknown: 1}) && es[0].Record == lost.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("window %+v a minute after its session stopped, want record %d unknown", entries("c"), lost.ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := rescuer.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestWindowRowAlteredFailsClosed: a window row that no longer says what
// its record holds is corrupt data: completing the record fails, through
// the store that reserved it and through another, and nothing moves.
func TestWindowRowAlteredFailsClosed(t *testing.T) {
	for _, tamper := range []string{
		`UPDATE keybrake_windows SET pending = pending + 1`,
		`UPDATE keybrake_windows SET window_ns = window_ns + 1`,
		`UPDATE keybrake_windows SET pending = 0, unknown = pending`,
	} {
		t.Run(tamper, func(t *testing.T) {
			dsn, stores := fleet(t, 2, nil)
			adm, err := stores[0].Reserve(ctx, &store.Reservation{Record: call(0), Holds: []audit.Hold{rate("w", 5, 1)}})
			if err != nil || adm.Result != store.Admitted {
				t.Fatalf("Reserve = %+v, %v", adm, err)
			}
			testenv.PostgresExec(t, dsn, tamper)
			for i, s := range stores {
				err := s.Complete(ctx, &store.Completion{ID: adm.ID, Outcome: audit.Settled, Settled: []int64{1}})
				if err == nil || errors.Is(err, store.ErrNotReserved) {
					t.Fatalf("Complete through store %d after %s: %v, want an error", i, tamper, err)
				}
			}
			var rec *audit.Record
			if err := stores[1].Query(ctx, audit.Query{}, func(r *audit.Record) error { rec = r; return nil }); err != nil {
				t.Fatal(err)
			}
			if rec == nil || rec.Outcome != audit.Reserved {
				t.Fatalf("record after the failed completions: %+v, want it still reserved", rec)
			}
		})
	}
}

// TestMigrateFromVersion3: a database as the code before migration 0004
// left it (0004 undone on a store's schema, its records written without
// runs or windows) migrates forward at Open: its records still verify
// and read back, and windows and runs work on it. A later migration
// extends the undo.
func TestMigrateFromVersion3(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	s := open(t, dsn, nil)
	adm, err := s.Reserve(ctx, &store.Reservation{Record: call(0), Holds: []audit.Hold{{Key: "usd", Unit: "USD", Limit: 100, Amount: 60}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: adm.ID, Outcome: audit.Settled, Settled: []int64{60}}); err != nil {
		t.Fatal(err)
	}
	refused := call(1)
	refused.Decision = policy.Blocked
	if _, err := s.Append(ctx, &refused); err != nil {
		t.Fatal(err)
	}
	var before []string
	if err := s.Query(ctx, audit.Query{}, func(r *audit.Record) error { before = append(before, fmt.Sprintf("%+v", *r)); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.PostgresExec(t, dsn, `DROP TABLE keybrake_windows; DROP INDEX keybrake_records_run;
		ALTER TABLE keybrake_records DROP COLUMN run, DROP COLUMN principal; DELETE FROM keybrake_migrations WHERE version >= 4`)

	s = open(t, dsn, nil)
	defer s.Close()
	var after []string
	if err := s.Query(ctx, audit.Query{}, func(r *audit.Record) error { after = append(after, fmt.Sprintf("%+v", *r)); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) {
		t.Fatalf("records after migrating:\n%q\nwant\n%q", after, before)
	}
	if rep, err := s.Verify(ctx); err != nil || rep.Records != 2 {
		t.Fatalf("Verify after migrating = %+v, %v; want the 2 records", rep, err)
	}
	r := call(2)
	r.Run = "ticket-1"
	if got, err := s.Reserve(ctx, &store.Reservation{Record: r, Holds: []audit.Hold{rate("w", 1, 1)}}); err != nil || got.Result != store.Admitted {
		t.Fatalf("a windowed reservation after migrating: %+v, %v", got, err)
	}
	if got, err := s.Reserve(ctx, &store.Reservation{Record: call(3), Holds: []audit.Hold{rate("w", 1, 1)}}); err != nil || got.Result != store.OverLimit {
		t.Fatalf("a second one: %+v, %v; want OverLimit", got, err)
	}
	n := 0
	if err := s.Query(ctx, audit.Query{Run: "ticket-1"}, func(*audit.Record) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("Query(Run) after migrating: %d records, %v; want 1", n, err)
	}
	if _, err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
