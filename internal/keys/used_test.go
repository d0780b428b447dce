package keys_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keybrake/keybrake/internal/keys"
)

func TestUsageKeepsTheLatestTimeAndMergesWithTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.keys")
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

	if err := keys.NewUsage(path).Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keys.UsedPath(path)); !os.IsNotExist(err) {
		t.Fatalf("a Flush with nothing used wrote %s (%v)", keys.UsedPath(path), err)
	}

	a := keys.NewUsage(path)
	a.Touch("kbk_a", t0.Add(time.Minute))
	a.Touch("kbk_a", t0) // older: ignored
	a.Touch("kbk_b", t0)
	// Another proxy on this keys file wrote a later use of kbk_b.
	b := keys.NewUsage(path)
	b.Touch("kbk_b", t0.Add(time.Hour))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := keys.LoadUsage(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"kbk_a": t0.Add(time.Minute), "kbk_b": t0.Add(time.Hour)}
	if len(got) != len(want) || !got["kbk_a"].Equal(want["kbk_a"]) || !got["kbk_b"].Equal(want["kbk_b"]) {
		t.Fatalf("LoadUsage = %v, want %v", got, want)
	}
	st, err := os.Stat(keys.UsedPath(path))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", keys.UsedPath(path), st.Mode(), err)
	}
}

func TestUsageFileMissingOrBroken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.keys")
	if m, err := keys.LoadUsage(path); err != nil || len(m) != 0 {
		t.Fatalf("no file: %v %v, want no times and no error", m, err)
	}
	if err := os.WriteFile(keys.UsedPath(path), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.LoadUsage(path); err == nil {
		t.Fatal("a broken file read without an error")
	}
	// The proxy starts from nothing rather than refusing: the times are a
	// convenience, never a reason to stop a call.
	u := keys.NewUsage(path)
	u.Touch("kbk_a", time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	if err := u.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := keys.LoadUsage(path); err != nil || len(m) != 1 {
		t.Fatalf("after a Flush over the broken file: %v %v", m, err)
	}
}

func TestUsageRunFlushesOnStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.keys")
	u := keys.NewUsage(path)
	u.Touch("kbk_a", time.Now())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { u.Run(time.Hour, stop, func(err error) { t.Error(err) }); close(done) }()
	close(stop)
	<-done
	if m, err := keys.LoadUsage(path); err != nil || len(m) != 1 {
		t.Fatalf("after Run stopped: %v %v, want kbk_a written", m, err)
	}
}
