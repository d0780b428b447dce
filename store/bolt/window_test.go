package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

// schema3File is what writeSchema2 wrote with the code of commit 3117517,
// the last to write schema version 3; read back there after a read-write
// Open it gave schema2.golden.json, byte for byte.
const schema3File = "testdata/schema3.db"

var w0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func rate(key string, limit int64, window time.Duration) audit.Hold {
	return audit.Hold{Key: key, Unit: "units", Limit: limit, Amount: 1, Window: window}
}

// at is call("a") at w0 + d.
func at(d time.Duration) audit.Record {
	r := call("a")
	r.Time = w0.Add(d)
	return r
}

func reserveW(t *testing.T, s store.Store, r *store.Reservation) store.Admission {
	t.Helper()
	a, err := s.Reserve(context.Background(), r)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	return a
}

func windowOf(t *testing.T, s store.Store, key string, when time.Time) []store.WindowEntry {
	t.Helper()
	es, err := s.Window(context.Background(), key, when)
	if err != nil {
		t.Fatalf("Window(%q): %v", key, err)
	}
	return es
}

// TestSchema3Fixture: a file the code before rolling windows wrote reads
// as it did, read-only as it is and read-write after an upgrade that
// leaves every record's bytes and the chain as they were; then it keeps
// windows and runs like a new one.
func TestSchema3Fixture(t *testing.T) {
	ctx := context.Background()
	path := copyFile(t, schema3File)
	var cp, last uint64
	tamper(t, path, func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if v := meta.Get([]byte("schema")); binary.BigEndian.Uint64(v) != 3 || tx.Bucket([]byte("windows")) != nil {
			return fmt.Errorf("the fixture has schema %x and windows %v", v, tx.Bucket([]byte("windows")) != nil)
		}
		cp = binary.BigEndian.Uint64(meta.Get([]byte("checkpoint")))
		last = tx.Bucket([]byte("journal")).Sequence()
		return nil
	})
	ro, err := bolt.Open(path, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open of schema 3 = %v", err)
	}
	if rep, err := ro.Verify(ctx); err != nil || rep.Checkpoint != cp || rep.Head != last {
		t.Fatalf("read-only Verify of schema 3 = %+v, %v; want checkpoint %d, head %d", rep, err, cp, last)
	}
	if es, err := ro.Window(ctx, "w", w0); err != nil || len(es) != 0 {
		t.Fatalf("read-only Window of schema 3 = %+v, %v; want none", es, err)
	}
	ro.Close()

	// The records are in the form this code writes: encoding each anew
	// gives the bytes the old code wrote.
	tamper(t, path, func(tx *bbolt.Tx) error {
		var ids []uint64
		records := tx.Bucket([]byte("records"))
		records.ForEach(func(k, _ []byte) error { ids = append(ids, binary.BigEndian.Uint64(k)); return nil })
		for _, id := range ids {
			was := clone(records.Get(key(id)))
			if err := bolt.EditRecord(tx, id, func(*audit.Record, *uint64) {}); err != nil {
				return err
			}
			if now := records.Get(key(id)); !bytes.Equal(now, was) {
				return fmt.Errorf("record %d encodes anew as %x, was %x", id, now, was)
			}
		}
		return nil
	})

	s := open(t, path)
	// The chain goes on: one more entry, the call left in flight, recovered.
	if rep, err := s.Verify(ctx); err != nil || rep.Checkpoint != cp || rep.Head != last+1 {
		t.Fatalf("Verify of the upgraded fixture = %+v, %v; want checkpoint %d, head %d", rep, err, cp, last+1)
	}
	want, err := os.ReadFile(schema2Golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := dumpSchema2(t, s); !bytes.Equal(got, want) {
		t.Fatalf("the schema-3 fixture reads back as\n%s\nwant %s", got, want)
	}
	r := at(0)
	r.Run, r.Principal = "ticket-4312", "alice@example.com"
	if a := reserveW(t, s, &store.Reservation{Record: r, Holds: []audit.Hold{rate("w", 1, time.Minute)}}); a.Result != store.Admitted {
		t.Fatalf("a windowed call on the upgraded file: %+v", a)
	}
	if a := reserveW(t, s, &store.Reservation{Record: at(time.Second), Holds: []audit.Hold{rate("w", 1, time.Minute)}}); a.Result != store.OverLimit {
		t.Fatalf("a second one: %+v, want OverLimit", a)
	}
	s.Close()
	tamper(t, path, func(tx *bbolt.Tx) error {
		if v := tx.Bucket([]byte("meta")).Get([]byte("schema")); binary.BigEndian.Uint64(v) != bolt.SchemaVersion {
			return fmt.Errorf("the upgraded file has schema %x", v)
		}
		return nil
	})
	s = open(t, path)
	if es := windowOf(t, s, "w", w0); len(es) != 1 || es[0].Unknown != 1 {
		t.Fatalf("Window after reopening: %+v, want the call, recovered unknown", es)
	}
	n := 0
	if err := s.Query(ctx, audit.Query{Run: "ticket-4312", Principal: "alice@example.com"}, func(*audit.Record) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("Query by run: %d records, %v; want 1", n, err)
	}
	if _, err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRunsAndWindowsRoundTrip: the fields schema 4 added read back as
// written, and as their JSON form reads them.
func TestRunsAndWindowsRoundTrip(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keybrake.db"))
	ctx := context.Background()
	usd := money.Amount{Micros: 15_800, Currency: "USD"}
	holds := []audit.Hold{
		{Key: "day:USD", Unit: "USD", Limit: 1_000_000, Amount: 15_800},
		rate("minute:calls", 20, time.Minute),
		{Key: "hour:USD", Unit: "USD", Limit: -1, Amount: 15_800, Window: time.Hour + time.Nanosecond},
	}
	for _, run := range []string{"6f1c2a4e-8d3b-4f7a-9c21-0b5e7d9a3f10", "ticket-9", ""} {
		rec := at(0)
		rec.Run, rec.Principal, rec.Amount, rec.Reserved = run, "alice@example.com", usd, usd
		a := reserveW(t, s, &store.Reservation{Record: rec, Holds: holds})
		if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{15_000, 1, 15_000}, Moved: usd}); err != nil {
			t.Fatal(err)
		}
		var got *audit.Record
		s.Query(ctx, audit.Query{After: a.ID - 1, Limit: 1}, func(r *audit.Record) error { got = r; return nil })
		want := rec
		want.ID, want.Outcome, want.Settled, want.PrevHash = a.ID, audit.Settled, usd, got.PrevHash
		want.Holds = append([]audit.Hold(nil), holds...)
		want.Holds[0].Settled, want.Holds[1].Settled, want.Holds[2].Settled = 15_000, 1, 15_000
		if g, w := fmt.Sprintf("%#v", *got), fmt.Sprintf("%#v", want); g != w {
			t.Fatalf("record read back\n got %s\nwant %s", g, w)
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var back audit.Record
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if g, w := fmt.Sprintf("%#v", back), fmt.Sprintf("%#v", *got); g != w {
			t.Fatalf("record through JSON\n got %s\nwant %s", g, w)
		}
	}
	if c, _ := s.Counter(ctx, "minute:calls"); c != (store.Counter{}) {
		t.Fatalf("a windowed hold moved a counter: %+v", c)
	}
}

