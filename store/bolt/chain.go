package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// A journal entry is stored under its big-endian sequence number as
//
//	seq (8) | hash (32) | link (8) | kind (1) | uvarint record ID | payload
//
// body is everything after link; hash = SHA-256(previous entry's hash |
// seq | body), and link is the first 8 bytes of the previous entry's hash.
// Kind 's' is a state: the payload is the SHA-256 of the record as the
// records bucket holds it. Kind 't' is a tombstone, for a record Prune
// removed before the cut reached its latest entry: the payload is the
// cutoff, int64 unix nanoseconds. The hash chains the entries; link only
// tells a broken link (the entry before was replaced, its hash recomputed)
// from an entry altered itself. The sequence is written twice so that an
// entry moved to another key shows as moved, not merely altered.
const (
	entryHeader = 8 + sha256.Size
	entryBody   = entryHeader + 8

	kindState     byte = 's'
	kindTombstone byte = 't'
)

type sum = [sha256.Size]byte

func entryHash(prev sum, seq uint64, body []byte) sum {
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

// checkpoint returns the last entry a Prune removed: its number and hash.
// A store never pruned has none: entry 0 and a zero hash, which the first
// entry names as its predecessor.
func checkpoint(tx *bbolt.Tx) (uint64, sum, error) {
	v := tx.Bucket(bucketMeta).Get(keyCheckpoint)
	if v == nil {
		return 0, sum{}, nil
	}
	if len(v) != entryHeader {
		return 0, sum{}, corrupt("checkpoint is %d bytes, want %d", len(v), entryHeader)
	}
	var s sum
	copy(s[:], v[8:])
	return binary.BigEndian.Uint64(v), s, nil
}

func putCheckpoint(tx *bbolt.Tx, seq uint64, s sum) error {
	v := make([]byte, entryHeader)
	binary.BigEndian.PutUint64(v, seq)
	copy(v[8:], s[:])
	return tx.Bucket(bucketMeta).Put(keyCheckpoint, v)
}

// entrySum is the hash entry seq was written with: the journal's, or the
// checkpoint's when a Prune cut the entry. ok is false when neither holds
// it.
func entrySum(tx *bbolt.Tx, seq uint64) (s sum, ok bool, err error) {
	if seq == 0 {
		return sum{}, true, nil
	}
	if v := tx.Bucket(bucketJournal).Get(u64(seq)); v != nil {
		if len(v) < entryHeader {
			return sum{}, false, corrupt("journal entry %d is %d bytes", seq, len(v))
		}
		copy(s[:], v[8:entryHeader])
		return s, true, nil
	}
	cp, cs, err := checkpoint(tx)
	if err != nil || cp != seq {
		return sum{}, false, err
	}
	return cs, true, nil
}

// head is the hash the next entry links to: the last entry's, or the
// checkpoint's when a Prune removed every entry. The journal's sequence
// numbers the last entry; a Get finds it without a cursor (and bbolt's
// Cursor.Last never returns on a bucket whose every leaf was emptied in
// the same transaction, as a Prune can leave it).
func head(tx *bbolt.Tx) (sum, error) {
	last := tx.Bucket(bucketJournal).Sequence()
	s, ok, err := entrySum(tx, last)
	if err != nil {
		return sum{}, corrupt("journal entry %d, the head of the audit chain: %v", last, err)
	}
	if !ok {
		cp, _, _ := checkpoint(tx)
		return sum{}, corrupt("journal entry %d, the head of the audit chain, is missing (the checkpoint is entry %d); run Verify", last, cp)
	}
	return s, nil
}

// putRecord writes r's new state: the next journal entry, and the record
// itself. An existing record's Time and Agent must not have changed: the
// indexes keep pointing at it.
func putRecord(tx *bbolt.Tx, r *audit.Record) error {
	prev, err := head(tx)
	if err != nil {
		return err
	}
	j := appendOnly(tx, bucketJournal)
	seq, err := j.NextSequence()
	if err != nil {
		return err
	}
	r.PrevHash = ""
	b, err := encodeRecord(newDict(tx), r, seq)
	if err != nil {
		return fmt.Errorf("store/bolt: record %d: %w", r.ID, err)
	}
	r.PrevHash = hex.EncodeToString(prev[:])
	state := sha256.Sum256(b)
	if err := j.Put(u64(seq), newEntry(prev, seq, kindState, r.ID, state[:])); err != nil {
		return err
	}
	return recordsBucket(tx).Put(u64(r.ID), b)
}

// appendTombstone appends the entry that says record id is gone.
func appendTombstone(tx *bbolt.Tx, id uint64, before time.Time) error {
	prev, err := head(tx)
	if err != nil {
		return err
	}
	j := appendOnly(tx, bucketJournal)
	seq, err := j.NextSequence()
	if err != nil {
		return err
	}
	return j.Put(u64(seq), newEntry(prev, seq, kindTombstone, id, u64(timeOrder(before)^(1<<63))))
}

func newEntry(prev sum, seq uint64, kind byte, id uint64, payload []byte) []byte {
	v := make([]byte, entryBody, entryBody+1+binary.MaxVarintLen64+len(payload))
	v = append(v, kind)
	v = binary.AppendUvarint(v, id)
	v = append(v, payload...)
	s := entryHash(prev, seq, v[entryBody:])
	binary.BigEndian.PutUint64(v, seq)
	copy(v[8:], s[:])
	copy(v[entryHeader:], prev[:8])
	return v
}

// entry is what Verify reads of a journal entry.
type entry struct {
	kind  byte
	id    uint64
	state sum       // kindState: the hash of the record's state
	cut   time.Time // kindTombstone: the cutoff of the Prune that removed the record
}

func parseEntry(body []byte) (entry, error) {
	var e entry
	if len(body) < 2 {
		return e, fmt.Errorf("%d bytes", len(body))
	}
	e.kind = body[0]
	id, n := binary.Uvarint(body[1:])
	if n <= 0 {
		return e, fmt.Errorf("no record ID")
	}
	e.id, body = id, body[1+n:]
	switch {
	case e.kind == kindState && len(body) == sha256.Size:
		copy(e.state[:], body)
	case e.kind == kindTombstone && len(body) == 8:
		e.cut = time.Unix(0, int64(binary.BigEndian.Uint64(body))).UTC()
	default:
		return e, fmt.Errorf("kind %q with %d bytes", e.kind, len(body))
	}
	return e, nil
}

// short shows the start of a hash, enough for a person to compare.
func short(s sum) string { return hex.EncodeToString(s[:6]) }

// walker checks journal entries in order, from the checkpoint on. Verify
// and Prune share it.
type walker struct {
	prev sum    // the hash the next entry must name
	want uint64 // the number the next entry must have
	cp   uint64 // the checkpoint, for messages
}

func newWalker(tx *bbolt.Tx) (*walker, error) {
	cp, s, err := checkpoint(tx)
	if err != nil {
		return nil, err
	}
	return &walker{prev: s, want: cp + 1, cp: cp}, nil
}

// step checks the entry stored under key k and, when it is sound, moves
// the walker past it. It returns the entry and its hash.
func (w *walker) step(k, v []byte) (e entry, s sum, brk *store.ChainError) {
	if len(k) != 8 {
		return e, s, &store.ChainError{Problem: store.ChainExtra, Entry: w.want,
			Detail: fmt.Sprintf("the journal holds a key of %d bytes after entry %d: the store never wrote it", len(k), w.want-1)}
	}
	seq := binary.BigEndian.Uint64(k)
	switch {
	case seq < w.want:
		return e, s, &store.ChainError{Problem: store.ChainExtra, Entry: seq,
			Detail: fmt.Sprintf("entry %d lies at or before the checkpoint the last prune left (entry %d): the store never wrote it there", seq, w.cp)}
	case seq == w.want+1:
		return e, s, &store.ChainError{Problem: store.ChainMissing, Entry: w.want,
			Detail: fmt.Sprintf("entry %d is missing: the journal goes from %s to entry %d", w.want, w.before(), seq)}
	case seq > w.want:
		return e, s, &store.ChainError{Problem: store.ChainMissing, Entry: w.want,
			Detail: fmt.Sprintf("entries %d to %d are missing: the journal goes from %s to entry %d", w.want, seq-1, w.before(), seq)}
	}
	if len(v) < entryBody {
		return e, s, &store.ChainError{Problem: store.ChainAltered, Entry: seq,
			Detail: fmt.Sprintf("entry %d is %d bytes, too short to hold its number and hash: it was altered", seq, len(v))}
	}
	stored, body := binary.BigEndian.Uint64(v), v[entryBody:]
	e, err := parseEntry(body)
	if err != nil {
		return e, s, &store.ChainError{Problem: store.ChainAltered, Entry: seq,
			Detail: fmt.Sprintf("entry %d does not read as an entry (%v): it was altered", seq, err)}
	}
	if stored != seq {
		return e, s, &store.ChainError{Problem: store.ChainReordered, Entry: seq, Record: e.id,
			Detail: fmt.Sprintf("position %d of the journal holds entry %d (record %d): entries were reordered or moved", seq, stored, e.id)}
	}
	s = entryHash(w.prev, seq, body)
	if !bytes.Equal(s[:], v[8:entryHeader]) {
		if bytes.Equal(v[entryHeader:entryBody], w.prev[:8]) {
			return e, s, &store.ChainError{Problem: store.ChainAltered, Entry: seq, Record: e.id,
				Detail: fmt.Sprintf("entry %d (record %d) was altered: its contents no longer match the hash it was written with", seq, e.id)}
		}
		return e, s, &store.ChainError{Problem: store.ChainBrokenLink, Entry: seq, Record: e.id,
			Detail: fmt.Sprintf("entry %d (record %d) names %x… as its predecessor, but %s hashes to %s: "+
				"the entry before it was replaced with its hash recomputed, or this entry's link was", seq, e.id, v[entryHeader:entryHeader+6], w.before(), short(w.prev))}
	}
	if e.id == 0 {
		return e, s, &store.ChainError{Problem: store.ChainAltered, Entry: seq,
			Detail: fmt.Sprintf("entry %d holds a record without an ID: it was altered", seq)}
	}
	w.prev, w.want = s, seq+1
	return e, s, nil
}

func (w *walker) before() string {
	switch {
	case w.want-1 > w.cp:
		return fmt.Sprintf("entry %d", w.want-1)
	case w.cp > 0:
		return fmt.Sprintf("the checkpoint (entry %d)", w.cp)
	default:
		return "the start of the chain"
	}
}

// finish checks that no entry is missing from the end of the journal:
// written, its sequence when the walk began, counts every entry appended.
func (w *walker) finish(written uint64) *store.ChainError {
	last := w.want - 1
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

// latestEntry is where a record's current state sits in the journal.
type latestEntry struct {
	seq   uint64
	state sum
	gone  bool // the entry is a tombstone: the record must be absent
}

// verifyChunk is how many entries or records a verification checks
// between looks at ctx, and Prune's in one read transaction.
const verifyChunk = 1024

// verification is a walk of the chain up to head, the journal's last
// entry when it began, and then of the records, in as many read
// transactions as the caller likes: Verify uses one, Prune one a chunk.
// Entries are only ever appended (and cut by Prune, which holds pruneMu
// and runs the verification itself), so a walk across transactions sees
// every entry up to head as it was; a record whose latest entry is after
// head changed since the walk began and is left to the next verification.
type verification struct {
	rep    store.VerifyReport
	w      *walker
	head   uint64
	latest map[uint64]latestEntry
	// Records: the break reported is the one earliest in the journal.
	first   *store.ChainError
	firstAt uint64
	seen    int
}

func newVerification(tx *bbolt.Tx) (*verification, error) {
	w, err := newWalker(tx)
	if err != nil {
		return nil, err
	}
	v := &verification{w: w, head: tx.Bucket(bucketJournal).Sequence(), latest: make(map[uint64]latestEntry)}
	v.rep.Checkpoint = w.cp
	v.rep.Head, v.rep.HeadHash = w.cp, hex.EncodeToString(w.prev[:])
	return v, nil
}

// entries checks up to limit entries (0: all) from where the walk stands.
// done is true when it checked the last one.
func (v *verification) entries(ctx context.Context, tx *bbolt.Tx, limit int) (done bool, brk *store.ChainError, err error) {
	c := tx.Bucket(bucketJournal).Cursor()
	var k, val []byte
	if v.rep.Entries == 0 {
		k, val = c.First() // entries before the checkpoint show
	} else {
		k, val = c.Seek(u64(v.w.want))
	}
	for n := 0; k != nil; k, val = c.Next() {
		if len(k) == 8 && binary.BigEndian.Uint64(k) > v.head {
			break // appended since the walk began
		}
		if limit > 0 && n == limit {
			return false, nil, nil
		}
		if v.rep.Entries%verifyChunk == 0 {
			if err := ctx.Err(); err != nil {
				return false, nil, err
			}
		}
		e, s, brk := v.w.step(k, val)
		if brk != nil {
			return true, brk, nil
		}
		seq := v.w.want - 1
		if at, ok := v.latest[e.id]; ok && at.gone {
			return true, &store.ChainError{Problem: store.ChainExtra, Entry: seq, Record: e.id,
				Detail: fmt.Sprintf("entry %d writes record %d after entry %d said a prune removed it: the store never wrote it", seq, e.id, at.seq)}, nil
		}
		v.latest[e.id] = latestEntry{seq, e.state, e.kind == kindTombstone}
		v.rep.Entries++
		v.rep.Head, v.rep.HeadHash = seq, hex.EncodeToString(s[:])
		n++
	}
	return true, v.w.finish(v.head), nil
}

func (v *verification) note(at uint64, brk *store.ChainError) {
	if v.first == nil || at < v.firstAt || (at == v.firstAt && brk.Record < v.first.Record) {
		v.first, v.firstAt = brk, at
	}
}

// records checks up to limit records (0: all) from the key from on and
// returns the key to go on from, nil at the end.
func (v *verification) records(ctx context.Context, tx *bbolt.Tx, from []byte, limit int) ([]byte, error) {
	const noEntry = math.MaxUint64
	rc := tx.Bucket(bucketRecords).Cursor()
	var k, val []byte
	if from == nil {
		k, val = rc.First()
	} else {
		k, val = rc.Seek(from)
	}
	for n := 0; k != nil; k, val = rc.Next() {
		if limit > 0 && n == limit {
			return append([]byte(nil), k...), nil
		}
		n++
		if v.seen%verifyChunk == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		v.seen++
		if len(k) != 8 {
			v.note(noEntry, &store.ChainError{Problem: store.ChainExtra,
				Detail: fmt.Sprintf("the records hold a key of %d bytes (%x): the store never wrote it", len(k), k)})
			continue
		}
		id := binary.BigEndian.Uint64(k)
		if _, seq, err := recordHeader(val); err == nil && seq > v.head {
			delete(v.latest, id) // changed since the walk began
			continue
		}
		at, ok := v.latest[id]
		if !ok {
			v.note(noEntry, &store.ChainError{Problem: store.ChainExtra, Record: id,
				Detail: fmt.Sprintf("record %d has no journal entry: it was added outside the store", id)})
			continue
		}
		delete(v.latest, id)
		if at.gone {
			v.note(at.seq, &store.ChainError{Problem: store.ChainExtra, Entry: at.seq, Record: id,
				Detail: fmt.Sprintf("record %d is in the store, but journal entry %d says a prune removed it: it was put back outside the store", id, at.seq)})
			continue
		}
		if brk := checkRecord(id, at, val); brk != nil {
			v.note(at.seq, brk)
			continue
		}
		v.rep.Records++
	}
	return nil, nil
}

// end reports the first break among the records, once every record was
// checked: those the journal holds and the store does not are missing.
func (v *verification) end() *store.ChainError {
	for id, at := range v.latest {
		if at.gone {
			continue
		}
		v.note(at.seq, &store.ChainError{Problem: store.ChainMissing, Entry: at.seq, Record: id,
			Detail: fmt.Sprintf("record %d was removed: journal entry %d holds its latest state", id, at.seq)})
	}
	return v.first
}

// verify walks the chain in tx and checks every record against its latest
// entry. It returns the first break, or an error when it could not finish.
func verify(ctx context.Context, tx *bbolt.Tx) (store.VerifyReport, *store.ChainError, error) {
	v, err := newVerification(tx)
	if err != nil {
		return store.VerifyReport{}, nil, err
	}
	if _, brk, err := v.entries(ctx, tx, 0); err != nil || brk != nil {
		return v.rep, brk, err
	}
	if _, err := v.records(ctx, tx, nil, 0); err != nil {
		return v.rep, nil, err
	}
	return v.rep, v.end(), nil
}

// verifyInChunks is verify in read transactions of verifyChunk entries or
// records each, honouring ctx between them: no long read transaction.
func (s *Store) verifyInChunks(ctx context.Context) (store.VerifyReport, *store.ChainError, error) {
	var v *verification
	if err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		v, err = newVerification(tx)
		return err
	}); err != nil {
		return store.VerifyReport{}, nil, err
	}
	for done := false; !done; {
		var brk *store.ChainError
		if err := s.view(ctx, func(tx *bbolt.Tx) error {
			var err error
			done, brk, err = v.entries(ctx, tx, verifyChunk)
			return err
		}); err != nil || brk != nil {
			return v.rep, brk, err
		}
	}
	for from, started := []byte(nil), false; !started || from != nil; started = true {
		if err := s.view(ctx, func(tx *bbolt.Tx) error {
			var err error
			from, err = v.records(ctx, tx, from, verifyChunk)
			return err
		}); err != nil {
			return v.rep, nil, err
		}
	}
	return v.rep, v.end(), nil
}

