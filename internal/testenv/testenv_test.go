//go:build unix

package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// The test binary doubles as the servers the launcher is tested with: run
// with TESTENV_HELPER set, it becomes one of the programs below instead of
// running tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("TESTENV_HELPER"); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	Main(m)
}

func helper(mode string, args []string) int {
	switch mode {
	case "serve", "spawn":
		l, err := net.Listen("tcp", args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if mode == "spawn" {
			// A grandchild that must die with the group.
			c := exec.Command(os.Args[0])
			c.Env = append(os.Environ(), "TESTENV_HELPER=sleep")
			if err := c.Start(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Printf("child %d\n", c.Process.Pid)
		}
		fmt.Printf("listening on %s\n", l.Addr())
		http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}))
		return 0
	case "sleep", "silent":
		time.Sleep(time.Minute)
		return 0
	case "exit":
		fmt.Fprintln(os.Stderr, "helper: cannot start: no config")
		return 3
	case "bindfail":
		fmt.Fprintf(os.Stderr, "listen tcp %s: bind: address already in use\n", args[0])
		return 1
	case "orphan":
		// Start a server and exit without stopping it, as a test binary
		// killed by -timeout would.
		s, err := start(context.Background(), helperSpec("serve"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("server %d\n", s.pid)
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

func helperSpec(mode string) serverSpec {
	return serverSpec{
		name:    "helper-" + mode,
		path:    os.Args[0],
		addrs:   1,
		args:    func(a []string) []string { return a },
		env:     []string{"TESTENV_HELPER=" + mode},
		baseURL: func(a []string) string { return "http://" + a[0] },
		listening: func(a []string) string {
			return "listening on " + a[0]
		},
		probe: func(ctx context.Context, base string) error {
			return probeGET(ctx, base+"/ready", "")
		},
		bindFailure: func(out string) bool {
			return strings.Contains(out, "address already in use")
		},
		startTimeout: 10 * time.Second,
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// waitGone waits until pid no longer exists. A killed child of ours stays a
// zombie until reaped, so this is only for processes we do not wait for.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if isZombie(pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may hold spaces, so read after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestServerStartStop(t *testing.T) {
	s, err := start(context.Background(), helperSpec("serve"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.baseURL, "http://127.0.0.1:") {
		t.Fatalf("baseURL %q is not loopback", s.baseURL)
	}
	if err := probeGET(context.Background(), s.baseURL+"/x", ""); err != nil {
		t.Fatalf("server not answering: %v", err)
	}
	if err := s.stop(5 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("stop returned before the process exited")
	}
	if err := probeGET(context.Background(), s.baseURL+"/x", ""); err == nil {
		t.Fatal("server still answering after stop")
	}
	if err := s.stop(5 * time.Second); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

func TestServerStopKillsGroup(t *testing.T) {
	s, err := start(context.Background(), helperSpec("spawn"))
	if err != nil {
		t.Fatal(err)
	}
	child := childPID(t, s.out.String())
	if !alive(child) {
		t.Fatalf("grandchild %d not running before stop", child)
	}
	if s.pgid != s.pid {
		t.Fatalf("server pgid %d, want its own group %d", s.pgid, s.pid)
	}
	if err := s.stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitGone(t, child)
}

func childPID(t *testing.T, out string) int {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "child "); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("no child pid in output %q", out)
	return 0
}

func TestServerStartFailures(t *testing.T) {
	tests := []struct {
		mode    string
		timeout time.Duration
		want    []string // all in the error
	}{
		{"exit", 0, []string{"exited before it was ready", "helper: cannot start: no config", "exit status 3"}},
		{"silent", 500 * time.Millisecond, []string{"not ready after 500ms", "never printed", "listening on 127.0.0.1:"}},
		{"bindfail", 0, []string{fmt.Sprintf("gave up after %d attempts", startAttempts), "address already in use"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			spec := helperSpec(tt.mode)
			if tt.timeout > 0 {
				spec.startTimeout = tt.timeout
			}
			var attempts atomic.Int32
			args := spec.args
			spec.args = func(a []string) []string { attempts.Add(1); return args(a) }
			s, err := start(context.Background(), spec)
			if err == nil {
				s.stop(time.Second)
				t.Fatal("start succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			// args is called once to run the program and once more to
			// describe it in the error.
			wantAttempts := int32(2)
			if tt.mode == "bindfail" {
				wantAttempts = 2 * startAttempts
			}
			if got := attempts.Load(); got != wantAttempts {
				t.Errorf("args called %d times, want %d", got, wantAttempts)
			}
		})
	}
}

func TestFreeLoopbackAddrs(t *testing.T) {
	addrs, err := freeLoopbackAddrs(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("%q is not loopback", a)
		}
		if seen[a] {
			t.Errorf("%q returned twice", a)
		}
		seen[a] = true
	}
	if len(addrs) != 3 {
		t.Fatalf("got %d addresses", len(addrs))
	}
}

func TestTailBuffer(t *testing.T) {
	b := newTailBuffer(8)
	io.WriteString(b, "abc")
	if got := b.String(); got != "abc" {
		t.Fatalf("got %q", got)
	}
	io.WriteString(b, "defghij")
	if got, want := b.String(), "[earlier output dropped]\ncdefghij"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParseStripeMockVersion(t *testing.T) {
	tests := []struct {
		out     string
		want    string
		unknown bool
		bad     bool
	}{
		{out: "stripe-mock 0.183.0\n", want: "v0.183.0"},
		{out: "stripe-mock v0.183.0\n", want: "v0.183.0"},
		{out: "stripe-mock 0.182.1\nRouting to...", want: "v0.182.1"},
		{out: "stripe-mock master\n", unknown: true},
		{out: "stripe-mock \n", unknown: true},
		{out: "Usage of x:\n", bad: true},
		{out: "", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.out, func(t *testing.T) {
			got, err := parseStripeMockVersion(tt.out)
			switch {
			case tt.unknown:
				if !errors.Is(err, errUnknownVersion) {
					t.Fatalf("got %q, %v; want errUnknownVersion", got, err)
				}
			case tt.bad:
				if err == nil || errors.Is(err, errUnknownVersion) {
					t.Fatalf("got %q, %v; want a parse error", got, err)
				}
			default:
				if err != nil || got != tt.want {
					t.Fatalf("got %q, %v; want %q", got, err, tt.want)
				}
			}
		})
	}
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestCheckStripeMock(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeScript(t, good, `echo "stripe-mock 0.183.0"`+"\n")
	old := filepath.Join(dir, "old")
	writeScript(t, old, `echo "stripe-mock 0.150.0"`+"\n")
	master := filepath.Join(dir, "master")
	writeScript(t, master, `echo "stripe-mock master"`+"\n")
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("x"), 0o644)

	tests := []struct {
		path string
		want string // "" for success, else a substring of the error
	}{
		{good, ""},
		{master, ""},
		{old, "version v0.150.0, want v0.183.0"},
		{noexec, "not an executable"},
		{filepath.Join(dir, "missing"), "no such file"},
		// The test binary is a Go program of another module.
		{os.Args[0], "not stripe-mock"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			err := checkStripeMock(t, tt.path)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// origPATH is the PATH the tests started with, before isolate emptied it.
var origPATH = os.Getenv("PATH")

// isolate points every place findStripeMock looks at empty directories and
// returns the tools directory.
func isolate(t *testing.T) string {
	t.Helper()
	tools := t.TempDir()
	t.Setenv("PATH", t.TempDir())
	t.Setenv("KEYBRAKE_STRIPE_MOCK", "")
	t.Setenv("KEYBRAKE_TOOLS_DIR", tools)
	t.Setenv("KEYBRAKE_INSTALL_TOOLS", "")
	t.Setenv("CI", "")
	return tools
}

func TestFindStripeMockUnavailable(t *testing.T) {
	tools := isolate(t)
	_, _, err := findStripeMock(t)
	var u *unavailableError
	if !errors.As(err, &u) {
		t.Fatalf("got %v, want unavailable", err)
	}
	for _, w := range []string{"go install github.com/stripe/stripe-mock@v0.183.0", "KEYBRAKE_INSTALL_TOOLS=1", tools} {
		if !strings.Contains(u.msg, w) {
			t.Errorf("message lacks %q:\n%s", w, u.msg)
		}
	}
}

func TestFindStripeMockExplicitIsNeverSkipped(t *testing.T) {
	isolate(t)
	t.Setenv("KEYBRAKE_STRIPE_MOCK", filepath.Join(t.TempDir(), "nothing-here"))
	_, _, err := findStripeMock(t)
	var u *unavailableError
	if err == nil || errors.As(err, &u) {
		t.Fatalf("got %v, want a hard error", err)
	}
	if !strings.Contains(err.Error(), "KEYBRAKE_STRIPE_MOCK") {
		t.Fatalf("error does not name the variable: %v", err)
	}
}

func TestFindStripeMockPassesOverWrongVersion(t *testing.T) {
	tools := isolate(t)
	bin := os.Getenv("PATH")
	writeScript(t, filepath.Join(bin, "stripe-mock"), `echo "stripe-mock 0.150.0"`+"\n")
	_, _, err := findStripeMock(t)
	var u *unavailableError
	if !errors.As(err, &u) || !strings.Contains(u.msg, "version v0.150.0") {
		t.Fatalf("got %v, want unavailable naming the passed-over binary", err)
	}

	// One of the right version in the tools directory is used.
	writeScript(t, filepath.Join(tools, "stripe-mock"), `echo "stripe-mock 0.183.0"`+"\n")
	p, how, err := findStripeMock(t)
	if err != nil || p != filepath.Join(tools, "stripe-mock") {
		t.Fatalf("got %q (%s), %v", p, how, err)
	}
}

// fakeGo puts a `go` on PATH whose install writes a stripe-mock reporting
// version into $GOBIN after a pause, and counts its runs in a file.
func fakeGo(t *testing.T, version string) (runs func() int) {
	t.Helper()
	bin := os.Getenv("PATH")
	count := filepath.Join(t.TempDir(), "runs")
	writeScript(t, filepath.Join(bin, "go"), fmt.Sprintf(`
PATH=%q
[ "$1" = install ] || exit 1
[ "$2" = %q ] || { echo "bad target $2" >&2; exit 1; }
[ -z "$GOFLAGS" ] || { echo "GOFLAGS leaked: $GOFLAGS" >&2; exit 1; }
echo run >> %q
sleep 0.3
printf '#!/bin/sh\necho "stripe-mock %s"\n' > "$GOBIN/stripe-mock.tmp"
chmod +x "$GOBIN/stripe-mock.tmp"
mv "$GOBIN/stripe-mock.tmp" "$GOBIN/stripe-mock"
`, origPATH, StripeMockModule+"@"+StripeMockVersion, count, version))
	return func() int {
		b, err := os.ReadFile(count)
		if errors.Is(err, os.ErrNotExist) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "run")
	}
}

func TestInstallOnlyWhenAllowed(t *testing.T) {
	isolate(t)
	runs := fakeGo(t, "0.183.0")
	if _, _, err := findStripeMock(t); err == nil {
		t.Fatal("found a stripe-mock before any was built")
	}
	if runs() != 0 {
		t.Fatal("built without KEYBRAKE_INSTALL_TOOLS or CI")
	}
	t.Setenv("CI", "true")
	p, how, err := findStripeMock(t)
	if err != nil {
		t.Fatal(err)
	}
	if runs() != 1 || !strings.HasPrefix(how, "built into") {
		t.Fatalf("runs=%d how=%q path=%q", runs(), how, p)
	}
	// Built once, reused after.
	if _, how, err := findStripeMock(t); err != nil || strings.HasPrefix(how, "built") || runs() != 1 {
		t.Fatalf("second find: how=%q err=%v runs=%d", how, err, runs())
	}
}

func TestInstallBuildsOnceUnderConcurrency(t *testing.T) {
	tools := isolate(t)
	runs := fakeGo(t, "0.183.0")
	// flock locks belong to open file descriptions, so two opens of the
	// lock file in one process exclude each other as two processes would.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _, errs[i] = installedStripeMock(t, tools, true)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := runs(); got != 1 {
		t.Fatalf("go install ran %d times, want 1", got)
	}
}

func TestInstallReplacesWrongVersion(t *testing.T) {
	tools := isolate(t)
	writeScript(t, filepath.Join(tools, "stripe-mock"), `echo "stripe-mock 0.150.0"`+"\n")
	if _, _, err := installedStripeMock(t, tools, false); err == nil || !strings.Contains(err.Error(), "v0.150.0") {
		t.Fatalf("got %v, want the wrong version reported", err)
	}
	runs := fakeGo(t, "0.183.0")
	if _, _, err := installedStripeMock(t, tools, true); err != nil {
		t.Fatal(err)
	}
	if runs() != 1 {
		t.Fatalf("runs = %d", runs())
	}
	// A build that yields the wrong version is an error, not a success.
	os.Remove(filepath.Join(tools, "stripe-mock"))
	fakeGo(t, "0.150.0")
	if _, _, err := installedStripeMock(t, tools, true); err == nil || !strings.Contains(err.Error(), "after go install") {
		t.Fatalf("got %v", err)
	}
}

func TestStripeMock(t *testing.T) {
	base := StripeMock(t)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("base URL %q is not loopback", base)
	}
	if again := StripeMock(t); again != base {
		t.Fatalf("second call started another server: %q then %q", base, again)
	}

	sc := client.New(StripeMockKey, StripeBackends(base, nil, 0))
	ch, err := sc.Charges.Get("ch_1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ch.ID == "" || ch.Object != "charge" {
		t.Fatalf("unexpected charge %+v", ch)
	}

	// stripe-mock validates parameters against the 2023-10-16 spec.
	_, err = sc.Refunds.New(&stripe.RefundParams{Charge: stripe.String("ch_1"), Amount: stripe.Int64(100)})
	if err != nil {
		t.Fatalf("refund: %v", err)
	}
	params := &stripe.RefundParams{Charge: stripe.String("ch_1")}
	params.AddExtra("no_such_param", "1")
	_, err = sc.Refunds.New(params)
	var se *stripe.Error
	if !errors.As(err, &se) || se.HTTPStatusCode != http.StatusBadRequest {
		t.Fatalf("unknown parameter: got %v, want a 400 *stripe.Error", err)
	}
}
