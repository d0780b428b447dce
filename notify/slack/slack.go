package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keybrake/keybrake/notify"
)

// Webhook posts alerts to a Slack incoming webhook
// (https://hooks.slack.com/services/...).
//
// The URL is a credential: anyone who has it can post to the channel. It
// never appears in an error Notify returns.
//
// A Webhook is safe for concurrent use if Client is. The zero value is not
// usable: URL is required.
type Webhook struct {
	// URL is the webhook. It must be https, or http to a loopback address
	// (a test server).
	URL string
	// Client sends the request; nil means a client with a 5 s timeout that
	// does not follow redirects. The context given to Notify bounds the
	// request either way.
	Client *http.Client
}

var _ notify.Notifier = (*Webhook)(nil)

// ErrBadURL is returned for a Webhook URL that is missing, malformed, or
// neither https nor http to a loopback address. The URL itself is not in
// the error.
var ErrBadURL = errors.New("slack: webhook URL must be https (or http to a loopback address)")

// StatusError is Slack's refusal: any answer but 200 "ok". Body is the
// start of what Slack said ("no_service", "invalid_payload",
// "channel_is_archived"), at most 200 bytes of printable text.
type StatusError struct {
	StatusCode int
	Body       string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("slack: webhook answered %d %s: %q", e.StatusCode, http.StatusText(e.StatusCode), e.Body)
}

var defaultClient = &http.Client{
	Timeout: 5 * time.Second,
	// A webhook does not redirect; a redirected POST would turn into a GET
	// and be reported as delivered.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// maxBody is how much of Slack's answer is read: "ok", or an error code.
const maxBody = 4 << 10

// Notify posts the alert as one message, {"text": ...}, and succeeds only
// on 200 "ok". Failures are *StatusError, ErrBadURL, or the transport's
// error (errors.Is works for context.DeadlineExceeded), never carrying the
// URL.
func (w *Webhook) Notify(ctx context.Context, a notify.Alert) error {
	u, err := url.Parse(w.URL)
	if err != nil || u.Host == "" || u.User != nil || !(u.Scheme == "https" || u.Scheme == "http" && loopback(u.Hostname())) {
		return ErrBadURL
	}
	body, err := json.Marshal(struct {
		Text string `json:"text"`
	}{Text(a)})
	if err != nil {
		return fmt.Errorf("slack: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return ErrBadURL
	}
	req.Header.Set("Content-Type", "application/json")
	c := w.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		// *url.Error quotes the URL, and the URL is the secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("slack: posting to the webhook: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("slack: reading the webhook's answer (status %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(answer)) == "ok" {
		return nil
	}
	return &StatusError{StatusCode: resp.StatusCode, Body: short(answer, 200)}
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// short returns the start of b as printable text of at most n bytes.
func short(b []byte, n int) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
