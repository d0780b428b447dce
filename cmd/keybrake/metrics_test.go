package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeMetrics: keybrake serve's --admin listener serves the Brake's
// metrics, and the agent port does not; a refund through the proxy shows
// in keybrake_calls_total.
func TestServeMetrics(t *testing.T) {
	_, vendor := fakeStripe(t)
	dir, key := stripeDir(t)
	p := runServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--endpoint", "stripe="+vendor)
	agents, admin := p.started(t)

	req, _ := http.NewRequest("POST", "http://"+agents+"/v1/refunds", strings.NewReader("charge=ch_1&amount=1500"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("refund through the proxy: %d", resp.StatusCode)
	}

	// A call is counted once its completion is handed to the store,
	// which happens beside the answer, not before it: wait for it.
	var status int
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; {
		status, body = get(t, "http://"+admin+"/metrics")
		if status != 200 {
			t.Fatalf("/metrics: %d %s", status, body)
		}
		if strings.Contains(body, `decision="allowed"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // waiting for the completion, not asserting time
	}
	for _, want := range []string{
		`keybrake_calls_total{agent="refund-bot",code="",decision="allowed",vendor="stripe"} 1`,
		"keybrake_store_up 1",
		`keybrake_policy_reloads_total{result="ok"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, key) || strings.Contains(body, serveSecret) {
		t.Error("/metrics shows a key")
	}
	if status, _ := get(t, "http://"+agents+"/metrics"); status != 404 {
		t.Errorf("/metrics on the agent port: %d, want 404", status)
	}
}
