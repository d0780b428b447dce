// Command calls measures what Keybrake's write path costs a call, against
// the durable write it is built on and the SDK call it brakes, with every
// baseline measured in the same run:
//
//	go run ./bench/calls                      # 2,000 calls at 1 caller, 20,000 at 64, per variant
//	go run ./bench/calls -rss-calls 1000000   # the memory figure over a million calls
//	go run ./bench/calls -million             # a million records: size on disk, status, queries, Open, Close
//
// The calls are stripe-go v76 refunds (POST /v1/refunds of one cent, with
// the Idempotency-Key stripe-go adds) of 64 seeded charges too large to run
// out, against fakes/fakestripe on loopback. The policy allows them with
// caps that never bind. The variants, each on files of its own in a
// temporary directory:
//
//   - bbolt Update: one bare bbolt transaction committing a 100-byte value,
//     the durable write a reservation is (target 1's baseline);
//   - per-call fsync: that commit and then the same refund through bare
//     stripe-go, one after the other: the naive brake that commits each
//     call alone (targets 2 and 3's baseline). The issue's own figures
//     say its baseline was this one: 838 calls/s serially and 1,001 at 64
//     callers, where its bare commit took 0.52 ms at p50 and bare stripe-go
//     ran 5,854 calls/s; the commit alone, which the table also compares
//     with, would make target 3's second half ask for more calls/s than
//     bare stripe-go makes;
//   - bbolt Update of a refund's puts: bare bbolt making, in one
//     transaction, the puts a refund makes in Keybrake's bbolt store
//     (floor.go): the floor its layout puts under targets 1 and 2; and
//     the same puts with every bucket's keys in one bbolt bucket, which
//     asks whether merging the buckets would lower that floor;
//   - write+fdatasync: 100 bytes appended to a file and fdatasync'd, the
//     floor under any durable write;
//   - bare stripe-go: the same refunds straight to the fake;
//   - keybrake: stripe-go over Brake.HTTPClient (stripevendor.Backends),
//     the Brake opened by keybrake.Open with a policy file and a bbolt
//     DBPath, sending to the fake through Options.Endpoints.
//
// Keybrake's added latency is its p50 (p99) minus bare stripe-go's, a
// difference of percentiles. The targets, each printed MET or NOT met:
//
//	(1) added p50 <= 1.5x the bbolt commit's p50, added p99 <= 2x its p99
//	(2) Keybrake's serial calls/s >= 0.9x the per-call-fsync baseline's
//	(3) at 64 callers, >= 0.7x bare stripe-go's calls/s and >= 5x the
//	    per-call-fsync baseline's at 64
//	(8) RSS flat within 20 MiB over -rss-calls calls after a warm-up
//
// The RSS run is a process of its own (rss.go), on a stateless loopback
// Stripe stub instead of the fake,
// which keeps every request it saw and would grow on its own; everything
// else of the call is the same. VmRSS counts the pages of the bbolt file
// that bbolt has mapped and read (RssFile: page cache the kernel can take
// back, which grows with the file when the idempotency keys are random),
// so RssAnon, the process's own memory, is judged too. The vendor dials column counts the
// connections the fake accepted during the measured calls: with the
// Brake's pool (256 idle a host) there should be none past the warm-up.
//
// -million writes -records calls (1,000,000 by default) through the
// public API at 64 callers, two agents with a hundredfold difference in
// calls, their times spread evenly over -span ending now (Options.Clock),
// and then measures the store as the keybrake command reads it: bytes per
// record on disk, status (admin.Local.Status), audit --agent --since 1h,
// a one-minute window, what the incident page reads before it draws and
// its 90-second and 24-hour timelines (page.go), each agent's whole
// history, Open, Close right after Open, and Close during the Prune a
// Brake starts at Open.
//
// The measured calls are made in rounds, every variant in each, so that
// the noise of a shared machine falls on all of them alike. Everything
// listens on loopback only.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/benchutil"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

