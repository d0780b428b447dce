package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/postgres"
	"github.com/keybrake/keybrake/store/storetest"
)

// The agents' role needs only the privileges docs/fleets.md lists: the
// test reads its grants block (the fenced block tagged "sql grants"),
// runs it on a schema a store of the owning role migrated, and runs the
// whole conformance suite as a role that has nothing else, so a privilege
// the code needs and the page forgets fails here. The role can do no DDL.

// grants is the block of docs/fleets.md, for schema and role.
func grants(t *testing.T, schema, role string) string {
	t.Helper()
	page, err := os.ReadFile("../../docs/fleets.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```sql grants\n(.*?)```").FindSubmatch(page)
	if m == nil {
		t.Fatal("docs/fleets.md has no ```sql grants block")
	}
	sql := string(m[1])
	for _, want := range []string{"SCHEMA keybrake ", " TO keybrake_agent;"} {
		if !strings.Contains(sql, want) {
			t.Fatalf("the grants block does not say %q:\n%s", want, sql)
		}
	}
	sql = strings.ReplaceAll(sql, "SCHEMA keybrake ", "SCHEMA "+pgx.Identifier{schema}.Sanitize()+" ")
	return strings.ReplaceAll(sql, " TO keybrake_agent;", " TO "+pgx.Identifier{role}.Sanitize()+";")
}

// asAgent migrates a new schema as its owner, grants the agents' role
// what the page says, and returns that role's URL for the schema.
func asAgent(t *testing.T) string {
	t.Helper()
	owner := testenv.PostgresSchema(t)
	agent, role := testenv.PostgresAgentURL(t, owner)
	open(t, owner, nil).Close() // the migration role's part, once
	u, _ := url.Parse(owner)
	testenv.PostgresExec(t, owner, grants(t, u.Query().Get("search_path"), role))
	return agent
}

func TestConformanceAsAgentRole(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, asAgent(t), nil)
	})
}

func TestAgentRoleCannotChangeTheSchema(t *testing.T) {
	dsn := asAgent(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, ddl := range []string{
		`CREATE TABLE keybrake_extra (i int)`,
		`DROP TABLE keybrake_records`,
		`ALTER TABLE keybrake_counters DROP CONSTRAINT IF EXISTS keybrake_counters_pkey`,
		`TRUNCATE keybrake_journal`,
	} {
		_, err := conn.Exec(ctx, ddl)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s as the agents' role: %v, want insufficient privilege (42501)", ddl, err)
		}
	}
}

// An agent whose schema was never migrated (or is behind its code) stops
// at Open, saying why, rather than at its first call.
func TestAgentRoleCannotMigrate(t *testing.T) {
	owner := testenv.PostgresSchema(t)
	agent, role := testenv.PostgresAgentURL(t, owner)
	u, _ := url.Parse(owner)
	testenv.PostgresExec(t, owner, "GRANT USAGE ON SCHEMA "+pgx.Identifier{u.Query().Get("search_path")}.Sanitize()+" TO "+pgx.Identifier{role}.Sanitize())
	s, err := postgres.Open(context.Background(), agent, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open as the agents' role migrated a schema it does not own")
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(err.Error(), "keybrake_migrations") {
		t.Fatalf("Open = %v, want the permission error of creating keybrake_migrations", err)
	}
}
