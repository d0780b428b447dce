package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	mu      sync.Mutex
	inMain  bool                 // Main is running the tests
	stopped bool                 // Main has stopped every server
	byName  = map[string]*slot{} // one slot per kind of server
	ownDir  string               // files the shared servers read, for as long as they run (ownFile)
)

// ownFile copies src into a directory that lives as long as the test
// binary's servers, and returns the copy's path. A shared server outlives
// the test that started it, so it must not read (or, as Prism does, watch)
// a file in that test's TempDir: in CI that TempDir went before Prism's
// watch began, the watch of the missing directory threw, and Prism exited
// in the middle of another test.
func ownFile(src string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	mu.Lock()
	defer mu.Unlock()
	if ownDir == "" {
		if ownDir, err = os.MkdirTemp("", "keybrake-testenv-"); err != nil {
			return "", err
		}
	}
	f, err := os.CreateTemp(ownDir, "*-"+filepath.Base(src))
	if err != nil {
		return "", err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", err
	}
	return f.Name(), f.Close()
}

// slot holds the one server of a kind, or why there is none. Its first
// outcome sticks: a server that could not start is not retried by every
// later test.
type slot struct {
	mu     sync.Mutex
	tried  bool
	srv    *server
	err    error
	remark string // when the server is unavailable: how to get it
}

// Main runs the tests of m, then stops every server the tests started, and
// exits with m's code (or 1 if the tests passed but a server could not be
// stopped cleanly or had died during the tests). Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for a TestMain with cleanup of its own: it
// returns the code Main would exit with.
func Run(m *testing.M) int {
	mu.Lock()
	inMain = true
	mu.Unlock()

	code := m.Run()

	if err := stopAll(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		if code == 0 {
			code = 1
		}
	}
	mu.Lock()
	if ownDir != "" {
		os.RemoveAll(ownDir)
	}
	mu.Unlock()
	return code
}

// stopAll stops every server started so far; later calls to shared fail.
func stopAll() error {
	mu.Lock()
	stopped = true
	slots := make([]*slot, 0, len(byName))
	for _, s := range byName {
		slots = append(slots, s)
	}
	mu.Unlock()

	var errs []error
	for _, s := range slots {
		s.mu.Lock()
		if s.srv != nil {
			if err := s.srv.stop(5 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// shared returns the base URL of the server called name, starting it with
// startFn on first use. An *unavailableError from startFn skips the test
// (fails it under CI=true); any other error fails it.
func shared(t testing.TB, name string, startFn func(testing.TB) (*server, error)) string {
	t.Helper()
	mu.Lock()
	if !inMain {
		mu.Unlock()
		t.Fatalf("testenv: %s is shared by the whole test binary and stopped by testenv.Main; add\n\tfunc TestMain(m *testing.M) { testenv.Main(m) }\nto this package's tests", name)
	}
	if stopped {
		mu.Unlock()
		t.Fatalf("testenv: %s asked for after testenv.Main stopped the servers", name)
	}
	s := byName[name]
	if s == nil {
		s = &slot{}
		byName[name] = s
	}
	mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tried {
		s.tried = true
		s.srv, s.err = startFn(t)
		var u *unavailableError
		if errors.As(s.err, &u) {
			s.remark, s.err = u.msg, nil
		}
	}
	switch {
	case s.err != nil:
		t.Fatalf("testenv: %v", s.err)
	case s.remark != "" && underCI():
		t.Fatalf("testenv: CI=true and %s", s.remark)
	case s.remark != "":
		t.Skipf("testenv: %s", s.remark)
	}
	// A server that died during the tests would make every later test
	// fail with a connection error that hides why.
	select {
	case <-s.srv.done:
		t.Fatalf("testenv: %s (pid %d) exited during the tests: %v\n--- output ---\n%s", name, s.srv.pid, s.srv.waitErr, s.srv.out.String())
	default:
	}
	return s.srv.baseURL
}
