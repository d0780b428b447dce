package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/internal/testenv"
)

// bin is the keybrake binary, built once for the tests: they run it as an
// operator would.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keybrake-cli")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "keybrake")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building keybrake: %v\n%s", err, out)
		os.Exit(1)
	}
	code := testenv.Run(m) // stops the mocks the client tests started
	os.RemoveAll(dir)
	os.Exit(code)
}

// keybrake runs the binary and returns its stdout, stderr and exit status.
func keybrake(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	return keybrakeIn(t, "", env, args...)
}

// keybrakeIn runs the binary in the working directory dir ("": the
// test's).
func keybrakeIn(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

const cliPolicy = `# the on-call's policy
version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD   # per UTC day
      per_call_max: 50.00 USD
      allow:
        - POST /v1/refunds
        - method: POST
          path: /v1/payment_intents
          params: {capture_method: manual}
`

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keybrake.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRevokeAndRestore(t *testing.T) {
	p := writePolicy(t, cliPolicy)
	out, errs, code := keybrake(t, nil, "revoke", "--policy", p, "refund-bot")
	if code != 0 || !strings.Contains(out, "agent refund-bot revoked") || errs != "" {
		t.Fatalf("revoke: %d %q %q", code, out, errs)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), "  refund-bot:\n    revoked: true\n") || !strings.Contains(string(b), "# per UTC day") {
		t.Fatalf("file after revoke:\n%s", b)
	}
	// The environment names the policy too.
	out, _, code = keybrake(t, []string{"KEYBRAKE_POLICY=" + p}, "restore", "refund-bot")
	if code != 0 || !strings.Contains(out, "restored") {
		t.Fatalf("restore: %d %q", code, out)
	}
	if b, _ := os.ReadFile(p); string(b) != cliPolicy {
		t.Fatalf("restore did not give the file back:\n%s", b)
	}
	out, _, code = keybrake(t, nil, "restore", "--policy", p, "refund-bot")
	if code != 0 || !strings.Contains(out, "nothing changed") {
		t.Fatalf("second restore: %d %q", code, out)
	}
}

func TestRevokeRefuses(t *testing.T) {
	p := writePolicy(t, cliPolicy)
	_, errs, code := keybrake(t, nil, "revoke", "--policy", p, "nobody")
	if code != 1 || !strings.Contains(errs, `agent "nobody" is not in the policy`) {
		t.Fatalf("unknown agent: %d %q", code, errs)
	}
	_, errs, code = keybrake(t, nil, "revoke", "--policy", filepath.Join(t.TempDir(), "missing.yaml"), "refund-bot")
	if code != 1 || !strings.Contains(errs, "no such file") || !strings.Contains(errs, "--policy") {
		t.Fatalf("missing file: %d %q", code, errs)
	}
	_, errs, code = keybrake(t, nil, "revoke", "--policy", p)
	if code != 2 || !strings.Contains(errs, "see 'keybrake revoke --help'") {
		t.Fatalf("no agent: %d %q", code, errs)
	}
	link := filepath.Join(t.TempDir(), "linked.yaml")
	os.Symlink(p, link)
	_, errs, code = keybrake(t, nil, "revoke", "--policy", link, "refund-bot")
	if code != 1 || !strings.Contains(errs, "symlink") {
		t.Fatalf("symlinked policy: %d %q", code, errs)
	}
}

func TestHaltAndResume(t *testing.T) {
	p := writePolicy(t, cliPolicy)
	halt := p + ".halt"
	out, _, code := keybrake(t, nil, "halt", "--policy", p, "refund-bot")
	if code != 0 || !strings.Contains(out, "halted refund-bot") {
		t.Fatalf("halt agent: %d %q", code, out)
	}
	keybrake(t, nil, "halt", "--policy", p, "other-bot")
	if b, _ := os.ReadFile(halt); string(b) != "refund-bot\nother-bot\n" {
		t.Fatalf("halt file %q", b)
	}
	out, _, code = keybrake(t, nil, "halt", "--policy", p)
	if b, _ := os.ReadFile(halt); code != 0 || len(b) != 0 || !strings.Contains(out, "every agent halted") {
		t.Fatalf("halt all: %d %q %q", code, out, b)
	}
	out, _, code = keybrake(t, nil, "resume", "--policy", p)
	if _, err := os.Stat(halt); code != 0 || !os.IsNotExist(err) || !strings.Contains(out, "removed") {
		t.Fatalf("resume: %d %q %v", code, out, err)
	}
	out, _, code = keybrake(t, nil, "resume", "--policy", p)
	if code != 0 || !strings.Contains(out, "nothing changed") {
		t.Fatalf("second resume: %d %q", code, out)
	}
}

