package bolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// Rolling windows (store.Store's "Windows"). Each windowed hold of a
// record is one entry of the windows bucket, keyed by the window's key
// (length-prefixed, so that no key is a prefix of another's entries), then
// the record's Time and ID as the time index orders them: a reservation
// reads the entries of its window with one cursor seek and a scan of the
// window's live entries, and Prune cuts the old ones by time. The value is
// the hold's Window and what it still counts, as a counter: settled,
// pending, unknown.
//
// The bucket is newer than schema version 3: a read-write Open creates it
// in a file without it, and a read-only one reads such a file as having no
// window.

var bucketWindows = []byte("windows")

const windowValueLen = 32

func windowPrefix(key string) []byte {
	b := binary.AppendUvarint(make([]byte, 0, len(key)+binary.MaxVarintLen64+16), uint64(len(key)))
	return append(b, key...)
}

func windowKey(key string, t time.Time, id uint64) []byte {
	return append(windowPrefix(key), timeKey(t, id)...)
}

func encodeWindow(w time.Duration, c store.Counter) []byte {
	b := make([]byte, windowValueLen)
	binary.BigEndian.PutUint64(b[0:], uint64(w))
	copy(b[8:], encodeCounter(c))
	return b
}

func decodeWindow(key string, b []byte) (time.Duration, store.Counter, error) {
	if len(b) != windowValueLen {
		return 0, store.Counter{}, corrupt("window entry of %q is %d bytes, want %d", key, len(b), windowValueLen)
	}
	w := time.Duration(binary.BigEndian.Uint64(b[0:]))
	if w <= 0 {
		return 0, store.Counter{}, corrupt("window entry of %q has window %d", key, w)
	}
	c, err := decodeCounter(key, b[8:])
	return w, c, err
}

// entryTime reads the time and record ID back from an entry's key.
func entryTime(prefix, k []byte) (time.Time, uint64, error) {
	if len(k) != len(prefix)+16 {
		return time.Time{}, 0, corrupt("window entry key of %d bytes under a prefix of %d", len(k), len(prefix))
	}
	n := int64(binary.BigEndian.Uint64(k[len(prefix):]) ^ (1 << 63))
	return time.Unix(0, n).UTC(), binary.BigEndian.Uint64(k[len(prefix)+8:]), nil
}

// windowState is what a reservation reads of one window.
type windowState struct {
	used    int64
	leaving []leaving // what each live entry counts, and when it leaves
}

type leaving struct {
	at     time.Time
	amount int64
}

// readWindow reads the entries of key that still count at t: Time after t
// minus w, later ones included.
func readWindow(tx *bbolt.Tx, key string, t time.Time, w time.Duration) (windowState, error) {
	var st windowState
	b := tx.Bucket(bucketWindows)
	if b == nil {
		return st, nil
	}
	prefix := windowPrefix(key)
	cur := b.Cursor()
	for k, v := cur.Seek(append(slices.Clip(prefix), timeKey(t.Add(-w).Add(time.Nanosecond), 0)...)); k != nil && hasPrefix(k, prefix); k, v = cur.Next() {
		at, _, err := entryTime(prefix, k)
		if err != nil {
			return st, err
		}
		ew, c, err := decodeWindow(key, v)
		if err != nil {
			return st, err
		}
		total, _ := checked.Total(c)
		if !at.Add(ew).After(t) {
			continue // a shorter window's entry, gone from it
		}
		var ok bool
		if st.used, ok = checked.Add(st.used, total); !ok {
			return st, corrupt("window %q overflows", key)
		}
		st.leaving = append(st.leaving, leaving{at.Add(ew), total})
	}
	return st, nil
}

func hasPrefix(k, prefix []byte) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}

// frees is when enough of the window has left it for amount to fit under
// limit; zero when amount alone is over it.
func (st windowState) frees(amount, limit int64) time.Time {
	if amount > limit {
		return time.Time{}
	}
	need := st.used + amount - limit
	slices.SortStableFunc(st.leaving, func(a, b leaving) int { return a.at.Compare(b.at) })
	var freed int64
	for _, l := range st.leaving {
		freed += l.amount
		if freed >= need {
			return l.at
		}
	}
	return time.Time{}
}

