package notify

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 3, 12, 4, 0, time.UTC)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// recorder is a Notifier that keeps what it is given. fail, when set,
// decides each attempt's error (attempts count from 1 per alert).
type recorder struct {
	mu       sync.Mutex
	alerts   []Alert
	attempts map[string]int
	fail     func(a Alert, attempt int) error
	block    chan struct{} // when set, Notify waits for it (or ctx) first
}

func (r *recorder) Notify(ctx context.Context, a Alert) error {
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.attempts == nil {
		r.attempts = map[string]int{}
	}
	id := fmt.Sprintf("%s/%d/%d", keyOf(a), a.Total, a.Count)
	r.attempts[id]++
	if r.fail != nil {
		if err := r.fail(a, r.attempts[id]); err != nil {
			return err
		}
	}
	r.alerts = append(r.alerts, a)
	return nil
}

func (r *recorder) got() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Alert(nil), r.alerts...)
}

func keyOf(a Alert) string { return a.Kind + "|" + a.Agent + "|" + a.Vendor + "|" + a.Rule }

// settle makes the dispatcher take everything offered, flush at the fake
// clock and finish every delivery that results.
func settle(t *testing.T, d *Dispatcher) {
	t.Helper()
	request(t, d, true)
}

// flushNow is settle without waiting for deliveries.
func flushNow(t *testing.T, d *Dispatcher) {
	t.Helper()
	request(t, d, false)
}

func request(t *testing.T, d *Dispatcher, idle bool) {
	t.Helper()
	ack := make(chan struct{})
	select {
	case d.syncReq <- syncRequest{ack: ack, idle: idle}:
	case <-time.After(5 * time.Second):
		t.Fatal("dispatcher loop does not answer")
	}
	select {
	case <-ack:
	case <-time.After(5 * time.Second):
		t.Fatal("dispatcher did not settle")
	}
}

