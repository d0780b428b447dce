package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// A journal entry is stored under its big-endian sequence number as
//
//	seq (8 bytes) | hash (32 bytes) | JSON
//
// where hash = SHA-256(previous entry's hash | seq | JSON) and the JSON's
// "prev" is the previous entry's hash in hex. The JSON is a record's new
// state, or a tombstone, {"id":N,"pruned":"<cutoff>","prev":"..."}, for a
// record Prune removed before the cut reached its latest entry. The
// sequence is written twice so that an entry moved to another key shows as
// moved, not merely altered.
const entryHeader = 8 + sha256.Size

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

// head is the hash the next entry links to: the last entry's, or the
// checkpoint's when a Prune removed every entry. The journal's sequence
// numbers the last entry; a Get finds it without a cursor (and bbolt's
// Cursor.Last never returns on a bucket whose every leaf was emptied in
// the same transaction, as a Prune can leave it).
func head(tx *bbolt.Tx) (sum, error) {
	j := tx.Bucket(bucketJournal)
	last := j.Sequence()
	if v := j.Get(u64(last)); v != nil {
		if len(v) < entryHeader {
			return sum{}, corrupt("journal entry %d, the head of the audit chain, is %d bytes", last, len(v))
		}
		var s sum
		copy(s[:], v[8:entryHeader])
		return s, nil
	}
	cp, s, err := checkpoint(tx)
	if err != nil {
		return sum{}, err
	}
	if cp != last {
		return sum{}, corrupt("journal entry %d, the head of the audit chain, is missing (the checkpoint is entry %d); run Verify", last, cp)
	}
	return s, nil
}

// stamp sets r.PrevHash to the chain's head, the entry r's next state will
// follow, and returns that hash for appendEntry. Nothing may be appended
// between the two calls.
func stamp(tx *bbolt.Tx, r *audit.Record) (sum, error) {
	prev, err := head(tx)
	if err != nil {
		return sum{}, err
	}
	r.PrevHash = hex.EncodeToString(prev[:])
	return prev, nil
}

// appendEntry writes a record's new state, body (its JSON, stamped with
// prev), as the next journal entry and as the record itself: the one
// extra put the chain costs a write.
func appendEntry(tx *bbolt.Tx, id uint64, prev sum, body []byte) error {
	if err := appendJournal(tx, prev, body); err != nil {
		return err
	}
	return tx.Bucket(bucketRecords).Put(u64(id), body)
}

// appendJournal appends body, which names prev, as the next entry.
func appendJournal(tx *bbolt.Tx, prev sum, body []byte) error {
	j := tx.Bucket(bucketJournal)
	seq, err := j.NextSequence()
	if err != nil {
		return err
	}
	s := entryHash(prev, seq, body)
	v := make([]byte, entryHeader+len(body))
	binary.BigEndian.PutUint64(v, seq)
	copy(v[8:], s[:])
	copy(v[entryHeader:], body)
	return j.Put(u64(seq), v)
}

// link is what an entry or a record says about its place in the chain.
type link struct {
	ID   uint64 `json:"id"`
	Prev string `json:"prev"`
	// Pruned, in a tombstone only, is the cutoff of the Prune that
	// removed the record.
	Pruned string `json:"pruned,omitempty"`
}

const (
	linkHead = `{"id":`
	linkPrev = `,"prev":"`
	linkTail = `"}`
)

