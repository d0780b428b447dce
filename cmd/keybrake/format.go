package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// parseWhen reads --since and --until: a duration meaning that long before
// now (a Go duration such as 90s, 5m or 1h30m; days and weeks: 1d, 7d,
// 2w, 1d12h; or words: "10 minutes", "2 days"), today or yesterday (the
// start of that UTC day), or an RFC 3339 time.
func parseWhen(flagName, s string, now time.Time) (time.Time, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "today":
		return startOfDay(now), nil
	case "yesterday":
		return startOfDay(now).AddDate(0, 0, -1), nil
	case "now":
		return now, nil
	}
	if d, ok := parseAgo(s); ok {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--%s %s: a duration means that long before now; give it without a sign", flagName, s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want a duration before now (90s, 5m, 1h30m, 1d, 2w, \"10 minutes\"), today, yesterday or an RFC 3339 time (2026-01-02T15:04:05Z)", flagName, s)
}

func startOfDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// units are the words parseAgo takes after a number, and what they mean.
var units = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

// parseAgo reads a duration: Go's own form, or days and weeks before one
// ("1d", "2w", "1d12h"), or a number and a word ("10 minutes").
func parseAgo(s string) (time.Duration, bool) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, true
	}
	if n, word, ok := strings.Cut(strings.TrimSpace(s), " "); ok {
		k, err := strconv.ParseInt(n, 10, 32)
		u, known := units[strings.ToLower(strings.TrimSpace(word))]
		if err != nil || !known {
			return 0, false
		}
		return time.Duration(k) * u, true
	}
	// Leading days and weeks, then anything Go reads.
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || (rest[i] != 'd' && rest[i] != 'w') {
			break
		}
		k, err := strconv.ParseInt(rest[:i], 10, 32)
		if err != nil {
			return 0, false
		}
		total += time.Duration(k) * units[rest[i:i+1]]
		rest = rest[i+1:]
	}
	if rest == s {
		return 0, false
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, false
		}
		total += d
	}
	return total, true
}

// printer writes records in one --format.
type printer interface {
	print(r *audit.Record) error
	// flush writes what is buffered; a follower flushes after each poll.
	flush() error
}

// formats are the values of --format.
var formats = []string{"table", "jsonl", "csv"}

// newPrinter returns the printer of format; streaming means records keep
// coming (--follow), so a table cannot wait for all of them to size its
// columns.
func newPrinter(format string, w io.Writer, sc screen, streaming bool) (printer, bool) {
	switch format {
	case "jsonl":
		return &jsonlPrinter{jl: audit.NewJSONLines(w), each: streaming}, true
	case "csv":
		return newCSVPrinter(w, streaming), true
	case "table":
		return newTable(w, sc, streaming, recordColumns), true
	}
	return nil, false
}

type jsonlPrinter struct {
	jl   *audit.JSONLines
	each bool
}

func (p *jsonlPrinter) print(r *audit.Record) error {
	if err := p.jl.Write(r); err != nil {
		return err
	}
	if p.each {
		return p.jl.Flush()
	}
	return nil
}

func (p *jsonlPrinter) flush() error { return p.jl.Flush() }

// csvHeader is the first row of --format csv.
var csvHeader = []string{"time", "id", "agent", "vendor", "method", "path", "decision", "code", "rule", "status",
	"amount", "currency", "outcome", "customer", "reason", "settled", "event"}

type csvPrinter struct {
	w      *csv.Writer
	each   bool
	header bool
}

func newCSVPrinter(w io.Writer, each bool) *csvPrinter {
	return &csvPrinter{w: csv.NewWriter(w), each: each}
}

func (p *csvPrinter) writeHeader() error {
	if p.header {
		return nil
	}
	p.header = true
	return p.w.Write(csvHeader)
}

func (p *csvPrinter) print(r *audit.Record) error {
	if err := p.writeHeader(); err != nil {
		return err
	}
	cur := r.Amount.Currency
	if cur == "" {
		cur = r.Settled.Currency
	}
	row := []string{
		r.Time.UTC().Format(time.RFC3339Nano), strconv.FormatUint(r.ID, 10),
		cell(r.Agent), cell(r.Vendor), cell(r.Method), cell(r.Path), string(r.Decision), cell(r.Code), cell(r.Rule),
		strconv.Itoa(r.Status), major(r.Amount), string(cur), string(r.Outcome), cell(r.Customer), cell(r.Reason),
		major(r.Settled), cell(r.Event),
	}
	if err := p.w.Write(row); err != nil {
		return err
	}
	if p.each {
		return p.flush()
	}
	return nil
}

