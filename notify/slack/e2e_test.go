package slack_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/notify"
	"github.com/keybrake/keybrake/notify/slack"
	"github.com/keybrake/keybrake/policy"
)

// tee keeps each alert it passes on, to check the counts the messages
// carry.
type tee struct {
	next notify.Notifier
	mu   sync.Mutex
	seen []notify.Alert
}

func (t *tee) Notify(ctx context.Context, a notify.Alert) error {
	err := t.next.Notify(ctx, a)
	if err == nil {
		t.mu.Lock()
		t.seen = append(t.seen, a)
		t.mu.Unlock()
	}
	return err
}

// A stuck agent hammers its cap from 8 goroutines: the on-call gets a
// handful of POSTs, the first within a second, and together they account
// for every refusal.
func TestStormEndToEnd(t *testing.T) {
	var mu sync.Mutex
	var posts []time.Time
	var texts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct{ Text string }
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil || r.Method != http.MethodPost {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		mu.Lock()
		posts = append(posts, time.Now())
		texts = append(texts, msg.Text)
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer srv.Close()

	n := &tee{next: &slack.Webhook{URL: srv.URL + "/services/T/B/secret"}}
	var reports []error
	d := notify.NewDispatcher(n, notify.Options{
		Window: 300 * time.Millisecond,
		Report: func(err error) { mu.Lock(); reports = append(reports, err); mu.Unlock() },
	})
	const total, workers = 4000, 8
	capped := &audit.Record{
		Agent: "refund-bot", Vendor: "stripe", Decision: policy.Capped,
		Rule: "agents.refund-bot.stripe.daily_cap", Code: "keybrake_daily_cap",
		Reason: "daily cap 500.00 USD reached",
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				r := *capped // each call has its own record
				r.Time = time.Now()
				d.Offer(&r)
			}
		}()
	}
	wg.Wait()
	offered := time.Since(start)

	// The burst ends a quiet Window after the last record; wait for the
	// final message rather than sleeping a fixed time.
	deadline := time.Now().Add(20 * time.Second)
	for {
		n.mu.Lock()
		done := len(n.seen) > 0 && n.seen[len(n.seen)-1].Final
		n.mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d records offered in %v; %d POSTs", total, offered, len(posts))
	if len(posts) == 0 || len(posts) > 5 {
		t.Fatalf("%d POSTs for %d refusals, want 1 to 5:\n%s", len(posts), total, strings.Join(texts, "\n---\n"))
	}
	first := posts[0].Sub(start)
	t.Logf("first POST %v after the first Offer", first)
	if first > time.Second {
		t.Errorf("first POST %v after the first Offer, want within 1 s", first)
	}
	if !strings.Contains(texts[0], "capped a stripe call by agent `refund-bot`") {
		t.Errorf("first message:\n%s", texts[0])
	}
	var counted int64
	for _, a := range n.seen {
		counted += a.Count
	}
	s := d.Stats()
	t.Logf("stats %+v", s)
	if s.Offered != total || counted+s.Dropped != total || len(reports) != 0 || s.Failed != 0 {
		t.Errorf("alerts counted %d, stats %+v, reports %v: want every one of %d accounted for", counted, s, reports, total)
	}
	if last := n.seen[len(n.seen)-1]; !last.Final || last.Total != counted {
		t.Errorf("last alert %+v", last)
	}
}
