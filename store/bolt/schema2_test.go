package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

// generate rewrites testdata/schema2.db and its golden. Only the code that
// wrote schema version 2 can regenerate them: check out the commit that
// added this file, then
//
//	go test ./store/bolt -run TestSchema2Fixture -generate
var generate = flag.Bool("generate", false, "rewrite testdata/schema2.db and testdata/schema2.golden.json")

const (
	schema2File   = "testdata/schema2.db"
	schema2Golden = "testdata/schema2.golden.json"
)

// schema2Now is the clock the fixture was written with.
var schema2Now = time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)

// writeSchema2 writes the fixture's calls: every outcome a record can
// have, idempotency keys, facts, estimates and a prune's checkpoint, and
// one reservation left in flight, as a process that stopped would leave it.
func writeSchema2(t *testing.T, path string) {
	t.Helper()
	s, err := bolt.Open(path, &bolt.Options{Now: func() time.Time { return schema2Now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	usd := func(m int64) money.Amount { return money.Amount{Micros: m, Currency: "USD"} }
	rec := func(day, i int, agent string) audit.Record {
		return audit.Record{
			Time:  time.Date(2025, 6, day, 9, i, 7, 123456789, time.UTC),
			Agent: agent, Vendor: "stripe", Method: "POST", Host: "api.stripe.com", Path: "/v1/refunds",
			Operation: "refunds.create", Decision: policy.Allowed, Rule: "agents." + agent + ".stripe.allow[0]",
			Reason: "every check passed", KeyID: "kid_1a2b", Customer: "cus_NffrFeUfNV2Hib",
			Params:     map[string]string{"charge": fmt.Sprintf("ch_3MmlLrLkdIwHu7ix0snN%04d", i), "amount": "1099"},
			Amount:     usd(10_990_000),
			Reserved:   usd(10_990_000),
			PolicyHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		}
	}
	holds := func(day int, agent string, amount int64) []audit.Hold {
		d := fmt.Sprintf("2025-06-%02d", day)
		return []audit.Hold{
			{Key: "agent/" + agent + "/stripe/" + d + "/USD", Unit: "USD", Limit: 500_000_000, Amount: amount},
			{Key: "agent/" + agent + "/stripe/" + d + "/calls", Unit: "units", Limit: 100, Amount: 1},
		}
	}
	idem := func(agent, key string) *store.Idempotency {
		return &store.Idempotency{Key: agent + "\x00stripe\x00\x00" + key, Fingerprint: fmt.Sprintf("%064x", len(key)*7919)}
	}
	reserve := func(r *store.Reservation) store.Admission {
		t.Helper()
		a, err := s.Reserve(ctx, r)
		if err != nil || (a.Result != store.Admitted && a.Result != store.Replayed) {
			t.Fatalf("Reserve = %+v, %v", a, err)
		}
		return a
	}
	complete := func(c *store.Completion) {
		t.Helper()
		if err := s.Complete(ctx, c); err != nil {
			t.Fatalf("Complete(%+v) = %v", c, err)
		}
	}
	settle := func(id uint64, i int) {
		complete(&store.Completion{ID: id, Outcome: audit.Settled, Settled: []int64{10_990_000, 1}, Moved: usd(10_990_000),
			Object: fmt.Sprintf("re_3MmlLrLkdIwHu7ix0%04d", i), Status: 200, RequestID: fmt.Sprintf("req_%014d", i),
			Duration: 312_456 * time.Microsecond})
	}

	// Days 1 and 2: settled calls and refusals, pruned below.
	for day := 1; day <= 2; day++ {
		for i := 0; i < 4; i++ {
			r := rec(day, i, "refund-bot")
			r.IdempotencyKey = fmt.Sprintf("old-%d-%d", day, i)
			a := reserve(&store.Reservation{Record: r, Holds: holds(day, "refund-bot", 10_990_000), Idempotency: idem("refund-bot", r.IdempotencyKey)})
			settle(a.ID, i)
		}
		r := rec(day, 9, "refund-bot")
		r.Decision, r.Code, r.Rule, r.Reason, r.Status = policy.Capped, "keybrake_daily_cap", "agents.refund-bot.stripe.daily_cap", "over the daily cap", 402
		if _, err := s.Append(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	// An Unknown call of day 1, still counted: the prune keeps it.
	u := rec(1, 20, "refund-bot")
	ua := reserve(&store.Reservation{Record: u, Holds: holds(1, "refund-bot", 10_990_000)})
	complete(&store.Completion{ID: ua.ID, Outcome: audit.Unknown, Status: 504, Duration: 30 * time.Second, Reason: "the vendor timed out"})
	if _, err := s.Prune(ctx, time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}

	// Day 9.
	const day = 9
	n := 0
	next := func(agent string) audit.Record { n++; return rec(day, n, agent) }
	// Settled, with a key; then its retry, replayed.
	r := next("refund-bot")
	r.IdempotencyKey = "6f1c2a4e-8d3b-4f7a-9c21-0b5e7d9a3f10"
	a := reserve(&store.Reservation{Record: r, Holds: holds(day, "refund-bot", 10_990_000), Idempotency: idem("refund-bot", r.IdempotencyKey)})
	settle(a.ID, n)
	rp := reserve(&store.Reservation{Record: next("refund-bot"), Idempotency: idem("refund-bot", r.IdempotencyKey)})
	complete(&store.Completion{ID: rp.ID, Outcome: audit.Settled, Status: 200, RequestID: "req_replayed", Duration: time.Millisecond})
	// Released (the vendor said no).
	a = reserve(&store.Reservation{Record: next("support-bot"), Holds: holds(day, "support-bot", 5_000_000)})
	complete(&store.Completion{ID: a.ID, Outcome: audit.Released, Status: 402, RequestID: "req_declined", Reason: "card_declined"})
	// Unknown, then retried with its key: the retry takes its holds over.
	r = next("refund-bot")
	r.IdempotencyKey = "retry-me"
	a = reserve(&store.Reservation{Record: r, Holds: holds(day, "refund-bot", 2_000_000), Idempotency: idem("refund-bot", "retry-me")})
	complete(&store.Completion{ID: a.ID, Outcome: audit.Unknown, Status: 502})
	r = next("refund-bot")
	r.IdempotencyKey = "retry-me"
	a = reserve(&store.Reservation{Record: r, Idempotency: idem("refund-bot", "retry-me")})
	settle(a.ID, n)
	// An estimate, reconciled; another still an estimate.
	a = reserve(&store.Reservation{Record: next("sms-bot"), Holds: holds(day, "sms-bot", 7_900)})
	complete(&store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{7_900, 1}, Moved: usd(7_900), Estimated: true, Status: 201})
	if err := s.Resettle(ctx, a.ID, []int64{8_300, 1}, usd(8_300)); err != nil {
		t.Fatal(err)
	}
	a = reserve(&store.Reservation{Record: next("sms-bot"), Holds: holds(day, "sms-bot", 7_900)})
	complete(&store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{7_900, 1}, Moved: usd(7_900), Estimated: true, Status: 201})
	// Refused after its reservation (the policy changed while it waited).
	a = reserve(&store.Reservation{Record: next("refund-bot"), Holds: holds(day, "refund-bot", 10_990_000)})
	complete(&store.Completion{ID: a.ID, Outcome: audit.Released, Status: 403, Reason: "the policy changed",
		Refused: &store.Refusal{Decision: policy.Blocked, Code: "keybrake_blocked", Rule: "agents.refund-bot.stripe.block", Policy: "sha256:newpolicy"}})
	// An event, and a record in another currency with no holds.
	if _, err := s.Append(ctx, &audit.Record{Time: time.Date(2025, 6, day, 10, 0, 0, 0, time.UTC), Event: "policy_reload", Reason: "policy.yaml changed",
		PolicyHash: "sha256:newpolicy"}); err != nil {
		t.Fatal(err)
	}
	eur := next("eu-bot")
	eur.Amount, eur.Reserved = money.Amount{Micros: 1_500_000, Currency: "EUR"}, money.Amount{}
	eur.Decision, eur.Code, eur.Status, eur.Lookup = policy.Blocked, "keybrake_unknown_endpoint", 403, "charges.retrieve"
	if _, err := s.Append(ctx, &eur); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"stripe/charge/ch_1/currency": "usd", "twilio/price/US/sms": "0.0079"} {
		if err := s.SetFact(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	// Left in flight: the next read-write Open finds it Reserved.
	r = next("refund-bot")
	r.IdempotencyKey = "in-flight"
	reserve(&store.Reservation{Record: r, Holds: holds(day, "refund-bot", 10_990_000), Idempotency: idem("refund-bot", "in-flight")})
	if _, err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// schema2Dump is what the golden holds: every record as Query returns it
// after a read-write Open (which recovers the call left in flight), with
// PrevHash cleared (an upgrade rebuilds the chain, so the hashes change),
// and the counters the records hold.
type schema2Dump struct {
	Records  []json.RawMessage        `json:"records"`
	Counters map[string]store.Counter `json:"counters"`
	Facts    map[string]string        `json:"facts"`
}

func dumpSchema2(t *testing.T, s store.Store) []byte {
	t.Helper()
	ctx := context.Background()
	d := schema2Dump{Counters: map[string]store.Counter{}, Facts: map[string]string{}}
	keys := map[string]bool{}
	err := s.Query(ctx, audit.Query{}, func(r *audit.Record) error {
		if len(r.PrevHash) != 64 {
			return fmt.Errorf("record %d has PrevHash %q", r.ID, r.PrevHash)
		}
		r.PrevHash = ""
		b, err := json.Marshal(r)
		d.Records = append(d.Records, b)
		for _, h := range r.Holds {
			keys[h.Key] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		if d.Counters[k], err = s.Counter(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"stripe/charge/ch_1/currency", "twilio/price/US/sms"} {
		v, _, err := s.Fact(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		d.Facts[k] = v
	}
	b, err := json.MarshalIndent(d, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestSchema2Fixture regenerates the fixture with -generate (see
// generate) and otherwise checks that the committed fixture opens and
// reads back as its golden says.
func TestSchema2Fixture(t *testing.T) {
	if *generate && bolt.SchemaVersion != 2 {
		t.Fatalf("this code writes schema version %d; regenerate the fixture with the commit that added it", bolt.SchemaVersion)
	}
	if *generate {
		if err := os.Remove(schema2File); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		writeSchema2(t, schema2File)
		s := open(t, copyFile(t, schema2File))
		if err := os.WriteFile(schema2Golden, dumpSchema2(t, s), 0o644); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	want, err := os.ReadFile(schema2Golden)
	if err != nil {
		t.Fatal(err)
	}
	path := copyFile(t, schema2File)
	// What the schema-2 chain was: its checkpoint and its last entry.
	var cp, last uint64
	tamper(t, path, func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if v := meta.Get([]byte("schema")); binary.BigEndian.Uint64(v) != 2 {
			return fmt.Errorf("the fixture has schema %x", v)
		}
		cp = binary.BigEndian.Uint64(meta.Get([]byte("checkpoint")))
		last = tx.Bucket([]byte("journal")).Sequence()
		return nil
	})
	if s, err := bolt.Open(path, &bolt.Options{ReadOnly: true}); !errors.Is(err, bolt.ErrSchema) || !strings.Contains(err.Error(), "read-write once") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("read-only Open of schema 2 = %v, want ErrSchema saying to open it read-write once", err)
	}
	s := open(t, path)
	// The chain goes on from the same checkpoint, entry for entry, and
	// one more: the call left in flight, recovered.
	if rep, err := s.Verify(context.Background()); err != nil || rep.Checkpoint != cp || cp == 0 || rep.Head != last+1 || rep.Entries != int(last-cp+1) {
		t.Fatalf("Verify of the upgraded fixture = %+v, %v; want checkpoint %d and entries %d to %d", rep, err, cp, cp+1, last+1)
	}
	if got := dumpSchema2(t, s); !bytes.Equal(got, want) {
		os.WriteFile(filepath.Join(t.TempDir(), "got.json"), got, 0o644)
		t.Fatalf("the fixture reads back as\n%s\nwant %s", got, want)
	}
	s.Close()
	if s, err := bolt.Open(path, &bolt.Options{ReadOnly: true}); err != nil {
		t.Fatalf("read-only Open of the upgraded file = %v", err)
	} else {
		s.Close()
	}
}
