package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

type sum = [sha256.Size]byte

// entryHash chains an entry: SHA-256(prev | session | seq | n | body).
// The session and position are in the hash so that an entry moved to
// another chain or another place shows as moved; n (the fleet-wide entry
// number) so that the order of entries across chains cannot be changed.
func entryHash(prev sum, session, seq, n int64, body []byte) sum {
	h := sha256.New()
	h.Write(prev[:])
	var b [24]byte
	binary.BigEndian.PutUint64(b[0:], uint64(session))
	binary.BigEndian.PutUint64(b[8:], uint64(seq))
	binary.BigEndian.PutUint64(b[16:], uint64(n))
	h.Write(b[:])
	h.Write(body)
	var s sum
	h.Sum(s[:0])
	return s
}

func toSum(b []byte) (sum, bool) {
	var s sum
	if len(b) != len(s) {
		return s, false
	}
	copy(s[:], b)
	return s, true
}

// head is the locked head of this Store's chain inside one transaction.
// Every write takes it last, after the records and counters it changes,
// so that two transactions never wait on each other in a cycle through
// it, and it holds it until commit: the writes of one session are
// serialized, so within a session record IDs and entries follow commit
// order.
type head struct {
	session int64
	seq     int64
	hash    sum
	changed bool
}

// lockHead locks this Store's session row and reads its chain's head. A
// session closed under the Store (expired, recovered by another process)
// is errSessionGone.
func (s *Store) lockHead(ctx context.Context, tx pgx.Tx) (*head, error) {
	h := &head{session: s.session.Load()}
	var hash []byte
	err := tx.QueryRow(ctx, `SELECT head_seq, head_hash FROM keybrake_sessions WHERE id = $1 AND closed IS NULL FOR UPDATE`,
		h.session).Scan(&h.seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errSessionGone
	}
	if err != nil {
		return nil, err
	}
	var ok bool
	if h.hash, ok = toSum(hash); !ok {
		return nil, corrupt("session %d's head hash is %d bytes", h.session, len(hash))
	}
	return h, nil
}

// stamp sets r.PrevHash to the hash the next entry links to.
func (h *head) stamp(r *audit.Record) { r.PrevHash = hex.EncodeToString(h.hash[:]) }

// append writes body, which names h.hash as its prev, as the chain's next
// entry.
func (h *head) append(ctx context.Context, tx pgx.Tx, recordID uint64, body []byte) error {
	var n int64
	if err := tx.QueryRow(ctx, `SELECT nextval('keybrake_entry_numbers')`).Scan(&n); err != nil {
		return err
	}
	seq := h.seq + 1
	hash := entryHash(h.hash, h.session, seq, n, body)
	if _, err := tx.Exec(ctx, `INSERT INTO keybrake_journal (session, seq, n, record_id, hash, body) VALUES ($1, $2, $3, $4, $5, $6)`,
		h.session, seq, n, int64(recordID), hash[:], string(body)); err != nil {
		return err
	}
	h.seq, h.hash, h.changed = seq, hash, true
	return nil
}

