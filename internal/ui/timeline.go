package ui

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// maxBuckets bounds a timeline: a step is chosen so that a window has at
// most this many (15 minutes at one second).
const maxBuckets = 900

// steps are the bucket widths a timeline may have, narrowest first.
var steps = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}

// stepFor is the narrowest step that cuts [since, until) in at most
// maxBuckets.
func stepFor(window time.Duration) time.Duration {
	for _, s := range steps {
		if window <= s*maxBuckets {
			return s
		}
	}
	return steps[len(steps)-1]
}

// counts is calls per decision.
type counts map[policy.Decision]int

// moved is money per currency, in micros.
type moved map[money.Currency]int64

func (m moved) add(a money.Amount) {
	if a.Micros != 0 && a.Currency != "" {
		m[a.Currency] += a.Micros
	}
}

// MarshalJSON writes each currency's sum as an exact decimal.
func (m moved) MarshalJSON() ([]byte, error) {
	out := make(map[string]string, len(m))
	for c, n := range m {
		out[string(c)] = money.Amount{Micros: n, Currency: c}.Decimal()
	}
	return jsonMarshal(out)
}

type bucket struct {
	T time.Time `json:"t"`
	counts
	Moved moved `json:"moved,omitempty"`
}

// MarshalJSON flattens the counts beside t: {"t":..., "capped": 40}.
func (b bucket) MarshalJSON() ([]byte, error) {
	m := map[string]any{"t": b.T}
	for d, n := range b.counts {
		m[string(d)] = n
	}
	if len(b.Moved) > 0 {
		m["moved"] = b.Moved
	}
	return jsonMarshal(m)
}

// mark is a moment the page marks on the timeline: the first refused call
// of the window, and every event record (a policy reload, the kill
// switch, a halt or revocation).
type mark struct {
	T      time.Time `json:"t"`
	Kind   string    `json:"kind"`
	Label  string    `json:"label"`
	Record uint64    `json:"record"`
}

// maxMarks bounds the marks of one timeline: a policy file rewritten in a
// loop must not bury the chart.
const maxMarks = 100

type timeline struct {
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	StepMS  int64     `json:"step_ms"`
	Buckets []bucket  `json:"buckets"`
	Totals  counts    `json:"totals"`
	Moved   moved     `json:"moved"`
	Marks   []mark    `json:"marks"`
	Records int       `json:"records"`
}

func (s *Server) timeline(w http.ResponseWriter, r *http.Request) {
	q, err := s.window(r.URL.Query(), "agent", "vendor")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tl, err := s.buildTimeline(r, q)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "reading the records: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, tl)
}

// buildTimeline reads q's window once, bucketing its calls.
func (s *Server) buildTimeline(r *http.Request, q audit.Query) (*timeline, error) {
	step := stepFor(q.Until.Sub(q.Since))
	n := int((q.Until.Sub(q.Since) + step - 1) / step)
	tl := &timeline{Since: q.Since, Until: q.Until, StepMS: step.Milliseconds(), Buckets: make([]bucket, n), Totals: counts{}, Moved: moved{}, Marks: []mark{}}
	for i := range tl.Buckets {
		tl.Buckets[i] = bucket{T: q.Since.Add(time.Duration(i) * step), counts: counts{}}
	}
	refused := false
	err := s.opts.Source.Query(r.Context(), q, func(rec *audit.Record) error {
		if rec.Event != "" {
			if len(tl.Marks) < maxMarks {
				tl.Marks = append(tl.Marks, mark{T: rec.Time, Kind: rec.Event, Label: rec.Reason, Record: rec.ID})
			}
			return nil
		}
		i := int(rec.Time.Sub(q.Since) / step)
		if i < 0 || i >= n { // the store selected it: only a clock at its edge
			return nil
		}
		b := &tl.Buckets[i]
		b.counts[rec.Decision]++
		tl.Totals[rec.Decision]++
		tl.Records++
		if rec.Settled.Micros != 0 {
			if b.Moved == nil {
				b.Moved = moved{}
			}
			b.Moved.add(rec.Settled)
			tl.Moved.add(rec.Settled)
		}
		if !refused && rec.Decision != policy.Allowed {
			refused = true
			label := fmt.Sprintf("first %s call", rec.Decision)
			if rec.Rule != "" {
				label += ": " + rec.Rule
			}
			tl.Marks = append(tl.Marks, mark{T: rec.Time, Kind: "first_refused", Label: label, Record: rec.ID})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(tl.Marks, func(i, j int) bool { return tl.Marks[i].T.Before(tl.Marks[j].T) })
	return tl, nil
}