// TestWindowHoldsRefused: what an entry cannot keep is refused before
// anything is written.
func TestWindowHoldsRefused(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keybrake.db"))
	long := strings.Repeat("k", bbolt.MaxKeySize-10)
	tests := map[string]*store.Reservation{
		"negative window":  {Record: at(0), Holds: []audit.Hold{rate("w", 5, -time.Minute)}},
		"key too long":     {Record: at(0), Holds: []audit.Hold{rate(long, 5, time.Minute)}},
		"zero time":        {Record: audit.Record{}, Holds: []audit.Hold{rate("w", 5, time.Minute)}},
		"the year 2300":    {Record: audit.Record{Time: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}, Holds: []audit.Hold{rate("w", 5, time.Minute)}},
		"window key twice": {Record: at(0), Holds: []audit.Hold{rate("w", 5, time.Minute), rate("x", 5, time.Minute), rate("w", 5, time.Hour)}},
	}
	for name, r := range tests {
		if a, err := s.Reserve(context.Background(), r); !errors.Is(err, bolt.ErrInvalid) {
			t.Errorf("%s: Reserve = %+v, %v; want ErrInvalid", name, a, err)
		}
	}
	// A counter may share a window's key, and a long key stays fine for a counter.
	holds := []audit.Hold{rate("w", 5, time.Minute), {Key: "w", Limit: 5, Amount: 1}, {Key: long, Limit: 5, Amount: 1}}
	if a := reserveW(t, s, &store.Reservation{Record: audit.Record{}, Holds: holds[1:]}); a.Result != store.Admitted {
		t.Fatalf("counters at the zero time: %+v", a)
	}
	if a := reserveW(t, s, &store.Reservation{Record: at(0), Holds: holds}); a.Result != store.Admitted {
		t.Fatalf("a window and a counter of one key: %+v", a)
	}
}

