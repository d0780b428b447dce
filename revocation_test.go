package keybrake_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/client"
	"go.uber.org/goleak"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/policy"
)

// liveness bounds how long a test waits for a change to take effect, so a
// broken watcher fails the test instead of hanging it. It is not a
// latency target: bench/revocation measures that.
const liveness = 5 * time.Second

func revocablePolicy(revoked bool, comment string) string {
	r := ""
	if revoked {
		r = "    revoked: true\n"
	}
	return fmt.Sprintf(`# %s
version: 1
agents:
  bot:
%s    stripe:
      allow:
        - GET /v1/charges/{id}
  other:
    stripe:
      allow:
        - GET /v1/charges/{id}
`, comment, r)
}

type revocationFixture struct {
	t      *testing.T
	dir    string
	policy string // the path the Brake was given
	kb     *keybrake.Brake
	bot    *client.API
	other  *client.API

	stopServer func()
}

func newRevocationFixture(t *testing.T, opts keybrake.Options, layout func(dir, text string) string) *revocationFixture {
	t.Helper()
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 100, Currency: "usd", Captured: true})
	srv := httptest.NewServer(fs)
	url := srv.URL
	dir := t.TempDir()
	f := &revocationFixture{t: t, dir: dir}
	f.stopServer = func() {
		fs.Close()
		srv.Close()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	}
	t.Cleanup(f.stopServer)
	if layout == nil {
		layout = func(dir, text string) string {
			p := filepath.Join(dir, "keybrake.yaml")
			writeFile(t, p, text)
			return p
		}
	}
	f.policy = layout(dir, revocablePolicy(false, "start"))
	opts.PolicyFile = f.policy
	opts.DBPath = filepath.Join(dir, "keybrake.db")
	opts.Endpoints = fakeEndpoint(url)
	kb, err := keybrake.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kb.Close() })
	f.kb = kb
	f.bot = newSDK(t, kb, "bot").API
	f.other = newSDK(t, kb, "other").API
	return f
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// decision is what one call of agent gets: "allowed" or a refusal code.
func decision(sc *client.API) string {
	_, err := sc.Charges.Get("ch_1", nil)
	if err == nil {
		return "allowed"
	}
	if d, ok := keybrake.AsDenial(err); ok {
		return d.Code
	}
	return "error: " + err.Error()
}

// await calls until the call gets want.
func (f *revocationFixture) await(sc *client.API, want string) {
	f.t.Helper()
	deadline := time.Now().Add(liveness)
	got := ""
	for time.Now().Before(deadline) {
		if got = decision(sc); got == want {
			return
		}
		time.Sleep(time.Millisecond)
	}
	f.t.Fatalf("calls still get %q, want %q", got, want)
}

func renameInto(t testing.TB, path, text string) {
	tmp := path + ".tmp~"
	writeFile(t, tmp, text)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func truncateThenWrite(t testing.TB, path, text string) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a slow editor: the file stays empty a while
	if _, err := f.WriteAt([]byte(text), 0); err != nil {
		t.Fatal(err)
	}
}

// configMap lays the policy out as a Kubernetes ConfigMap volume does:
// keybrake.yaml -> ..data/keybrake.yaml, ..data -> ..<version>.
func configMap(dir, text string) string {
	swapConfigMap(dir, text, "v0")
	link := filepath.Join(dir, "keybrake.yaml")
	if err := os.Symlink(filepath.Join("..data", "keybrake.yaml"), link); err != nil {
		panic(err)
	}
	return link
}

var configMapVersion atomic.Int64

func swapConfigMap(dir, text, version string) {
	if version == "" {
		version = fmt.Sprintf("v%d", configMapVersion.Add(1))
	}
	vdir := filepath.Join(dir, "..2026_11_25_"+version)
	if err := os.Mkdir(vdir, 0o700); err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(vdir, "keybrake.yaml"), []byte(text), 0o600); err != nil {
		panic(err)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(vdir), tmp); err != nil {
		panic(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		panic(err)
	}
}

