package keys

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseGood(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) < 4 {
		t.Fatalf("found %d good files", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			f, err := parse(file, readFile(t, file))
			if err != nil {
				t.Fatal(err)
			}
			if f.Path() != file || len(f.Hash()) != 16 {
				t.Errorf("Path, Hash = %q, %q", f.Path(), f.Hash())
			}
			for _, e := range f.Entries() {
				if !keyID.MatchString(e.ID) || !agentName.MatchString(e.Agent) || !sha256Re.MatchString(e.SHA256) ||
					e.Created.IsZero() || e.Created.Location() != time.UTC {
					t.Errorf("entry %+v", e)
				}
			}
		})
	}
}

func TestParseExample(t *testing.T) {
	f, err := parse("example.yaml", readFile(t, "testdata/good/example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{
		ID: "kbk_q7m2x4k6tz3a", Agent: "refund-bot", Vendor: "stripe",
		SHA256:  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Created: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	}, {
		ID: "kbk_c3n5p7w2hy6d", Agent: "refund-bot", Vendor: "stripe",
		SHA256:  "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
		Created: time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC),
		Revoked: time.Date(2026, 11, 25, 10, 5, 0, 0, time.UTC),
	}}
	if got := f.Entries(); !sameEntries(got, want) {
		t.Errorf("entries\n got %+v\nwant %+v", got, want)
	}
	if p, ok := f.Secret("stripe"); !ok || p != "/etc/keybrake/stripe.key" {
		t.Errorf("Secret(stripe) = %q, %v", p, ok)
	}
	if _, ok := f.Secret("twilio"); ok {
		t.Error("Secret(twilio) found")
	}
	if got := f.Secrets(); len(got) != 1 || got[0] != "stripe" {
		t.Errorf("Secrets() = %v", got)
	}
}

// TestDocExample: the file doc.go shows is the one the tests parse.
func TestDocExample(t *testing.T) {
	var shown []string
	in := false
	for _, line := range strings.Split(string(readFile(t, "doc.go")), "\n") {
		text, tab := strings.CutPrefix(line, "//\t")
		if tab && (in || strings.HasPrefix(text, "# Keybrake agent keys")) {
			in = true
			shown = append(shown, text)
		} else if in {
			break
		}
	}
	if got, want := strings.Join(shown, "\n")+"\n", string(readFile(t, "testdata/good/example.yaml")); got != want {
		t.Errorf("doc.go shows\n%s\ntestdata/good/example.yaml is\n%s", got, want)
	}
}

func TestParseBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			name := filepath.Base(file)
			f, err := parse(name, readFile(t, file))
			if err == nil {
				t.Fatalf("parsed: %+v", f.Entries())
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if pe.File != name || pe.Line < 1 || pe.Msg == "" {
				t.Errorf("File, Line, Msg = %q, %d, %q", pe.File, pe.Line, pe.Msg)
			}
			golden := file + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := strings.TrimSuffix(string(readFile(t, golden)), "\n"); err.Error() != want {
				t.Errorf("error:\n got %s\nwant %s", err, want)
			}
		})
	}
	if len(files) < 40 {
		t.Fatalf("found %d bad files, want at least 40", len(files))
	}
}

