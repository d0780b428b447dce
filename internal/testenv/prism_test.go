//go:build unix

package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"
)

const (
	prismAccount = "AC0123456789abcdef0123456789abcdef"
	prismToken   = "0123456789abcdef0123456789abcdef"
)

// toMock sends every request to base instead of the host twilio-go
// hard-codes, as a test wiring twilio-go to a mock must.
type toMock struct {
	base *url.URL
	mu   sync.Mutex
	seen []string
}

func (m *toMock) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host, r.Host = m.base.Scheme, m.base.Host, ""
	m.mu.Lock()
	m.seen = append(m.seen, req.Method+" "+req.URL.Host+req.URL.Path)
	m.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func twilioOn(t *testing.T, base string) (*twilio.RestClient, *toMock) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	m := &toMock{base: u}
	c := &client.Client{Credentials: client.NewCredentials(prismAccount, prismToken), HTTPClient: &http.Client{Transport: m}}
	c.SetAccountSid(prismAccount)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c}), m
}

func TestPrismTwilio(t *testing.T) {
	spec := TwilioSpecWithMediaURLFix(t)
	begun := time.Now()
	base := Prism(t, spec)
	t.Logf("Prism on the Twilio spec answered after %v", time.Since(begun).Round(time.Millisecond))
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("base URL %q is not loopback", base)
	}
	// Another copy of the same spec shares the server.
	if again := Prism(t, TwilioSpecWithMediaURLFix(t)); again != base {
		t.Fatalf("a copy of the same spec started another server: %q then %q", base, again)
	}

	tw, m := twilioOn(t, base)
	p := &api.CreateMessageParams{}
	p.SetTo("+15558675310").SetFrom("+15005550006").SetBody("Hello from Keybrake's tests").
		SetMediaUrl([]string{"https://example.com/a.png", "https://example.com/b.png"})
	res, err := tw.Api.CreateMessageWithMetadata(p)
	if err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("status %d, want 201", res.StatusCode)
	}
	msg := res.GetResource()
	if msg.Sid == nil || !strings.HasPrefix(*msg.Sid, "SM") || msg.Price != nil || msg.Status == nil || *msg.Status != "queued" {
		t.Fatalf("unexpected message %+v", msg)
	}
	if want := "POST api.twilio.com/2010-04-01/Accounts/" + prismAccount + "/Messages.json"; len(m.seen) != 1 || m.seen[0] != want {
		t.Fatalf("requests %v, want [%s]", m.seen, want)
	}

	// The fix covers the call event lists too.
	cp := &api.CreateCallParams{}
	cp.SetTo("+15558675310").SetFrom("+15005550006").SetUrl("https://example.com/twiml").SetTimeLimit(60).
		SetStatusCallbackEvent([]string{"initiated", "completed"})
	call, err := tw.Api.CreateCallWithMetadata(cp)
	if err != nil {
		t.Fatalf("CreateCall: %v", err)
	}
	if call.StatusCode != http.StatusCreated {
		t.Fatalf("status %d, want 201", call.StatusCode)
	}

	// Prism validates: a message without To is refused.
	_, err = tw.Api.CreateMessage(&api.CreateMessageParams{Body: p.Body})
	var te *client.TwilioRestError
	if !errors.As(err, &te) || te.Status != http.StatusUnprocessableEntity {
		t.Fatalf("message without To: %v, want a 422", err)
	}
}

// TestPrismNeedsMediaURLFix shows the fix is needed: on the spec as
// published, Prism refuses the repeated MediaUrl twilio-go sends.
func TestPrismNeedsMediaURLFix(t *testing.T) {
	base := Prism(t, Spec(t, TwilioSpec))
	tw, _ := twilioOn(t, base)
	p := &api.CreateMessageParams{}
	p.SetTo("+15558675310").SetFrom("+15005550006").SetBody("Hello").
		SetMediaUrl([]string{"https://example.com/a.png", "https://example.com/b.png"})
	_, err := tw.Api.CreateMessage(p)
	var te *client.TwilioRestError
	if !errors.As(err, &te) || te.Status != http.StatusUnprocessableEntity {
		t.Fatalf("got %v, want Prism's 422 for MediaUrl", err)
	}
}

