package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"

	"github.com/keybrake/keybrake/store"
)

// Schema version 2, read only to upgrade it: records were audit.Record's
// JSON form and each journal entry held the record's whole state. A journal
// entry was stored under its big-endian sequence number as
//
//	seq (8 bytes) | hash (32 bytes) | JSON
//
// where hash = SHA-256(previous entry's hash | seq | JSON) and the JSON's
// "prev" is the previous entry's hash in hex. The JSON is a record's new
// state, or a tombstone, {"id":N,"pruned":"<cutoff>","prev":"..."}, for a
// record Prune removed before the cut reached its latest entry. The
// sequence is written twice so that an entry moved to another key shows as
// moved, not merely altered.
const entryHeader2 = 8 + sha256.Size

func entryHash2(prev sum, seq uint64, body []byte) sum {
	h := sha256.New()
	h.Write(prev[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], seq)
	h.Write(n[:])
	h.Write(body)
	var s sum
	h.Sum(s[:0])
	return s
}

// link is what an entry or a record says about its place in the chain.
type link2 struct {
	ID   uint64 `json:"id"`
	Prev string `json:"prev"`
	// Pruned, in a tombstone only, is the cutoff of the Prune that
	// removed the record.
	Pruned string `json:"pruned,omitempty"`
}

const (
	linkHead2 = `{"id":`
	linkPrev2 = `,"prev":"`
	linkTail2 = `"}`
)

// quickLink2 reads a body of the shape the store writes; ok is false for
// any other, which readLink2 then hands to encoding/json.
func quickLink2(body []byte) (l link2, prev sum, ok bool) {
	n := len(body)
	if !bytes.HasPrefix(body, []byte(linkHead2)) || !bytes.HasSuffix(body, []byte(linkTail2)) ||
		n < len(linkHead2)+1+len(linkPrev2)+2*len(prev)+len(linkTail2) {
		return link2{}, prev, false
	}
	digits := body[len(linkHead2):]
	i := 0
	for i < len(digits) && i <= 20 && '0' <= digits[i] && digits[i] <= '9' {
		i++
	}
	if i == 0 || i > 20 || i >= len(digits) || digits[i] != ',' || bytes.HasPrefix(digits[i+1:], []byte(`"pruned"`)) {
		return link2{}, prev, false
	}
	id, err := strconv.ParseUint(string(digits[:i]), 10, 64)
	if err != nil {
		return link2{}, prev, false
	}
	h := body[n-len(linkTail2)-2*len(prev) : n-len(linkTail2)]
	if !bytes.HasSuffix(body[:n-len(linkTail2)-len(h)], []byte(linkPrev2)) {
		return link2{}, prev, false
	}
	if _, err := hex.Decode(prev[:], h); err != nil {
		return link2{}, prev, false
	}
	return link2{ID: id, Prev: string(h)}, prev, true
}

// readLink2 reads an entry's or record's link. The store writes "id"
// first and "prev" last; reading those directly saves Verify most of its
// time. Anything else (a tombstone, a body someone edited) goes through
// encoding/json.
func readLink2(body []byte) (link2, sum, error) {
	if l, prev, ok := quickLink2(body); ok {
		return l, prev, nil
	}
	var l link2
	if err := json.Unmarshal(body, &l); err != nil {
		return l, sum{}, err
	}
	var prev sum
	if len(l.Prev) != 2*len(prev) {
		return l, sum{}, fmt.Errorf("its predecessor %q is not a SHA-256 hash", l.Prev)
	}
	if _, err := hex.Decode(prev[:], []byte(l.Prev)); err != nil {
		return l, sum{}, fmt.Errorf("its predecessor %q is not a SHA-256 hash", l.Prev)
	}
	return l, prev, nil
}

// walker2 checks schema-2 journal entries in order, from the checkpoint on.
type walker2 struct {
	prev sum    // the hash the next entry must name
	want uint64 // the number the next entry must have
	cp   uint64 // the checkpoint, for messages
}

