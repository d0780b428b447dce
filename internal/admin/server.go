package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrInUse is returned, wrapped, by Serve when a server already answers on
// the socket's path.
var ErrInUse = errors.New("admin: a server already answers on the socket")

// Server is a Handler served on a unix socket by Serve. Its methods are
// safe for concurrent use; there is no useful zero value.
type Server struct {
	path   string
	placed fs.FileInfo // the socket as Serve left it, to remove only ours
	srv    *http.Server
	cancel context.CancelFunc
	served chan struct{} // closed when http.Server.Serve has returned

	mu       sync.Mutex
	closed   bool
	handlers sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Serve listens on a unix socket at path with mode 0600 and serves h on it
// until Close. A leftover socket nobody answers on is removed first; it
// refuses (ErrInUse) when a server answers on path, and refuses any path
// that exists and is not a socket, which it leaves alone. The socket is
// made in a private directory beside path and renamed into place, so that
// it never has a looser mode, whatever the umask.
//
// Requests are bounded only by their own context: a followed /audit lasts
// until the client goes or Close.
func Serve(path string, h http.Handler) (*Server, error) {
	// Clients dial path itself: it must fit a socket address, with room
	// for the terminating NUL some systems want.
	if len(path) >= len(syscall.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("admin: socket path %s is %d bytes, too long for a unix socket (at most %d): serve it elsewhere",
			path, len(path), len(syscall.RawSockaddrUnix{}.Path)-1)
	}
	if err := clearStale(path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".kb")
	if err != nil {
		return nil, fmt.Errorf("admin: making the socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	made := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", made)
	if err != nil {
		return nil, fmt.Errorf("admin: listening on %s: %w", path, err)
	}
	// The socket is renamed; the listener must not remove a path that is
	// no longer its own. Close removes path instead.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	placed, err := place(made, path)
	if err != nil {
		ln.Close()
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{path: path, placed: placed, cancel: cancel, served: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           s.track(h),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.served)
		s.srv.Serve(ln)
	}()
	return s, nil
}

// place sets the socket's mode and moves it to path.
func place(made, path string) (fs.FileInfo, error) {
	if err := os.Chmod(made, 0o600); err != nil {
		return nil, fmt.Errorf("admin: socket %s: %w", path, err)
	}
	if err := os.Rename(made, path); err != nil {
		return nil, fmt.Errorf("admin: placing the socket at %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("admin: socket %s: %w", path, err)
	}
	return fi, nil
}

// clearStale removes a socket at path that nobody answers on.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin: socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("admin: %s exists and is not a socket; not touching it (move it away, or serve elsewhere)", path)
	}
	conn, err := net.DialTimeout("unix", path, DialTimeout)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%w: %s (is another process serving this database?)", ErrInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("admin: checking the socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("admin: removing the stale socket %s: %w", path, err)
	}
	return nil
}

// track counts the handlers running, so that Close can wait for them.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			http.Error(w, "admin: server closing", http.StatusServiceUnavailable)
			return
		}
		s.handlers.Add(1)
		s.mu.Unlock()
		defer s.handlers.Done()
		h.ServeHTTP(w, r)
	})
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops serving: it ends every request in progress (a follower's
// stream ends with an error), waits for their handlers to return, and
// removes the socket if it is still the one Serve placed. Calls after the
// first return the first's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		err := s.srv.Close()
		<-s.served
		s.handlers.Wait()
		if fi, lerr := os.Lstat(s.path); lerr == nil && os.SameFile(fi, s.placed) {
			if rerr := os.Remove(s.path); rerr != nil && err == nil {
				err = rerr
			}
		}
		s.closeErr = err
	})
	return s.closeErr
}