// save writes the head back; the caller commits.
func (h *head) save(ctx context.Context, tx pgx.Tx) error {
	if !h.changed {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE keybrake_sessions SET head_seq = $2, head_hash = $3 WHERE id = $1`, h.session, h.seq, h.hash[:])
	return err
}

// link is what an entry or a record says about its place in the chain.
type link struct {
	ID     uint64 `json:"id"`
	Prev   string `json:"prev"`
	Pruned string `json:"pruned,omitempty"` // in a tombstone only
}

func readLink(body []byte) (link, sum, error) {
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

func tombstone(id uint64, before time.Time, prev sum) ([]byte, error) {
	return json.Marshal(link{ID: id, Pruned: before.UTC().Format(time.RFC3339Nano), Prev: hex.EncodeToString(prev[:])})
}

func short(s sum) string { return hex.EncodeToString(s[:6]) }

// canonical is a JSON document's hash after decoding and encoding it again
// (object keys sorted, no space, numbers as written): the same for an
// entry's text and the JSONB PostgreSQL gives back for it.
func canonical(body []byte) (sum, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return sum{}, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return sum{}, err
	}
	return sha256.Sum256(b), nil
}

// chainSession is a session's row as Verify and Prune read it.
type chainSession struct {
	id               int64
	headSeq, cutSeq  int64
	headHash, cutSum sum
}

// walker checks the entries of one session's chain in order.
type walker struct {
	sess  chainSession
	prev  sum
	want  int64
	lastN int64
}

func newWalker(cs chainSession) *walker {
	return &walker{sess: cs, prev: cs.cutSum, want: cs.cutSeq + 1}
}

func (w *walker) before() string {
	switch {
	case w.want-1 > w.sess.cutSeq:
		return fmt.Sprintf("its entry %d", w.want-1)
	case w.sess.cutSeq > 0:
		return fmt.Sprintf("its checkpoint (entry %d)", w.sess.cutSeq)
	default:
		return "the start of its chain"
	}
}

// entry is one journal row.
type entry struct {
	session, seq, n, recordID int64
	hash                      []byte
	body                      []byte
}

// step checks e, the next row of w's session, and moves past it.
func (w *walker) step(e entry) (link, sum, *store.ChainError) {
	sid := w.sess.id
	n := uint64(e.n)
	switch {
	case e.seq < w.want:
		return link{}, sum{}, &store.ChainError{Problem: store.ChainExtra, Entry: n,
			Detail: fmt.Sprintf("entry %d (session %d, position %d) lies at or before the session's checkpoint (position %d): the store never wrote it there", n, sid, e.seq, w.sess.cutSeq)}
	case e.seq == w.want+1:
		return link{}, sum{}, &store.ChainError{Problem: store.ChainMissing, Entry: n,
			Detail: fmt.Sprintf("session %d's entry at position %d is missing: its chain goes from %s to position %d (entry %d)", sid, w.want, w.before(), e.seq, n)}
	case e.seq > w.want:
		return link{}, sum{}, &store.ChainError{Problem: store.ChainMissing, Entry: n,
			Detail: fmt.Sprintf("session %d's entries at positions %d to %d are missing: its chain goes from %s to position %d (entry %d)", sid, w.want, e.seq-1, w.before(), e.seq, n)}
	}
	stored, ok := toSum(e.hash)
	if !ok {
		return link{}, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: n,
			Detail: fmt.Sprintf("entry %d (session %d, position %d) has a hash of %d bytes: it was altered", n, sid, e.seq, len(e.hash))}
	}
	l, prev, err := readLink(e.body)
	if err != nil {
		return link{}, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: n,
			Detail: fmt.Sprintf("entry %d (session %d, position %d) does not hold a readable record (%v): it was altered", n, sid, e.seq, err)}
	}
	if entryHash(prev, sid, e.seq, e.n, e.body) != stored {
		for d := int64(-8); d <= 8; d++ {
			if d != 0 && entryHash(prev, sid, e.seq+d, e.n, e.body) == stored {
				return link{}, sum{}, &store.ChainError{Problem: store.ChainReordered, Entry: n, Record: l.ID,
					Detail: fmt.Sprintf("position %d of session %d's chain holds entry %d (record %d), written at position %d: entries were reordered or moved", e.seq, sid, n, l.ID, e.seq+d)}
			}
		}
		return link{}, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: n, Record: l.ID,
			Detail: fmt.Sprintf("entry %d (record %d) was altered: its contents no longer match the hash it was written with", n, l.ID)}
	}
	if e.n <= w.lastN {
		return link{}, sum{}, &store.ChainError{Problem: store.ChainReordered, Entry: n, Record: l.ID,
			Detail: fmt.Sprintf("entry %d (record %d) follows entry %d in session %d's chain: entries were reordered", n, l.ID, w.lastN, sid)}
	}
	if prev != w.prev {
		return link{}, sum{}, &store.ChainError{Problem: store.ChainBrokenLink, Entry: n, Record: l.ID,
			Detail: fmt.Sprintf("entry %d (record %d) names %s as its predecessor, but %s in session %d hashes to %s: "+
				"the entry before it was replaced with its hash recomputed, or this entry's link was", n, l.ID, short(prev), w.before(), sid, short(w.prev))}
	}
	if l.ID == 0 || l.ID != uint64(e.recordID) {
		return link{}, sum{}, &store.ChainError{Problem: store.ChainAltered, Entry: n, Record: l.ID,
			Detail: fmt.Sprintf("entry %d holds record %d but is filed under record %d: it was altered", n, l.ID, e.recordID)}
	}
	w.prev, w.want, w.lastN = stored, e.seq+1, e.n
	return l, stored, nil
}

// finish checks the end of the chain against the session's head.
func (w *walker) finish() *store.ChainError {
	last, sid := w.want-1, w.sess.id
	switch {
	case w.sess.headSeq == last+1:
		return &store.ChainError{Problem: store.ChainMissing,
			Detail: fmt.Sprintf("session %d's entry at position %d, the last one it wrote, is missing from the end of its chain", sid, w.sess.headSeq)}
	case w.sess.headSeq > last:
		return &store.ChainError{Problem: store.ChainMissing,
			Detail: fmt.Sprintf("session %d's entries at positions %d to %d, the last ones it wrote, are missing from the end of its chain", sid, last+1, w.sess.headSeq)}
	case w.sess.headSeq < last:
		return &store.ChainError{Problem: store.ChainExtra,
			Detail: fmt.Sprintf("session %d's chain goes on past position %d, the last one it wrote, to position %d", sid, w.sess.headSeq, last)}
	case w.prev != w.sess.headHash:
		return &store.ChainError{Problem: store.ChainBrokenLink,
			Detail: fmt.Sprintf("session %d's chain ends in a hash %s, but the session wrote %s last: its end was rewritten", sid, short(w.prev), short(w.sess.headHash))}
	}
	return nil
}

type latestEntry struct {
	n, session, seq int64
	canon           sum
	gone            bool
}

// verifyResult is what verify learned, for Prune.
type verifyResult struct {
	rep    store.VerifyReport
	latest map[uint64]latestEntry // every record's latest entry
}

// readSessions reads every session and checks that none is missing.
func readSessions(ctx context.Context, tx pgx.Tx) ([]chainSession, *store.ChainError, error) {
	var last int64
	if err := tx.QueryRow(ctx, `SELECT last_session FROM keybrake_meta`).Scan(&last); err != nil {
		return nil, nil, err
	}
	rows, err := tx.Query(ctx, `SELECT id, head_seq, head_hash, cut_seq, cut_hash FROM keybrake_sessions ORDER BY id`)
	if err != nil {
		return nil, nil, err
	}
	var out []chainSession
	for rows.Next() {
		var (
			cs     chainSession
			hh, ch []byte
		)
		if err := rows.Scan(&cs.id, &cs.headSeq, &hh, &cs.cutSeq, &ch); err != nil {
			return nil, nil, err
		}
		var ok1, ok2 bool
		cs.headHash, ok1 = toSum(hh)
		cs.cutSum, ok2 = toSum(ch)
		if !ok1 || !ok2 {
			return nil, &store.ChainError{Problem: store.ChainAltered,
				Detail: fmt.Sprintf("session %d's head or checkpoint hash is not a SHA-256 hash: it was altered", cs.id)}, nil
		}
		out = append(out, cs)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	for i, cs := range out {
		switch want := int64(i + 1); {
		case cs.id > want:
			return nil, &store.ChainError{Problem: store.ChainMissing,
				Detail: fmt.Sprintf("session %d is missing, with its chain: the sessions go from %d to %d", want, want-1, cs.id)}, nil
		case cs.id > last:
			return nil, &store.ChainError{Problem: store.ChainExtra,
				Detail: fmt.Sprintf("session %d was never started by a store: the last one started is %d", cs.id, last)}, nil
		}
	}
	if int64(len(out)) < last {
		return nil, &store.ChainError{Problem: store.ChainMissing,
			Detail: fmt.Sprintf("sessions %d to %d, the last ones started, are missing with their chains", len(out)+1, last)}, nil
	}
	return out, nil, nil
}

// verify checks every session's chain and every record against its
// latest entry, in tx, which must be a REPEATABLE READ snapshot.
func verify(ctx context.Context, tx pgx.Tx) (verifyResult, *store.ChainError, error) {
	res := verifyResult{latest: make(map[uint64]latestEntry)}
	rep := &res.rep
	var cpHash []byte
	var cp int64
	if err := tx.QueryRow(ctx, `SELECT checkpoint, checkpoint_hash FROM keybrake_meta`).Scan(&cp, &cpHash); err != nil {
		return res, nil, err
	}
	rep.Checkpoint, rep.Head, rep.HeadHash = uint64(cp), uint64(cp), hex.EncodeToString(cpHash)
	sessions, brk, err := readSessions(ctx, tx)
	if err != nil || brk != nil {
		return res, brk, err
	}
	walkers := make(map[int64]*walker, len(sessions))
	for _, cs := range sessions {
		walkers[cs.id] = newWalker(cs)
	}

	rows, err := tx.Query(ctx, `SELECT session, seq, n, record_id, hash, body FROM keybrake_journal ORDER BY session, seq`)
	if err != nil {
		return res, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var e entry
		var body string
		if err := rows.Scan(&e.session, &e.seq, &e.n, &e.recordID, &e.hash, &body); err != nil {
			return res, nil, err
		}
		e.body = []byte(body)
		w := walkers[e.session]
		if w == nil {
			return res, &store.ChainError{Problem: store.ChainExtra, Entry: uint64(e.n),
				Detail: fmt.Sprintf("entry %d belongs to session %d, which no store started", e.n, e.session)}, nil
		}
		l, s, brk := w.step(e)
		if brk != nil {
			return res, brk, nil
		}
		if at, ok := res.latest[l.ID]; ok && at.gone && at.n < e.n {
			return res, &store.ChainError{Problem: store.ChainExtra, Entry: uint64(e.n), Record: l.ID,
				Detail: fmt.Sprintf("entry %d writes record %d after entry %d said a prune removed it: the store never wrote it", e.n, l.ID, at.n)}, nil
		}
		if at, ok := res.latest[l.ID]; !ok || at.n < e.n {
			le := latestEntry{n: e.n, session: e.session, seq: e.seq, gone: l.Pruned != ""}
			if !le.gone {
				if le.canon, err = canonical(e.body); err != nil {
					return res, nil, err
				}
			}
			res.latest[l.ID] = le
		}
		rep.Entries++
		if uint64(e.n) > rep.Head {
			rep.Head, rep.HeadHash = uint64(e.n), hex.EncodeToString(s[:])
		}
		if rep.Entries%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return res, nil, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return res, nil, err
	}
	rows.Close()
	for _, cs := range sessions {
		if brk := walkers[cs.id].finish(); brk != nil {
			return res, brk, nil
		}
	}

	// Records: the break reported is the one earliest in the journal.
	var (
		first   *store.ChainError
		firstAt int64
	)
	const noEntry = int64(^uint64(0) >> 1)
	note := func(at int64, brk *store.ChainError) {
		if first == nil || at < firstAt || (at == firstAt && brk.Record < first.Record) {
			first, firstAt = brk, at
		}
	}
	var altered *alteredRecord // the record of first, when it is an altered one
	seen := make(map[uint64]bool, len(res.latest))
	rrows, err := tx.Query(ctx, `SELECT id, time_ns, agent, vendor, decision, customer, outcome, run, principal, body::text FROM keybrake_records ORDER BY id`)
	if err != nil {
		return res, nil, err
	}
	defer rrows.Close()
	for rrows.Next() {
		var (
			id                                         int64
			timeNS                                     int64
			agent, vendor, decision, customer, outcome string
			run, principal                             string
			body                                       string
		)
		if err := rrows.Scan(&id, &timeNS, &agent, &vendor, &decision, &customer, &outcome, &run, &principal, &body); err != nil {
			return res, nil, err
		}
		rid := uint64(id)
		seen[rid] = true
		at, ok := res.latest[rid]
		if !ok {
			note(noEntry, &store.ChainError{Problem: store.ChainExtra, Record: rid,
				Detail: fmt.Sprintf("record %d has no journal entry: it was added outside the store", rid)})
			continue
		}
		if at.gone {
			note(at.n, &store.ChainError{Problem: store.ChainExtra, Entry: uint64(at.n), Record: rid,
				Detail: fmt.Sprintf("record %d is in the store, but journal entry %d says a prune removed it: it was put back outside the store", rid, at.n)})
			continue
		}
		var r audit.Record
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			note(at.n, &store.ChainError{Problem: store.ChainAltered, Entry: uint64(at.n), Record: rid,
				Detail: fmt.Sprintf("record %d was altered: it no longer reads as a record (%v); journal entry %d holds its latest state", rid, err, at.n)})
			continue
		}
		if r.ID != rid {
			note(at.n, &store.ChainError{Problem: store.ChainReordered, Entry: uint64(at.n), Record: rid,
				Detail: fmt.Sprintf("record %d holds the contents of record %d: records were swapped or moved", rid, r.ID)})
			continue
		}
		c, err := canonical([]byte(body))
		if err != nil {
			return res, nil, err
		}
		if c != at.canon {
			brk := &store.ChainError{Problem: store.ChainAltered, Entry: uint64(at.n), Record: rid,
				Detail: fmt.Sprintf("record %d was altered: it differs from its latest journal entry %d", rid, at.n)}
			note(at.n, brk)
			if first == brk {
				altered = &alteredRecord{at, []byte(body)}
			}
			continue
		}
		// The columns queries filter on must say what the record says,
		// or a query could hide a record or show it as another's.
		col := columnsOf(&r)
		if got := (columns{timeNS, agent, vendor, decision, customer, outcome, run, principal}); got != col {
			note(at.n, &store.ChainError{Problem: store.ChainAltered, Entry: uint64(at.n), Record: rid,
				Detail: fmt.Sprintf("record %d was altered: its indexed columns %+v differ from what it holds, %+v", rid, got, col)})
			continue
		}
		rep.Records++
		if rep.Records%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return res, nil, err
			}
		}
	}
	if err := rrows.Err(); err != nil {
		return res, nil, err
	}
	rrows.Close()
	if altered != nil && first != nil && first.Record == altered.body.ID() {
		// Name the fields, for a person: the entry is read only now,
		// with the records' rows closed.
		var eb string
		if err := tx.QueryRow(ctx, `SELECT body FROM keybrake_journal WHERE session = $1 AND seq = $2`, altered.at.session, altered.at.seq).Scan(&eb); err == nil {
			if fields := differingFields([]byte(eb), altered.body); len(fields) > 0 {
				first.Detail += " in " + strings.Join(fields, ", ")
			}
		}
	}
	for id, at := range res.latest {
		if !at.gone && !seen[id] {
			note(at.n, &store.ChainError{Problem: store.ChainMissing, Entry: uint64(at.n), Record: id,
				Detail: fmt.Sprintf("record %d was removed: journal entry %d holds its latest state", id, at.n)})
		}
	}
	return res, first, nil
}

type alteredRecord struct {
	at   latestEntry
	body recordBody
}

// recordBody is a record's JSON as PostgreSQL gives it back.
type recordBody []byte

// ID is the record's "id", 0 when it has none.
func (b recordBody) ID() uint64 {
	l, _, _ := readLink(b)
	return l.ID
}

// differingFields names the top-level JSON fields in which two records
// differ, for a person reading a ChainError.
func differingFields(want, got []byte) []string {
	var w, g map[string]any
	if json.Unmarshal(want, &w) != nil || json.Unmarshal(got, &g) != nil {
		return nil
	}
	var out []string
	for k, v := range w {
		if gv, ok := g[k]; !ok || !reflect.DeepEqual(v, gv) {
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

// snapshot runs fn in a REPEATABLE READ, READ ONLY transaction: one
// consistent view of every table while writes go on.
func (s *Store) snapshot(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(tx)
}

// Verify implements store.Store. It reads every session, entry and
// record in one snapshot, and keeps about 100 bytes a record in memory.
// Entry numbers in the report and in a *store.ChainError are the
// fleet-wide entry numbers n; Head is the highest one checked.
func (s *Store) Verify(ctx context.Context) (store.VerifyReport, error) {
	if err := s.enter(ctx); err != nil {
		return store.VerifyReport{}, err
	}
	defer s.leave()
	var (
		res verifyResult
		brk *store.ChainError
	)
	err := s.snapshot(ctx, func(tx pgx.Tx) error {
		var err error
		res, brk, err = verify(ctx, tx)
		return err
	})
	if err != nil {
		return res.rep, s.ctxErr(ctx, err)
	}
	if brk != nil {
		return res.rep, brk
	}
	return res.rep, nil
}

// ctxErr returns ctx's error when it ended, so callers can errors.Is it
// whatever pgx made of the cancellation; else err, scrubbed.
func (s *Store) ctxErr(ctx context.Context, err error) error {
	if c := ctx.Err(); c != nil && !errors.Is(err, c) {
		return fmt.Errorf("%w (%v)", c, s.scrub(err))
	}
	return s.scrub(err)
}
