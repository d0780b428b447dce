package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// ChromiumEnv names the browser binary the page's tests drive (through
// chromedp), when it is not on $PATH.
const ChromiumEnv = "KEYBRAKE_CHROMIUM"

// Chromium returns the path of a headless-capable Chromium: $KEYBRAKE_CHROMIUM,
// else the first of chromium, chromium-browser, google-chrome and
// headless-shell on $PATH. When none is found the test is skipped with a
// message saying how to get one, or fails under CI=true (.ci/run installs
// Debian's chromium). A $KEYBRAKE_CHROMIUM that is not an executable fails
// the test: it was set on purpose.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(ChromiumEnv); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("testenv: %s=%s: %v", ChromiumEnv, p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (chromium, chromium-browser, google-chrome or headless-shell on $PATH, or " + ChromiumEnv +
		"): the incident page's tests drive a real browser. Install one, e.g. apt-get install chromium"
	if underCI() {
		t.Fatalf("testenv: CI=true and %s", msg)
	}
	t.Skipf("testenv: %s", msg)
	return ""
}