func closeNow(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// rec is a refused call of one of a few agents.
func rec(agent string, d policy.Decision, rule string) *audit.Record {
	return &audit.Record{
		Agent: agent, Vendor: "stripe", Decision: d, Rule: rule,
		Code: "keybrake_" + rule, Reason: "reason of " + agent + " " + rule,
	}
}

// step is one moment of a scenario: at offset from t0, offer records of
// keys ("a", "b"), then flush at the clock.
type step struct {
	at   time.Duration
	keys string
}

// want is an expected alert, times as offsets from t0.
type want struct {
	count, total       int64
	since, first, last time.Duration
	final              bool
}

func TestWindows(t *testing.T) {
	const W = time.Minute
	sec := time.Second
	tests := []struct {
		name  string
		opts  Options
		steps []step
		want  map[string][]want
	}{
		{
			name:  "single occurrence pages once and has no final alert",
			steps: []step{{0, "a"}, {W, ""}, {10 * W, ""}},
			want:  map[string][]want{"a": {{1, 1, 0, 0, 0, false}}},
		},
		{
			name: "counts per window, growing window, then final",
			steps: []step{
				{0, "a"}, {10 * sec, "aa"}, {50 * sec, "a"}, // 3 more in the first window
				{W, ""}, // window ends: 3 more, 4 in all; next window 2 min
				{90 * sec, "a"}, {140 * sec, "a"}, {170 * sec, "a"},
				{179 * sec, ""}, // window not over yet
				{180 * sec, ""}, // 3 more, 7 in all; next window 4 min
				{229 * sec, ""}, // 59 s quiet: not yet
				{230 * sec, ""}, // a Window quiet: the burst is over
				{300 * sec, ""}, // nothing more
			},
			want: map[string][]want{"a": {
				{1, 1, 0, 0, 0, false},
				{3, 4, 0, 0, 50 * sec, false},
				{3, 7, W, 0, 170 * sec, false},
				{0, 7, 180 * sec, 0, 170 * sec, true},
			}},
		},
		{
			name: "fixed window when MaxWindow is Window",
			opts: Options{MaxWindow: W},
			steps: []step{
				{0, "a"}, {40 * sec, "a"}, {W, ""}, {80 * sec, "a"}, {100 * sec, "a"}, {2 * W, ""},
				{140 * sec, "a"}, {160 * sec, "a"}, {3 * W, ""}, {219 * sec, ""}, {220 * sec, ""},
			},
			want: map[string][]want{"a": {
				{1, 1, 0, 0, 0, false},
				{1, 2, 0, 0, 40 * sec, false},
				{2, 4, W, 0, 100 * sec, false},
				{2, 6, 2 * W, 0, 160 * sec, false},
				{0, 6, 3 * W, 0, 160 * sec, true},
			}},
		},
		{
			name: "final alert carries the occurrences after the last window",
			steps: []step{
				{0, "a"}, {40 * sec, "aaaa"}, {W, ""}, {70 * sec, "aa"}, {129 * sec, ""}, {130 * sec, ""},
			},
			want: map[string][]want{"a": {
				{1, 1, 0, 0, 0, false},
				{4, 5, 0, 0, 40 * sec, false},
				{2, 7, W, 0, 70 * sec, true},
			}},
		},
		{
			name: "a short burst is a page and a final alert",
			steps: []step{
				{0, "a"}, {5 * sec, "aaa"}, {W, ""}, {64 * sec, ""}, {65 * sec, ""},
			},
			want: map[string][]want{"a": {
				{1, 1, 0, 0, 0, false},
				{3, 4, 0, 0, 5 * sec, true},
			}},
		},
		{
			name: "a count held back by a quiet half window goes out when the key resumes",
			steps: []step{
				{0, "a"}, {10 * sec, "a"}, {W, ""}, {65 * sec, "a"}, {124 * sec, ""}, {125 * sec, ""},
			},
			want: map[string][]want{"a": {
				{1, 1, 0, 0, 0, false},
				{2, 3, 0, 0, 65 * sec, false},
				{0, 3, 65 * sec, 0, 65 * sec, true},
			}},
		},
		{
			name: "after a quiet window the key pages again",
			steps: []step{
				{0, "a"}, {5 * sec, "a"}, {65 * sec, ""}, {66 * sec, "a"}, {200 * sec, "a"},
			},
			want: map[string][]want{"a": {
				{1, 1, 0, 0, 0, false},
				{1, 2, 0, 0, 5 * sec, true},
				{1, 1, 66 * sec, 66 * sec, 66 * sec, false},
				{1, 1, 200 * sec, 200 * sec, 200 * sec, false},
			}},
		},
		{
			name: "a record arriving after an unnoticed quiet window pages",
			steps: []step{
				// no flush between 5 s and 2 min: the record itself ends the old burst
				{0, "a"}, {5 * sec, "a"}, {120 * sec, "a"},
			},
			want: map[string][]want{"a": {
				{1, 1, 0, 0, 0, false},
				{1, 2, 0, 0, 5 * sec, true},
				{1, 1, 120 * sec, 120 * sec, 120 * sec, false},
			}},
		},
		{
			name: "keys interleaved are grouped apart",
			steps: []step{
				{0, "a"}, {1 * sec, "b"}, {2 * sec, "abab"}, {30 * sec, "b"},
				{W, ""}, {61 * sec, "a"}, {91 * sec, ""}, {121 * sec, ""},
			},
			want: map[string][]want{
				"a": {
					{1, 1, 0, 0, 0, false},
					{3, 4, 0, 0, 61 * sec, false}, // held back at 60 s (quiet since 2 s), sent when it resumed
					{0, 4, 61 * sec, 0, 61 * sec, true},
				},
				"b": {
					{1, 1, 1 * sec, 1 * sec, 1 * sec, false},
					{3, 4, 1 * sec, 1 * sec, 30 * sec, true}, // quiet since 30 s: the final alert carries it
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			r := &recorder{}
			opts := tt.opts
			opts.Now = clock.Now
			d := NewDispatcher(r, opts)
			records := map[byte]*audit.Record{
				'a': rec("refund-bot", policy.Capped, "agents.refund-bot.stripe.daily_cap"),
				'b': rec("mailer", policy.Blocked, "agents.mailer.stripe"),
			}
			for _, s := range tt.steps {
				clock.Set(t0.Add(s.at))
				for i := range len(s.keys) {
					d.Offer(records[s.keys[i]])
				}
				settle(t, d)
			}
			got := map[string][]want{}
			names := map[string]string{}
			for c, r := range records {
				names[r.Agent] = string(c)
			}
			for _, a := range r.got() {
				name := names[a.Agent]
				got[name] = append(got[name], want{
					a.Count, a.Total, a.Since.Sub(t0), a.First.Sub(t0), a.Last.Sub(t0), a.Final,
				})
				if r := records[name[0]]; a.Kind != string(r.Decision) || a.Vendor != r.Vendor ||
					a.Rule != r.Rule || a.Code != r.Code || a.Reason != r.Reason || a.Dropped != 0 {
					t.Errorf("alert %+v does not describe record %+v", a, r)
				}
			}
			for k := range tt.want {
				if fmt.Sprint(got[k]) != fmt.Sprint(tt.want[k]) {
					t.Errorf("key %s:\n got  %v\n want %v", k, got[k], tt.want[k])
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("alerts for keys %v, want %v", got, tt.want)
			}
			closeNow(t, d)
			if s := d.Stats(); s.Delivered != int64(len(r.got())) || s.Failed != 0 || s.Alerts != s.Delivered {
				t.Errorf("stats %+v, %d alerts received", s, len(r.got()))
			}
		})
	}
}

// The first alert goes out when the record is offered, not when a window
// ends: no flush, no clock movement, only the loop's own work.
func TestPageIsImmediate(t *testing.T) {
	r := &recorder{}
	d := NewDispatcher(r, Options{Now: newClock().Now})
	defer closeNow(t, d)
	d.Offer(rec("refund-bot", policy.Capped, "cap"))
	deadline := time.Now().Add(5 * time.Second)
	for len(r.got()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no page within 5 s of the first record")
		}
		time.Sleep(time.Millisecond)
	}
	if a := r.got()[0]; a.Count != 1 || a.Total != 1 || a.Final || !a.First.Equal(t0) {
		t.Errorf("page %+v", a)
	}
}

func TestOfferFilters(t *testing.T) {
	event := func(name string) *audit.Record {
		return &audit.Record{Vendor: "keybrake", Event: name, Reason: "policy reload failed"}
	}
	tests := []struct {
		name   string
		events []string
		r      *audit.Record
		kind   string // "" when the record must not alert
	}{
		{"nil record", nil, nil, ""},
		{"allowed", nil, rec("a", policy.Allowed, "r"), ""},
		{"no decision, no event", nil, &audit.Record{Agent: "a", Rule: "r"}, ""},
		{"capped", nil, rec("a", policy.Capped, "r"), "capped"},
		{"blocked", nil, rec("a", policy.Blocked, "r"), "blocked"},
		{"scoped", nil, rec("a", policy.Scoped, "r"), "scoped"},
		{"revoked", nil, rec("a", policy.Revoked, "r"), "revoked"},
		{"error", nil, rec("a", policy.Error, "r"), "error"},
		{"unknown decision alerts", nil, rec("a", policy.Decision("weird"), "r"), "weird"},
		{"policy_invalid by default", nil, event("policy_invalid"), "policy_invalid"},
		{"policy_reload ignored", nil, event("policy_reload"), ""},
		{"kill_switch ignored by default", nil, event("kill_switch"), ""},
		{"kill_switch when listed", []string{"kill_switch"}, event("kill_switch"), "kill_switch"},
		{"policy_invalid not listed", []string{"kill_switch"}, event("policy_invalid"), ""},
		{"no events at all", []string{}, event("policy_invalid"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			d := NewDispatcher(r, Options{Now: newClock().Now, Events: tt.events})
			d.Offer(tt.r)
			settle(t, d)
			closeNow(t, d)
			got := r.got()
			s := d.Stats()
			if tt.kind == "" {
				if len(got) != 0 || s.Offered != 0 {
					t.Errorf("record alerted: %+v, stats %+v", got, s)
				}
				return
			}
			if len(got) != 1 || got[0].Kind != tt.kind || got[0].Reason != tt.r.Reason || s.Offered != 1 {
				t.Errorf("got %+v, stats %+v; want one %s alert", got, s, tt.kind)
			}
		})
	}
}

// Offer copies what it needs: the caller may reuse its record at once.
func TestOfferDoesNotKeepRecord(t *testing.T) {
	r := &recorder{}
	d := NewDispatcher(r, Options{Now: newClock().Now})
	x := rec("refund-bot", policy.Capped, "cap")
	d.Offer(x)
	x.Agent, x.Reason = "someone-else", "changed"
	settle(t, d)
	closeNow(t, d)
	if got := r.got(); len(got) != 1 || got[0].Agent != "refund-bot" || got[0].Reason != "reason of refund-bot cap" {
		t.Errorf("got %+v", got)
	}
}

func TestDropsWhenQueueFull(t *testing.T) {
	clock := newClock()
	r := &recorder{}
	d := NewDispatcher(r, Options{Now: clock.Now, Queue: 4})
	release := make(chan struct{})
	d.pause <- release // the loop now takes nothing off the queue
	for range 9 {
		d.Offer(rec("refund-bot", policy.Capped, "cap"))
	}
	if s := d.Stats(); s.Offered != 9 || s.Dropped != 5 {
		t.Errorf("with the loop held: stats %+v, want 9 offered, 5 dropped", s)
	}
	close(release)
	settle(t, d)
	clock.Set(t0.Add(time.Minute))
	settle(t, d)
	clock.Set(t0.Add(time.Hour))
	d.Offer(rec("refund-bot", policy.Capped, "cap"))
	settle(t, d)
	closeNow(t, d)
	got := r.got()
	want := []struct{ count, total, dropped int64 }{
		{1, 1, 5}, // the page says records were lost before it
		{3, 4, 0}, // final: all four came at t0, a minute passed
		{1, 1, 0}, // a new burst, nothing dropped since
	}
	if len(got) != len(want) {
		t.Fatalf("got %d alerts %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i].Count != w.count || got[i].Total != w.total || got[i].Dropped != w.dropped {
			t.Errorf("alert %d: %+v, want %+v", i, got[i], w)
		}
	}
	if s := d.Stats(); s.Offered != 10 || s.Dropped != 5 || s.Alerts != 3 || s.Delivered != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestKeyTableFull(t *testing.T) {
	r := &recorder{}
	d := newDispatcher(r, Options{Now: newClock().Now}, 2)
	for _, agent := range []string{"a", "b", "c", "a"} {
		d.Offer(rec(agent, policy.Capped, "cap"))
	}
	settle(t, d)
	closeNow(t, d)
	agents := map[string]bool{}
	for _, a := range r.got() {
		agents[a.Agent] = true
	}
	if len(agents) != 2 || agents["c"] {
		t.Errorf("alerts for %v, want a and b only", agents)
	}
	if s := d.Stats(); s.Offered != 4 || s.Dropped != 1 {
		t.Errorf("stats %+v, want 4 offered, 1 dropped", s)
	}
}

// A Notifier that hangs holds neither Offer nor other keys' pages beyond
// the free delivery slots, and Close gives up on it when told to.
func TestSlowNotifierNeverBlocksOffer(t *testing.T) {
	clock := newClock()
	r := &recorder{block: make(chan struct{})} // never released: every Notify waits for ctx
	var reports []error
	var mu sync.Mutex
	d := NewDispatcher(r, Options{
		Now: clock.Now, Timeout: time.Hour, Concurrency: 2,
		Report: func(err error) { mu.Lock(); reports = append(reports, err); mu.Unlock() },
	})
	start := time.Now()
	for i := range 50_000 {
		d.Offer(rec(fmt.Sprintf("agent-%d", i%5), policy.Capped, "cap"))
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("50,000 Offers against a hung Notifier took %v", el)
	}
	flushNow(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err := d.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the deadline", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Close took %v after its deadline", el)
	}
	<-d.done // the cancelled deliveries end and the loop exits
	s := d.Stats()
	if s.Delivered != 0 || s.Failed != s.Alerts || s.Alerts < 5 {
		t.Errorf("stats %+v: every alert (5 pages at least) should have failed", s)
	}
	if s.Offered != 50_000 {
		t.Errorf("offered %d, want 50000", s.Offered)
	}
	mu.Lock()
	defer mu.Unlock()
	if int64(len(reports)) != s.Failed {
		t.Errorf("%d reports for %d failures", len(reports), s.Failed)
	}
}

func TestRetry(t *testing.T) {
	errDown := errors.New("webhook down")
	tests := []struct {
		name       string
		retryDelay time.Duration
		failUntil  int // attempts that fail
		delivered  int64
		retried    int64
	}{
		{"first attempt succeeds", time.Millisecond, 0, 1, 0},
		{"retry succeeds", time.Millisecond, 1, 1, 1},
		{"retry fails too", time.Millisecond, 2, 0, 1},
		{"no retry", -1, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{fail: func(_ Alert, attempt int) error {
				if attempt <= tt.failUntil {
					return errDown
				}
				return nil
			}}
			var reports []error
			var mu sync.Mutex
			d := NewDispatcher(r, Options{
				Now: newClock().Now, RetryDelay: tt.retryDelay,
				Report: func(err error) { mu.Lock(); reports = append(reports, err); mu.Unlock() },
			})
			d.Offer(rec("refund-bot", policy.Capped, "agents.refund-bot.stripe.daily_cap"))
			settle(t, d)
			closeNow(t, d)
			s := d.Stats()
			if s.Delivered != tt.delivered || s.Retried != tt.retried || s.Failed != 1-tt.delivered {
				t.Errorf("stats %+v", s)
			}
			mu.Lock()
			defer mu.Unlock()
			if int64(len(reports)) != s.Failed {
				t.Fatalf("reports %v for %d failures", reports, s.Failed)
			}
			for _, err := range reports {
				if !errors.Is(err, errDown) {
					t.Errorf("report %v does not wrap the Notifier's error", err)
				}
				if want := "notify: capped alert (agent refund-bot, vendor stripe, rule agents.refund-bot.stripe.daily_cap, 1 in all): webhook down"; err.Error() != want {
					t.Errorf("report %q, want %q", err, want)
				}
			}
		})
	}
}

func TestPanickingNotifier(t *testing.T) {
	var reported error
	d := NewDispatcher(NotifierFunc(func(context.Context, Alert) error { panic("boom") }), Options{
		Now: newClock().Now, RetryDelay: -1, Report: func(err error) { reported = err },
	})
	d.Offer(rec("a", policy.Capped, "cap"))
	settle(t, d)
	closeNow(t, d)
	if s := d.Stats(); s.Failed != 1 || reported == nil {
		t.Errorf("stats %+v, report %v", s, reported)
	}
}

// While a key's alert is being delivered, its next window's count waits
// and grows rather than queueing a second alert behind it.
func TestWindowWaitsForSlowDelivery(t *testing.T) {
	clock := newClock()
	r := &recorder{block: make(chan struct{})}
	d := NewDispatcher(r, Options{Now: clock.Now, Timeout: time.Hour})
	d.Offer(rec("a", policy.Capped, "cap")) // page: held by the Notifier
	flushNow(t, d)
	clock.Set(t0.Add(10 * time.Second))
	d.Offer(rec("a", policy.Capped, "cap"))
	d.Offer(rec("a", policy.Capped, "cap"))
	flushNow(t, d)
	clock.Set(t0.Add(time.Minute))
	flushNow(t, d) // the window ended, but the page is still out
	clock.Set(t0.Add(65 * time.Second))
	d.Offer(rec("a", policy.Capped, "cap"))
	flushNow(t, d)
	if s := d.Stats(); s.Alerts != 1 {
		t.Errorf("%d alerts formed while the page was out, want 1", s.Alerts)
	}
	close(r.block)
	settle(t, d) // the page finishes; the waiting count goes out at 65 s
	closeNow(t, d)
	got := r.got()
	if len(got) != 2 || got[0].Count != 1 || got[1].Count != 3 || got[1].Total != 4 ||
		!got[1].Since.Equal(t0) || !got[1].Last.Equal(t0.Add(65*time.Second)) || got[1].Final {
		t.Errorf("got %+v", got)
	}
}

// A new burst's page goes out before summaries of other keys, and never
// before an earlier alert of its own key.
func TestPagesFirst(t *testing.T) {
	clock := newClock()
	var mu sync.Mutex
	var order []string
	gate := make(chan struct{})
	n := NotifierFunc(func(ctx context.Context, a Alert) error {
		if a.Agent == "hold" {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		order = append(order, fmt.Sprintf("%s %d/%d", a.Agent, a.Count, a.Total))
		mu.Unlock()
		return nil
	})
	d := NewDispatcher(n, Options{Now: clock.Now, Concurrency: 1, Timeout: time.Hour})
	d.Offer(rec("hold", policy.Capped, "cap")) // occupies the only slot
	flushNow(t, d)
	for _, a := range []string{"x", "x", "y", "y"} {
		d.Offer(rec(a, policy.Capped, "cap"))
	}
	flushNow(t, d)
	clock.Set(t0.Add(time.Minute))
	flushNow(t, d) // x's and y's bursts end: their final alerts queue behind their pages
	d.Offer(rec("z", policy.Capped, "cap"))
	flushNow(t, d)
	close(gate)
	settle(t, d)
	closeNow(t, d)
	mu.Lock()
	defer mu.Unlock()
	// z's page, though queued last, goes before x's and y's final alerts,
	// which follow their own pages (in either order: one flush formed both).
	want := []string{"hold 1/1", "x 1/1", "y 1/1", "z 1/1", "x 1/2", "y 1/2"}
	if len(order) == len(want) {
		sort.Strings(order[4:])
	}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("delivery order %v, want %v", order, want)
	}
}

// First and Last are the records' own times, matching the audit log;
// windows go by the Dispatcher's clock, so records from a Brake whose clock
// is off (here by decades) are still one burst, not a page each.
func TestRecordTimeShownClockGroups(t *testing.T) {
	clock := newClock()
	r := &recorder{}
	d := NewDispatcher(r, Options{Now: clock.Now})
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	x := rec("a", policy.Capped, "cap")
	for i := range 5 {
		x.Time = old.Add(time.Duration(i) * time.Second)
		d.Offer(x)
	}
	settle(t, d)
	clock.Set(t0.Add(time.Minute))
	settle(t, d)
	closeNow(t, d)
	got := r.got()
	if len(got) != 2 {
		t.Fatalf("got %+v, want a page and a final alert", got)
	}
	if !got[0].First.Equal(old) || got[1].Count != 4 || got[1].Total != 5 ||
		!got[1].First.Equal(old) || !got[1].Last.Equal(old.Add(4*time.Second)) || !got[1].Final {
		t.Errorf("got %+v", got)
	}
}

func TestCloseFlushes(t *testing.T) {
	clock := newClock()
	r := &recorder{}
	d := NewDispatcher(r, Options{Now: clock.Now})
	d.Offer(rec("a", policy.Capped, "cap"))
	d.Offer(rec("b", policy.Blocked, "allow"))
	clock.Set(t0.Add(time.Second))
	d.Offer(rec("a", policy.Capped, "cap"))
	d.Offer(rec("a", policy.Capped, "cap"))
	closeNow(t, d)
	got := r.got()
	sort.SliceStable(got, func(i, j int) bool { return got[i].Agent < got[j].Agent })
	if len(got) != 3 {
		t.Fatalf("got %+v, want a's page and final and b's page", got)
	}
	if a := got[1]; a.Agent != "a" || a.Count != 2 || a.Total != 3 || !a.Final {
		t.Errorf("final alert %+v", a)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	d.Offer(rec("a", policy.Capped, "cap"))
	if s := d.Stats(); s.Dropped != 1 || s.Offered != 5 || s.Delivered != 3 {
		t.Errorf("stats after Close and a late Offer: %+v", s)
	}
}

func TestNilDispatcher(t *testing.T) {
	var d *Dispatcher
	d.Offer(rec("a", policy.Capped, "cap"))
	if err := d.Close(context.Background()); err != nil || d.Stats() != (Stats{}) {
		t.Errorf("nil dispatcher: %v %+v", err, d.Stats())
	}
	// The zero value has no loop: Offer drops, Close says so at once.
	var z Dispatcher
	z.Offer(rec("a", policy.Capped, "cap"))
	if err := z.Close(context.Background()); err == nil || z.Stats().Dropped != 1 {
		t.Errorf("zero dispatcher: Close = %v, stats %+v", err, z.Stats())
	}
}

// Deadlines are kept by a real timer: with the real clock and a short
// window, the final alert comes with nobody flushing.
func TestRealTimer(t *testing.T) {
	r := &recorder{}
	d := NewDispatcher(r, Options{Window: 30 * time.Millisecond})
	defer closeNow(t, d)
	for range 3 {
		d.Offer(rec("a", policy.Capped, "cap"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := r.got()
		if n := len(got); n > 0 && got[n-1].Final {
			var sum int64
			for _, a := range got {
				sum += a.Count
			}
			if sum != 3 || got[n-1].Total != 3 || n > 3 {
				t.Errorf("alerts %+v", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %+v, no final alert within 10 s", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The brief's storm: 4,000 capped calls over 90 s with the defaults give
// three messages, the page at the first call.
func TestStormOf4000(t *testing.T) {
	clock := newClock()
	r := &recorder{}
	d := NewDispatcher(r, Options{Now: clock.Now})
	x := rec("refund-bot", policy.Capped, "agents.refund-bot.stripe.daily_cap")
	for i := range 4000 {
		x.Time = t0.Add(time.Duration(i) * 90 * time.Second / 4000)
		clock.Set(x.Time)
		d.Offer(x)
		if i%100 == 0 {
			settle(t, d)
		}
	}
	for s := 0; s <= 300; s += 5 {
		clock.Set(t0.Add(90*time.Second + time.Duration(s)*time.Second))
		settle(t, d)
	}
	closeNow(t, d)
	got := r.got()
	if len(got) != 3 {
		t.Fatalf("%d alerts: %+v", len(got), got)
	}
	var sum int64
	for _, a := range got {
		sum += a.Count
	}
	if !got[0].First.Equal(t0) || got[0].Count != 1 || sum != 4000 || got[2].Total != 4000 || !got[2].Final ||
		!got[2].Last.Equal(x.Time) {
		t.Errorf("alerts %+v", got)
	}
}

// Whatever the clock and the interleaving do, every occurrence is counted
// exactly once: per key, the counts sum to what was offered, each alert's
// Total is the running sum within its burst, a burst starts with a page and
// nothing follows its final alert.
func TestCountsConserved(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			script := make([]byte, 2000)
			rand.New(rand.NewSource(seed)).Read(script)
			checkConserved(t, script)
		})
	}
}

// FuzzCounts runs checkConserved on any script of offers, clock moves
// (forward and back) and flushes.
func FuzzCounts(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 200, 0, 0, 250, 250, 250, 1})
	f.Add([]byte{0, 0, 0, 0, 230, 0, 245, 245, 0, 255, 0, 3, 3})
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) > 4096 {
			script = script[:4096]
		}
		checkConserved(t, script)
	})
}

// checkConserved plays script, one byte a step: below 160 offers a record
// of one of four agents; up to 229 moves the clock forward by up to 90 s;
// up to 239 moves it back by up to 10 min; above, flushes.
func checkConserved(t *testing.T, script []byte) {
	clock := newClock()
	r := &recorder{}
	d := NewDispatcher(r, Options{Now: clock.Now, Window: time.Minute, MaxWindow: 4 * time.Minute})
	offered := map[string]int64{}
	now := t0
	for i, c := range script {
		switch {
		case c < 160:
			agent := fmt.Sprint("agent-", c%4)
			d.Offer(rec(agent, policy.Capped, "cap"))
			offered[agent]++
		case c < 230:
			now = now.Add(time.Duration(c-160) * 90 * time.Second / 70)
		case c < 240:
			now = now.Add(-time.Duration(c-229) * time.Minute)
		default:
			settle(t, d)
		}
		clock.Set(now)
		if i%7 == 0 {
			flushNow(t, d)
		}
	}
	closeNow(t, d)
	counted := map[string]int64{}
	running := map[string]int64{}
	open := map[string]bool{}
	for _, a := range r.got() {
		k := a.Agent
		if a.Count == a.Total { // only a page reports its whole burst
			if a.Count != 1 || a.Final {
				t.Fatalf("%s: burst starts with %+v", k, a)
			}
			running[k], open[k] = 0, true
		}
		if !open[k] {
			t.Fatalf("%s: alert %+v after its burst's final one", k, a)
		}
		running[k] += a.Count
		if a.Total != running[k] {
			t.Fatalf("%s: Total %d, counted %d", k, a.Total, running[k])
		}
		counted[k] += a.Count
		if a.Final {
			open[k] = false
		}
	}
	if fmt.Sprint(counted) != fmt.Sprint(offered) {
		t.Errorf("counted %v\noffered %v", counted, offered)
	}
	if s := d.Stats(); s.Dropped != 0 || s.Failed != 0 {
		t.Errorf("stats %+v", s)
	}
}
