package bolt

import (
	"bytes"

	"go.etcd.io/bbolt"
)

// pageFill keeps the pages of the records and idempotency buckets full when
// calls overlap. bbolt splits a page that overflows at its bucket's
// FillPercent, which is not kept in the file: each write transaction sets
// it, and the writer sets it before every commit from what it has seen.
//
// Records. A record grows when it completes (a Stripe refund from about 110
// bytes reserved to 170 settled). Records are appended, so bbolt splits only
// the last page, where the newest records are. A serial caller's records
// are completed by the time their page splits, and a page filled to nine
// tenths stays so. With 64 calls in flight the page splits while every
// record on it is still reserved; when they complete, the page overflows
// and splits again into one page nine tenths full and one nearly empty that
// no record will ever join (TestRecordPagesStayFull: 43% of each page used,
// against 86% serially). So the split leaves room for the growth still to
// come: nine tenths, divided by how much the last page's records will grow.
//
// Idempotency keys. Their order is the SDK's: stripe-go's keys start with
// the time in nanoseconds, so each agent's keys go at the end of its own
// run of keys, and bbolt's default of splitting pages in half leaves every
// page half empty for good (54% used in bench/calls -million); random keys
// (UUIDs, as stripe-node and stripe-python send) land anywhere, where half
// is right. While most new keys go after every key committed before in
// their scope, pages split at four fifths: the fifth left is for the keys
// of calls that were slower to reach the store than later ones.
type pageFill struct {
	// Decayed sums of the bytes of completed records before and after
	// their completion: their ratio is how much a record grows.
	before, after float64
	// keysAtEnd is the decayed share of new idempotency keys put after
	// every key of their scope committed before them.
	keysAtEnd float64
	// added are the keys put in the transaction so far.
	added [][]byte
}

const (
	// fullPage is how full a page of records is left when they are not
	// expected to grow: one changed again (reconciled, resettled) may
	// still grow a little.
	fullPage = 0.9
	// fillTail is how many of the newest records stand for the last page
	// (about 35 reserved refunds fill one).
	fillTail = 32
	// fillNewest is how many of them a split leaves on the new last page.
	fillNewest = 4
	// fillDecay weighs the last few hundred completions or keys.
	fillDecay = 0.99
	// orderedKeys is the fill of idempotency pages while keys come in
	// order.
	orderedKeys = 0.8
	// maxAddedSkip bounds the keys of one transaction keyAdded steps over.
	maxAddedSkip = 64
)

// grew notes that a completion changed a record of before bytes into one
// of after bytes.
func (f *pageFill) grew(before, after int) {
	if before <= 0 || after <= 0 {
		return
	}
	// On its page a record also takes bbolt's element header and its key.
	const overhead = 16 + 8
	f.before = f.before*fillDecay + float64(before+overhead)
	f.after = f.after*fillDecay + float64(after+overhead)
}

// keyAdded notes that ikey is about to be put in b, the idempotency bucket:
// whether it is new, and if so whether it goes after every key of its
// scope committed before this transaction (keys put in it do not count:
// calls in one batch reach the store in no particular order).
func (f *pageFill) keyAdded(b *bbolt.Bucket, ikey []byte) {
	c := b.Cursor()
	k, _ := c.Seek(ikey)
	if bytes.Equal(k, ikey) {
		return // a key used again: no new entry
	}
	for n := 0; k != nil && n < maxAddedSkip && f.inTx(k); n++ {
		k, _ = c.Next()
	}
	atEnd := 0.0
	if k == nil || !bytes.HasPrefix(k, idemScope(ikey)) {
		atEnd = 1
	}
	f.keysAtEnd = f.keysAtEnd*fillDecay + atEnd*(1-fillDecay)
	f.added = append(f.added, ikey)
}

// inTx reports whether k was put in this transaction.
func (f *pageFill) inTx(k []byte) bool {
	for _, a := range f.added {
		if bytes.Equal(a, k) {
			return true
		}
	}
	return false
}

// idemScope is the part of an idempotency bucket key that names whose key
// it is (agent, vendor, account), before the key the caller sent.
func idemScope(ikey []byte) []byte {
	if len(ikey) > 16 && ikey[0] == 1 {
		return ikey[:len(ikey)-16]
	}
	return ikey[:bytes.LastIndexByte(ikey, 0)+1]
}

// set gives the buckets of tx, a transaction about to commit, the fill
// their pages should split at, and starts the next transaction's notes.
func (f *pageFill) set(tx *bbolt.Tx) {
	if f.keysAtEnd >= 0.5 {
		tx.Bucket(bucketIdem).FillPercent = orderedKeys
	}
	clear(f.added)
	f.added = f.added[:0]
	f.setRecords(tx)
}

// setRecords gives the records bucket the fill its last page should split
// at: fullPage when its records are completed, less in proportion to the
// share still reserved and how much those grow.
func (f *pageFill) setRecords(tx *bbolt.Tx) {
	b := recordsBucket(tx)
	if b == nil || f.before == 0 {
		return
	}
	growth := min(max(f.after/f.before, 1), 2)
	last := b.Sequence()
	if last <= fillTail {
		return
	}
	reserved := 0
	c := tx.Bucket(bucketPending).Cursor()
	for k, _ := c.Seek(u64(last - fillTail + 1)); k != nil && reserved < fillTail; k, _ = c.Next() {
		reserved++
	}
	// The page a split closes holds the oldest records of the last one:
	// all but the newest few.
	share := float64(max(reserved-fillNewest, 0)) / (fillTail - fillNewest)
	b.FillPercent = max(fullPage/(1+(growth-1)*share), 0.5)
}

// recordSize is the bytes record id takes in tx, 0 when it is absent.
func recordSize(tx *bbolt.Tx, id uint64) int {
	return len(tx.Bucket(bucketRecords).Get(u64(id)))
}

// appendOnly returns a bucket whose keys are written in increasing order,
// with bbolt told to fill its pages: the default (half) leaves half of
// every page empty when keys only ever go at the end.
func appendOnly(tx *bbolt.Tx, name []byte) *bbolt.Bucket {
	b := tx.Bucket(name)
	if b != nil && tx.Writable() {
		b.FillPercent = 1.0
	}
	return b
}

// recordsBucket leaves a tenth of each page free, for a record that grows
// again after its completion (a reconciled estimate). Before a commit the
// writer lowers that while the last page's records are still reserved
// (pageFill).
func recordsBucket(tx *bbolt.Tx) *bbolt.Bucket {
	b := tx.Bucket(bucketRecords)
	if b != nil && tx.Writable() {
		b.FillPercent = 0.9
	}
	return b
}
