package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/money"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// vendorNames are the built-in vendors in the order the goldens list them.
var vendorNames = []string{"stripe", "twilio", "resend"}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParse(t testing.TB, file string, data []byte) *Policy {
	t.Helper()
	p, err := Parse(file, data)
	if err != nil {
		t.Fatalf("Parse(%s): %v", file, err)
	}
	return p
}

func amt(t testing.TB, s string) money.Amount {
	t.Helper()
	a, err := money.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseExample(t *testing.T) {
	data := readFile(t, "testdata/good/example.yaml")
	p := mustParse(t, "keybrake.yaml", data)

	sum := sha256.Sum256(data)
	if want := hex.EncodeToString(sum[:])[:16]; p.Hash != want {
		t.Errorf("Hash = %q, want %q", p.Hash, want)
	}
	if p.File != "keybrake.yaml" || p.Version != 1 || p.Halt {
		t.Errorf("File, Version, Halt = %q, %d, %v", p.File, p.Version, p.Halt)
	}
	if len(p.Agents) != 2 || len(p.Vendors) != 0 || len(p.FX) != 0 {
		t.Fatalf("agents %d, vendors %d, fx %d; want 2, 0, 0", len(p.Agents), len(p.Vendors), len(p.FX))
	}

	rb := p.Agents["refund-bot"]
	if rb == nil || rb.Name != "refund-bot" || rb.Revoked || rb.Line != 3 || len(rb.Grants) != 1 {
		t.Fatalf("refund-bot = %+v", rb)
	}
	g := rb.Grants["stripe"]
	if g == nil || g.Vendor != "stripe" || g.Line != 4 || g.DailyCount != 0 {
		t.Fatalf("refund-bot stripe = %+v", g)
	}
	if g.DailyCap == nil || *g.DailyCap != amt(t, "500.00 USD") {
		t.Errorf("daily_cap = %v", g.DailyCap)
	}
	if g.PerCallMax == nil || *g.PerCallMax != (money.Amount{Micros: 50_000_000, Currency: "USD"}) {
		t.Errorf("per_call_max = %v", g.PerCallMax)
	}
	wantRules := []struct {
		method, path string
		line         int
		params       map[string][]string
	}{
		{"POST", "/v1/refunds", 8, nil},
		{"GET", "/v1/charges/{id}", 9, nil},
		{"GET", "/v1/payment_intents/{id}", 10, nil},
		{"POST", "/v1/payment_intents", 11, map[string][]string{"capture_method": {"manual"}}},
	}
	if len(g.Allow) != len(wantRules) {
		t.Fatalf("%d rules, want %d", len(g.Allow), len(wantRules))
	}
	for i, w := range wantRules {
		r := g.Allow[i]
		if id := fmt.Sprintf("agents.refund-bot.stripe.allow[%d]", i); r.ID != id {
			t.Errorf("rule %d ID = %q, want %q", i, r.ID, id)
		}
		if r.Method != w.method || r.Path.String() != w.path || r.Line != w.line || r.PerCallMax != nil {
			t.Errorf("rule %d = %s %s line %d max %v, want %s %s line %d", i, r.Method, r.Path, r.Line, r.PerCallMax, w.method, w.path, w.line)
		}
		if fmt.Sprint(r.Params) != fmt.Sprint(w.params) {
			t.Errorf("rule %d params = %v, want %v", i, r.Params, w.params)
		}
	}

	bb := p.Agents["billing-bot"]
	if bb == nil || !bb.Revoked || bb.Line != 14 {
		t.Fatalf("billing-bot = %+v", bb)
	}
	bg := bb.Grants["stripe"]
	if bg == nil || bg.DailyCap == nil || *bg.DailyCap != (money.Amount{Micros: 100_000 * money.MicrosPerUnit, Currency: "JPY"}) || bg.PerCallMax != nil {
		t.Fatalf("billing-bot stripe = %+v", bg)
	}
	if len(bg.Allow) != 1 || bg.Allow[0].ID != "agents.billing-bot.stripe.allow[0]" || bg.Allow[0].Method != "POST" || bg.Allow[0].Path.String() != "/v1/charges" {
		t.Fatalf("billing-bot rules = %+v", bg.Allow)
	}
}

// summary renders everything Parse decoded, deterministically, for golden
// files and for comparing a JSON policy with its YAML twin.
func summary(p *Policy, lines bool) string {
	var b strings.Builder
	at := func(line int) string {
		if !lines {
			return ""
		}
		return fmt.Sprintf(" @%d", line)
	}
	opt := func(a *money.Amount) string {
		if a == nil {
			return "-"
		}
		return a.String()
	}
	fmt.Fprintf(&b, "version %d halt %v\n", p.Version, p.Halt)
	var froms []string
	for c := range p.FX {
		froms = append(froms, string(c))
	}
	sort.Strings(froms)
	for _, c := range froms {
		for _, r := range p.FX[money.Currency(c)] {
			fmt.Fprintf(&b, "fx %s\n", r)
		}
	}
	for _, v := range vendorNames {
		if l := p.Vendors[v]; l != nil {
			fmt.Fprintf(&b, "vendor %s daily_cap %s daily_count %d%s\n", l.Vendor, opt(l.DailyCap), l.DailyCount, at(l.Line))
		}
	}
	var names []string
	for n := range p.Agents {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := p.Agents[n]
		fmt.Fprintf(&b, "agent %s revoked %v%s\n", a.Name, a.Revoked, at(a.Line))
		for _, v := range vendorNames {
			g := a.Grants[v]
			if g == nil {
				continue
			}
			fmt.Fprintf(&b, "  grant %s daily_cap %s per_call_max %s daily_count %d rules %d%s\n",
				g.Vendor, opt(g.DailyCap), opt(g.PerCallMax), g.DailyCount, len(g.Allow), at(g.Line))
			for _, r := range g.Allow {
				fmt.Fprintf(&b, "    %s %s %s per_call_max %s params %v%s\n", r.ID, r.Method, r.Path, opt(r.PerCallMax), r.Params, at(r.Line))
			}
		}
	}
	return b.String()
}

func TestParseGood(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.*")
	var n int
	for _, file := range files {
		if strings.HasSuffix(file, ".golden") {
			continue
		}
		n++
		t.Run(filepath.Base(file), func(t *testing.T) {
			p := mustParse(t, filepath.Base(file), readFile(t, file))
			got := summary(p, true)
			golden := strings.TrimSuffix(file, filepath.Ext(file)) + filepath.Ext(file) + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := string(readFile(t, golden)); got != want {
				t.Errorf("summary:\n%s\nwant (%s):\n%s", got, golden, want)
			}
		})
	}
	if n < 3 {
		t.Fatalf("found %d good policies, want at least 3", n)
	}
}

func TestParseJSONMatchesYAML(t *testing.T) {
	y := mustParse(t, "example.yaml", readFile(t, "testdata/good/example.yaml"))
	j := mustParse(t, "example.json", readFile(t, "testdata/good/example.json"))
	if sy, sj := summary(y, false), summary(j, false); sy != sj {
		t.Errorf("JSON policy differs from its YAML twin:\n%s\nYAML:\n%s", sj, sy)
	}
	if y.Hash == j.Hash {
		t.Error("different files have the same hash")
	}
}

func TestParseBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.*")
	var n int
	for _, file := range files {
		if strings.HasSuffix(file, ".err") {
			continue
		}
		n++
		t.Run(filepath.Base(file), func(t *testing.T) {
			name := filepath.Base(file)
			p, err := Parse(name, readFile(t, file))
			if err == nil {
				t.Fatalf("Parse succeeded: %s", summary(p, true))
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if pe.File != name || pe.Line < 1 {
				t.Errorf("File, Line = %q, %d", pe.File, pe.Line)
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
	if n < 40 {
		t.Fatalf("found %d bad policies, want at least 40", n)
	}
}

// TestParseText covers what cannot sit comfortably in a golden file: bytes
// that are not text, and characters that display differently than they
// parse.
func TestParseText(t *testing.T) {
	const ok = "version: 1\nagents:\n  bot: {}\n"
	tests := []struct {
		name, in, err string
	}{
		{"crlf", strings.ReplaceAll(ok, "\n", "\r\n"), ""},
		{"byte order mark", "\ufeff" + ok, ""},
		{"tab in comment", ok + "#\tnote\n", ""},
		{"lone cr", "version: 1\ragents:\n  bot: {}\n", "p.yaml:1: a carriage return without a line feed; use \\n or \\r\\n line endings"},
		{"not utf-8", ok + "# caf\xe9\n", "p.yaml:4: byte 0xe9 is not UTF-8; a policy is UTF-8 text"},
		{"nul", ok + "\x00", "p.yaml:4: control character U+0000 is not allowed"},
		{"escape", "version: 1\nagents:\n  bot: {}\n  \x1b[2Kevil: {}\n", "p.yaml:4: control character U+001B is not allowed"},
		{"c1 next line", "version: 1\u0085agents:\n  bot: {}\n", "p.yaml:1: control character U+0085 is not allowed"},
		{"line separator", "version: 1\nagents:\u2028  bot: {}\n", "p.yaml:2: line separator U+2028 is not allowed; use \\n"},
		{"right-to-left override", "version: 1\nagents:\n  bot: {}\n# \u202egnp.lla\n", "p.yaml:4: invisible or bidirectional character U+202E is not allowed; a policy must read as written"},
		{"zero width space", "version: 1\nagents:\n  bot\u200b: {}\n", "p.yaml:3: invisible or bidirectional character U+200B is not allowed; a policy must read as written"},
		{"byte order mark inside", ok + "#\ufeff\n", "p.yaml:4: invisible or bidirectional character U+FEFF is not allowed; a policy must read as written"},
		{"only a document marker", "---\n", "p.yaml:2: want a mapping, got nothing"},
		{"second empty document", ok + "---\n", "p.yaml:4: a second YAML document starts here; a policy file holds exactly one"},
		{"syntax on the first line", "[", "p.yaml:1: invalid YAML: did not find expected node content"},
		{"deep nesting", strings.Repeat("[", 10001), "p.yaml:1: invalid YAML: exceeded max depth of 10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(tt.in))
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if p.Agents["bot"] == nil {
					t.Fatalf("agent bot missing: %s", summary(p, true))
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want %s", tt.err)
			}
			if err.Error() != tt.err {
				t.Fatalf("error:\n got %s\nwant %s", err, tt.err)
			}
		})
	}
}

func TestParseHash(t *testing.T) {
	data := readFile(t, "testdata/good/example.yaml")
	a := mustParse(t, "a", data)
	b := mustParse(t, "b", append(append([]byte(nil), data...), '\n'))
	if len(a.Hash) != 16 || strings.Trim(a.Hash, "0123456789abcdef") != "" {
		t.Fatalf("Hash %q is not 16 lower-case hex digits", a.Hash)
	}
	if a.Hash == b.Hash {
		t.Fatal("a changed file kept its hash")
	}
	if c := mustParse(t, "c", data); c.Hash != a.Hash {
		t.Fatal("the same bytes hashed differently")
	}
}

func TestLoad(t *testing.T) {
	p, err := Load("testdata/good/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.File != "testdata/good/example.yaml" || p.Agents["refund-bot"] == nil {
		t.Fatalf("Load = %+v", p)
	}

	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want fs.ErrNotExist", err)
	}

	_, err = Load("testdata/bad/version-2.yaml")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != "testdata/bad/version-2.yaml" || pe.Line != 1 {
		t.Fatalf("Load(bad) = %#v", err)
	}
}

func TestParseErrorString(t *testing.T) {
	tests := []struct {
		err  ParseError
		want string
	}{
		{ParseError{File: "keybrake.yaml", Line: 12, Msg: "daily_cap: bad"}, "keybrake.yaml:12: daily_cap: bad"},
		{ParseError{File: "keybrake.yaml", Msg: "unreadable"}, "keybrake.yaml: unreadable"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// TestParseAccepts covers what is easy to refuse by mistake.
func TestParseAccepts(t *testing.T) {
	const head = "version: 1\nagents:\n  bot:\n    stripe:\n"
	tests := []struct {
		name, grant string
		check       func(t *testing.T, g *Grant)
	}{
		{"per_call_max equal to daily_cap", "      daily_cap: 50.00 USD\n      per_call_max: 50.00 USD\n",
			func(t *testing.T, g *Grant) {
				if g.PerCallMax.Micros != g.DailyCap.Micros {
					t.Errorf("per_call_max %v, daily_cap %v", g.PerCallMax, g.DailyCap)
				}
			}},
		{"rule per_call_max equal to daily_cap", "      daily_cap: 50.00 USD\n      allow:\n        - {method: POST, path: /v1/refunds, per_call_max: 50.00 USD}\n",
			func(t *testing.T, g *Grant) {
				if *g.Allow[0].PerCallMax != *g.DailyCap {
					t.Errorf("rule per_call_max %v", g.Allow[0].PerCallMax)
				}
			}},
		{"per_call_max in another currency is not compared", "      daily_cap: 50.00 USD\n      per_call_max: 10000 JPY\n",
			func(t *testing.T, g *Grant) {
				if g.PerCallMax.Currency != "JPY" {
					t.Errorf("per_call_max %v", g.PerCallMax)
				}
			}},
		{"a zero cap", "      daily_cap: 0 USD\n",
			func(t *testing.T, g *Grant) {
				if g.DailyCap == nil || !g.DailyCap.IsZero() {
					t.Errorf("daily_cap %v", g.DailyCap)
				}
			}},
		{"largest daily_count", "      daily_count: 9223372036854775807\n",
			func(t *testing.T, g *Grant) {
				if g.DailyCount != 1<<63-1 {
					t.Errorf("daily_count %d", g.DailyCount)
				}
			}},
		{"parameter values kept as written", "      allow:\n        - method: POST\n          path: /v1/x\n          params:\n            a: true\n            b: 5\n            c: [1.50, \"quoted\", 'single', 007, yes]\n            d[e][]: x\n",
			func(t *testing.T, g *Grant) {
				want := map[string][]string{"a": {"true"}, "b": {"5"}, "c": {"1.50", "quoted", "single", "007", "yes"}, "d[e][]": {"x"}}
				if fmt.Sprint(g.Allow[0].Params) != fmt.Sprint(want) {
					t.Errorf("params %v, want %v", g.Allow[0].Params, want)
				}
			}},
		{"no params is nil", "      allow:\n        - {method: GET, path: /v1/x, params: {}}\n",
			func(t *testing.T, g *Grant) {
				if g.Allow[0].Params != nil {
					t.Errorf("params %#v", g.Allow[0].Params)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, "p.yaml", []byte(head+tt.grant))
			tt.check(t, p.Agents["bot"].Grants["stripe"])
		})
	}
	if _, err := Parse("p.yaml", []byte(head+"      daily_count: 9223372036854775808\n")); err == nil || err.Error() != "p.yaml:5: daily_count: 9223372036854775808 is too large" {
		t.Errorf("daily_count overflow: %v", err)
	}
}

// Caps take the precision of prices: a Resend cap in the units it charges.
func TestCapsTakeThePrecisionOfPrices(t *testing.T) {
	p, err := Parse("k.yaml", []byte("version: 1\nagents:\n  mailer:\n    resend:\n      daily_cap: 0.0020 USD\n      per_call_max: 100.5 JPY\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := p.Agents["mailer"].Grants["resend"]
	if g.DailyCap.Micros != 2000 || g.PerCallMax.String() != "100.5 JPY" {
		t.Errorf("daily cap %v, per call max %v", g.DailyCap, g.PerCallMax)
	}
}