func newWalker2(tx *bbolt.Tx) (*walker2, error) {
	cp, s, err := checkpoint(tx)
	if err != nil {
		return nil, err
	}
	return &walker2{prev: s, want: cp + 1, cp: cp}, nil
}

// step checks the entry stored under key k and, when it is sound, moves
// the walker2 past it. It returns the entry's link, its JSON and its hash.
func (w *walker2) step(k, v []byte) (l link2, body []byte, s sum, brk *store.ChainError) {
	if len(k) != 8 {
		return link2{}, nil, sum{}, &store.ChainError{Problem: store.ChainExtra, Entry: w.want,
			Detail: fmt.Sprintf("the journal holds a key of %d bytes after entry %d: the store never wrote it", len(k), w.want-1)}
	}
	seq := binary.BigEndian.Uint64(k)
	switch {
	case seq < w.want:
		return link2{}, nil, sum{}, &store.ChainError{Problem: store.ChainExtra, Entry: seq,
			Detail: fmt.Sprintf("entry %d lies at or before the checkpoint the last prune left (entry %d): the store never wrote it there", seq, w.cp)}
	case seq == w.want+1:
		return link2{}, nil, sum{}, &store.ChainError{Problem: store.ChainMissing, Entry: w.want,
			Detail: fmt.Sprintf("entry %d is missing: the journal goes from %s to entry %d", w.want, w.before(), seq)}
	case seq > w.want:
		return link2{}, nil, sum{}, &store.ChainError{Problem: store.ChainMissing, Entry: w.want,
			Detail: fmt.Sprintf("entries %d to %d are missing: the journal goes from %s to entry %d", w.want, seq-1, w.before(), seq)}
	}
	if len(v) < entryHeader2 {
		return link2{}, nil, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: seq,
			Detail: fmt.Sprintf("entry %d is %d bytes, too short to hold its number and hash: it was altered", seq, len(v))}
	}
	stored := binary.BigEndian.Uint64(v)
	body = v[entryHeader2:]
	l, prev, err := readLink2(body)
	if err != nil {
		return link2{}, nil, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: seq,
			Detail: fmt.Sprintf("entry %d does not hold a readable record (%v): it was altered", seq, err)}
	}
	s = entryHash2(prev, stored, body)
	if !bytes.Equal(s[:], v[8:entryHeader2]) {
		return link2{}, nil, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: seq, Record: l.ID,
			Detail: fmt.Sprintf("entry %d (record %d) was altered: its contents no longer match the hash it was written with", seq, l.ID)}
	}
	if stored != seq {
		return link2{}, nil, sum{}, &store.ChainError{Problem: store.ChainReordered, Entry: seq, Record: l.ID,
			Detail: fmt.Sprintf("position %d of the journal holds entry %d (record %d): entries were reordered or moved", seq, stored, l.ID)}
	}
	if prev != w.prev {
		return link2{}, nil, sum{}, &store.ChainError{Problem: store.ChainBrokenLink, Entry: seq, Record: l.ID,
			Detail: fmt.Sprintf("entry %d (record %d) names %s as its predecessor, but %s hashes to %s: "+
				"the entry before it was replaced with its hash recomputed, or this entry's link was", seq, l.ID, short(prev), w.before(), short(w.prev))}
	}
	if l.ID == 0 {
		return link2{}, nil, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: seq,
			Detail: fmt.Sprintf("entry %d holds a record without an ID: it was altered", seq)}
	}
	w.prev, w.want = s, seq+1
	return l, body, s, nil
}

func (w *walker2) before() string {
	switch {
	case w.want-1 > w.cp:
		return fmt.Sprintf("entry %d", w.want-1)
	case w.cp > 0:
		return fmt.Sprintf("the checkpoint (entry %d)", w.cp)
	default:
		return "the start of the chain"
	}
}

