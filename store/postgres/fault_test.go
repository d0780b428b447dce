package postgres_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/postgres"
)

// The fault tests run a fleet as it runs in production: 4 OS processes
// (this test binary run again: see TestMain) x 32 goroutines, each
// process a Brake on its own postgres.Store, every call a stripe-go v76
// refund of one cent through Brake.HTTPClient, all against one
// fakes/fakestripe served by the test. The fake stands in for Stripe's
// API: it executes each refund it receives and keeps a ledger of the
// money actually moved (Moved, Movements) and of every request with its
// Idempotency-Key (Log), which is what the tests compare with the cap and
// with the store's records. Demand is far above the cap: every goroutine
// calls until the cap has refused it faultCappedInARow times in a row.

const (
	faultChildEnv     = "KEYBRAKE_FAULT_CHILD"
	faultProcs        = 4
	faultGoroutines   = 32
	faultCappedInARow = 20
	faultCharges      = 64
	faultAgent        = "refund-bot"
)

// faultJob is what one child process does.
type faultJob struct {
	DSN, Fake, Policy string
}

// faultReport is what a child prints when its goroutines are done.
type faultReport struct {
	OK, Capped, StoreErrors, Other int
	// OKAfterStoreError counts the calls that succeeded after the
	// process's last store error: calls flow again without a restart.
	OKAfterStoreError int
	FirstOther        string
}

// TestMain runs the test binary as a process of a fault test's fleet when
// faultChildEnv is set, and the tests otherwise.
func TestMain(m *testing.M) {
	if spec := os.Getenv(faultChildEnv); spec != "" {
		if err := faultChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "fault child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// faultChild is one process of the fleet: its goroutines call until the
// cap refuses each faultCappedInARow times in a row; then it closes its
// Brake and prints its report.
func faultChild(spec string) error {
	var j faultJob
	if err := json.Unmarshal([]byte(spec), &j); err != nil {
		return err
	}
	stripego.DefaultLeveledLogger = &stripego.LeveledLogger{Level: stripego.LevelNull}
	st, err := postgres.Open(ctx, j.DSN, &postgres.Options{Heartbeat: 100 * time.Millisecond, SessionTimeout: time.Second, CommitTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	kb, err := keybrake.Open(keybrake.Options{
		PolicyFile: j.Policy, Store: st, AdminSocket: "-",
		Endpoints: map[keybrake.Vendor]string{keybrake.Stripe: j.Fake},
	})
	if err != nil {
		st.Close()
		return err
	}
	backend := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{
		HTTPClient: kb.HTTPClient(faultAgent, keybrake.Stripe), URL: stripego.String(stripego.APIURL),
		MaxNetworkRetries: stripego.Int64(0), // a refusal is an answer, not something to retry
	})
	sc := client.New("sk_"+"test_fault", &stripego.Backends{API: backend, Connect: backend, Uploads: backend})
	var (
		mu  sync.Mutex
		rep faultReport
		wg  sync.WaitGroup
		n   atomic.Int64
	)
	for g := 0; g < faultGoroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for capped := 0; capped < faultCappedInARow; {
				i := n.Add(1)
				_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String(fmt.Sprintf("ch_fault%02d", i%faultCharges)), Amount: stripego.Int64(1)})
				d, denied := keybrake.AsDenial(err)
				mu.Lock()
				switch {
				case err == nil:
					rep.OK++
					rep.OKAfterStoreError++
					capped = 0
				case denied && d.Decision == keybrake.Capped:
					rep.Capped++
					capped++
				case denied && d.Code == "keybrake_store_error":
					rep.StoreErrors++
					rep.OKAfterStoreError = 0
					capped = 0
				default:
					rep.Other++
					if rep.FirstOther == "" {
						rep.FirstOther = err.Error()
					}
					capped = 0
				}
				mu.Unlock()
				if denied && d.Code == "keybrake_store_error" {
					time.Sleep(5 * time.Millisecond) // not a busy loop while the database is away
				}
			}
		}()
	}
	wg.Wait()
	if err := kb.Close(); err != nil {
		return fmt.Errorf("Close: %w", err)
	}
	b, _ := json.Marshal(rep)
	fmt.Printf("\nfault-report %s\n", b)
	return nil
}

