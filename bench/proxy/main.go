// Command proxy measures what the proxy (Brake.Proxy, as keybrake serve
// runs it) adds to a call, against what a bare httputil.ReverseProxy hop
// adds, with every figure measured in the same run against one local fake
// Stripe (fakes/fakestripe on httptest):
//
//	go run ./bench/proxy                       # 20,000 calls at 1 client and at 64, per variant
//	go run ./bench/proxy -cpuprofile cpu.out   # then profile the proxy alone at 64 clients
//	go run ./bench/proxy -serve                # and the keybrake serve binary too
//
// Every client is plain net/http and makes the same calls, alternating
// GET /v1/charges/{id} (moves nothing) and POST /v1/refunds of one cent
// with an Idempotency-Key, over 64 seeded charges too large to run out.
// The policy allows both and its caps never bind. The variants:
//
//   - direct: the client to the fake;
//   - (a) hop: the client to a bare httputil.ReverseProxy served by an
//     http.Server, in front of the fake;
//   - (b) library: the client's requests through Brake.HTTPClient,
//     straight to the fake (Options.Endpoints);
//   - (b+) hop over the library: the client to a bare ReverseProxy whose
//     transport is the library's chain: the proxy without its own work;
//   - (c) proxy: the client to Brake.Proxy served by an http.Server, with a
//     kb_ agent key (a one-key KeyFinder), in front of the fake;
//   - (d) serve, with -serve: the keybrake serve binary, its keys file and
//     the secret in its environment, as an operator runs it.
//
// The proxy layer is (c) - (b): what the proxy adds to the brake the
// library already is. The hop's own cost is (a) - direct. The target is a
// proxy layer at most 1.3 times the hop's own cost, at p50 and p99. (b+)
// splits the proxy layer into the hop it contains and the proxy's own work.
//
// Each variant gets a Brake of its own on a fresh bbolt file in a temporary
// directory for each concurrency, and a warm-up. The measured calls are
// made in rounds, every variant in each, so that the noise of a shared
// machine falls on all of them alike. Everything listens on loopback only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/benchutil"
	"github.com/keybrake/keybrake/internal/keys"
)

const (
	agent   = "bench-bot"
	charges = 64
	policy  = `version: 1
agents:
  bench-bot:
    stripe:
      daily_cap: 1000000.00 USD
      per_call_max: 1000.00 USD
      allow:
        - GET /v1/charges/{id}
        - POST /v1/refunds
`
)

var (
	// Built from parts, so no scanner mistakes them for real keys.
	stripeSecret = "sk_" + "test_" + strings.Repeat("B", 24)
	agentKey     = "kb_" + strings.Repeat("b", 40)
)

// config is one run's size. Zero fields are not defaults: the flags are.
type config struct {
	serial   int    // calls measured at one client, per variant
	parallel int    // calls measured at `clients` clients, per variant
	clients  int    // the concurrency of the parallel phase
	warmup   int    // calls before the measurement, per variant, at its concurrency
	rounds   int    // the measured calls are made in this many rounds, every variant in each
	serve    bool   // measure the keybrake serve binary too
	binary   string // the keybrake binary for serve; "" builds one
	profile  string // where to write a CPU profile of `profiled` at `clients`; "" for none
	profiled string // the id of the variant profiled
}

func main() {
	if fake := os.Getenv(hopEnv); fake != "" {
		if err := runHopChild(fake, os.Getenv(hopLibraryEnv)); err != nil {
			log.Fatal(err)
		}
		return
	}
	var cfg config
	// 20,000: a serial p99 then rests on the 200 slowest calls of each
	// variant, not 20, and the layer's p99 is a difference of two of them.
	flag.IntVar(&cfg.serial, "serial", 20000, "calls measured at 1 client, per variant")
	flag.IntVar(&cfg.parallel, "parallel", 20000, "calls measured at -clients clients, per variant")
	flag.IntVar(&cfg.clients, "clients", 64, "concurrent clients of the parallel phase")
	flag.IntVar(&cfg.warmup, "warmup", 300, "calls before the measurement, per variant")
	flag.IntVar(&cfg.rounds, "rounds", 10, "rounds the measured calls are split into, every variant in each round")
	flag.BoolVar(&cfg.serve, "serve", false, "also measure the keybrake serve binary (built into a temporary directory)")
	flag.StringVar(&cfg.binary, "keybrake", "", "with -serve: this keybrake `binary` instead of building one")
	flag.StringVar(&cfg.profile, "cpuprofile", "", "after the table, run -profiled once more at -clients clients with a CPU profile to `file`")
	flag.StringVar(&cfg.profiled, "profiled", "proxy", "the variant -cpuprofile profiles: direct, hop, library, hop+library, proxy or serve")
	flag.Parse()
	log.SetFlags(0)
	if err := run(os.Stdout, cfg); err != nil {
		log.Fatal(err)
	}
}

