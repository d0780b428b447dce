package bolt

import "go.etcd.io/bbolt"

// recordFill keeps the records bucket's pages full when calls overlap.
//
// A record grows when it completes (a Stripe refund from about 110 bytes
// reserved to 170 settled). Records are appended, so bbolt splits only the
// last page, where the newest records are. A serial caller's records are
// completed by the time their page splits, and a page filled to nine tenths
// stays so. With 64 calls in flight the page splits while every record on
// it is still reserved; when they complete, the page overflows and splits
// again into one page nine tenths full and one nearly empty that no record
// will ever join (TestRecordPagesStayFull: 43% of each page used, against
// 86% serially). So the split leaves room for the growth still to come:
// nine tenths, divided by how much the last page's records will grow.
//
// It belongs to the writer goroutine: Complete's op notes each record's
// growth, and commit sets the fill before the transaction spills.
type recordFill struct {
	// Decayed sums of the bytes of completed records before and after
	// their completion: their ratio is how much a record grows.
	before, after float64
}

const (
	// fullRecords is how full a page of completed records is left: a
	// record changed again (reconciled, resettled) may still grow a little.
	fullRecords = 0.9
	// fillTail is how many of the newest records stand for the last page
	// (about 35 reserved refunds fill one).
	fillTail = 32
	// fillNewest is how many of them a split leaves on the new last page.
	fillNewest = 4
	// fillDecay weighs the last few hundred completions.
	fillDecay = 0.99
)

// grew notes that a completion changed a record of before bytes into one
// of after bytes.
func (f *recordFill) grew(before, after int) {
	if before <= 0 || after <= 0 {
		return
	}
	f.before = f.before*fillDecay + float64(before)
	f.after = f.after*fillDecay + float64(after)
}

// set gives the records bucket of tx, a transaction about to commit, the
// fill its last page should split at: fullRecords when its records are
// completed, less in proportion to the share still reserved and how much
// those grow.
func (f *recordFill) set(tx *bbolt.Tx) {
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
	b.FillPercent = max(fullRecords/(1+(growth-1)*share), 0.5)
}

// recordSize is the bytes record id takes in tx, 0 when it is absent.
func recordSize(tx *bbolt.Tx, id uint64) int {
	return len(tx.Bucket(bucketRecords).Get(u64(id)))
}
