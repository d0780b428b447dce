package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keybrake/keybrake/fakes/fakestripe"
)

// These tests run keybrake serve as an operator would, with fakes/fakestripe
// standing in for Stripe behind --endpoint, and talk to it over HTTP as an
// agent's SDK would.

const servePolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 50.00 USD
      allow:
        - POST /v1/refunds
`

var (
	serveSecret = "sk_" + "test_" + strings.Repeat("Q", 24) // built from parts for secret scanners
	listening   = regexp.MustCompile(`serving agents on (http://\S+) `)
)

type served struct {
	cmd    *exec.Cmd
	url    string
	stderr *strings.Builder
	done   chan error
}

// startServe runs keybrake serve in dir and waits for its address.
func startServe(t *testing.T, dir string, env []string, args ...string) *served {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &served{cmd: cmd, stderr: &strings.Builder{}, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait(); pw.Close() }()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			s.stderr.WriteString(line + "\n")
			if m := listening.FindStringSubmatch(line); m != nil {
				found <- m[1]
			}
		}
		close(found)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
	})
	select {
	case u, ok := <-found:
		if !ok {
			t.Fatalf("keybrake serve exited before listening")
		}
		s.url = u
	case <-time.After(30 * time.Second):
		t.Fatal("keybrake serve did not start listening")
	}
	return s
}

func refundAt(t *testing.T, base, auth, amount string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/refunds", strings.NewReader("charge=ch_1&amount="+amount))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// serveDir is a directory holding servePolicy and a keys file with one
// key for refund-bot on Stripe, and a fake Stripe (with a charge ch_1 of
// 900.00 USD) to send the calls to.
func serveDir(t *testing.T) (dir, vendor, key string) {
	t.Helper()
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 90000, Currency: "usd", Captured: true})
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)

	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keybrake.yaml"), []byte(servePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := keybrakeIn(t, dir, nil, "keys", "add", "refund-bot", "stripe")
	key = strings.TrimSpace(out)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(key, "kb_") {
		t.Fatalf("keys add: %d %q %q, want one line with the key", code, out, errOut)
	}
	return dir, srv.URL, key
}

func TestServe(t *testing.T) {
	dir, vendor, key := serveDir(t)
	s := startServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--endpoint", "stripe="+vendor)

	for i := 0; i < 2; i++ {
		if status, body := refundAt(t, s.url, "Bearer "+key, "2500"); status != 200 {
			t.Fatalf("refund %d: %d %s", i+1, status, body)
		}
	}
	if status, body := refundAt(t, s.url, "Bearer "+key, "2500"); status != 402 || !strings.Contains(body, "keybrake_daily_cap") {
		t.Fatalf("third refund: %d %s, want 402 keybrake_daily_cap", status, body)
	}
	if status, body := refundAt(t, s.url, "Bearer "+serveSecret, "100"); status != 401 || !strings.Contains(body, "keybrake_vendor_secret") || strings.Contains(body, serveSecret) {
		t.Fatalf("the real secret: %d %s, want 401 keybrake_vendor_secret without the secret", status, body)
	}

	// keys revoke reaches the running proxy.
	list, _, _ := keybrakeIn(t, dir, nil, "keys", "list")
	id := regexp.MustCompile(`kbk_\w+`).FindString(list)
	if strings.Contains(list, key) || id == "" {
		t.Fatalf("keys list shows the key or no id:\n%s", list)
	}
	if _, e, code := keybrakeIn(t, dir, nil, "keys", "revoke", id); code != 0 {
		t.Fatalf("keys revoke: %d %s", code, e)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := refundAt(t, s.url, "Bearer "+key, "100")
		if status == 401 && strings.Contains(body, "keybrake_key_revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after keys revoke: %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond) // waiting for the watcher, not asserting time
	}
	if strings.Contains(s.stderr.String(), serveSecret) || strings.Contains(s.stderr.String(), key) {
		t.Fatal("keybrake serve logged a secret or an agent key")
	}

	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-s.done; err != nil {
		t.Fatalf("keybrake serve on SIGTERM: %v\n%s", err, s.stderr)
	}
	s.done <- nil // for the cleanup

	// The record of every call is in the database.
	audit, _, code := keybrakeIn(t, dir, nil, "audit", "--format", "jsonl")
	if code != 0 || strings.Count(audit, `"key_id":"`+id+`"`) < 4 {
		t.Fatalf("audit after serve (%d):\n%s", code, audit)
	}
}

func TestServeRefusesToListenBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	_, errOut, code := keybrakeIn(t, dir, nil, "serve", "--listen", "0.0.0.0:8181")
	if code != 2 || !strings.Contains(errOut, "--tls-cert") || !strings.Contains(errOut, "--insecure-listen") {
		t.Fatalf("serve on 0.0.0.0: %d %s", code, errOut)
	}
}
