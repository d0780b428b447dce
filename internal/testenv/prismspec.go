package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TwilioSpec is the Twilio REST API 2010-04-01 description, relative to
// the specs directory (shared/specs/README.md).
const TwilioSpec = "twilio/twilio_api_v2010.json"

// npmSource is a spec file published inside an npm package.
type npmSource struct {
	pkg    string // package@version, as npm pack takes it
	member string // the file's path in the package's tarball
	sha256 string // of the file, hex
	dest   string // where it is kept, relative to the tools directory
}

// twilioNPMSpec is the npm package that also publishes TwilioSpec, for
// machines without the shared specs: the same 121 paths as shared/specs
// (not the same bytes: another commit of twilio-oai), pinned by its
// SHA-256.
var twilioNPMSpec = npmSource{
	pkg:    "@twilio-alpha/mcp@0.7.0",
	member: "package/twilio-oai/spec/json/twilio_api_v2010.json",
	sha256: "475b69553e34e797af05d34679cdad3bc3b8b4b8b92e6ac044fa6ebc255bf052",
	dest:   "specs/twilio-alpha-mcp-0.7.0/twilio_api_v2010.json",
}

// Spec finds a vendor spec file: $KEYBRAKE_SPECS_DIR/<rel>, else
// ../shared/specs/<rel> found by walking up from the module root; for
// "twilio/twilio_api_v2010.json" (TwilioSpec) also the npm package
// @twilio-alpha/mcp@0.7.0 (npm pack into the tools dir, file
// package/twilio-oai/spec/json/twilio_api_v2010.json), which is fetched
// only under CI=true or KEYBRAKE_INSTALL_TOOLS=1, under a file lock, and
// checked against its SHA-256. A KEYBRAKE_SPECS_DIR without the file fails
// the test: it was set on purpose. Outside CI a missing spec skips with a
// message saying how to get it; under CI=true it fails.
func Spec(t testing.TB, rel string) string {
	t.Helper()
	p, err := findSpec(t, rel)
	var u *unavailableError
	switch {
	case errors.As(err, &u) && underCI():
		t.Fatalf("testenv: CI=true and %s", u.msg)
	case errors.As(err, &u):
		t.Skipf("testenv: %s", u.msg)
	case err != nil:
		t.Fatalf("testenv: %v", err)
	}
	return p
}

