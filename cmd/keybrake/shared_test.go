package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

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
