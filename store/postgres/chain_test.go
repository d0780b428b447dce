package postgres_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
)

// chainFixture writes, in a new schema, records 1 to 5 and journal
// entries 1 to 8: session 1 reserves and settles record 1 (entries 1, 2),
// appends record 2 (3), reserves record 3 and completes it Unknown (4, 5),
// reserves record 4 and closes, which recovers it (6, 7); session 2
// appends record 5 (8).
func chainFixture(t *testing.T) string {
	t.Helper()
	dsn := testenv.PostgresSchema(t)
	s := open(t, dsn, nil)
	hold := []audit.Hold{{Key: "usd", Unit: "USD", Limit: 10000, Amount: 2500}}
	a, err := s.Reserve(ctx, &store.Reservation{Record: call(0), Holds: hold}) // record 1, entry 1
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{2500}}); err != nil { // entry 2
		t.Fatal(err)
	}
	r := call(1)
	r.Agent, r.Decision = "two", "blocked"
	if _, err := s.Append(ctx, &r); err != nil { // record 2, entry 3
		t.Fatal(err)
	}
	b, err := s.Reserve(ctx, &store.Reservation{Record: call(2), Holds: hold}) // record 3, entry 4
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: b.ID, Outcome: audit.Unknown}); err != nil { // entry 5
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, &store.Reservation{Record: call(3), Holds: hold}); err != nil { // record 4, entry 6
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // entry 7: record 4 recovered unknown
		t.Fatal(err)
	}
	s2 := open(t, dsn, nil)
	r = call(4)
	r.Agent, r.Decision = "five", "blocked"
	if _, err := s2.Append(ctx, &r); err != nil { // record 5, entry 8, session 2
		t.Fatal(err)
	}
	s2.Close()
	return dsn
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name    string
		sql     string
		problem store.ChainProblem
		entry   uint64
		record  uint64
		says    string
	}{
		{"record amount changed", `UPDATE keybrake_records SET body = jsonb_set(body, '{holds,0,settled}', '25') WHERE id = 1`,
			store.ChainAltered, 2, 1, "record 1 was altered: it differs from its latest journal entry 2 in holds"},
		{"record outcome changed in body and column", `UPDATE keybrake_records SET body = jsonb_set(body, '{outcome}', '"released"'), outcome = 'released' WHERE id = 3`,
			store.ChainAltered, 5, 3, "in outcome"},
		{"indexed column changed", `UPDATE keybrake_records SET agent = 'someone-else' WHERE id = 2`,
			store.ChainAltered, 3, 2, "indexed columns"},
		{"record removed", `DELETE FROM keybrake_records WHERE id = 2`,
			store.ChainMissing, 3, 2, "record 2 was removed: journal entry 3 holds its latest state"},
		{"records swapped", `UPDATE keybrake_records SET body = (SELECT body FROM keybrake_records WHERE id = 5) WHERE id = 2`,
			store.ChainReordered, 3, 2, "record 2 holds the contents of record 5"},
		{"record added", `INSERT INTO keybrake_records SELECT 99, time_ns, agent, vendor, decision, customer, outcome, session, replay, jsonb_set(body, '{id}', '99') FROM keybrake_records WHERE id = 2`,
			store.ChainExtra, 0, 99, "record 99 has no journal entry"},
		{"journal entry removed", `DELETE FROM keybrake_journal WHERE n = 3`,
			store.ChainMissing, 4, 0, "position 3 is missing"},
		{"last entry of a session removed", `DELETE FROM keybrake_journal WHERE n = 7`,
			store.ChainMissing, 0, 0, "the last one it wrote, is missing"},
		{"journal entry altered", `UPDATE keybrake_journal SET body = replace(body, '"agent":"two"', '"agent":"owt"') WHERE n = 3`,
			store.ChainAltered, 3, 2, "entry 3 (record 2) was altered"},
		{"journal entries swapped", `UPDATE keybrake_journal SET seq = -1 WHERE session = 1 AND seq = 3; UPDATE keybrake_journal SET seq = 3 WHERE session = 1 AND seq = 4; UPDATE keybrake_journal SET seq = 4 WHERE session = 1 AND seq = -1`,
			store.ChainReordered, 4, 3, "position 3 of session 1's chain holds entry 4"},
		{"a whole session removed", `DELETE FROM keybrake_journal WHERE session = 1; DELETE FROM keybrake_records WHERE session = 1; DELETE FROM keybrake_sessions WHERE id = 1`,
			store.ChainMissing, 0, 0, "session 1 is missing"},
		{"the newest session removed", `DELETE FROM keybrake_journal WHERE session = 2; DELETE FROM keybrake_records WHERE session = 2; DELETE FROM keybrake_sessions WHERE id = 2`,
			store.ChainMissing, 0, 0, "session 2 is missing"}, // the Store that verifies started session 3
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := chainFixture(t)
			for _, q := range strings.Split(tt.sql, "; ") {
				testenv.PostgresExec(t, dsn, q)
			}
			s := open(t, dsn, nil)
			defer s.Close()
			rep, err := s.Verify(ctx)
			var ce *store.ChainError
			if !errors.As(err, &ce) || !errors.Is(err, store.ErrChainBroken) {
				t.Fatalf("Verify = %+v, %v; want a *ChainError", rep, err)
			}
			if ce.Problem != tt.problem || ce.Entry != tt.entry || ce.Record != tt.record || !strings.Contains(ce.Detail, tt.says) {
				t.Fatalf("Verify = %v\n(problem %q, entry %d, record %d)\nwant %q at entry %d, record %d, saying %q",
					err, ce.Problem, ce.Entry, ce.Record, tt.problem, tt.entry, tt.record, tt.says)
			}
			if _, err := s.Prune(ctx, call(100).Time); !errors.As(err, &ce) {
				t.Fatalf("Prune of a broken chain = %v, want the ChainError", err)
			}
			t.Logf("%v", err)
		})
	}
	s := open(t, chainFixture(t), nil)
	defer s.Close()
	if rep, err := s.Verify(ctx); err != nil || rep.Entries != 8 || rep.Records != 5 {
		t.Fatalf("Verify of the fixture = %+v, %v; want 8 entries, 5 records", rep, err)
	}
}
