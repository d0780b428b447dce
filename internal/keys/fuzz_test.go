package keys

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoad: what Load parses never panics; it is either a *ParseError with
// a line, or a file whose every entry is well formed and unique, and which
// Add and Revoke can edit into what they mean. (Load is readPrivate and
// parse; the fuzzing is of parse, the part that reads what anyone wrote.)
func FuzzLoad(f *testing.F) {
	for _, glob := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			f.Add(readFile(f, file))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := parse("f.keys", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "f.keys" || pe.Line < 1 || pe.Msg == "" {
				t.Fatalf("error %#v", err)
			}
			return
		}
		ids, sums := map[string]bool{}, map[string]bool{}
		for i, e := range kf.Entries() {
			if !keyID.MatchString(e.ID) || !agentName.MatchString(e.Agent) || !agentName.MatchString(e.Vendor) ||
				!sha256Re.MatchString(e.SHA256) || e.Created.Location() != time.UTC || ids[e.ID] || sums[e.SHA256] {
				t.Fatalf("entry %d: %+v", i, e)
			}
			ids[e.ID], sums[e.SHA256] = true, true
		}
		for _, v := range kf.Secrets() {
			if p, _ := kf.Secret(v); !filepath.IsAbs(p) || !agentName.MatchString(v) {
				t.Fatalf("secret %q: %q", v, p)
			}
		}
		if again, _ := parse("f.keys", data); again == nil || !sameEntries(again.entries, kf.entries) || !sameSecrets(again, kf) {
			t.Fatal("the same bytes parsed differently")
		}

		e := Entry{ID: "kbk_zzzzzzzzzzzz", Agent: "fuzz", Vendor: "stripe", SHA256: hashToken("kb_fuzz"), Created: t0}
		if !kf.has(e.ID) {
			if _, err := appendEntry(kf, data, e); err != nil {
				t.Fatalf("Add would refuse a valid file: %v", err)
			}
		}
		for _, e := range kf.Entries() {
			out, changed, err := revokeEntry(kf, data, e.ID, t0)
			if err != nil || changed == e.IsRevoked() {
				t.Fatalf("Revoke %s: changed %v, %v", e.ID, changed, err)
			}
			if g, _ := parse("f.keys", out); g == nil {
				t.Fatalf("Revoke %s wrote a file that does not parse", e.ID)
			}
		}
	})
}
