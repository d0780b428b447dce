package keybrake_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
	"github.com/keybrake/keybrake/store/postgres"
)

// fleetBrake is a Brake of its own (its own policy file, its own fake
// Stripe) on the shared store dsn names, as another process would be.
func fleetBrake(t *testing.T, dsn string) *revocationFixture {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	return newRevocationFixture(t, keybrake.Options{Store: st, PolicyPoll: -1}, nil)
}

// refusal is the code and reason of one call's refusal, "" when allowed.
func refusal(sc *client.API) (code, reason string) {
	_, err := sc.Charges.Get("ch_1", nil)
	if err == nil {
		return "", ""
	}
	if d, ok := keybrake.AsDenial(err); ok {
		return d.Code, d.Reason
	}
	return "error", err.Error()
}

// awaitWithin calls until a call gets code, and fails if that takes
// longer than within.
func awaitWithin(t *testing.T, sc *client.API, within time.Duration, code string) (reason string) {
	t.Helper()
	start := time.Now()
	for {
		got, reason := refusal(sc)
		if got == code {
			if d := time.Since(start); d > within {
				t.Errorf("%q came after %v, want within %v", code, d, within)
			}
			return reason
		}
		if time.Since(start) > liveness {
			t.Fatalf("calls still get %q (%s), want %q", got, reason, code)
		}
		time.Sleep(time.Millisecond)
	}
}

// Halt in one process refuses the next call of another within a second,
// naming where the halt came from; Resume in the other lifts it for both.
func TestFleetHaltReachesAnotherProcess(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	a, b := fleetBrake(t, dsn), fleetBrake(t, dsn)
	if code, reason := refusal(b.bot); code != "" {
		t.Fatalf("before the halt: %s %s", code, reason)
	}
	a.kb.Halt()
	if code, _ := refusal(a.bot); code != "keybrake_halted" {
		t.Fatalf("the halting process itself: %q", code)
	}
	reason := awaitWithin(t, b.other, time.Second, "keybrake_halted")
	if !strings.Contains(reason, "every agent is halted by Brake.Halt in pid ") {
		t.Errorf("the refusal does not name the fleet's source: %q", reason)
	}
	pol, _ := b.kb.Policy()
	if !strings.HasPrefix(pol.HaltedBy, "Brake.Halt in pid ") {
		t.Errorf("Policy().HaltedBy = %q", pol.HaltedBy)
	}
	b.kb.Resume()
	if code, _ := refusal(b.other); code != "" {
		t.Fatalf("the resuming process after Resume: %q", code)
	}
	awaitWithin(t, a.other, time.Second, "")

	a.kb.Revoke("bot")
	reason = awaitWithin(t, b.bot, time.Second, "keybrake_revoked")
	if !strings.Contains(reason, "agent bot is revoked by Brake.Revoke in pid ") {
		t.Errorf("the revocation does not name the fleet's source: %q", reason)
	}
	if code, _ := refusal(b.other); code != "" {
		t.Errorf("another agent after revoking bot: %q", code)
	}
	b.kb.Restore("bot")
	awaitWithin(t, a.bot, time.Second, "")

	// One audit record a change, in the shared log, none per process.
	var events []string
	for _, r := range dump(t, a.kb, audit.Query{}) {
		if r.Event != "" {
			events = append(events, r.Event+" "+r.Params["scope"])
		}
	}
	if strings.Join(events, ",") != "halt fleet,halt fleet,revoke fleet,revoke fleet" {
		t.Errorf("events: %q", events)
	}
}

// A process that starts while an agent is revoked fleet-wide never admits
// a call of it.
func TestFleetStopHoldsAcrossRestart(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	a := fleetBrake(t, dsn)
	a.kb.Revoke("bot")
	if err := a.kb.Close(); err != nil {
		t.Fatal(err)
	}
	b := fleetBrake(t, dsn)
	if code, reason := refusal(b.bot); code != "keybrake_revoked" || !strings.Contains(reason, "Brake.Revoke in pid") {
		t.Fatalf("the first call after a restart: %q %q", code, reason)
	}
}

// failingStops is a store whose fleet stops cannot be written.
type failingStops struct {
	store.Store
	mu    sync.Mutex
	fail  bool
	reads int // ReadStops calls while failing
	stops []store.Stop
}

var errDown = errors.New("the fleet's database is down")

func (f *failingStops) SetStop(_ context.Context, s store.Stop) (store.Stop, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return store.Stop{}, false, errDown
	}
	f.stops = append(f.stops, s)
	return s, true, nil
}

func (f *failingStops) ClearStop(context.Context, store.Stop) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return false, errDown
	}
	f.stops = nil
	return true, nil
}

func (f *failingStops) ReadStops(context.Context) ([]store.Stop, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		f.reads++
		return nil, errDown
	}
	return append([]store.Stop(nil), f.stops...), nil
}

func (f *failingStops) WatchStops(ctx context.Context, fn func([]store.Stop, error)) error {
	st, err := f.ReadStops(ctx)
	fn(st, err)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		st, err := f.ReadStops(ctx)
		fn(st, err)
	}
}

