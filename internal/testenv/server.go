package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// serverSpec says how to run one kind of server: stripe-mock today, Prism
// (npx @stoplight/prism-cli mock) for the Twilio and Resend specs later.
type serverSpec struct {
	name string // for messages: "stripe-mock"
	path string // the program
	// addrs is how many loopback addresses ("127.0.0.1:PORT") to reserve
	// and pass to args, baseURL and listening.
	addrs   int
	args    func(addrs []string) []string
	env     []string // added to the test binary's environment
	baseURL func(addrs []string) string
	// listening, when set, returns text the server prints once it holds
	// its ports. Waiting for it as well as for probe makes sure the server
	// that answers the probe is ours and not another process that took
	// the port between our pick and the server's bind.
	listening func(addrs []string) string
	// probe returns nil once the server answers as it should.
	probe func(ctx context.Context, baseURL string) error
	// bindFailure reports whether output shows the server could not bind
	// its ports, which start answers by trying fresh ports.
	bindFailure func(output string) bool
	// startTimeout bounds each attempt from exec to a passing probe.
	startTimeout time.Duration
}

// server is one running process. Its methods are safe for concurrent use.
type server struct {
	name    string
	path    string
	pid     int
	pgid    int // the pid: the server leads its own process group
	baseURL string
	out     *tailBuffer

	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// startAttempts is how many times start tries fresh ports after a bind
// failure: ports are picked by listening on :0 and closing, so another
// process can take one before the server binds it.
const startAttempts = 3

// start runs spec and waits until it is ready. On failure nothing is left
// running and the error carries the server's output.
func start(ctx context.Context, spec serverSpec) (*server, error) {
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		addrs, err := freeLoopbackAddrs(spec.addrs)
		if err != nil {
			return nil, err
		}
		s, err := startOnce(ctx, spec, addrs)
		if err == nil {
			return s, nil
		}
		lastErr = err
		var bind *bindError
		if !errors.As(err, &bind) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: gave up after %d attempts: %w", spec.name, startAttempts, lastErr)
}

// bindError is a start that failed because the ports were taken.
type bindError struct{ err error }

func (e *bindError) Error() string { return e.err.Error() }
func (e *bindError) Unwrap() error { return e.err }

func startOnce(ctx context.Context, spec serverSpec, addrs []string) (*server, error) {
	cmd := exec.Command(spec.path, spec.args(addrs)...)
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stdin = nil
	out := newTailBuffer(64 << 10)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	// The output is copied by goroutines that end when every holder of
	// the pipe has exited; the group kill in stop sees to that, and
	// WaitDelay makes sure a straggler cannot block Wait for ever.
	cmd.WaitDelay = 2 * time.Second

	s := &server{
		name:    spec.name,
		path:    spec.path,
		baseURL: spec.baseURL(addrs),
		out:     out,
		done:    make(chan struct{}),
	}
	started := make(chan error, 1)
	go func() {
		// On Linux the child is killed when the thread that started it
		// exits (Pdeathsig), not when the process does; keep this thread
		// for as long as the child runs, so that the child dies with
		// the test binary and only then.
		lockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", spec.name, spec.path, err)
	}
	s.pid = cmd.Process.Pid
	s.pgid = processGroup(s.pid)

	timeout := spec.startTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if err := s.waitReady(ctx, spec, addrs, timeout); err != nil {
		stopErr := s.stop(2 * time.Second)
		err = fmt.Errorf("%s (%s %s): %w\n--- output ---\n%s", spec.name, spec.path,
			strings.Join(spec.args(addrs), " "), err, s.out.String())
		if stopErr != nil {
			err = fmt.Errorf("%w\n(stopping it also failed: %v)", err, stopErr)
		}
		if spec.bindFailure != nil && spec.bindFailure(s.out.String()) {
			return nil, &bindError{err}
		}
		return nil, err
	}
	return s, nil
}

func (s *server) waitReady(ctx context.Context, spec serverSpec, addrs []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := ""
	if spec.listening != nil {
		want = spec.listening(addrs)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastProbe error
	for {
		select {
		case <-s.done:
			return fmt.Errorf("exited before it was ready: %v", s.waitErr)
		default:
		}
		if want == "" || strings.Contains(s.out.String(), want) {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			lastProbe = spec.probe(pctx, s.baseURL)
			pcancel()
			if lastProbe == nil {
				// The probe may have been answered by a process that
				// holds the port while ours is failing to bind it.
				select {
				case <-s.done:
					return fmt.Errorf("exited before it was ready: %v", s.waitErr)
				default:
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			if lastProbe != nil {
				return fmt.Errorf("not ready after %v: last probe: %v", timeout, lastProbe)
			}
			return fmt.Errorf("not ready after %v: never printed %q", timeout, want)
		case <-s.done:
			return fmt.Errorf("exited before it was ready: %v", s.waitErr)
		case <-tick.C:
		}
	}
}

// stop ends the server's whole process group: SIGTERM, then SIGKILL after
// grace. It is idempotent; later calls return the first result. A server
// that exited by itself with an error is reported as such.
func (s *server) stop(grace time.Duration) error {
	s.stopOnce.Do(func() { s.stopErr = s.doStop(grace) })
	return s.stopErr
}

func (s *server) doStop(grace time.Duration) error {
	select {
	case <-s.done:
		// It is gone already; whatever it left in its group goes too.
		killGroup(s.pid, s.pgid, sigKill)
		return fmt.Errorf("%s (pid %d) had exited by itself: %v\n--- output ---\n%s", s.name, s.pid, s.waitErr, s.out.String())
	default:
	}
	if err := killGroup(s.pid, s.pgid, sigTerm); err != nil {
		return fmt.Errorf("%s (pid %d): %w", s.name, s.pid, err)
	}
	select {
	case <-s.done:
		killGroup(s.pid, s.pgid, sigKill) // children that ignored SIGTERM
		return nil
	case <-time.After(grace):
	}
	if err := killGroup(s.pid, s.pgid, sigKill); err != nil {
		return fmt.Errorf("%s (pid %d): %w", s.name, s.pid, err)
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) still running after SIGKILL", s.name, s.pid)
	}
}

// freeLoopbackAddrs returns n distinct "127.0.0.1:PORT" addresses that were
// free a moment ago. All n listeners are held together so the ports differ.
func freeLoopbackAddrs(n int) ([]string, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free loopback port: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// tailBuffer keeps the last max bytes written to it. It is safe for
// concurrent use: stdout and stderr of a server write to one tailBuffer.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped bool
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.dropped = true
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped {
		return "[earlier output dropped]\n" + string(b.buf)
	}
	return string(b.buf)
}
