package slack

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/keybrake/keybrake/notify"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var update = flag.Bool("update", false, "rewrite the golden files under testdata/text")

var t0 = time.Date(2026, 3, 1, 3, 12, 4, 0, time.UTC)

func capped() notify.Alert {
	return notify.Alert{
		Kind: "capped", Agent: "refund-bot", Vendor: "stripe",
		Rule: "agents.refund-bot.stripe.daily_cap", Code: "keybrake_daily_cap",
		Reason: "daily cap 500.00 USD for refund-bot would be exceeded: 498.00 USD counted, this call 20.00 USD",
		Count:  1, Total: 1, First: t0, Last: t0, Since: t0,
	}
}

// The messages, as a person reads them; go test -update rewrites them
// after a deliberate change.
func TestTextGolden(t *testing.T) {
	sec := time.Second
	with := func(f func(a *notify.Alert)) notify.Alert {
		a := capped()
		f(&a)
		return a
	}
	tests := []struct {
		name string
		a    notify.Alert
	}{
		{"capped_page", capped()},
		{"capped_window_first", with(func(a *notify.Alert) {
			a.Count, a.Total, a.Last = 2795, 2796, t0.Add(59*sec)
		})},
		{"capped_window_later", with(func(a *notify.Alert) {
			a.Count, a.Total, a.Since, a.Last = 1204, 3999, t0.Add(60*sec), t0.Add(179*sec)
		})},
		{"capped_final", with(func(a *notify.Alert) {
			a.Count, a.Total, a.Since, a.Last, a.Final = 1, 4000, t0.Add(180*sec), t0.Add(181*sec), true
		})},
		{"capped_final_nothing_new", with(func(a *notify.Alert) {
			a.Count, a.Total, a.Since, a.Last, a.Final = 0, 2, t0.Add(60*sec), t0.Add(5*sec), true
		})},
		{"capped_across_midnight", with(func(a *notify.Alert) {
			a.First = time.Date(2026, 2, 28, 23, 59, 30, 0, time.UTC)
			a.Count, a.Total, a.Since, a.Last = 40, 41, a.First, t0
		})},
		{"dropped", with(func(a *notify.Alert) { a.Dropped = 1 })},
		{"blocked", with(func(a *notify.Alert) {
			a.Kind, a.Rule, a.Code, a.Reason = "blocked", "agents.refund-bot.stripe", "keybrake_not_allowed", "POST /v1/transfers matches no allow rule"
		})},
		{"scoped", with(func(a *notify.Alert) {
			a.Kind, a.Code, a.Reason = "scoped", "keybrake_customer_out_of_scope", "customer cus_X is not in the agent's scope"
		})},
		{"revoked", with(func(a *notify.Alert) {
			a.Kind, a.Rule, a.Code, a.Reason, a.Count, a.Total = "revoked", "agents.refund-bot.revoked", "keybrake_revoked", "agent refund-bot is revoked", 30, 31
		})},
		{"error", with(func(a *notify.Alert) {
			a.Kind, a.Rule, a.Code, a.Reason = "error", "store", "keybrake_store_error", "the store could not reserve: disk full"
		})},
		{"policy_invalid", notify.Alert{
			Kind: "policy_invalid", Vendor: "keybrake",
			Reason: `policy reload failed, refusing every call until the file is fixed: keybrake.yaml:12: unknown field "dayly_cap"`,
			Count:  1, Total: 1, First: t0, Last: t0, Since: t0,
		}},
		{"policy_invalid_again", notify.Alert{
			Kind: "policy_invalid", Vendor: "keybrake", Reason: "policy reload failed",
			Count: 3, Total: 4, First: t0, Last: t0.Add(50 * sec), Since: t0,
		}},
		{"other_event", notify.Alert{
			Kind: "kill_switch", Vendor: "keybrake", Reason: "kill switch keybrake.yaml.halt: present, every agent (was absent)",
			Count: 1, Total: 1, First: t0, Last: t0, Since: t0,
		}},
		{"hostile_names", with(func(a *notify.Alert) {
			a.Agent = "<!channel> `rm -rf` & 'x'"
			a.Rule = "<https://evil.example|click>"
			a.Reason = "line one\nline two <@U123> *bold* \x00"
		})},
		{"dash_agent", with(func(a *notify.Alert) { a.Agent = "-rf" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Text(tt.a)
			path := filepath.Join("testdata", "text", tt.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update once to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Text:\n%s\nwant:\n%s", got, want)
			}
			checkSafe(t, got)
		})
	}
}

// checkSafe is what every message must be: valid UTF-8, bounded, and with
// no raw < (Slack's links and mentions) and > only as a quote marker.
func checkSafe(t *testing.T, text string) {
	t.Helper()
	if !utf8.ValidString(text) {
		t.Errorf("not UTF-8: %q", text)
	}
	if strings.Contains(text, "<") {
		t.Errorf("raw < in %q", text)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(strings.TrimPrefix(line, "> "), ">") {
			t.Errorf("raw > in line %q", line)
		}
	}
	if len(text) > 16<<10 {
		t.Errorf("message of %d bytes", len(text))
	}
	// A command to paste does what it shows: no quotes, no shell syntax.
	spans := strings.Split(text, "`")
	for i := 1; i < len(spans); i += 2 {
		if cmd := spans[i]; strings.HasPrefix(cmd, "keybrake ") {
			if strings.Trim(cmd, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.:@/+=") != "" {
				t.Errorf("command %q holds shell syntax", cmd)
			}
		}
	}
}

func TestTextSays(t *testing.T) {
	a := capped()
	a.Count, a.Total, a.Since, a.Last = 1204, 3999, t0.Add(time.Minute), t0.Add(179*time.Second)
	text := Text(a)
	for _, want := range []string{
		"capped 1,204 more stripe calls by agent `refund-bot`", "3,999 in all since 03:12:04 UTC",
		"the latest at 03:15:03 UTC", "`agents.refund-bot.stripe.daily_cap`", "402",
		"`keybrake audit --agent refund-bot --since 2026-03-01T03:12:04Z`", "`keybrake revoke refund-bot`",
		a.Reason,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("message lacks %q:\n%s", want, text)
		}
	}
}

