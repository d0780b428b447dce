package keybrake_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/notify"
	"github.com/keybrake/keybrake/notify/slack"
)

// slackStandIn stands in for a Slack incoming webhook: it records each
// message and when it arrived, and answers "ok" as Slack does.
type slackStandIn struct {
	mu   sync.Mutex
	at   []time.Time
	text []string
}

func (s *slackStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct{ Text string }
	json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	s.text = append(s.text, body.Text)
	s.mu.Unlock()
	fmt.Fprint(w, "ok")
}

// TestRunawayPagesOnce: 4,000 refunds from a stuck loop, almost all
// capped, produce a handful of Slack messages; the first arrives within a
// second of the first capped call.
func TestRunawayPagesOnce(t *testing.T) {
	fs, url := fakestripe.Start(t)
	for i := 0; i < 50; i++ {
		fs.AddCharge(fakestripe.Charge{ID: fmt.Sprintf("ch_run%d", i), Amount: 100000, Currency: "usd", Captured: true})
	}
	hook := &slackStandIn{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	kb := openBrake(t, capPolicy, keybrake.Options{
		Endpoints:     fakeEndpoint(url),
		Notifier:      &slack.Webhook{URL: srv.URL},
		NotifyOptions: notify.Options{Window: 2 * time.Second},
	})
	bot := newSDK(t, kb, "refund-bot")
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				bot.Refunds.New(refund(fmt.Sprintf("ch_run%d", i%50), 1000))
			}
		}()
	}
	for i := 0; i < 4000; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	capped := dump(t, kb, audit.Query{Decision: keybrake.Capped})
	if len(capped) < 3900 {
		t.Fatalf("%d capped calls", len(capped))
	}
	if err := kb.Close(); err != nil { // delivers the final counts
		t.Fatal(err)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.at) == 0 || len(hook.at) > 5 {
		t.Fatalf("%d Slack messages for %d capped calls: %q", len(hook.at), len(capped), hook.text)
	}
	if d := hook.at[0].Sub(capped[0].Time); d > time.Second {
		t.Fatalf("the first page came %v after the first capped call", d)
	}
	if !strings.Contains(hook.text[0], "refund-bot") || !strings.Contains(hook.text[0], "daily_cap") {
		t.Fatalf("first message: %q", hook.text[0])
	}
	t.Logf("%d capped calls, %d messages; the first %v after the first capped call", len(capped), len(hook.at), hook.at[0].Sub(capped[0].Time))
}

// TestRetentionPrunesInTheBackground: a Brake opened long after its
// records were written prunes them, but not money still counted.
func TestRetentionPrunesInTheBackground(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_old", Amount: 90000, Currency: "usd", Captured: true})
	dir := t.TempDir()
	policyFile := writePolicy(t, capPolicy)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	opts := keybrake.Options{PolicyFile: policyFile, DBPath: dir + "/k.db", Endpoints: fakeEndpoint(url), Clock: clock, Retention: 7 * 24 * time.Hour}
	kb := openBrake(t, "", opts)
	bot := newSDK(t, kb, "refund-bot")
	for i := 0; i < 3; i++ {
		if _, err := bot.Refunds.New(refund("ch_old", 100)); err != nil {
			t.Fatal(err)
		}
	}
	fs.On("POST", "/v1/refunds").ExecuteThenFail(1, 500)
	sdkNoRetry(kb, "refund-bot").Refunds.New(refund("ch_old", 100)) // unknown: stays counted
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}

	now = now.Add(30 * 24 * time.Hour)
	kb = openBrake(t, "", opts)
	deadline := time.Now().Add(liveness)
	for {
		recs := dump(t, kb, audit.Query{Vendor: "stripe"})
		if len(recs) == 1 {
			if recs[0].Outcome != audit.Unknown {
				t.Fatalf("kept %+v", recs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records after the retention window", len(recs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
