package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/internal/benchutil"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
	"github.com/stripe/stripe-go/v76/client"
)

// The RSS run is a process of its own: this binary run again with rssEnv
// set to "calls,callers". In the process that measured every variant
// before it, the heap those measurements left (and freed, and the runtime
// returned to the kernel or not, at its own pace) moved VmRSS by tens of
// MiB either way whatever the Brake did; a fresh process has only the
// Brake's memory to show.
const rssEnv = "KEYBRAKE_BENCH_RSS"

// rssProcess runs the RSS run in a child process and reads its figures.
func rssProcess(cfg config) (rssRun, error) {
	exe, err := os.Executable()
	if err != nil {
		return rssRun{}, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%d", rssEnv, cfg.rssCalls, cfg.callers))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return rssRun{}, fmt.Errorf("the RSS process: %w", err)
	}
	var run rssRun
	if err := json.Unmarshal(out, &run); err != nil {
		return rssRun{}, fmt.Errorf("the RSS process said %q: %w", out, err)
	}
	return run, nil
}

// rssChild is the RSS process: it measures and writes the figures to
// stdout as JSON.
func rssChild(spec string) error {
	calls, callers, ok := strings.Cut(spec, ",")
	var cfg config
	var err1, err2 error
	cfg.rssCalls, err1 = strconv.Atoi(calls)
	cfg.callers, err2 = strconv.Atoi(callers)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("%s=%q: want calls,callers", rssEnv, spec)
	}
	b, cleanup, err := newBench()
	if err != nil {
		return err
	}
	defer cleanup()
	run, err := b.rss(cfg)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(run)
}

type rssRun struct {
	Calls, Warmup int
	Start, End    memory
	Peak          memory // each field's own peak
}

// rss runs a Brake against the stub for rssCalls calls at `callers` after
// a warm-up, reading VmRSS twenty times along the way.
func (b *bench) rss(cfg config) (rssRun, error) {
	run := rssRun{Calls: cfg.rssCalls, Warmup: max(cfg.rssCalls/10, charges)}
	url, stop := b.serve(stub())
	defer stop()
	dir := filepath.Join(b.dir, "rss")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return run, err
	}
	kb, err := b.open(dir, url, keybrake.Options{})
	if err != nil {
		return run, err
	}
	defer kb.Close()
	do := refunds(client.New(stripeSecret, stripevendor.Backends(kb.HTTPClient(agent, keybrake.Stripe))))
	if _, _, err := benchutil.Load(cfg.callers, run.Warmup, do); err != nil {
		return run, err
	}
	if run.Start, err = readMemory(); err != nil {
		return run, err
	}
	run.Peak = run.Start
	const samples = 20
	for s := 0; s < samples; s++ {
		n := run.Calls / samples
		if s < run.Calls%samples {
			n++
		}
		if _, _, err := benchutil.Load(cfg.callers, n, do); err != nil {
			return run, err
		}
		m, err := readMemory()
		if err != nil {
			return run, err
		}
		run.Peak = memory{max(run.Peak.RSS, m.RSS), max(run.Peak.Anon, m.Anon), max(run.Peak.File, m.File)}
		run.End = m
	}
	return run, nil
}
