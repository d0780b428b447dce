package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/store/postgres"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// childEnv holds a child's job, as JSON, when the command runs as one of
// the processes of a measurement. The DSN travels here rather than in
// argv, where ps would show its password.
const childEnv = "KEYBRAKE_FLEET_CHILD"

// job is what one child process does.
type job struct {
	Variant  string        // "baseline", "keybrake", "embedded" or "revocation"
	Callers  int           // goroutines in this process
	Duration time.Duration // of the measured calls, after "go"
	DSN      string        // with search_path set to the measurement's schema
	Fake     string        // the stub's base URL
	Policy   string        // the policy file, for keybrake
	Dir      string        // a directory of this job's own, for the embedded store's file
}

// report is what a child prints when it is done: one JSON line.
type report struct {
	Calls   int     `json:"calls"`
	Micros  []int64 `json:"micros"` // every measured call's latency
	Elapsed float64 `json:"elapsed"`
	Err     string  `json:"err,omitempty"`
}

// child runs one job: set up, warm up, print "ready", wait for a line on
// stdin, make calls for the job's duration, print the report.
func child(spec string, stdin io.Reader, stdout io.Writer) error {
	var j job
	if err := json.Unmarshal([]byte(spec), &j); err != nil {
		return fmt.Errorf("child: %w", err)
	}
	stripego.DefaultLeveledLogger = &stripego.LeveledLogger{Level: stripego.LevelNull}
	ctx := context.Background()
	var (
		do   func(i int) error
		stop func()
		err  error
	)
	switch j.Variant {
	case "baseline":
		do, stop, err = startBaseline(ctx, j)
	case "keybrake":
		do, stop, err = startKeybrake(ctx, j)
	case "embedded":
		do, stop, err = startEmbedded(j)
	case "revocation":
		return revocationChild(ctx, j, stdin, stdout)
	default:
		err = fmt.Errorf("child: unknown variant %q", j.Variant)
	}
	if err != nil {
		return err
	}
	defer stop()
	// Every charge once, so the Brake knows their currencies and no
	// measured call waits for a lookup; and the pools are warm.
	if _, _, err := loadN(do, j.Callers, 2*charges); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	fmt.Fprintln(stdout, "ready")
	if _, err := bufio.NewReader(stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for go: %w", err)
	}
	lat, elapsed, err := loadFor(do, j.Callers, j.Duration)
	rep := report{Calls: len(lat), Elapsed: elapsed.Seconds()}
	for _, d := range lat {
		rep.Micros = append(rep.Micros, d.Microseconds())
	}
	if err != nil {
		rep.Err = err.Error()
	}
	return json.NewEncoder(stdout).Encode(rep)
}

// pooled is the bare SDK's HTTP client, with idle connections enough for
// every caller, as the Brake's base transport keeps.
func pooled() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: tr, Timeout: 80 * time.Second}
}

func refunds(sc *client.API) func(i int) error {
	return func(i int) error {
		_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String(chargeID(i % charges)), Amount: stripego.Int64(1)})
		return err
	}
}

// startBaseline is the naive fleet brake: one pgx transaction per call
// holding one cent against one hot counter row with a conditional UPDATE,
// then the same refund through bare stripe-go.
func startBaseline(ctx context.Context, j job) (func(int) error, func(), error) {
	pool, err := pgxpool.New(ctx, j.DSN)
	if err != nil {
		return nil, nil, err
	}
	hc := pooled()
	backend := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{HTTPClient: hc, URL: stripego.String(j.Fake)})
	refund := refunds(client.New(stripeSecret, &stripego.Backends{API: backend, Connect: backend, Uploads: backend}))
	do := func(i int) error {
		err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
			var used int64
			return tx.QueryRow(ctx, `UPDATE bench_counter SET used = used + $1 WHERE key = $2 AND used + $1 <= cap RETURNING used`,
				centMicros, "hot").Scan(&used)
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return errors.New("baseline: the cap was reached; it should never bind")
		}
		if err != nil {
			return err
		}
		return refund(i)
	}
	return do, func() { hc.CloseIdleConnections(); pool.Close() }, nil
}

// startKeybrake is the call as an agent makes it: stripe-go over
// Brake.HTTPClient, the Brake on a store/postgres Store.
func startKeybrake(ctx context.Context, j job) (func(int) error, func(), error) {
	st, err := postgres.Open(ctx, j.DSN, nil)
	if err != nil {
		return nil, nil, err
	}
	do, stop, err := startBrake(j, keybrake.Options{Store: st})
	if err != nil {
		st.Close()
	}
	return do, stop, err
}

// startEmbedded is the same call with the Brake on its embedded store, a
// bbolt file of this process: no database and no network between the
// Brake and its store. It bounds what any fleet store can reach in this
// harness on this machine, since a store/postgres call does the Brake's
// work and more.
func startEmbedded(j job) (func(int) error, func(), error) {
	return startBrake(j, keybrake.Options{DBPath: filepath.Join(j.Dir, "keybrake.db")})
}

// startBrake is stripe-go over a Brake of opts (its store) and the job's
// policy and fake.
func startBrake(j job, opts keybrake.Options) (func(int) error, func(), error) {
	opts.PolicyFile = j.Policy
	opts.Endpoints = map[keybrake.Vendor]string{keybrake.Stripe: j.Fake}
	opts.AdminSocket = "-"
	opts.ErrorLog = func(err error) { log.Print("keybrake: ", err) }
	kb, err := keybrake.Open(opts)
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

// loadN makes n calls from `callers` goroutines; the first error stops
// them all.
func loadN(do func(int) error, callers, n int) ([]time.Duration, time.Duration, error) {
	var next atomic.Int64
	return load(do, callers, func() (int, bool) {
		i := int(next.Add(1)) - 1
		return i, i < n
	}, func() { next.Store(int64(n)) })
}

// loadFor makes calls from `callers` goroutines for d.
func loadFor(do func(int) error, callers int, d time.Duration) ([]time.Duration, time.Duration, error) {
	var next atomic.Int64
	var stopped atomic.Bool
	end := time.Now().Add(d)
	return load(do, callers, func() (int, bool) {
		return int(next.Add(1)), !stopped.Load() && time.Now().Before(end)
	}, func() { stopped.Store(true) })
}

func load(do func(int) error, callers int, next func() (int, bool), halt func()) ([]time.Duration, time.Duration, error) {
	var (
		mu    sync.Mutex
		all   []time.Duration
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var err error
			for {
				i, ok := next()
				if !ok {
					break
				}
				t0 := time.Now()
				if err = do(i); err != nil {
					halt()
					break
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			if first == nil {
				first = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, time.Since(start), first
}

func runChild() {
	log.SetFlags(0)
	log.SetPrefix(fmt.Sprintf("bench/fleet child %d: ", os.Getpid()))
	if err := child(os.Getenv(childEnv), os.Stdin, os.Stdout); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}