// target is where a variant's clients send their calls.
type target struct {
	client *http.Client
	base   string // scheme://host the calls are addressed to
	auth   string // the Authorization header the client sends
}

// A variant serves one way of reaching the fake and returns where to send
// calls, and how to stop it.
type variant struct {
	id    string // for -profiled
	label string // in the table
	start func(b *bench, dir string) (target, func(), error)
}

// The variants, in the table's order. serve is added by -serve.
var variants = []variant{
	{"direct", "direct to fake", startDirect},
	{"hop", "(a) bare ReverseProxy hop", startHop},
	{"library", "(b) library (HTTPClient)", startLibrary},
	{"hop+library", "(b+) ReverseProxy over (b)", startHopLibrary},
	{"proxy", "(c) proxy (kb.Proxy)", startProxy},
}

var serveVariant = variant{"serve", "(d) keybrake serve binary", startServe}

// bench is one run: the fake every variant reaches, and the files.
type bench struct {
	dir    string // temporary; removed by run
	fake   string // the fake's base URL
	policy string
	binary string // the keybrake binary, for the serve variant
	seq    atomic.Int64
	cells  atomic.Int64 // names each started variant's directory
	dials  atomic.Int64 // connections the fake has accepted
}

func run(w io.Writer, cfg config) error {
	dir, err := os.MkdirTemp("", "keybrake-proxy-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	b := &bench{dir: dir, policy: filepath.Join(dir, "keybrake.yaml")}
	fs := fakestripe.New()
	for i := 0; i < charges; i++ {
		fs.AddCharge(fakestripe.Charge{ID: chargeID(i), Amount: 99999999, Currency: "usd", Captured: true})
	}
	srv := httptest.NewUnstartedServer(fs)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	defer fs.Close() // before srv.Close, which waits for what a fault holds
	b.fake = srv.URL

	if err := os.WriteFile(b.policy, []byte(policy), 0o600); err != nil {
		return err
	}
	vs := append([]variant(nil), variants...)
	if cfg.serve {
		if b.binary = cfg.binary; b.binary == "" {
			b.binary = filepath.Join(dir, "keybrake")
			out, err := exec.Command("go", "build", "-o", b.binary, "github.com/keybrake/keybrake/cmd/keybrake").CombinedOutput()
			if err != nil {
				return fmt.Errorf("building keybrake: %v\n%s", err, out)
			}
		}
		vs = append(vs, hopProcessVariant, hopLibraryProcessVariant, serveVariant)
	}

	profiled := -1
	if cfg.profile != "" {
		if profiled = slices.IndexFunc(vs, func(v variant) bool { return v.id == cfg.profiled }); profiled < 0 {
			return fmt.Errorf("-profiled %q: no such variant", cfg.profiled)
		}
	}

	fmt.Fprintf(w, "Proxy overhead: plain net/http clients against fakestripe on loopback, alternating\n")
	fmt.Fprintf(w, "GET /v1/charges/{id} and POST /v1/refunds (1 cent, Idempotency-Key); caps never bind.\n")
	fmt.Fprintf(w, "%d calls at 1 client, %d at %d, per variant, after %d warm-up calls, in %d rounds\n",
		cfg.serial, cfg.parallel, cfg.clients, cfg.warmup, cfg.rounds)
	fmt.Fprintf(w, "that each run every variant in turn; every figure from this run.\n\n")
	fmt.Fprintf(w, "%-28s %7s %10s %10s %10s %12s\n", "variant", "clients", "p50", "p99", "calls/s", "vendor dials")
	results := map[string]result{}
	for _, clients := range []int{1, cfg.clients} {
		n := cfg.serial
		if clients > 1 {
			n = cfg.parallel
		}
		rs, err := b.measure(vs, clients, cfg.warmup, n, max(cfg.rounds, 1))
		if err != nil {
			return fmt.Errorf("at %d clients: %w", clients, err)
		}
		for i, v := range vs {
			results[key(v.id, clients)] = rs[i]
			fmt.Fprintf(w, "%-28s %7d %10s %10s %10.0f %12d\n", v.label, clients, benchutil.Micros(rs[i].p50), benchutil.Micros(rs[i].p99), rs[i].rate, rs[i].dials)
		}
	}

	fmt.Fprintf(w, "\nDerived, from the rows above (differences of percentiles):\n")
	fmt.Fprintf(w, "%-46s %7s %10s %10s\n", "", "clients", "p50", "p99")
	met, serveMet, servePlaceMet := true, true, true
	for _, clients := range []int{1, cfg.clients} {
		r := func(id string) result { return results[key(id, clients)] }
		diff := func(label string, a, b result) (time.Duration, time.Duration) {
			d50, d99 := a.p50-b.p50, a.p99-b.p99
			fmt.Fprintf(w, "%-46s %7d %10s %10s\n", label, clients, benchutil.Micros(d50), benchutil.Micros(d99))
			return d50, d99
		}
		hop50, hop99 := diff("hop's own cost = (a) - direct", r("hop"), r("direct"))
		diff("library's cost = (b) - direct", r("library"), r("direct"))
		lay50, lay99 := diff("proxy layer = (c) - (b)", r("proxy"), r("library"))
		diff("  of which a hop = (b+) - (b)", r("hop+library"), r("library"))
		diff("  of which the proxy's own = (c) - (b+)", r("proxy"), r("hop+library"))
		r50, ok50 := ratio(lay50, hop50)
		r99, ok99 := ratio(lay99, hop99)
		fmt.Fprintf(w, "%-46s %7d %10s %10s\n", "proxy layer / hop's own cost (target <= 1.3x)", clients, r50, r99)
		met = met && ok50 && ok99
		if !cfg.serve {
			continue
		}
		phop50, phop99 := diff("hop's own cost, own process = (a') - direct", r("hop-process"), r("direct"))
		srv50, srv99 := diff("serve layer = (d) - (b)", r("serve"), r("library"))
		lhop50, lhop99 := diff("  of which a hop, own process = (b+') - (b)", r("hop+library-process"), r("library"))
		diff("  of which serve's own = (d) - (b+')", r("serve"), r("hop+library-process"))
		r50, ok50 = ratio(srv50, phop50)
		r99, ok99 = ratio(srv99, phop99)
		fmt.Fprintf(w, "%-46s %7d %10s %10s\n", "serve layer / own-process hop (target <= 1.3x)", clients, r50, r99)
		serveMet = serveMet && ok50 && ok99
		r50, ok50 = ratio(srv50, lhop50)
		r99, ok99 = ratio(srv99, lhop99)
		fmt.Fprintf(w, "%-46s %7d %10s %10s\n", "serve layer / (b+') - (b) (target <= 1.3x)", clients, r50, r99)
		servePlaceMet = servePlaceMet && ok50 && ok99
		r50, _ = ratio(srv50, hop50)
		r99, _ = ratio(srv99, hop99)
		fmt.Fprintf(w, "%-46s %7d %10s %10s\n", "serve layer / in-process hop (a)", clients, r50, r99)
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "\nTarget (proxy layer at most 1.3x the bare hop's own cost, p50 and p99, both concurrencies):\n")
	fmt.Fprintf(w, "  kb.Proxy in process against the hop in process: %s.\n", verdict(met))
	if cfg.serve {
		fmt.Fprintf(w, "  keybrake serve against the hop as a process of its own: %s.\n", verdict(serveMet))
		fmt.Fprintf(w, "  keybrake serve against that hop where serve's layer is, in front of a Brake (b+'): %s.\n", verdict(servePlaceMet))
	}

	if cfg.profile != "" {
		if err := b.profile(vs[profiled], cfg.clients, cfg.warmup, cfg.parallel, cfg.profile); err != nil {
			return fmt.Errorf("profiling %s: %w", vs[profiled].label, err)
		}
		fmt.Fprintf(w, "CPU profile of %s at %d clients (%d calls, the whole process: clients and fake too) in %s.\n",
			vs[profiled].label, cfg.clients, cfg.parallel, cfg.profile)
	}
	return nil
}

func key(id string, clients int) string { return fmt.Sprintf("%s@%d", id, clients) }

// ratio formats layer/hop and says whether it is within the target. A
// layer that cost nothing measurable (its percentile at or below the
// library's) is within any target; a hop that cost nothing measurable has
// no ratio, and a layer that did cost something is then not within it.
func ratio(layer, hop time.Duration) (string, bool) {
	if hop <= 0 {
		return "n/a", layer <= 0
	}
	r := float64(layer) / float64(hop)
	return fmt.Sprintf("%.2fx", r), r <= 1.3
}

type result struct {
	p50, p99 time.Duration
	rate     float64 // calls per second over the wall time of the variant's rounds
	dials    int64   // connections opened to the fake during the measured calls
}

// started is a variant being measured.
type started struct {
	target
	stop  func()
	lat   []time.Duration
	wall  time.Duration
	dials int64
}

func (b *bench) start(v variant) (*started, error) {
	dir := filepath.Join(b.dir, fmt.Sprintf("%s-%d", strings.ReplaceAll(v.id, "+", "-"), b.cells.Add(1)))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	t, stop, err := v.start(b, dir)
	if err != nil {
		return nil, err
	}
	return &started{target: t, stop: stop}, nil
}

// measure starts every variant afresh (a Brake of its own on a new bbolt
// file), warms each up, and then makes n calls per variant at `clients`,
// in rounds that each give every variant its share in turn, starting with
// a different one each round: a noisy neighbour then slows every variant
// alike rather than whichever ran when it struck.
func (b *bench) measure(vs []variant, clients, warmup, n, rounds int) ([]result, error) {
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
		// Every charge is refunded once, so the Brakes know their
		// currencies and no refund measured waits for a lookup.
		if _, _, err := b.load(s.target, clients, max(warmup, 2*charges)); err != nil {
			return nil, fmt.Errorf("%s: warm-up: %w", v.label, err)
		}
	}
	err := benchutil.Interleave(len(vs), n, rounds, func(i, share int) error {
		before := b.dials.Load()
		lat, wall, err := b.load(ss[i].target, clients, share)
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
		out[i] = result{p50: benchutil.Percentile(s.lat, 50), p99: benchutil.Percentile(s.lat, 99), rate: float64(len(s.lat)) / s.wall.Seconds(), dials: s.dials}
	}
	return out, nil
}

// profile runs v alone, afresh, at `clients` for n calls with the CPU
// profile on.
func (b *bench) profile(v variant, clients, warmup, n int, file string) error {
	s, err := b.start(v)
	if err != nil {
		return err
	}
	defer s.stop()
	if _, _, err := b.load(s.target, clients, max(warmup, 2*charges)); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	_, _, err = b.load(s.target, clients, n)
	pprof.StopCPUProfile()
	return errors.Join(err, f.Close())
}

// load makes n calls from `clients` goroutines and returns each call's
// latency, from sending to the end of the body, and the wall time.
func (b *bench) load(t target, clients, n int) ([]time.Duration, time.Duration, error) {
	return benchutil.Load(clients, n, func(i int) error { return b.call(t, i) })
}

func chargeID(i int) string { return fmt.Sprintf("ch_bench%02d", i) }

// call makes call i: even calls read a charge, odd ones refund a cent of
// one, with a fresh Idempotency-Key as stripe-go sends.
func (b *bench) call(t target, i int) error {
	ch := chargeID(i / 2 % charges)
	var req *http.Request
	var err error
	if i%2 == 0 {
		req, err = http.NewRequest("GET", t.base+"/v1/charges/"+ch, nil)
	} else {
		req, err = http.NewRequest("POST", t.base+"/v1/refunds", strings.NewReader("amount=1&charge="+ch))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d", b.seq.Add(1)))
		}
	}
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", t.auth)
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// client is the agents' side of every variant but the library: pooled
// connections enough for every client, so none of them redials.
func client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func closing(c *http.Client, then ...func()) func() {
	return func() {
		c.CloseIdleConnections()
		for _, f := range then {
			f()
		}
	}
}

// serveLoopback serves h as keybrake serve does: an http.Server with its
// timeouts, on a loopback port.
func serveLoopback(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

func startDirect(b *bench, _ string) (target, func(), error) {
	c := client()
	return target{client: c, base: b.fake, auth: "Bearer " + stripeSecret}, closing(c), nil
}

// startHop is the baseline: a ReverseProxy as bare as one gets, on a clone
// of http.DefaultTransport that keeps an idle connection for every client.
// (http.DefaultTransport itself keeps two per host, so at 64 clients the
// hop would redial and cost more, which would flatter the ratio.)
func startHop(b *bench, _ string) (target, func(), error) {
	u, err := url.Parse(b.fake)
	if err != nil {
		return target{}, nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	base, stop, err := serveLoopback(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, Transport: tr})
	if err != nil {
		return target{}, nil, err
	}
	c := client()
	return target{client: c, base: base, auth: "Bearer " + stripeSecret}, closing(c, stop), nil
}

func (b *bench) open(dir string) (*keybrake.Brake, error) {
	return keybrake.Open(keybrake.Options{
		PolicyFile: b.policy,
		DBPath:     filepath.Join(dir, "keybrake.db"),
		Endpoints:  map[keybrake.Vendor]string{keybrake.Stripe: b.fake},
		ErrorLog:   func(err error) { log.Print("keybrake: ", err) },
	})
}

func startLibrary(b *bench, dir string) (target, func(), error) {
	kb, err := b.open(dir)
	if err != nil {
		return target{}, nil, err
	}
	c := kb.HTTPClient(agent, keybrake.Stripe)
	return target{client: c, base: "https://api.stripe.com", auth: "Bearer " + stripeSecret},
		closing(c, func() { kb.Close() }), nil
}

// startHopLibrary is a bare ReverseProxy whose transport is the
// library's chain: the proxy's path without the proxy's own work (finding
// the key, presenting the secret), to split the proxy layer in two.
func startHopLibrary(b *bench, dir string) (target, func(), error) {
	kb, err := b.open(dir)
	if err != nil {
		return target{}, nil, err
	}
	base, stop, err := serveLoopback(hopOverLibrary(kb))
	if err != nil {
		kb.Close()
		return target{}, nil, err
	}
	c := client()
	return target{client: c, base: base, auth: "Bearer " + stripeSecret},
		closing(c, stop, func() { kb.Close() }), nil
}

// hopOverLibrary is the bare ReverseProxy of (b+) and (b+'): every call
// to the Stripe API through kb's chain.
func hopOverLibrary(kb *keybrake.Brake) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "https", "api.stripe.com", ""
		},
		Transport: kb.Transport(agent, keybrake.Stripe, nil),
	}
}

