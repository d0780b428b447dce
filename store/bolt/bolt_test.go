package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
	"github.com/keybrake/keybrake/store/storetest"
)

// The tests re-execute their own binary to get a second process: one that
// holds the file lock, or one that crashes between Reserve and Complete.
// childEnv selects what the child does; childPath is its database.
const (
	childEnv  = "KEYBRAKE_BOLT_TEST_CHILD"
	childPath = "KEYBRAKE_BOLT_TEST_PATH"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "crash":
		childCrash(os.Getenv(childPath))
	case "lock":
		childLock(os.Getenv(childPath))
	case "verify":
		childVerify(os.Getenv(childPath))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", childEnv, os.Getenv(childEnv))
		os.Exit(3)
	}
}

// childCrash reserves and exits without completing, as a process killed
// after its reservation committed and before the vendor answered.
func childCrash(path string) {
	s, err := bolt.Open(path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	a, err := s.Reserve(context.Background(), &store.Reservation{
		Record:      call("crash"),
		Holds:       []audit.Hold{{Key: "day:USD", Unit: "USD", Limit: 100_000_000, Amount: 25_000_000}},
		Idempotency: &store.Idempotency{Key: "crash-key", Fingerprint: "fp"},
	})
	if err != nil || a.Result != store.Admitted {
		fmt.Fprintln(os.Stderr, a, err)
		os.Exit(2)
	}
	fmt.Println(a.ID)
	os.Exit(1) // no Complete, no Close
}

// childLock tries to open a file the parent holds and reports how it went:
// exit 0 when Open failed with ErrLocked, printing the error and the wait.
func childLock(path string) {
	start := time.Now()
	s, err := bolt.Open(path, nil)
	elapsed := time.Since(start)
	if err == nil {
		s.Close()
		fmt.Println("opened a locked file")
		os.Exit(2)
	}
	fmt.Printf("%v\n%d\n", err, elapsed.Milliseconds())
	if !errors.Is(err, store.ErrLocked) {
		os.Exit(2)
	}
	os.Exit(0)
}

// childVerify opens the file read-only and verifies it, as `keybrake audit
// verify` does, printing the report; exit 1 when the chain is broken.
func childVerify(path string) {
	s, err := bolt.Open(path, &bolt.Options{ReadOnly: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	rep, err := s.Verify(context.Background())
	s.Close()
	fmt.Printf("%d %d %s\n", rep.Entries, rep.Records, rep.HeadHash)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(0)
}

func child(t *testing.T, what, path string) (stdout string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+what, childPath+"="+path)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if errb.Len() > 0 {
		t.Logf("child %s stderr: %s", what, errb.String())
	}
	return out.String(), err
}

func call(agent string) audit.Record {
	return audit.Record{
		Time:     time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		Agent:    agent,
		Vendor:   "stripe",
		Method:   "POST",
		Path:     "/v1/refunds",
		Decision: policy.Allowed,
		Amount:   money.Amount{Micros: 25_000_000, Currency: "USD"},
		Reserved: money.Amount{Micros: 25_000_000, Currency: "USD"},
	}
}

func open(t testing.TB, path string) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() }) // ErrClosed when the test closed it
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "keybrake.db"))
	})
}

func TestConformanceRestart(t *testing.T) {
	storetest.RunRestart(t, func(t *testing.T) (store.Store, storetest.Reopen) {
		path := filepath.Join(t.TempDir(), "keybrake.db")
		return open(t, path), func(t *testing.T) store.Store { return open(t, path) }
	})
}

func TestSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	ctx := context.Background()
	s := open(t, path)
	h := audit.Hold{Key: "day:USD", Unit: "USD", Limit: 100_000_000, Amount: 25_000_000}
	settled, err := s.Reserve(ctx, &store.Reservation{Record: call("a"), Holds: []audit.Hold{h}, Idempotency: &store.Idempotency{Key: "k1", Fingerprint: "f"}})
	if err != nil || settled.Result != store.Admitted {
		t.Fatal(settled, err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: settled.ID, Outcome: audit.Settled, Settled: []int64{20_000_000}, Moved: money.Amount{Micros: 20_000_000, Currency: "USD"}, Status: 200}); err != nil {
		t.Fatal(err)
	}
	unknown, err := s.Reserve(ctx, &store.Reservation{Record: call("b"), Holds: []audit.Hold{h}})
	if err != nil || unknown.Result != store.Admitted {
		t.Fatal(unknown, err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: unknown.ID, Outcome: audit.Unknown}); err != nil {
		t.Fatal(err)
	}
	refusedID, err := s.Append(ctx, &audit.Record{Agent: "c", Decision: policy.Capped, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetFact(ctx, "charge:ch_1:currency", "usd"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	if c, err := s.Counter(ctx, "day:USD"); err != nil || c != (store.Counter{Settled: 20_000_000, Unknown: 25_000_000}) {
		t.Fatalf("Counter after reopen = %+v, %v", c, err)
	}
	if v, ok, err := s.Fact(ctx, "charge:ch_1:currency"); v != "usd" || !ok || err != nil {
		t.Fatalf("Fact after reopen = %q, %v, %v", v, ok, err)
	}
	var ids []uint64
	var outcomes []audit.Outcome
	if err := s.Query(ctx, audit.Query{}, func(r *audit.Record) error {
		ids = append(ids, r.ID)
		outcomes = append(outcomes, r.Outcome)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != fmt.Sprint([]uint64{settled.ID, unknown.ID, refusedID}) ||
		fmt.Sprint(outcomes) != fmt.Sprint([]audit.Outcome{audit.Settled, audit.Unknown, audit.None}) {
		t.Fatalf("records after reopen: %v %v", ids, outcomes)
	}
	// The idempotency index survived: a retry of the settled call replays.
	a, err := s.Reserve(ctx, &store.Reservation{Record: call("a"), Holds: []audit.Hold{h}, Idempotency: &store.Idempotency{Key: "k1", Fingerprint: "f"}})
	if err != nil || a.Result != store.Replayed || a.RetryOf != settled.ID {
		t.Fatalf("retry after reopen = %+v, %v", a, err)
	}
	// IDs keep growing.
	if a.ID <= refusedID {
		t.Fatalf("ID after reopen %d, not above %d", a.ID, refusedID)
	}
}

func TestCrashRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	out, err := child(t, "crash", path)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("child: %v (want exit status 1)", err)
	}
	var id uint64
	if _, err := fmt.Sscan(out, &id); err != nil || id == 0 {
		t.Fatalf("child printed %q", out)
	}

	ctx := context.Background()
	s := open(t, path)
	c, err := s.Counter(ctx, "day:USD")
	if err != nil || c != (store.Counter{Unknown: 25_000_000}) {
		t.Fatalf("Counter after crash = %+v, %v; want the money counted as unknown", c, err)
	}
	var got []*audit.Record
	if err := s.Query(ctx, audit.Query{}, func(r *audit.Record) error {
		got = append(got, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != id || got[0].Outcome != audit.Unknown || got[0].Agent != "crash" ||
		got[0].Reason != "(interrupted: the process stopped before the response was recorded)" {
		t.Fatalf("records after crash: %+v", got)
	}
	if err := s.Complete(ctx, &store.Completion{ID: id, Outcome: audit.Settled}); !errors.Is(err, store.ErrNotReserved) {
		t.Fatalf("Complete of the recovered record = %v, want ErrNotReserved", err)
	}
	// The same idempotency key retried takes over the recovered holds.
	a, err := s.Reserve(ctx, &store.Reservation{Record: call("crash"), Idempotency: &store.Idempotency{Key: "crash-key", Fingerprint: "fp"}})
	if err != nil || a.Result != store.Admitted || a.RetryOf != id || len(a.Holds) != 1 {
		t.Fatalf("retry after crash = %+v, %v", a, err)
	}
	if c, _ := s.Counter(ctx, "day:USD"); c != (store.Counter{Pending: 25_000_000}) {
		t.Fatalf("Counter after takeover = %+v", c)
	}
	// Recovery ran once: reopening changes nothing more.
	s.Close()
	s = open(t, path)
	if c, _ := s.Counter(ctx, "day:USD"); c != (store.Counter{Unknown: 25_000_000}) {
		t.Fatalf("Counter after second reopen = %+v (the takeover, in flight, became unknown)", c)
	}
}

func TestRecoveryAppendsToReason(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	ctx := context.Background()
	s := open(t, path)
	rec := call("a")
	rec.Reason = "allowed by rule x"
	a, err := s.Reserve(ctx, &store.Reservation{Record: rec, Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	// Leave it Reserved, as a crash would, by closing without Complete.
	s.Close()
	s = open(t, path)
	var reason string
	s.Query(ctx, audit.Query{}, func(r *audit.Record) error { reason = r.Reason; return nil })
	if want := "allowed by rule x (interrupted: the process stopped before the response was recorded)"; reason != want {
		t.Fatalf("Reason = %q, want %q (record %d)", reason, want, a.ID)
	}
	if c, _ := s.Counter(ctx, "k"); c != (store.Counter{Unknown: 3}) {
		t.Fatalf("Counter = %+v", c)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	open(t, path) // held until the test ends
	start := time.Now()
	out, err := child(t, "lock", path)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("child: %v; output %q", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var waited int64
	fmt.Sscan(lines[len(lines)-1], &waited)
	if !strings.Contains(out, path) || !strings.Contains(out, "another process") {
		t.Errorf("error does not name the path and the cause: %q", out)
	}
	// The default wait is one second; allow for a slow machine but not a hang.
	if waited < 900 || waited > 3000 || elapsed > 20*time.Second {
		t.Errorf("child waited %d ms for the lock (process ran %v), want about 1000", waited, elapsed)
	}
	t.Logf("child: %s", out)
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	open(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Fatalf("file mode %v, want 0600", m)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	open(t, path).Close()
	setSchema(t, path, bolt.SchemaVersion+1)
	s, err := bolt.Open(path, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
	if !errors.Is(err, bolt.ErrSchema) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open = %v, want ErrSchema saying the file is newer", err)
	}
	// Refusing released the file: the current version opens again.
	setSchema(t, path, bolt.SchemaVersion)
	open(t, path).Close()
}

func setSchema(t *testing.T, path string, v uint64) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		b := make([]byte, 8)
		binary.BigEndian.PutUint64(b, v)
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), b)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestForeignFileRefused(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	db, err := bbolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
	db.Close()
	if s, err := bolt.Open(other, nil); !errors.Is(err, bolt.ErrSchema) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of another program's bbolt file = %v, want ErrSchema", err)
	}
	text := filepath.Join(dir, "text.db")
	os.WriteFile(text, bytes.Repeat([]byte("not a database\n"), 1000), 0o600)
	if s, err := bolt.Open(text, nil); err == nil {
		s.Close()
		t.Fatal("Open of a text file succeeded")
	}
}

func TestRecordsThatWouldNotReadBackAreRefused(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keybrake.db"))
	ctx := context.Background()
	usd := money.Amount{Micros: 5_000_000, Currency: "USD"}
	eur := money.Amount{Micros: 5_000_000, Currency: "EUR"}
	tests := map[string]audit.Record{
		"two currencies":        {Amount: usd, Reserved: eur},
		"unknown currency":      {Amount: money.Amount{Micros: 1, Currency: "ZZZ"}},
		"no currency":           {Settled: money.Amount{Micros: 1}},
		"not UTF-8":             {Agent: "refund\xffbot"},
		"a parameter not UTF-8": {Params: map[string]string{"charge": "ch_\xc3"}},
		"year 10000":            {Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for name, rec := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Append(ctx, &rec); !errors.Is(err, bolt.ErrInvalid) {
				t.Errorf("Append = %v, want ErrInvalid", err)
			}
			a, err := s.Reserve(ctx, &store.Reservation{Record: rec, Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 1}}})
			if !errors.Is(err, bolt.ErrInvalid) {
				t.Errorf("Reserve = %+v, %v; want ErrInvalid", a, err)
			}
		})
	}
	// A Moved amount in another currency than the record's leaves it
	// Reserved, its money counted.
	a, err := s.Reserve(ctx, &store.Reservation{Record: audit.Record{Amount: usd, Reserved: usd}, Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Moved: eur}); !errors.Is(err, bolt.ErrInvalid) {
		t.Fatalf("Complete with a EUR amount on a USD record = %v, want ErrInvalid", err)
	}
	if c, _ := s.Counter(ctx, "k"); c != (store.Counter{Pending: 1}) {
		t.Fatalf("Counter = %+v", c)
	}
	n := 0
	s.Query(ctx, audit.Query{}, func(*audit.Record) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
}

func TestNegativeDurationIsZero(t *testing.T) {
	// audit.Record cannot write -1.5 ms; a clock that went backwards must
	// not cost the call its record or its settlement.
	s := open(t, filepath.Join(t.TempDir(), "keybrake.db"))
	ctx := context.Background()
	neg := -1500 * time.Microsecond
	id, err := s.Append(ctx, &audit.Record{Agent: "refused", Duration: neg})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Reserve(ctx, &store.Reservation{Record: audit.Record{Agent: "allowed", Duration: neg}, Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{1}, Duration: neg}); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]time.Duration{}
	s.Query(ctx, audit.Query{}, func(r *audit.Record) error { got[r.ID] = r.Duration; return nil })
	if len(got) != 2 || got[id] != 0 || got[a.ID] != 0 {
		t.Fatalf("durations %v, want both 0", got)
	}
	if c, _ := s.Counter(ctx, "k"); c != (store.Counter{Settled: 1}) {
		t.Fatalf("Counter = %+v", c)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keybrake.db"))
	ctx := context.Background()
	rec := audit.Record{
		Time: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Agent: "a", Vendor: "twilio", Method: "POST", Host: "api.twilio.com",
		Path: "/2010-04-01/Accounts/AC1/Messages.json", Operation: "messages.create", Decision: policy.Allowed, Code: "c", Rule: "r",
		Reason: "why", Params: map[string]string{"To": "+15550100", "Body": "[redacted]", "charge": "ch_1"}, IdempotencyKey: "ik", KeyID: "kid",
		Customer: "cus", Account: "acct", Amount: money.Amount{Micros: 7_900, Currency: "USD"}, Reserved: money.Amount{Micros: 15_800, Currency: "USD"},
		Lookup: "l", PolicyHash: "ph", PrevHash: "prev",
		MovesMoney: true, Uncapped: true, Count: -1, RefundOf: "ch_1",
		Priced:     &policy.PriceQuery{Item: "sms", Destination: "+15550100", Quantity: 2, Recipients: 3},
		Recipients: []string{"+15550100"}, Senders: []string{"+15550199", "MG1"}, RecipientsWithheld: true,
		MostRecipients: 4, NoCustomer: true, AudienceUnknown: true, CreatesCustomer: true, CustomerUnknown: true,
	}
	holds := []audit.Hold{{Key: "day:USD", Unit: "USD", Limit: 1_000_000, Amount: 15_800}, {Key: "day:sms", Unit: "units", Limit: 100, Amount: 2}}
	a, err := s.Reserve(ctx, &store.Reservation{Record: rec, Holds: holds})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{7_900, 1},
		Moved: money.Amount{Micros: 7_900, Currency: "USD"}, Status: 201, RequestID: "RQ1", Duration: 1234567 * time.Microsecond}); err != nil {
		t.Fatal(err)
	}
	var got *audit.Record
	s.Query(ctx, audit.Query{}, func(r *audit.Record) error { got = r; return nil })
	// PrevHash is the store's: the caller's is replaced by the record's
	// link in the audit chain.
	if len(got.PrevHash) != 64 || strings.Trim(got.PrevHash, "0123456789abcdef") != "" {
		t.Fatalf("PrevHash = %q, want the 64 hex digits of a SHA-256 hash", got.PrevHash)
	}
	want := rec
	want.PrevHash = got.PrevHash
	want.ID, want.Outcome, want.Status, want.RequestID, want.Duration = a.ID, audit.Settled, 201, "RQ1", 1234567*time.Microsecond
	want.Settled = money.Amount{Micros: 7_900, Currency: "USD"}
	want.Holds = []audit.Hold{holds[0], holds[1]}
	want.Holds[0].Settled, want.Holds[1].Settled = 7_900, 1
	if got.Priced == nil || *got.Priced != *want.Priced {
		t.Fatalf("Priced read back as %+v, want %+v", got.Priced, want.Priced)
	}
	got.Priced, want.Priced = nil, nil // %#v shows a pointer's address
	if g, w := fmt.Sprintf("%#v", *got), fmt.Sprintf("%#v", want); g != w {
		t.Fatalf("record read back\n got %s\nwant %s", g, w)
	}
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	s := open(t, filepath.Join(t.TempDir(), "keybrake.db"))
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Append(context.Background(), &audit.Record{Agent: "x"})
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
