package bolt_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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

// chainFixture writes a small audit log and closes the store. Its records
// and journal entries are numbered as follows:
//
//	record 1: entries 1 (reserved), 2 (settled)
//	record 2: entries 3 (reserved), 4 (settled, 25.00 USD)
//	record 3: entry 5 (a refusal)
//	record 4: entries 6 (reserved), 7 (released)
//	record 5: entry 8 (a refusal)
//	record 6: entries 9 (reserved), 10 (unknown)
func chainFixture(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fixture.db")
	s := open(t, path)
	ctx := context.Background()
	h := audit.Hold{Key: "agent/a/stripe/2025-06-01/USD", Unit: "USD", Limit: -1, Amount: 25_000_000}
	reserveComplete := func(agent string, outcome audit.Outcome) {
		a, err := s.Reserve(ctx, &store.Reservation{Record: call(agent), Holds: []audit.Hold{h}})
		if err != nil {
			t.Fatal(err)
		}
		c := &store.Completion{ID: a.ID, Outcome: outcome, Status: 200}
		if outcome == audit.Settled {
			c.Settled, c.Moved = []int64{25_000_000}, money.Amount{Micros: 25_000_000, Currency: "USD"}
		}
		if err := s.Complete(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	refuse := func(agent string) {
		if _, err := s.Append(ctx, &audit.Record{Time: call(agent).Time, Agent: agent, Decision: policy.Capped, Status: 402}); err != nil {
			t.Fatal(err)
		}
	}
	reserveComplete("one", audit.Settled)
	reserveComplete("two", audit.Settled)
	refuse("three")
	reserveComplete("four", audit.Released)
	refuse("five")
	reserveComplete("six", audit.Unknown)
	rep, err := s.Verify(ctx)
	if err != nil || rep.Entries != 10 || rep.Records != 6 || rep.Head != 10 {
		t.Fatalf("fixture: Verify = %+v, %v; want 10 entries and 6 records", rep, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func copyFile(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "keybrake.db")
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return to
}

// tamper edits the closed database file with bbolt directly, as someone
// with access to the file would.
func tamper(t *testing.T, path string, edit func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(edit); err != nil {
		db.Close()
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func key(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func swap(bucket string, a, b []byte) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		va, vb := clone(bk.Get(a)), clone(bk.Get(b))
		if err := bk.Put(a, vb); err != nil {
			return err
		}
		return bk.Put(b, va)
	}
}

func del(bucket string, k []byte) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error { return tx.Bucket([]byte(bucket)).Delete(k) }
}

// rehash recomputes the hash of journal entry n after an edit, as someone
// who knows the format would: SHA-256 of the previous entry's hash, the
// number and the body (all after the hash and the 8-byte link).
func rehash(n uint64) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		j := tx.Bucket([]byte("journal"))
		v := clone(j.Get(key(n)))
		var prev []byte
		if p := j.Get(key(n - 1)); p != nil {
			prev = p[8:40]
		} else {
			prev = make([]byte, 32)
		}
		h := sha256.New()
		h.Write(prev)
		h.Write(v[:8])
		h.Write(v[48:])
		copy(v[8:40], h.Sum(nil))
		return j.Put(key(n), v)
	}
}

// editRecord changes a record as someone who knows the format would.
func editRecord(id uint64, edit func(r *audit.Record)) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		return bolt.EditRecord(tx, id, func(r *audit.Record, _ *uint64) { edit(r) })
	}
}

// alterEntry changes the last byte of journal entry n: the hash of the
// state it holds.
func alterEntry(n uint64) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		j := tx.Bucket([]byte("journal"))
		v := clone(j.Get(key(n)))
		v[len(v)-1] ^= 1
		return j.Put(key(n), v)
	}
}

// entryNames makes journal entry n name record id's current state, as
// someone who edited the record and knows the format would.
func entryNames(n, id uint64) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		j := tx.Bucket([]byte("journal"))
		v := clone(j.Get(key(n)))
		s := sha256.Sum256(tx.Bucket([]byte("records")).Get(key(id)))
		copy(v[len(v)-32:], s[:])
		return j.Put(key(n), v)
	}
}