// fleetRun is one fault test's fleet.
type fleetRun struct {
	t      *testing.T
	dsn    string
	fake   *fakestripe.Server
	cap    int64 // cents
	procs  []*exec.Cmd
	out    []*strings.Builder
	killed map[int]bool
}

func startFleet(t *testing.T, dsn string, capCents int64) *fleetRun {
	t.Helper()
	if testing.Short() {
		t.Skip("starts 4 processes")
	}
	fs := fakestripe.New()
	for i := 0; i < faultCharges; i++ {
		fs.AddCharge(fakestripe.Charge{ID: fmt.Sprintf("ch_fault%02d", i), Amount: 99_999_999, Currency: "usd", Captured: true})
	}
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	t.Cleanup(fs.Close)
	policy := filepath.Join(t.TempDir(), "keybrake.yaml")
	text := fmt.Sprintf("version: 1\nagents:\n  %s:\n    stripe:\n      daily_cap: %d.%02d USD\n      per_call_max: 1.00 USD\n      allow:\n        - GET /v1/charges/{id}\n        - POST /v1/refunds\n",
		faultAgent, capCents/100, capCents%100)
	if err := os.WriteFile(policy, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	open(t, dsn, nil).Close() // migrate once, before the processes race to
	spec, _ := json.Marshal(faultJob{DSN: dsn, Fake: srv.URL, Policy: policy})
	f := &fleetRun{t: t, dsn: dsn, fake: fs, cap: capCents, killed: map[int]bool{}}
	for i := 0; i < faultProcs; i++ {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), faultChildEnv+"="+string(spec))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		f.procs, f.out = append(f.procs, cmd), append(f.out, &out)
	}
	t.Cleanup(func() {
		for _, p := range f.procs {
			p.Process.Kill()
		}
	})
	return f
}

// movedCents is what the fake has refunded so far.
func (f *fleetRun) movedCents() int64 { return f.fake.Moved()["usd"] }