func TestFixFormArrays(t *testing.T) {
	doc := `{"openapi":"3.0.1","paths":{
	  "/m":{"post":{"requestBody":{"content":{"application/x-www-form-urlencoded":{"schema":{"properties":{
	    "MediaUrl":{"type":"array","items":{"type":"string"}},
	    "Body":{"type":"string"},
	    "Tags":{"type":"array"}}},
	    "encoding":{"Tags":{"style":"spaceDelimited"}}}}}}},
	  "/j":{"post":{"requestBody":{"content":{"application/json":{"schema":{"properties":{"List":{"type":"array"}}}}}}}},
	  "/g":{"get":{"parameters":[]}}},
	  "x-example":{"price":-0.00790,"big":12345678901234567890,"html":"<a&b>"}}`
	out, n, err := fixFormArrays([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("declared %d encodings, want 1 (MediaUrl)", n)
	}
	var got struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Encoding map[string]map[string]any `json:"encoding"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	enc := got.Paths["/m"]["post"].RequestBody.Content["application/x-www-form-urlencoded"].Encoding
	if enc["MediaUrl"]["style"] != "form" || enc["MediaUrl"]["explode"] != true {
		t.Errorf("MediaUrl encoding %v", enc["MediaUrl"])
	}
	if enc["Tags"]["style"] != "spaceDelimited" || len(enc) != 2 {
		t.Errorf("declared encodings changed: %v", enc)
	}
	if e := got.Paths["/j"]["post"].RequestBody.Content["application/json"].Encoding; e != nil {
		t.Errorf("JSON body got an encoding: %v", e)
	}
	for _, keep := range []string{`-0.00790`, `12345678901234567890`, `"<a&b>"`} {
		if !bytes.Contains(out, []byte(keep)) {
			t.Errorf("%s was not kept as written: %s", keep, out)
		}
	}
	if _, _, err := fixFormArrays([]byte(`{"openapi":"3.0.1"}`)); err == nil {
		t.Error("a document without paths was accepted")
	}
}

func TestFixFormArraysOnTwilioSpec(t *testing.T) {
	p := TwilioSpecWithMediaURLFix(t)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) != 121 {
		t.Fatalf("%d paths, want 121", len(doc.Paths))
	}
	var op struct {
		RequestBody struct {
			Content map[string]struct {
				Encoding map[string]map[string]any `json:"encoding"`
			} `json:"content"`
		} `json:"requestBody"`
	}
	if err := json.Unmarshal(doc.Paths["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"], &op); err != nil {
		t.Fatal(err)
	}
	enc := op.RequestBody.Content["application/x-www-form-urlencoded"].Encoding["MediaUrl"]
	if enc["style"] != "form" || enc["explode"] != true {
		t.Fatalf("MediaUrl encoding %v", enc)
	}
}

// isolatePrism points every place findPrism and findSpec look at empty
// directories, with a fake node on PATH, and returns the tools directory.
func isolatePrism(t *testing.T) string {
	t.Helper()
	tools := isolate(t)
	t.Setenv("KEYBRAKE_PRISM", "")
	t.Setenv("KEYBRAKE_SPECS_DIR", "")
	writeScript(t, filepath.Join(os.Getenv("PATH"), "node"), "exit 0\n")
	return tools
}

func TestFindPrismUnavailable(t *testing.T) {
	tools := isolatePrism(t)
	_, _, err := findPrism(t)
	var u *unavailableError
	if !errors.As(err, &u) {
		t.Fatalf("got %v, want unavailable", err)
	}
	for _, w := range []string{"npm install --no-audit --no-fund --prefix " + filepath.Join(tools, "prism") + " @stoplight/prism-cli@5.16.0",
		"KEYBRAKE_INSTALL_TOOLS=1", "KEYBRAKE_PRISM"} {
		if !strings.Contains(u.msg, w) {
			t.Errorf("message lacks %q:\n%s", w, u.msg)
		}
	}

	// Without node, nothing could run it.
	os.Remove(filepath.Join(os.Getenv("PATH"), "node"))
	if _, _, err := findPrism(t); !errors.As(err, &u) || !strings.Contains(u.msg, "node") {
		t.Fatalf("got %v, want unavailable for want of node", err)
	}
}

func TestFindPrismExplicit(t *testing.T) {
	isolatePrism(t)
	dir := t.TempDir()
	t.Setenv("KEYBRAKE_PRISM", filepath.Join(dir, "nothing-here"))
	_, _, err := findPrism(t)
	var u *unavailableError
	if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), "KEYBRAKE_PRISM") {
		t.Fatalf("got %v, want a hard error naming the variable", err)
	}
	old := filepath.Join(dir, "old")
	writeScript(t, old, "echo 4.10.0\n")
	t.Setenv("KEYBRAKE_PRISM", old)
	if _, _, err := findPrism(t); err == nil || !strings.Contains(err.Error(), `version "4.10.0"`) {
		t.Fatalf("got %v, want the wrong version reported", err)
	}
	good := filepath.Join(dir, "good")
	writeScript(t, good, "echo 5.16.0\n")
	t.Setenv("KEYBRAKE_PRISM", good)
	if p, how, err := findPrism(t); err != nil || p != good || how != "from $KEYBRAKE_PRISM" {
		t.Fatalf("got %q (%s), %v", p, how, err)
	}
}

// fakeNpm puts an npm on PATH that counts its runs in a file and, after a
// pause: for install, writes a prism reporting version under the prefix;
// for pack, writes a package tarball holding member with content.
func fakeNpm(t *testing.T, version, member, content string) (runs func() int) {
	t.Helper()
	bin := os.Getenv("PATH")
	count := filepath.Join(t.TempDir(), "runs")
	tgz := filepath.Join(t.TempDir(), "pkg.tgz")
	writeTgz(t, tgz, map[string]string{member: content, "package/package.json": "{}"})
	writeScript(t, filepath.Join(bin, "npm"), fmt.Sprintf(`
PATH=%q
echo "$@" >> %q
sleep 0.3
case "$1" in
install)
	[ "$2 $3" = "--no-audit --no-fund" ] && [ "$4" = --prefix ] && [ "$6" = "@stoplight/prism-cli@5.16.0" ] || { echo "bad args $*" >&2; exit 1; }
	mkdir -p "$5/node_modules/.bin"
	printf '#!/bin/sh\necho %s\n' > "$5/node_modules/.bin/prism.tmp"
	chmod +x "$5/node_modules/.bin/prism.tmp"
	mv "$5/node_modules/.bin/prism.tmp" "$5/node_modules/.bin/prism"
	;;
pack)
	[ "$2" = --silent ] && [ "$3" = --pack-destination ] || { echo "bad args $*" >&2; exit 1; }
	cp %q "$4/fake-pkg-1.0.0.tgz"
	echo fake-pkg-1.0.0.tgz
	;;
