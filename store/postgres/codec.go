package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
)

// maxKeyLen bounds counter, idempotency and fact keys: they are btree
// index keys, and PostgreSQL refuses index rows past about 2.7 kB.
const maxKeyLen = 1024

// columns are what a record's row holds besides its body.
type columns struct {
	TimeNS    int64
	Agent     string
	Vendor    string
	Decision  string
	Customer  string
	Outcome   string
	Run       string
	Principal string
}

func columnsOf(r *audit.Record) columns {
	return columns{timeNS(r.Time), r.Agent, r.Vendor, string(r.Decision), r.Customer, string(r.Outcome), r.Run, r.Principal}
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// timeNS is t in unix nanoseconds, clamped to the int64 range; that keeps
// the order, and exact comparison is left to audit.Query.Match.
func timeNS(t time.Time) int64 {
	switch {
	case t.Before(minNanoTime):
		return math.MinInt64
	case t.After(maxNanoTime):
		return math.MaxInt64
	default:
		return t.UnixNano()
	}
}

func encodeRecord(r *audit.Record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: record %d: %w", r.ID, err)
	}
	return b, nil
}

func decodeRecord(id uint64, b []byte) (*audit.Record, error) {
	r := new(audit.Record)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, corrupt("record %d: %v", id, err)
	}
	if r.ID != id {
		return nil, corrupt("record %d says it is %d", id, r.ID)
	}
	return r, nil
}

// checkEncodable refuses a record whose JSON form would not read back as
// the same record (as store/bolt does), or that JSONB cannot hold (a
// string with U+0000 in it). It returns the encoded record.
func checkEncodable(r *audit.Record) ([]byte, error) {
	b, err := encodeRecord(r)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(b, []byte(`\u0000`)) {
		return nil, fmt.Errorf("store/postgres: record %d holds a NUL character, which PostgreSQL's jsonb and text cannot store", r.ID)
	}
	var back audit.Record
	if err := json.Unmarshal(b, &back); err != nil {
		return nil, fmt.Errorf("store/postgres: record cannot be read back: %w", err)
	}
	if want, got := normalize(*r), normalize(back); !reflect.DeepEqual(want, got) {
		return nil, fmt.Errorf("store/postgres: record would not read back as written (an amount with a currency other than Amount's?):\n wrote %+v\n  read %+v", want, got)
	}
	return b, nil
}

func normalize(r audit.Record) audit.Record {
	r.Time = r.Time.Round(0).UTC()
	r.Duration = time.Duration(r.Duration.Microseconds()) * time.Microsecond
	for _, a := range []*money.Amount{&r.Amount, &r.Reserved, &r.Settled} {
		if a.Micros == 0 {
			a.Currency = ""
		}
	}
	if len(r.Params) == 0 {
		r.Params = nil
	}
	if len(r.Holds) == 0 {
		r.Holds = nil
	}
	if len(r.Recipients) == 0 {
		r.Recipients = nil
	}
	if len(r.Senders) == 0 {
		r.Senders = nil
	}
	return r
}