func (p *csvPrinter) flush() error {
	// An empty result still gets its header: a script reads the columns.
	if err := p.writeHeader(); err != nil {
		return err
	}
	p.w.Flush()
	return p.w.Error()
}

// cell keeps a spreadsheet from running text an agent chose as a formula
// (OWASP's CSV injection advice): a text cell starting with = + - @ or a
// control character gets a leading quote. Numbers are written by us and
// never quoted.
func cell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r', '\n':
		return "'" + s
	}
	return s
}

// major is an amount in major units without its code, "" for none.
func major(a money.Amount) string {
	if a.Currency == "" {
		return ""
	}
	return a.Decimal()
}

// showAmount is "10.00 USD", "" for none.
func showAmount(a money.Amount) string {
	if a.Currency == "" && a.Micros == 0 {
		return ""
	}
	return a.String()
}

// column is one column of a table.
type column struct {
	name  string
	max   int  // widest it gets; 0: the rest of the line
	min   int  // narrowest it gets to fit the terminal; 0: never narrowed
	right bool // numbers align right
	whole bool // never cut (amounts): a wider cell pushes the rest of its row
	// drop is when the column goes on a terminal too narrow for the
	// columns at their narrowest: 1 first, then 2, ...; 0 never.
	drop int
	// color, when set, is the colour of a cell (on a terminal that takes
	// colour); "" for none.
	color func(cell string) string
}

// recordColumns are the table's columns. On a narrow terminal the call,
// the agent and the decision narrow first, then the ID, the time, the outcome, the
// agent and the call go, in that order: the decision, the amount and the
// reason are what an on-call reads, and stay. Amounts are never cut: a
// cut amount is a wrong amount.
var recordColumns = []column{
	{name: "TIME (UTC)", max: 19, drop: 2}, {name: "ID", max: 10, right: true, whole: true, drop: 1},
	{name: "AGENT", max: 20, min: 8, drop: 4}, {name: "CALL", max: 48, min: 16, drop: 5},
	{name: "DECISION", max: 18, min: 14, color: colorOfDecision},
	{name: "AMOUNT", max: 16, right: true, whole: true}, {name: "OUTCOME", max: 24, whole: true, drop: 3}, {name: "REASON", min: 20},
}

// colorOfDecision colours a DECISION cell ("capped 402") by its decision.
func colorOfDecision(cell string) string {
	d, _, _ := strings.Cut(cell, " ")
	return decisionColor(policy.Decision(d))
}

func recordRow(r *audit.Record) []string {
	decision := string(r.Decision)
	if r.Event != "" {
		decision = r.Event
	}
	call := strings.Join(strings.Fields(r.Vendor+" "+r.Method+" "+r.Path), " ")
	if r.Status != 0 {
		decision += " " + strconv.Itoa(r.Status)
	}
	outcome := string(r.Outcome)
	switch r.Outcome {
	case audit.Settled:
		outcome += " " + showAmount(r.Settled)
		if r.Estimated {
			outcome += " (est.)"
		}
	case audit.Unknown:
		outcome += " " + showAmount(r.Reserved) + "?"
	}
	reason := r.Reason
	if r.Code != "" {
		reason = r.Code + ": " + reason
	}
	return []string{r.Time.UTC().Format("2006-01-02 15:04:05"), strconv.FormatUint(r.ID, 10), r.Agent,
		call, decision, showAmount(r.Amount), strings.TrimSpace(outcome), reason}
}

// table writes aligned columns. Unless streaming, it keeps the rows and
// sizes each column to its widest cell (up to the column's max); streaming,
// it uses the maxima from the first row on. Cells wider than their column
// are cut with "~"; the last column fills the width, when one is set.
type table struct {
	w         io.Writer
	width     int  // of the terminal; 0: no limit
	color     bool // colour the cells of columns that have a colour
	streaming bool
	cols      []column
	widths    []int // -1: the column is dropped
	rows      [][]string
	started   bool
}

