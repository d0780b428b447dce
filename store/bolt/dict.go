package bolt

import (
	"encoding/binary"

	"go.etcd.io/bbolt"
)

// internMax is the longest text the dictionary takes; longer text is
// stored in the record.
const internMax = 512

// dict interns text in the strings bucket (text -> uvarint id) and the
// dict bucket (uint64 id -> text). Entries are never removed or changed,
// so the same text has the same id for the life of the file.
type dict struct {
	strs *bbolt.Bucket
	ids  *bbolt.Bucket
	// seen keeps the text already read by id, for the life of the
	// transaction: a walk over many records reads the same agents, paths
	// and rules again and again, and an entry never changes.
	seen map[uint64]string
}

func newDict(tx *bbolt.Tx) *dict {
	return &dict{strs: tx.Bucket(bucketStrings), ids: appendOnly(tx, bucketDict)}
}

// lookup returns the id of s, 0 when it was never interned.
func (d *dict) lookup(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	v := d.strs.Get([]byte(s))
	if v == nil {
		return 0, nil
	}
	id, n := binary.Uvarint(v)
	if n != len(v) || id == 0 {
		return 0, corrupt("dictionary entry %q is %x", s, v)
	}
	return id, nil
}

// intern returns the id of s, adding it when it is new; "" is 0.
func (d *dict) intern(s string) (uint64, error) {
	id, err := d.lookup(s)
	if err != nil || id != 0 || s == "" {
		return id, err
	}
	id, err = d.ids.NextSequence()
	if err != nil {
		return 0, err
	}
	if err := d.ids.Put(u64(id), []byte(s)); err != nil {
		return 0, err
	}
	return id, d.strs.Put([]byte(s), binary.AppendUvarint(nil, id))
}

func (d *dict) text(id uint64) (string, error) {
	if s, ok := d.seen[id]; ok {
		return s, nil
	}
	v := d.ids.Get(u64(id))
	if v == nil {
		return "", corrupt("dictionary entry %d is missing", id)
	}
	s := string(v)
	if d.seen == nil {
		d.seen = make(map[uint64]string)
	}
	if len(d.seen) < maxSeen {
		d.seen[id] = s
	}
	return s, nil
}

// maxSeen bounds a dict's memory of text read: one walk's distinct text.
const maxSeen = 4096
