package bolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

// slow is a LockTimeout no refusal in these tests may wait out: one that
// takes it was decided by bbolt's lock, not by Open's own bookkeeping.
const slow = 5 * time.Second

// TestOpenTwiceInProcess: bbolt's flock belongs to the open file, so a
// second Open in the same process would wait on its own lock and blame
// another process. Open refuses it at once and says what happened, under
// whatever name the second Open uses.
func TestOpenTwiceInProcess(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keybrake.db")
	link := filepath.Join(dir, "link.db")
	linkDir := filepath.Join(t.TempDir(), "data")
	if err := os.Symlink(dir, linkDir); err != nil {
		t.Skip("symlinks:", err)
	}
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard.db")

	first := open(t, path)
	if err := os.Link(path, hard); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		path     string
		readOnly bool
		as       bool // the error names the first Open's path too
	}{
		{"same path", path, false, false},
		{"unclean path", filepath.Join(dir, ".", "x", "..", "keybrake.db"), false, false},
		{"symlink", link, false, true},
		{"symlinked directory", filepath.Join(linkDir, "keybrake.db"), false, true},
		{"hard link", hard, false, true},
		{"read-only", path, true, false},
		{"read-only through a symlink", link, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			s, err := bolt.Open(tc.path, &bolt.Options{LockTimeout: slow, ReadOnly: tc.readOnly})
			took := time.Since(start)
			if err == nil {
				s.Close()
				t.Fatal("second Open of a file this process holds succeeded")
			}
			if !errors.Is(err, store.ErrLocked) {
				t.Fatalf("second Open = %v, want ErrLocked", err)
			}
			if took > slow/2 {
				t.Errorf("second Open took %v: it waited for the lock", took)
			}
			msg := err.Error()
			for _, want := range []string{tc.path, "already open in this process", "close the first Brake or share it"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if strings.Contains(msg, "another process") {
				t.Errorf("error %q blames another process", msg)
			}
			if got := strings.Contains(msg, " as "+path); got != tc.as {
				t.Errorf("error %q names the first path: %v, want %v", msg, got, tc.as)
			}
		})
	}

	// The refusals left nothing behind: once the first is closed, the
	// file opens again, read-write and under another name.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := bolt.Open(link, &bolt.Options{LockTimeout: slow})
	if err != nil {
		t.Fatalf("Open after Close = %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenInProcessRelative: a relative path and the absolute one are one
// file.
func TestOpenInProcessRelative(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil {
		t.Skip("no relative path to the temporary directory:", err)
	}
	open(t, rel)
	s, err := bolt.Open(path, &bolt.Options{LockTimeout: slow})
	if err == nil {
		s.Close()
		t.Fatal("Open by absolute path of a file held by relative path succeeded")
	}
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "already open in this process") {
		t.Fatalf("Open = %v, want ErrLocked, already open in this process", err)
	}
}

// TestOpenInProcessRace: of Opens racing for a new file, one wins and the
// others are refused at once; none waits out the lock.
func TestOpenInProcessRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  []*bolt.Store
		errs []error
	)
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := bolt.Open(path, &bolt.Options{LockTimeout: slow})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			won = append(won, s)
		}()
	}
	wg.Wait()
	for _, s := range won {
		s.Close()
	}
	if len(won) != 1 {
		t.Fatalf("%d of %d racing Opens succeeded, want 1 (errors %v)", len(won), n, errs)
	}
	for _, err := range errs {
		if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "already open in this process") {
			t.Errorf("losing Open = %v, want ErrLocked, already open in this process", err)
		}
	}
	if took := time.Since(start); took > slow/2 {
		t.Errorf("racing Opens took %v: a loser waited for the lock", took)
	}
}

// TestReadersInProcess: readers share the file, in one process as across
// processes; a read-write Open waits for them as bbolt's lock makes it,
// and when they stay, says they are this process's.
func TestReadersInProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	if err := open(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	ro := func() *bolt.Store {
		t.Helper()
		s, err := bolt.Open(path, &bolt.Options{ReadOnly: true, LockTimeout: slow})
		if err != nil {
			t.Fatalf("read-only Open = %v", err)
		}
		return s
	}
	r1, r2 := ro(), ro()

	const wait = 200 * time.Millisecond
	start := time.Now()
	s, err := bolt.Open(path, &bolt.Options{LockTimeout: wait})
	took := time.Since(start)
	if err == nil {
		s.Close()
		t.Fatal("read-write Open with readers open succeeded")
	}
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "already open read-only in this process") {
		t.Fatalf("read-write Open with readers open = %v, want ErrLocked, already open read-only in this process", err)
	}
	if took < wait/2 {
		t.Errorf("read-write Open gave up after %v, before its %v LockTimeout", took, wait)
	}

	// A writer that waits gets the file once the readers let go.
	r1.Close()
	go func() {
		time.Sleep(50 * time.Millisecond)
		r2.Close()
	}()
	w, err := bolt.Open(path, &bolt.Options{LockTimeout: slow})
	if err != nil {
		t.Fatalf("read-write Open while the last reader closes = %v", err)
	}
	w.Close()
}
