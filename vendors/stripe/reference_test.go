package stripe

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The readings of parameters as they were first written, with expressions
// and splits: the reference the hand-written ones are tested against, here
// and by FuzzClassify.
var (
	keyRE    = regexp.MustCompile(`^[a-z0-9_]+(\[[^\[\]]*\])*$`)
	amountRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,7})$`)
)

// names splits "a[b][c]" into a, b, c.
func names(key string) []string {
	base, rest, _ := strings.Cut(key, "[")
	out := []string{base}
	if rest == "" {
		return out
	}
	return append(out, strings.Split(strings.TrimSuffix(rest, "]"), "][")...)
}

func inMetadata(ns []string) bool {
	return slices.Contains(ns[:len(ns)-1], "metadata")
}

// paramCorpus are keys and values at the edges of what the readers take.
var paramCorpus = []string{
	"", "a", "amount", "amount[x]", "a[]", "a[][]", "a[b][c]", "a[b]c", "a[b", "a]", "[a]", "a[[b]]", "a[b]]", "a[b[c]]",
	"A", "a-b", "a b", "a_b[0][x y]", "metadata[k]", "metadata[k][metadata]", "x[metadata][k]", "metadata", "metadata[",
	"a[metadata]", "line_items[0][price_data][unit_amount]", "é", "a[é]", "a[\x00]",
	"0", "00", "01", "1", "10", "99999999", "100000000", "+1", "-1", "1.0", " 1", "1 ", "١", "12345678", "012345678",
}

func checkReaders(t *testing.T, s string) {
	t.Helper()
	if got, want := validKey(s), keyRE.MatchString(s); got != want {
		t.Errorf("validKey(%q) = %v, the expression says %v", s, got, want)
	}
	if got, want := isAmount(s), amountRE.MatchString(s); got != want {
		t.Errorf("isAmount(%q) = %v, the expression says %v", s, got, want)
	}
	ns := names(s)
	want := paramName{base: ns[0], last: ns[len(ns)-1], nested: len(ns) > 1, inMetadata: inMetadata(ns)}
	if got := readName(s); got != want {
		t.Errorf("readName(%q) = %+v, names says %+v", s, got, want)
	}
}

func TestReadersMatchReference(t *testing.T) {
	for _, a := range paramCorpus {
		for _, b := range paramCorpus {
			checkReaders(t, a+b)
		}
	}
}

func FuzzReaders(f *testing.F) {
	for _, s := range paramCorpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkReaders(t, s) })
}

// matchLinear and uncappedLinear are match and uncapped as first written:
// every template of the table tried in order.
func matchLinear(method, path string) (*endpoint, map[string]string, error) {
	for i := range endpoints {
		e := &endpoints[i]
		if e.method != method {
			continue
		}
		vars, ok := e.path.Match(path)
		if !ok {
			continue
		}
		for name, v := range vars {
			if re := idPatterns[name]; re != nil && !re.MatchString(v) {
				return nil, nil, invalid(codeBadID, "path segment %q is not a %s ID (%s)", v, name, re)
			}
		}
		return e, vars, nil
	}
	return nil, nil, nil
}

func uncappedLinear(method, path string) string {
	for _, u := range uncappedCalls {
		if u.method != method {
			continue
		}
		if u.prefix != "" && strings.HasPrefix(path, u.prefix) {
			return u.why
		}
		if u.prefix == "" {
			if _, ok := u.path.Match(path); ok {
				return u.why
			}
		}
	}
	return ""
}

// pathCorpus is every template of both tables with IDs of each kind in
// its placeholders, and paths near them.
func pathCorpus() []string {
	templates := []string{"/", "", "/v1", "/v1/", "v1/refunds", "/v1/issuing/cards", "/v1/treasury/x/y", "/v1/checkout", "/oauth"}
	for _, e := range endpoints {
		templates = append(templates, e.path.String())
	}
	for _, u := range uncappedCalls {
		if u.prefix == "" {
			templates = append(templates, u.path.String())
		}
	}
	placeholder := regexp.MustCompile(`\{[a-z_]+\}`)
	var out []string
	for _, tpl := range templates {
		for _, id := range []string{"ch_1", "pi_1", "re_1", "cus_1", "x", "in_1", "tr_1", "fee_1", "a-b", "a.b"} {
			p := placeholder.ReplaceAllString(tpl, id)
			out = append(out, p, p+"/x", strings.TrimSuffix(p, "/"+id), strings.ToUpper(p))
		}
	}
	return out
}

func checkMatch(t *testing.T, method, path string) {
	t.Helper()
	e, vars, err := match(method, path)
	we, wvars, werr := matchLinear(method, path)
	// Which of two bad IDs an error names depends on map order, in
	// both: compare whether it is refused.
	if e != we || fmt.Sprint(vars) != fmt.Sprint(wvars) || (err == nil) != (werr == nil) {
		t.Errorf("match(%s %q) = %v %v %v; the whole table gives %v %v %v", method, path, e, vars, err, we, wvars, werr)
	}
	if got, want := uncapped(method, path), uncappedLinear(method, path); got != want {
		t.Errorf("uncapped(%s %q) = %q; the whole table gives %q", method, path, got, want)
	}
}

func TestMatchIndexMatchesTable(t *testing.T) {
	for _, p := range pathCorpus() {
		for _, m := range []string{"GET", "POST", "DELETE", "PUT"} {
			checkMatch(t, m, p)
		}
	}
}

func FuzzMatch(f *testing.F) {
	for _, p := range pathCorpus() {
		f.Add("POST", p)
	}
	f.Fuzz(func(t *testing.T, method, path string) { checkMatch(t, method, path) })
}

func TestSubjectIs(t *testing.T) {
	paths := []string{"", "/v1/", "/v1/charges/ch_1", "/v1/charges/ch_12", "/v1/charges/ch_", "/v1/chargesx/ch_1", "/v1/charges//ch_1",
		"/v1/checkout/sessions/cs_1", "/v1/refunds/re_1", "/v2/charges/ch_1", "v1/charges/ch_1", "/v1/charges/ch_1/x"}
	for kind := range owners {
		for _, id := range []string{"ch_1", "cs_1", "re_1", "", "ch_12"} {
			s := subject{kind: kind, id: id}
			for _, p := range append(paths, s.path()) {
				if got, want := s.is(p), s.path() == p; got != want {
					t.Errorf("%+v.is(%q) = %v, want %v", s, p, got, want)
				}
			}
		}
	}
}

// idCorpus are IDs and near misses of every kind.
func idCorpus() []string {
	out := []string{"", "_", "x", "ch", "ch_", "ch__", "ch_1", "ch_1_", "ch_a-b", "ch_é", "CH_1", "xch_1", "ch_1\n",
		"cs_test_", "cs_test_1", "cs_test", "cs_live_x_y", "cs__1", "pm_card_visa", "pm__", "pm_", "sub_sched_1", "sub_sched_", "sub_1_2"}
	for _, p := range idPatterns {
		for _, prefix := range p.prefixes {
			out = append(out, prefix, prefix+"1", prefix+"aZ9", prefix+"a_b", prefix+"_", "_"+prefix+"1", prefix+"1 ")
		}
	}
	return out
}

func checkID(t *testing.T, s string) {
	t.Helper()
	for kind, p := range idPatterns {
		if got, want := p.MatchString(s), regexp.MustCompile(p.String()).MatchString(s); got != want {
			t.Errorf("idPatterns[%q].MatchString(%q) = %v, its expression says %v", kind, s, got, want)
		}
	}
}

func TestIDPatternsMatchExpressions(t *testing.T) {
	for _, s := range idCorpus() {
		checkID(t, s)
	}
}

func FuzzIDPatterns(f *testing.F) {
	for _, s := range idCorpus() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkID(t, s) })
}

// scalarByMap is scalar as first written, walking the map for nested keys.
func scalarByMap(p url.Values, name string) (string, bool, error) {
	nested := ""
	for k := range p {
		if strings.HasPrefix(k, name+"[") && (nested == "" || k < nested) {
			nested = k
		}
	}
	if nested != "" {
		return "", false, invalid(codeBadParam, "%s must be a single value, not %s", name, nested)
	}
	v, ok := p[name]
	if !ok {
		return "", false, nil
	}
	return v[0], true, nil
}

func TestScalarMatchesMap(t *testing.T) {
	keys := []string{"amount", "amount[x]", "amount[a]", "amount[]", "amount_x", "amountx[y]", "amoun", "currency", "currency[0]", "a", "a[b]", "a[b][c]", "b"}
	for mask := 0; mask < 1<<len(keys); mask += 7 {
		p := url.Values{}
		for i, k := range keys {
			if mask&(1<<i) != 0 {
				p[k] = []string{"v" + k}
			}
		}
		f := form{p, slices.Sorted(maps.Keys(p))}
		for _, name := range []string{"amount", "currency", "a", "b", "amoun", "x"} {
			v, ok, err := scalar(f, name)
			wv, wok, werr := scalarByMap(p, name)
			if v != wv || ok != wok || fmt.Sprint(err) != fmt.Sprint(werr) {
				t.Fatalf("scalar(%v, %q) = %q %v %v; by the map %q %v %v", f.keys, name, v, ok, err, wv, wok, werr)
			}
		}
	}
}