// waitMoved waits until the fake has moved at least cents.
func (f *fleetRun) waitMoved(cents int64) {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for f.movedCents() < cents {
		if time.Now().After(deadline) {
			f.t.Fatalf("the fleet moved %d cents in 20 s, waiting for %d", f.movedCents(), cents)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fleetRun) kill(i int) {
	f.t.Helper()
	if err := f.procs[i].Process.Signal(syscall.SIGKILL); err != nil {
		f.t.Fatal(err)
	}
	f.killed[i] = true
}

// wait waits for every process and returns the reports of those not
// killed.
func (f *fleetRun) wait() []faultReport {
	f.t.Helper()
	var reps []faultReport
	for i, p := range f.procs {
		err := p.Wait()
		if f.killed[i] {
			continue
		}
		if err != nil {
			f.t.Fatalf("process %d: %v\n%s", i, err, f.out[i])
		}
		var rep faultReport
		found := false
		sc := bufio.NewScanner(strings.NewReader(f.out[i].String()))
		for sc.Scan() {
			if b, ok := strings.CutPrefix(sc.Text(), "fault-report "); ok {
				found = json.Unmarshal([]byte(b), &rep) == nil
			}
		}
		if !found {
			f.t.Fatalf("process %d printed no report:\n%s", i, f.out[i])
		}
		if rep.Other > 0 {
			f.t.Errorf("process %d: %d calls failed otherwise than capped or store errors, first: %s", i, rep.Other, rep.FirstOther)
		}
		reps = append(reps, rep)
	}
	return reps
}

// check opens a store on the fleet's database once every session is
// closed or expired (Open recovers the expired ones) and compares it with
// the fake: the money moved never exceeds the cap, the cap's counter holds
// exactly the cap (demand was above it) with nothing left pending, every
// refund the fake executed has its record, no record is Reserved any
// more, and the chain verifies. It returns the counter.
func (f *fleetRun) check() store.Counter {
	t := f.t
	t.Helper()
	if len(f.killed) > 0 {
		time.Sleep(1500 * time.Millisecond) // past the killed sessions' timeout
	}
	s := open(t, f.dsn, nil)
	defer s.Close()
	capMicros := f.cap * 10_000
	moved := f.movedCents()
	if moved > f.cap {
		t.Errorf("the fake moved %d cents against a cap of %d: overshoot", moved, f.cap)
	}
	var (
		byKey   = map[string]*audit.Record{}
		counter string
	)
	err := s.Query(ctx, audit.Query{}, func(r *audit.Record) error {
		if r.Outcome == audit.Reserved {
			t.Errorf("record %d is still reserved after every process stopped or was recovered", r.ID)
		}
		if r.IdempotencyKey != "" && r.Decision == keybrake.Allowed {
			if prev := byKey[r.IdempotencyKey]; prev != nil {
				t.Errorf("records %d and %d share idempotency key %q", prev.ID, r.ID, r.IdempotencyKey)
			}
			byKey[r.IdempotencyKey] = r
		}
		for _, h := range r.Holds {
			if h.Unit == "USD" {
				counter = h.Key
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Counter(ctx, counter)
	if err != nil {
		t.Fatal(err)
	}
	if c.Total() != capMicros || c.Pending != 0 {
		t.Errorf("cap counter %q %+v: want a total of exactly the cap, %d, nothing pending", counter, c, capMicros)
	}
	if moved*10_000 < c.Settled {
		t.Errorf("the store settled %d micros, more than the %d cents the fake moved", c.Settled, moved)
	}
	requests := map[string]fakestripe.Request{}
	for _, r := range f.fake.Log() {
		requests[r.ID] = r
	}
	for _, m := range f.fake.Movements() {
		req := requests[m.RequestID]
		r := byKey[req.IdempotencyKey]
		switch {
		case r == nil:
			t.Errorf("refund %s (request %s, key %q) reached the fake and has no record", m.Object, m.RequestID, req.IdempotencyKey)
		case r.Outcome == audit.Settled && r.Object != m.Object:
			t.Errorf("record %d settled as %q, the fake made %s for its key", r.ID, r.Object, m.Object)
		case r.Outcome != audit.Settled && r.Outcome != audit.Unknown:
			t.Errorf("record %d of refund %s is %s", r.ID, m.Object, r.Outcome)
		}
	}
	if _, err := s.Verify(ctx); err != nil {
		t.Errorf("Verify: %v", err)
	}
	return c
}

// TestFaultFleetExactCap: with demand far above the cap, the fake moves
// exactly the cap, the store settles exactly what it moved, and every
// refund has its record.
func TestFaultFleetExactCap(t *testing.T) {
	f := startFleet(t, testenv.PostgresSchema(t), 600)
	reps := f.wait()
	ok := 0
	for _, r := range reps {
		ok += r.OK
		if r.StoreErrors > 0 {
			t.Errorf("a process saw %d store errors with the database up", r.StoreErrors)
		}
	}
	c := f.check()
	if moved := f.movedCents(); moved != f.cap || int64(ok) != f.cap {
		t.Errorf("the fake moved %d cents in %d refunds the agents saw succeed; want exactly the cap, %d", moved, ok, f.cap)
	}
	if c.Settled != f.cap*10_000 {
		t.Errorf("counter %+v: want all of the cap settled", c)
	}
}

// TestFaultFleetSIGKILL: two of the four processes are killed with
// SIGKILL mid-run, at random moments; the survivors recover their
// sessions (heartbeat expired: their reservations turn Unknown, still
// counted) and spend the rest of the cap. The fake never moves more than
// the cap, and every refund it made has a record.
func TestFaultFleetSIGKILL(t *testing.T) {
	f := startFleet(t, testenv.PostgresSchema(t), 900)
	order := rand.Perm(faultProcs)
	f.waitMoved(100 + rand.Int64N(200))
	f.kill(order[0])
	f.waitMoved(f.movedCents() + 100 + rand.Int64N(200))
	f.kill(order[1])
	f.wait()
	c := f.check()
	t.Logf("the fake moved %d of %d cents; counter %+v", f.movedCents(), f.cap, c)
}

// TestFaultPostgresRestart: PostgreSQL is stopped with -m immediate while
// the fleet calls, and started again a second later. Calls during the
// outage are refused 503 keybrake_store_error, nothing sent (the fake
// moved exactly what the agents saw succeed); calls flow again in every
// process without a restart; the cap holds and no record is lost.
//
// It runs a PostgreSQL cluster of its own (.ci/postgres.sh start, then
// pg_ctl as the postgres user), so that the restart never reaches the
// tests of other packages that share KEYBRAKE_TEST_DATABASE_URL's. It
// needs root and PostgreSQL's binaries, as that script does; it skips
// without them, and fails under CI=true.
func TestFaultPostgresRestart(t *testing.T) {
	testenv.PostgresURL(t) // skips, or fails under CI, without a database
	cluster := ownCluster(t)
	dsn := schemaOn(t, cluster.url)
	f := startFleet(t, dsn, 1200)
	f.waitMoved(250)
	cluster.pgctl("stop", "-m", "immediate")
	stopped := f.movedCents()
	time.Sleep(time.Second)
	if during := f.movedCents() - stopped; during > faultProcs*faultGoroutines {
		t.Errorf("%d cents moved in the second the database was down", during)
	}
	cluster.start()
	reps := f.wait()
	ok, storeErrors := 0, 0
	for i, r := range reps {
		ok += r.OK
		storeErrors += r.StoreErrors
		if r.StoreErrors == 0 {
			t.Errorf("process %d saw no store error while the database was down", i)
		}
		if r.OKAfterStoreError == 0 {
			t.Errorf("process %d made no successful call after its last store error", i)
		}
	}
	f.check()
	if moved := f.movedCents(); moved != int64(ok) {
		t.Errorf("the fake moved %d cents, the agents saw %d refunds succeed: a refused call was sent, or a sent one reported refused", moved, ok)
	}
	t.Logf("%d refunds, %d refused with a store error during the outage; the fake moved %d of %d cents", ok, storeErrors, f.movedCents(), f.cap)
}

// cluster is a PostgreSQL of the test's own.
type cluster struct {
	t    *testing.T
	dir  string // as .ci/postgres.sh made it: data/, server.log
	url  string
	port string
}

const pgBin = "/usr/lib/postgresql/15/bin"

func ownCluster(t *testing.T) *cluster {
	t.Helper()
	msg := ""
	switch {
	case os.Geteuid() != 0:
		msg = "not root"
	default:
		if _, err := os.Stat(filepath.Join(pgBin, "pg_ctl")); err != nil {
			msg = "no " + pgBin + "/pg_ctl"
		}
	}
	if msg != "" {
		msg = "TestFaultPostgresRestart restarts a PostgreSQL of its own with pg_ctl as the postgres user, and " + msg
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out, err := exec.Command("bash", "../../.ci/postgres.sh", "start").Output()
	if err != nil {
		t.Fatalf(".ci/postgres.sh start: %v", err)
	}
	c := &cluster{t: t}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "export KEYBRAKE_TEST_DATABASE_URL="); ok {
			c.url = strings.Trim(v, "'")
		}
		if v, ok := strings.CutPrefix(line, "export KEYBRAKE_TEST_PGDIR="); ok {
			c.dir = strings.Trim(v, "'")
		}
	}
	if c.url == "" || c.dir == "" {
		t.Fatal(".ci/postgres.sh start printed no URL or directory")
	}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", "../../.ci/postgres.sh", "stop", c.dir).CombinedOutput(); err != nil {
			t.Errorf(".ci/postgres.sh stop: %v\n%s", err, out)
		}
	})
	i := strings.LastIndex(c.url, ":")
	c.port = c.url[i+1 : i+1+strings.Index(c.url[i+1:], "/")]
	return c
}

func (c *cluster) pgctl(args ...string) {
	c.t.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-w"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
	}
}

// start starts the cluster as .ci/postgres.sh does.
func (c *cluster) start() {
	c.pgctl("-l", filepath.Join(c.dir, "server.log"), "-t", "60",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%s -c unix_socket_directories=%s -c max_connections=300 -c fsync=on", c.port, c.dir),
		"start")
}

// schemaOn makes a schema on the cluster at url for the test, as
// testenv.PostgresSchema does on the shared one; the cluster goes with
// the test, so nothing drops it.
func schemaOn(t *testing.T, url string) string {
	t.Helper()
	t.Setenv(testenv.PostgresEnv, url)
	return testenv.PostgresSchema(t)
}