// TestWindowKeysApart: window keys that are prefixes of each other, NUL
// bytes included, are separate windows.
func TestWindowKeysApart(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keybrake.db"))
	keys := []string{"a", "ab", "a\x00", "a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}
	var holds []audit.Hold
	for _, k := range keys {
		holds = append(holds, rate(k, 1, time.Minute))
	}
	if a := reserveW(t, s, &store.Reservation{Record: at(0), Holds: holds}); a.Result != store.Admitted {
		t.Fatalf("one call in each window: %+v", a)
	}
	for i, k := range keys {
		if es := windowOf(t, s, k, w0); len(es) != 1 {
			t.Fatalf("Window(%q): %+v, want one entry", k, es)
		}
		if a := reserveW(t, s, &store.Reservation{Record: at(time.Second), Holds: holds[i : i+1]}); a.Result != store.OverLimit || a.Used != 1 {
			t.Fatalf("a second call in window %q: %+v, want OverLimit with Used 1", k, a)
		}
	}
}

// TestWindowFreesUsesTheHoldsWindow: entries leave the window of the hold
// being reserved at their Time plus that hold's Window, as Reserve counts
// them, whatever window they were reserved with; so retrying at Frees
// fits.
func TestWindowFreesUsesTheHoldsWindow(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keybrake.db"))
	reserveW(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{rate("w", 1, time.Hour)}})
	a := reserveW(t, s, &store.Reservation{Record: at(10 * time.Second), Holds: []audit.Hold{rate("w", 1, time.Minute)}})
	if a.Result != store.OverLimit || a.Used != 1 || !a.Frees.Equal(w0.Add(time.Minute)) {
		t.Fatalf("a minute's window beside an hour's entry: %+v, want OverLimit, Used 1, Frees at a minute", a)
	}
	if a := reserveW(t, s, &store.Reservation{Record: at(time.Minute), Holds: []audit.Hold{rate("w", 1, time.Minute)}}); a.Result != store.Admitted {
		t.Fatalf("at Frees: %+v, want Admitted", a)
	}
	// An hour's window counts both, and frees when the later has left it.
	a = reserveW(t, s, &store.Reservation{Record: at(2 * time.Minute), Holds: []audit.Hold{rate("w", 2, time.Hour)}})
	if a.Result != store.OverLimit || a.Used != 2 || !a.Frees.Equal(w0.Add(time.Hour)) {
		t.Fatalf("an hour's window: %+v, want OverLimit, Used 2, Frees at an hour (the first leaves)", a)
	}
	// Window lists what has not left its own window.
	if es := windowOf(t, s, "w", w0.Add(2*time.Minute)); len(es) != 1 || es[0].Window != time.Hour {
		t.Fatalf("Window at 2 minutes: %+v, want the hour's entry only", es)
	}
}