// TestErrorsNeverQuoteValues: a value in the wrong place may be a secret
// (a vendor key pasted under secrets, an agent key pasted as a hash), so
// no message shows one, wherever it is written.
func TestErrorsNeverQuoteValues(t *testing.T) {
	const secret = "sk_live_51HsEcReT"
	entry := func(field string) string {
		e := map[string]string{
			"id": "kbk_aaaaaaaaaaaa", "agent": "bot", "vendor": "stripe",
			"sha256": strings.Repeat("a", 64), "created": "2026-11-25T10:00:00Z",
		}
		e[field] = secret
		var b strings.Builder
		b.WriteString("version: 1\nkeys:\n")
		for i, k := range []string{"id", "agent", "vendor", "sha256", "created"} {
			if i == 0 {
				b.WriteString("  - ")
			} else {
				b.WriteString("    ")
			}
			b.WriteString(k + ": " + e[k] + "\n")
		}
		return b.String()
	}
	tests := []struct{ name, in string }{
		{"secrets", "version: 1\nsecrets:\n  stripe: " + secret + "\n"},
		{"secrets quoted", "version: 1\nsecrets:\n  stripe: \"" + secret + "\"\n"},
		{"secrets file relative", "version: 1\nsecrets:\n  stripe: file:" + secret + "\n"},
		{"secrets as vendor", "version: 1\nsecrets:\n  " + secret + ": file:/a\n"},
		{"secrets as list", "version: 1\nsecrets:\n  stripe: [" + secret + "]\n"},
		{"unknown key", "version: 1\n" + secret + ": x\n"},
		{"unknown key value", "version: 1\nsecret: " + secret + "\n"},
		{"version", "version: " + secret + "\n"},
		{"id", entry("id")},
		{"agent", entry("agent")},
		{"vendor", entry("vendor")},
		{"sha256", entry("sha256")},
		{"created", entry("created")},
		{"alias", "version: 1\nsecrets:\n  stripe: *" + secret + "\n"},
		{"anchor", "version: 1\nsecrets:\n  stripe: &" + secret + " file:/a\n"},
		{"tag", "version: 1\nsecrets:\n  stripe: !" + secret + " file:/a\n"},
		{"syntax", "version: 1\nsecrets:\n  stripe: \"" + secret + "\\q\"\n"},
		{"syntax 2", "version: 1\nsecrets: {stripe: " + secret + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse("k.yaml", []byte(tt.in))
			if err == nil {
				t.Fatal("parsed")
			}
			if strings.Contains(err.Error(), "HsEcReT") {
				t.Fatalf("the error shows the value: %v", err)
			}
		})
	}
}

// TestParseText covers bytes that cannot sit comfortably in a golden file.
func TestParseText(t *testing.T) {
	const ok = "version: 1\nkeys: []\n"
	tests := []struct{ name, in, err string }{
		{"crlf", strings.ReplaceAll(ok, "\n", "\r\n"), ""},
		{"byte order mark", "\ufeff" + ok, ""},
		{"tab in comment", ok + "#\tnote\n", ""},
		{"lone cr", "version: 1\rkeys: []\n", "k.yaml:1: a carriage return without a line feed; use \\n or \\r\\n line endings"},
		{"not utf-8", ok + "# \xff\n", "k.yaml:3: a byte that is not UTF-8; a keys file is UTF-8 text"},
		{"nul", ok + "#\x00\n", "k.yaml:3: control character U+0000 is not allowed"},
		{"bidi", ok + "# \u202e\n", "k.yaml:3: invisible or bidirectional character U+202E is not allowed; a keys file must read as written"},
		{"zero width", "version: 1\nsecrets:\n  stripe\u200b: file:/a\n", "k.yaml:3: invisible or bidirectional character U+200B is not allowed; a keys file must read as written"},
		{"line separator", ok + "#\u2028\n", "k.yaml:3: line separator U+2028 is not allowed; use \\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse("k.yaml", []byte(tt.in))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Errorf("error %q, want %q", got, tt.err)
			}
		})
	}
}

// TestParseErrorLines: the line of an error is the line of the value at
// fault, or of the mapping missing a key.
func TestParseErrorLines(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
	}{
		{"third entry's hash", "version: 1\nkeys:\n" +
			"  - {id: kbk_aaaaaaaaaaaa, agent: a, vendor: v, sha256: \"" + strings.Repeat("a", 64) + "\", created: 2026-11-25T10:00:00Z}\n" +
			"  - {id: kbk_bbbbbbbbbbbb, agent: a, vendor: v, sha256: \"" + strings.Repeat("b", 64) + "\", created: 2026-11-25T10:00:00Z}\n" +
			"  - id: kbk_cccccccccccc\n    agent: a\n    vendor: v\n    sha256: \"cc\"\n    created: 2026-11-25T10:00:00Z\n", 8},
		{"missing key is the entry's line", "version: 1\n\nkeys:\n\n  - id: kbk_aaaaaaaaaaaa\n    agent: a\n", 5},
		{"version missing is the mapping's line", "\n\nkeys: []\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse("k.yaml", []byte(tt.in))
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line != tt.line {
				t.Fatalf("error %v, want line %d", err, tt.line)
			}
		})
	}
}