func newTable(w io.Writer, sc screen, streaming bool, cols []column) *table {
	return &table{w: w, width: sc.width, color: sc.color, streaming: streaming, cols: cols}
}

func (t *table) print(r *audit.Record) error { return t.row(recordRow(r)) }

func (t *table) row(cells []string) error {
	for i := range cells {
		cells[i] = printable(cells[i])
	}
	if !t.streaming {
		t.rows = append(t.rows, cells)
		return nil
	}
	if !t.started {
		t.size(nil)
		if err := t.line(t.header(), true); err != nil {
			return err
		}
	}
	return t.line(cells, false)
}

func (t *table) header() []string {
	h := make([]string, len(t.cols))
	for i, c := range t.cols {
		h[i] = c.name
	}
	return h
}

// size sets the widths from rows (nil: the maxima), then narrows the
// columns that may be narrowed, widest first, until the line fits the
// terminal with the last column at its minimum.
func (t *table) size(rows [][]string) {
	t.started = true
	t.widths = make([]int, len(t.cols))
	for i, c := range t.cols {
		w := utf8.RuneCountInString(c.name)
		if rows == nil {
			w = max(w, c.max)
		}
		for _, r := range rows {
			w = max(w, utf8.RuneCountInString(r[i]))
		}
		if c.max > 0 {
			w = min(w, max(c.max, utf8.RuneCountInString(c.name)))
		}
		t.widths[i] = w
	}
	if t.width <= 0 {
		return
	}
	last := len(t.cols) - 1
	for {
		total := t.cols[last].min
		for i := range last {
			if t.widths[i] >= 0 {
				total += t.widths[i] + 2
			}
		}
		if total <= t.width {
			return
		}
		widest := -1
		for i := range last {
			c := t.cols[i]
			floor := max(c.min, utf8.RuneCountInString(c.name))
			if c.min > 0 && t.widths[i] > floor && (widest < 0 || t.widths[i] > t.widths[widest]) {
				widest = i
			}
		}
		if widest >= 0 {
			t.widths[widest]--
			continue
		}
		// As narrow as the columns get: drop the next one.
		next := -1
		for i := range last {
			if d := t.cols[i].drop; d > 0 && t.widths[i] >= 0 && (next < 0 || d < t.cols[next].drop) {
				next = i
			}
		}
		if next < 0 {
			return // only what must stay is left: the terminal wraps
		}
		t.widths[next] = -1
	}
}

// line writes one row; a header is never coloured.
func (t *table) line(cells []string, header bool) error {
	var b strings.Builder
	used := 0
	for i, c := range cells {
		w := t.widths[i]
		if w < 0 {
			continue
		}
		last := i == len(cells)-1
		if last {
			w = utf8.RuneCountInString(c)
			if t.width > 0 {
				w = min(w, max(t.width-used, t.cols[i].min, 12))
			}
		}
		if !t.cols[i].whole {
			c = cut(c, w)
		}
		w = max(w, utf8.RuneCountInString(c))
		pad := strings.Repeat(" ", w-utf8.RuneCountInString(c))
		if paint := t.cols[i].color; t.color && paint != nil && !header {
			if code := paint(c); code != "" {
				c = code + c + ansiReset
			}
		}
		switch {
		case last:
			b.WriteString(c)
		case t.cols[i].right:
			b.WriteString(pad + c + "  ")
		default:
			b.WriteString(c + pad + "  ")
		}
		used += w + 2
	}
	_, err := fmt.Fprintln(t.w, strings.TrimRight(b.String(), " "))
	return err
}

func (t *table) flush() error {
	if t.streaming {
		return nil
	}
	t.size(t.rows)
	if err := t.line(t.header(), true); err != nil {
		return err
	}
	for _, r := range t.rows {
		if err := t.line(r, false); err != nil {
			return err
		}
	}
	t.rows = nil
	return nil
}

// cut shortens s to n runes, marking the cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return string([]rune(s)[:n])
	}
	return string([]rune(s)[:n-1]) + "~"
}

// printable keeps what an agent or vendor wrote from driving the
// terminal: control characters (escape sequences, newlines) become spaces,
// invalid UTF-8 "?".
func printable(s string) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}