// TestEveryEditStyleRevokesAndRestores: each way a policy file is changed
// on a real system revokes the agent's next calls, and restoring works.
func TestEveryEditStyleRevokesAndRestores(t *testing.T) {
	styles := []struct {
		name   string
		opts   keybrake.Options
		layout func(dir, text string) string
		edit   func(f *revocationFixture, text string)
	}{
		{name: "atomic rename", edit: func(f *revocationFixture, text string) { renameInto(f.t, f.policy, text) }},
		{name: "in-place write", edit: func(f *revocationFixture, text string) { writeFile(f.t, f.policy, text) }},
		{name: "truncate then write", edit: func(f *revocationFixture, text string) { truncateThenWrite(f.t, f.policy, text) }},
		{name: "configmap symlink swap", layout: configMap, edit: func(f *revocationFixture, text string) { swapConfigMap(f.dir, text, "") }},
		{name: "delete then recreate", edit: func(f *revocationFixture, text string) {
			if err := os.Remove(f.policy); err != nil {
				f.t.Fatal(err)
			}
			f.await(f.bot, "keybrake_policy_invalid") // no policy: fail closed
			writeFile(f.t, f.policy, text)
		}},
		{name: "poll only, rename", opts: keybrake.Options{NoFileEvents: true, PolicyPoll: 20 * time.Millisecond},
			edit: func(f *revocationFixture, text string) { renameInto(f.t, f.policy, text) }},
	}
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			f := newRevocationFixture(t, st.opts, st.layout)
			f.await(f.bot, "allowed")
			st.edit(f, revocablePolicy(true, "revoke"))
			f.await(f.bot, "keybrake_revoked")
			if got := decision(f.other); got != "allowed" {
				t.Fatalf("the other agent gets %q", got)
			}
			st.edit(f, revocablePolicy(false, "restore"))
			f.await(f.bot, "allowed")

			// The audit log shows from which call on the revocation held.
			recs := dump(t, f.kb, audit.Query{})
			var reloads, revokedCalls int
			for _, r := range recs {
				if r.Event == "policy_reload" {
					reloads++
				}
				if r.Agent == "bot" && r.Decision == keybrake.Revoked {
					revokedCalls++
					if r.PolicyHash == "" || r.PolicyHash == recs[0].PolicyHash {
						t.Errorf("revoked call under hash %q", r.PolicyHash)
					}
				}
			}
			if reloads < 2 || revokedCalls < 1 {
				t.Fatalf("%d reload events, %d revoked calls", reloads, revokedCalls)
			}
		})
	}
}

// TestKillSwitch: the halt file revokes by its mere presence, whatever the
// policy says and whether or not it parses.
func TestKillSwitch(t *testing.T) {
	f := newRevocationFixture(t, keybrake.Options{}, nil)
	halt := f.policy + ".halt"
	f.await(f.bot, "allowed")

	writeFile(t, halt, "")
	f.await(f.bot, "keybrake_halted")
	f.await(f.other, "keybrake_halted")

	// Naming one agent revokes that agent only.
	writeFile(t, halt, "bot  # runaway refunds, INC-1234\n")
	f.await(f.other, "allowed")
	f.await(f.bot, "keybrake_revoked")

	if err := os.Remove(halt); err != nil {
		t.Fatal(err)
	}
	f.await(f.bot, "allowed")
	events := 0
	for _, r := range dump(t, f.kb, audit.Query{}) {
		if r.Event == "kill_switch" {
			events++
		}
	}
	if events != 3 {
		t.Fatalf("%d kill switch events, want 3", events)
	}
	// Every refusal names the kill switch and its path, not the policy.
	refused := dump(t, f.kb, audit.Query{Decision: policy.Revoked})
	if len(refused) < 3 {
		t.Fatalf("%d refusals audited", len(refused))
	}
	for _, r := range refused {
		want := "every agent is halted by the kill switch " + halt
		if r.Code == "keybrake_revoked" {
			want = "agent bot is revoked by the kill switch " + halt
		}
		if r.Reason != want {
			t.Errorf("record %d (%s): reason %q, want %q", r.ID, r.Code, r.Reason, want)
		}
	}
}

// TestInvalidPolicyFailsClosed: a policy that stops parsing refuses every
// call with 503 until it is fixed; the failure is audited.
func TestInvalidPolicyFailsClosed(t *testing.T) {
	f := newRevocationFixture(t, keybrake.Options{}, nil)
	f.await(f.bot, "allowed")
	renameInto(t, f.policy, "version: 1\nagents:\n  bot:\n    stripe:\n      daily_cap: 500 dollars\n")
	f.await(f.bot, "keybrake_policy_invalid")
	f.await(f.other, "keybrake_policy_invalid")
	_, err := f.bot.Charges.Get("ch_1", nil)
	stripeErr(t, err, 503)
	if _, perr := f.kb.Policy(); perr == nil {
		t.Fatal("Policy() reports no error while the file is invalid")
	}
	renameInto(t, f.policy, revocablePolicy(false, "fixed"))
	f.await(f.bot, "allowed")

	var invalid []audit.Record
	for _, r := range dump(t, f.kb, audit.Query{}) {
		if r.Event == "policy_invalid" {
			invalid = append(invalid, r)
		}
	}
	if len(invalid) != 1 || !strings.Contains(invalid[0].Reason, "500 dollars") || invalid[0].Params["error"] == "" {
		t.Fatalf("invalid-policy events: %+v", invalid)
	}
}