*) exit 1 ;;
esac
`, origPATH, count, version, tgz))
	return func() int {
		b, err := os.ReadFile(count)
		if errors.Is(err, os.ErrNotExist) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "\n")
	}
}

func writeTgz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	tw.Close()
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPrismInstallOnlyWhenAllowed(t *testing.T) {
	tools := isolatePrism(t)
	runs := fakeNpm(t, "5.16.0", "package/x.json", "{}")
	if _, _, err := findPrism(t); err == nil {
		t.Fatal("found a prism before any was installed")
	}
	if runs() != 0 {
		t.Fatal("installed without KEYBRAKE_INSTALL_TOOLS or CI")
	}
	t.Setenv("KEYBRAKE_INSTALL_TOOLS", "1")
	p, how, err := findPrism(t)
	if err != nil {
		t.Fatal(err)
	}
	if runs() != 1 || p != prismBin(tools) || !strings.HasPrefix(how, "installed into") {
		t.Fatalf("runs=%d how=%q path=%q", runs(), how, p)
	}
	// Installed once, found after, even without permission to install.
	t.Setenv("KEYBRAKE_INSTALL_TOOLS", "")
	if _, how, err := findPrism(t); err != nil || how != "from "+tools || runs() != 1 {
		t.Fatalf("second find: how=%q err=%v runs=%d", how, err, runs())
	}
}

func TestPrismInstallsOnceUnderConcurrency(t *testing.T) {
	tools := isolatePrism(t)
	runs := fakeNpm(t, "5.16.0", "package/x.json", "{}")
	// flock locks belong to open file descriptions, so two opens of the
	// lock file in one process exclude each other as two processes would.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _, errs[i] = installedPrism(t, tools, true)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := runs(); got != 1 {
		t.Fatalf("npm install ran %d times, want 1", got)
	}
}

func TestPrismReinstallsWrongVersion(t *testing.T) {
	tools := isolatePrism(t)
	if err := os.MkdirAll(filepath.Dir(prismBin(tools)), 0o755); err != nil {
		t.Fatal(err)
	}
	writeScript(t, prismBin(tools), "echo 4.10.0\n")
	if _, _, err := installedPrism(t, tools, false); err == nil || !strings.Contains(err.Error(), "4.10.0") {
		t.Fatalf("got %v, want the wrong version reported", err)
	}
	runs := fakeNpm(t, "5.16.0", "package/x.json", "{}")
	if _, _, err := installedPrism(t, tools, true); err != nil || runs() != 1 {
		t.Fatalf("reinstall: %v, runs %d", err, runs())
	}
	// An install that yields the wrong version is an error, not a success.
	os.Remove(prismBin(tools))
	fakeNpm(t, "5.15.0", "package/x.json", "{}")
	if _, _, err := installedPrism(t, tools, true); err == nil || !strings.Contains(err.Error(), "after npm install") {
		t.Fatalf("got %v", err)
	}
}

func TestFindSpec(t *testing.T) {
	t.Run("KEYBRAKE_SPECS_DIR", func(t *testing.T) {
		isolatePrism(t)
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "twilio"), 0o755)
		os.WriteFile(filepath.Join(dir, "twilio", "x.json"), []byte("{}"), 0o644)
		t.Setenv("KEYBRAKE_SPECS_DIR", dir)
		if p, err := findSpec(t, "twilio/x.json"); err != nil || p != filepath.Join(dir, "twilio", "x.json") {
			t.Fatalf("got %q, %v", p, err)
		}
		// Set on purpose: a missing file is an error, not a skip.
		_, err := findSpec(t, "twilio/missing.json")
		var u *unavailableError
		if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), "KEYBRAKE_SPECS_DIR") {
			t.Fatalf("got %v, want a hard error", err)
		}
	})
	t.Run("not relative", func(t *testing.T) {
		for _, rel := range []string{"/etc/passwd", "../x.json", ""} {
			if _, err := findSpec(t, rel); err == nil {
				t.Errorf("%q accepted", rel)
			}
		}
	})
	t.Run("missing", func(t *testing.T) {
		isolatePrism(t)
		chdir(t, emptyModule(t))
		_, err := findSpec(t, "acme/none.json")
		var u *unavailableError
		if !errors.As(err, &u) || !strings.Contains(u.msg, "KEYBRAKE_SPECS_DIR") || strings.Contains(u.msg, "npm") {
			t.Fatalf("got %v", err)
		}
		// The Twilio spec has an npm source, fetched only when allowed.
		runs := fakeNpm(t, "5.16.0", twilioNPMSpec.member, `{"not":"the spec"}`)
		_, err = findSpec(t, TwilioSpec)
		if !errors.As(err, &u) || !strings.Contains(u.msg, "@twilio-alpha/mcp@0.7.0") || runs() != 0 {
			t.Fatalf("got %v, runs %d", err, runs())
		}
		t.Setenv("CI", "true")
		_, err = findSpec(t, TwilioSpec)
		if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), "SHA-256") || runs() != 1 {
			t.Fatalf("got %v, runs %d; want the fake package refused by its hash", err, runs())
		}
	})
	t.Run("walks up to shared/specs", func(t *testing.T) {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		isolatePrism(t)
		// A fake layout: <tmp>/shared/specs/acme/api.json beside <tmp>/repo/go.mod.
		top := t.TempDir()
		mod := filepath.Join(top, "repo", "internal", "pkg")
		os.MkdirAll(mod, 0o755)
		os.WriteFile(filepath.Join(top, "repo", "go.mod"), []byte("module x\n"), 0o644)
		os.MkdirAll(filepath.Join(top, "shared", "specs", "acme"), 0o755)
		os.WriteFile(filepath.Join(top, "shared", "specs", "acme", "api.json"), []byte("{}"), 0o644)
		chdir(t, mod)
		p, err := findSpec(t, "acme/api.json")
		if err != nil || p != filepath.Join(top, "shared", "specs", "acme", "api.json") {
			t.Fatalf("got %q, %v (module root was %s)", p, err, root)
		}
	})
}

func TestNPMSpec(t *testing.T) {
	content := `{"openapi":"3.0.1","paths":{}}`
	sum := sha256.Sum256([]byte(content))
	src := npmSource{pkg: "fake-pkg@1.0.0", member: "package/spec/api.json", sha256: hex.EncodeToString(sum[:]), dest: "specs/fake/api.json"}

	tools := isolatePrism(t)
	runs := fakeNpm(t, "5.16.0", src.member, content)
	if p, err := npmSpec(t, tools, false, src); p != "" || err != nil || runs() != 0 {
		t.Fatalf("without fetch: %q, %v, runs %d", p, err, runs())
	}
	var wg sync.WaitGroup
	paths := make([]string, 3)
	errs := make([]error, 3)
	for i := range paths {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			paths[i], errs[i] = npmSpec(t, tools, true, src)
		}(i)
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil || paths[i] != filepath.Join(tools, "specs", "fake", "api.json") {
			t.Fatalf("fetch %d: %q, %v", i, paths[i], errs[i])
		}
	}
	if runs() != 1 {
		t.Fatalf("npm pack ran %d times, want 1", runs())
	}
	if b, _ := os.ReadFile(paths[0]); string(b) != content {
		t.Fatalf("kept %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(tools, "npm-pack-*")); len(left) != 0 {
		t.Fatalf("left behind %v", left)
	}

	// A file that does not match its hash is reported, not used.
	os.WriteFile(paths[0], []byte("tampered"), 0o600)
	if p, err := npmSpec(t, tools, false, src); err == nil || p != "" || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("tampered: %q, %v", p, err)
	}
	// A package whose file has another hash is refused.
	os.Remove(paths[0])
	bad := src
	bad.sha256 = strings.Repeat("0", 64)
	if _, err := npmSpec(t, tools, true, bad); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("wrong hash: %v", err)
	}
	missing := src
	missing.member = "package/elsewhere.json"
	if _, err := npmSpec(t, tools, true, missing); err == nil || !strings.Contains(err.Error(), "no package/elsewhere.json") {
		t.Fatalf("missing member: %v", err)
	}
}

// chdir changes the working directory for the rest of the test.
func chdir(t *testing.T, dir string) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(wd) })
}

// emptyModule makes a module with no specs directory above it.
func emptyModule(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPrismOutlivesTheSpecsTest: a shared Prism keeps answering after the
// test whose TempDir held its spec has ended. Prism watches its spec
// (chokidar) once it listens; when the file is missing by then, chokidar
// watches its directory instead, and a missing directory made it throw:
// in CI the first test to ask ended, its TempDir went before the watch
// began, and Prism exited in the middle of the next test. That race is
// rare on an idle machine, so TestOwnFile pins the fix itself: Prism now
// reads a copy that lives as long as the test binary's servers.
func TestPrismOutlivesTheSpecsTest(t *testing.T) {
	var base string
	t.Run("starts it", func(t *testing.T) { base = Prism(t, TwilioSpecWithMediaURLFix(t)) })
	// The subtest's TempDir is removed now. Prism's watch polls every
	// 100 ms and waits 500 ms for a file to settle: give it time to see.
	time.Sleep(2 * time.Second)
	if again := Prism(t, TwilioSpecWithMediaURLFix(t)); again != base {
		t.Fatalf("the shared Prism changed: %q then %q", base, again)
	}
	tw, _ := twilioOn(t, base)
	p := &api.CreateMessageParams{}
	p.SetTo("+15558675310").SetFrom("+15005550006").SetBody("still there")
	if _, err := tw.Api.CreateMessage(p); err != nil {
		t.Fatalf("Prism after the first test's TempDir went: %v", err)
	}
}

// TestOwnFile: the copy a shared server reads has the content of the
// original and survives the removal of the original's directory.
func TestOwnFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "test")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(src, []byte(`{"openapi":"3.0.0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	own, err := ownFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(own, dir+string(filepath.Separator)) {
		t.Fatalf("ownFile(%s) = %s, inside the original's directory", src, own)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(own); err != nil || string(b) != `{"openapi":"3.0.0"}` {
		t.Fatalf("the copy after the original's directory went: %q, %v", b, err)
	}
}