func TestNum(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0", 7: "7", 999: "999", 1000: "1,000", 3999: "3,999", 1234567: "1,234,567", -1234: "-1,234",
		9223372036854775807: "9,223,372,036,854,775,807",
	} {
		if got := num(n); got != want {
			t.Errorf("num(%d) = %q, want %q", n, got, want)
		}
	}
}

// hook is a stand-in for hooks.slack.com: it keeps each request and
// answers with status and body.
type hook struct {
	status int
	body   string
	reqs   chan *http.Request
	bodies chan []byte
}

func newHook(t *testing.T, status int, body string) (*hook, string) {
	h := &hook{status: status, body: body, reqs: make(chan *http.Request, 10), bodies: make(chan []byte, 10)}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL + "/services/T000/B000/s3cr3tT0k3n"
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.reqs <- r
	h.bodies <- b
	if h.status == http.StatusFound {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
		return
	}
	w.WriteHeader(h.status)
	io.WriteString(w, h.body)
}

func TestNotifyPosts(t *testing.T) {
	h, url := newHook(t, 200, "ok")
	w := &Webhook{URL: url}
	a := capped()
	if err := w.Notify(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	r, body := <-h.reqs, <-h.bodies
	if r.Method != http.MethodPost || r.URL.Path != "/services/T000/B000/s3cr3tT0k3n" {
		t.Errorf("%s %s", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var msg map[string]any
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if len(msg) != 1 || msg["text"] != Text(a) {
		t.Errorf("body %s, want only text = Text(alert)", body)
	}
}

func TestNotifyErrors(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name   string
		status int
		body   string
		want   *StatusError
	}{
		{"no such webhook", 404, "no_service", &StatusError{404, "no_service"}},
		{"revoked token", 403, "invalid_token", &StatusError{403, "invalid_token"}},
		{"bad payload", 400, "invalid_payload\n", &StatusError{400, "invalid_payload"}},
		{"archived channel", 410, "channel_is_archived", &StatusError{410, "channel_is_archived"}},
		{"rate limited", 429, "rate_limited", &StatusError{429, "rate_limited"}},
		{"server error, long body", 500, long, &StatusError{500, long[:200] + "..."}},
		{"control bytes", 502, "bad\x00\x1b[31mgateway", &StatusError{502, "bad  [31mgateway"}},
		{"200 without ok", 200, "not ok", &StatusError{200, "not ok"}},
		{"200 empty", 200, "", &StatusError{200, ""}},
		{"redirect is not followed", 302, "", &StatusError{302, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, url := newHook(t, tt.status, tt.body)
			err := (&Webhook{URL: url}).Notify(context.Background(), capped())
			var se *StatusError
			if !errors.As(err, &se) || *se != *tt.want {
				t.Fatalf("err = %#v, want %#v", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cr3tT0k3n") {
				t.Errorf("error %q reveals the webhook URL", err)
			}
			if n := len(h.reqs); n != 1 {
				t.Errorf("%d requests, want 1 (no redirect followed)", n)
			}
		})
	}
}

func TestNotifyTransportErrorsHideURL(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL + "/services/T/B/s3cr3tT0k3n"
		srv.Close()
		err := (&Webhook{URL: url}).Notify(context.Background(), capped())
		if err == nil || strings.Contains(err.Error(), "s3cr3tT0k3n") || strings.Contains(err.Error(), "/services/") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := (&Webhook{URL: srv.URL + "/services/T/B/s3cr3tT0k3n"}).Notify(ctx, capped())
		if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "s3cr3tT0k3n") {
			t.Errorf("err = %v, want the deadline, without the URL", err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("Notify took %v past a 50 ms deadline", el)
		}
	})
}

func TestNotifyBadURL(t *testing.T) {
	for _, u := range []string{
		"",
		"hooks.slack.com/services/T/B/x",
		"http://hooks.slack.com/services/T/B/x", // plain http off the machine
		"ftp://hooks.slack.com/services/T/B/x",
		"https://user:pass@hooks.slack.com/services/T/B/x",
		"https:///services/T/B/x",
		"https://hooks.slack.com/%zz",
	} {
		err := (&Webhook{URL: u}).Notify(context.Background(), capped())
		if !errors.Is(err, ErrBadURL) {
			t.Errorf("URL %q: err = %v, want ErrBadURL", u, err)
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add("refund-bot", "stripe", "agents.refund-bot.stripe.daily_cap", "daily cap reached", "capped", int64(1), int64(1), false)
	f.Add("<!channel>", "<x>", "`r`", "a > b & c < d\n> quoted", "policy_invalid", int64(5), int64(10), true)
	f.Add("-rf", "", "", "", "revoked", int64(0), int64(2), true)
	f.Fuzz(func(t *testing.T, agent, vendor, rule, reason, kind string, count, total int64, final bool) {
		a := notify.Alert{
			Kind: kind, Agent: agent, Vendor: vendor, Rule: rule, Code: rule, Reason: reason,
			Count: count, Total: total, First: t0, Last: t0.Add(time.Minute), Since: t0, Final: final,
			Dropped: count,
		}
		text := Text(a)
		checkSafe(t, text)
		if _, err := json.Marshal(map[string]string{"text": text}); err != nil {
			t.Fatal(err)
		}
	})
}
