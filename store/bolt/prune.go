package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// pruneChunk bounds the journal entries, or counters, one Prune
// transaction handles, so that reservations queued behind it wait for a
// few milliseconds, not for a whole day of records.
const pruneChunk = 1024

// prunePlan is what Prune decided in its first, read-only pass over a
// chain that verified.
type prunePlan struct {
	before time.Time
	now    time.Time
	// head is the last entry when the plan was made. The journal is never
	// cut past it, so entries Prune appends are never walked again.
	head uint64
	// candidates are the records to remove: finished (not Reserved or
	// Unknown), Time before the cutoff, and not needed by a kept
	// idempotency key.
	candidates map[uint64]struct{}
	// keys are the idempotency keys pointing at each candidate.
	keys map[uint64][]string
	// protected are the counters held by records still Reserved or
	// Unknown: never removed, whatever their day.
	protected map[string]bool
}

// stillCounted reports whether a record's money may still move: Prune
// keeps the record and the counters it holds.
func stillCounted(o audit.Outcome) bool { return o == audit.Reserved || o == audit.Unknown }

// Prune implements store.Store.
//
// It first verifies the whole chain (as Verify does, with its cost, but
// in read transactions of 1024 entries or records) and plans, in chunks
// too. Then it cuts the journal from its start, in transactions of at
// most 1024 entries queued with the other writes:
// an entry whose record has a later one, or whose record is gone, is
// dropped; a candidate's latest entry goes with the record, its time index
// entry and its idempotency keys; the latest entry of a record that stays
// although it is older than the cutoff (still Reserved or Unknown) or
// dated after Options.Now is carried forward. The cut stops at the latest
// entry of the first record younger than the cutoff, so records written
// in time order are never carried. A candidate whose latest entry lies
// beyond that point (an estimate reconciled late, an Unknown call retried
// later) is removed with a tombstone entry in its place; its earlier
// entries, and the tombstone, go when a later cut reaches them. Counters
// go next, then the window entries that left their windows (Time + Window
// not after before), 1024 a transaction each. With Options.ReadOnly Prune
// returns an error wrapping store.ErrReadOnly.
func (s *Store) Prune(ctx context.Context, before time.Time) (store.PruneReport, error) {
	var rep store.PruneReport
	if s.readOnly {
		return rep, fmt.Errorf("%w: %s", store.ErrReadOnly, s.path)
	}
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	ctx, cancel := s.untilClose(ctx)
	defer cancel()
	rep, err := s.prune(ctx, before)
	return rep, s.closedErr(err)
}

func (s *Store) prune(ctx context.Context, before time.Time) (store.PruneReport, error) {
	var rep store.PruneReport

	now := s.now()
	keyCutoff := now.Add(-store.KeyRetention)
	if before.Before(keyCutoff) {
		keyCutoff = before
	}
	plan, brk, err := s.makePlan(ctx, before, keyCutoff)
	if err != nil {
		return rep, err
	}
	if brk != nil {
		return rep, fmt.Errorf("store/bolt: refusing to prune a chain that does not verify: %w", brk)
	}
	plan.now = now

	add := func(res cutResult) {
		rep.Records += len(res.pruned)
		rep.Entries += res.entries
		rep.Carried += res.carried
		rep.IdempotencyKeys += res.keys
		for _, id := range res.pruned {
			delete(plan.candidates, id)
		}
	}
	for end := len(plan.candidates) == 0; !end; {
		var res cutResult
		err := s.write(ctx, func(tx *bbolt.Tx) error {
			var err error
			res, err = cut(tx, plan)
			return err
		})
		if err != nil {
			return rep, err
		}
		if res.brk != nil {
			return rep, fmt.Errorf("store/bolt: refusing to prune a chain that does not verify: %w", res.brk)
		}
		add(res)
		end = res.end
	}
	// What the cut did not reach goes now, leaving tombstones.
	late := make([]uint64, 0, len(plan.candidates))
	for id := range plan.candidates {
		late = append(late, id)
	}
	slices.Sort(late)
	for len(late) > 0 {
		batch := late[:min(len(late), pruneChunk)]
		late = late[len(batch):]
		var res cutResult
		err := s.write(ctx, func(tx *bbolt.Tx) error {
			var err error
			res, err = bury(tx, plan, batch)
			return err
		})
		if err != nil {
			return rep, err
		}
		add(res)
	}

	day := before.UTC().Format(time.DateOnly)
	n, err := s.writeChunks(ctx, func(tx *bbolt.Tx, from []byte) (int, []byte, error) {
		return pruneCounters(tx, plan.protected, day, from)
	})
	rep.Counters += n
	if err != nil {
		return rep, err
	}
	n, err = s.pruneWindows(ctx, before)
	rep.Windows += n
	if err != nil {
		return rep, err
	}
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		rep.Checkpoint, _, err = checkpoint(tx)
		return err
	})
	return rep, err
}