// checkRecord compares a record with the state its latest entry holds.
func checkRecord(id uint64, at latestEntry, body []byte) *store.ChainError {
	rid, seq, err := recordHeader(body)
	if err != nil {
		return &store.ChainError{Problem: store.ChainAltered, Entry: at.seq, Record: id,
			Detail: fmt.Sprintf("record %d was altered: it no longer reads as a record (%v); journal entry %d holds its latest state", id, err, at.seq)}
	}
	if rid != id {
		return &store.ChainError{Problem: store.ChainReordered, Entry: at.seq, Record: id,
			Detail: fmt.Sprintf("record %d holds the contents of record %d: records were swapped or moved", id, rid)}
	}
	if sha256.Sum256(body) == at.state && seq == at.seq {
		return nil
	}
	detail := fmt.Sprintf("record %d was altered: it differs from its latest journal entry %d", id, at.seq)
	if seq != at.seq {
		detail += fmt.Sprintf(" (it says its latest entry is %d)", seq)
	}
	return &store.ChainError{Problem: store.ChainAltered, Entry: at.seq, Record: id, Detail: detail}
}

// Verify implements store.Store. It reads the whole chain in one read
// transaction, so it sees one consistent state while writes go on, and it
// keeps one small entry per record in memory (about 100 bytes). It works
// on a store opened with Options.ReadOnly. Close ends it (with
// store.ErrClosed) at its next 1024 entries or records rather than wait
// for it.
func (s *Store) Verify(ctx context.Context) (store.VerifyReport, error) {
	var (
		rep store.VerifyReport
		brk *store.ChainError
	)
	ctx, cancel := s.untilClose(ctx)
	defer cancel()
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		rep, brk, err = verify(ctx, tx)
		return err
	})
	if err != nil {
		return rep, s.closedErr(err)
	}
	if brk != nil {
		return rep, brk
	}
	return rep, nil
}