// quickLink reads a body of the shape the store writes; ok is false for
// any other, which readLink then hands to encoding/json.
func quickLink(body []byte) (l link, prev sum, ok bool) {
	n := len(body)
	if !bytes.HasPrefix(body, []byte(linkHead)) || !bytes.HasSuffix(body, []byte(linkTail)) ||
		n < len(linkHead)+1+len(linkPrev)+2*len(prev)+len(linkTail) {
		return link{}, prev, false
	}
	digits := body[len(linkHead):]
	i := 0
	for i < len(digits) && i <= 20 && '0' <= digits[i] && digits[i] <= '9' {
		i++
	}
	if i == 0 || i > 20 || i >= len(digits) || digits[i] != ',' || bytes.HasPrefix(digits[i+1:], []byte(`"pruned"`)) {
		return link{}, prev, false
	}
	id, err := strconv.ParseUint(string(digits[:i]), 10, 64)
	if err != nil {
		return link{}, prev, false
	}
	h := body[n-len(linkTail)-2*len(prev) : n-len(linkTail)]
	if !bytes.HasSuffix(body[:n-len(linkTail)-len(h)], []byte(linkPrev)) {
		return link{}, prev, false
	}
	if _, err := hex.Decode(prev[:], h); err != nil {
		return link{}, prev, false
	}
	return link{ID: id, Prev: string(h)}, prev, true
}

// tombstone is the entry that says a record was pruned.
func tombstone(id uint64, before time.Time, prev sum) ([]byte, error) {
	return json.Marshal(link{ID: id, Pruned: before.UTC().Format(time.RFC3339Nano), Prev: hex.EncodeToString(prev[:])})
}

// readLink reads an entry's or record's link. The store writes "id"
// first and "prev" last; reading those directly saves Verify most of its
// time. Anything else (a tombstone, a body someone edited) goes through
// encoding/json.
func readLink(body []byte) (link, sum, error) {
	if l, prev, ok := quickLink(body); ok {
		return l, prev, nil
	}
	var l link
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
// the walker past it. It returns the entry's link, its JSON and its hash.
func (w *walker) step(k, v []byte) (l link, body []byte, s sum, brk *store.ChainError) {
	if len(k) != 8 {
		return link{}, nil, sum{}, &store.ChainError{Problem: store.ChainExtra, Entry: w.want,
			Detail: fmt.Sprintf("the journal holds a key of %d bytes after entry %d: the store never wrote it", len(k), w.want-1)}
	}
	seq := binary.BigEndian.Uint64(k)
	switch {
	case seq < w.want:
		return link{}, nil, sum{}, &store.ChainError{Problem: store.ChainExtra, Entry: seq,
			Detail: fmt.Sprintf("entry %d lies at or before the checkpoint the last prune left (entry %d): the store never wrote it there", seq, w.cp)}
	case seq == w.want+1:
		return link{}, nil, sum{}, &store.ChainError{Problem: store.ChainMissing, Entry: w.want,
			Detail: fmt.Sprintf("entry %d is missing: the journal goes from %s to entry %d", w.want, w.before(), seq)}
	case seq > w.want:
		return link{}, nil, sum{}, &store.ChainError{Problem: store.ChainMissing, Entry: w.want,
			Detail: fmt.Sprintf("entries %d to %d are missing: the journal goes from %s to entry %d", w.want, seq-1, w.before(), seq)}
	}
	if len(v) < entryHeader {
		return link{}, nil, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: seq,
			Detail: fmt.Sprintf("entry %d is %d bytes, too short to hold its number and hash: it was altered", seq, len(v))}
	}
	stored := binary.BigEndian.Uint64(v)
	body = v[entryHeader:]
	l, prev, err := readLink(body)
	if err != nil {
		return link{}, nil, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: seq,
			Detail: fmt.Sprintf("entry %d does not hold a readable record (%v): it was altered", seq, err)}
	}
	s = entryHash(prev, stored, body)
	if !bytes.Equal(s[:], v[8:entryHeader]) {
		return link{}, nil, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: seq, Record: l.ID,
			Detail: fmt.Sprintf("entry %d (record %d) was altered: its contents no longer match the hash it was written with", seq, l.ID)}
	}
	if stored != seq {
		return link{}, nil, sum{}, &store.ChainError{Problem: store.ChainReordered, Entry: seq, Record: l.ID,
			Detail: fmt.Sprintf("position %d of the journal holds entry %d (record %d): entries were reordered or moved", seq, stored, l.ID)}
	}
	if prev != w.prev {
		return link{}, nil, sum{}, &store.ChainError{Problem: store.ChainBrokenLink, Entry: seq, Record: l.ID,
			Detail: fmt.Sprintf("entry %d (record %d) names %s as its predecessor, but %s hashes to %s: "+
				"the entry before it was replaced with its hash recomputed, or this entry's link was", seq, l.ID, short(prev), w.before(), short(w.prev))}
	}
	if l.ID == 0 {
		return link{}, nil, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: seq,
			Detail: fmt.Sprintf("entry %d holds a record without an ID: it was altered", seq)}
	}
	w.prev, w.want = s, seq+1
	return l, body, s, nil
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

