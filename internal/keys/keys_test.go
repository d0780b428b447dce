package keys

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	t0        = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tokenForm = regexp.MustCompile(`^kb_[a-z2-7]{52}$`)
	idForm    = regexp.MustCompile(`^kbk_[a-z2-7]{12}$`)
)

// keysFile is a path for a keys file in a fresh directory.
func keysFile(t testing.TB) string {
	return filepath.Join(t.TempDir(), "keybrake.keys")
}

func mustAdd(t testing.TB, path, agent, vendor string, now time.Time) (string, Entry) {
	t.Helper()
	tok, e, err := Add(path, agent, vendor, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok, e
}

func mustLoad(t testing.TB, path string) *File {
	t.Helper()
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func writeKeys(t testing.TB, path, text string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestLoadRefusesFilesOthersCanUse(t *testing.T) {
	tests := []struct {
		mode fs.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o700, true},
		{0o640, false},
		{0o604, false},
		{0o620, false},
		{0o602, false},
		{0o644, false},
		{0o666, false},
		{0o610, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			path := keysFile(t)
			writeKeys(t, path, "version: 1\n", tt.mode)
			_, err := Load(path)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNotPrivate) {
				t.Fatalf("error %v, want ErrNotPrivate", err)
			}
			for _, want := range []string{fmt.Sprintf("mode %04o", tt.mode), "chmod 600 " + path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			// Nor will Add write to it.
			if _, _, err := Add(path, "bot", "stripe", t0); !errors.Is(err, ErrNotPrivate) {
				t.Errorf("Add: %v", err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	path := filepath.Join(dir, "bad.keys")
	writeKeys(t, path, "version: 2\n", 0o600)
	var pe *ParseError
	if _, err := Load(path); !errors.As(err, &pe) || pe.File != path || pe.Line != 1 {
		t.Errorf("bad file: %v", err)
	}
}

func TestAddLookupRevoke(t *testing.T) {
	path := keysFile(t)
	tok, e := mustAdd(t, path, "refund-bot", "stripe", t0.Add(1500*time.Millisecond).In(time.FixedZone("CET", 3600)))
	if !tokenForm.MatchString(tok) {
		t.Errorf("token %q is not of the form kb_ + 52 base32", tok)
	}
	sum := sha256.Sum256([]byte(tok))
	want := Entry{ID: e.ID, Agent: "refund-bot", Vendor: "stripe", SHA256: hex.EncodeToString(sum[:]), Created: t0.Add(time.Second)}
	if !idForm.MatchString(e.ID) || !sameEntries([]Entry{e}, []Entry{want}) || e.Created.Location() != time.UTC {
		t.Fatalf("entry %+v, want %+v", e, want)
	}

	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("new file: %v %v", st, err)
	}
	data := readFile(t, path)
	if bytes.Contains(data, []byte(tok)) || bytes.Contains(data, []byte(tok[len(tokenPrefix):])) {
		t.Fatal("the file holds the key")
	}
	if !bytes.HasPrefix(data, []byte("# Keybrake agent keys")) {
		t.Errorf("new file:\n%s", data)
	}

	f := mustLoad(t, path)
	if got := f.Entries(); !sameEntries(got, []Entry{want}) {
		t.Fatalf("Entries() = %+v", got)
	}
	lookups := []struct {
		name, token string
		want        Result
	}{
		{"the key", tok, OK},
		{"empty", "", Unknown},
		{"no prefix", tok[len(tokenPrefix):], Unknown},
		{"the prefix alone", "kb_", Unknown},
		{"upper case", strings.ToUpper(tok), Unknown},
		{"one character off", tok[:len(tok)-1] + string(tok[len(tok)-1]^1), Unknown},
		{"a prefix of it", tok[:len(tok)-1], Unknown},
		{"longer", tok + "a", Unknown},
		{"the hash", e.SHA256, Unknown},
		{"the id", e.ID, Unknown},
		{"a bearer header", "Bearer " + tok, Unknown},
		{"huge", tok + strings.Repeat("a", 1<<20), Unknown},
	}
	for _, l := range lookups {
		t.Run(l.name, func(t *testing.T) {
			got, r := f.Lookup(l.token)
			if r != l.want {
				t.Fatalf("Lookup = %v, want %v", r, l.want)
			}
			if r == OK && got.ID != e.ID || r != OK && got != (Entry{}) {
				t.Fatalf("Lookup entry %+v", got)
			}
		})
	}

	if err := Revoke(path, e.ID, t0.Add(time.Hour+time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	got, r := mustLoad(t, path).Lookup(tok)
	if r != Revoked || got.ID != e.ID || !got.Revoked.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after Revoke: %v %+v", r, got)
	}
	if !f.Entries()[0].Revoked.IsZero() {
		t.Fatal("a File loaded before Revoke changed")
	}

	// Revoking again changes nothing, not even the time.
	before := readFile(t, path)
	if err := Revoke(path, e.ID, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if after := readFile(t, path); !bytes.Equal(before, after) {
		t.Fatalf("a second Revoke rewrote the file:\n%s", after)
	}
	if err := Revoke(path, "kbk_aaaaaaaaaaaa", t0); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("unknown id: %v", err)
	}
	if err := Revoke(path, e.ID, time.Time{}); err == nil {
		t.Fatal("Revoke at the zero time succeeded")
	}
	if err := Revoke(filepath.Join(t.TempDir(), "none"), e.ID, t0); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("Revoke in a missing file: %v", err)
	}
}

// TestLookupEveryEntry: the comparison runs over every entry without
// stopping, so the selection of the match must be right wherever it sits,
// among revoked entries and several keys of one agent.
func TestLookupEveryEntry(t *testing.T) {
	path := keysFile(t)
	const n = 24
	tokens := make([]string, n)
	entries := make([]Entry, n)
	for i := range n {
		agent, vendor := fmt.Sprintf("bot-%d", i%5), []string{"stripe", "twilio", "resend"}[i%3]
		tokens[i], entries[i] = mustAdd(t, path, agent, vendor, t0.Add(time.Duration(i)*time.Second))
	}
	for i := 0; i < n; i += 3 {
		if err := Revoke(path, entries[i].ID, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	f := mustLoad(t, path)
	if len(f.Entries()) != n {
		t.Fatalf("%d entries", len(f.Entries()))
	}
	seen := map[string]bool{}
	for i, tok := range tokens {
		t.Run(entries[i].ID, func(t *testing.T) {
			if seen[tok] {
				t.Fatal("a token was made twice")
			}
			seen[tok] = true
			want := OK
			if i%3 == 0 {
				want = Revoked
			}
			e, r := f.Lookup(tok)
			if r != want || e.ID != entries[i].ID || e.Agent != entries[i].Agent || e.Vendor != entries[i].Vendor {
				t.Fatalf("Lookup = %v %+v, want %v %+v", r, e, want, entries[i])
			}
		})
	}
	other, _ := mustAdd(t, keysFile(t), "bot-0", "stripe", t0)
	if _, r := f.Lookup(other); r != Unknown {
		t.Fatalf("another file's key: %v", r)
	}
}

func TestZeroFile(t *testing.T) {
	var f File
	tok, _ := mustAdd(t, keysFile(t), "bot", "stripe", t0)
	if e, r := f.Lookup(tok); r != Unknown || e != (Entry{}) {
		t.Fatalf("zero File: %v %+v", r, e)
	}
	if f.Entries() != nil || len(f.Secrets()) != 0 {
		t.Fatal("zero File has entries or secrets")
	}
	if r := Result(0); r != Unknown || r.String() != "unknown" {
		t.Fatalf("zero Result %v", r)
	}
}

func TestAddRefuses(t *testing.T) {
	tests := []struct{ name, agent, vendor, err string }{
		{"agent case", "Refund_Bot", "stripe", `agent "Refund_Bot"`},
		{"agent empty", "", "stripe", `agent ""`},
		{"vendor case", "bot", "Stripe", `vendor "Stripe"`},
		{"vendor path", "bot", "../stripe", `vendor "../stripe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := keysFile(t)
			if _, _, err := Add(path, tt.agent, tt.vendor, t0); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatal("a refused Add wrote the file")
			}
		})
	}
	t.Run("invalid file", func(t *testing.T) {
		path := keysFile(t)
		writeKeys(t, path, "version: 1\nkeys: {}\n", 0o600)
		_, _, err := Add(path, "bot", "stripe", t0)
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "nothing written") {
			t.Fatalf("error %v", err)
		}
		if got := string(readFile(t, path)); got != "version: 1\nkeys: {}\n" {
			t.Fatalf("file changed: %q", got)
		}
	})
	t.Run("symlink", func(t *testing.T) {
		path := keysFile(t)
		mustAdd(t, path, "bot", "stripe", t0)
		link := filepath.Join(filepath.Dir(path), "link.keys")
		if err := os.Symlink(path, link); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Add(link, "bot", "stripe", t0); err == nil || !strings.Contains(err.Error(), "symlink") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestEditsKeepTheFile: Add and Revoke keep comments, secrets and entries
// they do not touch, and turn an empty flow list into a block list.
func TestEditsKeepTheFile(t *testing.T) {
	path := keysFile(t)
	const start = `# who holds what: ask ops before editing
version: 1
secrets:
  stripe: file:/etc/keybrake/stripe.key # rotated monthly
keys: []
`
	writeKeys(t, path, start, 0o400)
	_, a := mustAdd(t, path, "bot", "stripe", t0)
	_, b := mustAdd(t, path, "bot", "stripe", t0.Add(time.Minute))
	if err := Revoke(path, a.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	data := string(readFile(t, path))
	for _, want := range []string{"# who holds what: ask ops before editing\n", "stripe: file:/etc/keybrake/stripe.key # rotated monthly\n", "keys:\n  - id: " + a.ID + "\n"} {
		if !strings.Contains(data, want) {
			t.Errorf("file lost %q:\n%s", want, data)
		}
	}
	f := mustLoad(t, path)
	if p, _ := f.Secret("stripe"); p != "/etc/keybrake/stripe.key" {
		t.Errorf("secret %q", p)
	}
	es := f.Entries()
	if len(es) != 2 || es[0].ID != a.ID || !es[0].IsRevoked() || es[1].ID != b.ID || es[1].IsRevoked() {
		t.Fatalf("entries %+v", es)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o400 {
		t.Errorf("mode %v, want the file's own 0400 kept", st.Mode())
	}
}

// TestConcurrentWriters: adds and revokes at the same moment, in this
// process and another, lose nothing. A lost revoke would put a key back in
// force.
func TestConcurrentWriters(t *testing.T) {
	path := keysFile(t)
	const n = 12
	toRevoke := make([]Entry, n)
	for i := range toRevoke {
		_, toRevoke[i] = mustAdd(t, path, "old", "stripe", t0)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _, err := Add(path, fmt.Sprintf("bot-%d", i), "stripe", t0)
			errs <- err
		}()
		go func() {
			defer wg.Done()
			errs <- Revoke(path, toRevoke[i].ID, t0.Add(time.Hour))
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- otherProcess(t, "add", path, "elsewhere", "twilio")
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	es := mustLoad(t, path).Entries()
	if len(es) != 2*n+1 {
		t.Fatalf("%d entries, want %d", len(es), 2*n+1)
	}
	for _, e := range es {
		if e.Agent == "old" && !e.IsRevoked() {
			t.Errorf("revoke of %s lost", e.ID)
		}
	}
}

// otherProcess runs Add or Revoke in a child process: the test binary,
// re-run as TestHelperProcess.
func otherProcess(t testing.TB, args ...string) error {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "KEYS_HELPER="+strings.Join(args, "\n"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %v: %s", args, err, out)
	}
	return nil
}

// TestHelperProcess is otherProcess's child; run alone, it does nothing.
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv("KEYS_HELPER")
	if spec == "" {
		t.Skip("run by otherProcess")
	}
	args := strings.Split(spec, "\n")
	var err error
	switch args[0] {
	case "add":
		_, _, err = Add(args[1], args[2], args[3], time.Now())
	case "revoke":
		err = Revoke(args[1], args[2], time.Now())
	default:
		err = fmt.Errorf("unknown helper %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