func all(edits ...func(tx *bbolt.Tx) error) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		for _, e := range edits {
			if err := e(tx); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	fixture := chainFixture(t)
	tests := []struct {
		name    string
		edit    func(tx *bbolt.Tx) error
		problem store.ChainProblem
		entry   uint64
		record  uint64
		says    string // in the message
	}{
		{"record amount changed", editRecord(2, func(r *audit.Record) { r.Settled.Micros = 250_000 }),
			store.ChainAltered, 4, 2, "record 2 was altered: it differs from its latest journal entry 4"},
		{"record outcome changed", editRecord(6, func(r *audit.Record) { r.Outcome = audit.Released }),
			store.ChainAltered, 10, 6, "record 6 was altered: it differs from its latest journal entry 10"},
		{"record removed", del("records", key(3)),
			store.ChainMissing, 5, 3, "record 3 was removed: journal entry 5 holds its latest state"},
		{"records swapped", swap("records", key(2), key(4)),
			store.ChainReordered, 4, 2, "record 2 holds the contents of record 4: records were swapped or moved"},
		{"record added", editRecord(1, func(r *audit.Record) { r.ID = 99 }),
			store.ChainExtra, 0, 99, "record 99 has no journal entry: it was added outside the store"},
		{"journal entry removed", del("journal", key(6)),
			store.ChainMissing, 6, 0, "entry 6 is missing: the journal goes from entry 5 to entry 7"},
		{"two journal entries removed", all(del("journal", key(6)), del("journal", key(7))),
			store.ChainMissing, 6, 0, "entries 6 to 7 are missing"},
		{"last journal entry removed", del("journal", key(10)),
			store.ChainMissing, 10, 0, "entry 10, the last one written, is missing"},
		{"first journal entry removed", del("journal", key(1)),
			store.ChainMissing, 1, 0, "entry 1 is missing: the journal goes from the start of the chain to entry 2"},
		{"journal entry altered", alterEntry(3),
			store.ChainAltered, 3, 2, "entry 3 (record 2) was altered: its contents no longer match the hash"},
		{"journal entry altered, hash recomputed", all(alterEntry(3), rehash(3)),
			store.ChainBrokenLink, 4, 2, "entry 4 (record 2) names"},
		{"record and its latest entry altered alike, hash recomputed", all(
			editRecord(2, func(r *audit.Record) { r.Settled.Micros = 250_000 }), entryNames(4, 2), rehash(4)),
			store.ChainBrokenLink, 5, 3, "but entry 4 hashes to"},
		{"journal entries swapped", swap("journal", key(3), key(4)),
			store.ChainReordered, 3, 2, "position 3 of the journal holds entry 4 (record 2): entries were reordered or moved"},
		{"journal entry truncated", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("journal")).Put(key(8), []byte("short"))
		}, store.ChainAltered, 8, 0, "entry 8 is 5 bytes"},
		{"record's link changed", func(tx *bbolt.Tx) error {
			return bolt.EditRecord(tx, 5, func(_ *audit.Record, seq *uint64) { *seq = 7 })
		}, store.ChainAltered, 8, 5, "record 5 was altered: it differs from its latest journal entry 8 (it says its latest entry is 7)"},
		{"record changed, its link kept", editRecord(5, func(r *audit.Record) { r.Agent = "evif" }),
			store.ChainAltered, 8, 5, "record 5 was altered: it differs from its latest journal entry 8"},
		// The earliest break in the journal is reported, whatever else is wrong.
		{"several breaks", all(del("records", key(1)), alterEntry(9), del("journal", key(7))),
			store.ChainMissing, 7, 0, "entry 7 is missing"},
		{"several record breaks", all(del("records", key(4)), editRecord(5, func(r *audit.Record) { r.Agent = "evif" })),
			store.ChainMissing, 7, 4, "record 4 was removed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := copyFile(t, fixture)
			tamper(t, path, tt.edit)
			s, err := bolt.Open(path, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rep, err := s.Verify(context.Background())
			var ce *store.ChainError
			if !errors.As(err, &ce) || !errors.Is(err, store.ErrChainBroken) {
				t.Fatalf("Verify = %+v, %v; want a *ChainError", rep, err)
			}
			if ce.Problem != tt.problem || ce.Entry != tt.entry || ce.Record != tt.record || !strings.Contains(ce.Detail, tt.says) {
				t.Fatalf("Verify = %v\n(problem %q, entry %d, record %d)\nwant %q at entry %d, record %d, saying %q",
					err, ce.Problem, ce.Entry, ce.Record, tt.problem, tt.entry, tt.record, tt.says)
			}
			t.Logf("%v", err)
		})
	}
	// The untouched fixture verifies, read-only and read-write.
	for _, ro := range []bool{true, false} {
		s, err := bolt.Open(copyFile(t, fixture), &bolt.Options{ReadOnly: ro})
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := s.Verify(context.Background()); err != nil || rep.Entries != 10 || rep.Records != 6 {
			t.Errorf("Verify of the fixture (read-only %v) = %+v, %v", ro, rep, err)
		}
		s.Close()
	}
}