func findSpec(t testing.TB, rel string) (string, error) {
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("spec %q is not a relative path inside the specs directory", rel)
	}
	if d := os.Getenv("KEYBRAKE_SPECS_DIR"); d != "" {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$KEYBRAKE_SPECS_DIR=%s: %w", d, err)
		}
		return p, nil
	}
	var looked []string
	if root, err := moduleRoot(); err == nil {
		for d := filepath.Dir(root); ; d = filepath.Dir(d) {
			p := filepath.Join(d, "shared", "specs", rel)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			looked = append(looked, filepath.Join(d, "shared", "specs"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	msg := fmt.Sprintf("spec %s not found in %s. Put the specs directory (shared/specs, see its README.md) beside the module or above it, or point KEYBRAKE_SPECS_DIR at it",
		rel, strings.Join(looked, ", "))
	if filepath.ToSlash(rel) != TwilioSpec {
		return "", &unavailableError{msg}
	}
	dir, err := toolsDir()
	if err != nil {
		return "", err
	}
	p, err := npmSpec(t, dir, installAllowed(), twilioNPMSpec)
	if err != nil || p != "" {
		return p, err
	}
	return "", &unavailableError{msg + ", or set KEYBRAKE_INSTALL_TOOLS=1 to let the tests take it from the npm package " +
		twilioNPMSpec.pkg + " (" + twilioNPMSpec.member + ") into " + dir}
}

// moduleRoot is the directory of the go.mod above the working directory,
// which go test sets to the package's directory.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// npmSpec returns the spec src names, kept in the tools directory dir,
// taking it from its npm package first (npm pack, under dir's lock) when
// it is missing and fetch is true. path is "" when there is none and fetch
// is false. A file whose SHA-256 is not src's is never returned.
func npmSpec(t testing.TB, dir string, fetch bool, src npmSource) (path string, err error) {
	p := filepath.Join(dir, filepath.FromSlash(src.dest))
	if err := checkSHA256(p, src.sha256); err == nil {
		return p, nil
	} else if !fetch {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("%s: %w (delete it, or set KEYBRAKE_INSTALL_TOOLS=1 to fetch it again)", p, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("tools directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "specs.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("tools directory lock: %w", err)
	}
	defer lock.Close()
	if err := lockFile(lock, installTimeout); err != nil {
		return "", err
	}
	defer unlockFile(lock)
	if checkSHA256(p, src.sha256) == nil {
		return p, nil // another test binary fetched it while we waited
	}

	tmp, err := os.MkdirTemp(dir, "npm-pack-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	args := []string{"npm", "pack", "--silent", "--pack-destination", tmp, src.pkg}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = tmp
	t.Logf("testenv: %s", strings.Join(args, " "))
	begun := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	tgzs, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if len(tgzs) != 1 {
		return "", fmt.Errorf("%s left %d tarballs in %s", strings.Join(args, " "), len(tgzs), tmp)
	}
	staged := filepath.Join(tmp, "spec.json")
	if err := extractMember(tgzs[0], src.member, staged); err != nil {
		return "", fmt.Errorf("%s: %w", src.pkg, err)
	}
	if err := checkSHA256(staged, src.sha256); err != nil {
		return "", fmt.Errorf("%s: %s: %w", src.pkg, src.member, err)
	}
	if err := os.Rename(staged, p); err != nil {
		return "", err
	}
	t.Logf("testenv: took %s from %s in %v", src.member, src.pkg, time.Since(begun).Round(time.Millisecond))
	return p, nil
}

// extractMember copies one regular file out of a .tgz.
func extractMember(tgz, member, dst string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("no %s in %s", member, filepath.Base(tgz))
		}
		if err != nil {
			return err
		}
		if h.Name != member || h.Typeflag != tar.TypeReg {
			continue
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		// The spec is under 2 MB; a member far larger is not it.
		if _, err := io.Copy(out, io.LimitReader(tr, 64<<20)); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
}

// checkSHA256 returns nil if the file at p has the given SHA-256, an
// error wrapping os.ErrNotExist if there is no file.
func checkSHA256(p, want string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("SHA-256 %s, want %s", got, want)
	}
	return nil
}

// TwilioSpecWithMediaURLFix copies the Twilio spec into t.TempDir() with
// the MediaUrl form encoding fix of specs/README.md applied, and returns
// its path. Twilio's spec declares MediaUrl an array without saying how a
// form carries it, so Prism refuses MediaUrl=a&MediaUrl=b with 422; the
// copy declares {style: form, explode: true}, the repeated keys twilio-go
// sends, for MediaUrl and for every other array of every form request
// body (StatusCallbackEvent and the other event lists), which have the
// same gap. The spec is found as Spec finds TwilioSpec, with its skip and
// failure rules.
func TwilioSpecWithMediaURLFix(t testing.TB) string {
	t.Helper()
	src := Spec(t, TwilioSpec)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	fixed, n, err := fixFormArrays(b)
	if err != nil {
		t.Fatalf("testenv: %s: %v", src, err)
	}
	if n == 0 {
		t.Fatalf("testenv: %s: no array in any form request body; is it Twilio's spec?", src)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(TwilioSpec))
	if err := os.WriteFile(p, fixed, 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return p
}

// fixFormArrays adds encoding {style: form, explode: true} for every
// array-typed property of every application/x-www-form-urlencoded request
// body of an OpenAPI 3 document, keeping any encoding already declared,
// and returns the document and how many properties it declared.
func fixFormArrays(spec []byte) ([]byte, int, error) {
	// Numbers stay as written and HTML characters unescaped: the copy
	// differs from the spec only by the encodings added.
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, 0, err
	}
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		return nil, 0, errors.New("no paths object")
	}
	n := 0
	for _, item := range paths {
		ops, _ := item.(map[string]any)
		for _, op := range ops {
			o, _ := op.(map[string]any)
			rb, _ := o["requestBody"].(map[string]any)
			content, _ := rb["content"].(map[string]any)
			form, _ := content["application/x-www-form-urlencoded"].(map[string]any)
			schema, _ := form["schema"].(map[string]any)
			props, _ := schema["properties"].(map[string]any)
			for name, p := range props {
				prop, _ := p.(map[string]any)
				if prop["type"] != "array" {
					continue
				}
				enc, _ := form["encoding"].(map[string]any)
				if enc == nil {
					enc = map[string]any{}
					form["encoding"] = enc
				}
				if _, declared := enc[name]; declared {
					continue
				}
				enc[name] = map[string]any{"style": "form", "explode": true}
				n++
			}
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, 0, err
	}
	return out.Bytes(), n, nil
}
