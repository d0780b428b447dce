package bolt

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// Bucket names. They are part of the on-disk format (see doc.go).
var (
	bucketMeta     = []byte("meta")
	bucketRecords  = []byte("records")
	bucketTime     = []byte("time")
	bucketPending  = []byte("pending")
	bucketCounters = []byte("counters")
	bucketIdem     = []byte("idempotency")
	bucketFacts    = []byte("facts")
	bucketJournal  = []byte("journal")
	bucketAgent    = []byte("agent")
	bucketUnknown  = []byte("unknown")
	bucketDict     = []byte("dict")
	bucketStrings  = []byte("strings")
	bucketWindows  = []byte("windows")

	keySchema     = []byte("schema")
	keyCheckpoint = []byte("checkpoint")
)

// allBuckets is every bucket a store of the current schema holds.
var allBuckets = [][]byte{bucketMeta, bucketRecords, bucketTime, bucketPending, bucketCounters, bucketIdem, bucketFacts, bucketJournal,
	bucketAgent, bucketUnknown, bucketDict, bucketStrings, bucketWindows}

// The buckets schema versions 3 and 4 added: an upgrade from an older
// version creates them.
var (
	buckets3 = [][]byte{bucketAgent, bucketUnknown, bucketDict, bucketStrings}
	buckets4 = [][]byte{bucketWindows}
)

// Kinds of reservation kept in the pending bucket: Complete must know a
// replay from a reservation that holds money.
const (
	kindHolds  byte = 'h' // admitted: holds money (possibly taken over from an Unknown call)
	kindReplay byte = 'r' // replayed: holds nothing, the vendor replays a settled call
)

// errCorrupt marks data on disk that breaks the store's own invariants. It
// is an internal error: the operation that met it fails alone.
var errCorrupt = errors.New("store/bolt: corrupt data")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, args...))
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// timeKey orders records by time then ID. The nanoseconds are biased by
// 2^63 so that times before 1970 sort before later ones as unsigned bytes;
// times outside what an int64 of nanoseconds can hold (the zero time, say)
// are clamped, which keeps the order and leaves exact comparison to
// audit.Query.Match.
func timeKey(t time.Time, id uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, timeOrder(t))
	binary.BigEndian.PutUint64(b[8:], id)
	return b
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

func timeOrder(t time.Time) uint64 {
	var n int64
	switch {
	case t.Before(minNanoTime):
		n = math.MinInt64
	case t.After(maxNanoTime):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return uint64(n) ^ (1 << 63)
}

// Counters are three big-endian int64: settled, pending, unknown.
func encodeCounter(c store.Counter) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b[0:], uint64(c.Settled))
	binary.BigEndian.PutUint64(b[8:], uint64(c.Pending))
	binary.BigEndian.PutUint64(b[16:], uint64(c.Unknown))
	return b
}

func decodeCounter(key string, b []byte) (store.Counter, error) {
	if b == nil {
		return store.Counter{}, nil
	}
	if len(b) != 24 {
		return store.Counter{}, corrupt("counter %q is %d bytes, want 24", key, len(b))
	}
	c := store.Counter{
		Settled: int64(binary.BigEndian.Uint64(b[0:])),
		Pending: int64(binary.BigEndian.Uint64(b[8:])),
		Unknown: int64(binary.BigEndian.Uint64(b[16:])),
	}
	if c.Settled < 0 || c.Pending < 0 || c.Unknown < 0 {
		return store.Counter{}, corrupt("counter %q is negative: %+v", key, c)
	}
	if _, ok := checked.Total(c); !ok {
		return store.Counter{}, corrupt("counter %q overflows: %+v", key, c)
	}
	return c, nil
}

// agentKey orders one agent's records by time then ID, after the agent's
// dictionary id (0 for no agent; a uvarint, so no agent's keys are a
// prefix of another's).
func agentKey(agent uint64, t time.Time, id uint64) []byte {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+16), agent)
	b = binary.BigEndian.AppendUint64(b, timeOrder(t))
	return binary.BigEndian.AppendUint64(b, id)
}

// An idempotency key is stored as 0x01 | uvarint dictionary id of what
// comes before its last NUL | the 16 bytes of the UUID after it, when it
// ends in a canonical lowercase UUID (as the keys the SDKs make do), else
// as 0x00 | the key. idemKey returns nil when a key of the first kind
// cannot be there (its scope was never interned) and create is false.
func idemKey(d *dict, key string, create bool) ([]byte, error) {
	if i := lastNUL(key); i >= 0 && i+1 <= len(key) {
		if u, ok := compactUUID(key[i+1:]); ok {
			scope := key[:i+1]
			var id uint64
			var err error
			if create {
				id, err = d.intern(scope)
			} else {
				id, err = d.lookup(scope)
			}
			if err != nil || id == 0 {
				return nil, err
			}
			b := binary.AppendUvarint([]byte{1}, id)
			return append(b, u[:]...), nil
		}
	}
	return append([]byte{0}, key...), nil
}

