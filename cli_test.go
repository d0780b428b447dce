package keybrake_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/fakes/fakestripe"
)

// TestCommandReadsARunningAgent: while an agent runs (its Brake holds the
// database's lock), `keybrake audit` and `keybrake status` in another
// process show its calls and totals, through the Brake's admin socket.
func TestCommandReadsARunningAgent(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "keybrake")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/keybrake").CombinedOutput(); err != nil {
		t.Fatalf("building the command: %v\n%s", err, out)
	}
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
