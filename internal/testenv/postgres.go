package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the variable that holds the URL of the PostgreSQL the
// tests may use: a role that can create schemas in its database (the
// database's owner), no superuser needed. .ci/postgres.sh start prints it.
const PostgresEnv = "KEYBRAKE_TEST_DATABASE_URL"

// PostgresURL returns $KEYBRAKE_TEST_DATABASE_URL. When it is unset the
// test is skipped with a message saying how to get a database, or fails
// under CI=true, where a skipped test would be a green build that tested
// nothing. Unlike StripeMock it starts nothing, so it needs no Main.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(PostgresEnv)
	if u != "" {
		return u
	}
	msg := PostgresEnv + " is not set: these tests need a PostgreSQL. Start a throwaway one with\n" +
		"\teval \"$(bash .ci/postgres.sh start)\"   # and later: bash .ci/postgres.sh stop\n" +
		"(as root: it installs Debian's postgresql package when missing and runs the server as the postgres user),\n" +
		"or point " + PostgresEnv + " at a database whose owner the URL names."
	if underCI() {
		t.Fatalf("testenv: CI=true and %s", msg)
	}
	t.Skipf("testenv: %s", msg)
	return ""
}

// PostgresSchema creates a new, empty schema for this test in the database
// of PostgresURL and returns that URL with search_path set to it, so that
// every test (and every store opened on the URL) sees only its own tables
// and tests can run in parallel. The schema is dropped, with everything in
// it, when the test ends. It skips or fails as PostgresURL does.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "kbtest_" + hex.EncodeToString(b[:])
	u, err := url.Parse(base)
	if err != nil {
		// Never print the URL: it holds the password.
		t.Fatalf("testenv: %s is not a URL", PostgresEnv)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("testenv: creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("testenv: dropping schema %s: %v", schema, err)
		}
	})
	return u.String()
}

// PostgresExec runs sql on the database of dsn (a URL PostgresSchema
// returned, so in the test's schema), for tests that edit the tables
// behind a store's back.
func PostgresExec(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("testenv: %s: %v", sql, fmt.Sprint(err))
	}
}

// PostgresAgentEnv names the variable that holds the URL of a second role
// of the same database that owns nothing and may only connect:
// .ci/postgres.sh start prints it. Tests grant it what an agent's role
// is documented to need, and nothing more.
const PostgresAgentEnv = "KEYBRAKE_TEST_AGENT_DATABASE_URL"

// PostgresAgentURL returns $KEYBRAKE_TEST_AGENT_DATABASE_URL with the
// search_path of schemaURL (a URL PostgresSchema returned), and the role's
// name. It skips, or fails under CI=true, as PostgresURL does.
func PostgresAgentURL(t testing.TB, schemaURL string) (dsn, role string) {
	t.Helper()
	base := os.Getenv(PostgresAgentEnv)
	if base == "" {
		msg := PostgresAgentEnv + " is not set: .ci/postgres.sh start prints it with " + PostgresEnv
		if underCI() {
			t.Fatalf("testenv: CI=true and %s", msg)
		}
		t.Skipf("testenv: %s", msg)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: %s is not a URL", PostgresAgentEnv)
	}
	s, err := url.Parse(schemaURL)
	if err != nil {
		t.Fatalf("testenv: the schema URL is not a URL")
	}
	q := u.Query()
	q.Set("search_path", s.Query().Get("search_path"))
	u.RawQuery = q.Encode()
	return u.String(), u.User.Username()
}
