package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The measurement loop with tiny counts: every variant answers every call
// (a call that is not 200 fails the run), and the table has every row. No
// timing is asserted; a shared machine makes any figure possible.

var derived = []string{
	"hop's own cost = (a) - direct",
	"library's cost = (b) - direct",
	"proxy layer = (c) - (b)",
	"  of which a hop = (b+) - (b)",
	"  of which the proxy's own = (c) - (b+)",
	"proxy layer / hop's own cost (target <= 1.3x)",
}

// serveDerived are the rows -serve adds.
var serveDerived = []string{
	"hop's own cost, own process = (a') - direct",
	"serve layer = (d) - (b)",
	"  of which a hop, own process = (b+') - (b)",
	"  of which serve's own = (d) - (b+')",
	"serve layer / own-process hop (target <= 1.3x)",
	"serve layer / (b+') - (b) (target <= 1.3x)",
	"serve layer / in-process hop (a)",
}

// TestMain lets the test binary be the hop process of variant (a'), as
// the bench binary is: startHopProcess runs os.Executable.
func TestMain(m *testing.M) {
	if fake := os.Getenv(hopEnv); fake != "" {
		if err := runHopChild(fake, os.Getenv(hopLibraryEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestTableHasEveryRow(t *testing.T) {
	tests := []struct {
		name string
		cfg  config
		vs   []variant
	}{
		{"in-process", config{serial: 20, parallel: 60, clients: 4, rounds: 3}, variants},
		{"with serve", config{serial: 10, parallel: 20, clients: 2, rounds: 2, serve: true}, append(append([]variant(nil), variants...), hopProcessVariant, hopLibraryProcessVariant, serveVariant)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.serve && testing.Short() {
				t.Skip("builds the keybrake binary")
			}
			var out bytes.Buffer
			if err := run(&out, tt.cfg); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			table := out.String()
			for _, clients := range []int{1, tt.cfg.clients} {
				for _, v := range tt.vs {
					row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(v.label) + fmt.Sprintf(`\s+%d\s+\d+ µs\s+\d+ µs\s+\d+\s+\d+$`, clients))
					if !row.MatchString(table) {
						t.Errorf("no row for %s at %d clients", v.label, clients)
					}
				}
				rows := derived
				if tt.cfg.serve {
					rows = append(append([]string(nil), derived...), serveDerived...)
				}
				for _, d := range rows {
					row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(d) + fmt.Sprintf(`\s+%d\s+(-?\d+ µs|n/a|-?\d+\.\d\dx)\s+(-?\d+ µs|n/a|-?\d+\.\d\dx)$`, clients))
					if !row.MatchString(table) {
						t.Errorf("no derived row %q at %d clients", d, clients)
					}
				}
			}
			verdicts := []string{"kb.Proxy in process against the hop in process: "}
			if tt.cfg.serve {
				verdicts = append(verdicts, "keybrake serve against the hop as a process of its own: ",
					"keybrake serve against that hop where serve's layer is, in front of a Brake (b+'): ")
			}
			for _, v := range verdicts {
				if !strings.Contains(table, v+"met.") && !strings.Contains(table, v+"NOT met.") {
					t.Errorf("no verdict %q", v)
				}
			}
			if t.Failed() {
				t.Logf("the table:\n%s", table)
			}
		})
	}
}

func TestUnknownProfiledVariantIsAnError(t *testing.T) {
	var out bytes.Buffer
	err := run(&out, config{serial: 2, parallel: 2, clients: 2, rounds: 1, profile: t.TempDir() + "/cpu.out", profiled: "nonesuch"})
	if err == nil || !strings.Contains(err.Error(), "nonesuch") {
		t.Fatalf("run = %v, want an error naming the variant", err)
	}
}