// TestPruneRefusesBrokenChain: pruning would destroy the evidence.
func TestPruneRefusesBrokenChain(t *testing.T) {
	path := copyFile(t, chainFixture(t))
	tamper(t, path, editRecord(2, func(r *audit.Record) { r.Settled.Micros = 250_000 }))
	s := open(t, path)
	ctx := context.Background()
	rep, err := s.Prune(ctx, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	var ce *store.ChainError
	if !errors.As(err, &ce) || ce.Record != 2 {
		t.Fatalf("Prune of a tampered store = %+v, %v; want the ChainError of record 2", rep, err)
	}
	if rep != (store.PruneReport{}) {
		t.Fatalf("Prune of a tampered store removed %+v", rep)
	}
	n := 0
	s.Query(ctx, audit.Query{}, func(*audit.Record) error { n++; return nil })
	if n != 6 {
		t.Fatalf("%d records after a refused Prune, want 6", n)
	}
}

// TestWritesRefuseAMissingHead: with the chain's last entry gone, a write
// cannot link to it; it fails (closed) rather than start a second chain.
func TestWritesRefuseAMissingHead(t *testing.T) {
	path := copyFile(t, chainFixture(t))
	tamper(t, path, del("journal", key(10)))
	s := open(t, path)
	if _, err := s.Append(context.Background(), &audit.Record{Agent: "x"}); err == nil || !strings.Contains(err.Error(), "head of the audit chain") {
		t.Fatalf("Append with the head entry missing = %v, want an error naming the head", err)
	}
}

func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	ctx := context.Background()
	s := open(t, path)
	a, err := s.Reserve(ctx, &store.Reservation{Record: call("a"), Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	// The process holding the file read-write keeps a reader out.
	if ro, err := bolt.Open(path, &bolt.Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond}); !errors.Is(err, store.ErrLocked) {
		if ro != nil {
			ro.Close()
		}
		t.Fatalf("read-only Open of a held file = %v, want ErrLocked", err)
	}
	// Closed with the reservation in flight, as a crash would leave it.
	s.Close()

	ro := func() *bolt.Store {
		s, err := bolt.Open(path, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	r1, r2 := ro(), ro() // readers share the file
	var outcome audit.Outcome
	if err := r1.Query(ctx, audit.Query{}, func(r *audit.Record) error { outcome = r.Outcome; return nil }); err != nil {
		t.Fatal(err)
	}
	if outcome != audit.Reserved {
		t.Fatalf("record read read-only is %s, want reserved: recovery is not for readers", outcome)
	}
	if c, err := r2.Counter(ctx, "k"); err != nil || c != (store.Counter{Pending: 5}) {
		t.Fatalf("Counter = %+v, %v", c, err)
	}
	if rep, err := r2.Verify(ctx); err != nil || rep.Records != 1 || rep.Entries != 1 {
		t.Fatalf("Verify read-only = %+v, %v", rep, err)
	}
	writes := map[string]error{}
	_, writes["Reserve"] = r1.Reserve(ctx, &store.Reservation{Record: call("b")})
	writes["Complete"] = r1.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Released})
	writes["Resettle"] = r1.Resettle(ctx, a.ID, nil, money.Amount{})
	_, writes["Append"] = r1.Append(ctx, &audit.Record{Agent: "c"})
	writes["SetFact"] = r1.SetFact(ctx, "k", "v")
	_, writes["Prune"] = r1.Prune(ctx, time.Now())
	for name, err := range writes {
		if !errors.Is(err, store.ErrReadOnly) {
			t.Errorf("%s read-only = %v, want ErrReadOnly", name, err)
		}
	}
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r1.Close(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	r2.Close()

	// Read-only never creates a file.
	missing := filepath.Join(t.TempDir(), "missing.db")
	if s, err := bolt.Open(missing, &bolt.Options{ReadOnly: true}); err == nil {
		s.Close()
		t.Fatal("read-only Open of a missing file succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read-only Open created %s: %v", missing, err)
	}
}

// TestUpgradeFromSchema1: a file written before the chain gets one, every
// record journaled in ID order, on its first read-write Open, and reads
// back as it was.
func TestUpgradeFromSchema1(t *testing.T) {
	path := copyFile(t, schema2File)
	// Turn the schema-2 fixture into what schema 1 wrote: no journal, no
	// checkpoint, no links.
	tamper(t, path, func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket([]byte("journal")); err != nil {
			return err
		}
		r := tx.Bucket([]byte("records"))
		var keys [][]byte
		r.ForEach(func(k, _ []byte) error { keys = append(keys, clone(k)); return nil })
		for _, k := range keys {
			v := clone(r.Get(k))
			i := bytes.Index(v, []byte(`,"prev":"`))
			if i < 0 {
				return errors.New("record without prev")
			}
			v = append(v[:i], v[i+len(`,"prev":"`)+64+1:]...)
			if err := r.Put(k, v); err != nil {
				return err
			}
		}
		meta := tx.Bucket([]byte("meta"))
		if err := meta.Delete([]byte("checkpoint")); err != nil {
			return err
		}
		return meta.Put([]byte("schema"), key(1))
	})
	if s, err := bolt.Open(path, &bolt.Options{ReadOnly: true}); !errors.Is(err, bolt.ErrSchema) || !strings.Contains(err.Error(), "read-write once") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("read-only Open of schema 1 = %v, want ErrSchema saying to open it read-write once", err)
	}
	s := open(t, path)
	ctx := context.Background()
	rep, err := s.Verify(ctx)
	n := count(t, s)
	if err != nil || rep.Entries != n+1 || rep.Records != n {
		t.Fatalf("Verify after the upgrade = %+v, %v; want one entry per record (%d), and one for the recovered call", rep, err, n)
	}
	want, err := os.ReadFile(schema2Golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := dumpSchema2(t, s); !bytes.Equal(got, want) {
		t.Fatalf("the upgraded file reads back as\n%s\nwant %s", got, want)
	}
	s.Close()
	s = open(t, path)
	if rep2, err := s.Verify(ctx); err != nil || rep2 != rep {
		t.Fatalf("Verify after reopening the upgraded file = %+v, %v; was %+v", rep2, err, rep)
	}
}

func count(t *testing.T, s store.Store) int {
	t.Helper()
	n := 0
	if err := s.Query(context.Background(), audit.Query{}, func(*audit.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTombstone: a record changed after younger records were written (an
// estimate reconciled late) lies beyond the journal cut; Prune removes it
// and leaves a tombstone, which Verify accepts, and which shows when
// someone puts the record back.
func TestTombstone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	s := open(t, path)
	ctx := context.Background()
	old := call("old")
	old.Time = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	a, err := s.Reserve(ctx, &store.Reservation{Record: old, Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	usd := money.Amount{Micros: 7_900, Currency: "USD"}
	if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{1}, Moved: usd, Estimated: true}); err != nil {
		t.Fatal(err)
	}
	young := call("young")
	young.Time = time.Date(2025, 6, 9, 12, 0, 0, 0, time.UTC)
	if _, err := s.Append(ctx, &young); err != nil {
		t.Fatal(err)
	}
	if err := s.Resettle(ctx, a.ID, []int64{1}, usd); err != nil { // entry 4, after the young record's
		t.Fatal(err)
	}
	// Someone keeps a copy of the record as it was before the prune.
	s.Close()
	var saved []byte
	tamper(t, path, func(tx *bbolt.Tx) error {
		saved = clone(tx.Bucket([]byte("records")).Get(key(a.ID)))
		return nil
	})
	s = open(t, path)
	rep, err := s.Prune(ctx, time.Date(2025, 6, 5, 0, 0, 0, 0, time.UTC))
	if err != nil || rep.Records != 1 || rep.Carried != 0 || rep.Entries != 2 || rep.Checkpoint != 2 {
		t.Fatalf("Prune = %+v, %v; want record %d removed, the cut stopped at the young record (after entry 2)", rep, err, a.ID)
	}
	v, err := s.Verify(ctx)
	if err != nil || v.Records != 1 || v.Entries != 3 || v.Checkpoint != 2 {
		t.Fatalf("Verify = %+v, %v; want the young record, its entry, the old record's last entry and its tombstone", v, err)
	}
	s.Close()

	// Put the pruned record back from the copy.
	tamper(t, path, func(tx *bbolt.Tx) error {
		j := tx.Bucket([]byte("journal"))
		if j.Get(key(4)) == nil || j.Get(key(5))[48] != 't' {
			return errors.New("the journal does not hold the expected entries")
		}
		return tx.Bucket([]byte("records")).Put(key(a.ID), saved)
	})
	s, err = bolt.Open(path, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Verify(ctx)
	var ce *store.ChainError
	if !errors.As(err, &ce) || ce.Problem != store.ChainExtra || ce.Record != a.ID || ce.Entry != 5 ||
		!strings.Contains(ce.Detail, "says a prune removed it") {
		t.Fatalf("Verify with a pruned record put back = %v", err)
	}
	t.Log(err)
}

// TestVerifyInAnotherProcess: another process verifies a file this one
// has closed, while this one reads it too (read-only opens share the
// file), and reports the head this one sees.
func TestVerifyInAnotherProcess(t *testing.T) {
	path := chainFixture(t)
	s, err := bolt.Open(path, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, err := child(t, "verify", path)
	if err != nil {
		t.Fatalf("child: %v; output %q", err, out)
	}
	if want := fmt.Sprintf("10 6 %s\n", rep.HeadHash); out != want {
		t.Fatalf("child printed %q, want %q", out, want)
	}

	// And a broken chain, reported from there.
	broken := copyFile(t, path)
	tamper(t, broken, del("records", key(3)))
	out, err = child(t, "verify", broken)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "record 3 was removed") {
		t.Fatalf("child on a broken chain: %v, %q", err, out)
	}
}
