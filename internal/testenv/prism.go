package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Prism pins the release of Stoplight's OpenAPI mock server the vendor
// specs were tried with (Node 20 runs it, although its package asks for a
// newer Node).
const (
	PrismPackage = "@stoplight/prism-cli"
	PrismVersion = "5.16.0"
)

// Prism returns the base URL ("http://127.0.0.1:PORT") of a Prism mock
// (npm @stoplight/prism-cli@5.16.0) serving spec, shared per spec per test
// binary, stopped by testenv.Main. Specs with the same content share one
// server, so copies made per test (TwilioSpecWithMediaURLFix) start it
// once. Prism validates each request against the spec (parameters,
// required fields, Basic or Bearer auth) and answers with the spec's
// examples.
//
// Prism is found, in order: $KEYBRAKE_PRISM, a path to the prism program
// (any problem with it is a test failure: it was set on purpose); the tools
// directory's prism/node_modules/.bin/prism ($KEYBRAKE_TOOLS_DIR, by
// default $(os.UserCacheDir)/keybrake/tools, as for stripe-mock); and,
// under CI=true or KEYBRAKE_INSTALL_TOOLS=1 only, a fresh
//
//	npm install --no-audit --no-fund --prefix <tools>/prism @stoplight/prism-cli@5.16.0
//
// under a file lock, so that of several test binaries starting together
// exactly one installs and the others wait for it. A prism whose
// --version is not 5.16.0 is passed over (or reinstalled). It needs node
// on $PATH. When Prism cannot be found or installed, the test is skipped
// with a message saying how to get it, or fails under CI=true. It is
// started as `prism mock -h 127.0.0.1 -p PORT spec` and is ready once it
// says it listens and answers HTTP on the port, whatever the status: a
// couple of seconds for Twilio's 1.8 MB spec. Prism is safe for concurrent
// use; concurrent first calls start one server.
func Prism(t testing.TB, spec string) string {
	t.Helper()
	b, err := os.ReadFile(spec)
	if err != nil {
		t.Fatalf("testenv: Prism spec: %v", err)
	}
	sum := sha256.Sum256(b)
	name := "prism " + hex.EncodeToString(sum[:8])
	return shared(t, name, func(t testing.TB) (*server, error) { return startPrism(t, spec) })
}

func startPrism(t testing.TB, spec string) (*server, error) {
	path, how, err := findPrism(t)
	if err != nil {
		return nil, err
	}
	// A copy that outlives the test that asked first (spec may be in its
	// TempDir), since every later test of the binary shares the server.
	abs, err := ownFile(spec)
	if err != nil {
		return nil, err
	}
	begun := time.Now()
	s, err := start(context.Background(), prismSpec(path, abs))
	if err != nil {
		return nil, err
	}
	t.Logf("testenv: started Prism %s (pid %d, %s) on %s at %s in %v", path, s.pid, how,
		filepath.Base(abs), s.baseURL, time.Since(begun).Round(time.Millisecond))
	return s, nil
}

func prismSpec(path, spec string) serverSpec {
	return serverSpec{
		name:  "prism",
		path:  path,
		addrs: 1,
		args: func(addrs []string) []string {
			host, port, _ := net.SplitHostPort(addrs[0])
			return []string{"mock", "-h", host, "-p", port, spec}
		},
		// Plain output: the listening line is matched as text.
		env:     []string{"NO_COLOR=1", "FORCE_COLOR=0"},
		baseURL: func(addrs []string) string { return "http://" + addrs[0] },
		listening: func(addrs []string) string {
			return "Prism is listening on http://" + addrs[0]
		},
		probe: probeAnyStatus,
		bindFailure: func(out string) bool {
			return strings.Contains(out, "EADDRINUSE") || strings.Contains(out, "address already in use")
		},
		// Prism parses and validates the whole spec before it listens.
		startTimeout: 2 * time.Minute,
	}
}

