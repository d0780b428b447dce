package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// Rolling windows (store.Store's "Windows"). A windowed hold keeps no
// counter: each record's hold on a window key is one entry of the windows
// bucket, stored as
//
//	uvarint len(key) | key | uint64 time order (as the time index) | uint64 record ID
//	-> int64 Window (nanoseconds) | int64 settled | int64 pending | int64 unknown
//
// The length comes first so that no key's entries are a prefix of
// another key's (hold keys may hold any byte), and the time before the ID
// so that a key's entries lie in the order of their records' Times: a
// Reserve seeks to its window's start and reads to the key's end, later
// records included, as the contract wants. The time is exact because a
// windowed hold is refused for a record whose Time an int64 of unix
// nanoseconds cannot hold (nobody rate-limits calls of the year 1000).
//
// An entry holds what its record's hold still counts, as a counter would:
// pending while Reserved, the settlement once Settled (zero included: an
// estimate of zero may be reconciled upward later), the whole hold while
// Unknown; a Released hold's entry is deleted. Every move checks that the
// entry held exactly what its record said before and holds exactly what it
// says after, so an entry edited or left over shows as corrupt data rather
// than as room under a limit.

// maxWindowKey is the longest window key: its entries' keys must fit
// bbolt's.
const maxWindowKey = bbolt.MaxKeySize - binary.MaxVarintLen16 - 16

const windowValue = 32

func windowPrefix(key string) []byte {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen16+len(key)+16), uint64(len(key)))
	return append(b, key...)
}

func windowKey(prefix []byte, t time.Time, id uint64) []byte {
	b := append(make([]byte, 0, len(prefix)+16), prefix...)
	b = binary.BigEndian.AppendUint64(b, timeOrder(t))
	return binary.BigEndian.AppendUint64(b, id)
}

func encodeWindow(window time.Duration, c store.Counter) []byte {
	b := make([]byte, windowValue)
	binary.BigEndian.PutUint64(b[0:], uint64(window))
	binary.BigEndian.PutUint64(b[8:], uint64(c.Settled))
	binary.BigEndian.PutUint64(b[16:], uint64(c.Pending))
	binary.BigEndian.PutUint64(b[24:], uint64(c.Unknown))
	return b
}

// decodeWindow reads the entry under k, one of key's (prefix is
// windowPrefix(key)). Anything malformed is corrupt data: an entry that
// cannot be read cannot be counted, and ignoring it would let more
// through than the limit.
func decodeWindow(key string, prefix, k, v []byte) (store.WindowEntry, error) {
	if len(k) != len(prefix)+16 {
		return store.WindowEntry{}, corrupt("window %q: an entry key of %d bytes, want %d", key, len(k), len(prefix)+16)
	}
	e := store.WindowEntry{
		Time:   time.Unix(0, int64(binary.BigEndian.Uint64(k[len(prefix):])^(1<<63))).UTC(),
		Record: binary.BigEndian.Uint64(k[len(prefix)+8:]),
	}
	if len(v) != windowValue {
		return store.WindowEntry{}, corrupt("window %q: record %d's entry is %d bytes, want %d", key, e.Record, len(v), windowValue)
	}
	e.Window = time.Duration(binary.BigEndian.Uint64(v[0:]))
	e.Counter = store.Counter{
		Settled: int64(binary.BigEndian.Uint64(v[8:])),
		Pending: int64(binary.BigEndian.Uint64(v[16:])),
		Unknown: int64(binary.BigEndian.Uint64(v[24:])),
	}
	_, fits := checked.Total(e.Counter)
	switch {
	case e.Record == 0:
		return store.WindowEntry{}, corrupt("window %q: an entry of record 0", key)
	case e.Window <= 0:
		return store.WindowEntry{}, corrupt("window %q: record %d's entry has window %v", key, e.Record, e.Window)
	case e.Settled < 0 || e.Pending < 0 || e.Unknown < 0 || !fits:
		return store.WindowEntry{}, corrupt("window %q: record %d's entry holds %+v", key, e.Record, e.Counter)
	}
	return e, nil
}