// checkWindows checks the reservation's windowed holds, as reserve checks
// counters: it returns the index of the first that does not fit, with
// what its window held and when it frees, or -1. A takeover's holds are
// counted already and are not checked.
func checkWindows(tx *bbolt.Tx, t time.Time, holds []audit.Hold, takeover bool) (int, int64, time.Time, error) {
	seen := map[string]bool{}
	for i, h := range holds {
		if h.Window == 0 {
			continue
		}
		if h.Window < 0 {
			return 0, 0, time.Time{}, invalid("hold %d (%s) has a negative window %s", i, h.Key, h.Window)
		}
		if seen[h.Key] {
			return 0, 0, time.Time{}, invalid("hold %d holds window %q a second time", i, h.Key)
		}
		seen[h.Key] = true
		if takeover || h.Limit < 0 {
			continue
		}
		st, err := readWindow(tx, h.Key, t, h.Window)
		if err != nil {
			return 0, 0, time.Time{}, err
		}
		if next, ok := checked.Add(st.used, h.Amount); !ok || next > h.Limit {
			return i, st.used, st.frees(h.Amount, h.Limit), nil
		}
	}
	return -1, 0, time.Time{}, nil
}

// putWindows writes rec's windowed holds as pending entries; a takeover's
// entries, under the record it took them from, go.
func putWindows(tx *bbolt.Tx, rec *audit.Record, takeover *audit.Record) error {
	b := tx.Bucket(bucketWindows)
	for _, h := range rec.Holds {
		if h.Window == 0 {
			continue
		}
		if takeover != nil {
			if err := b.Delete(windowKey(h.Key, takeover.Time, takeover.ID)); err != nil {
				return err
			}
		}
		if err := b.Put(windowKey(h.Key, rec.Time, rec.ID), encodeWindow(h.Window, store.Counter{Pending: h.Amount})); err != nil {
			return err
		}
	}
	return nil
}

// moveWindow applies move to r's entry for the windowed hold h: an entry
// that counts nothing more goes, and one already pruned (it had left its
// window) is nothing to move.
func moveWindow(tx *bbolt.Tx, r *audit.Record, h audit.Hold, move func(c *store.Counter, h audit.Hold) bool) error {
	b := tx.Bucket(bucketWindows)
	k := windowKey(h.Key, r.Time, r.ID)
	v := b.Get(k)
	if v == nil {
		return nil
	}
	w, c, err := decodeWindow(h.Key, v)
	if err != nil {
		return err
	}
	before := c
	if !move(&c, h) {
		return corrupt("window entry %q of record %d %+v cannot move hold %+v", h.Key, r.ID, before, h)
	}
	if total, ok := checked.Total(c); !ok {
		return fmt.Errorf("store/bolt: window entry %q of record %d overflows: %+v", h.Key, r.ID, c)
	} else if total == 0 {
		return b.Delete(k)
	}
	return b.Put(k, encodeWindow(w, c))
}

// Window implements store.Store.
func (s *Store) Window(ctx context.Context, key string, at time.Time) ([]store.WindowEntry, error) {
	var out []store.WindowEntry
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketWindows)
		if b == nil {
			return nil
		}
		prefix := windowPrefix(key)
		cur := b.Cursor()
		// Entries of any window length may still count at at: read
		// them all (a window holds its live entries and, until a Prune,
		// the ones that left).
		for k, v := cur.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = cur.Next() {
			t, id, err := entryTime(prefix, k)
			if err != nil {
				return err
			}
			w, c, err := decodeWindow(key, v)
			if err != nil {
				return err
			}
			if !t.Add(w).After(at) {
				continue
			}
			out = append(out, store.WindowEntry{Time: t, Record: id, Window: w, Counter: c})
		}
		return nil
	})
	return out, err
}

// pruneWindows removes the entries that have left their windows by
// before, a batch at a time: it reports how many it removed and whether
// there are more.
func pruneWindows(tx *bbolt.Tx, before time.Time, batch int) (int, bool, error) {
	b := tx.Bucket(bucketWindows)
	if b == nil {
		return 0, false, nil
	}
	var gone [][]byte
	cur := b.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		n, read := binary.Uvarint(k)
		if read <= 0 || uint64(len(k)) != uint64(read)+n+16 {
			return 0, false, corrupt("window entry key %x", k)
		}
		prefix := k[:uint64(read)+n]
		t, _, err := entryTime(prefix, k)
		if err != nil {
			return 0, false, err
		}
		w, _, err := decodeWindow(string(prefix[read:]), v)
		if err != nil {
			return 0, false, err
		}
		if !t.Add(w).After(before) {
			gone = append(gone, slices.Clone(k))
			if len(gone) == batch {
				break
			}
		}
	}
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return 0, false, err
		}
	}
	return len(gone), len(gone) == batch, nil
}
