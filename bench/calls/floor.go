package main

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
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
	db, err := bbolt.Open(filepath.Join(dir, "layout.db"), 0o600, nil)
	if err != nil {
		return nil, nil, err
	}
	names := []string{"records", "journal", "time", "agent", "idempotency", "pending", "counters"}
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
	)
	for i := range limits {
		limits[i] = fmt.Appendf(nil, "%s/stripe/limit%d/2026-12-07/USD", agent, i)
	}
	u64 := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	do := func(int) error {
		return db.Update(func(tx *bbolt.Tx) error {
			b := func(name string) *bbolt.Bucket { return tx.Bucket([]byte(name)) }
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
