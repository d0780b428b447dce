package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/ui"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store/bolt"
)

// These tests serve the page's API over a real bbolt store through
// admin.Local, as keybrake ui does for a database no agent holds. The
// page itself, in a browser, is tested by cmd/keybrake's ui_test.go.

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

type page struct {
	srv   *httptest.Server
	ui    *ui.Server
	store *bolt.Store
	acts  *[]ui.Action
}

// newPage serves a store holding 3 allowed calls at t0 (10.00 USD
// settled each), 5 capped at t0+1s, a kill-switch event at t0+2s and 2
// blocked at t0+3s.
func newPage(t *testing.T, act bool) *page {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "keybrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ten, _ := money.Parse("10.00 USD")
	add := func(at time.Duration, d policy.Decision, n int) {
		for range n {
			r := &audit.Record{Time: t0.Add(at), Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
				Decision: d, Outcome: audit.None, Customer: "cus_1", Amount: ten}
			if d == policy.Allowed {
				r.Outcome, r.Status, r.Settled = audit.Settled, 200, ten
			} else {
				r.Rule, r.Status = "agents.refund-bot.stripe.daily_cap", 402
			}
			if _, err := st.Append(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(0, policy.Allowed, 3)
	add(time.Second, policy.Capped, 5)
	if _, err := st.Append(context.Background(), &audit.Record{Time: t0.Add(2 * time.Second), Vendor: "keybrake", Event: "kill_switch",
		Reason: "kill switch present", Outcome: audit.None}); err != nil {
		t.Fatal(err)
	}
	add(3*time.Second, policy.Blocked, 2)

	p := &page{store: st, acts: &[]ui.Action{}}
	now := func() time.Time { return t0.Add(10 * time.Second) }
	opts := ui.Options{Source: &admin.Local{Store: st, Now: now}, Now: now, Poll: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if act {
		var mu sync.Mutex
		opts.Act = func(_ context.Context, a ui.Action) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			*p.acts = append(*p.acts, a)
			return "did " + a.Verb, nil
		}
	}
	p.ui, err = ui.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = httptest.NewServer(p.ui)
	t.Cleanup(p.srv.Close)
	return p
}

// get sends path with the token as a bearer and decodes the JSON answer.
func (p *page) get(t *testing.T, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", p.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+p.ui.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

func window(since, until time.Duration) string {
	return "since=" + url.QueryEscape(t0.Add(since).Format(time.RFC3339)) + "&until=" + url.QueryEscape(t0.Add(until).Format(time.RFC3339))
}

func TestTimelineCountsEveryCallInItsSecond(t *testing.T) {
	p := newPage(t, false)
	var tl struct {
		StepMS  int64            `json:"step_ms"`
		Buckets []map[string]any `json:"buckets"`
		Totals  map[string]int   `json:"totals"`
		Moved   map[string]string
		Records int
		Marks   []struct {
			T    time.Time
			Kind string
		}
	}
	if code := p.get(t, "/api/timeline?"+window(0, 10*time.Second), &tl); code != 200 {
		t.Fatalf("timeline: %d", code)
	}
	if tl.StepMS != 1000 || len(tl.Buckets) != 10 {
		t.Fatalf("a 10 s window: step %d ms, %d buckets; want 1000 ms, 10", tl.StepMS, len(tl.Buckets))
	}
	want := []map[string]float64{{"allowed": 3}, {"capped": 5}, {}, {"blocked": 2}}
	for i, w := range want {
		for d, n := range w {
			if tl.Buckets[i][d] != n {
				t.Errorf("bucket %d: %s = %v, want %v (%v)", i, d, tl.Buckets[i][d], n, tl.Buckets[i])
			}
		}
		if len(tl.Buckets[i]) != len(w)+1+btoi(i == 0) { // t, the counts, moved
			t.Errorf("bucket %d holds %v, want only %v", i, tl.Buckets[i], w)
		}
	}
	if tl.Records != 10 || tl.Totals["allowed"] != 3 || tl.Totals["capped"] != 5 || tl.Totals["blocked"] != 2 {
		t.Errorf("totals %v (%d records), want 3 allowed, 5 capped, 2 blocked", tl.Totals, tl.Records)
	}
	if tl.Moved["USD"] != "30.00" {
		t.Errorf("moved %v, want 30.00 USD", tl.Moved)
	}
	if len(tl.Marks) != 2 || tl.Marks[0].Kind != "first_refused" || !tl.Marks[0].T.Equal(t0.Add(time.Second)) ||
		tl.Marks[1].Kind != "kill_switch" || !tl.Marks[1].T.Equal(t0.Add(2*time.Second)) {
		t.Errorf("marks %+v, want the first refused call at +1s and the kill switch at +2s", tl.Marks)
	}

	// A day is cut in 900 buckets at most.
	if p.get(t, "/api/timeline?"+window(-24*time.Hour, 0), &tl); tl.StepMS != 2*60*1000 || len(tl.Buckets) != 720 {
		t.Errorf("a day: step %d ms, %d buckets; want 2 min, 720", tl.StepMS, len(tl.Buckets))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestWindowsAreReadExactlyOrRefused(t *testing.T) {
	p := newPage(t, false)
	for _, c := range []struct{ query, want string }{
		{"since=2026-12-03T10:00:00Z&agnet=refund-bot", `unknown parameter "agnet"`},
		{"agent=a&agent=b", `parameter "agent" given 2 times`},
		{window(5*time.Second, time.Second), "must be before until"},
		{window(-32*24*time.Hour, 0), "more than"},
		{"since=yesterday", "since:"},
		{"decision=maybe", `unknown decision "maybe"`},
	} {
		var e struct{ Error string }
		if code := p.get(t, "/api/records?"+c.query, &e); code != 400 || !strings.Contains(e.Error, c.want) {
			t.Errorf("?%s: %d %q, want 400 saying %q", c.query, code, e.Error, c.want)
		}
	}
	var e struct{ Error string }
	if code := p.get(t, "/api/records?limit=0", &e); code != 400 || !strings.Contains(e.Error, "limit") {
		t.Errorf("limit=0: %d %q", code, e.Error)
	}
}

func TestRecordsOfAWindowAndOneRecord(t *testing.T) {
	p := newPage(t, false)
	var ans struct {
		Records   []audit.Record
		Total     int
		Truncated bool
	}
	p.get(t, "/api/records?"+window(time.Second, 2*time.Second), &ans)
	if ans.Total != 5 || len(ans.Records) != 5 || ans.Truncated {
		t.Fatalf("the second of the capped calls: %d of %d records (truncated %v), want 5", len(ans.Records), ans.Total, ans.Truncated)
	}
	for _, r := range ans.Records {
		if r.Decision != policy.Capped {
			t.Errorf("record %d is %s", r.ID, r.Decision)
		}
	}
	p.get(t, "/api/records?limit=2&decision=allowed&"+window(0, 10*time.Second), &ans)
	if ans.Total != 3 || len(ans.Records) != 2 || !ans.Truncated {
		t.Errorf("limit 2 of the allowed: %d of %d (truncated %v), want 2 of 3, truncated", len(ans.Records), ans.Total, ans.Truncated)
	}
	var one audit.Record
	if code := p.get(t, "/api/records/4", &one); code != 200 || one.ID != 4 || one.Decision != policy.Capped {
		t.Errorf("record 4: %d %+v", code, one)
	}
	var e struct{ Error string }
	if code := p.get(t, "/api/records/99", &e); code != 404 {
		t.Errorf("record 99: %d %q, want 404", code, e.Error)
	}
}

func TestEveryRequestNeedsTheToken(t *testing.T) {
	p := newPage(t, false)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/", "/api/now", "/api/timeline", "/static/app.js", "/nothing"} {
		resp, err := client.Get(p.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || strings.Contains(string(body), "refund-bot") {
			t.Errorf("GET %s with no token: %d %q", path, resp.StatusCode, body)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no Content-Security-Policy", path)
		}
	}

	// The link: a cookie, HttpOnly and SameSite=Strict, and the token
	// leaves the address bar.
	resp, err := client.Get(p.ui.Link(p.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" || len(cookies) != 1 ||
		!cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("the link: %d to %q, cookies %+v", resp.StatusCode, resp.Header.Get("Location"), cookies)
	}
	for path, ct := range map[string]string{"/": "text/html", "/static/app.js": "javascript", "/static/app.css": "text/css"} {
		req, _ := http.NewRequest("GET", p.srv.URL+path, nil)
		req.AddCookie(cookies[0])
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), ct) {
			t.Errorf("GET %s with the cookie: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	other, _ := ui.New(ui.Options{Source: &admin.Local{Store: p.store}})
	if other.Token() == p.ui.Token() || len(other.Token()) < 43 {
		t.Errorf("two servers' random tokens: %q and %q", other.Token(), p.ui.Token())
	}
}

func TestActionsNeedTheirCSRFAndAnAct(t *testing.T) {
	post := func(p *page, csrf, body string) (int, string) {
		req, _ := http.NewRequest("POST", p.srv.URL+"/api/act", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+p.ui.Token())
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set("X-Keybrake-CSRF", csrf)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	csrf := func(p *page) string {
		var s struct{ CSRF string }
		p.get(t, "/api/session", &s)
		return s.CSRF
	}
	ro := newPage(t, false)
	if code, body := post(ro, csrf(ro), `{"verb":"halt"}`); code != 403 || !strings.Contains(body, "read-only") {
		t.Errorf("a read-only page: %d %s", code, body)
	}
	p := newPage(t, true)
	if code, _ := post(p, "", `{"verb":"halt"}`); code != 403 {
		t.Errorf("no CSRF header: %d", code)
	}
	if code, _ := post(p, csrf(ro), `{"verb":"halt"}`); code != 403 {
		t.Errorf("another page's CSRF: %d", code)
	}
	for body, want := range map[string]int{
		`{"verb":"halt","agent":"refund-bot"}`: 200,
		`{"verb":"halt"}`:                      200,
		`{"verb":"resume"}`:                    200,
		`{"verb":"resume","agent":"x"}`:        400,
		`{"verb":"restore"}`:                   400,
		`{"verb":"halt","extra":1}`:            400,
		`not json`:                             400,
	} {
		if code, resp := post(p, csrf(p), body); code != want {
			t.Errorf("%s: %d %s, want %d", body, code, resp, want)
		}
	}
	if len(*p.acts) != 3 {
		t.Errorf("Act ran %d times (%v), want 3", len(*p.acts), *p.acts)
	}
}

func TestEventsSayWhenRecordsArrive(t *testing.T) {
	p := newPage(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+p.ui.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() string {
		for lines.Scan() {
			if d, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
				return d
			}
		}
		t.Fatalf("the stream ended: %v", lines.Err())
		return ""
	}
	if d := next(); d != `{"last_id":0}` { // nothing in the two seconds before Now
		t.Errorf("first event %s", d)
	}
	id, err := p.store.Append(context.Background(), &audit.Record{Time: t0.Add(10 * time.Second), Agent: "refund-bot", Vendor: "stripe",
		Decision: policy.Capped, Outcome: audit.None})
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		LastID uint64 `json:"last_id"`
	}
	if err := json.Unmarshal([]byte(next()), &ev); err != nil || ev.LastID != id {
		t.Errorf("after record %d was written the page is told %+v (%v)", id, ev, err)
	}
}

func TestNowReadsCountersAndTheSpendArrivesAfter(t *testing.T) {
	p := newPage(t, false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var now struct {
			Day   string
			Spend []struct {
				Agent string
				Hours []string
			}
		}
		if code := p.get(t, "/api/now", &now); code != 200 || now.Day != "2026-12-03" {
			t.Fatalf("now: %d %+v", code, now)
		}
		// The spend per hour reads the day's records: it is computed
		// beside the page's requests, not in them, and comes with a later one.
		if len(now.Spend) == 1 {
			if now.Spend[0].Agent != "refund-bot" || now.Spend[0].Hours[10] != "30.00" {
				t.Errorf("spend %+v, want refund-bot's 30.00 at 10:00", now.Spend)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no spend after 10 s: %+v", now)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