// checkWindows refuses windowed holds the store cannot keep: a negative
// Window, a key too long for an entry's, a record Time outside what an
// entry's key holds exactly (the years 1678 to 2262), and a window key
// held twice (the contract refuses it: one call is one entry).
func checkWindows(holds []audit.Hold, t time.Time) error {
	var seen map[string]bool
	for i, h := range holds {
		switch {
		case h.Window == 0:
			continue
		case h.Window < 0:
			return invalid("hold %d (%s) has a negative window: %v", i, h.Key, h.Window)
		case len(h.Key) > maxWindowKey:
			return invalid("hold %d has a window key of %d bytes; want at most %d", i, len(h.Key), maxWindowKey)
		case t.Before(minNanoTime) || t.After(maxNanoTime):
			return invalid("hold %d (%s) is windowed, and the record's time %v is outside the years 1678 to 2262", i, h.Key, t)
		case seen[h.Key]:
			return invalid("hold %d holds window %q a second time; a call counts once in a window", i, h.Key)
		}
		if seen == nil {
			seen = make(map[string]bool)
		}
		seen[h.Key] = true
	}
	return nil
}

// windowFits checks a windowed hold of a record at time at, reading only:
// what counts is every entry of its key whose Time is after at minus the
// hold's Window, later ones included. When it does not fit, used is that
// sum and frees the earliest time at which enough has left for it to fit,
// zero when nothing leaving ever makes room (Amount over Limit).
func windowFits(tx *bbolt.Tx, h audit.Hold, at time.Time) (fits bool, used int64, frees time.Time, err error) {
	prefix := windowPrefix(h.Key)
	since := at.Add(-h.Window)
	// each calls fn for the entries that count, in Time order. The seek
	// is clamped like every time key, so the exact test is After.
	each := func(fn func(e store.WindowEntry) bool) error {
		c := tx.Bucket(bucketWindows).Cursor()
		for k, v := c.Seek(windowKey(prefix, since, 0)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			e, err := decodeWindow(h.Key, prefix, k, v)
			if err != nil {
				return err
			}
			if e.Time.After(since) && !fn(e) {
				return nil
			}
		}
		return nil
	}
	overflow := false
	if err := each(func(e store.WindowEntry) bool {
		t, _ := checked.Total(e.Counter) // decodeWindow checked it fits
		var ok bool
		used, ok = checked.Add(used, t)
		overflow = !ok
		return ok
	}); err != nil {
		return false, 0, time.Time{}, err
	}
	if overflow {
		return false, 0, time.Time{}, fmt.Errorf("store/bolt: window %q: its entries' total overflows", h.Key)
	}
	if next, ok := checked.Add(used, h.Amount); ok && next <= h.Limit {
		return true, used, time.Time{}, nil
	}
	if h.Amount > h.Limit {
		return false, used, time.Time{}, nil
	}
	// Entries leave at their Time plus this hold's Window (the reserving
	// hold's, as Reserve counts them, whatever window each was reserved
	// with), oldest first, and entries of one Time together: the hold fits
	// once what is left plus Amount is within the Limit.
	room := h.Limit - h.Amount
	var (
		left  int64
		last  time.Time
		begun bool
	)
	if err := each(func(e store.WindowEntry) bool {
		if begun && !e.Time.Equal(last) && used-left <= room {
			return false
		}
		t, _ := checked.Total(e.Counter)
		left += t // at most used, which did not overflow
		last, begun = e.Time, true
		return true
	}); err != nil {
		return false, 0, time.Time{}, err
	}
	return false, used, last.Add(h.Window), nil
}

