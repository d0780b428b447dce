package main

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keybrake/keybrake/fakes/fakestripe"

	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store/postgres"
)

func TestDBName(t *testing.T) {
	for in, want := range map[string]string{
		"keybrake.db": "keybrake.db",
		"postgres://kb:s3cret@db.internal:5432/keybrake?sslmode=require&password=x": "postgres://kb@db.internal:5432/keybrake",
		"postgresql://db.internal/keybrake":                                         "postgresql://db.internal/keybrake",
	} {
		if got := dbName(in); got != want {
			t.Errorf("dbName(%q) = %q, want %q", in, got, want)
		}
	}
}

// The audit and status commands read a fleet's shared store by its URL,
// and never print its password.
func TestSharedStoreCommands(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	st, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	writeLog(t, st, now)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(dsn)
	password, _ := u.User.Password()
	if password == "" {
		t.Fatal("the test database's URL has no password to hide")
	}

	out, errs, code := keybrake(t, nil, "audit", "--db", dsn, "--since", "1h", "--format", "csv")
	if code != 0 || strings.Count(out, "\n") != 9 || !strings.Contains(out, "keybrake_daily_cap") {
		t.Errorf("audit of the shared store: %d %q\n%s", code, errs, out)
	}
	p := writePolicy(t, cliPolicy)
	out, errs, code = keybrake(t, []string{"KEYBRAKE_DATABASE_URL=" + dsn}, "status", "--policy", p)
	if code != 0 || !strings.Contains(out, "from the shared store postgres://") || !strings.Contains(out, "settled 50.00, pending 0.00, unknown 50.00") {
		t.Errorf("status of the shared store ($KEYBRAKE_DATABASE_URL): %d %q\n%s", code, errs, out)
	}
	if strings.Contains(out+errs, password) {
		t.Errorf("the password was printed:\n%s\n%s", out, errs)
	}
	// A database that is not there: a clear error, no password.
	bad := strings.Replace(dsn, u.Host, "127.0.0.1:1", 1)
	_, errs, code = keybrake(t, nil, "status", "--db", bad, "--policy", p)
	if code != 1 || strings.Contains(errs, password) || !strings.Contains(errs, "127.0.0.1") {
		t.Errorf("an unreachable store: %d %q", code, errs)
	}
}

// Two keybrake serve replicas on one shared store spend one cap, not one
// each, and a key revoked in their keys file stops both.
func TestServeReplicasShareACap(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 90000, Currency: "usd", Captured: true})
	vendor := httptest.NewServer(fs)
	defer vendor.Close()

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keybrake.yaml"), []byte(servePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := keybrakeIn(t, dir, nil, "keys", "add", "refund-bot", "stripe")
	key := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(key, "kb_") {
		t.Fatalf("keys add: %d %q %q", code, out, errOut)
	}
	env := []string{"STRIPE_SECRET_KEY=" + serveSecret, "KEYBRAKE_DATABASE_URL=" + dsn}
	a := startServe(t, dir, env, "--endpoint", "stripe="+vendor.URL)
	b := startServe(t, dir, env, "--endpoint", "stripe="+vendor.URL)

	// 50.00 USD a day: one refund of 25.00 on each replica, then neither.
	for i, s := range []*served{a, b} {
		if status, body := refundAt(t, s.url, "Bearer "+key, "2500"); status != 200 {
			t.Fatalf("refund %d: %d %s\n%s", i+1, status, body, s.stderr)
		}
	}
	for i, s := range []*served{a, b} {
		if status, body := refundAt(t, s.url, "Bearer "+key, "2500"); status != 402 || !strings.Contains(body, "keybrake_daily_cap") {
			t.Errorf("replica %d over the shared cap: %d %s, want 402 keybrake_daily_cap", i+1, status, body)
		}
	}
	if n := fs.Refunded("ch_1"); n != 5000 {
		t.Errorf("the fake refunded %d cents, want the cap's 5000", n)
	}

	list, _, _ := keybrakeIn(t, dir, nil, "keys", "list")
	id := regexp.MustCompile(`kbk_\w+`).FindString(list)
	if _, e, code := keybrakeIn(t, dir, nil, "keys", "revoke", id); code != 0 {
		t.Fatalf("keys revoke: %d %s", code, e)
	}
	for i, s := range []*served{a, b} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			status, body := refundAt(t, s.url, "Bearer "+key, "100")
			if status == 401 && strings.Contains(body, "keybrake_key_revoked") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d after keys revoke: %d %s", i+1, status, body)
			}
			time.Sleep(20 * time.Millisecond) // waiting for the watcher, not asserting time
		}
	}
	for _, s := range []*served{a, b} {
		if strings.Contains(s.stderr.String(), serveSecret) || strings.Contains(s.stderr.String(), key) {
			t.Error("a replica logged a secret or an agent key")
		}
	}
}