const (
	agent      = "refund-bot" // the agent of the write-path figures, and the busy one of -million
	rareAgent  = "audit-bot"  // -million's quiet agent: one call in rareEvery
	rareEvery  = 100
	charges    = 64
	policyText = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 1000000.00 USD
      per_call_max: 1000.00 USD
      allow:
        - GET /v1/charges/{id}
        - POST /v1/refunds
  audit-bot:
    stripe:
      daily_cap: 1000000.00 USD
      per_call_max: 1000.00 USD
      allow:
        - GET /v1/charges/{id}
        - POST /v1/refunds
`
)

// Built from parts, so no scanner mistakes it for a real key.
var stripeSecret = "sk_" + "test_" + strings.Repeat("C", 24)

// config is one run's size. Zero fields are not defaults: the flags are.
type config struct {
	serial   int // calls measured at 1 caller, per variant
	parallel int // calls measured at `callers` callers, per variant
	callers  int
	warmup   int // calls before the measurement, per variant
	rounds   int
	rssCalls int // calls of the RSS run, after its warm-up

	million bool
	records int           // -million: calls written
	span    time.Duration // -million: the records' times spread over this, ending now
}

func main() {
	if spec := os.Getenv(rssEnv); spec != "" {
		stripego.DefaultLeveledLogger = &stripego.LeveledLogger{Level: stripego.LevelNull}
		if err := rssChild(spec); err != nil {
			log.Fatal(err)
		}
		return
	}
	var cfg config
	flag.IntVar(&cfg.serial, "serial", 2000, "calls measured at 1 caller, per variant")
	flag.IntVar(&cfg.parallel, "parallel", 20000, "calls measured at -callers callers, per variant")
	flag.IntVar(&cfg.callers, "callers", 64, "concurrent callers of the parallel phase, the RSS run and -million's writes")
	flag.IntVar(&cfg.warmup, "warmup", 300, "calls before the measurement, per variant")
	flag.IntVar(&cfg.rounds, "rounds", 10, "rounds the measured calls are split into, every variant in each round")
	flag.IntVar(&cfg.rssCalls, "rss-calls", 20000, "calls of the RSS run at -callers, after a warm-up of a tenth as many")
	flag.BoolVar(&cfg.million, "million", false, "instead: write -records calls and measure the store at that size")
	flag.IntVar(&cfg.records, "records", 1_000_000, "with -million: calls written")
	flag.DurationVar(&cfg.span, "span", 30*24*time.Hour, "with -million: the records' times are spread over this, ending now")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (every variant, the fake too) to `file`")
	flag.Parse()
	log.SetFlags(0)
	// stripe-go logs every error it gets; the run fails on the first.
	stripego.DefaultLeveledLogger = &stripego.LeveledLogger{Level: stripego.LevelNull}
	run := runCalls
	if cfg.million {
		run = runMillion
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(os.Stdout, cfg); err != nil {
		log.Print(err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// call makes call number i; its latency is measured around it.
type call func(i int) error

// A variant is one way of making a call.
type variant struct {
	id    string
	label string
	start func(b *bench, dir string) (call, func(), error)
}

// The variants, in the table's order.
var variants = []variant{
	{"bbolt", "bbolt Update, 100 B", startBolt},
	{"layout", "bbolt Update, a refund's puts", startLayout},
	{"onebucket", "bbolt Update, those puts in one bucket", startOneBucket},
	{"naive", "per-call fsync: bbolt Update + stripe-go", startNaive},
	{"fdatasync", "write+fdatasync, 100 B", startFdatasync},
	{"bare", "bare stripe-go", startBare},
	{"keybrake", "keybrake (stripe-go over HTTPClient)", startKeybrake},
	{"shadow", "keybrake with a shadow policy", startShadow},
}

// bench is one run: the fake and the files.
type bench struct {
	dir    string // temporary; removed by the run
	fake   string // the fake's base URL
	policy string
	cells  atomic.Int64 // names each started variant's directory
	dials  atomic.Int64 // connections the fake has accepted
}

func newBench() (*bench, func(), error) {
	dir, err := os.MkdirTemp("", "keybrake-calls-bench")
	if err != nil {
		return nil, nil, err
	}
	b := &bench{dir: dir, policy: filepath.Join(dir, "keybrake.yaml")}
	if err := os.WriteFile(b.policy, []byte(policyText), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return b, func() { os.RemoveAll(dir) }, nil
}

// serve serves h on loopback, counting the connections it accepts.
func (b *bench) serve(h http.Handler) (string, func()) {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.dials.Add(1)
		}
	}
	srv.Start()
	return srv.URL, srv.Close
}

func runCalls(w io.Writer, cfg config) error {
	b, cleanup, err := newBench()
	if err != nil {
		return err
	}
	defer cleanup()
	fs := fakestripe.New()
	for i := 0; i < charges; i++ {
		fs.AddCharge(fakestripe.Charge{ID: chargeID(i), Amount: 99999999, Currency: "usd", Captured: true})
	}
	var stop func()
	b.fake, stop = b.serve(fs)
	defer stop()
	defer fs.Close() // before the server's Close, which waits for what a fault holds

	fmt.Fprintf(w, "Write path: stripe-go v76 refunds (POST /v1/refunds, 1 cent, stripe-go's Idempotency-Key)\n")
	fmt.Fprintf(w, "against fakestripe on loopback; caps never bind. %d calls at 1 caller, %d at %d, per variant,\n",
		cfg.serial, cfg.parallel, cfg.callers)
	fmt.Fprintf(w, "after %d warm-up calls, in %d rounds that each run every variant in turn; every figure from this run.\n\n",
		cfg.warmup, cfg.rounds)
	fmt.Fprintf(w, "%-38s %7s %10s %10s %10s %12s\n", "variant", "callers", "p50", "p99", "calls/s", "vendor dials")
	results := map[string]result{}
	for _, callers := range []int{1, cfg.callers} {
		n := cfg.serial
		if callers > 1 {
			n = cfg.parallel
		}
		rs, err := b.measure(variants, callers, cfg.warmup, n, max(cfg.rounds, 1))
		if err != nil {
			return fmt.Errorf("at %d callers: %w", callers, err)
		}
		for i, v := range variants {
			results[key(v.id, callers)] = rs[i]
			fmt.Fprintf(w, "%-38s %7d %10s %10s %10.0f %12s\n", v.label, callers, benchutil.Micros(rs[i].p50), benchutil.Micros(rs[i].p99), rs[i].rate, rs[i].dialed())
		}
	}

	rss, err := rssProcess(cfg)
	if err != nil {
		return fmt.Errorf("RSS run: %w", err)
	}
	fmt.Fprintf(w, "\nRSS over %d keybrake calls at %d callers after %d warm-up calls (a process of its own; stateless stub, not the fake):\n",
		rss.Calls, cfg.callers, rss.Warmup)
	fmt.Fprintf(w, "  after warm-up / peak / at the end: VmRSS %s / %s / %s, of which RssAnon %s / %s / %s\n",
		mib(rss.Start.RSS), mib(rss.Peak.RSS), mib(rss.End.RSS), mib(rss.Start.Anon), mib(rss.Peak.Anon), mib(rss.End.Anon))
	fmt.Fprintf(w, "  and RssFile (pages of the bbolt file bbolt has mapped and read: page cache) %s / %s / %s\n",
		mib(rss.Start.File), mib(rss.Peak.File), mib(rss.End.File))

	r := func(id string, callers int) result { return results[key(id, callers)] }
	commit, naive1, kb1, bare1 := r("bbolt", 1), r("naive", 1), r("keybrake", 1), r("bare", 1)
	kb64, bare64, naive64, commit64 := r("keybrake", cfg.callers), r("bare", cfg.callers), r("naive", cfg.callers), r("bbolt", cfg.callers)
	added50, added99 := kb1.p50-bare1.p50, kb1.p99-bare1.p99

	fmt.Fprintf(w, "\n%-52s %12s %12s %8s %8s  %s\n", "target", "figure", "baseline", "ratio", "wanted", "verdict")
	met := true
	row := func(label, figure, baseline string, ratio, bound float64, atMost bool) {
		ok := ratio <= bound
		if !atMost {
			ok = ratio >= bound
		}
		rel := ">="
		if atMost {
			rel = "<="
		}
		verdict := "MET"
		if !ok {
			verdict, met = "NOT met", false
		}
		fmt.Fprintf(w, "%-52s %12s %12s %7.2fx %8s  %s\n", label, figure, baseline, ratio, fmt.Sprintf("%s%.1fx", rel, bound), verdict)
	}
	row("(1) added p50, serial / bbolt commit p50", benchutil.Micros(added50), benchutil.Micros(commit.p50), div(float64(added50), float64(commit.p50)), 1.5, true)
	row("(1) added p99, serial / bbolt commit p99", benchutil.Micros(added99), benchutil.Micros(commit.p99), div(float64(added99), float64(commit.p99)), 2, true)
	row("(2) calls/s serial / per-call fsync serial", perSec(kb1.rate), perSec(naive1.rate), div(kb1.rate, naive1.rate), 0.9, false)
	row(fmt.Sprintf("(3) calls/s at %d / bare stripe-go at %d", cfg.callers, cfg.callers), perSec(kb64.rate), perSec(bare64.rate), div(kb64.rate, bare64.rate), 0.7, false)
	row(fmt.Sprintf("(3) calls/s at %d / per-call fsync at %d", cfg.callers, cfg.callers), perSec(kb64.rate), perSec(naive64.rate), div(kb64.rate, naive64.rate), 5, false)
	growth := rss.Peak.RSS - rss.Start.RSS
	row("(8) VmRSS growth after warm-up / 20 MiB", mib(growth), mib(20<<20), div(float64(growth), 20<<20), 1, true)
	anon := rss.Peak.Anon - rss.Start.Anon
	row("(8) RssAnon growth (VmRSS but the mapped file)", mib(anon), mib(20<<20), div(float64(anon), 20<<20), 1, true)
	verdict := "all MET"
	if !met {
		verdict = "NOT all met"
	}
	fmt.Fprintf(w, "\nTargets 1, 2, 3 and 8: %s.\n", verdict)
	fmt.Fprintf(w, "(4) pool: at %d callers keybrake dialled the fake %d times in %d measured calls, %d connections in all\n",
		cfg.callers, kb64.dials, cfg.parallel, kb64.opened)
	fmt.Fprintf(w, "    with its warm-up (bare stripe-go: %d and %d): about one a caller (the warm-up's lookups run beside\n",
		bare64.dials, bare64.opened)
	fmt.Fprintf(w, "    the refunds, so a few more) means the pool is reused and no call dials its own.\n")
	layout := r("layout", 1)
	fmt.Fprintf(w, "\nThe floor under (1) and (2): bare bbolt making a refund's puts in the store's buckets (floor.go), serial p50 %s\n",
		benchutil.Micros(layout.p50))
	fmt.Fprintf(w, "  against the 100-B commit's %s (%.2fx), p99 %s against %s (%.2fx); keybrake's added p50 is %.2fx that floor.\n",
		benchutil.Micros(commit.p50), div(float64(layout.p50), float64(commit.p50)), benchutil.Micros(layout.p99), benchutil.Micros(commit.p99),
		div(float64(layout.p99), float64(commit.p99)), div(float64(added50), float64(layout.p50)))
	one := r("onebucket", 1)
	fmt.Fprintf(w, "  The same puts in one bucket: p50 %s (%.2fx the 100-B commit, %.2fx the store's buckets), p99 %s (%.2fx the commit's).\n",
		benchutil.Micros(one.p50), div(float64(one.p50), float64(commit.p50)), div(float64(one.p50), float64(layout.p50)),
		benchutil.Micros(one.p99), div(float64(one.p99), float64(commit.p99)))
	fmt.Fprintf(w, "\nAgainst the bare commit alone (no call), the stricter reading of 2 and 3: serial %s against %s (%.2fx),\n",
		perSec(kb1.rate), perSec(commit.rate), div(kb1.rate, commit.rate))
	fmt.Fprintf(w, "  at %d %s against %s (%.2fx).\n", cfg.callers, perSec(kb64.rate), perSec(commit64.rate), div(kb64.rate, commit64.rate))
	sh1, sh64 := r("shadow", 1), r("shadow", cfg.callers)
	fmt.Fprintf(w, "\nA shadow policy (the same policy as a candidate: every call decided twice, its counters read and held):\n")
	fmt.Fprintf(w, "  serial p50 %s against keybrake's %s (%.2fx); calls/s %s against %s at 1 caller (%.2fx), %s against %s at %d (%.2fx)\n",
		benchutil.Micros(sh1.p50), benchutil.Micros(kb1.p50), div(float64(sh1.p50), float64(kb1.p50)),
		perSec(sh1.rate), perSec(kb1.rate), div(sh1.rate, kb1.rate), perSec(sh64.rate), perSec(kb64.rate), cfg.callers, div(sh64.rate, kb64.rate))
	return nil
}

func key(id string, callers int) string { return fmt.Sprintf("%s@%d", id, callers) }

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

type result struct {
	p50, p99 time.Duration
	rate     float64 // calls per second over the wall time of the variant's rounds
	dials    int64   // connections the fake accepted during the measured calls
	opened   int64   // and in all, the warm-up's included
	http     bool    // the variant reaches the fake
}

func (r result) dialed() string {
	if !r.http {
		return "-"
	}
	return fmt.Sprint(r.dials)
}

// started is a variant being measured.
type started struct {
	do     call
	stop   func()
	lat    []time.Duration
	wall   time.Duration
	dials  int64 // during the measured calls
	opened int64 // during the warm-up
}

func (b *bench) start(v variant) (*started, error) {
	dir := filepath.Join(b.dir, fmt.Sprintf("%s-%d", v.id, b.cells.Add(1)))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	do, stop, err := v.start(b, dir)
	if err != nil {
		return nil, err
	}
	return &started{do: do, stop: stop}, nil
}

// measure starts every variant afresh, warms each up, and then makes n
// calls per variant at `callers`, in rounds that each give every variant
// its share in turn, starting with a different one each round.
func (b *bench) measure(vs []variant, callers, warmup, n, rounds int) ([]result, error) {
	ss := make([]*started, len(vs))
	defer func() {
		for _, s := range ss {
			if s != nil {
				s.stop()
			}
		}
	}()
	for i, v := range vs {
		s, err := b.start(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.label, err)
		}
		ss[i] = s
		// Every charge is refunded once, so the Brake knows their
		// currencies and no refund measured waits for a lookup.
		before := b.dials.Load()
		if _, _, err := benchutil.Load(callers, max(warmup, charges), s.do); err != nil {
			return nil, fmt.Errorf("%s: warm-up: %w", v.label, err)
		}
		s.opened = b.dials.Load() - before
	}
	err := benchutil.Interleave(len(vs), n, rounds, func(i, share int) error {
		before := b.dials.Load()
		lat, wall, err := benchutil.Load(callers, share, ss[i].do)
		ss[i].dials += b.dials.Load() - before
		if err != nil {
			return fmt.Errorf("%s: %w", vs[i].label, err)
		}
		ss[i].lat = append(ss[i].lat, lat...)
		ss[i].wall += wall
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]result, len(vs))
	for i, s := range ss {
		out[i] = result{p50: benchutil.Percentile(s.lat, 50), p99: benchutil.Percentile(s.lat, 99), rate: float64(len(s.lat)) / s.wall.Seconds(),
			dials: s.dials, opened: s.opened + s.dials, http: vs[i].id == "bare" || vs[i].id == "keybrake"}
	}
	return out, nil
}

var value100 = []byte(strings.Repeat("v", 100))

// startBolt is a bare bbolt file whose every call is its own Update.
func startBolt(_ *bench, dir string) (call, func(), error) {
	db, err := bbolt.Open(filepath.Join(dir, "bare.db"), 0o600, nil)
	if err != nil {
		return nil, nil, err
	}
	bucket := []byte("calls")
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	do := func(int) error {
		return db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket(bucket)
			id, err := b.NextSequence()
			if err != nil {
				return err
			}
			return b.Put(binary.BigEndian.AppendUint64(nil, id), value100)
		})
	}
	return do, func() { db.Close() }, nil
}

// startNaive is the per-call-fsync brake of targets 2 and 3: each call
// commits its own bbolt Update (startBolt's) before the same refund goes
// through bare stripe-go. It keeps no record, chain or counter: the
// durable write and the call, nothing else.
func startNaive(b *bench, dir string) (call, func(), error) {
	commit, closeDB, err := startBolt(b, dir)
	if err != nil {
		return nil, nil, err
	}
	refund, closeHTTP, err := startBare(b, dir)
	if err != nil {
		closeDB()
		return nil, nil, err
	}
	return func(i int) error {
		if err := commit(i); err != nil {
			return err
		}
		return refund(i)
	}, func() { closeHTTP(); closeDB() }, nil
}

// startFdatasync appends 100 bytes to a file and fdatasyncs it.
func startFdatasync(_ *bench, dir string) (call, func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "raw"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	do := func(int) error {
		if _, err := f.Write(value100); err != nil {
			return err
		}
		return syscall.Fdatasync(int(f.Fd()))
	}
	return do, func() { f.Close() }, nil
}

// pooled is the bare SDK's HTTP client: idle connections enough for every
// caller, as the Brake's base transport keeps, so neither side redials.
func pooled() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: tr, Timeout: 80 * time.Second}
}

func refunds(sc *client.API) call {
	return func(i int) error {
		_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String(chargeID(i % charges)), Amount: stripego.Int64(1)})
		return err
	}
}

func startBare(b *bench, _ string) (call, func(), error) {
	hc := pooled()
	backend := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{HTTPClient: hc, URL: stripego.String(b.fake)})
	sc := client.New(stripeSecret, &stripego.Backends{API: backend, Connect: backend, Uploads: backend})
	return refunds(sc), hc.CloseIdleConnections, nil
}

func (b *bench) open(dir, vendor string, opts keybrake.Options) (*keybrake.Brake, error) {
	opts.PolicyFile = b.policy
	opts.DBPath = filepath.Join(dir, "keybrake.db")
	opts.Endpoints = map[keybrake.Vendor]string{keybrake.Stripe: vendor}
	opts.ErrorLog = func(err error) { log.Print("keybrake: ", err) }
	return keybrake.Open(opts)
}

func startKeybrake(b *bench, dir string) (call, func(), error) {
	return b.startBrake(dir, keybrake.Options{})
}

// startBrake is stripe-go over a Brake of opts.
func (b *bench) startBrake(dir string, opts keybrake.Options) (call, func(), error) {
	kb, err := b.open(dir, b.fake, opts)
	if err != nil {
		return nil, nil, err
	}
	sc := client.New(stripeSecret, stripevendor.Backends(kb.HTTPClient(agent, keybrake.Stripe)))
	return refunds(sc), func() {
		if err := kb.Close(); err != nil {
			log.Print(err)
		}
	}, nil
}

// startShadow is startKeybrake with the policy also as its shadow: what
// deciding every call a second time costs, with the shadow's counters.
func startShadow(b *bench, dir string) (call, func(), error) {
	return b.startBrake(dir, keybrake.Options{ShadowPolicyFile: b.policy})
}

func chargeID(i int) string { return fmt.Sprintf("ch_bench%02d", i) }

// stub is a stateless Stripe for the runs too long for the fake, which
// keeps every request: it answers a charge lookup and a refund of what was
// asked, and remembers nothing.
func stub() http.Handler {
	var seq atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := seq.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", fmt.Sprintf("req_stub%d", n))
		switch {
		case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/charges/"):
			id := strings.TrimPrefix(r.URL.Path, "/v1/charges/")
			fmt.Fprintf(w, `{"id":%q,"object":"charge","amount":99999999,"amount_captured":99999999,"amount_refunded":0,"captured":true,"currency":"usd","customer":null,"status":"succeeded"}`, id)
		case r.Method == "POST" && r.URL.Path == "/v1/refunds":
			if err := r.ParseForm(); err != nil {
				http.Error(w, `{"error":{"type":"invalid_request_error","message":"bad form"}}`, 400)
				return
			}
			fmt.Fprintf(w, `{"id":"re_stub%d","object":"refund","amount":%s,"currency":"usd","status":"succeeded","charge":%q}`,
				n, r.PostForm.Get("amount"), r.PostForm.Get("charge"))
		default:
			http.Error(w, `{"error":{"type":"invalid_request_error","message":"not stubbed"}}`, 404)
		}
	})
}

// memory is a reading of /proc/self/status, in bytes.
type memory struct{ RSS, Anon, File int64 }

func readMemory() (memory, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var kb int64
		fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
		switch name {
		case "VmRSS":
			m.RSS = kb << 10
		case "RssAnon":
			m.Anon = kb << 10
		case "RssFile":
			m.File = kb << 10
		}
	}
	if m.RSS == 0 {
		return memory{}, errors.New("no VmRSS in /proc/self/status")
	}
	return m, nil
}

// ms is a duration in milliseconds, to a hundredth.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func perSec(r float64) string { return fmt.Sprintf("%.0f/s", r) }
