package keybrake_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
)

// crashChild, when set, makes this test binary the agent process of
// TestCrashAfterSendingKeepsMoneyCounted (see TestMain): it opens the Brake
// and sends one refund, which never answers, because the parent kills it
// first.
const crashChild = "KEYBRAKE_TEST_CRASH_CHILD"

func runCrashChild(dir string) {
	url, err := os.ReadFile(filepath.Join(dir, "url"))
	if err != nil {
		panic(err)
	}
	kb, err := keybrake.Open(keybrake.Options{
		PolicyFile: filepath.Join(dir, "keybrake.yaml"),
		DBPath:     filepath.Join(dir, "keybrake.db"),
		Endpoints:  fakeEndpoint(string(url)),
	})
	if err != nil {
		panic(err)
	}
	sdkNoRetry(kb, "refund-bot").Refunds.New(refund("ch_crash", 2500))
	panic("the refund returned; the parent should have killed this process")
}

// TestCrashAfterSendingKeepsMoneyCounted kills the agent process while its
// refund is on the wire, after the reservation was committed: the next
// process finds the call recorded as unknown and its money counted.
func TestCrashAfterSendingKeepsMoneyCounted(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keybrake.yaml"), []byte(capPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_crash", Amount: 90000, Currency: "usd", Captured: true})
	started := make(chan *os.Process, 1)
	var kill sync.Once
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		killed := false
		if r.Method == http.MethodPost {
			// The first refund is on the wire: the agent dies now.
			kill.Do(func() { (<-started).Kill(); killed = true })
		}
		if killed {
			return
		}
		fs.ServeHTTP(w, r)
	}))
	if err := os.WriteFile(filepath.Join(dir, "url"), []byte(srv), 0o600); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), crashChild+"="+dir)
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	started <- child.Process
	err := child.Wait()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child did not die by the kill: %v\n%s", err, out.String())
	}

	kb := openBrake(t, "", keybrake.Options{PolicyFile: filepath.Join(dir, "keybrake.yaml"), DBPath: filepath.Join(dir, "keybrake.db"), Endpoints: fakeEndpoint(srv)})
	recs := dump(t, kb, audit.Query{})
	if len(recs) != 1 || recs[0].Outcome != audit.Unknown || !strings.Contains(recs[0].Reason, "interrupted") || recs[0].Reserved.Micros != 25_000_000 {
		t.Fatalf("records after the crash: %+v", recs)
	}
	// 25.00 USD stays counted: 75.00 more fit, 75.01 do not.
	bot := sdkNoRetry(kb, "refund-bot")
	for i := 0; i < 2; i++ {
		if _, err := bot.Refunds.New(refund("ch_crash", 3000)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = bot.Refunds.New(refund("ch_crash", 1501))
	stripeErr(t, err, 402)
	if _, err := bot.Refunds.New(refund("ch_crash", 1500)); err != nil {
		t.Fatal(err)
	}
}
