package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/postgres"
)

var ctx = context.Background()

func call(i int) audit.Record {
	return audit.Record{
		Time:  time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
		Decision: policy.Allowed, Rule: "agents.refund-bot.stripe.allow[0]", PolicyHash: "sha256:abc",
	}
}

// fleet opens n Stores on one schema, each with its own pool: as far as
// PostgreSQL can tell, n processes.
func fleet(t *testing.T, n int, opts *postgres.Options) (string, []*postgres.Store) {
	t.Helper()
	dsn := testenv.PostgresSchema(t)
	stores := make([]*postgres.Store, n)
	for i := range stores {
		stores[i] = open(t, dsn, opts)
		s := stores[i]
		t.Cleanup(func() { s.Close() })
	}
	return dsn, stores
}

// TestFleetExactCap: 3 stores x 24 goroutines reserve against one cap with
// demand four times over it, each call amounts that do not divide the
// cap. What is admitted sums to the cap less what cannot fit, never more,
// and the counter says the same.
func TestFleetExactCap(t *testing.T) {
	_, stores := fleet(t, 3, &postgres.Options{MaxConns: 4})
	const (
		limit   = 1000
		workers = 24
		each    = 6
	)
	amounts := []int64{7, 3, 11, 5, 13}
	var (
		mu       sync.Mutex
		admitted int64
		calls    int
		results  = map[store.Result]int{}
		errs     []error
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	for si, s := range stores {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < each; i++ {
					amount := amounts[(si+w+i)%len(amounts)]
					a, err := s.Reserve(ctx, &store.Reservation{Record: call(i), Holds: []audit.Hold{{Key: "cap", Unit: "USD", Limit: limit, Amount: amount}}})
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						results[a.Result]++
						if a.Result == store.Admitted {
							admitted += amount
							calls++
						}
					}
					mu.Unlock()
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	if admitted > limit {
		t.Fatalf("admitted %d against a cap of %d: overshoot", admitted, limit)
	}
	// Demand is over four times the cap: the cap is full to within the
	// largest amount that was refused.
	if admitted <= limit-13 {
		t.Fatalf("admitted %d of a cap of %d with demand left over: results %v", admitted, limit, results)
	}
	for _, s := range stores {
		c, err := s.Counter(ctx, "cap")
		if err != nil {
			t.Fatal(err)
		}
		if c.Pending != admitted || c.Settled != 0 || c.Unknown != 0 {
			t.Fatalf("counter %+v, admitted %d", c, admitted)
		}
	}
	n := 0
	if err := stores[0].Query(ctx, audit.Query{}, func(*audit.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != calls {
		t.Fatalf("%d records, %d admissions", n, calls)
	}
	if rep, err := stores[1].Verify(ctx); err != nil || rep.Records != n || rep.Entries != n {
		t.Fatalf("Verify = %+v, %v; want %d records and entries", rep, err, n)
	}
}

// TestFleetExactCapUnitAmounts: amounts of one against a cap, so the cap
// is met exactly.
func TestFleetExactCapUnitAmounts(t *testing.T) {
	_, stores := fleet(t, 2, nil)
	const limit, perStore = 50, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for _, s := range stores {
		for i := 0; i < perStore; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := s.Reserve(ctx, &store.Reservation{Record: call(i), Holds: []audit.Hold{
					{Key: "calls", Unit: "units", Limit: limit, Amount: 1}, {Key: "usd", Unit: "USD", Limit: -1, Amount: 5}}})
				if err != nil {
					t.Error(err)
					return
				}
				if a.Result == store.Admitted {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if admitted != limit {
		t.Fatalf("admitted %d, want exactly the cap %d", admitted, limit)
	}
	if c, _ := stores[0].Counter(ctx, "usd"); c.Pending != 5*limit {
		t.Fatalf("usd counter %+v, want %d pending", c, 5*limit)
	}
}

// TestFleetIdempotencyRace: one key, many stores and goroutines at once:
// one is admitted, the rest see the key in use; once it settles, every
// retry replays and nothing more is counted.
func TestFleetIdempotencyRace(t *testing.T) {
	_, stores := fleet(t, 3, nil)
	idem := &store.Idempotency{Key: "agent/stripe/k", Fingerprint: "fp"}
	race := func() map[store.Result][]store.Admission {
		var wg sync.WaitGroup
		var mu sync.Mutex
		out := map[store.Result][]store.Admission{}
		for _, s := range stores {
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a, err := s.Reserve(ctx, &store.Reservation{Record: call(i), Holds: []audit.Hold{{Key: "usd", Unit: "USD", Limit: 1000, Amount: 100}}, Idempotency: idem})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					out[a.Result] = append(out[a.Result], a)
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		return out
	}
	got := race()
	if len(got[store.Admitted]) != 1 || len(got[store.KeyInUse]) != 29 {
		t.Fatalf("first race: %d admitted, %d in use; want 1 and 29", len(got[store.Admitted]), len(got[store.KeyInUse]))
	}
	if c, _ := stores[0].Counter(ctx, "usd"); c.Pending != 100 {
		t.Fatalf("counter %+v after the race, want 100 pending", c)
	}
	first := got[store.Admitted][0]
	if err := stores[2].Complete(ctx, &store.Completion{ID: first.ID, Outcome: audit.Unknown}); err != nil {
		t.Fatal(err)
	}
	// After Unknown, exactly one retry takes the holds over.
	got = race()
	if len(got[store.Admitted]) != 1 || got[store.Admitted][0].RetryOf != first.ID || len(got[store.KeyInUse]) != 29 {
		t.Fatalf("takeover race: %v", got)
	}
	if c, _ := stores[0].Counter(ctx, "usd"); c != (store.Counter{Pending: 100}) {
		t.Fatalf("counter %+v after the takeover, want 100 pending", c)
	}
	if err := stores[1].Complete(ctx, &store.Completion{ID: got[store.Admitted][0].ID, Outcome: audit.Settled, Settled: []int64{100}}); err != nil {
		t.Fatal(err)
	}
	got = race()
	if len(got[store.Replayed]) != 30 {
		t.Fatalf("after settling: %v, want 30 replays", got)
	}
	if c, _ := stores[0].Counter(ctx, "usd"); c != (store.Counter{Settled: 100}) {
		t.Fatalf("counter %+v after the replays, want 100 settled", c)
	}
	if _, err := stores[0].Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestExpiredSessionRecovered: a store that stops without Close leaves its
// reservation Reserved; once its heartbeat expires, exactly one of the
// live stores turns it Unknown, money still counted, journaled once.
func TestExpiredSessionRecovered(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	dead := open(t, dsn, &postgres.Options{SessionTimeout: 300 * time.Millisecond})
	a, err := dead.Reserve(ctx, &store.Reservation{Record: call(0), Holds: []audit.Hold{{Key: "usd", Unit: "USD", Limit: 100, Amount: 60}}})
	if err != nil || a.Result != store.Admitted {
		t.Fatalf("Reserve = %+v, %v", a, err)
	}
	dead.Crash()
	var live []*postgres.Store
	for i := 0; i < 3; i++ {
		s := open(t, dsn, &postgres.Options{Heartbeat: 20 * time.Millisecond})
		t.Cleanup(func() { s.Close() })
		live = append(live, s)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var r *audit.Record
		if err := live[0].Query(ctx, audit.Query{}, func(x *audit.Record) error { r = x; return nil }); err != nil {
			t.Fatal(err)
		}
		if r.Outcome == audit.Unknown {
			if !strings.Contains(r.Reason, "interrupted") {
				t.Errorf("recovered record's reason %q", r.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record still %s a minute after its session stopped", r.Outcome)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // give the other stores their chance to recover it again
	if c, _ := live[1].Counter(ctx, "usd"); c != (store.Counter{Unknown: 60}) {
		t.Fatalf("counter %+v, want 60 unknown", c)
	}
	rep, err := live[2].Verify(ctx)
	if err != nil || rep.Entries != 2 || rep.Records != 1 {
		t.Fatalf("Verify = %+v, %v; want 2 entries (the reservation, its recovery) and 1 record", rep, err)
	}
	if got, err := live[0].Reserve(ctx, &store.Reservation{Record: call(1), Holds: []audit.Hold{{Key: "usd", Unit: "USD", Limit: 100, Amount: 41}}}); err != nil || got.Result != store.OverLimit {
		t.Fatalf("Reserve over the recovered money = %+v, %v; want OverLimit", got, err)
	}
}

// TestFencedSessionRenews: a store whose session was declared dead while it
// lived goes on in a new session; its reservation in flight stays counted.
func TestFencedSessionRenews(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	s := open(t, dsn, &postgres.Options{Heartbeat: time.Hour})
	defer s.Close()
	a, err := s.Reserve(ctx, &store.Reservation{Record: call(0), Holds: []audit.Hold{{Key: "usd", Unit: "USD", Limit: 100, Amount: 60}}})
	if err != nil {
		t.Fatal(err)
	}
	old := s.Session()
	testenv.PostgresExec(t, dsn, `UPDATE keybrake_sessions SET heartbeat = now() - interval '1 hour' WHERE id = $1`, old)
	other := open(t, dsn, nil) // recovers the expired session at Open
	defer other.Close()
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{60}}); !errors.Is(err, store.ErrNotReserved) {
		t.Fatalf("Complete of a recovered record = %v, want ErrNotReserved", err)
	}
	if _, err := s.Append(ctx, &audit.Record{Time: call(1).Time, Agent: "a", Decision: policy.Blocked}); err != nil {
		t.Fatalf("Append after the session was fenced: %v", err)
	}
	if s.Session() == old {
		t.Fatalf("still in session %d", old)
	}
	if c, _ := s.Counter(ctx, "usd"); c != (store.Counter{Unknown: 60}) {
		t.Fatalf("counter %+v, want 60 unknown", c)
	}
	if _, err := other.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestOpenTogether: stores opening at once on a new schema migrate it once.
func TestOpenTogether(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(ctx, dsn, nil)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	open(t, dsn, nil).Close()
	testenv.PostgresExec(t, dsn, `INSERT INTO keybrake_migrations (version, name) VALUES ($1, 'from the future')`, postgres.SchemaVersion+1)
	_, err := postgres.Open(ctx, dsn, nil)
	if !errors.Is(err, postgres.ErrSchema) || !strings.Contains(err.Error(), fmt.Sprintf("version %d", postgres.SchemaVersion+1)) {
		t.Fatalf("Open of a newer schema = %v, want ErrSchema naming the version", err)
	}
}

// TestErrorsHideThePassword: a wrong password, a server that is not
// there, and a DSN that does not parse: the errors name where, never the
// password.
func TestErrorsHideThePassword(t *testing.T) {
	base := testenv.PostgresURL(t)
	const secret = "s3cr3t-Pa55word"
	withPassword := func(dsn, pw string) string {
		i := strings.Index(dsn, "://")
		j := strings.Index(dsn, "@")
		user := dsn[i+3 : j]
		if k := strings.Index(user, ":"); k >= 0 {
			user = user[:k]
		}
		return dsn[:i+3] + user + ":" + pw + dsn[j:]
	}
	tests := []struct {
		name, dsn string
		says      []string
		sentinel  error
	}{
		{"wrong password", withPassword(base, secret), []string{"127.0.0.1", `database "keybrake"`}, postgres.ErrUnavailable},
		{"nobody listening", "postgres://keybrake:" + secret + "@127.0.0.1:1/kbdb?connect_timeout=5", []string{"127.0.0.1", "port 1", `database "kbdb"`}, postgres.ErrUnavailable},
		{"does not parse", "postgres://keybrake:" + secret + "@127.0.0.1:notaport/kbdb", nil, nil},
		{"key=value", "host=127.0.0.1 port=1 dbname=kbdb user=keybrake password=" + secret + " connect_timeout=5", []string{"port 1", `database "kbdb"`}, postgres.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			s, err := postgres.Open(c, tt.dsn, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, secret) {
				t.Fatalf("the error shows the password: %v", err)
			}
			for _, w := range tt.says {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not wrap %v", err, tt.sentinel)
			}
			t.Log(msg)
		})
	}
}

// TestPruneAcrossSessions: records reserved by one store and completed by
// another have entries in two chains; pruning them leaves chains that
// verify, and the journal never says a removed record should be there.
// The stores reserve in one session and complete in the other, in both
// orders: when the chain holding the completions is cut first, older
// entries remain in the other and the removed records leave tombstones.
func TestPruneAcrossSessions(t *testing.T) {
	for _, swap := range []bool{false, true} {
		t.Run(fmt.Sprintf("swap=%v", swap), func(t *testing.T) {
			_, stores := fleet(t, 2, nil)
			a, b := stores[0], stores[1]
			if swap {
				a, b = b, a
			}
			testPruneAcrossSessions(t, a, b)
		})
	}
}

func testPruneAcrossSessions(t *testing.T, a, b *postgres.Store) {
	day0 := call(0).Time
	var ids []uint64
	for i := 0; i < 5; i++ {
		r := call(i)
		adm, err := a.Reserve(ctx, &store.Reservation{Record: r, Holds: []audit.Hold{{Key: "agent/x/" + day0.Format(time.DateOnly) + "/USD", Unit: "USD", Limit: -1, Amount: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, adm.ID)
	}
	young := call(0)
	young.Time = day0.AddDate(0, 0, 2)
	young.Decision = policy.Blocked
	if _, err := a.Append(ctx, &young); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:4] { // the fifth stays Reserved: never pruned
		if err := b.Complete(ctx, &store.Completion{ID: id, Outcome: audit.Settled, Settled: []int64{1}}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := a.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := b.Prune(ctx, day0.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 4 || rep.Counters != 0 || rep.Checkpoint == 0 {
		t.Fatalf("Prune = %+v, want 4 records removed, the counter kept (record %d holds it) and a checkpoint", rep, ids[4])
	}
	after, err := a.Verify(ctx)
	if err != nil {
		t.Fatalf("Verify after Prune = %+v, %v (before: %+v)", after, err, before)
	}
	if after.Records != 2 {
		t.Fatalf("Verify after Prune = %+v, want 2 records", after)
	}
	if err := a.Complete(ctx, &store.Completion{ID: ids[4], Outcome: audit.Released}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := a.Prune(ctx, day0.AddDate(0, 0, 1)); err != nil {
			t.Fatal(err)
		}
		if rep, err := b.Verify(ctx); err != nil || rep.Records != 1 {
			t.Fatalf("Verify after pruning again = %+v, %v; want the young record alone", rep, err)
		}
	}
}
