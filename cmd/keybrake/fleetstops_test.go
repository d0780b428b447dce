package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/client"

	brake "github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
	"github.com/keybrake/keybrake/store/postgres"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// The fleet test's agent processes are this test binary run again with
// fleetChildEnv set: init runs the agent instead of the tests.
const fleetChildEnv = "KEYBRAKE_TEST_FLEET_CHILD"

func init() {
	if os.Getenv(fleetChildEnv) != "" {
		os.Exit(fleetChild(os.Getenv("KEYBRAKE_DATABASE_URL"), os.Getenv("FLEET_POLICY"), os.Getenv("FLEET_VENDOR")))
	}
}

// fleetChild is one agent process: refund-bot reads a charge through
// stripe-go, again and again, printing "ready" after its first call is
// allowed and "refused UNIX_NANOS REASON" at its first refusal, then
// exits.
func fleetChild(dsn, policyFile, vendor string) int {
	st, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	kb, err := brake.Open(brake.Options{PolicyFile: policyFile, Store: st, PolicyPoll: -1,
		Endpoints: map[brake.Vendor]string{brake.Stripe: vendor}})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer kb.Close()
	sc := client.New("sk_test_fleet", stripevendor.Backends(kb.HTTPClient("refund-bot", brake.Stripe)))
	ready := false
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		_, err := sc.Charges.Get("ch_1", nil)
		if err == nil {
			if !ready {
				fmt.Println("ready")
				ready = true
			}
			continue
		}
		if d, ok := brake.AsDenial(err); ok && d.Decision == brake.Revoked {
			fmt.Printf("refused %d %s\n", time.Now().UnixNano(), d.Reason)
			return 0
		}
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("error: never refused")
	return 1
}

const fleetPolicy = `version: 1
agents:
  refund-bot:
    stripe:
      allow:
        - GET /v1/charges/{id}
`

// keybrake halt refund-bot --db, while 4 agent processes call through
// stripe-go against one fake Stripe: every process is refused within a
// second of the command, naming it.
func TestFleetHaltCommand(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	u, _ := url.Parse(dsn)
	password, _ := u.User.Password()
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 1000, Currency: "usd", Captured: true})
	vendor := httptest.NewServer(fs)
	defer vendor.Close()
	policyFile := writePolicy(t, fleetPolicy)
	if s, err := postgres.Open(context.Background(), dsn, nil); err == nil { // migrated once, before the processes race to
		s.Close()
	}
	type line struct {
		child int
		text  string
	}
	lines := make(chan line, 64)
	const n = 4
	for i := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fleetChildEnv+"=1", "KEYBRAKE_DATABASE_URL="+dsn,
			"FLEET_POLICY="+policyFile, "FLEET_VENDOR="+vendor.URL)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- line{i, sc.Text()}
			}
		}()
	}
	next := func(what string) line {
		t.Helper()
		select {
		case l := <-lines:
			if strings.HasPrefix(l.text, "error") {
				t.Fatalf("agent process %d: %s", l.child, l.text)
			}
			return l
		case <-time.After(30 * time.Second):
			t.Fatalf("waiting for %s", what)
		}
		return line{}
	}
	for range n {
		if l := next("the processes to call"); l.text != "ready" {
			t.Fatalf("process %d: %q", l.child, l.text)
		}
	}

	out, errs, code := keybrake(t, nil, "halt", "refund-bot", "--db", dsn)
	halted := time.Now()
	if code != 0 || !strings.Contains(out, dbName(dsn)+": halted refund-bot fleet-wide") {
		t.Fatalf("halt --db: %d %q %q", code, out, errs)
	}
	if strings.Contains(out+errs, password) {
		t.Fatalf("the password was printed: %q %q", out, errs)
	}
	refused := map[int]bool{}
	for range n {
		l := next("the processes to be refused")
		f := strings.SplitN(l.text, " ", 3)
		if len(f) != 3 || f[0] != "refused" {
			t.Fatalf("process %d: %q", l.child, l.text)
		}
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		if d := time.Unix(0, ns).Sub(halted); d > time.Second {
			t.Errorf("process %d was refused %v after the halt, want within 1s", l.child, d)
		}
		if !regexp.MustCompile(`^agent refund-bot is revoked by keybrake halt --db on \S+ by \S+ at 20`).MatchString(f[2]) {
			t.Errorf("process %d's refusal does not name the command: %q", l.child, f[2])
		}
		refused[l.child] = true
	}
	if len(refused) != n {
		t.Fatalf("refused: %v", refused)
	}

	out, _, _ = keybrake(t, nil, "halt", "refund-bot", "--db", dsn)
	if !strings.Contains(out, "refund-bot already halted fleet-wide") {
		t.Errorf("second halt: %q", out)
	}
	out, _, _ = keybrake(t, []string{"KEYBRAKE_DATABASE_URL=" + dsn}, "halt")
	if !strings.Contains(out, "every agent halted fleet-wide") {
		t.Errorf("halt of every agent by $KEYBRAKE_DATABASE_URL: %q", out)
	}
	out, _, _ = keybrake(t, nil, "revoke", "texter", "--db", dsn)
	if !strings.Contains(out, "agent texter revoked fleet-wide") {
		t.Errorf("revoke --db: %q", out)
	}
	out, _, _ = keybrake(t, nil, "resume", "--db", dsn)
	if !strings.Contains(out, "lifted the fleet's halt of every agent, refund-bot") || !strings.Contains(out, "still revoked fleet-wide: texter") {
		t.Errorf("resume --db: %q", out)
	}
	out, _, _ = keybrake(t, nil, "restore", "texter", "--db", dsn)
	if !strings.Contains(out, "agent texter restored fleet-wide") {
		t.Errorf("restore --db: %q", out)
	}
	st, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if left, err := st.ReadStops(context.Background()); err != nil || len(left) != 0 {
		t.Errorf("stops left: %+v %v", left, err)
	}
	if _, err := os.Stat(policyFile + ".halt"); !os.IsNotExist(err) {
		t.Errorf("halt --db made a kill switch file: %v", err)
	}
}

