package main

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"go.etcd.io/bbolt"
)

// startLayout is bare bbolt making, in one Update, the puts one refund
// makes in Keybrake's bbolt store with the previous call's completion
// riding along: the floor that store's layout puts under target 1, with
// none of Keybrake's code. The buckets, keys and value sizes are
// store/bolt's (doc.go, "Layout") as a refund of -million writes them:
//
//   - records: the call's record appended (108 B reserved) and the
//     previous one rewritten settled (169 B);
//   - journal: two entries of 84 B appended, the reservation's and the
//     completion's;
//   - time and agent: the record's index keys appended (16 and 17 B);
//   - idempotency: stripe-go's key (stripe.NewIdempotencyKey) under its
//     agent's scope -> the record's ID;
//   - pending: the record's ID put, the previous one's deleted;
//   - counters: the policy's five limit keys -> 24 B, each rewritten by
//     the reservation and again by the completion.
//
// It keeps no chain, no dictionary and no fill tuning (bbolt's defaults),
// and it decodes nothing, so Keybrake's own commit can only cost more.
func startLayout(_ *bench, dir string) (call, func(), error) {
	return startFloor(filepath.Join(dir, "layout.db"), false)
}

// startOneBucket is startLayout with every bucket's keys in one bbolt
// bucket, each under a prefix byte naming its bucket: the same puts, but
// one tree, so the leaves they touch share their branch pages and the root
// bucket's page is not rewritten for seven buckets. Its sequences are
// counters in memory (a store would find them from its last keys at Open).
// It asks whether merging the buckets would bring the floor under target
// 1's bound.
func startOneBucket(_ *bench, dir string) (call, func(), error) {
	return startFloor(filepath.Join(dir, "onebucket.db"), true)
}

// floorBuckets are the store's buckets startFloor writes.
var floorBuckets = []string{"records", "journal", "time", "agent", "idempotency", "pending", "counters"}

// A floorBucket is a bucket of the floor: a bbolt bucket, or a prefix in
// the one bucket.
type floorBucket interface {
	Put(k, v []byte) error
	Delete(k []byte) error
	NextSequence() (uint64, error)
}

// prefixed is one of floorBuckets in the one bucket: its keys behind its
// prefix byte, its sequence in memory.
type prefixed struct {
	b   *bbolt.Bucket
	pfx byte
	seq *uint64
}

func (p prefixed) Put(k, v []byte) error { return p.b.Put(append([]byte{p.pfx}, k...), v) }
func (p prefixed) Delete(k []byte) error { return p.b.Delete(append([]byte{p.pfx}, k...)) }
func (p prefixed) NextSequence() (uint64, error) {
	*p.seq++
	return *p.seq, nil
}

func startFloor(path string, oneBucket bool) (call, func(), error) {
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		return nil, nil, err
	}
	names := floorBuckets
	if oneBucket {
		names = []string{"all"}
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, n := range names {
			if _, err := tx.CreateBucketIfNotExists([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	var (
		reserved = []byte(strings.Repeat("r", 108))
		settled  = []byte(strings.Repeat("s", 169))
		entry    = []byte(strings.Repeat("j", 84))
		counter  = make([]byte, 24)
		limits   [5][]byte
		prev     uint64 // the record the next Update completes; Updates run one at a time
		seqs     [8]uint64
	)
	for i := range limits {
		limits[i] = fmt.Appendf(nil, "%s/stripe/limit%d/2026-12-07/USD", agent, i)
	}
	u64 := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	do := func(int) error {
		return db.Update(func(tx *bbolt.Tx) error {
			b := func(name string) floorBucket {
				if !oneBucket {
					return tx.Bucket([]byte(name))
				}
				i := slices.Index(floorBuckets, name) + 1
				return prefixed{tx.Bucket([]byte("all")), byte(i), &seqs[i]}
			}
			journal := func() error {
				seq, err := b("journal").NextSequence()
				if err != nil {
					return err
				}
				return b("journal").Put(u64(seq), entry)
			}
			counters := func() error {
				for _, k := range limits {
					if err := b("counters").Put(k, counter); err != nil {
						return err
					}
				}
				return nil
			}
			if prev != 0 { // the previous call's completion
				if err := b("records").Put(u64(prev), settled); err != nil {
					return err
				}
				if err := journal(); err != nil {
					return err
				}
				if err := b("pending").Delete(u64(prev)); err != nil {
					return err
				}
				if err := counters(); err != nil {
					return err
				}
			}
			id, err := b("records").NextSequence()
			if err != nil {
				return err
			}
			at := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano())^1<<63)
			at = binary.BigEndian.AppendUint64(at, id)
			idem := append([]byte{1, 3}, stripego.NewIdempotencyKey()...)
			puts := []struct {
				bucket     string
				key, value []byte
			}{
				{"records", u64(id), reserved},
				{"time", at, nil},
				{"agent", append([]byte{1}, at...), nil},
				{"idempotency", idem, u64(id)},
				{"pending", u64(id), []byte{'h'}},
			}
			for _, p := range puts {
				if err := b(p.bucket).Put(p.key, p.value); err != nil {
					return err
				}
			}
			if err := journal(); err != nil {
				return err
			}
			if err := counters(); err != nil {
				return err
			}
			prev = id
			return nil
		})
	}
	return do, func() { db.Close() }, nil
}
