package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/benchutil"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

// runMillion writes cfg.records calls through a Brake and measures the
// store at that size, as the keybrake command and a restarting agent
// meet it.
func runMillion(w io.Writer, cfg config) error {
	b, cleanup, err := newBench()
	if err != nil {
		return err
	}
	defer cleanup()
	url, stop := b.serve(stub())
	defer stop()
	dir := filepath.Join(b.dir, "million")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	db := filepath.Join(dir, "keybrake.db")

	wrote, err := b.write(dir, url, cfg)
	if err != nil {
		return err
	}
	fi, err := os.Stat(db)
	if err != nil {
		return err
	}
	rare := (cfg.records + rareEvery - 1) / rareEvery
	fmt.Fprintf(w, "Store at %d records: %s %d, %s %d, their times spread over %s ending now;\n",
		cfg.records, agent, cfg.records-rare, rareAgent, rare, cfg.span)
	fmt.Fprintf(w, "written as stripe-go does (refunds with an Idempotency-Key) through Brake.HTTPClient at %d callers\n", cfg.callers)
	fmt.Fprintf(w, "against a stateless loopback stub in %s (%.0f calls/s). Reads: median of 5, whole histories once.\n\n",
		wrote.Round(time.Second), float64(cfg.records)/wrote.Seconds())
	fmt.Fprintf(w, "%-52s %12s %10s %11s  %s\n", "figure", "value", "records", "target", "verdict")
	met := true
	row := func(label, value string, records int, ok bool, target string) {
		verdict, recs := "", ""
		if target != "" {
			verdict = "MET"
			if !ok {
				verdict, met = "NOT met", false
			}
		}
		if records >= 0 {
			recs = fmt.Sprint(records)
		}
		fmt.Fprintf(w, "%-52s %12s %10s %11s  %s\n", label, value, recs, target, verdict)
	}
	perRecord := fi.Size() / int64(cfg.records)
	row("bytes per record on disk (file / records)", fmt.Sprintf("%d B", perRecord), -1, perRecord <= 512, "<= 512 B")

	reads, err := b.reads(db, cfg)
	if err != nil {
		return err
	}
	for _, r := range reads {
		target := ""
		if r.target > 0 {
			target = fmt.Sprintf("<= %d ms", r.target/time.Millisecond)
		}
		row(r.label, ms(r.took), r.records, r.took <= r.target, target)
	}

	opened, closed, err := b.openClose(db, url)
	if err != nil {
		return err
	}
	row("Open (keybrake.Open)", ms(opened), -1, opened <= 50*time.Millisecond, "<= 50 ms")
	row("Close right after Open", ms(closed), -1, closed <= 100*time.Millisecond, "<= 100 ms")
	during, pruned, err := b.closeDuringPrune(db, url, cfg.span/2)
	if err != nil {
		return err
	}
	row("Close during a Prune", ms(during), -1, during <= 100*time.Millisecond, "<= 100 ms")
	verdict := "all MET"
	if !met {
		verdict = "NOT all met"
	}
	fmt.Fprintf(w, "\nThe Prune (retention %s: half the log to cut) %s.\n", cfg.span/2, pruned)
	fmt.Fprintf(w, "Targets at %d records: %s.\n", cfg.records, verdict)
	return nil
}

// write makes cfg.records refunds at cfg.callers, every rareEvery-th by
// the rare agent, with a clock that walks from span ago to now as the
// calls are made, so their records spread over the span as a long-running
// agent's do.
func (b *bench) write(dir, url string, cfg config) (time.Duration, error) {
	end := time.Now()
	first := end.Add(-cfg.span)
	var clock atomic.Int64
	clock.Store(first.UnixNano())
	kb, err := b.open(dir, url, keybrake.Options{
		Clock:       func() time.Time { return time.Unix(0, clock.Load()) },
		Retention:   -1,
		AdminSocket: "-",
	})
	if err != nil {
		return 0, err
	}
	clients := map[bool]*http.Client{false: kb.HTTPClient(agent, keybrake.Stripe), true: kb.HTTPClient(rareAgent, keybrake.Stripe)}
	step := float64(cfg.span) / float64(max(cfg.records-1, 1))
	var done atomic.Int64
	progress := time.NewTicker(30 * time.Second)
	defer progress.Stop()
	stopped := make(chan struct{})
	go func() {
		for {
			select {
			case <-progress.C:
				log.Printf("bench/calls: %d of %d calls written", done.Load(), cfg.records)
			case <-stopped:
				return
			}
		}
	}()
	t0 := time.Now()
	_, _, err = benchutil.Load(cfg.callers, cfg.records, func(i int) error {
		at := first.UnixNano() + int64(step*float64(i))
		for {
			now := clock.Load()
			if at <= now || clock.CompareAndSwap(now, at) {
				break
			}
		}
		err := refund(clients[i%rareEvery == 0], i)
		done.Add(1)
		return err
	})
	took := time.Since(t0)
	close(stopped)
	return took, errors.Join(err, kb.Close())
}

// refund is a refund of a cent as stripe-go sends it, by plain net/http.
func refund(hc *http.Client, i int) error {
	req, err := http.NewRequest("POST", "https://api.stripe.com/v1/refunds",
		strings.NewReader(fmt.Sprintf("amount=1&charge=%s", chargeID(i%charges))))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+stripeSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// The key stripe-go makes when its caller gives none: the time in
	// nanoseconds and six random characters, so keys come in about the
	// order of the calls, as the store meets them from a Go agent.
	req.Header.Set("Idempotency-Key", stripego.NewIdempotencyKey())
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("refund %d: %d %s", i, resp.StatusCode, body)
	}
	return err
}

