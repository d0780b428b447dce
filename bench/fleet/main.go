// Command fleet measures Keybrake on the fleet store (store/postgres): the
// calls a fleet of agent processes makes through one cap in PostgreSQL,
// against a naive fleet brake measured in the same run on the same
// database:
//
//	eval "$(bash .ci/postgres.sh start)"    # or -dsn postgres://...
//	go run ./bench/fleet                    # about a minute and a half
//	go run ./bench/fleet -duration 5s -rounds 3
//	go run ./bench/fleet -before /tmp/fleet-old   # and an earlier store, in the same run
//
// Every call is a stripe-go v76 refund of one cent (POST /v1/refunds with
// the Idempotency-Key stripe-go adds) of one of 64 charges, against a
// stateless Stripe stub on loopback that the parent process serves. The
// callers are goroutines spread evenly over 1 or 4 OS processes, each a
// child this command starts by running itself again; every process opens
// its own pool, as a fleet's processes do. The cells: 1, 8 and 64 callers
// in one process, 8 and 64 over four.
//
// The variants, each in a schema of its own created for that measurement
// and dropped after it:
//
//   - baseline: the naive brake, one pgx READ COMMITTED transaction per
//     call running UPDATE bench_counter SET used = used + $1 WHERE key =
//     $2 AND used + $1 <= cap RETURNING used on one hot row, committed,
//     then the same refund through bare stripe-go. It counts the money and
//     nothing else: no record, no audit chain, no idempotency, no
//     settlement.
//   - keybrake: stripe-go over Brake.HTTPClient (stripevendor.Backends),
//     the Brake on a postgres.Open Store with default options: each call
//     is a reservation (the cap's counter, the record, the journal entry,
//     the idempotency key) committed before the refund is sent, and a
//     completion after it.
//   - embedded, in the cells of one process: the keybrake variant with the
//     Brake on its embedded store (a bbolt file of the process) instead:
//     no database, no network to the store. What it reaches bounds what
//     any fleet store can in this harness on this machine, since a
//     store/postgres call does the Brake's own work and more; printed
//     against the baseline after the targets.
//
// With -before, a third variant is the keybrake one run by another
// binary: this command's sources built in a tree of an earlier commit, so
// that a change to the store is measured before and after in one run.
//
// Both use pools of their defaults (pgxpool's: 4 connections on this
// machine) and a cap that never binds. Each process warms up (every
// charge refunded, 128 calls) and says so; the parent then starts every
// process's measured calls at once, for -duration, and repeats the whole
// measurement -rounds times, the variants in alternating order, so that
// the noise of a shared machine falls on both alike. calls/s is the calls
// finished in the window over its length, summed over the processes;
// p50 and p99 are of every measured call's latency.
//
// The targets: keybrake's calls/s at least the baseline's at 1 caller,
// and at least three times it at 64 (in one process and over four).
//
// Then the revocation rows: four processes each call one after another
// while the parent, a Brake of its own on the same store, calls
// Brake.Halt (a fleet stop, written to the store and announced with
// NOTIFY); each process notes its first call refused, and the latency is
// from the call of Halt to that refusal, over -trials halts (each then
// lifted with Resume). The target: p99 under 100 ms.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybrake/keybrake/store/postgres"
)

