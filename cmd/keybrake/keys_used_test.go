package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/keys"
)

// TestServeNotesWhenEachKeyWasLastUsed: a call presenting a key is noted,
// and the time is written beside the keys file by the time serve exits;
// a key never presented has no time.
func TestServeNotesWhenEachKeyWasLastUsed(t *testing.T) {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 90000, Currency: "usd", Captured: true})
	vendor, _, release := gate(t, fs)
	release()
	dir, key := stripeDir(t)
	if _, errOut, code := keybrakeIn(t, dir, nil, "keys", "add", "refund-bot", "stripe"); code != 0 {
		t.Fatalf("keys add: %d %s", code, errOut)
	}
	p := runServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--endpoint", "stripe="+vendor)
	agents, _ := p.started(t)

	req, _ := http.NewRequest("POST", "http://"+agents+"/v1/refunds", strings.NewReader("charge=ch_1&amount=100"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("refund through serve: %d", resp.StatusCode)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exit(t); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, p.stderr())
	}

	file := filepath.Join(dir, "keybrake.keys")
	f, err := keys.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	used, err := keys.LoadUsage(file)
	if err != nil {
		t.Fatal(err)
	}
	entries := f.Entries()
	if len(entries) != 2 {
		t.Fatalf("%d keys, want 2", len(entries))
	}
	var presented, idle int
	for _, e := range entries {
		if _, ok := used[e.ID]; ok {
			presented++
		} else {
			idle++
		}
	}
	if presented != 1 || idle != 1 || len(used) != 1 {
		t.Fatalf("last uses %v for keys %v: want the presented key only", used, entries)
	}

	out, errOut, code := keybrakeIn(t, dir, nil, "keys", "list")
	if code != 0 {
		t.Fatalf("keys list: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "LAST USED") {
		t.Fatalf("keys list:\n%s", out)
	}
	for _, e := range entries {
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, e.ID+" ") {
				continue
			}
			if t0, ok := used[e.ID]; ok != !strings.Contains(l, " never ") || ok && !strings.Contains(l, t0.UTC().Format(time.RFC3339)) {
				t.Errorf("keys list row %q, last use %v", l, t0)
			}
		}
	}
}
