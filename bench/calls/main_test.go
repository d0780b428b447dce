package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The measurements with tiny counts: every call is answered (an error
// fails the run) and the tables have every row. No timing is asserted; a
// shared machine makes any figure possible.

var targets = []string{
	"(1) added p50, serial / bbolt commit p50",
	"(1) added p99, serial / bbolt commit p99",
	"(2) calls/s serial / per-call fsync serial",
	"(3) calls/s at 4 / bare stripe-go at 4",
	"(3) calls/s at 4 / per-call fsync at 4",
	"(8) VmRSS growth after warm-up / 20 MiB",
	"(8) RssAnon growth (VmRSS but the mapped file)",
}

// TestMain lets the test binary be the RSS process, as the bench binary
// is: rssProcess runs os.Executable.
func TestMain(m *testing.M) {
	if spec := os.Getenv(rssEnv); spec != "" {
		if err := rssChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCallsTableHasEveryRow(t *testing.T) {
	var out bytes.Buffer
	cfg := config{serial: 10, parallel: 40, callers: 4, warmup: 5, rounds: 2, rssCalls: 100}
	if err := runCalls(&out, cfg); err != nil {
		t.Fatalf("runCalls: %v\n%s", err, out.String())
	}
	table := out.String()
	for _, callers := range []int{1, cfg.callers} {
		for _, v := range variants {
			row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(v.label) + fmt.Sprintf(`\s+%d\s+\d+ µs\s+\d+ µs\s+\d+\s+(\d+|-)$`, callers))
			if !row.MatchString(table) {
				t.Errorf("no row for %s at %d callers", v.label, callers)
			}
		}
	}
	for _, target := range targets {
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `\s+\S+( \S+)?\s+\S+( \S+)?\s+-?\d+\.\d\dx\s+[<>]=\d\.\dx\s+(MET|NOT met)$`)
		if !row.MatchString(table) {
			t.Errorf("no target row %q", target)
		}
	}
	for _, line := range []string{"after warm-up / peak / at the end: VmRSS ", "(4) pool: at 4 callers keybrake dialled the fake ",
		"The floor under (1) and (2): bare bbolt making a refund's puts", "  The same puts in one bucket: p50 "} {
		if !strings.Contains(table, line) {
			t.Errorf("no line %q", line)
		}
	}
	if !strings.Contains(table, ": all MET.") && !strings.Contains(table, ": NOT all met.") {
		t.Error("no verdict on the targets")
	}
	if t.Failed() {
		t.Logf("the table:\n%s", table)
	}
}

func TestMillionTableHasEveryRow(t *testing.T) {
	var out bytes.Buffer
	cfg := config{callers: 4, million: true, records: 300, span: 2 * time.Hour}
	if err := runMillion(&out, cfg); err != nil {
		t.Fatalf("runMillion: %v\n%s", err, out.String())
	}
	table := out.String()
	rows := []struct {
		label   string
		records string // the records column: a count, or nothing
		target  bool
	}{
		{"bytes per record on disk (file / records)", "", true},
		{"keybrake status (admin.Local.Status)", `\d+`, true},
		{"audit --agent refund-bot --since 1h", `\d+`, true},
		{"a 1-minute window, every agent", `\d+`, true},
		{"page: first data (now, 15-min timeline, records)", `\d+`, true},
		{"page: a 90-second timeline", `\d+`, true},
		{"page: a 24-hour timeline (", "300", false},
		{"whole history of refund-bot", "297", false},
		{"whole history of audit-bot", "3", false},
		{"Open (keybrake.Open)", "", true},
		{"Close right after Open", "", true},
		{"Close during a Prune", "", true},
	}
	for _, r := range rows {
		pattern := `(?m)^` + regexp.QuoteMeta(r.label) + `.*\s\d+(\.\d+)? (B|ms)`
		if r.records != "" {
			pattern += `\s+` + r.records
		}
		if r.target {
			pattern += `\s+<= \d+ (B|ms)\s+(MET|NOT met)$`
		} else {
			pattern += `\s*$`
		}
		if !regexp.MustCompile(pattern).MatchString(table) {
			t.Errorf("no row %q", r.label)
		}
	}
	if !strings.Contains(table, "Targets at 300 records: ") {
		t.Error("no verdict on the targets")
	}
	if t.Failed() {
		t.Logf("the table:\n%s", table)
	}
}