// TestResumeAgent: resume AGENT lifts that agent's lines of the kill
// switch, a trip's included, keeps the others, and removes the file when
// no agent is left; a file halting every agent is resumed whole.
func TestResumeAgent(t *testing.T) {
	p := writePolicy(t, cliPolicy)
	halt := p + ".halt"
	trip := "refund-bot # tripped by agents.refund-bot.stripe.rate[0] at 2026-12-03T10:00:02Z\n"
	if err := os.WriteFile(halt, []byte("# halted by hand\nother-bot\n"+trip), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code := keybrake(t, nil, "resume", "refund-bot", "--policy", p)
	if b, _ := os.ReadFile(halt); code != 0 || string(b) != "# halted by hand\nother-bot\n" || !strings.Contains(out, "refund-bot may call again") {
		t.Fatalf("resume refund-bot: %d %q; file %q", code, out, b)
	}
	out, _, code = keybrake(t, nil, "resume", "refund-bot", "--policy", p)
	if code != 0 || !strings.Contains(out, "does not halt refund-bot; nothing changed") {
		t.Fatalf("resume refund-bot again: %d %q", code, out)
	}
	out, _, code = keybrake(t, nil, "resume", "other-bot", "--policy", p)
	if _, err := os.Stat(halt); code != 0 || !os.IsNotExist(err) {
		t.Fatalf("resume the last agent: %d %q, the file: %v", code, out, err)
	}
	keybrake(t, nil, "halt", "--policy", p)
	_, errs, code := keybrake(t, nil, "resume", "refund-bot", "--policy", p)
	if code != 1 || !strings.Contains(errs, "halts every agent, not by name") {
		t.Fatalf("resume one agent of a halt of all: %d %q", code, errs)
	}
}

func TestPolicyDiff(t *testing.T) {
	old := writePolicy(t, cliPolicy+"  texter:\n    twilio:\n      daily_count: 100\n      to: [\"+44*\"]\n      allow:\n        - POST /2010-04-01/Accounts/{AccountSid}/Messages.json\n")
	next := writePolicy(t, strings.NewReplacer("daily_cap: 500.00 USD", "daily_cap: 300.00 USD",
		"        - POST /v1/refunds\n", "        - POST /v1/refunds\n        - GET /v1/charges/{id}\n",
		"          params: {capture_method: manual}\n", "",
		"  texter:\n", "  texter:\n    revoked: true\n",
		`to: ["+44*"]`, `to: ["+44*", "+33*"]`).Replace(cliPolicy+"  texter:\n    twilio:\n      daily_count: 100\n      to: [\"+44*\"]\n      allow:\n        - POST /2010-04-01/Accounts/{AccountSid}/Messages.json\n"))
	out, errs, code := keybrake(t, nil, "policy", "diff", old, next)
	want := `
agent refund-bot on stripe
  ~ daily cap: 500.00 USD -> 300.00 USD
  - allow POST /v1/payment_intents  (capture_method=manual)
  + allow GET /v1/charges/{id}
  + allow POST /v1/payment_intents

agent texter
  + revoked

agent texter on twilio
  ~ to: +44* -> +44*, +33*
`
	if code != 0 || !strings.HasSuffix(out, want) {
		t.Errorf("policy diff: %d %q\n%s\nwant the end\n%s", code, errs, out, want)
	}
	out, _, code = keybrake(t, nil, "policy", "diff", old, old)
	if code != 0 || !strings.HasSuffix(out, "\nno change in what any agent may do\n") {
		t.Errorf("policy diff of a file with itself: %d\n%s", code, out)
	}
	bad := writePolicy(t, "version: 1\nagents:\n  a:\n    stripe:\n      daily_cap: 500 dollars\n")
	if _, errs, code := keybrake(t, nil, "policy", "diff", old, bad); code != 1 || !strings.Contains(errs, bad+":5: daily_cap:") {
		t.Errorf("diff with an invalid policy: %d %q", code, errs)
	}
	if _, errs, code := keybrake(t, nil, "policy", "diff", old); code != 2 || !strings.Contains(errs, "OLD and NEW") {
		t.Errorf("diff of one file: %d %q", code, errs)
	}
}

func TestPolicyCheckWarns(t *testing.T) {
	p := writePolicy(t, `version: 1
agents:
  refund-bot:
    stripe:
      approve: [POST /v1/payouts]
      allow:
        - POST /v1/refunds
        - POST /v1/refunds
  texter:
    twilio:
      daily_count: 100
      to: ["+1*", "+4*"]
      allow:
        - POST /2010-04-01/Accounts/{AccountSid}/Messages.json
vendors:
  twilio:
    prices:
      sms: {default: 0.0079 USD, "+1876": 0.25 USD}
`)
	out, errs, code := keybrake(t, nil, "policy", "check", p)
	for _, want := range []string{
		"warning: agent refund-bot on stripe has no daily cap or count",
		"warning: agent refund-bot on stripe: allow POST /v1/refunds (agents.refund-bot.stripe.allow[1]) can never match",
		"warning: agent refund-bot on stripe: approve POST /v1/payouts (agents.refund-bot.stripe.approve[0]) holds nothing: no allow rule admits POST /v1/payouts",
		`warning: agent texter on twilio: to "+4*" admits every number of world numbering zone 4`,
		`warning: agent texter on twilio: to "+1*" admits the high-cost NANP prefixes +1242 `,
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("policy check (%d %q) lacks %q:\n%s", code, errs, want, out)
		}
	}
	if strings.Contains(out, "+1876 ") {
		t.Errorf("a priced prefix is warned about:\n%s", out)
	}
	_, errs, code = keybrake(t, nil, "policy", "check", "--strict", p)
	if code != 1 || !strings.Contains(errs, "5 warning(s), and --strict") {
		t.Errorf("--strict: %d %q", code, errs)
	}
	// A policy with nothing to warn about passes --strict.
	if out, errs, code := keybrake(t, nil, "policy", "check", "--strict", writePolicy(t, cliPolicy)); code != 0 || strings.Contains(out, "warning") {
		t.Errorf("--strict on a clean policy: %d %q\n%s", code, errs, out)
	}
}