// TestWindowPrunedBeforeComplete: an entry Prune removed once it left its
// window is nothing to move for Complete, Resettle or a retry, which
// counts afresh from its own Time.
func TestWindowPrunedBeforeComplete(t *testing.T) {
	// The clock keeps the estimate's record, by its young idempotency
	// key, while its entry goes.
	s, err := bolt.Open(filepath.Join(t.TempDir(), "keybrake.db"), &bolt.Options{Now: func() time.Time { return w0.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	idem := &store.Idempotency{Key: "k", Fingerprint: "fp"}
	held := reserveW(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{rate("w", 5, time.Minute), {Key: "c", Limit: -1, Amount: 1}}})
	estimate := reserveW(t, s, &store.Reservation{Record: at(time.Second), Holds: []audit.Hold{rate("w", 5, time.Minute)},
		Idempotency: &store.Idempotency{Key: "e", Fingerprint: "fp"}})
	if err := s.Complete(ctx, &store.Completion{ID: estimate.ID, Outcome: audit.Settled, Settled: []int64{1}, Estimated: true}); err != nil {
		t.Fatal(err)
	}
	lost := reserveW(t, s, &store.Reservation{Record: at(2 * time.Second), Holds: []audit.Hold{rate("w", 5, time.Minute)}, Idempotency: idem})
	if err := s.Complete(ctx, &store.Completion{ID: lost.ID, Outcome: audit.Unknown}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Prune(ctx, w0.Add(time.Hour))
	if err != nil || rep.Windows != 3 {
		t.Fatalf("Prune = %+v, %v; want 3 window entries removed", rep, err)
	}
	if err := s.Complete(ctx, &store.Completion{ID: held.ID, Outcome: audit.Settled, Settled: []int64{1, 1}}); err != nil {
		t.Fatalf("Complete of a record whose entry was pruned: %v", err)
	}
	if err := s.Resettle(ctx, estimate.ID, []int64{0}, money.Amount{}); err != nil {
		t.Fatalf("Resettle of a record whose entry was pruned: %v", err)
	}
	retry := reserveW(t, s, &store.Reservation{Record: at(time.Hour), Holds: []audit.Hold{rate("w", 5, time.Minute)}, Idempotency: idem})
	if retry.RetryOf != lost.ID {
		t.Fatalf("retry: %+v, want it to take record %d over", retry, lost.ID)
	}
	if es := windowOf(t, s, "w", w0.Add(time.Hour)); len(es) != 1 || es[0].Record != retry.ID || es[0].Pending != 1 {
		t.Fatalf("Window after the retry: %+v, want the retry's pending entry", es)
	}
	if c, _ := s.Counter(ctx, "c"); c != (store.Counter{Settled: 1}) {
		t.Fatalf("counter c = %+v, want settled 1", c)
	}
	if _, err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestWindowCorruptEntryFailsClosed: an entry that cannot be read is an
// error for every call that counts it, never room under the limit; one
// that holds other than its record says is an error for every call that
// moves it.
func TestWindowCorruptEntryFailsClosed(t *testing.T) {
	ctx := context.Background()
	// edit replaces the only window entry of the closed file at path.
	edit := func(t *testing.T, path string, fn func(k, v []byte) ([]byte, []byte)) {
		tamper(t, path, func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("windows"))
			k, v := b.Cursor().First()
			k, v = clone(k), clone(v)
			if err := b.Delete(k); err != nil {
				return err
			}
			return b.Put(fn(k, v))
		})
	}
	unreadable := map[string]func(k, v []byte) ([]byte, []byte){
		"short value": func(k, v []byte) ([]byte, []byte) { return k, v[:31] },
		"no window":   func(k, v []byte) ([]byte, []byte) { return k, append(make([]byte, 8), v[8:]...) },
		"negative":    func(k, v []byte) ([]byte, []byte) { v[8] = 0x80; return k, v },
		"long key":    func(k, v []byte) ([]byte, []byte) { return append(k, 0), v },
		"record 0":    func(k, v []byte) ([]byte, []byte) { return append(k[:len(k)-8], make([]byte, 8)...), v },
	}
	for name, fn := range unreadable {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keybrake.db")
			s := open(t, path)
			a := reserveW(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{rate("w", 5, time.Minute)}})
			if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{1}}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			edit(t, path, fn)
			s = open(t, path)
			if _, err := s.Window(ctx, "w", w0); err == nil {
				t.Error("Window read a corrupt entry without an error")
			}
			if b, err := s.Reserve(ctx, &store.Reservation{Record: at(time.Second), Holds: []audit.Hold{rate("w", 5, time.Minute)}}); err == nil {
				t.Errorf("Reserve beside a corrupt entry = %+v, want an error", b)
			}
			if _, err := s.Prune(ctx, w0.Add(time.Hour)); err == nil {
				t.Error("Prune went past a corrupt entry without an error")
			}
		})
	}
	// More than the record holds: the recovery of the record in flight,
	// and a retry taking an Unknown call over, refuse to move it.
	for _, outcome := range []audit.Outcome{audit.Reserved, audit.Unknown} {
		t.Run("more than its hold, "+string(outcome), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keybrake.db")
			s := open(t, path)
			idem := &store.Idempotency{Key: "k", Fingerprint: "fp"}
			a := reserveW(t, s, &store.Reservation{Record: at(0), Holds: []audit.Hold{rate("w", 5, time.Minute)}, Idempotency: idem})
			if outcome == audit.Unknown {
				if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Unknown}); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			edit(t, path, func(k, v []byte) ([]byte, []byte) { v[23], v[31] = v[23]+1, v[31]+1; return k, v })
			s, err := bolt.Open(path, nil)
			if outcome == audit.Reserved {
				if err == nil {
					s.Close()
					t.Fatal("Open recovered a record whose window entry holds more than its hold")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if b, err := s.Reserve(ctx, &store.Reservation{Record: at(time.Second), Holds: []audit.Hold{rate("w", 5, time.Minute)}, Idempotency: idem}); err == nil {
				t.Errorf("a retry taking over a corrupt entry = %+v, want an error", b)
			}
		})
	}
}
