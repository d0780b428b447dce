package policy

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; it either returns a *ParseError with a
// line, or a policy whose every rule is compiled and allows the call it
// describes.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"testdata/good/*.yaml", "testdata/good/*.json", "testdata/bad/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			f.Add(readFile(f, file))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "f.yaml" || pe.Line < 1 || pe.Msg == "" {
				t.Fatalf("error %#v", err)
			}
			return
		}
		if len(p.Hash) != 16 || p.Version != 1 || len(p.Agents) == 0 {
			t.Fatalf("policy %+v", p)
		}
		if again, _ := Parse("f.yaml", data); again == nil || summary(again, true) != summary(p, true) {
			t.Fatal("the same bytes parsed differently")
		}
		for name, a := range p.Agents {
			if !agentName.MatchString(name) || a.Name != name {
				t.Fatalf("agent %q named %q", name, a.Name)
			}
			for vendor, g := range a.Grants {
				if g.Vendor != vendor {
					t.Fatalf("grant %q for vendor %q", g.Vendor, vendor)
				}
				for i, rule := range g.Allow {
					checkRule(t, p, a, g, i, rule)
				}
			}
		}
	})
}

// checkRule checks a parsed rule is complete, and that the call it describes
// (placeholders filled in, each parameter condition met) is allowed by it or
// by an earlier rule.
func checkRule(t *testing.T, p *Policy, a *Agent, g *Grant, i int, rule *Rule) {
	t.Helper()
	if rule.Path.String() == "" || !contains(methods, rule.Method) {
		t.Fatalf("rule %s: %q %q", rule.ID, rule.Method, rule.Path)
	}
	if want := "agents." + a.Name + "." + g.Vendor + ".allow[" + strconv.Itoa(i) + "]"; rule.ID != want {
		t.Fatalf("rule ID %q, want %q", rule.ID, want)
	}
	if p.Halt || a.Revoked {
		return
	}
	r := Request{Agent: a.Name, Vendor: g.Vendor, Method: rule.Method, Path: instantiate(rule.Path.String())}
	r.Params = make(map[string][]string)
	for name, values := range rule.Params {
		if len(values) == 0 {
			t.Fatalf("rule %s: parameter %s allows no value", rule.ID, name)
		}
		r.Params[name] = []string{values[0]}
	}
	v, got := p.Authorize(r)
	if v.Decision != Allowed || got == nil {
		t.Fatalf("rule %s does not allow %s %s %v: %+v", rule.ID, r.Method, r.Path, r.Params, v)
	}
	for j := 0; j < len(g.Allow) && g.Allow[j] != got; j++ {
		if j >= i {
			t.Fatalf("rule %s allowed a call meant for %s", got.ID, rule.ID)
		}
	}
}

// instantiate fills each {placeholder} of a template with one ID character.
func instantiate(template string) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(template, '{')
		if open < 0 {
			return b.String() + template
		}
		b.WriteString(template[:open])
		b.WriteString("a")
		template = template[open+strings.IndexByte(template[open:], '}')+1:]
	}
}
