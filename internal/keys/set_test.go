package keys

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keybrake/keybrake/internal/atomicfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// liveness bounds every wait for a reload; the poll is 250 ms, so this is
// only ever reached when something is broken.
const liveness = 10 * time.Second

// await waits until cond holds.
func await(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after %v", what, liveness)
		}
		time.Sleep(time.Millisecond)
	}
}

func awaitResult(t testing.TB, s *Set, token string, want Result) {
	t.Helper()
	await(t, "looked up as "+want.String(), func() bool {
		_, r := s.Lookup(token)
		return r == want
	})
}

func openSet(t testing.TB, path string, opts SetOptions) *Set {
	t.Helper()
	s, err := OpenSet(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenSetRefuses(t *testing.T) {
	tests := []struct {
		name, text string
		mode       fs.FileMode
		is         error
	}{
		{"missing", "", 0, fs.ErrNotExist},
		{"open to the group", "version: 1\n", 0o640, ErrNotPrivate},
		{"invalid", "version: 1\nkeys: {}\n", 0o600, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := keysFile(t)
			if tt.mode != 0 {
				writeKeys(t, path, tt.text, tt.mode)
			}
			s, err := OpenSet(path, SetOptions{})
			if err == nil {
				s.Close()
				t.Fatal("OpenSet succeeded")
			}
			var pe *ParseError
			if tt.is != nil && !errors.Is(err, tt.is) || tt.is == nil && !errors.As(err, &pe) {
				t.Fatalf("error %v", err)
			}
		})
	}
}

// TestSetSeesEveryWriter: keys added and revoked by another writer (this
// process, another process, an editor writing in place) are in force in
// the Set within the poll, with file events and without.
func TestSetSeesEveryWriter(t *testing.T) {
	opts := []struct {
		name string
		opts SetOptions
	}{
		{"events", SetOptions{Poll: -1}},
		{"poll", SetOptions{NoEvents: true}},
		{"default", SetOptions{}},
	}
	for _, o := range opts {
		t.Run(o.name, func(t *testing.T) {
			path := keysFile(t)
			first, a := mustAdd(t, path, "bot", "stripe", t0)
			s := openSet(t, path, o.opts)
			if e, r := s.Lookup(first); r != OK || e.ID != a.ID {
				t.Fatalf("after OpenSet: %v %+v", r, e)
			}

			second, b := mustAdd(t, path, "bot", "stripe", t0.Add(time.Minute))
			awaitResult(t, s, second, OK)

			if err := otherProcess(t, "revoke", path, a.ID); err != nil {
				t.Fatal(err)
			}
			awaitResult(t, s, first, Revoked)
			if _, r := s.Lookup(second); r != OK {
				t.Fatalf("the other key: %v", r)
			}

			// An editor that writes in place: truncate, then write. The
			// empty file in between is given time to fill, so the version
			// in force stays (no refusal while the editor works).
			f, _ := s.File()
			data, _, err := revokeEntry(f, readFile(t, path), b.ID, t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			w, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // a slow editor: the file stays empty a while
			if _, r := s.Lookup(second); r != OK {
				t.Errorf("while the file was empty: %v, %v", r, s.Err())
			}
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			w.Close()
			awaitResult(t, s, second, Revoked)
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSetFailsClosed: a file that becomes invalid, open to others, or goes
// away refuses every key, with the reason from Err and Report, until a
// valid file is back.
func TestSetFailsClosed(t *testing.T) {
	path := keysFile(t)
	tok, _ := mustAdd(t, path, "bot", "stripe", t0)
	valid := readFile(t, path)
	var mu sync.Mutex
	var reported []error
	s := openSet(t, path, SetOptions{Report: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, err)
	}})
	breaks := []struct {
		name    string
		break_  func()
		fix     func()
		isCause func(error) bool
	}{
		{
			name:    "corrupted",
			break_:  func() { atomicfile.Write(path, valid[:len(valid)/2], 0o600) },
			fix:     func() { atomicfile.Write(path, valid, 0o600) },
			isCause: func(err error) bool { var pe *ParseError; return errors.As(err, &pe) },
		},
		{
			name:    "not yaml",
			break_:  func() { atomicfile.Write(path, []byte("version: 1\nkeys: [\n"), 0o600) },
			fix:     func() { atomicfile.Write(path, valid, 0o600) },
			isCause: func(err error) bool { var pe *ParseError; return errors.As(err, &pe) },
		},
		{
			name:    "open to others",
			break_:  func() { os.Chmod(path, 0o644) },
			fix:     func() { os.Chmod(path, 0o600) },
			isCause: func(err error) bool { return errors.Is(err, ErrNotPrivate) },
		},
		{
			name:    "removed",
			break_:  func() { os.Remove(path) },
			fix:     func() { atomicfile.Write(path, valid, 0o600) },
			isCause: func(err error) bool { return errors.Is(err, fs.ErrNotExist) },
		},
	}
	for _, b := range breaks {
		t.Run(b.name, func(t *testing.T) {
			awaitResult(t, s, tok, OK)
			mu.Lock()
			n := len(reported)
			mu.Unlock()
			b.break_()
			awaitResult(t, s, tok, Unavailable)
			err := s.Err()
			if !errors.Is(err, ErrInvalid) || !b.isCause(err) {
				t.Fatalf("Err() = %v", err)
			}
			if f, ferr := s.File(); f != nil || ferr == nil {
				t.Fatalf("File() = %v, %v", f, ferr)
			}
			// The refusal is in force before Report is called (fail
			// closed first), so the report may come a moment later.
			await(t, "the report", func() bool { mu.Lock(); defer mu.Unlock(); return len(reported) > n })
			mu.Lock()
			if len(reported) != n+1 || reported[n].Error() != err.Error() {
				t.Errorf("reported %v, want %v", reported[n:], err)
			}
			mu.Unlock()
			b.fix()
			awaitResult(t, s, tok, OK)
			if err := s.Err(); err != nil {
				t.Fatalf("Err() after the fix: %v", err)
			}
		})
	}
}

func TestSetClose(t *testing.T) {
	path := keysFile(t)
	tok, _ := mustAdd(t, path, "bot", "stripe", t0)
	s, err := OpenSet(path, SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, r := s.Lookup(tok); r != Unavailable || !errors.Is(s.Err(), ErrClosed) {
		t.Fatalf("after Close: %v, %v", r, s.Err())
	}
	goleak.VerifyNone(t)

	var zero Set
	if _, r := zero.Lookup(tok); r != Unavailable || !errors.Is(zero.Err(), ErrClosed) || zero.Close() != nil {
		t.Fatalf("zero Set: %v, %v", r, zero.Err())
	}
}

// TestSetKeepsTheSameBytes: a rewrite that changes nothing (an atomic
// write of the same content) keeps the version in force, the same *File;
// a change replaces it.
func TestSetKeepsTheSameBytes(t *testing.T) {
	path := keysFile(t)
	mustAdd(t, path, "bot", "stripe", t0)
	s := openSet(t, path, SetOptions{})
	before, _ := s.File()
	if err := atomicfile.Write(path, readFile(t, path), 0o600); err != nil {
		t.Fatal(err)
	}
	s.check()
	if after, _ := s.File(); after != before {
		t.Fatal("the same bytes were loaded again")
	}
	mustAdd(t, path, "bot", "twilio", t0)
	s.check()
	if after, _ := s.File(); after == before || len(after.Entries()) != 2 {
		t.Fatal("a change was not loaded")
	}
}
