package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keybrake/keybrake/internal/watch"
)

// ErrInvalid is wrapped by (*Set).Err while the keys file on disk cannot be
// used (it does not parse, is open to other users, or is gone): every key
// is refused until a valid file appears.
var ErrInvalid = errors.New("keys: the keys file is invalid; every key is refused")

// SetOptions configures OpenSet. The zero value watches the file with
// file events and a 250 ms poll.
type SetOptions struct {
	// Poll is how often the file is re-read and hashed whatever the file
	// events say: the backstop for file systems without inotify (NFS,
	// SMB, FUSE) and for lost events. Zero means 250 ms; negative turns
	// the poll off.
	Poll time.Duration
	// NoEvents turns inotify (fsnotify) off; the poll alone then notices
	// changes.
	NoEvents bool
	// Report receives each reload that left the Set refusing every key,
	// and watcher failures (the watcher recovers by itself). It is called
	// from the watcher's goroutine, never concurrently with itself, and
	// must not block. nil drops them.
	Report func(error)
}

// settleInvalid is how long bytes that do not parse are given to finish
// being written before they are declared invalid, as for the policy (see
// reload.go in the root): an in-place write shows an empty or half-written
// file first, and an empty one can last while a busy writer is
// descheduled. The version in force meanwhile is the last valid one.
const (
	settleInvalid = 60 * time.Millisecond
	settleEmpty   = time.Second
)

// Set is the keys file as a running proxy sees it: loaded once, then
// watched, each valid new version swapped in with one atomic store, so a
// lookup sees one version or the next, never a mix. A revocation written
// by another process is in force within the poll (or at once, with file
// events). While the file on disk is invalid, every key is refused and Err
// says why.
//
// A Set is safe for concurrent use. Its zero value is not usable (it
// refuses every key); OpenSet returns one. Close it to stop watching.
type Set struct {
	path    string
	current atomic.Pointer[setState]
	watcher *watch.Watcher
	report  func(error)
	closing sync.Once

	// mu serialises check, which the watcher calls and OpenSet calls once.
	mu        sync.Mutex
	seen      string // fingerprint of what was last read, valid or not
	failing   string // fingerprint of bytes being given time to settle
	failSince time.Time
}

// setState is what lookups are decided by: a valid file, or why none is.
type setState struct {
	file *File
	err  error
}

var errNotOpened = fmt.Errorf("%w: the Set was not opened with OpenSet", ErrClosed)

// OpenSet loads the keys file at path, as Load does (an invalid file is an
// error, not a state), and starts watching it.
func OpenSet(path string, opts SetOptions) (*Set, error) {
	data, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	f, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	s := &Set{path: path, report: opts.Report, seen: fingerprint(data)}
	if s.report == nil {
		s.report = func(error) {}
	}
	s.current.Store(&setState{file: f})
	s.watcher, err = watch.Start(watch.Config{
		Files:    []string{path},
		Poll:     opts.Poll,
		NoEvents: opts.NoEvents,
		Check:    s.check,
		Report:   opts.Report,
	})
	if err != nil {
		return nil, fmt.Errorf("keys: watching %s: %w", path, err)
	}
	// A change between the load and the watch being in place has no event
	// of its own.
	s.check()
	return s, nil
}

// Lookup finds the entry holding token in the version in force, as
// (*File).Lookup does; while no valid version is in force (see Err), every
// token is Unavailable.
func (s *Set) Lookup(token string) (Entry, Result) {
	st := s.current.Load()
	if st == nil || st.err != nil {
		return Entry{}, Unavailable
	}
	return st.file.Lookup(token)
}

// File returns the version in force, or, while there is none, the error
// Err returns.
func (s *Set) File() (*File, error) {
	st := s.current.Load()
	if st == nil {
		return nil, errNotOpened
	}
	return st.file, st.err
}

// Err is nil while a valid version is in force. Otherwise it says why
// every key is refused: an error wrapping ErrInvalid and the cause (a
// *ParseError, ErrNotPrivate, an *fs.PathError), or ErrClosed.
func (s *Set) Err() error {
	_, err := s.File()
	return err
}

// Close stops watching, waiting for a reload in progress. From then on
// every key is refused, since revocations would no longer be seen. Close
// may be called more than once.
func (s *Set) Close() error {
	if s.watcher == nil {
		return nil
	}
	s.closing.Do(func() {
		s.watcher.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.current.Store(&setState{err: ErrClosed})
	})
	return nil
}

func fingerprint(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// check is the watcher's callback: it reads the file and puts what it
// finds in force. It returns how soon to look again when the file seems to
// be in the middle of a write.
func (s *Set) check() (again time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.current.Load(); errors.Is(st.err, ErrClosed) {
		return 0
	}
	data, err := watch.ReadStable(s.path, readPrivate)
	if errors.Is(err, watch.ErrUnstable) {
		return 5 * time.Millisecond
	}
	if err != nil {
		// Gone, unreadable or open to others: no settling, refuse now.
		if fp := "error: " + err.Error(); fp != s.seen {
			s.seen, s.failing = fp, ""
			s.refuse(err)
		}
		return 0
	}
	fp := fingerprint(data)
	if fp == s.seen {
		return 0
	}
	f, err := parse(s.path, data)
	if err != nil {
		now := time.Now()
		if s.failing != fp {
			s.failing, s.failSince = fp, now
		}
		settle := settleInvalid
		if len(data) == 0 {
			settle = settleEmpty
		}
		if now.Sub(s.failSince) < settle {
			return 10 * time.Millisecond
		}
		s.seen, s.failing = fp, ""
		s.refuse(err)
		return 0
	}
	s.seen, s.failing = fp, ""
	s.current.Store(&setState{file: f})
	return 0
}

func (s *Set) refuse(cause error) {
	err := fmt.Errorf("%w: %w", ErrInvalid, cause)
	s.current.Store(&setState{err: err})
	s.report(err)
}