// enterWindows writes the entries of rec's windowed holds, pending, under
// rec's Time and ID. A retry taking over an Unknown call's holds (takeover
// not nil) moves that call's entries to rec: "a Retried record's holds
// count from the Time of the record that took them over". An entry the
// Unknown call no longer has was pruned once it left its window; the
// retry's counts afresh all the same.
func enterWindows(tx *bbolt.Tx, rec *audit.Record, holds []audit.Hold, takeover *audit.Record) error {
	b := tx.Bucket(bucketWindows)
	for _, h := range holds {
		if h.Window == 0 {
			continue
		}
		prefix := windowPrefix(h.Key)
		if takeover != nil {
			k := windowKey(prefix, takeover.Time, takeover.ID)
			if v := b.Get(k); v != nil {
				e, err := decodeWindow(h.Key, prefix, k, v)
				if err != nil {
					return err
				}
				if e.Window != h.Window || e.Counter != (store.Counter{Unknown: h.Amount}) {
					return corrupt("window %q: Unknown record %d's entry %+v, window %v, is not its hold %+v", h.Key, takeover.ID, e.Counter, e.Window, h)
				}
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		k := windowKey(prefix, rec.Time, rec.ID)
		if b.Get(k) != nil {
			return corrupt("window %q already holds an entry of new record %d", h.Key, rec.ID)
		}
		if err := b.Put(k, encodeWindow(h.Window, store.Counter{Pending: h.Amount})); err != nil {
			return err
		}
	}
	return nil
}

// windowHeld is what an entry holds for hold h of a record in outcome o;
// false for an outcome whose holds have left the window (Released).
func windowHeld(o audit.Outcome, h audit.Hold) (store.Counter, bool) {
	switch o {
	case audit.Reserved:
		return store.Counter{Pending: h.Amount}, true
	case audit.Settled, audit.Replayed:
		return store.Counter{Settled: h.Settled}, true
	case audit.Unknown:
		return store.Counter{Unknown: h.Amount}, true
	}
	return store.Counter{}, false
}

// moveWindow applies move to the entry of r's windowed hold h, as
// moveHolds does to a counter; r is the record's new state. The entry must
// end up holding exactly what windowHeld says for it, and leaves the
// window when that is nothing. An entry that is not there was pruned after
// it left its window: nothing to move.
func moveWindow(tx *bbolt.Tx, r *audit.Record, h audit.Hold, move func(c *store.Counter, h audit.Hold) bool) error {
	b := tx.Bucket(bucketWindows)
	prefix := windowPrefix(h.Key)
	k := windowKey(prefix, r.Time, r.ID)
	v := b.Get(k)
	if v == nil {
		return nil
	}
	e, err := decodeWindow(h.Key, prefix, k, v)
	if err != nil {
		return err
	}
	before := e.Counter
	want, stays := windowHeld(r.Outcome, h)
	if e.Window != h.Window || !move(&e.Counter, h) || e.Counter != want {
		return corrupt("window %q: record %d's entry %+v, window %v, cannot move hold %+v to %s", h.Key, r.ID, before, e.Window, h, r.Outcome)
	}
	if !stays {
		return b.Delete(k)
	}
	return b.Put(k, encodeWindow(e.Window, e.Counter))
}

// Window implements store.Store. It reads the key's entries in one read
// transaction, from the first: an entry leaves at its own Time plus its
// own Window, which may differ from its neighbours', so no seek can skip
// the ones that left. Prune keeps them few.
func (s *Store) Window(ctx context.Context, key string, at time.Time) ([]store.WindowEntry, error) {
	var out []store.WindowEntry
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketWindows)
		if b == nil {
			return nil // a schema-3 file, opened read-only: no window was ever used
		}
		prefix := windowPrefix(key)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			e, err := decodeWindow(key, prefix, k, v)
			if err != nil {
				return err
			}
			if e.Time.Add(e.Window).After(at) {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pruneWindows removes, pruneChunk entries examined a transaction, the
// window entries that left their windows as of before. It reports how many
// it removed.
func (s *Store) pruneWindows(ctx context.Context, before time.Time) (int, error) {
	return s.writeChunks(ctx, func(tx *bbolt.Tx, from []byte) (int, []byte, error) { // prune.go
		return pruneWindowChunk(tx, before, from)
	})
}

// pruneWindowChunk removes the entries that left their windows as of
// before among the next pruneChunk from the key from on. It returns the
// key to continue from, nil when it reached the end.
func pruneWindowChunk(tx *bbolt.Tx, before time.Time, from []byte) (int, []byte, error) {
	b := tx.Bucket(bucketWindows)
	var (
		doomed [][]byte
		next   []byte
	)
	c := b.Cursor()
	examined := 0
	for k, v := c.Seek(from); k != nil; k, v = c.Next() {
		if examined == pruneChunk {
			next = append([]byte(nil), k...)
			break
		}
		examined++
		n, w := binary.Uvarint(k)
		if w <= 0 || n > uint64(len(k)-w) {
			return 0, nil, corrupt("window entry key %x has no key length", k)
		}
		key := k[w : w+int(n)]
		e, err := decodeWindow(string(key), k[:w+int(n)], k, v)
		if err != nil {
			return 0, nil, err
		}
		if !e.Time.Add(e.Window).After(before) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
	}
	// Deleted after the walk: a cursor must not walk a bucket while it is
	// written.
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return 0, nil, err
		}
	}
	return len(doomed), next, nil
}

// upgradeFrom3 brings a schema-3 file to version 4, which added the
// windows bucket and the record fields Run, Principal and the holds'
// Windows. A schema-3 file has no window entries and its records none of
// those fields (they read as they did), so creating the empty bucket is
// the whole upgrade: one transaction whatever the file's size.
func upgradeFrom3(tx *bbolt.Tx) error {
	for _, name := range buckets4 {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion))
}