// A Halt the fleet's store refuses holds in this process all the same,
// and is reported; a stop the watch knew is not forgotten when reads
// fail.
func TestFleetStopFailsClosed(t *testing.T) {
	inner, err := bolt.Open(filepath.Join(t.TempDir(), "k.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fs := &failingStops{Store: inner}
	var mu sync.Mutex
	var reported []error
	f := newRevocationFixture(t, keybrake.Options{Store: fs, ErrorLog: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, err)
	}}, nil)
	f.kb.Revoke("bot")
	if code, reason := refusal(f.bot); code != "keybrake_revoked" || !strings.Contains(reason, "Brake.Revoke in pid") {
		t.Fatalf("after a fleet Revoke: %q %q", code, reason)
	}
	fs.mu.Lock()
	fs.fail = true
	fs.mu.Unlock()
	time.Sleep(50 * time.Millisecond) // several failing reads
	if code, _ := refusal(f.bot); code != "keybrake_revoked" {
		t.Fatalf("a stop was forgotten while reads failed: %q", code)
	}
	f.kb.Halt()
	code, reason := refusal(f.other)
	if code != "keybrake_halted" || !strings.Contains(reason, "halted by Brake.Halt") {
		t.Fatalf("a Halt the store refused: %q %q, want it in force here", code, reason)
	}
	mu.Lock()
	defer mu.Unlock()
	var sawHalt, sawRead bool
	for _, err := range reported {
		sawHalt = sawHalt || (errors.Is(err, errDown) && strings.Contains(err.Error(), "Brake.Halt"))
		sawRead = sawRead || (errors.Is(err, errDown) && strings.Contains(err.Error(), "reading the fleet's stops"))
	}
	if !sawHalt || !sawRead {
		t.Errorf("reported: %v", reported)
	}
}

// A call waiting inside Keybrake (on a lookup fake Stripe never answers)
// in one process is refused, and never sent, when another process halts.
func TestFleetHaltStopsAWaitingCall(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 3000, Currency: "usd", Captured: true})
	fs.On("GET", "/v1/charges/").HangNext(1)
	open := func() *keybrake.Brake {
		st, err := postgres.Open(context.Background(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		return openBrake(t, "", keybrake.Options{PolicyFile: writePolicy(t, capPolicy), Store: st, Endpoints: fakeEndpoint(url)})
	}
	a, b := open(), open()
	below := &observed{lookup: make(chan string, 1)}
	bot := refundBot(b, below)
	errc := make(chan error, 1)
	go func() {
		_, err := bot.Refunds.New(refund("ch_1", 0)) // no amount: Keybrake looks the charge up
		errc <- err
	}()
	select {
	case <-below.lookup:
	case err := <-errc:
		t.Fatalf("the refund ended before its lookup: %v", err)
	case <-time.After(liveness):
		t.Fatal("no lookup")
	}
	a.Halt()
	start := time.Now()
	var err error
	select {
	case err = <-errc:
	case <-time.After(liveness):
		t.Fatal("the call waiting on its lookup was not stopped by the other process's Halt")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the waiting call was refused %v after the halt, want within 1s", d)
	}
	if d, ok := keybrake.AsDenial(err); !ok || d.Code != "keybrake_halted" || !strings.Contains(d.Reason, "Brake.Halt in pid") {
		t.Fatalf("denial %+v (%v)", d, err)
	}
	if n := below.writes.Load(); n != 0 || fs.Refunded("ch_1") != 0 {
		t.Fatalf("the refund was sent (%d writes, %d refunded)", n, fs.Refunded("ch_1"))
	}
}

// The live status (the admin socket) shows a fleet's stops as this
// process's own.
func TestFleetStopsInTheLiveStatus(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	st, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "kb.sock")
	f := newRevocationFixture(t, keybrake.Options{Store: st, AdminSocket: sock}, nil)
	other := fleetBrake(t, dsn)
	other.kb.Halt()
	other.kb.Revoke("bot")
	awaitWithin(t, f.other, time.Second, "keybrake_halted")
	// The halt and the revocation are two writes: a read of the fleet's
	// stops may fall between them, so the status is asked until it shows
	// both (or liveness passes).
	deadline := time.Now().Add(liveness)
	for {
		s, err := admin.Dial(sock).Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if s.Halted && len(s.Revoked) == 1 && s.Revoked[0] == "bot" && strings.Contains(s.PolicyHash, "+halt") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: halted %v, revoked %v, policy %s", s.Halted, s.Revoked, s.PolicyHash)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Reads of the fleet's stops that keep failing are logged once (then once
// a minute), not once a read, and the read that works again once, at
// INFO: an on-call whose database is down reads one line, not sixty a
// minute.
func TestFleetReadFailuresLoggedOnce(t *testing.T) {
	inner, err := bolt.Open(filepath.Join(t.TempDir(), "k.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fs := &failingStops{Store: inner}
	var logs logBuffer
	newRevocationFixture(t, keybrake.Options{Store: fs, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, nil)
	fs.mu.Lock()
	fs.fail = true
	fs.mu.Unlock()
	eventually(t, "20 failed reads", func() bool { fs.mu.Lock(); defer fs.mu.Unlock(); return fs.reads >= 20 })
	fs.mu.Lock()
	fs.fail = false
	fs.mu.Unlock()
	recovered := func() []map[string]any {
		var out []map[string]any
		for _, r := range logs.records(t) {
			if r["msg"] == "keybrake: recovered" {
				out = append(out, r)
			}
		}
		return out
	}
	eventually(t, "the recovery to be logged", func() bool { return len(recovered()) > 0 })
	var failures []map[string]any
	for _, r := range logs.records(t) {
		if r["op"] == "fleet_stops_read" && r["msg"] == "keybrake: failure" {
			failures = append(failures, r)
		}
	}
	if len(failures) != 1 || failures[0]["level"] != "ERROR" || !strings.Contains(failures[0]["error"].(string), errDown.Error()) {
		t.Errorf("read failures logged: %v, want one ERROR naming the store's error", failures)
	}
	r := recovered()
	if len(r) != 1 || r[0]["level"] != "INFO" || r[0]["op"] != "fleet_stops_read" ||
		!regexp.MustCompile(`works again, after \d+ failed reads since 20`).MatchString(r[0]["error"].(string)) {
		t.Errorf("recoveries logged: %v, want one INFO saying how many reads failed since when", r)
	}
}