// finish checks that no entry is missing from the end of the journal: its
// sequence counts every entry ever appended.
func (w *walker2) finish(tx *bbolt.Tx) *store.ChainError {
	last, written := w.want-1, tx.Bucket(bucketJournal).Sequence()
	switch {
	case written == last+1:
		return &store.ChainError{Problem: store.ChainMissing, Entry: written,
			Detail: fmt.Sprintf("entry %d, the last one written, is missing from the end of the journal", written)}
	case written > last:
		return &store.ChainError{Problem: store.ChainMissing, Entry: last + 1,
			Detail: fmt.Sprintf("entries %d to %d, the last ones written, are missing from the end of the journal", last+1, written)}
	case written < last:
		return &store.ChainError{Problem: store.ChainExtra, Entry: written + 1,
			Detail: fmt.Sprintf("the journal goes on past entry %d, the last one the store wrote, to entry %d", written, last)}
	}
	return nil
}

// latestEntry2 is where a record's current state sits in the journal.
type latestEntry2 struct {
	seq  uint64
	sum  sum
	gone bool // the entry is a tombstone: the record must be absent
}

// verify walks the chain in tx and checks every record against its latest
// entry. onRecord, when not nil, sees every record that checks out. It
// returns the first break, or an error when it could not finish.
func verify2(ctx context.Context, tx *bbolt.Tx, onRecord func(id uint64, body []byte) error) (store.VerifyReport, *store.ChainError, error) {
	var rep store.VerifyReport
	w, err := newWalker2(tx)
	if err != nil {
		return rep, nil, err
	}
	rep.Checkpoint = w.cp
	rep.Head, rep.HeadHash = w.cp, hex.EncodeToString(w.prev[:])

	latest := make(map[uint64]latestEntry2)
	journal := tx.Bucket(bucketJournal)
	c := journal.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if rep.Entries%verifyChunk == 0 {
			if err := ctx.Err(); err != nil {
				return rep, nil, err
			}
		}
		l, _, s, brk := w.step(k, v)
		if brk != nil {
			return rep, brk, nil
		}
		seq := w.want - 1
		if at, ok := latest[l.ID]; ok && at.gone {
			return rep, &store.ChainError{Problem: store.ChainExtra, Entry: seq, Record: l.ID,
				Detail: fmt.Sprintf("entry %d writes record %d after entry %d said a prune removed it: the store never wrote it", seq, l.ID, at.seq)}, nil
		}
		latest[l.ID] = latestEntry2{seq, s, l.Pruned != ""}
		rep.Entries++
		rep.Head, rep.HeadHash = w.want-1, hex.EncodeToString(s[:])
	}
	if brk := w.finish(tx); brk != nil {
		return rep, brk, nil
	}

	// Records: the break reported is the one earliest in the journal.
	var first *store.ChainError
	firstAt := uint64(0)
	note := func(at uint64, brk *store.ChainError) {
		if first == nil || at < firstAt || (at == firstAt && brk.Record < first.Record) {
			first, firstAt = brk, at
		}
	}
	const noEntry = ^uint64(0)
	seen := 0
	rc := tx.Bucket(bucketRecords).Cursor()
	for k, v := rc.First(); k != nil; k, v = rc.Next() {
		if seen%verifyChunk == 0 {
			if err := ctx.Err(); err != nil {
				return rep, nil, err
			}
		}
		seen++
		if len(k) != 8 {
			note(noEntry, &store.ChainError{Problem: store.ChainExtra,
				Detail: fmt.Sprintf("the records hold a key of %d bytes (%x): the store never wrote it", len(k), k)})
			continue
		}
		id := binary.BigEndian.Uint64(k)
		at, ok := latest[id]
		if !ok {
			note(noEntry, &store.ChainError{Problem: store.ChainExtra, Record: id,
				Detail: fmt.Sprintf("record %d has no journal entry: it was added outside the store", id)})
			continue
		}
		delete(latest, id)
		if at.gone {
			note(at.seq, &store.ChainError{Problem: store.ChainExtra, Entry: at.seq, Record: id,
				Detail: fmt.Sprintf("record %d is in the store, but journal entry %d says a prune removed it: it was put back outside the store", id, at.seq)})
			continue
		}
		if brk := checkRecord2(id, at, v); brk != nil {
			note(at.seq, brk)
			continue
		}
		rep.Records++
		if onRecord != nil {
			if err := onRecord(id, v); err != nil {
				return rep, nil, err
			}
		}
	}
	for id, at := range latest {
		if at.gone {
			continue
		}
		note(at.seq, &store.ChainError{Problem: store.ChainMissing, Entry: at.seq, Record: id,
			Detail: fmt.Sprintf("record %d was removed: journal entry %d holds its latest state", id, at.seq)})
	}
	return rep, first, nil
}

