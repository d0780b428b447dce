package bolt

import (
	"bytes"
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
// then ID, or of their ID when q.InIDOrder (After or ByID set). fn runs outside any
// transaction, so it may call the store (even Complete); records written
// meanwhile may or may not be seen. A negative Limit is refused with
// ErrInvalid.
//
// A query in ID order walks the records bucket from After on; one naming
// an Agent walks that agent's index (agent, time, ID) from Since to Until;
// any other walks the time index from Since to Until.
func (s *Store) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	if q.Limit < 0 {
		return invalid("query limit %d is negative", q.Limit)
	}
	var (
		after   []byte // the last key handed out; the next page starts after it
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
			var (
				c      *bbolt.Cursor
				prefix []byte // of every key the walk may hand out
				start  []byte // where a first page seeks
				idAt   int    // where the record ID sits in a key
				timeAt = -1   // where the time sits in a key, -1 for none
			)
			switch {
			case q.InIDOrder():
				c, start, idAt = tx.Bucket(bucketRecords).Cursor(), u64(q.After+1), 0
			case q.Agent != "":
				agent, err := newDict(tx).lookup(q.Agent)
				if err != nil || agent == 0 {
					end = true // an agent never seen has no records
					return err
				}
				prefix = binary.AppendUvarint(nil, agent)
				c, idAt, timeAt = tx.Bucket(bucketAgent).Cursor(), len(prefix)+8, len(prefix)
				start = append(append([]byte(nil), prefix...), u64(0)...)
				if !q.Since.IsZero() {
					start = agentKey(agent, q.Since, 0)
				}
			default:
				c, start, idAt, timeAt = tx.Bucket(bucketTime).Cursor(), timeKey(q.Since, 0), 8, 0
				if q.Since.IsZero() {
					start = nil
				}
			}
			var k []byte
			switch {
			case after != nil:
				if k, _ = c.Seek(after); bytes.Equal(k, after) {
					k, _ = c.Next()
				}
			case start != nil:
				k, _ = c.Seek(start)
			default:
				k, _ = c.First()
			}
			d := newDict(tx)
			for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				if len(k) != idAt+8 {
					return corrupt("index key %x is %d bytes", k, len(k))
				}
				// Index keys are clamped; a key equal to until may still
				// hold a record before Until, and Match decides.
				if bounded && timeAt >= 0 && binary.BigEndian.Uint64(k[timeAt:]) > until {
					break
				}
				after = append(after[:0], k...)
				r, err := getRecordIn(tx, d, binary.BigEndian.Uint64(k[idAt:]))
				if err != nil {
					return fmt.Errorf("index: %w", err)
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

// Counters implements store.Store. It walks the counters bucket from
// prefix, a page of 256 at a time in read transactions; fn runs outside
// any transaction.
func (s *Store) Counters(ctx context.Context, prefix string, fn func(key string, c store.Counter) error) error {
	type counter struct {
		key string
		c   store.Counter
	}
	from := []byte(prefix)
	for {
		var page []counter
		err := s.view(ctx, func(tx *bbolt.Tx) error {
			cur := tx.Bucket(bucketCounters).Cursor()
			for k, v := cur.Seek(from); k != nil && bytes.HasPrefix(k, []byte(prefix)) && len(page) < queryPage; k, v = cur.Next() {
				c, err := decodeCounter(string(k), v)
				if err != nil {
					return err
				}
				page = append(page, counter{string(k), c})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, p := range page {
			if err := fn(p.key, p.c); err != nil {
				return err
			}
		}
		if len(page) < queryPage {
			return nil
		}
		from = append([]byte(page[len(page)-1].key), 0) // the next key after it
		if err := ctx.Err(); err != nil {
			return err
		}
	}
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

// Outstanding implements store.Store. It merges the pending bucket
// (records Reserved) and the unknown bucket (records Unknown), both keyed
// by record ID, a page of 256 at a time in read transactions; fn runs
// outside any transaction.
func (s *Store) Outstanding(ctx context.Context, fn func(*audit.Record) error) error {
	var after uint64
	for {
		var page []*audit.Record
		err := s.view(ctx, func(tx *bbolt.Tx) error {
			ids := make([]uint64, 0, 2*queryPage)
			for _, name := range [][]byte{bucketPending, bucketUnknown} {
				c := tx.Bucket(name).Cursor()
				n := 0
				for k, _ := c.Seek(u64(after + 1)); k != nil && n < queryPage; k, _ = c.Next() {
					if len(k) != 8 {
						return corrupt("%s key is %d bytes", name, len(k))
					}
					ids = append(ids, binary.BigEndian.Uint64(k))
					n++
				}
			}
			slices.Sort(ids)
			ids = ids[:min(len(ids), queryPage)]
			for _, id := range ids {
				r, err := getRecord(tx, id)
				if err != nil {
					return fmt.Errorf("outstanding record: %w", err)
				}
				page = append(page, r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		after = page[len(page)-1].ID
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
