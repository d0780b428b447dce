package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/keybrake/keybrake/internal/testenv"
)

// TestMain lets the test binary be one of the measurement's processes, as
// the command is when it runs itself again.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	os.Exit(m.Run())
}

// The measurement with tiny counts: every process answers every call (an
// error fails the run) and the table has every row. No timing is
// asserted; a shared machine makes any figure possible.
func TestTableHasEveryRow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a PostgreSQL schema per measurement")
	}
	cfg := config{dsn: testenv.PostgresURL(t), duration: 300 * time.Millisecond, rounds: 1,
		cells: []cell{{1, 1}, {4, 2}, {64, 1}}, trials: 2}
	var out bytes.Buffer
	if err := run(&out, cfg); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	table := out.String()
	for _, c := range cfg.cells {
		for i, v := range variants {
			ratio := `-`
			if i > 0 {
				ratio = `\d+\.\d\dx`
			}
			row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(v.label) + fmt.Sprintf(`\s+%d\s+%d\s+\d+ µs\s+\d+ µs\s+\d+\s+%s$`, c.procs, c.callers, ratio))
			if !row.MatchString(table) {
				t.Errorf("no row for %s at %d callers over %d processes", v.label, c.callers, c.procs)
			}
		}
	}
	// The embedded store's row and ceiling in the cells of one process,
	// and only there: a bbolt file is one process's.
	for _, c := range cfg.cells {
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(embeddedVariant.label) + fmt.Sprintf(`\s+%d\s+%d\s+\d+ µs\s+\d+ µs\s+\d+\s+\d+\.\d\dx$`, c.procs, c.callers))
		ceiling := regexp.MustCompile(`(?m)^` + fmt.Sprintf(`%d callers, embedded store\s+\d+/s\s+\d+/s\s+\d+\.\d\dx$`, c.callers))
		if want := c.procs == 1; row.MatchString(table) != want || ceiling.MatchString(table) != want {
			t.Errorf("at %d callers over %d processes: an embedded row %v and a ceiling row %v, want both %v",
				c.callers, c.procs, row.MatchString(table), ceiling.MatchString(table), want)
		}
	}
	for _, target := range []string{"1 callers over 1 process(es)", "64 callers over 1 process(es)"} {
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `\s+\d+/s\s+\d+/s\s+\d+\.\d\dx\s+>=\d\.\dx\s+(MET|NOT met)$`)
		if !row.MatchString(table) {
			t.Errorf("no target row %q", target)
		}
	}
	if !regexp.MustCompile(`Throughput targets: (all MET|NOT all met)\.`).MatchString(table) {
		t.Error("no verdict on the targets")
	}
	for _, row := range []string{
		`(?m)^Halt called to first refusal \(8 samples\)\s+-?\d+\.\d ms\s+-?\d+\.\d ms\s+-?\d+\.\d ms\s+<100 ms\s+(MET|NOT met)$`,
		`(?m)^from Halt's return \(the stop written\)\s+-?\d+\.\d ms\s+-?\d+\.\d ms\s+-?\d+\.\d ms$`,
	} {
		if !regexp.MustCompile(row).MatchString(table) {
			t.Errorf("no revocation row matching %s", row)
		}
	}
	if t.Failed() {
		t.Logf("the table:\n%s", table)
	}
}