// keys revoke --db stops a key on every replica, also one whose keys
// file is a copy the command never touched.
func TestFleetKeyRevoke(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 90000, Currency: "usd", Captured: true})
	vendor := httptest.NewServer(fs)
	defer vendor.Close()
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "keybrake.yaml"), []byte(servePolicy), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := keybrakeIn(t, dirs[0], nil, "keys", "add", "refund-bot", "stripe")
	key := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(key, "kb_") {
		t.Fatalf("keys add: %d %q %q", code, out, errOut)
	}
	data, err := os.ReadFile(filepath.Join(dirs[0], "keybrake.keys"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirs[1], "keybrake.keys"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"STRIPE_SECRET_KEY=" + serveSecret, "KEYBRAKE_DATABASE_URL=" + dsn}
	var replicas []*served
	for _, d := range dirs {
		replicas = append(replicas, startServe(t, d, env, "--endpoint", "stripe="+vendor.URL))
	}
	for i, s := range replicas {
		if status, body := refundAt(t, s.url, "Bearer "+key, "100"); status != 200 {
			t.Fatalf("replica %d before: %d %s", i+1, status, body)
		}
	}
	list, _, _ := keybrakeIn(t, dirs[0], nil, "keys", "list")
	id := regexp.MustCompile(`kbk_\w+`).FindString(list)
	out, e, code := keybrakeIn(t, dirs[0], nil, "keys", "revoke", id, "--db", dsn)
	revoked := time.Now()
	if code != 0 || !strings.Contains(out, "revoked "+id+" fleet-wide") {
		t.Fatalf("keys revoke --db: %d %q %q", code, out, e)
	}
	for i, s := range replicas {
		for {
			status, body := refundAt(t, s.url, "Bearer "+key, "100")
			if status == 401 && strings.Contains(body, "keybrake_key_revoked") {
				if i == 1 && !strings.Contains(body, "revoked by keybrake keys revoke --db on ") {
					t.Errorf("replica 2's refusal does not name the fleet's stop: %s", body)
				}
				break
			}
			if time.Since(revoked) > time.Second {
				t.Fatalf("replica %d %v after keys revoke --db: %d %s", i+1, time.Since(revoked), status, body)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dirs[1], "keybrake.keys")); string(b) != string(data) {
		t.Error("the second replica's keys file changed")
	}
}

func TestStoreStops(t *testing.T) {
	ctx := context.Background()
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "k.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	if _, _, ok, err := storeStops(ctx, bs); ok || err != nil {
		t.Errorf("storeStops of a bbolt store: %v %v, want no fleet stops", ok, err)
	}
	st, err := postgres.Open(ctx, testenv.PostgresSchema(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 12, 2, 22, 30, 0, 0, time.UTC)
	for _, s := range []store.Stop{
		{Kind: store.StopHalt, By: "keybrake halt --db on ops by alice", Time: at},
		{Kind: store.StopHalt, Subject: "refund-bot", By: "keybrake halt --db on ops by bob", Time: at},
		{Kind: store.StopRevoke, Subject: "refund-bot", By: "Brake.Revoke in pid 7 on web-1", Reason: "loop", Time: at},
		{Kind: store.StopKey, Subject: "kbk_1", By: "keybrake keys revoke --db on ops by alice", Time: at},
	} {
		if _, _, err := st.SetStop(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	stops, keys, ok, err := storeStops(ctx, st)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if stops.Halt != "keybrake halt --db on ops by alice at 2026-12-02T22:30:00Z" {
		t.Errorf("Halt = %q", stops.Halt)
	}
	if got := stops.Revoked["refund-bot"]; got != "keybrake halt --db on ops by bob at 2026-12-02T22:30:00Z and Brake.Revoke in pid 7 on web-1 at 2026-12-02T22:30:00Z (loop)" {
		t.Errorf("Revoked[refund-bot] = %q", got)
	}
	if len(keys) != 1 || keys["kbk_1"] == "" {
		t.Errorf("keys = %v", keys)
	}
}

// TestFleetStatus: status of a shared store names the fleet's stops and
// their sources beside the host's kill switch.
func TestFleetStatus(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	p := writePolicy(t, fleetPolicy)
	for _, args := range [][]string{{"halt", "--db", dsn}, {"revoke", "texter", "--db", dsn}} {
		if out, errs, code := keybrake(t, nil, args...); code != 0 {
			t.Fatalf("%v: %d %q %q", args, code, out, errs)
		}
	}
	os.WriteFile(p+".halt", []byte("texter\n"), 0o600)
	out, errs, code := keybrake(t, nil, "status", "--db", dsn, "--policy", p)
	if code != 0 {
		t.Fatalf("status: %d %q\n%s", code, errs, out)
	}
	for _, re := range []string{
		`HALTED by keybrake halt --db on \S+ by \S+ at 20\S+: every call of every agent is refused\n`,
		`REVOKED \(their calls answer 401\):\n  texter  by the kill switch ` + regexp.QuoteMeta(p) + `\.halt and keybrake revoke --db on \S+ by \S+ at 20\S+\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status lacks %s:\n%s", re, out)
		}
	}
}
