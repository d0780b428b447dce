package keybrake_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
)

// drainPolicy lets refunds of a cent run for a long time without a cap.
const drainPolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 1000000.00 USD
      allow:
        - POST /v1/refunds
`

// errorLog collects what a Brake reports through Options.ErrorLog.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// gatedStripe serves fs behind a gate: the first refund to arrive is
// announced on arrived and held until release is called; every other
// request is served at once.
func gatedStripe(t *testing.T, fs *fakestripe.Server) (url string, arrived <-chan struct{}, release func()) {
	t.Helper()
	in, gate := make(chan struct{}), make(chan struct{})
	var seen atomic.Bool
	url = newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/refunds" && seen.CompareAndSwap(false, true) {
			close(in)
			<-gate
		}
		fs.ServeHTTP(w, r)
	}))
	release = sync.OnceFunc(func() { close(gate) })
	// Before the server's Close, which waits for its handlers.
	t.Cleanup(release)
	t.Cleanup(fs.Close)
	return url, in, release
}

func closingDenial(t *testing.T, err error) *keybrake.Denial {
	t.Helper()
	stripeErr(t, err, 503)
	d, ok := keybrake.AsDenial(err)
	if !ok || d.Decision != keybrake.Error || d.Code != "keybrake_closing" || d.Rule != "brake" ||
		!strings.Contains(d.Reason, "closing") {
		t.Fatalf("denial %+v (%v), want an Error keybrake_closing by rule brake", d, err)
	}
	return d
}

// TestCallAfterCloseIsRefused: a call on a closed Brake is refused in
// Stripe's format, never sent, and the record it could not write is
// reported.
func TestCallAfterCloseIsRefused(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_late", Amount: 9000, Currency: "usd", Captured: true})
	var log errorLog
	kb := openBrake(t, drainPolicy, keybrake.Options{Endpoints: fakeEndpoint(url), ErrorLog: log.add})
	bot := sdkNoRetry(kb, "refund-bot")
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := kb.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}

	_, err := bot.Refunds.New(refund("ch_late", 100))
	if d := closingDenial(t, err); d.CallID != 0 {
		t.Fatalf("a call on a closed store has record %d", d.CallID)
	}
	if n := fs.Requests(); n != 0 {
		t.Fatalf("the fake saw %d requests", n)
	}
	errs := log.all()
	if len(errs) != 1 || !errors.Is(errs[0], store.ErrClosed) {
		t.Fatalf("reported %v, want the refusal's record failing on the closed store", errs)
	}
}

// TestShutdownWaitsForCallsInFlight holds a refund on the wire while the
// Brake shuts down: new calls are refused and audited meanwhile, and the
// refund settles before the store closes.
func TestShutdownWaitsForCallsInFlight(t *testing.T) {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_wait", Amount: 90000, Currency: "usd", Captured: true})
	url, arrived, release := gatedStripe(t, fs)
	opts := keybrake.Options{
		PolicyFile: writePolicy(t, drainPolicy),
		DBPath:     filepath.Join(t.TempDir(), "keybrake.db"),
		Endpoints:  fakeEndpoint(url),
	}
	kb := openBrake(t, "", opts)
	bot := sdkNoRetry(kb, "refund-bot")

	type result struct {
		id  string
		err error
	}
	held := make(chan result, 1)
	go func() {
		r, err := bot.Refunds.New(refund("ch_wait", 2500))
		if err != nil {
			held <- result{err: err}
			return
		}
		held <- result{id: r.ID}
	}()
	<-arrived
	shut := make(chan error, 1)
	go func() { shut <- kb.Shutdown(context.Background()) }()

	// Calls made before the shutdown began pass; the first refused one
	// shows it has begun.
	var refused *keybrake.Denial
	for refused == nil {
		_, err := bot.Refunds.New(refund("ch_wait", 100))
		if err != nil {
			refused = closingDenial(t, err)
		}
	}
	if refused.CallID == 0 {
		t.Fatal("a call refused while the Brake drains has no audit record")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a refund on the wire", err)
	default:
	}
	// A second Shutdown whose own deadline has come does not wait for
	// the first.
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := kb.Shutdown(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("a second Shutdown past its deadline returned %v while the first drains", err)
	}

	release()
	r := <-held
	if r.err != nil {
		t.Fatalf("the held refund: %v", r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	kb = openBrake(t, "", opts)
	var settled, closing int
	for _, rec := range dump(t, kb, audit.Query{}) {
		switch {
		case rec.Object == r.id && rec.Outcome == audit.Settled && rec.Settled.Micros == 25_000_000:
			settled++
		case rec.ID == refused.CallID && rec.Code == "keybrake_closing" && rec.Outcome == audit.None:
			closing++
		case rec.Outcome == audit.Unknown || rec.Outcome == audit.Reserved:
			t.Errorf("record still counted after a clean shutdown: %+v", rec)
		}
	}
	if settled != 1 || closing != 1 {
		t.Fatalf("%d settled records of the held refund, %d of the refusal; want 1 and 1", settled, closing)
	}
}

// TestShutdownDeadlineKeepsMoneyCounted: a refund that never answers is
// still in flight at the deadline; Shutdown says so, closes anyway, and the
// refund's 25.00 USD stays counted after a restart.
func TestShutdownDeadlineKeepsMoneyCounted(t *testing.T) {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_hang", Amount: 90000, Currency: "usd", Captured: true})
	fs.On("POST", "/v1/refunds").HangNext(1)
	url, arrived, release := gatedStripe(t, fs)
	release() // the gate only announces; the fake hangs
	var log errorLog
	opts := keybrake.Options{
		PolicyFile: writePolicy(t, capPolicy),
		DBPath:     filepath.Join(t.TempDir(), "keybrake.db"),
		Endpoints:  fakeEndpoint(url),
		ErrorLog:   log.add,
	}
	kb := openBrake(t, "", opts)
	give, giveUp := context.WithCancel(context.Background())
	defer giveUp()
	hung := make(chan error, 1)
	go func() {
		p := refund("ch_hang", 2500)
		p.Context = give
		_, err := sdkNoRetry(kb, "refund-bot").Refunds.New(p)
		hung <- err
	}()
	<-arrived

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has come
	err := kb.Shutdown(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "1 call still in flight") {
		t.Fatalf("Shutdown at the deadline: %v", err)
	}
	if again := kb.Close(); again != err {
		t.Fatalf("Close after Shutdown: %v, want the first result", again)
	}

	giveUp()
	if err := <-hung; err == nil {
		t.Fatal("the hung refund returned no error")
	} else if _, ok := keybrake.AsDenial(err); ok {
		t.Fatalf("the hung refund was refused: %v", err)
	}
	errs := log.all()
	if len(errs) != 1 || !errors.Is(errs[0], store.ErrClosed) {
		t.Fatalf("reported %v, want the completion failing on the closed store", errs)
	}

	kb = openBrake(t, "", opts)
	recs := dump(t, kb, audit.Query{})
	if len(recs) != 1 || recs[0].Outcome != audit.Unknown || recs[0].Reserved.Micros != 25_000_000 {
		t.Fatalf("records after the deadline: %+v", recs)
	}
	// 25.00 USD stays counted: 75.00 more fit, 75.01 do not.
	bot := sdkNoRetry(kb, "refund-bot")
	for _, amount := range []int64{3000, 3000} {
		if _, err := bot.Refunds.New(refund("ch_hang", amount)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = bot.Refunds.New(refund("ch_hang", 1501))
	stripeErr(t, err, 402)
	if _, err := bot.Refunds.New(refund("ch_hang", 1500)); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownDeadlineWithUnreadBody: a refund whose 200 the caller never
// reads stays in flight, and holds Shutdown only until its deadline; the
// body closed later settles against the closed store, which is reported.
func TestShutdownDeadlineWithUnreadBody(t *testing.T) {
	fs, fakeURL := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_unread", Amount: 90000, Currency: "usd", Captured: true})
	var log errorLog
	kb := openBrake(t, drainPolicy, keybrake.Options{Endpoints: fakeEndpoint(fakeURL), ErrorLog: log.add})

	form := url.Values{"charge": {"ch_unread"}, "amount": {"700"}}
	req, err := http.NewRequest(http.MethodPost, fakeURL+"/v1/refunds", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testenv.StripeMockKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := kb.HTTPClient("refund-bot", keybrake.Stripe).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := kb.Shutdown(ctx); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "1 call still in flight") {
		t.Fatalf("Shutdown with an unread body: %v", err)
	}
	resp.Body.Close()
	errs := log.all()
	if len(errs) != 1 || !errors.Is(errs[0], store.ErrClosed) {
		t.Fatalf("reported %v, want the settlement failing on the closed store", errs)
	}
}

// generation is one Brake of TestCloseAndReopenUnderLoad and the SDK
// built on it.
type generation struct {
	kb      *keybrake.Brake
	bot     *client.API
	ok      atomic.Int64
	busy    chan struct{} // closed once enough refunds have passed through it
	refused atomic.Int64  // callers refused for closing
	closing chan struct{} // closed once every caller not held has been refused
	next    chan struct{} // closed once the next generation is current
}

// hold keeps the first refunds to reach the fake waiting, so that Close
// begins with refunds on the wire that the fake will answer with 200.
type hold struct {
	max     int64
	n       atomic.Int64
	first   chan struct{} // closed when the first refund is held
	release chan struct{}
}

func (h *hold) wait() {
	switch n := h.n.Add(1); {
	case n == 1:
		close(h.first)
	case n > h.max:
		return
	}
	<-h.release
}

// TestCloseAndReopenUnderLoad is the reliability scenario of Close: 256
// goroutines refund through stripe-go while the Brake on one bbolt file is
// closed and opened again, cycle after cycle, each Close beginning with
// refunds on the wire that answer only once the other callers have been
// refused. Every refund the fake made has a settled record,
// none is unknown, and every refusal the callers saw has its audit record,
// or was reported because the store had closed.
func TestCloseAndReopenUnderLoad(t *testing.T) {
	const (
		workers = 256
		cycles  = 10
		perGen  = 16 // refunds that pass through a Brake before it closes
		held    = 32 // refunds on the wire when it starts closing
	)
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_load", Amount: 99_999_999, Currency: "usd", Captured: true})
	var holding atomic.Pointer[hold]
	url := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := holding.Load(); h != nil && r.Method == http.MethodPost {
			h.wait()
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(fs.Close)
	var log errorLog
	opts := keybrake.Options{
		PolicyFile: writePolicy(t, drainPolicy),
		DBPath:     filepath.Join(t.TempDir(), "keybrake.db"),
		Endpoints:  fakeEndpoint(url),
		ErrorLog:   log.add,
		PolicyPoll: -1,
	}
	open := func() *generation {
		kb, err := keybrake.Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		return &generation{kb: kb, bot: sdkNoRetry(kb, "refund-bot"),
			busy: make(chan struct{}), closing: make(chan struct{}), next: make(chan struct{})}
	}

	var (
		cur    atomic.Pointer[generation]
		stop   = make(chan struct{})
		failed = make(chan struct{}) // closed at a worker's first unexpected error
		fail   sync.Once
		wg     sync.WaitGroup

		mu         sync.Mutex
		refunded   = map[string]bool{} // refunds the callers got back
		recorded   = map[uint64]bool{} // refusals the callers saw, by record
		unrecorded int                 // refusals the callers saw without a record
	)
	cur.Store(open())
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				g := cur.Load()
				r, err := g.bot.Refunds.New(refund("ch_load", 1))
				if err == nil {
					mu.Lock()
					refunded[r.ID] = true
					mu.Unlock()
					if g.ok.Add(1) == perGen {
						close(g.busy)
					}
					continue
				}
				d, ok := keybrake.AsDenial(err)
				if !ok || d.Code != "keybrake_closing" {
					t.Errorf("refund: %v", err)
					fail.Do(func() { close(failed) })
					return
				}
				mu.Lock()
				if d.CallID == 0 {
					unrecorded++
				} else {
					recorded[d.CallID] = true
				}
				mu.Unlock()
				if g.refused.Add(1) == workers-held {
					close(g.closing)
				}
				select {
				case <-g.next:
				case <-stop:
					return
				}
			}
		}()
	}
	// cycle closes g with refunds held on the wire until every other
	// caller has been refused for closing (a Close that did not wait for
	// the held ones would have closed the store by then), and reports
	// whether the test can go on.
	cycle := func(i int, g *generation) bool {
		select {
		case <-g.busy:
		case <-failed:
			return false
		}
		h := &hold{max: held, first: make(chan struct{}), release: make(chan struct{})}
		holding.Store(h)
		release := sync.OnceFunc(func() { holding.Store(nil); close(h.release) })
		defer release()
		select {
		case <-h.first:
		case <-failed:
			return false
		}
		closed := make(chan error, 1)
		go func() { closed <- g.kb.Close() }()
		select {
		case <-g.closing:
		case <-failed:
		}
		release()
		if err := <-closed; err != nil {
			t.Errorf("cycle %d: Close: %v", i, err)
			return false
		}
		return true
	}
	for i := 0; i < cycles; i++ {
		g := cur.Load()
		if !cycle(i, g) || i == cycles-1 {
			g.kb.Close()
			close(stop)
			close(g.next)
			break
		}
		cur.Store(open())
		close(g.next)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	kb := openBrake(t, "", opts)
	recs := dump(t, kb, audit.Query{})
	settled := map[string]bool{}
	refusals := 0
	for _, rec := range recs {
		switch {
		case rec.Event != "":
		case rec.Decision != keybrake.Allowed:
			refusals++
			if !recorded[rec.ID] || rec.Code != "keybrake_closing" {
				t.Errorf("refusal record no caller saw as a closing refusal: %+v", rec)
			}
		case rec.Outcome == audit.Settled:
			settled[rec.Object] = true
		default:
			t.Errorf("record %d is %s after clean closes: %s", rec.ID, rec.Outcome, rec.Reason)
		}
	}
	var made int
	for _, mv := range fs.Movements() {
		if mv.Kind != "refund" {
			continue
		}
		made++
		if !settled[mv.Object] || !refunded[mv.Object] {
			t.Errorf("refund %s moved money: settled record %v, returned to its caller %v", mv.Object, settled[mv.Object], refunded[mv.Object])
		}
	}
	if made != len(refunded) || made != len(settled) || made < cycles*perGen {
		t.Errorf("the fake made %d refunds, callers got %d, %d settled records; want equal and at least %d", made, len(refunded), len(settled), cycles*perGen)
	}
	if refusals != len(recorded) {
		t.Errorf("%d refusal records, callers saw %d recorded refusals", refusals, len(recorded))
	}
	errs := log.all()
	for _, err := range errs {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("reported: %v", err)
		}
	}
	if len(errs) != unrecorded {
		t.Errorf("%d failures reported, callers saw %d refusals without a record: %v", len(errs), unrecorded, errs)
	}
	t.Logf("%d refunds, %d refusals recorded, %d refused after the store closed", made, len(recorded), unrecorded)
}