// makePlan verifies the chain and decides what Prune removes, in read
// transactions of at most pruneChunk entries, records or keys each, with
// ctx looked at between them: Close never waits on a long one. What
// changes meanwhile is decided again by cut and bury, which check each
// record in their own transactions.
func (s *Store) makePlan(ctx context.Context, before, keyCutoff time.Time) (*prunePlan, *store.ChainError, error) {
	p := &prunePlan{
		before:     before,
		candidates: make(map[uint64]struct{}),
		keys:       make(map[uint64][]string),
		protected:  make(map[string]bool),
	}
	rep, brk, err := s.verifyInChunks(ctx)
	if err != nil || brk != nil {
		return nil, brk, err
	}
	p.head = rep.Head
	// The records still counted are exactly those the pending and unknown
	// buckets list: few, whatever the log's length.
	err = s.Outstanding(ctx, func(r *audit.Record) error {
		for _, h := range r.Holds {
			if h.Window == 0 { // a window's entries leave by time alone
				p.protected[h.Key] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}

	// The records older than the cutoff, found through the time index.
	times := make(map[uint64]time.Time)
	end := timeOrder(before)
	err = s.inChunks(ctx, bucketTime, func(tx *bbolt.Tx, k, _ []byte) (bool, error) {
		if len(k) != 16 {
			return false, corrupt("time index key is %d bytes", len(k))
		}
		if binary.BigEndian.Uint64(k) > end { // clamped keys: Before decides at equality
			return false, nil
		}
		id := binary.BigEndian.Uint64(k[8:])
		body := tx.Bucket(bucketRecords).Get(k[8:])
		if body == nil {
			return false, corrupt("time index points at missing record %d", id)
		}
		r, _, err := decodeRecord(newDict(tx), id, body)
		if err != nil {
			return false, err
		}
		if !stillCounted(r.Outcome) && r.Time.Before(before) {
			p.candidates[id] = struct{}{}
			times[id] = r.Time
		}
		return true, nil
	})
	if err != nil || len(p.candidates) == 0 {
		return p, nil, err
	}
	// A key younger than keyCutoff keeps its record, so that a retry
	// still finds what it replays; an older one goes with its record.
	err = s.inChunks(ctx, bucketIdem, func(_ *bbolt.Tx, k, v []byte) (bool, error) {
		id, _, err := decodeIndex(k, v)
		if err != nil {
			return false, err
		}
		t, ok := times[id]
		switch {
		case !ok:
		case t.Before(keyCutoff):
			p.keys[id] = append(p.keys[id], string(k))
		default:
			delete(p.candidates, id)
		}
		return true, nil
	})
	return p, nil, err
}

// inChunks calls fn for the keys of a bucket in order, pruneChunk of them
// a read transaction, until fn returns false or the keys end.
func (s *Store) inChunks(ctx context.Context, bucket []byte, fn func(tx *bbolt.Tx, k, v []byte) (bool, error)) error {
	var from []byte
	for {
		more := false
		err := s.view(ctx, func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			k, v := c.First()
			if from != nil {
				if k, v = c.Seek(from); bytes.Equal(k, from) {
					k, v = c.Next()
				}
			}
			for n := 0; k != nil; k, v = c.Next() {
				if n == pruneChunk {
					more = true
					return nil
				}
				n++
				goOn, err := fn(tx, k, v)
				if err != nil || !goOn {
					return err
				}
				from = append(from[:0], k...)
			}
			return nil
		})
		if err != nil || !more {
			return err
		}
	}
}

// cutResult is what one Prune transaction did. cut and bury set every
// field on each run: the writer may apply them twice, the first time
// rolled back.
type cutResult struct {
	pruned  []uint64
	entries int
	carried int
	keys    int
	end     bool // the cut went as far as it goes for this plan
	brk     *store.ChainError
}

// What cut does with each entry it walks past.
const (
	stepDrop  = iota // a later entry of the record holds its state, or the record is gone
	stepPrune        // the record's latest entry: the record goes
	stepCarry        // the record's latest entry: the record stays, re-appended
)

type cutStep struct {
	seq  uint64
	what int
	rec  *audit.Record
}

// cut removes the next entries of the journal, up to pruneChunk of them,
// checking each link as it goes. It decides about every entry before it
// writes, so a break writes nothing.
func cut(tx *bbolt.Tx, p *prunePlan) (cutResult, error) {
	var res cutResult
	w, err := newWalker(tx)
	if err != nil {
		return res, err
	}
	records := tx.Bucket(bucketRecords)
	var (
		steps []cutStep
		met   int
		at    uint64 // the last entry cut, and its hash: the new checkpoint
		atSum sum
	)
	c := tx.Bucket(bucketJournal).Cursor()
	res.end = true
walk:
	for k, v := c.Seek(u64(w.want)); k != nil && met < len(p.candidates); k, v = c.Next() {
		if len(steps) == pruneChunk {
			res.end = false
			break
		}
		if len(k) == 8 && binary.BigEndian.Uint64(k) > p.head {
			break
		}
		e, s, brk := w.step(k, v)
		if brk != nil {
			res.brk = brk
			return res, nil
		}
		step := cutStep{seq: w.want - 1, what: stepDrop}
		var latest bool
		if cur := records.Get(u64(e.id)); e.kind == kindState && cur != nil {
			_, seq, err := recordHeader(cur)
			if err != nil {
				return res, corrupt("record %d: %v", e.id, err)
			}
			latest = seq == step.seq
			if latest && sha256.Sum256(cur) != e.state {
				res.brk = &store.ChainError{Problem: store.ChainAltered, Entry: step.seq, Record: e.id,
					Detail: fmt.Sprintf("record %d was altered: it differs from its latest journal entry %d", e.id, step.seq)}
				return res, nil
			}
		}
		if latest {
			r, err := getRecord(tx, e.id)
			if err != nil {
				return res, err
			}
			_, candidate := p.candidates[e.id]
			switch {
			case candidate && !stillCounted(r.Outcome) && r.Time.Before(p.before):
				step.what = stepPrune
				met++
			case r.Time.Before(p.before) || r.Time.After(p.now):
				step.what = stepCarry
			default:
				break walk // the first record younger than the cutoff
			}
			step.rec = r
		}
		steps = append(steps, step)
		at, atSum = step.seq, s
	}
	if len(steps) == 0 {
		res.end = true
		return res, nil
	}
	if err := putCheckpoint(tx, at, atSum); err != nil {
		return res, err
	}
	journal := tx.Bucket(bucketJournal)
	for _, st := range steps {
		if err := journal.Delete(u64(st.seq)); err != nil {
			return res, err
		}
		res.entries++
		if st.what == stepPrune {
			if err := remove(tx, p, st.rec, &res); err != nil {
				return res, err
			}
		}
	}
	// After the deletions, so that a carried record's new entry links to
	// the head, or to the new checkpoint when the cut took every entry.
	for _, st := range steps {
		if st.what == stepCarry {
			if err := putRecord(tx, st.rec); err != nil {
				return res, err
			}
			res.carried++
		}
	}
	return res, nil
}

// bury removes the candidates in ids that the cut did not reach, each
// leaving a tombstone entry in the chain.
func bury(tx *bbolt.Tx, p *prunePlan, ids []uint64) (cutResult, error) {
	var res cutResult
	for _, id := range ids {
		r, err := getRecord(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return res, err
		}
		if stillCounted(r.Outcome) || !r.Time.Before(p.before) {
			continue
		}
		if err := remove(tx, p, r, &res); err != nil {
			return res, err
		}
		if err := appendTombstone(tx, id, p.before); err != nil {
			return res, err
		}
	}
	return res, nil
}

// remove deletes a pruned record, its time index entry and the
// idempotency keys that still point at it.
func remove(tx *bbolt.Tx, p *prunePlan, r *audit.Record, res *cutResult) error {
	if err := tx.Bucket(bucketRecords).Delete(u64(r.ID)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketTime).Delete(timeKey(r.Time, r.ID)); err != nil {
		return err
	}
	agent, err := newDict(tx).lookup(r.Agent)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketAgent).Delete(agentKey(agent, r.Time, r.ID)); err != nil {
		return err
	}
	idem := tx.Bucket(bucketIdem)
	for _, key := range p.keys[r.ID] {
		if v := idem.Get([]byte(key)); len(v) >= 8 && binary.BigEndian.Uint64(v) == r.ID {
			if err := idem.Delete([]byte(key)); err != nil {
				return err
			}
			res.keys++
		}
	}
	res.pruned = append(res.pruned, r.ID)
	return nil
}

// writeChunks runs step in write transactions of its own, each from the
// key the one before stopped at, until step returns a nil key, and sums
// what each step removed.
func (s *Store) writeChunks(ctx context.Context, step func(tx *bbolt.Tx, from []byte) (int, []byte, error)) (int, error) {
	removed := 0
	for from := []byte{}; from != nil; {
		var (
			n    int
			next []byte
		)
		err := s.write(ctx, func(tx *bbolt.Tx) error {
			var err error
			n, next, err = step(tx, from)
			return err
		})
		if err != nil {
			return removed, err
		}
		removed += n
		from = next
	}
	return removed, nil
}

// pruneCounters removes the counters of days before day among the next
// pruneChunk keys from the key from on. It returns the key to continue
// from, nil when it reached the end.
func pruneCounters(tx *bbolt.Tx, protected map[string]bool, day string, from []byte) (int, []byte, error) {
	// Reservations made since the plan hold counters too.
	held := make(map[string]bool)
	if err := tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
		if len(k) != 8 {
			return corrupt("pending key is %d bytes", len(k))
		}
		r, err := getRecord(tx, binary.BigEndian.Uint64(k))
		if err != nil {
			return err
		}
		for _, h := range r.Holds {
			if h.Window == 0 {
				held[h.Key] = true
			}
		}
		return nil
	}); err != nil {
		return 0, nil, err
	}
	var (
		doomed [][]byte
		next   []byte
	)
	c := tx.Bucket(bucketCounters).Cursor()
	examined := 0
	for k, _ := c.Seek(from); k != nil; k, _ = c.Next() {
		if examined == pruneChunk {
			next = append([]byte(nil), k...)
			break
		}
		examined++
		key := string(k)
		if d, ok := counterDay(key); ok && d < day && !protected[key] && !held[key] {
			doomed = append(doomed, append([]byte(nil), k...))
		}
	}
	for _, k := range doomed {
		if err := tx.Bucket(bucketCounters).Delete(k); err != nil {
			return 0, nil, err
		}
	}
	return len(doomed), next, nil
}

// counterDay is the UTC day a counter counts: the latest segment of its
// key, split at "/", that is a date. A key with none has no day.
func counterDay(key string) (string, bool) {
	var day string
	for _, seg := range strings.Split(key, "/") {
		if len(seg) != len(time.DateOnly) || seg <= day {
			continue
		}
		if _, err := time.Parse(time.DateOnly, seg); err == nil {
			day = seg
		}
	}
	return day, day != ""
}