// TestKeepLastValidPolicy: with the option, a broken file keeps the last
// valid policy in force (audited), and the kill switch still revokes.
func TestKeepLastValidPolicy(t *testing.T) {
	f := newRevocationFixture(t, keybrake.Options{KeepLastValidPolicy: true}, nil)
	f.await(f.bot, "allowed")
	before, _ := f.kb.Policy()
	renameInto(t, f.policy, "version: 1\nagents: [oops\n")
	deadline := time.Now().Add(liveness)
	for {
		recs := dump(t, f.kb, audit.Query{})
		if last := recs[len(recs)-1]; last.Event == "policy_invalid" {
			if !strings.Contains(last.Reason, "keeping the last valid policy "+before.Hash) {
				t.Fatalf("event reason %q", last.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no policy_invalid event")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := decision(f.bot); got != "allowed" {
		t.Fatalf("with the last valid policy kept, calls get %q", got)
	}
	writeFile(t, f.policy+".halt", "")
	f.await(f.bot, "keybrake_halted")
}

// TestRevokeAndHaltFromTheRunner: the programmatic switches.
func TestRevokeAndHaltFromTheRunner(t *testing.T) {
	f := newRevocationFixture(t, keybrake.Options{}, nil)
	f.kb.Revoke("bot")
	if got := decision(f.bot); got != "keybrake_revoked" {
		t.Fatalf("after Revoke: %q", got)
	}
	if got := decision(f.other); got != "allowed" {
		t.Fatalf("other after Revoke: %q", got)
	}
	f.kb.Restore("bot")
	if got := decision(f.bot); got != "allowed" {
		t.Fatalf("after Restore: %q", got)
	}
	f.kb.Halt()
	if got := decision(f.other); got != "keybrake_halted" {
		t.Fatalf("after Halt: %q", got)
	}
	f.kb.Resume()
	if got := decision(f.other); got != "allowed" {
		t.Fatalf("after Resume: %q", got)
	}
	events := map[string]int{}
	for _, r := range dump(t, f.kb, audit.Query{}) {
		events[r.Event]++
	}
	if events["revoke"] != 2 || events["halt"] != 2 {
		t.Fatalf("events %v", events)
	}
	reasons := map[string]bool{}
	for _, r := range dump(t, f.kb, audit.Query{Decision: policy.Revoked}) {
		reasons[r.Reason] = true
	}
	if !reasons["agent bot is revoked by Brake.Revoke"] || !reasons["every agent is halted by Brake.Halt"] || len(reasons) != 2 {
		t.Errorf("refusals' reasons: %v", reasons)
	}
}

// TestRewriteBurst rewrites the policy 1,000 times, in place and by
// rename, while 32 goroutines call: every call is decided under one of the
// versions written, whole, and by what that version says.
func TestRewriteBurst(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	f := newRevocationFixture(t, keybrake.Options{PolicyPoll: 5 * time.Millisecond}, nil)
	f.await(f.bot, "allowed")
	start, _ := f.kb.Policy()

	revokedIn := map[string]bool{start.Hash: false}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				decision(f.bot)
			}
		}()
	}
	for i := 0; i < 1000; i++ {
		text := revocablePolicy(i%2 == 0, fmt.Sprintf("version %d %s", i, strings.Repeat("padding ", i%50)))
		p, err := policy.Parse("burst", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		revokedIn[p.Hash] = i%2 == 0
		if i%3 == 0 {
			renameInto(t, f.policy, text)
		} else {
			writeFile(t, f.policy, text)
		}
	}
	stop.Store(true)
	wg.Wait()

	var calls int
	for _, r := range dump(t, f.kb, audit.Query{Agent: "bot"}) {
		calls++
		revoked, known := revokedIn[r.PolicyHash]
		if !known {
			t.Fatalf("call %d decided under policy %q, which was never written whole", r.ID, r.PolicyHash)
		}
		if revoked != (r.Decision == keybrake.Revoked) {
			t.Fatalf("call %d: %s under a policy with revoked=%v", r.ID, r.Decision, revoked)
		}
	}
	if calls < 100 {
		t.Fatalf("only %d calls made during the burst", calls)
	}
	if err := f.kb.Close(); err != nil {
		t.Fatal(err)
	}
	f.stopServer()
	goleak.VerifyNone(t, leaks)
}

// TestCloseStopsWatching: no goroutine of the Brake outlives Close.
func TestCloseStopsWatching(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	p := filepath.Join(dir, "keybrake.yaml")
	writeFile(t, p, revocablePolicy(false, "x"))
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: p, DBPath: filepath.Join(dir, "k.db"), PolicyPoll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	renameInto(t, p, revocablePolicy(true, "y"))
	time.Sleep(20 * time.Millisecond)
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOperatorCommandRevokes: `keybrake revoke` and `keybrake halt`, run
// as an operator would, stop a running agent's next call.
func TestOperatorCommandRevokes(t *testing.T) {
	bin := buildCLI(t)
	f := newRevocationFixture(t, keybrake.Options{}, nil)
	f.await(f.bot, "allowed")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin, append(args, "--policy", f.policy)...).CombinedOutput(); err != nil {
			t.Fatalf("keybrake %v: %v\n%s", args, err, out)
		}
	}
	runArgs := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("keybrake %v: %v\n%s", args, err, out)
		}
	}
	runArgs("revoke", "--policy", f.policy, "bot")
	f.await(f.bot, "keybrake_revoked")
	runArgs("restore", "--policy", f.policy, "bot")
	f.await(f.bot, "allowed")
	run("halt")
	f.await(f.other, "keybrake_halted")
	run("resume")
	f.await(f.other, "allowed")
}