func TestPolicyCheck(t *testing.T) {
	p := writePolicy(t, cliPolicy+"        - method: POST\n          path: /v1/subscriptions\n          uncapped: true\n")
	out, _, code := keybrake(t, nil, "policy", "check", p)
	want := []string{"valid (policy ", "agent refund-bot on stripe\n  daily cap: 500.00 USD\n  per call max: 50.00 USD\n",
		"allow POST /v1/payment_intents  (capture_method=manual)", "allow POST /v1/subscriptions  (UNCAPPED: money it moves is not counted)"}
	for _, w := range want {
		if !strings.Contains(out, w) || code != 0 {
			t.Fatalf("policy check (%d) lacks %q:\n%s", code, w, out)
		}
	}
	// Every budget is printed.
	budgets := writePolicy(t, `version: 1
timezone: Europe/Berlin
vendors:
  stripe:
    rate: [{count: 100, per: 1m}]
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      weekly_cap: 2000.00 USD
      monthly_count: 3000
      rate:
        - {count: 20, per: 1m, halt: true}
        - {spend: 50.00 USD, per: 1h30m}
      per_run: {cap: 20.00 USD, count: 5}
      alert_at: [50%, 80%]
      allow: [POST /v1/refunds]
`)
	out, _, code = keybrake(t, nil, "policy", "check", budgets)
	for _, w := range []string{
		"every agent\n  time zone of days, weeks and months: Europe/Berlin\n",
		"vendor stripe (all agents)\n  rate[0]: 100 calls in any 1m\n",
		"  weekly cap: 2000.00 USD\n  monthly count: 3000\n",
		"  rate[0]: 20 calls in any 1m; refusing a call halts the agent until resumed\n  rate[1]: 50.00 USD in any 1h30m\n",
		"  per run cap: 20.00 USD\n  per run count: 5 calls\n  calls with no run: refused\n  alert at: 50%, 80% of every cap\n",
	} {
		if !strings.Contains(out, w) || code != 0 {
			t.Fatalf("policy check (%d) lacks %q:\n%s", code, w, out)
		}
	}
	bad := writePolicy(t, "version: 1\nagents:\n  a:\n    stripe:\n      daily_cap: 500 dollars\n")
	_, errs, code := keybrake(t, nil, "policy", "check", bad)
	if code != 1 || !strings.Contains(errs, bad+":5: daily_cap:") {
		t.Fatalf("bad policy: %d %q", code, errs)
	}
}

func TestUsage(t *testing.T) {
	out, _, code := keybrake(t, nil)
	if code != 2 || !strings.Contains(out, "Usage:\n  keybrake") || !strings.Contains(out, "revoke") {
		t.Fatalf("no command: %d %q", code, out)
	}
	_, errs, code := keybrake(t, nil, "frobnicate")
	if code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
	out, _, code = keybrake(t, nil, "revoke", "-h")
	if code != 0 || !strings.Contains(out, "Usage:\n  keybrake revoke AGENT") {
		t.Fatalf("revoke -h: %d %q", code, out)
	}
}

func TestSparkline(t *testing.T) {
	var hours [24]int64
	hours[0], hours[1], hours[2], hours[3], hours[5] = 800, 100, 1, 400, 799
	for _, tt := range []struct {
		upTo int
		want string
	}{
		{23, "█▁▁▄.█.................."},
		{5, "█▁▁▄.█                  "},
	} {
		if got := sparkline(hours, tt.upTo); got != tt.want {
			t.Errorf("sparkline up to %d = %q, want %q", tt.upTo, got, tt.want)
		}
	}
	if got := sparkline([24]int64{}, 23); got != strings.Repeat(".", 24) {
		t.Errorf("an empty day = %q", got)
	}
}
