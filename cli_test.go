package keybrake_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/fakes/fakestripe"
)

// TestCommandReadsARunningAgent: while an agent runs (its Brake holds the
// database's lock), `keybrake audit` and `keybrake status` in another
// process show its calls and totals, through the Brake's admin socket.
func TestCommandReadsARunningAgent(t *testing.T) {
	bin := buildCLI(t)
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_live", Amount: 900000, Currency: "usd", Captured: true})
	db := filepath.Join(t.TempDir(), "k.db")
	kb := openBrake(t, capPolicy, keybrake.Options{DBPath: db, Endpoints: fakeEndpoint(url)})
	bot := newSDK(t, kb, "refund-bot")
	for i := 0; i < 6; i++ {
		bot.Refunds.New(refund("ch_live", 2500)) // four fit 100.00 USD, two are capped
	}
	run := func(args ...string) string {
		t.Helper()
		start := time.Now()
		out, err := exec.Command(bin, append(args, "--db", db)...).CombinedOutput()
		if err != nil {
			t.Fatalf("keybrake %v: %v\n%s", args, err, out)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("keybrake %v took %v", args, d)
		}
		return string(out)
	}
	lines := strings.Split(strings.TrimSpace(run("audit", "--since", "1m", "--agent", "refund-bot", "--format", "jsonl")), "\n")
	decisions := map[string]int{}
	for _, l := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		decisions[r["decision"].(string)]++
	}
	if decisions["allowed"] != 4 || decisions["capped"] != 2 {
		t.Fatalf("audit of the running agent: %v", decisions)
	}
	status := run("status")
	for _, want := range []string{"refund-bot", "100.00 USD"} {
		if !strings.Contains(status, want) {
			t.Fatalf("status lacks %q:\n%s", want, status)
		}
	}
	if summary := run("audit", "summary", "--since", "5m"); !strings.Contains(summary, "capped") {
		t.Fatalf("summary:\n%s", summary)
	}
	if out := run("audit", "verify"); !strings.Contains(out, "audit chain intact") {
		t.Fatalf("verify of the running agent's log:\n%s", out)
	}
	// Once the agent stops, the command reads the file itself.
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
	if out := run("audit", "verify"); !strings.Contains(out, "audit chain intact") {
		t.Fatalf("verify of the closed log:\n%s", out)
	}
}

// TestStatusShowsCustomers: `keybrake status` lists a grant's customers
// against their per-customer daily cap, the most used first, from the
// running agent's socket and from the files once it has stopped.
func TestStatusShowsCustomers(t *testing.T) {
	bin := buildCLI(t)
	fs, url := fakestripe.Start(t)
	for _, c := range []string{"cus_beta1", "cus_beta2"} {
		fs.AddCustomer(c)
	}
	fs.AddCharge(fakestripe.Charge{ID: "ch_beta1", Amount: 9000, Currency: "usd", Customer: "cus_beta1", Captured: true})
	fs.AddCharge(fakestripe.Charge{ID: "ch_beta2", Amount: 9000, Currency: "usd", Customer: "cus_beta2", Captured: true})
	fs.AddCharge(fakestripe.Charge{ID: "ch_beta1b", Amount: 9000, Currency: "usd", Customer: "cus_beta1", Captured: true})
	db := filepath.Join(t.TempDir(), "k.db")
	pol := writePolicy(t, scopePolicy)
	kb := openBrake(t, "", keybrake.Options{DBPath: db, PolicyFile: pol, Endpoints: fakeEndpoint(url)})
	bot := newSDK(t, kb, "cohort-bot")
	hour := time.Now().UTC().Hour()
	for _, r := range []*stripe.RefundParams{refund("ch_beta1", 3000), refund("ch_beta2", 1000), refund("ch_beta1b", 500)} {
		if _, err := bot.Refunds.New(r); err != nil {
			t.Fatal(err)
		}
	}
	check := func(where string) {
		t.Helper()
		out, err := exec.Command(bin, "status", "--db", db, "--policy", pol).CombinedOutput()
		if err != nil {
			t.Fatalf("status (%s): %v\n%s", where, err, out)
		}
		t.Logf("status (%s):\n%s", where, out)
		// beta1 holds 35.00 of its 40.00, beta2 10.00: most used first.
		re := regexp.MustCompile(`cohort-bot stripe customers\.daily_cap: 2 customers counted today, all:\n` +
			`CUSTOMER\s+ACCOUNT\s+USED\s+MAX\s+%.*\n` +
			`cus_beta1\s+\(platform\)\s+35\.00 USD\s+40\.00 USD\s+87%\s+\[#{17}\.{3}\]\s+settled 35\.00, pending 0\.00, unknown 0\.00\n` +
			`cus_beta2\s+\(platform\)\s+10\.00 USD\s+40\.00 USD\s+25%`)
		if !re.Match(out) {
			t.Errorf("status (%s) lacks the customers:\n%s", where, out)
		}
		// 45.00 moved, all in this hour: the busiest, drawn full height.
		h := hour
		spark := regexp.MustCompile(`spend today by UTC hour.*\nAGENT\s+VENDOR\s+TODAY\s+00    06    12    18\s+BUSIEST HOUR\n` +
			`cohort-bot\s+stripe\s+45\.00 USD\s+` + regexp.QuoteMeta(strings.Repeat(".", h)+"█"+strings.Repeat(" ", 23-h)) +
			fmt.Sprintf(`\s+%02d:00 45\.00 USD\n`, h))
		if !spark.Match(out) && time.Now().UTC().Hour() == h { // an hour that turned since the refunds is no failure
			t.Errorf("status (%s) lacks the spend of the hour %02d:\n%s", where, h, out)
		}
	}
	check("the running agent")
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
	check("the files")
}

// buildCLI builds cmd/keybrake into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keybrake")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/keybrake").CombinedOutput(); err != nil {
		t.Fatalf("building the command: %v\n%s", err, out)
	}
	return bin
}
