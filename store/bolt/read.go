package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// queryPage is how many records Query reads in one read transaction before
// it hands them to fn outside any transaction.
const queryPage = 256

// Query implements store.Store. Records come in the order of their Time,
// then ID. fn runs outside any transaction, so it may call the store (even
// Complete); records written meanwhile may or may not be seen. A negative
// Limit is refused with ErrInvalid.
func (s *Store) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	if q.Limit < 0 {
		return invalid("query limit %d is negative", q.Limit)
	}
	var (
		after   []byte // the last index key handed out; the next page starts after it
		sent    int
		page    = make([]*audit.Record, 0, queryPage)
		until   uint64
		bounded = !q.Until.IsZero()
	)
	if bounded {
		until = timeOrder(q.Until)
	}
	for {
		want := queryPage
		if q.Limit > 0 && q.Limit-sent < want {
			want = q.Limit - sent
		}
		page = page[:0]
		end := false
		err := s.view(ctx, func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketTime).Cursor()
			var k []byte
			switch {
			case after != nil:
				if k, _ = c.Seek(after); bytes.Equal(k, after) {
					k, _ = c.Next()
				}
			case !q.Since.IsZero():
				k, _ = c.Seek(timeKey(q.Since, 0))
			default:
				k, _ = c.First()
			}
			for ; k != nil; k, _ = c.Next() {
				if len(k) != 16 {
					return corrupt("time index key is %d bytes", len(k))
				}
				// Index keys are clamped; a key equal to until may still
				// hold a record before Until, and Match decides.
				if bounded && binary.BigEndian.Uint64(k) > until {
					break
				}
				after = append(after[:0], k...)
				r, err := getRecord(tx, binary.BigEndian.Uint64(k[8:]))
				if err != nil {
					return fmt.Errorf("time index: %w", err)
				}
				if !q.Match(r) {
					continue
				}
				page = append(page, r)
				if len(page) == want {
					return nil
				}
			}
			end = true
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		sent += len(page)
		if end || (q.Limit > 0 && sent >= q.Limit) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Counter implements store.Store.
func (s *Store) Counter(ctx context.Context, key string) (store.Counter, error) {
	var c store.Counter
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		c, err = decodeCounter(key, tx.Bucket(bucketCounters).Get([]byte(key)))
		return err
	})
	return c, err
}

// Fact implements store.Store.
func (s *Store) Fact(ctx context.Context, key string) (value string, ok bool, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketFacts).Get([]byte(key)); v != nil {
			value, ok = string(v), true
		}
		return nil
	})
	if err != nil {
		return "", false, err
	}
	return value, ok, nil
}

// Outstanding implements store.Store.
//
// TODO(issue 12): found by an index; this first version scans the log.
func (s *Store) Outstanding(ctx context.Context, fn func(*audit.Record) error) error {
	var open []*audit.Record
	err := s.Query(ctx, audit.Query{}, func(r *audit.Record) error {
		if r.Outcome == audit.Reserved || r.Outcome == audit.Unknown {
			open = append(open, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(open, func(a, b *audit.Record) int { return cmp.Compare(a.ID, b.ID) })
	for _, r := range open {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
