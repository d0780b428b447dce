package keybrake_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// logSecret is the vendor key the agents of these tests call with: it
// reaches the vendor in an Authorization header and must reach no log.
const logSecret = "sk_test_51LogSecretNeverLogged4242"

// stripeWithKey is stripe-go with logSecret as its key, through agent's
// chain.
func stripeWithKey(kb *keybrake.Brake, agent string) *client.API {
	hc := &http.Client{Transport: kb.Transport(agent, keybrake.Stripe, nil)}
	return client.New(logSecret, stripevendor.Backends(hc))
}

// noSecretLogged fails if the key, in any form an Authorization header
// carries it, is anywhere in what was logged.
func noSecretLogged(t *testing.T, logs *logBuffer) {
	t.Helper()
	logs.mu.Lock()
	text := logs.b.String()
	logs.mu.Unlock()
	basic := base64.StdEncoding.EncodeToString([]byte(logSecret + ":"))
	for _, bad := range []string{logSecret, basic, "Bearer", "Basic ", "Authorization", "authorization"} {
		if strings.Contains(text, bad) {
			t.Errorf("the log holds %q:\n%s", bad, text)
		}
	}
}

// failureRecords are the "keybrake: failure" records logged so far.
func failureRecords(t *testing.T, logs *logBuffer) []map[string]any {
	var out []map[string]any
	for _, r := range logs.records(t) {
		if r["msg"] == "keybrake: failure" {
			out = append(out, r)
		}
	}
	return out
}

// failingComplete is a store whose completions cannot be written: the
// vendor has answered, and the store will not take what moved.
type failingComplete struct {
	store.Store
}

var errReadOnly = fmt.Errorf("%w: the disk was remounted read-only", store.ErrReadOnly)

func (failingComplete) Complete(context.Context, *store.Completion) error { return errReadOnly }

