package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	brake "github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store/postgres"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// These tests run keybrake ui as an operator would and look at its page
// in a real headless Chromium (chromedp): the incident the product exists
// for, a refund loop capped at its daily cap, must be visible on it as it
// is in the audit log, second by second.

const uiPolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      per_call_max: 50.00 USD
      allow:
        - POST /v1/refunds
`

// uiServer is a running keybrake ui.
type uiServer struct {
	link, base, token string
	stderr            *syncBuffer
}

// startUI runs keybrake ui and reads the link it prints.
func startUI(t *testing.T, args ...string) *uiServer {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"ui"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	u := &uiServer{stderr: &syncBuffer{}}
	cmd.Stderr = u.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	go func() { io.Copy(io.Discard, out); cmd.Wait(); close(done) }()
	if err != nil {
		t.Fatalf("keybrake ui printed no link: %v\n%s", err, u.stderr)
	}
	u.link = strings.TrimSpace(line)
	base, token, ok := strings.Cut(u.link, "/?token=")
	if !ok {
		t.Fatalf("keybrake ui printed %q, not a link with its token", u.link)
	}
	u.base, u.token = base, token
	return u
}

// runaway is a running agent's Brake that has just refunded up to its cap
// and been refused thousands of times after it, over a few seconds: the
// incident, on a bbolt file in dir.
type runaway struct {
	kb         *brake.Brake
	sc         *client.API
	db, policy string
	key        string
}

func startRunaway(t *testing.T, bursts int) *runaway {
	t.Helper()
	return startRunawayOn(t, "", bursts)
}

// startRunawayOn is startRunaway on the shared store dsn names ("": a
// bbolt file).
func startRunawayOn(t *testing.T, dsn string, bursts int) *runaway {
	t.Helper()
	dir := t.TempDir()
	r := &runaway{db: filepath.Join(dir, "keybrake.db"), policy: filepath.Join(dir, "keybrake.yaml"), key: "sk_test_" + strings.Repeat("R", 24)}
	opts := brake.Options{PolicyFile: r.policy, DBPath: r.db}
	if dsn != "" {
		st, err := postgres.Open(context.Background(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.db, opts.DBPath, opts.Store = dsn, "", st // the Brake closes it
	}
	if err := os.WriteFile(r.policy, []byte(uiPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := fakestripe.New() // stands in for Stripe: it keeps the money that moved
	srv := httptest.NewServer(fs)
	t.Cleanup(func() { srv.Close(); fs.Close() })
	for i := range 50 {
		fs.AddCustomer(fmt.Sprintf("cus_ui%02d", i))
		fs.AddCharge(fakestripe.Charge{ID: fmt.Sprintf("ch_ui%02d", i), Amount: 10000, Currency: "usd", Customer: fmt.Sprintf("cus_ui%02d", i), Captured: true})
	}
	opts.Endpoints = map[brake.Vendor]string{brake.Stripe: srv.URL}
	kb, err := brake.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kb.Close() })
	r.kb = kb
	r.sc = client.New(r.key, stripevendor.Backends(kb.HTTPClient("refund-bot", brake.Stripe)))
	// Bursts of 400 a second apart: 10.00 USD refunds, 50 allowed up to
	// the cap, then every further one capped.
	for burst := range bursts {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					r.refund(fmt.Sprintf("ch_ui%02d", (burst*400+w*50+i)%50))
				}
			}()
		}
		wg.Wait()
		time.Sleep(time.Second)
	}
	return r
}

// refund asks for one 10.00 USD refund and returns the refusal, if any.
func (r *runaway) refund(charge string) (*brake.Denial, error) {
	_, err := r.sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String(charge), Amount: stripego.Int64(1000)})
	if err == nil {
		return nil, nil
	}
	if d, ok := brake.AsDenial(err); ok {
		return d, nil
	}
	return nil, err
}

// perSecond is the audit log's calls per UTC second and decision, and its
// first refused call's second.
func (r *runaway) perSecond(t *testing.T) (map[string]int, int64, int) {
	t.Helper()
	var buf bytes.Buffer
	if err := r.kb.Dump(&buf, audit.Query{}); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	first, n := int64(0), 0
	dec := json.NewDecoder(&buf)
	for {
		var rec audit.Record
		if err := dec.Decode(&rec); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if rec.Event != "" {
			continue
		}
		n++
		out[fmt.Sprintf("%d %s", rec.Time.Unix(), rec.Decision)]++
		if first == 0 && rec.Decision != brake.Allowed {
			first = rec.Time.Unix()
		}
	}
	return out, first, n
}

// browser is a headless Chromium the test drives.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := testenv.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800), // the laptop screen the page must be legible on
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no deadline of its own
		t.Fatalf("starting %s: %v", path, err)
	}
	ctx, cancel3 := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

// screenshot saves the page as a PNG: to $KEYBRAKE_UI_SCREENSHOT when set
// (how docs/ui.png is made), else into the test's directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), name)
	if p := os.Getenv("KEYBRAKE_UI_SCREENSHOT"); p != "" {
		path = strings.ReplaceAll(p, "{name}", strings.TrimSuffix(name, ".png"))
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("the page as the browser drew it: %s", path)
}

// inBrowser runs one browser action and fails the test on its error.
func inBrowser[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("in the browser: %v", err)
	}
	return v
}

func TestUIShowsTheRunawayAsTheAuditLogHasIt(t *testing.T) {
	r := startRunaway(t, 3)
	want, firstRefused, total := r.perSecond(t)
	if firstRefused == 0 || total < 1000 {
		t.Fatalf("the runaway made %d calls, first refused at %d: not the incident", total, firstRefused)
	}
	u := startUI(t, "--db", r.db, "--policy", r.policy)
	ctx := browser(t)

	type bar struct {
		T        int64  `json:"t"`
		Decision string `json:"decision"`
		Count    int    `json:"count"`
	}
	const capSel = `.limit[data-rule="agents.refund-bot.stripe.daily_cap"]`
	if err := chromedp.Do(ctx, chromedp.Navigate(u.link), chromedp.WaitVisible(`body[data-ready="1"]`), chromedp.WaitVisible(capSel)); err != nil {
		t.Fatalf("loading the page: %v\nkeybrake ui said:\n%s", err, u.stderr)
	}
	bars := inBrowser(t, ctx, chromedp.Evaluate[[]bar](`[...document.querySelectorAll('rect.bar')].map(r => ({t: +r.dataset.t, decision: r.dataset.decision, count: +r.dataset.count}))`))
	marks := inBrowser(t, ctx, chromedp.Evaluate[[]int64](`[...document.querySelectorAll('.mark[data-kind="first_refused"]')].map(m => +m.dataset.t)`))
	pct := inBrowser(t, ctx, chromedp.AttributeValue(chromedp.CSS(capSel), "data-pct")).Value
	figures := inBrowser(t, ctx, chromedp.Text(chromedp.CSS(capSel+" .figures")))
	rows := inBrowser(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('tr[data-id]').length`))
	html := inBrowser(t, ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	screenshot(t, ctx, "runaway.png")
	inBrowser(t, ctx, chromedp.Click(chromedp.CSS(`button[data-range="1m"]`)))
	inBrowser(t, ctx, chromedp.Poll[bool](`document.querySelector('#chart').dataset.span === '60'`, chromedp.WithPollingTimeout(10*time.Second)))
	screenshot(t, ctx, "minute.png") // the one docs/ui.png shows

	// Dragging across a third of the chart zooms to what was dragged over.
	box := inBrowser(t, ctx, chromedp.Evaluate[[]float64](`(() => { const c = document.querySelector('#chart');
		c.scrollIntoView({block: 'center'}); const r = c.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`))
	x0, x1, y := box[0]+box[2]*0.3, box[0]+box[2]*0.6, box[1]+box[3]/2
	if err := chromedp.Do(ctx, chromedp.MouseEvent(chromedp.MousePressed, x0, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, (x0+x1)/2, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, x1, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseReleased, x1, y, chromedp.ButtonLeft)); err != nil {
		t.Fatalf("dragging: %v", err)
	}
	zoomed := inBrowser(t, ctx, chromedp.Poll[string](`(s => s < 60 ? String(s) : null)(+document.querySelector('#chart').dataset.span)`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if n, _ := strconv.Atoi(zoomed); n < 10 || n > 30 {
		t.Errorf("dragging over a third of a minute's chart zoomed to %s s, want about 20", zoomed)
	}

	got := map[string]int{}
	for _, b := range bars {
		got[fmt.Sprintf("%d %s", b.T, b.Decision)] += b.Count
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the timeline's bars (second decision: calls)\n  %v\nare not the audit log's\n  %v", got, want)
	}
	if len(marks) != 1 || marks[0] != firstRefused {
		t.Errorf("first-refused marks at %v; the first refused call is at %d", marks, firstRefused)
	}
	if pct != "100" || !strings.HasPrefix(figures, "500.00 of 500.00 USD (100%)") {
		t.Errorf("the daily cap shows %q (%s%%), want 500.00 of 500.00 USD at 100%%", figures, pct)
	}
	if rows != min(total, 500) {
		t.Errorf("the records table has %d rows; the window holds %d calls (the table shows the first 500)", rows, total)
	}
	if strings.Contains(html, r.key) || strings.Contains(html, u.token) {
		t.Error("the page holds the agent's Stripe key or the page's token")
	}

	// Zoomed to the second of the first refusal: the table is that second's.
	second := time.Unix(firstRefused, 0).UTC()
	inBrowser(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`keybrakeSetWindow(%q, %q)`,
		second.Format(time.RFC3339), second.Add(time.Second).Format(time.RFC3339)), chromedp.EvalAwaitPromise))
	rows = inBrowser(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('tr[data-id]').length`))
	inSecond := 0
	for k, n := range want {
		if strings.HasPrefix(k, fmt.Sprint(firstRefused)+" ") {
			inSecond += n
		}
	}
	if rows != min(inSecond, 500) {
		t.Errorf("zoomed to %s, the table has %d rows; the audit log has %d calls in that second", second, rows, inSecond)
	}
	screenshot(t, ctx, "zoomed.png")

	// A capped row opens its full record: the rule, the policy hash, the
	// chain link, exactly as the audit log has them.
	id := inBrowser(t, ctx, chromedp.AttributeValue(chromedp.CSS(`tr[data-id][data-decision="capped"]`), "data-id")).Value
	inBrowser(t, ctx, chromedp.Click(chromedp.CSS(`tr[data-id="`+id+`"]`)))
	detail := inBrowser(t, ctx, chromedp.Poll[string](`(document.querySelector('dialog#detail[open] dl.fields') || {}).textContent || null`,
		chromedp.WithPollingTimeout(10*time.Second)))
	rec := r.record(t, id)
	for _, want := range []string{rec.Rule, rec.PolicyHash, rec.PrevHash, rec.Code, "10.00 USD"} {
		if want == "" || !strings.Contains(detail, want) {
			t.Errorf("record %s's detail lacks %q:\n%s", id, want, detail)
		}
	}
	screenshot(t, ctx, "record.png")
}

// record is the audit log's record id.
func (r *runaway) record(t *testing.T, id string) *audit.Record {
	t.Helper()
	var buf bytes.Buffer
	if err := r.kb.Dump(&buf, audit.Query{}); err != nil {
		t.Fatal(err)
	}
	for dec := json.NewDecoder(&buf); ; {
		var rec audit.Record
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("no record %s in the audit log (%v)", id, err)
		}
		if fmt.Sprint(rec.ID) == id {
			return &rec
		}
	}
}

// get sends a request to the page's server as a program would, with the
// token as a bearer when token is set.
func (u *uiServer) do(t *testing.T, method, path, token string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (u *uiServer) csrf(t *testing.T) string {
	t.Helper()
	code, body := u.do(t, "GET", "/api/session", u.token, nil, "")
	var s struct{ CSRF string }
	if err := json.Unmarshal([]byte(body), &s); code != 200 || err != nil || s.CSRF == "" {
		t.Fatalf("GET /api/session: %d %s (%v)", code, body, err)
	}
	return s.CSRF
}

func TestUIRefusesWhatItMustNotDo(t *testing.T) {
	r := startRunaway(t, 1)
	u := startUI(t, "--db", r.db, "--policy", r.policy)
	for _, path := range []string{"/", "/api/now", "/api/records", "/api/events", "/static/app.js"} {
		if code, body := u.do(t, "GET", path, "", nil, ""); code != http.StatusUnauthorized || strings.Contains(body, "refund-bot") {
			t.Errorf("GET %s without the token: %d %.80q, want 401 and nothing of the database", path, code, body)
		}
		if code, _ := u.do(t, "GET", path, u.token+"x", nil, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s with another token: %d, want 401", path, code)
		}
	}
	if code, _ := u.do(t, "GET", "/?token="+u.token+"x", "", nil, ""); code != http.StatusUnauthorized {
		t.Errorf("a link with another token: %d, want 401", code)
	}
	csrf := u.csrf(t)
	halt := `{"verb":"halt","agent":"refund-bot"}`
	asJSON := map[string]string{"Content-Type": "application/json"}
	if code, body := u.do(t, "POST", "/api/act", u.token, asJSON, halt); code != http.StatusForbidden || !strings.Contains(body, "X-Keybrake-CSRF") {
		t.Errorf("an action without the CSRF header: %d %s, want 403 naming it", code, body)
	}
	withCSRF := map[string]string{"Content-Type": "application/json", "X-Keybrake-CSRF": csrf}
	if code, body := u.do(t, "POST", "/api/act", u.token, withCSRF, halt); code != http.StatusForbidden || !strings.Contains(body, "--allow-actions") {
		t.Errorf("an action on a read-only page: %d %s, want 403 naming --allow-actions", code, body)
	}
	if _, err := os.Stat(r.policy + ".halt"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused action wrote the kill switch (%v)", err)
	}

	acting := startUI(t, "--db", r.db, "--policy", r.policy, "--allow-actions")
	csrf = acting.csrf(t)
	for _, c := range []struct {
		name   string
		header map[string]string
		body   string
		code   int
	}{
		{"from another origin", map[string]string{"Content-Type": "application/json", "X-Keybrake-CSRF": csrf, "Origin": "http://evil.example"}, halt, http.StatusForbidden},
		{"with this page's CSRF on another page", withCSRF, halt, http.StatusForbidden},
		{"as a form", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Keybrake-CSRF": csrf}, "verb=halt", http.StatusUnsupportedMediaType},
		{"an unknown verb", map[string]string{"Content-Type": "application/json", "X-Keybrake-CSRF": csrf}, `{"verb":"delete","agent":"refund-bot"}`, http.StatusBadRequest},
		{"revoke with no agent", map[string]string{"Content-Type": "application/json", "X-Keybrake-CSRF": csrf}, `{"verb":"revoke"}`, http.StatusBadRequest},
	} {
		if c.name == "with this page's CSRF on another page" && u.csrf(t) == csrf {
			t.Fatal("two pages share a CSRF token")
		}
		if code, body := acting.do(t, "POST", "/api/act", acting.token, c.header, c.body); code != c.code {
			t.Errorf("an action %s: %d %s, want %d", c.name, code, body, c.code)
		}
	}
	if code, _ := acting.do(t, "GET", "/api/act", acting.token, nil, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/act: %d, want 405: acting is POST only", code)
	}
	if _, err := os.Stat(r.policy + ".halt"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused action wrote the kill switch (%v)", err)
	}
	if d, err := r.refund("ch_ui01"); err != nil || d == nil || d.Decision != brake.Capped {
		t.Fatalf("after refused actions the agent's next refund is %+v, %v; want capped, not stopped", d, err)
	}
}

func TestUIHaltsAndResumesTheRunningAgent(t *testing.T) {
	r := startRunaway(t, 1)
	u := startUI(t, "--db", r.db, "--policy", r.policy, "--allow-actions")
	ctx := browser(t)
	const group = `[data-agent="refund-bot"][data-vendor="stripe"]`
	if err := chromedp.Do(ctx, chromedp.Navigate(u.link), chromedp.WaitVisible(`body[data-ready="1"]`), chromedp.WaitVisible(group)); err != nil {
		t.Fatalf("loading the page: %v\nkeybrake ui said:\n%s", err, u.stderr)
	}
	if stopped := inBrowser(t, ctx, chromedp.AttributeValue(chromedp.CSS(group), "data-stopped")).Value; stopped != "" {
		t.Fatalf("refund-bot shows as %q before anyone stopped it", stopped)
	}

	// Halt refund-bot: the confirmation names it, and only it.
	inBrowser(t, ctx, chromedp.Click(chromedp.CSS(`button[data-act="halt"][data-agent="refund-bot"]`)))
	inBrowser(t, ctx, chromedp.WaitVisible(chromedp.CSS(`dialog#confirm[open]`)))
	if text := inBrowser(t, ctx, chromedp.Text(chromedp.CSS("#confirm-text"))); !strings.Contains(text, "Halt refund-bot") {
		t.Errorf("the confirmation says %q; it must name refund-bot", text)
	}
	screenshot(t, ctx, "confirm.png")
	if _, err := os.Stat(r.policy + ".halt"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the halt happened before it was confirmed")
	}
	inBrowser(t, ctx, chromedp.Click(chromedp.CSS("#confirm-yes")))
	stopped := inBrowser(t, ctx, chromedp.Poll[string](`document.querySelector('`+group+`').dataset.stopped || null`,
		chromedp.WithPollingTimeout(15*time.Second)))
	if stopped != "revoked" {
		t.Errorf("after the halt refund-bot shows as %q, want revoked (by the kill switch)", stopped)
	}
	if msg := inBrowser(t, ctx, chromedp.Text(chromedp.CSS("#message"))); !strings.Contains(msg, "halted refund-bot") {
		t.Errorf("the page says %q after the halt", msg)
	}
	screenshot(t, ctx, "halted.png")
	if n := inBrowser(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('button[data-act="restore"][data-agent="refund-bot"]').length`)); n != 0 {
		t.Error("a kill-switch halt offers Restore, which edits the policy file and would leave the halt in place")
	}
	d := r.nextRefusal(t, brake.Revoked)
	if !strings.Contains(d.Reason, "kill switch") {
		t.Errorf("the halted agent's call was refused for %q; want the kill switch named", d.Reason)
	}
	// Live, with no reload: the refused call reaches the table and the
	// kill switch's event the timeline (server-sent events).
	inBrowser(t, ctx, chromedp.Poll[bool](fmt.Sprintf(`document.querySelector('tr[data-id="%d"][data-decision="revoked"]') !== null && document.querySelector('.mark[data-kind="kill_switch"]') !== null`, d.CallID),
		chromedp.WithPollingTimeout(15*time.Second)))

	// Resume: the kill switch is gone and the agent is decided by its
	// policy again (capped: the day's cap is spent).
	inBrowser(t, ctx, chromedp.Click(chromedp.CSS(`button[data-act="resume"][data-agent=""]`)))
	inBrowser(t, ctx, chromedp.WaitVisible(chromedp.CSS(`dialog#confirm[open]`)))
	inBrowser(t, ctx, chromedp.Click(chromedp.CSS("#confirm-yes")))
	inBrowser(t, ctx, chromedp.Poll[bool](`document.querySelector('`+group+`').dataset.stopped === ''`, chromedp.WithPollingTimeout(15*time.Second)))
	r.nextRefusal(t, brake.Capped)
	if _, err := os.Stat(r.policy + ".halt"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after resume the kill switch is still there (%v)", err)
	}

	// Revoke and restore: the policy file's revoked:, as the commands edit it.
	act := func(verb string) {
		inBrowser(t, ctx, chromedp.Click(chromedp.CSS(`button[data-act="`+verb+`"][data-agent="refund-bot"]`)))
		inBrowser(t, ctx, chromedp.WaitVisible(chromedp.CSS(`dialog#confirm[open]`)))
		inBrowser(t, ctx, chromedp.Click(chromedp.CSS("#confirm-yes")))
	}
	act("revoke")
	if d := r.nextRefusal(t, brake.Revoked); !strings.Contains(d.Reason, "revoked") {
		t.Errorf("the revoked agent's call was refused for %q", d.Reason)
	}
	if p, _ := os.ReadFile(r.policy); !strings.Contains(string(p), "revoked: true") {
		t.Errorf("after revoke the policy file reads\n%s", p)
	}
	inBrowser(t, ctx, chromedp.WaitVisible(chromedp.CSS(`button[data-act="restore"][data-agent="refund-bot"]`)))
	act("restore")
	r.nextRefusal(t, brake.Capped)
	inBrowser(t, ctx, chromedp.Poll[bool](`document.querySelector('`+group+`').dataset.stopped === ''`, chromedp.WithPollingTimeout(15*time.Second)))
}

// nextRefusal sends refunds until one is refused with decision want (the
// Brake sees a changed file within moments, not at once) and returns it.
func (r *runaway) nextRefusal(t *testing.T, want brake.Decision) *brake.Denial {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last *brake.Denial
	for time.Now().Before(deadline) {
		d, err := r.refund("ch_ui02")
		if err != nil {
			t.Fatal(err)
		}
		if d != nil && d.Decision == want {
			return d
		}
		last = d
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the agent's refunds were never %s; the last was %+v", want, last)
	return nil
}

func TestServeServesThePageOnItsAdminListener(t *testing.T) {
	dir, vendor, key := serveDir(t)
	s := startServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--endpoint", "stripe="+vendor)
	m := regexp.MustCompile(`the incident page on (http://\S+)/\?token=\$\(cat (\S+)\) \(read-only\)`).FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("keybrake serve did not say where its page is:\n%s", s.stderr)
	}
	tokenFile := m[2]
	if !filepath.IsAbs(tokenFile) {
		tokenFile = filepath.Join(dir, tokenFile) // beside the keys file, in serve's directory
	}
	st, err := os.Stat(tokenFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the page's token file %s: %v %v, want mode 0600", tokenFile, st, err)
	}
	data, _ := os.ReadFile(tokenFile)
	page := &uiServer{base: m[1], token: strings.TrimSpace(string(data))}
	if strings.Contains(s.stderr.String(), page.token) {
		t.Error("keybrake serve printed the page's token to its log")
	}
	if status, body := refundAt(t, s.url, "Bearer "+key, "2500"); status != 200 {
		t.Fatalf("refund: %d %s", status, body)
	}
	if code, _ := page.do(t, "GET", "/api/now", "", nil, ""); code != http.StatusUnauthorized {
		t.Errorf("the page without its token: %d, want 401", code)
	}
	if code, _ := page.do(t, "GET", "/healthz", "", nil, ""); code != 200 {
		t.Errorf("/healthz beside the page: %d, want 200 with no token (a probe)", code)
	}
	code, body := page.do(t, "GET", "/api/records?since="+time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), page.token, nil, "")
	if code != 200 || !strings.Contains(body, `"refunds.create"`) || strings.Contains(body, serveSecret) || strings.Contains(body, key) {
		t.Errorf("the page's records of the proxy's call: %d %.300s", code, body)
	}
	if code, body := page.do(t, "POST", "/api/act", page.token, map[string]string{"Content-Type": "application/json", "X-Keybrake-CSRF": page.csrf(t)},
		`{"verb":"halt"}`); code != http.StatusForbidden {
		t.Errorf("an action on serve's page without --allow-actions: %d %s", code, body)
	}
}

func TestUIListensOnLoopbackOnly(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"--listen", "192.0.2.1:8183"}, "not a loopback address"},
		{[]string{"--listen", "127.0.0.1"}, "want host:port"},
		{[]string{"--tls-cert", "c.pem"}, "go together"},
	} {
		_, errOut, code := keybrake(t, nil, append([]string{"ui", "--db", filepath.Join(t.TempDir(), "none.db")}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("keybrake ui %v: exit %d, %q; want 2 saying %q", c.args, code, errOut, c.want)
		}
	}
}