// finish checks that no entry is missing from the end of the journal: its
// sequence counts every entry ever appended.
func (w *walker) finish(tx *bbolt.Tx) *store.ChainError {
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

// latestEntry is where a record's current state sits in the journal.
type latestEntry struct {
	seq  uint64
	sum  sum
	gone bool // the entry is a tombstone: the record must be absent
}

// verifyChunk is how many entries Verify checks between looks at ctx.
const verifyChunk = 1024

// verify walks the chain in tx and checks every record against its latest
// entry. onRecord, when not nil, sees every record that checks out. It
// returns the first break, or an error when it could not finish.
func verify(ctx context.Context, tx *bbolt.Tx, onRecord func(id uint64, body []byte) error) (store.VerifyReport, *store.ChainError, error) {
	var rep store.VerifyReport
	w, err := newWalker(tx)
	if err != nil {
		return rep, nil, err
	}
	rep.Checkpoint = w.cp
	rep.Head, rep.HeadHash = w.cp, hex.EncodeToString(w.prev[:])

	latest := make(map[uint64]latestEntry)
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
		latest[l.ID] = latestEntry{seq, s, l.Pruned != ""}
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
		if brk := checkRecord(journal, id, at, v); brk != nil {
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

// checkRecord compares a record with the state its latest entry holds.
func checkRecord(journal *bbolt.Bucket, id uint64, at latestEntry, body []byte) *store.ChainError {
	l, prev, err := readLink(body)
	if err != nil {
		return &store.ChainError{Problem: store.ChainAltered, Entry: at.seq, Record: id,
			Detail: fmt.Sprintf("record %d was altered: it no longer reads as a record (%v); journal entry %d holds its latest state", id, err, at.seq)}
	}
	if l.ID != id {
		return &store.ChainError{Problem: store.ChainReordered, Entry: at.seq, Record: id,
			Detail: fmt.Sprintf("record %d holds the contents of record %d: records were swapped or moved", id, l.ID)}
	}
	if entryHash(prev, at.seq, body) == at.sum {
		return nil
	}
	detail := fmt.Sprintf("record %d was altered: it differs from its latest journal entry %d", id, at.seq)
	if v := journal.Get(u64(at.seq)); len(v) >= entryHeader {
		if fields := differingFields(v[entryHeader:], body); len(fields) > 0 {
			detail += " in " + strings.Join(fields, ", ")
		}
	}
	return &store.ChainError{Problem: store.ChainAltered, Entry: at.seq, Record: id, Detail: detail}
}

// differingFields names the JSON fields in which two records differ, for
// a person reading a ChainError.
func differingFields(want, got []byte) []string {
	var w, g map[string]json.RawMessage
	if json.Unmarshal(want, &w) != nil || json.Unmarshal(got, &g) != nil {
		return nil
	}
	var out []string
	for k, v := range w {
		if gv, ok := g[k]; !ok || !bytes.Equal(v, gv) {
			out = append(out, k)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Verify implements store.Store. It reads the whole chain in one read
// transaction, so it sees one consistent state while writes go on, and it
// keeps one small entry per record in memory (about 100 bytes). It works
// on a store opened with Options.ReadOnly.
func (s *Store) Verify(ctx context.Context) (store.VerifyReport, error) {
	var (
		rep store.VerifyReport
		brk *store.ChainError
	)
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		rep, brk, err = verify(ctx, tx, nil)
		return err
	})
	if err != nil {
		return rep, err
	}
	if brk != nil {
		return rep, brk
	}
	return rep, nil
}