// oneKey is the KeyFinder of the in-process proxy: one agent key.
type oneKey struct{}

func (oneKey) FindKey(token string) (keybrake.AgentKey, keybrake.KeyResult) {
	if token != agentKey {
		return keybrake.AgentKey{}, keybrake.KeyUnknown
	}
	return keybrake.AgentKey{ID: "kbk_bench", Agent: agent, Vendor: keybrake.Stripe}, keybrake.KeyFound
}

func startProxy(b *bench, dir string) (target, func(), error) {
	kb, err := b.open(dir)
	if err != nil {
		return target{}, nil, err
	}
	h, err := kb.Proxy(keybrake.ProxyOptions{
		Keys: oneKey{},
		Secret: func(keybrake.Vendor, []string) (map[string]string, error) {
			return map[string]string{"STRIPE_SECRET_KEY": stripeSecret}, nil
		},
	})
	if err != nil {
		kb.Close()
		return target{}, nil, err
	}
	base, stop, err := serveLoopback(h)
	if err != nil {
		kb.Close()
		return target{}, nil, err
	}
	c := client()
	return target{client: c, base: base, auth: "Bearer " + agentKey},
		closing(c, stop, func() { kb.Close() }), nil
}

// startServe runs the keybrake serve binary, with a keys file of one key
// and the secret in its environment, as an operator would.
func startServe(b *bench, dir string) (target, func(), error) {
	keysFile := filepath.Join(dir, "keybrake.keys")
	token, _, err := keys.Add(keysFile, agent, "stripe", time.Now())
	if err != nil {
		return target{}, nil, err
	}
	cmd := exec.Command(b.binary, "serve",
		"--policy", b.policy, "--db", filepath.Join(dir, "keybrake.db"), "--keys", keysFile,
		"--listen", "127.0.0.1:0", "--admin", "-", "--endpoint", "stripe="+b.fake)
	cmd.Env = append(os.Environ(), "STRIPE_SECRET_KEY="+stripeSecret)
	addr, stop, err := startProcess(cmd)
	if err != nil {
		return target{}, nil, fmt.Errorf("keybrake serve: %w", err)
	}
	c := client()
	return target{client: c, base: addr, auth: "Bearer " + token}, closing(c, stop), nil
}

// announcement is keybrake serve's stderr: it keeps what was written and
// sends the agents' URL once the line announcing it is complete.
type announcement struct {
	mu   sync.Mutex
	buf  strings.Builder
	addr chan string
	sent bool
}

func (a *announcement) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf.Write(p)
	if !a.sent {
		_, rest, ok := strings.Cut(a.buf.String(), "serving agents on ")
		if line, _, complete := strings.Cut(rest, "\n"); ok && complete {
			url, _, _ := strings.Cut(line, " ")
			a.addr <- url
			a.sent = true
		}
	}
	return len(p), nil
}

func (a *announcement) text() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}