func lastNUL(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// An idempotency entry is the record ID (8 bytes) followed by the
// fingerprint: 0x01 and 32 bytes for a SHA-256 in lowercase hex (as the
// transport's are), else 0x00 and the fingerprint.
func encodeIndex(id uint64, fingerprint string) []byte {
	b := make([]byte, 8, 8+1+len(fingerprint))
	binary.BigEndian.PutUint64(b, id)
	if len(fingerprint) == 64 && lowerHex([]byte(fingerprint)) {
		b = append(b, 1)
		if b, err := hex.AppendDecode(b, []byte(fingerprint)); err == nil {
			return b
		}
		b = b[:8]
	}
	b = append(b, 0)
	return append(b, fingerprint...)
}

func decodeIndex(key []byte, b []byte) (id uint64, fingerprint string, err error) {
	if len(b) < 9 {
		return 0, "", corrupt("idempotency entry %q is %d bytes", key, len(b))
	}
	id = binary.BigEndian.Uint64(b)
	if id == 0 {
		return 0, "", corrupt("idempotency entry %q points at record 0", key)
	}
	switch b[8] {
	case 0:
		return id, string(b[9:]), nil
	case 1:
		return id, hex.EncodeToString(b[9:]), nil
	}
	return 0, "", corrupt("idempotency entry %q has fingerprint kind %d", key, b[8])
}

// checkEncodable refuses a record that audit.Record's JSON form, the
// form of every dump and of the audit log, cannot hold as written, so that
// the store never keeps a record its own log would show otherwise. That
// form keeps time only as UTC without the monotonic reading, durations to
// the microsecond, zero amounts without their currency and empty maps and
// slices as nil, which the store's reads give too. What it cannot hold at
// all is checked here, without encoding: an amount with a currency other
// than the record's, or a nonzero one without any; a currency the money
// package does not know; text that is not UTF-8 (JSON would replace the
// bytes); a year outside 0 to 9999; a hold with a negative Window (the
// JSON form reads only a positive one). (Every write records a negative
// duration as zero before it gets here.)
func checkEncodable(r *audit.Record) error {
	var cur money.Currency
	for _, a := range [...]money.Amount{r.Amount, r.Reserved, r.Settled} {
		switch {
		case a.Currency == "" && a.Micros != 0:
			return fmt.Errorf("store/bolt: record has an amount without a currency: %d micros", a.Micros)
		case a.Currency == "":
		case cur != "" && a.Currency != cur:
			return fmt.Errorf("store/bolt: record mixes %s and %s (an amount with a currency other than Amount's?)", cur, a.Currency)
		default:
			if _, ok := a.Currency.Exponent(); !ok {
				return fmt.Errorf("store/bolt: record has an unknown currency %q", a.Currency)
			}
			cur = a.Currency
		}
	}
	if y := r.Time.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("store/bolt: record's time %v is outside the years 0 to 9999", r.Time)
	}
	for _, t := range [...]string{r.Agent, r.Vendor, r.Method, r.Host, r.Path, r.Operation, r.Event, string(r.Decision),
		r.Code, r.Rule, r.Reason, r.IdempotencyKey, r.KeyID, r.Customer, r.Account, r.Run, r.Principal, string(r.Outcome),
		r.Object, r.Lookup, r.RequestID, r.PolicyHash, r.PrevHash, r.Approval, r.RefundOf} {
		if !utf8.ValidString(t) {
			return fmt.Errorf("store/bolt: record holds text that is not UTF-8: %q", t)
		}
	}
	if sh := r.Shadow; sh != nil && !(utf8.ValidString(string(sh.Decision)) && utf8.ValidString(sh.Rule) &&
		utf8.ValidString(sh.Code) && utf8.ValidString(sh.Policy)) {
		return fmt.Errorf("store/bolt: record holds a shadow decision that is not UTF-8: %+v", *sh)
	}
	if q := r.Priced; q != nil && (!utf8.ValidString(q.Item) || !utf8.ValidString(q.Destination)) {
		return fmt.Errorf("store/bolt: record holds a price query that is not UTF-8: %q, %q", q.Item, q.Destination)
	}
	for _, t := range slices.Concat(r.Recipients, r.Senders) {
		if !utf8.ValidString(t) {
			return fmt.Errorf("store/bolt: record holds a recipient or sender that is not UTF-8: %q", t)
		}
	}
	for k, v := range r.Params {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("store/bolt: record holds a parameter that is not UTF-8: %q=%q", k, v)
		}
	}
	for _, h := range r.Holds {
		if !utf8.ValidString(h.Key) || !utf8.ValidString(h.Unit) {
			return fmt.Errorf("store/bolt: record holds a hold that is not UTF-8: %q, %q", h.Key, h.Unit)
		}
		if h.Window < 0 {
			return fmt.Errorf("store/bolt: record holds a hold on %q with a negative window: %v", h.Key, h.Window)
		}
	}
	return nil
}
