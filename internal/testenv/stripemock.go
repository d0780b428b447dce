package testenv

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StripeMock pins the stripe-mock release whose embedded OpenAPI spec is API
// version 2023-10-16, the version stripe-go v76 sends.
const (
	StripeMockModule  = "github.com/stripe/stripe-mock"
	StripeMockVersion = "v0.183.0"
)

// StripeMockKey is a test-mode key stripe-mock accepts; it accepts any key
// that looks like sk_test_...
const StripeMockKey = "sk_test_123"

// StripeMock returns the base URL ("http://127.0.0.1:PORT") of a
// stripe-mock shared by every test of the test binary, starting it on first
// use. The server is stopped when Main returns; calling StripeMock from a
// test binary whose TestMain does not run Main fails the test, since the
// server would outlive it.
//
// When stripe-mock cannot be found or built (see the package doc for where
// it is looked for), the test is skipped with a message saying how to get
// it, or fails under CI=true. When it was found but does not start, every
// test that asks for it fails with the server's output. StripeMock is safe
// for concurrent use; concurrent first calls start one server.
func StripeMock(t testing.TB) string {
	t.Helper()
	return shared(t, "stripe-mock", startStripeMock)
}

func startStripeMock(t testing.TB) (*server, error) {
	path, how, err := findStripeMock(t)
	if err != nil {
		return nil, err
	}
	s, err := start(context.Background(), stripeMockSpec(path))
	if err != nil {
		return nil, err
	}
	t.Logf("testenv: started stripe-mock %s (pid %d, %s) at %s", path, s.pid, how, s.baseURL)
	return s, nil
}

func stripeMockSpec(path string) serverSpec {
	return serverSpec{
		name:  "stripe-mock",
		path:  path,
		addrs: 2,
		args: func(addrs []string) []string {
			// -http-addr alone would still open HTTPS on every
			// interface, so both are pinned to loopback.
			return []string{"-http-addr", addrs[0], "-https-addr", addrs[1]}
		},
		baseURL: func(addrs []string) string { return "http://" + addrs[0] },
		listening: func(addrs []string) string {
			return "Listening for HTTP at address: " + addrs[0]
		},
		probe: func(ctx context.Context, base string) error {
			return probeGET(ctx, base+"/v1/charges/ch_1", "Bearer "+StripeMockKey)
		},
		bindFailure: func(out string) bool {
			return strings.Contains(out, "address already in use")
		},
		startTimeout: 30 * time.Second,
	}
}

// probeGET returns nil when GET url answers 200.
func probeGET(ctx context.Context, url, authorization string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	// No proxy, no pooled connection kept past the probe: the probe
	// must reach the process on this port and leave nothing behind.
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, res.Status, bytes.TrimSpace(body))
	}
	return nil
}

// unavailableError is a tool that is missing where the caller may skip.
type unavailableError struct{ msg string }

func (e *unavailableError) Error() string { return e.msg }

