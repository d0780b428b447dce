package audit

import (
	"bufio"
	"encoding/json"
	"io"
	"time"

	"github.com/keybrake/keybrake/policy"
)

// Query selects records. The zero Query selects every record; each set field
// narrows it.
type Query struct {
	Since     time.Time       // records at or after Since
	Until     time.Time       // records before Until
	Agent     string          // exactly this agent
	Vendor    string          // exactly this vendor ("stripe")
	Decision  policy.Decision // exactly this decision
	Customer  string          // calls whose subject is this customer
	Run       string          // calls made for exactly this run
	Principal string          // calls made on behalf of exactly this principal
	Limit     int             // at most this many records, oldest first; 0 is no limit
	// After selects the records whose ID is greater than After. A store
	// numbers records in the order it writes them, so a reader that
	// passes the last ID it saw (as `keybrake audit --follow` does) gets
	// every record written since, each once, with no window re-read.
	// With After set, records come in ID order rather than Time order.
	After uint64
	// ByID asks for ID order (the order the store wrote the records)
	// without After: the first read of a follower, whose last ID then
	// says exactly where it stands.
	ByID bool
}

// InIDOrder reports whether q's records come in ID order: After or ByID
// is set.
func (q Query) InIDOrder() bool { return q.After > 0 || q.ByID }

// Match reports whether r is selected by q, all but Limit.
func (q Query) Match(r *Record) bool {
	switch {
	case !q.Since.IsZero() && r.Time.Before(q.Since):
		return false
	case !q.Until.IsZero() && !r.Time.Before(q.Until):
		return false
	case r.ID <= q.After:
		return false
	case q.Agent != "" && r.Agent != q.Agent:
		return false
	case q.Vendor != "" && r.Vendor != q.Vendor:
		return false
	case q.Decision != "" && r.Decision != q.Decision:
		return false
	case q.Customer != "" && r.Customer != q.Customer:
		return false
	case q.Run != "" && r.Run != q.Run:
		return false
	case q.Principal != "" && r.Principal != q.Principal:
		return false
	}
	return true
}

// JSONLines writes records as JSON Lines, one record a line. Call Write for
// each record and Flush at the end; it is not safe for concurrent use.
type JSONLines struct {
	w   *bufio.Writer
	enc *json.Encoder
}

// NewJSONLines returns a writer of records to w.
func NewJSONLines(w io.Writer) *JSONLines {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &JSONLines{w: bw, enc: enc}
}

// Write writes one record.
func (j *JSONLines) Write(r *Record) error { return j.enc.Encode(r) }

// Flush writes what is buffered.
func (j *JSONLines) Flush() error { return j.w.Flush() }