// A refund Stripe made, whose completion the store refuses, is logged
// once at ERROR as a structured "keybrake: failure" whose error names the
// call's audit record and the store's failure (its money stays counted);
// the agent's Stripe key is nowhere in the log.
func TestLoggerGetsCompletionFailure(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_log", Amount: 5000, Currency: "usd", Captured: true})
	inner, err := bolt.Open(filepath.Join(t.TempDir(), "keybrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	var reported errorLog
	kb := openBrake(t, drainPolicy, keybrake.Options{Store: failingComplete{inner}, Endpoints: fakeEndpoint(url),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), ErrorLog: reported.add})
	if _, err := stripeWithKey(kb, "refund-bot").Refunds.New(refund("ch_log", 1200)); err != nil {
		t.Fatal(err)
	}
	if got := fs.Refunded("ch_log"); got != 1200 {
		t.Fatalf("Stripe refunded %d", got)
	}
	eventually(t, "the failed completion to be logged", func() bool { return len(failureRecords(t, &logs)) > 0 })

	recs := dump(t, kb, audit.Query{})
	if len(recs) != 1 || recs[0].Outcome != audit.Reserved {
		t.Fatalf("the audit holds %+v, want the refund still reserved", recs)
	}
	failures := failureRecords(t, &logs)
	if len(failures) != 1 {
		t.Fatalf("logged %d failures, want the one completion: %v", len(failures), failures)
	}
	f := failures[0]
	text, _ := f["error"].(string)
	if f["level"] != "ERROR" || !strings.Contains(text, fmt.Sprintf("completion of call %d (settled)", recs[0].ID)) ||
		!strings.Contains(text, errReadOnly.Error()) {
		t.Errorf("failure record %v, want ERROR naming call %d and the store's error", f, recs[0].ID)
	}
	// What a pipeline keys on, beside the sentence (JSON numbers decode as float64).
	if f["op"] != "completion_write" || f["record"] != float64(recs[0].ID) {
		t.Errorf("failure record %v, want op completion_write and record %d", f, recs[0].ID)
	}
	if errs := reported.all(); len(errs) != 1 || !errors.Is(errs[0], store.ErrReadOnly) || errs[0].Error() != text {
		t.Errorf("ErrorLog got %v, want the same failure as the log", errs)
	}
	noSecretLogged(t, &logs)
}

// A Revoke the fleet's store refuses holds in this process and is logged
// twice, both structured: the failure at ERROR with op fleet_stop_write,
// method Revoke, agent and the store's error, and the revocation that
// holds here at INFO with its agent. The revoked agent's refused call
// leaves its Stripe key out of the log.
func TestLoggerGetsFleetWriteFailure(t *testing.T) {
	inner, err := bolt.Open(filepath.Join(t.TempDir(), "k.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fs := &failingStops{Store: inner}
	var logs logBuffer
	var reported errorLog
	f := newRevocationFixture(t, keybrake.Options{Store: fs, Logger: slog.New(slog.NewJSONHandler(&logs, nil)), ErrorLog: reported.add}, nil)
	fs.mu.Lock()
	fs.fail = true
	fs.mu.Unlock()
	f.kb.Revoke("bot")
	if _, err := stripeWithKey(f.kb, "bot").Charges.Get("ch_1", nil); err == nil {
		t.Fatal("a call of the revoked agent passed")
	} else if d, ok := keybrake.AsDenial(err); !ok || d.Code != "keybrake_revoked" {
		t.Fatalf("the revoked agent's call: %v", err)
	}

	var write, event map[string]any
	for _, r := range logs.records(t) {
		switch {
		case r["msg"] == "keybrake: failure" && r["op"] == "fleet_stop_write":
			write = r
		case r["msg"] == "keybrake: event" && r["event"] == "revoke":
			event = r
		}
	}
	if text, _ := write["error"].(string); write == nil || write["level"] != "ERROR" || write["method"] != "Revoke" ||
		write["agent"] != "bot" || !strings.Contains(text, errDown.Error()) {
		t.Errorf("the failed write: %v", write)
	}
	if reason, _ := event["reason"].(string); event == nil || event["level"] != "INFO" || event["agent"] != "bot" ||
		!strings.Contains(reason, "in this process only") {
		t.Errorf("the revocation: %v", event)
	}
	var sawWrite bool
	for _, err := range reported.all() {
		sawWrite = sawWrite || (errors.Is(err, errDown) && strings.Contains(err.Error(), "Brake.Revoke"))
	}
	if !sawWrite {
		t.Errorf("ErrorLog got %v, want the failed write wrapping the store's error", reported.all())
	}
	noSecretLogged(t, &logs)
}

// failingAppend is a store that cannot write a refused call's record.
type failingAppend struct {
	store.Store
}

func (failingAppend) Append(context.Context, *audit.Record) (uint64, error) { return 0, errReadOnly }

// A refusal whose audit record the store cannot write is still refused,
// and logged as a failure with op audit_write and the call's agent and
// vendor, so a pipeline can page the team that runs that agent.
func TestLoggerGetsRefusalWriteFailure(t *testing.T) {
	inner, err := bolt.Open(filepath.Join(t.TempDir(), "keybrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	kb := openBrake(t, drainPolicy, keybrake.Options{Store: failingAppend{inner}, Endpoints: fakeEndpoint("http://127.0.0.1:1"),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	_, err = stripeWithKey(kb, "nobody-bot").Refunds.New(refund("ch_log", 1200))
	stripeErr(t, err, 403)
	failures := failureRecords(t, &logs)
	if len(failures) != 1 {
		t.Fatalf("logged %d failures, want the refusal's record: %v", len(failures), failures)
	}
	f := failures[0]
	if f["level"] != "ERROR" || f["op"] != "audit_write" || f["agent"] != "nobody-bot" || f["vendor"] != "stripe" ||
		!strings.Contains(f["error"].(string), errReadOnly.Error()) {
		t.Errorf("failure record %v, want op audit_write for nobody-bot and stripe, with the store's error", f)
	}
	noSecretLogged(t, &logs)
}