// probeAnyStatus returns nil once GET base answers HTTP at all: Prism
// answers 404 for a path the spec does not have, which is enough to know
// it is serving.
func probeAnyStatus(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	if err != nil {
		return err
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	return nil
}

// findPrism returns the prism program to run and how it was found. An
// *unavailableError means nothing usable exists and nothing may be
// installed.
func findPrism(t testing.TB) (path, how string, err error) {
	if !supported {
		return "", "", &unavailableError{"prism: testenv runs servers on unix only"}
	}
	if p := os.Getenv("KEYBRAKE_PRISM"); p != "" {
		if err := checkPrism(p); err != nil {
			return "", "", fmt.Errorf("$KEYBRAKE_PRISM=%s: %w", p, err)
		}
		return p, "from $KEYBRAKE_PRISM", nil
	}
	dir, err := toolsDir()
	if err != nil {
		return "", "", err
	}
	install := installAllowed()
	if _, err := exec.LookPath("node"); err != nil && !install {
		return "", "", &unavailableError{"prism: node is not on $PATH; Prism " + PrismVersion + " runs on Node.js (20 or later)"}
	}
	p, installed, err := installedPrism(t, dir, install)
	if err != nil {
		return "", "", err
	}
	if p != "" {
		if installed {
			return p, "installed into " + filepath.Dir(prismBin(dir)), nil
		}
		return p, "from " + dir, nil
	}
	return "", "", &unavailableError{"Prism " + PrismVersion + " not found. Install it with\n" +
		"\t" + strings.Join(npmInstallArgs(dir), " ") + "\n" +
		"or set KEYBRAKE_INSTALL_TOOLS=1 to let the tests install it, or point KEYBRAKE_PRISM at a prism program."}
}

// prismBin is where npm puts the prism program under the tools directory.
func prismBin(dir string) string {
	return filepath.Join(dir, "prism", "node_modules", ".bin", "prism")
}

func npmInstallArgs(dir string) []string {
	return []string{"npm", "install", "--no-audit", "--no-fund", "--prefix", filepath.Join(dir, "prism"), PrismPackage + "@" + PrismVersion}
}

// installedPrism returns the prism in dir, installing it first if it is
// missing or the wrong version and install is true. It holds dir's lock
// for Prism throughout, so a half-installed package is never run and only
// one test binary installs. path is "" when there is none and install is
// false.
func installedPrism(t testing.TB, dir string, install bool) (path string, installed bool, err error) {
	p := prismBin(dir)
	if _, err := os.Stat(p); err != nil && !install {
		return "", false, nil // nothing there, nothing to wait for
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("tools directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "prism.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("tools directory lock: %w", err)
	}
	defer lock.Close()
	if err := lockFile(lock, installTimeout); err != nil {
		return "", false, err
	}
	defer unlockFile(lock)

	if _, err := os.Stat(p); err == nil {
		err := checkPrism(p)
		if err == nil {
			return p, false, nil
		}
		if !install {
			return "", false, fmt.Errorf("%s: %w (delete %s, or set KEYBRAKE_INSTALL_TOOLS=1 to reinstall it)", p, err, filepath.Join(dir, "prism"))
		}
	}
	if !install {
		return "", false, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", false, fmt.Errorf("installing Prism needs npm on $PATH: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	args := npmInstallArgs(dir)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir // outside any package.json of the caller
	t.Logf("testenv: %s", strings.Join(args, " "))
	begun := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if err := checkPrism(p); err != nil {
		return "", false, fmt.Errorf("after npm install %s@%s: %s: %w", PrismPackage, PrismVersion, p, err)
	}
	t.Logf("testenv: installed %s@%s in %v", PrismPackage, PrismVersion, time.Since(begun).Round(time.Millisecond))
	return p, true, nil
}

// checkPrism returns nil if p runs and says it is Prism 5.16.0.
func checkPrism(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "--version").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return fmt.Errorf("%s --version: %w: %s", p, err, strings.TrimSpace(string(ee.Stderr)))
		}
		return fmt.Errorf("%s --version: %w", p, err)
	}
	v := strings.TrimSpace(string(out))
	if v != PrismVersion {
		return fmt.Errorf("version %q, want %s", truncateOut(v), PrismVersion)
	}
	return nil
}

func truncateOut(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
