package watch

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/goleak"
)

func TestRelevant(t *testing.T) {
	w := &Watcher{cfg: Config{Files: []string{"/etc/kb/keybrake.yaml", "/etc/kb/keybrake.yaml.halt"}}}
	tests := []struct {
		ev   fsnotify.Event
		want bool
	}{
		{fsnotify.Event{Name: "/etc/kb/keybrake.yaml", Op: fsnotify.Write}, true},
		{fsnotify.Event{Name: "/etc/kb/keybrake.yaml.halt", Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: "/etc/kb/..data", Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: "/etc/kb/..2026_11_25", Op: fsnotify.Write}, true},
		{fsnotify.Event{Name: "/etc/kb/keybrake.yaml.tmp~", Op: fsnotify.Rename}, true},
		{fsnotify.Event{Name: "/etc/kb/keybrake.db", Op: fsnotify.Write}, false},
		{fsnotify.Event{Name: "/etc/kb/keybrake.db", Op: fsnotify.Chmod}, false},
		{fsnotify.Event{Name: "/etc/kb/keybrake.db", Op: fsnotify.Remove}, true},
	}
	for _, tt := range tests {
		if got := w.relevant(tt.ev); got != tt.want {
			t.Errorf("relevant(%v) = %v, want %v", tt.ev, got, tt.want)
		}
	}
}

// TestChecksOnEventsNotOnOtherWrites: a rename of the followed file is
// checked; writes to another file of the directory (the database) are not.
func TestChecksOnEventsNotOnOtherWrites(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "keybrake.yaml")
	os.WriteFile(p, []byte("a"), 0o600)
	var checks atomic.Int64
	w, err := Start(Config{Files: []string{p}, Poll: -1, Check: func() time.Duration { checks.Add(1); return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	db := filepath.Join(dir, "keybrake.db")
	os.WriteFile(db, []byte("x"), 0o600)
	time.Sleep(50 * time.Millisecond)
	base := checks.Load() // the db's create is a create: it may check once
	for i := 0; i < 20; i++ {
		f, _ := os.OpenFile(db, os.O_WRONLY|os.O_APPEND, 0)
		f.Write([]byte("y"))
		f.Close()
	}
	time.Sleep(50 * time.Millisecond)
	if got := checks.Load(); got != base {
		t.Fatalf("writes to another file triggered %d checks", got-base)
	}
	os.WriteFile(p+".tmp", []byte("b"), 0o600)
	os.Rename(p+".tmp", p)
	deadline := time.Now().Add(5 * time.Second)
	for checks.Load() == base {
		if time.Now().After(deadline) {
			t.Fatal("a rename over the followed file triggered no check")
		}
		time.Sleep(time.Millisecond)
	}
}