// checkRecord2 compares a record with the state its latest entry holds.
func checkRecord2(id uint64, at latestEntry2, body []byte) *store.ChainError {
	l, prev, err := readLink2(body)
	if err != nil {
		return &store.ChainError{Problem: store.ChainAltered, Entry: at.seq, Record: id,
			Detail: fmt.Sprintf("record %d was altered: it no longer reads as a record (%v); journal entry %d holds its latest state", id, err, at.seq)}
	}
	if l.ID != id {
		return &store.ChainError{Problem: store.ChainReordered, Entry: at.seq, Record: id,
			Detail: fmt.Sprintf("record %d holds the contents of record %d: records were swapped or moved", id, l.ID)}
	}
	if entryHash2(prev, at.seq, body) == at.sum {
		return nil
	}
	return &store.ChainError{Problem: store.ChainAltered, Entry: at.seq, Record: id,
		Detail: fmt.Sprintf("record %d was altered: it differs from its latest journal entry %d", id, at.seq)}
}

// upgradeFrom1 starts the audit chain of a file written before it: every
// record (audit.Record's JSON form, without a link), in ID order, becomes
// the first entries of the journal.
func upgradeFrom1(tx *bbolt.Tx) error {
	if err := createNewBuckets(tx); err != nil {
		return err
	}
	if _, err := tx.CreateBucket(bucketJournal); err != nil {
		return err
	}
	ids, err := recordIDs(tx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		r, err := decodeRecord2(id, tx.Bucket(bucketRecords).Get(u64(id)))
		if err != nil {
			return err
		}
		if err := putRecord(tx, r); err != nil {
			return err
		}
	}
	return reindex(tx)
}

// upgradeFrom2 rewrites a schema-2 file in place, in the transaction of
// the read-write Open that found it. It first verifies the old chain and
// refuses, with the *store.ChainError, one that is broken: the rewrite
// would destroy the evidence. Then every journal entry becomes an entry of
// the new form under the same number, chained from the same checkpoint,
// the state it held encoded as a record is now; every record is encoded
// anew (its entry names the same state); the indexes schema 3 added are
// built; and meta "schema2head" keeps the old chain's head (entry number
// and hash), so that a head noted before the upgrade can still be matched.
func upgradeFrom2(tx *bbolt.Tx) error {
	rep, brk, err := verify2(context.Background(), tx, nil)
	if err != nil {
		return err
	}
	if brk != nil {
		return fmt.Errorf("refusing to upgrade a chain that does not verify (open it read-only with the Keybrake that wrote it to see more): %w", brk)
	}
	old, err := hex.DecodeString(rep.HeadHash)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketMeta).Put([]byte("schema2head"), append(u64(rep.Head), old...)); err != nil {
		return err
	}
	if err := createNewBuckets(tx); err != nil {
		return err
	}
	w, err := newWalker(tx)
	if err != nil {
		return err
	}
	prev := w.prev
	journal, records := appendOnly(tx, bucketJournal), recordsBucket(tx)
	d := newDict(tx)
	// Entries are rewritten a chunk at a time: a cursor must not walk a
	// bucket while it is written.
	type rewrite struct {
		seq  uint64
		body []byte
	}
	var (
		chunk []rewrite
		after uint64
	)
	for {
		chunk = chunk[:0]
		c := journal.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(chunk) < verifyChunk; k, v = c.Next() {
			chunk = append(chunk, rewrite{binary.BigEndian.Uint64(k), append([]byte(nil), v[entryHeader2:]...)})
		}
		if len(chunk) == 0 {
			break
		}
		for _, e := range chunk {
			l, _, err := readLink2(e.body)
			if err != nil {
				return corrupt("journal entry %d: %v", e.seq, err)
			}
			var entry []byte
			if l.Pruned != "" {
				cut, err := time.Parse(time.RFC3339Nano, l.Pruned)
				if err != nil {
					return corrupt("journal entry %d: %v", e.seq, err)
				}
				entry = newEntry(prev, e.seq, kindTombstone, l.ID, u64(timeOrder(cut)^(1<<63)))
			} else {
				r, err := decodeRecord2(l.ID, e.body)
				if err != nil {
					return err
				}
				// The record as it stands is the state its latest entry
				// holds, byte for byte: verify2 checked it.
				latest := bytes.Equal(records.Get(u64(l.ID)), e.body)
				r.PrevHash = ""
				b, err := encodeRecord(d, r, e.seq)
				if err != nil {
					return fmt.Errorf("journal entry %d: %w", e.seq, err)
				}
				state := sha256.Sum256(b)
				entry = newEntry(prev, e.seq, kindState, l.ID, state[:])
				if latest {
					if err := records.Put(u64(l.ID), b); err != nil {
						return err
					}
				}
			}
			copy(prev[:], entry[8:entryHeader])
			if err := journal.Put(u64(e.seq), entry); err != nil {
				return err
			}
			after = e.seq
		}
	}
	ids, err := recordIDs(tx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, _, err := recordHeader(records.Get(u64(id))); err != nil {
			return corrupt("record %d was not rewritten: %v", id, err)
		}
	}
	return reindex(tx)
}