type read struct {
	label   string
	took    time.Duration
	records int
	target  time.Duration // 0: no target, shown for proportion
}

// reads measures what the keybrake command reads, on the file as it
// reads one no agent holds.
func (b *bench) reads(db string, cfg config) ([]read, error) {
	st, err := bolt.Open(db, nil)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	pol, err := policy.Load(b.policy)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	now := time.Now()
	src := &admin.Local{Store: st, State: func() admin.State { return admin.State{Policy: pol} }}
	query := func(q audit.Query) func() (int, error) {
		return func() (int, error) {
			n := 0
			err := st.Query(ctx, q, func(*audit.Record) error { n++; return nil })
			return n, err
		}
	}
	minute := now.Add(-cfg.span / 2).Truncate(time.Minute)
	page, err := newPageBench(src, now)
	if err != nil {
		return nil, err
	}
	type measured struct {
		label  string
		runs   int
		target time.Duration
		do     func() (int, error)
	}
	todo := []measured{
		{"keybrake status (admin.Local.Status)", 5, 200 * time.Millisecond, func() (int, error) {
			s, err := src.Status(ctx)
			if err != nil {
				return 0, err
			}
			return s.Open.Reserved + s.Open.Unknown, nil
		}},
		{"audit --agent " + agent + " --since 1h", 5, 200 * time.Millisecond, query(audit.Query{Agent: agent, Since: now.Add(-time.Hour)})},
		{"a 1-minute window, every agent", 5, 50 * time.Millisecond, query(audit.Query{Since: minute, Until: minute.Add(time.Minute)})},
		{"page: first data (now, 15-min timeline, records)", 5, 300 * time.Millisecond, page.firstData(now)},
		{"page: a 90-second timeline", 5, 100 * time.Millisecond, page.timeline(minute, 90*time.Second)},
		{"page: a 24-hour timeline", 3, 0, page.timeline(now.Add(-24*time.Hour), 24*time.Hour)},
		{"whole history of " + agent, 1, 0, query(audit.Query{Agent: agent})},
		{"whole history of " + rareAgent, 1, 0, query(audit.Query{Agent: rareAgent})},
	}
	var out []read
	for _, m := range todo {
		var times []time.Duration
		n := 0
		for r := 0; r < m.runs; r++ {
			t0 := time.Now()
			if n, err = m.do(); err != nil {
				return nil, fmt.Errorf("%s: %w", m.label, err)
			}
			times = append(times, time.Since(t0))
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		r := read{label: m.label, took: times[len(times)/2], records: n, target: m.target}
		if m.target == 0 && n > 0 {
			r.label += fmt.Sprintf(" (%s a record)", benchutil.Micros(r.took/time.Duration(n)))
		}
		out = append(out, r)
	}
	return out, nil
}

// openClose times keybrake.Open on the file as an agent opens it (the
// default retention: the Prune it starts has nothing to cut but reads the
// chain), and its Close right after.
func (b *bench) openClose(db, url string) (opened, closed time.Duration, err error) {
	t0 := time.Now()
	kb, err := b.open(filepath.Dir(db), url, keybrake.Options{})
	opened = time.Since(t0)
	if err != nil {
		return 0, 0, err
	}
	t0 = time.Now()
	err = kb.Close()
	return opened, time.Since(t0), err
}

// pruneWatch says when the Brake's Prune has started, and what it had
// removed when it returned.
type pruneWatch struct {
	store.Store
	started  chan struct{}
	returned chan string
}

func (p *pruneWatch) Prune(ctx context.Context, before time.Time) (store.PruneReport, error) {
	p.started <- struct{}{}
	rep, err := p.Store.Prune(ctx, before)
	p.returned <- fmt.Sprintf("%d records (%v)", rep.Records, err)
	return rep, err
}

// closeDuringPrune opens a Brake whose retention leaves half the log to
// prune, and times its Close once the Prune has run for a second, and
// says what the Prune had done.
func (b *bench) closeDuringPrune(db, url string, keep time.Duration) (time.Duration, string, error) {
	st, err := bolt.Open(db, nil)
	if err != nil {
		return 0, "", err
	}
	pw := &pruneWatch{Store: st, started: make(chan struct{}, 1), returned: make(chan string, 1)}
	kb, err := keybrake.Open(keybrake.Options{
		PolicyFile: b.policy, Store: pw, Retention: keep, AdminSocket: "-",
		Endpoints: map[keybrake.Vendor]string{keybrake.Stripe: url},
		ErrorLog:  func(err error) { log.Print("keybrake: ", err) },
	})
	if err != nil {
		st.Close()
		return 0, "", err
	}
	<-pw.started
	select {
	case what := <-pw.returned:
		// A log this short is pruned before Close can interrupt it.
		t0 := time.Now()
		err = kb.Close()
		return time.Since(t0), "finished before Close, having removed " + what, err
	case <-time.After(time.Second):
	}
	t0 := time.Now()
	err = kb.Close()
	took := time.Since(t0)
	return took, "had removed " + <-pw.returned + " when Close cancelled it", err
}