const (
	agent      = "refund-bot"
	charges    = 64
	centMicros = 10_000 // one cent, in the micros Keybrake's USD counters hold
	policyText = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 100000000.00 USD
      per_call_max: 1000.00 USD
      allow:
        - GET /v1/charges/{id}
        - POST /v1/refunds
`
)

// Built from parts, so no scanner mistakes it for a real key.
var stripeSecret = "sk_" + "test_" + strings.Repeat("C", 24)

func chargeID(i int) string { return fmt.Sprintf("ch_bench%02d", i) }

// config is one run.
type config struct {
	dsn      string
	duration time.Duration // measured calls, per measurement
	rounds   int
	cells    []cell
	trials   int    // revocations measured, each in every process
	before   string // a bench/fleet binary built on an earlier store, measured as one more variant
}

// cell is one concurrency: callers spread evenly over procs processes.
type cell struct{ callers, procs int }

var defaultCells = []cell{{1, 1}, {8, 1}, {64, 1}, {8, 4}, {64, 4}}

var variants = []struct{ id, label string }{
	{"baseline", "baseline (pgx tx, hot-row UPDATE)"},
	{"keybrake", "keybrake (store/postgres)"},
}

var beforeVariant = struct{ id, label string }{"before", "keybrake before (-before binary)"}

// embeddedVariant, in the cells of one process only (a bbolt file is one
// process's): the same Brake on its embedded store, the ceiling of any
// fleet store in this harness.
var embeddedVariant = struct{ id, label string }{"embedded", "keybrake on bbolt (no database)"}

func main() {
	if spec := os.Getenv(childEnv); spec != "" {
		runChild()
		return
	}
	cfg := config{cells: defaultCells}
	flag.StringVar(&cfg.dsn, "dsn", os.Getenv("KEYBRAKE_TEST_DATABASE_URL"), "postgres:// URL of a database whose owner it names (default $KEYBRAKE_TEST_DATABASE_URL)")
	flag.DurationVar(&cfg.duration, "duration", 3*time.Second, "measured calls per measurement")
	flag.IntVar(&cfg.rounds, "rounds", 2, "measurements of each variant in each cell, in alternating order")
	flag.StringVar(&cfg.before, "before", "", "also measure keybrake with this `binary`: bench/fleet built on an earlier commit (the same sources in bench/fleet), as \"keybrake before\"")
	cells := flag.String("cells", "", "the cells to measure, as callers x processes: 1x1,64x4 (default 1x1,8x1,64x1,8x4,64x4)")
	flag.IntVar(&cfg.trials, "trials", 25, "revocations measured (Brake.Halt, in 4 processes each); 0 leaves them out")
	flag.Parse()
	log.SetFlags(0)
	if *cells != "" {
		cfg.cells = nil
		for _, c := range strings.Split(*cells, ",") {
			var x cell
			if _, err := fmt.Sscanf(c, "%dx%d", &x.callers, &x.procs); err != nil || x.callers < x.procs || x.procs < 1 {
				log.Fatalf("-cells: %q is not callers x processes, with at least a caller a process", c)
			}
			cfg.cells = append(cfg.cells, x)
		}
	}
	if cfg.dsn == "" {
		log.Fatal("bench/fleet needs a PostgreSQL: -dsn postgres://... or KEYBRAKE_TEST_DATABASE_URL (eval \"$(bash .ci/postgres.sh start)\")")
	}
	if err := run(os.Stdout, cfg); err != nil {
		log.Fatal(err)
	}
}

// bench is one run: the stub, the policy file, the database.
type bench struct {
	cfg    config
	dir    string
	fake   string
	policy string
}

// result is the calls of one variant in one cell, over every round.
type result struct {
	calls   int
	elapsed time.Duration // summed over the rounds, each the mean over the processes
	lat     []time.Duration
}

func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.calls) / r.elapsed.Seconds()
}

func run(w io.Writer, cfg config) error {
	if _, err := url.Parse(cfg.dsn); err != nil || !strings.HasPrefix(cfg.dsn, "postgres") {
		return errors.New("bench/fleet: -dsn must be a postgres:// URL")
	}
	dir, err := os.MkdirTemp("", "keybrake-fleet-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{cfg: cfg, dir: dir, policy: filepath.Join(dir, "keybrake.yaml")}
	if err := os.WriteFile(b.policy, []byte(policyText), 0o600); err != nil {
		return err
	}
	srv := httptest.NewServer(stub())
	defer srv.Close()
	b.fake = srv.URL

	fmt.Fprintf(w, "Fleet store: stripe-go v76 refunds (1 cent, stripe-go's Idempotency-Key) against a stateless Stripe\n")
	fmt.Fprintf(w, "stub on loopback, callers spread over OS processes, one PostgreSQL; %d rounds of %v per variant\n", cfg.rounds, cfg.duration)
	fmt.Fprintf(w, "and cell, in alternating order, each in a fresh schema; every figure from this run.\n\n")
	fmt.Fprintf(w, "%-36s %5s %7s %10s %10s %9s %7s\n", "variant", "procs", "callers", "p50", "p99", "calls/s", "ratio")
	results := map[string]result{}
	variants := variants
	if cfg.before != "" {
		variants = append(variants[:len(variants):len(variants)], beforeVariant)
	}
	for _, c := range cfg.cells {
		variants := variants
		if c.procs == 1 {
			variants = append(variants[:len(variants):len(variants)], embeddedVariant)
		}
		rs := make([]result, len(variants))
		for r := 0; r < max(cfg.rounds, 1); r++ {
			for k := range variants {
				i := (r + k) % len(variants)
				calls, elapsed, lat, err := b.measure(variants[i].id, c)
				if err != nil {
					return fmt.Errorf("%s at %d callers over %d processes: %w", variants[i].label, c.callers, c.procs, err)
				}
				rs[i].calls += calls
				rs[i].elapsed += elapsed
				rs[i].lat = append(rs[i].lat, lat...)
			}
		}
		base := rs[0].rate()
		for i, v := range variants {
			results[key(v.id, c)] = rs[i]
			ratio := "-"
			if i > 0 {
				ratio = fmt.Sprintf("%.2fx", div(rs[i].rate(), base))
			}
			fmt.Fprintf(w, "%-36s %5d %7d %10s %10s %9.0f %7s\n", v.label, c.procs, c.callers,
				us(pct(rs[i].lat, 50)), us(pct(rs[i].lat, 99)), rs[i].rate(), ratio)
		}
	}

	fmt.Fprintf(w, "\n%-44s %10s %10s %8s %8s  %s\n", "target (keybrake / baseline calls/s)", "keybrake", "baseline", "ratio", "wanted", "verdict")
	met := true
	for _, t := range []struct {
		c     cell
		bound float64
	}{{cell{1, 1}, 1}, {cell{64, 1}, 3}, {cell{64, 4}, 3}} {
		kb, ok := results[key("keybrake", t.c)]
		if !ok {
			continue
		}
		base := results[key("baseline", t.c)]
		ratio := div(kb.rate(), base.rate())
		verdict := "MET"
		if ratio < t.bound {
			verdict, met = "NOT met", false
		}
		fmt.Fprintf(w, "%-44s %8.0f/s %8.0f/s %7.2fx %8s  %s\n", fmt.Sprintf("%d callers over %d process(es)", t.c.callers, t.c.procs),
			kb.rate(), base.rate(), ratio, fmt.Sprintf(">=%.1fx", t.bound), verdict)
	}
	first := true
	for _, c := range cfg.cells {
		e, ok := results[key("embedded", c)]
		if !ok {
			continue
		}
		if first {
			fmt.Fprintf(w, "\nThe ceiling: the same Brake on its embedded store (a bbolt file, no database, no network to\n")
			fmt.Fprintf(w, "its store) against the same baseline; a fleet store does the Brake's work and more.\n")
			first = false
		}
		base := results[key("baseline", c)].rate()
		fmt.Fprintf(w, "%-44s %8.0f/s %8.0f/s %7.2fx\n", fmt.Sprintf("%d callers, embedded store", c.callers),
			e.rate(), base, div(e.rate(), base))
	}
	verdict := "all MET"
	if !met {
		verdict = "NOT all met"
	}
	fmt.Fprintf(w, "\nThroughput targets: %s.\n", verdict)
	if cfg.trials <= 0 {
		return nil
	}
	lat, written, err := b.revocation(cfg.trials)
	if err != nil {
		return fmt.Errorf("revocation: %w", err)
	}
	fmt.Fprintf(w, "\nRevocation: Brake.Halt in another process while %d processes call one after another; from the\n", revocationProcs)
	fmt.Fprintf(w, "call of Halt (its write to the store included) to each process's first call refused, %d trials:\n\n", cfg.trials)
	fmt.Fprintf(w, "%-44s %10s %10s %10s %8s  %s\n", "", "p50", "p99", "max", "wanted", "verdict")
	p99 := pct(lat, 99)
	verdict = "MET"
	if p99 >= 100*time.Millisecond {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "%-44s %10s %10s %10s %8s  %s\n", fmt.Sprintf("Halt called to first refusal (%d samples)", len(lat)),
		ms(pct(lat, 50)), ms(p99), ms(pct(lat, 100)), "<100 ms", verdict)
	fmt.Fprintf(w, "%-44s %10s %10s %10s\n", "from Halt's return (the stop written)", ms(pct(written, 50)), ms(pct(written, 99)), ms(pct(written, 100)))
	return nil
}

func key(id string, c cell) string { return fmt.Sprintf("%s@%dx%d", id, c.callers, c.procs) }

// measure runs one variant in one cell in a fresh schema: it starts the
// processes, waits for each to warm up, starts them together and collects
// their reports.
func (b *bench) measure(variant string, c cell) (int, time.Duration, []time.Duration, error) {
	ctx := context.Background()
	dsn, drop, err := freshSchema(ctx, b.cfg.dsn)
	if err != nil {
		return 0, 0, nil, err
	}
	defer drop()
	switch variant {
	case "baseline":
		err = execOn(ctx, dsn, `CREATE TABLE bench_counter (key text PRIMARY KEY, used bigint NOT NULL, cap bigint NOT NULL);
			INSERT INTO bench_counter VALUES ('hot', 0, 9223372036854775807)`)
	case "keybrake": // (not "before": its store is of an older schema, and migrates itself)
		// Migrate once here, so that the processes' Opens measure nothing
		// of it and do not queue on the migration lock.
		var st *postgres.Store
		if st, err = postgres.Open(ctx, dsn, nil); err == nil {
			err = st.Close()
		}
	}
	if err != nil {
		return 0, 0, nil, err
	}
	type proc struct {
		cmd   *exec.Cmd
		in    io.WriteCloser
		out   *bufio.Reader
		lines chan string
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, nil, err
	}
	if variant == "before" {
		exe, variant = b.cfg.before, "keybrake"
	}
	procs := make([]*proc, c.procs)
	defer func() {
		for _, p := range procs {
			if p != nil && p.cmd.Process != nil {
				p.in.Close()
				p.cmd.Process.Kill()
				p.cmd.Wait()
			}
		}
	}()
	for i := range procs {
		callers := c.callers / c.procs
		if i < c.callers%c.procs {
			callers++
		}
		j := job{Variant: variant, Callers: callers, Duration: b.cfg.duration, DSN: dsn, Fake: b.fake, Policy: b.policy}
		if variant == "embedded" {
			if j.Dir, err = os.MkdirTemp(b.dir, "proc"); err != nil {
				return 0, 0, nil, err
			}
		}
		spec, _ := json.Marshal(j)
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return 0, 0, nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return 0, 0, nil, err
		}
		if err := cmd.Start(); err != nil {
			return 0, 0, nil, err
		}
		p := &proc{cmd: cmd, in: in, out: bufio.NewReader(out), lines: make(chan string, 2)}
		procs[i] = p
		go func() {
			defer close(p.lines)
			for {
				line, err := p.out.ReadString('\n')
				if err != nil {
					return
				}
				p.lines <- line
			}
		}()
	}
	next := func(p *proc, timeout time.Duration) (string, error) {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("process %d exited", p.cmd.Process.Pid)
			}
			return line, nil
		case <-time.After(timeout):
			return "", fmt.Errorf("process %d said nothing for %v", p.cmd.Process.Pid, timeout)
		}
	}
	for _, p := range procs {
		line, err := next(p, 2*time.Minute)
		if err != nil {
			return 0, 0, nil, err
		}
		if strings.TrimSpace(line) != "ready" {
			return 0, 0, nil, fmt.Errorf("process %d said %q", p.cmd.Process.Pid, line)
		}
	}
	for _, p := range procs {
		if _, err := io.WriteString(p.in, "go\n"); err != nil {
			return 0, 0, nil, err
		}
	}
	var (
		calls   int
		elapsed float64
		lat     []time.Duration
	)
	for _, p := range procs {
		line, err := next(p, b.cfg.duration+2*time.Minute)
		if err != nil {
			return 0, 0, nil, err
		}
		var rep report
		if err := json.Unmarshal([]byte(line), &rep); err != nil {
			return 0, 0, nil, fmt.Errorf("process %d: %w", p.cmd.Process.Pid, err)
		}
		if rep.Err != "" {
			return 0, 0, nil, fmt.Errorf("process %d: %s", p.cmd.Process.Pid, rep.Err)
		}
		calls += rep.Calls
		elapsed += rep.Elapsed
		for _, m := range rep.Micros {
			lat = append(lat, time.Duration(m)*time.Microsecond)
		}
		p.in.Close()
		if err := p.cmd.Wait(); err != nil {
			return 0, 0, nil, fmt.Errorf("process %d: %w", p.cmd.Process.Pid, err)
		}
		p.cmd.Process = nil
	}
	return calls, time.Duration(elapsed / float64(len(procs)) * float64(time.Second)), lat, nil
}

// freshSchema creates an empty schema and returns base with search_path
// set to it, and a func that drops it.
func freshSchema(ctx context.Context, base string) (string, func(), error) {
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", nil, err
	}
	schema := "kbfleet_" + hex.EncodeToString(r[:])
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, errors.New("bench/fleet: the DSN is not a URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	if err := execOn(ctx, base, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("creating schema %s: %w", schema, err)
	}
	return u.String(), func() {
		if err := execOn(context.Background(), base, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			log.Printf("dropping schema %s: %v", schema, err)
		}
	}, nil
}

func execOn(ctx context.Context, dsn, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := min(max((len(s)*p+99)/100, 1), len(s))
	return s[i-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func us(d time.Duration) string {
	return fmt.Sprintf("%d µs", d.Round(time.Microsecond)/time.Microsecond)
}