// createNewBuckets creates the buckets the schema versions after 2 added.
func createNewBuckets(tx *bbolt.Tx) error {
	for _, names := range [][][]byte{buckets3, buckets4} {
		for _, name := range names {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
	}
	return nil
}

func recordIDs(tx *bbolt.Tx) ([]uint64, error) {
	var ids []uint64
	err := tx.Bucket(bucketRecords).ForEach(func(k, _ []byte) error {
		if len(k) != 8 {
			return corrupt("record key is %d bytes", len(k))
		}
		ids = append(ids, binary.BigEndian.Uint64(k))
		return nil
	})
	return ids, err
}

// reindex builds what schema 3 added beside the records: the agent index,
// the unknown bucket, and idempotency keys in their compact form.
func reindex(tx *bbolt.Tx) error {
	ids, err := recordIDs(tx)
	if err != nil {
		return err
	}
	d := newDict(tx)
	for _, id := range ids {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		agent, err := d.intern(r.Agent)
		if err != nil {
			return err
		}
		if err := appendOnly(tx, bucketAgent).Put(agentKey(agent, r.Time, r.ID), nil); err != nil {
			return err
		}
		if r.Outcome == audit.Unknown {
			if err := tx.Bucket(bucketUnknown).Put(u64(id), nil); err != nil {
				return err
			}
		}
	}
	type kv struct{ k, v []byte }
	var keys []kv
	idem := tx.Bucket(bucketIdem)
	if err := idem.ForEach(func(k, v []byte) error {
		keys = append(keys, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
		return nil
	}); err != nil {
		return err
	}
	for _, e := range keys {
		if err := idem.Delete(e.k); err != nil {
			return err
		}
	}
	for _, e := range keys {
		if len(e.v) < 8 {
			return corrupt("idempotency entry %q is %d bytes", e.k, len(e.v))
		}
		k, err := idemKey(d, string(e.k), true)
		if err != nil {
			return err
		}
		if err := idem.Put(k, encodeIndex(binary.BigEndian.Uint64(e.v), string(e.v[8:]))); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion))
}

// decodeRecord2 reads a record of schema version 1 or 2: audit.Record's
// JSON form.
func decodeRecord2(id uint64, b []byte) (*audit.Record, error) {
	r := new(audit.Record)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, corrupt("record %d: %v", id, err)
	}
	if r.ID != id {
		return nil, corrupt("record under key %d says it is %d", id, r.ID)
	}
	return r, nil
}
