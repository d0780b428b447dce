package keybrake_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/keybrake/keybrake"
)

// logBuffer is slog's JSON output, safe for the Brake's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) records(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		out = append(out, m)
	}
	return out
}

// Policy events reach Options.Logger as structured records.
func TestLoggerGetsEvents(t *testing.T) {
	var logs logBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	f := newRevocationFixture(t, keybrake.Options{Logger: logger}, nil)
	f.kb.Halt()
	f.kb.Resume()
	renameInto(t, f.policy, "version: 1\nagents:\n  bot:\n    stripe:\n      daily_cap: 500 dollars\n")
	f.await(f.bot, "keybrake_policy_invalid")

	// The watcher refuses calls first and then records and logs the event,
	// after the record's fsync: a refused call does not mean it is logged.
	seen := map[string]map[string]any{}
	eventually(t, "the policy_invalid event to be logged", func() bool {
		for _, r := range logs.records(t) {
			if r["msg"] == "keybrake: event" {
				seen[r["event"].(string)] = r
			}
		}
		return seen["policy_invalid"] != nil
	})
	halt, invalid := seen["halt"], seen["policy_invalid"]
	if halt == nil || halt["level"] != "INFO" || halt["record"].(float64) == 0 || halt["reason"] == "" {
		t.Errorf("halt event: %v", halt)
	}
	if invalid == nil || invalid["level"] != "ERROR" || !strings.Contains(invalid["reason"].(string), "500 dollars") {
		t.Errorf("policy_invalid event: %v", invalid)
	}
	if strings.Contains(logs.b.String(), "sk_") {
		t.Error("a secret reached the log")
	}
}