// findStripeMock returns the binary to run and how it was found. An
// *unavailableError means nothing usable exists and nothing may be built.
func findStripeMock(t testing.TB) (path, how string, err error) {
	if !supported {
		return "", "", &unavailableError{"stripe-mock: testenv runs servers on unix only"}
	}
	if p := os.Getenv("KEYBRAKE_STRIPE_MOCK"); p != "" {
		if err := checkStripeMock(t, p); err != nil {
			return "", "", fmt.Errorf("$KEYBRAKE_STRIPE_MOCK=%s: %w", p, err)
		}
		return p, "from $KEYBRAKE_STRIPE_MOCK", nil
	}

	var passed []string // candidates found but unusable, for the message
	try := func(p string) bool {
		if p == "" {
			return false
		}
		if _, err := os.Stat(p); err != nil {
			return false
		}
		if err := checkStripeMock(t, p); err != nil {
			passed = append(passed, fmt.Sprintf("%s: %v", p, err))
			return false
		}
		return true
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil && try(p) {
		return p, "from $PATH", nil
	}
	for _, dir := range goBinDirs() {
		p := filepath.Join(dir, "stripe-mock")
		if try(p) {
			return p, "from " + dir, nil
		}
	}

	dir, err := toolsDir()
	if err != nil {
		return "", "", err
	}
	p, built, err := installedStripeMock(t, dir, installAllowed())
	if err != nil {
		return "", "", err
	}
	if p != "" {
		if built {
			return p, "built into " + dir, nil
		}
		return p, "from " + dir, nil
	}
	msg := "stripe-mock " + StripeMockVersion + " not found. Install it with\n" +
		"\tgo install " + StripeMockModule + "@" + StripeMockVersion + "\n" +
		"or set KEYBRAKE_INSTALL_TOOLS=1 to let the tests build it into " + dir +
		", or point KEYBRAKE_STRIPE_MOCK at a binary."
	if len(passed) > 0 {
		msg += "\nPassed over: " + strings.Join(passed, "; ")
	}
	return "", "", &unavailableError{msg}
}

func installAllowed() bool {
	return os.Getenv("CI") == "true" || os.Getenv("KEYBRAKE_INSTALL_TOOLS") == "1"
}

func underCI() bool { return os.Getenv("CI") == "true" }

// toolsDir is where tests keep the tools they build.
func toolsDir() (string, error) {
	if d := os.Getenv("KEYBRAKE_TOOLS_DIR"); d != "" {
		return d, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no tools directory: set KEYBRAKE_TOOLS_DIR (%w)", err)
	}
	return filepath.Join(cache, "keybrake", "tools"), nil
}

// goBinDirs are where `go install` puts binaries: GOBIN, else each
// GOPATH entry's bin. It is empty when the go command cannot be run.
func goBinDirs() []string {
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	var dirs []string
	if len(lines) > 0 && lines[0] != "" {
		dirs = append(dirs, lines[0])
	}
	if len(lines) > 1 {
		for _, p := range filepath.SplitList(lines[1]) {
			if p != "" {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
	}
	return dirs
}

// installTimeout bounds waiting for the lock and building. A cold build
// downloads stripe-mock's dependencies and takes a minute or two on two
// cores.
const installTimeout = 10 * time.Minute

// installedStripeMock returns the stripe-mock in dir, building it first if
// it is missing or the wrong version and build is true. It holds dir's lock
// throughout, so a binary another test binary is writing is never run and
// only one of them builds. path is "" when there is none and build is false.
func installedStripeMock(t testing.TB, dir string, build bool) (path string, built bool, err error) {
	p := filepath.Join(dir, "stripe-mock")
	if _, err := os.Stat(p); err != nil && !build {
		return "", false, nil // nothing there, nothing to wait for
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("tools directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "stripe-mock.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("tools directory lock: %w", err)
	}
	defer lock.Close()
	if err := lockFile(lock, installTimeout); err != nil {
		return "", false, err
	}
	defer unlockFile(lock)

	if _, err := os.Stat(p); err == nil {
		err := checkStripeMock(t, p)
		if err == nil {
			return p, false, nil
		}
		if !build {
			return "", false, fmt.Errorf("%s: %w (delete it, or set KEYBRAKE_INSTALL_TOOLS=1 to rebuild it)", p, err)
		}
	}
	if !build {
		return "", false, nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	target := StripeMockModule + "@" + StripeMockVersion
	cmd := exec.CommandContext(ctx, "go", "install", target)
	cmd.Dir = dir // outside any module or workspace of the caller
	// GOFLAGS such as -mod=vendor belong to the caller's module, not to
	// an install by version, and would make it fail.
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=", "GOWORK=off")
	t.Logf("testenv: building %s into %s", target, dir)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("go install %s: %w\n%s", target, err, out)
	}
	if err := checkStripeMock(t, p); err != nil {
		return "", false, fmt.Errorf("after go install %s: %s: %w", target, p, err)
	}
	t.Logf("testenv: built %s in %v", target, time.Since(start).Round(time.Millisecond))
	return p, true, nil
}

// errUnknownVersion is returned by stripeMockVersion for a binary that
// cannot tell its version: one built from a source checkout says "master".
var errUnknownVersion = errors.New("version unknown")

// checkStripeMock returns nil if p is an executable stripe-mock of the
// pinned version, or one that cannot tell its version (logged).
func checkStripeMock(t testing.TB, p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	v, err := stripeMockVersion(p)
	switch {
	case errors.Is(err, errUnknownVersion):
		t.Logf("testenv: %s cannot tell its version (built from source?); using it as %s", p, StripeMockVersion)
		return nil
	case err != nil:
		return err
	case v != StripeMockVersion:
		return fmt.Errorf("version %s, want %s", v, StripeMockVersion)
	}
	return nil
}

// stripeMockVersion reads the version from the Go build information that
// `go install module@version` records, else from `stripe-mock -version`,
// which prints "stripe-mock VERSION" (the release number for release
// builds, "master" for builds from source).
func stripeMockVersion(p string) (string, error) {
	if info, err := buildinfo.ReadFile(p); err == nil {
		if info.Path != StripeMockModule && info.Main.Path != StripeMockModule {
			return "", fmt.Errorf("not stripe-mock: a Go program of %s", info.Main.Path)
		}
		if v := info.Main.Version; strings.HasPrefix(v, "v") {
			return v, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "-version").Output()
	if err != nil {
		return "", fmt.Errorf("%s -version: %w", p, err)
	}
	return parseStripeMockVersion(string(out))
}

func parseStripeMockVersion(out string) (string, error) {
	line, _, _ := strings.Cut(out, "\n")
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "stripe-mock" || len(f) > 2 {
		return "", fmt.Errorf("-version printed %q, not stripe-mock's banner", line)
	}
	if len(f) == 1 || f[1] == "master" {
		return "", errUnknownVersion
	}
	v := f[1]
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	return v, nil
}
