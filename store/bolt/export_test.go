package bolt

import (
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
)

// EditRecord re-encodes record id after edit, in the records bucket only,
// as someone who knows the format would edit a closed file; seq is the
// journal entry the record says is its latest.
func EditRecord(tx *bbolt.Tx, id uint64, edit func(r *audit.Record, seq *uint64)) error {
	v := tx.Bucket(bucketRecords).Get(u64(id))
	if v == nil {
		return fmt.Errorf("no record %d", id)
	}
	d := newDict(tx)
	r, seq, err := decodeRecord(d, id, v)
	if err != nil {
		return err
	}
	edit(r, &seq)
	b, err := encodeRecord(d, r, seq)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketRecords).Put(u64(r.ID), b)
}
