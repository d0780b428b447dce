package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
	"github.com/keybrake/keybrake/store/postgres"
)

// replayDB writes three refunds of 20.00 that cliPolicy let through an
// hour ago, and a call the kill switch refused, and returns the file.
func replayDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keybrake.db")
	s, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeReplayLog(t, s)
	return path
}

// writeReplayLog writes replayDB's calls to s, and closes it.
func writeReplayLog(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Add(-time.Hour)
	for i := 0; i < 3; i++ {
		rec := audit.Record{Time: now.Add(time.Duration(i) * time.Second), Agent: "refund-bot", Vendor: "stripe", Method: "POST",
			Path: "/v1/refunds", Operation: "refunds.create", Decision: policy.Allowed, Rule: "agents.refund-bot.stripe.allow[0]",
			Amount: usd("20.00"), Reserved: usd("20.00"), MovesMoney: true, Count: 1, PolicyHash: "0123456789abcdef"}
		a, err := s.Reserve(ctx, &store.Reservation{Record: rec})
		if err != nil || a.Result != store.Admitted {
			t.Fatalf("Reserve: %+v %v", a, err)
		}
		if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Moved: usd("20.00"), Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, &audit.Record{Time: now.Add(time.Minute), Agent: "refund-bot", Vendor: "stripe", Method: "POST",
		Path: "/v1/refunds", Decision: policy.Revoked, Rule: "halt", Code: "keybrake_halted", Outcome: audit.None,
		Amount: usd("20.00")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// policy replay --db postgres://... reads a fleet's log as a file's.
func TestPolicyReplayOnAFleet(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	st, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeReplayLog(t, st)
	tighter := writePolicy(t, strings.NewReplacer("daily_cap: 500.00 USD", "daily_cap: 30.00 USD", "per_call_max: 50.00 USD", "per_call_max: 30.00 USD").Replace(cliPolicy))
	out, errs, code := keybrake(t, nil, "policy", "replay", tighter, "--db", dsn)
	if code != 0 || !strings.Contains(out, "refund-bot: 3 calls replayed, 2 changed") || strings.Contains(out, "password") {
		t.Fatalf("replay on the fleet's store: %d %q\n%s", code, errs, out)
	}
}

func TestPolicyReplay(t *testing.T) {
	db := replayDB(t)
	same := writePolicy(t, cliPolicy)
	out, errs, code := keybrake(t, nil, "policy", "replay", same, "--db", db)
	if code != 0 || errs != "" || !strings.Contains(out, "refund-bot: 3 calls replayed, 0 changed") ||
		!strings.Contains(out, "decided under policy 0123456789abcdef") {
		t.Fatalf("the same policy: %d %q\n%s", code, errs, out)
	}
	if !strings.Contains(out, "not replayed (not the policy's decision): 1 calls") || !strings.Contains(out, "revoked (keybrake_halted)") {
		t.Fatalf("the halted call is not counted apart:\n%s", out)
	}

	tighter := writePolicy(t, strings.NewReplacer("daily_cap: 500.00 USD", "daily_cap: 30.00 USD", "per_call_max: 50.00 USD", "per_call_max: 30.00 USD").Replace(cliPolicy))
	out, errs, code = keybrake(t, nil, "policy", "replay", tighter, "--db", db, "--since", "2h")
	for _, want := range []string{
		"refund-bot: 3 calls replayed, 2 changed",
		"allowed agents.refund-bot.stripe.allow[0]  capped agents.refund-bot.stripe.daily_cap",
		"money NEW would have stopped:      40.00 USD",
		"first call NEW would cap:          2 at ",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("tighter: %d %q, no %q in\n%s", code, errs, want, out)
		}
	}

	out, _, code = keybrake(t, nil, "policy", "replay", tighter, "--db", db, "--format", "jsonl")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("jsonl: %d\n%s", code, out)
	}
	var l struct {
		ID       uint64
		Amount   string
		Currency string
		From, To struct{ Decision, Rule, Code string }
	}
	if err := json.Unmarshal([]byte(lines[0]), &l); err != nil {
		t.Fatal(err)
	}
	if l.ID != 2 || l.Amount != "20.00" || l.Currency != "USD" || l.From.Decision != "allowed" || l.To.Code != "keybrake_daily_cap" {
		t.Fatalf("jsonl line %+v", l)
	}

	// The window is the log's: an hour ago is not in the last 10 minutes.
	out, _, code = keybrake(t, nil, "policy", "replay", tighter, "--db", db, "--since", "10m")
	if code != 0 || !strings.Contains(out, "No calls to replay.") {
		t.Fatalf("--since 10m: %d\n%s", code, out)
	}
	out, _, code = keybrake(t, nil, "policy", "replay", tighter, "--db", db, "--agent", "other-bot")
	if code != 0 || !strings.Contains(out, "No calls to replay.") {
		t.Fatalf("--agent other-bot: %d\n%s", code, out)
	}
}

func TestPolicyReplayMisuse(t *testing.T) {
	db := replayDB(t)
	p := writePolicy(t, cliPolicy)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"policy", "replay", "--db", db}, 2, "NEW"},
		{[]string{"policy", "replay", p, "--db", db, "--format", "csv"}, 2, "--format"},
		{[]string{"policy", "replay", p, "--db", db, "--since", "soon"}, 2, "--since"},
		{[]string{"policy", "replay", writePolicy(t, "version: 2\n"), "--db", db}, 1, "version"},
		{[]string{"policy", "replay", p, "--db", filepath.Join(t.TempDir(), "none.db")}, 1, "no database"},
	} {
		_, errs, code := keybrake(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: %d %q, want %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}