func TestUIOnAFleetsStore(t *testing.T) {
	r := startRunawayOn(t, testenv.PostgresSchema(t), 1)
	want, _, total := r.perSecond(t)
	u := startUI(t, "--db", r.db, "--policy", r.policy, "--allow-actions")
	if dsn, err := url.Parse(r.db); err != nil {
		t.Fatal(err)
	} else if pw, _ := dsn.User.Password(); pw == "" || strings.Contains(u.stderr.String(), pw) {
		t.Errorf("keybrake ui printed the database's password (or the test's URL has none):\n%s", u.stderr)
	}
	var tl struct {
		Buckets []map[string]any
		Records int
	}
	since := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	code, body := u.do(t, "GET", "/api/timeline?since="+since.Format(time.RFC3339)+"&until="+since.Add(2*time.Minute).Format(time.RFC3339), u.token, nil, "")
	if err := json.Unmarshal([]byte(body), &tl); code != 200 || err != nil {
		t.Fatalf("timeline: %d %v %.300s", code, err, body)
	}
	got := map[string]int{}
	for _, b := range tl.Buckets {
		at, _ := time.Parse(time.RFC3339, b["t"].(string))
		for _, d := range []string{"allowed", "capped", "blocked", "scoped", "revoked", "error"} {
			if n, ok := b[d].(float64); ok {
				got[fmt.Sprintf("%d %s", at.Unix(), d)] += int(n)
			}
		}
	}
	if tl.Records != total || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the shared store's timeline (%d calls)\n  %v\nis not its audit log's (%d)\n  %v", tl.Records, got, total, want)
	}

	// Halt from the page: a fleet stop in the store, which the running
	// Brake obeys.
	code, body = u.do(t, "POST", "/api/act", u.token, map[string]string{"Content-Type": "application/json", "X-Keybrake-CSRF": u.csrf(t)}, `{"verb":"halt","agent":"refund-bot"}`)
	if code != 200 || !strings.Contains(body, "fleet-wide") {
		t.Fatalf("halt from the page: %d %s", code, body)
	}
	if d := r.nextRefusal(t, brake.Revoked); !strings.Contains(d.Reason, "keybrake halt --db") {
		t.Errorf("the halted agent's call was refused for %q; want the fleet halt named", d.Reason)
	}
	var now struct{ Revoked []string }
	if code, body := u.do(t, "GET", "/api/now", u.token, nil, ""); code != 200 || json.Unmarshal([]byte(body), &now) != nil || fmt.Sprint(now.Revoked) != "[refund-bot]" {
		t.Errorf("the page's now after the fleet halt: %d %.300s", code, body)
	}
}
