package resend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keybrake/keybrake/vendors"
)

// toAny converts a parsed value to what encoding/json decodes with
// UseNumber, to compare the two readers.
func toAny(v *jsonValue) any {
	switch v.kind {
	case jsonString:
		return v.text
	case jsonNumber:
		return json.Number(v.text)
	case jsonBool:
		return v.text == "true"
	case jsonNull:
		return nil
	case jsonArray:
		out := make([]any, len(v.items))
		for i, item := range v.items {
			out[i] = toAny(item)
		}
		return out
	case jsonObject:
		out := make(map[string]any, len(v.members))
		for _, m := range v.members {
			out[m.key] = toAny(m.value)
		}
		return out
	}
	panic("bad kind")
}

func stdDecode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func TestParseJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `""`, `0`, `-0`, `-1.5e+10`, `1E-2`, `true`, `false`, `null`,
		` {"a" : [1, 2.0, "x", null, true, {"b": {}}] } ` + "\n\t\r",
		`{"esc":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`,
		`{"k":"caf` + "\u00e9" + `", "é":1, "E":2}`,
		`{"a":{"a":{"a":1}}}`,
		`[` + strings.Repeat(`[`, maxDepth-1) + strings.Repeat(`]`, maxDepth-1) + `]`,
		`{"\u0000":"\u0000"}`,
		`"<script>\u003c/script>"`,
	} {
		got, err := parseJSON([]byte(s))
		if err != nil {
			t.Errorf("parseJSON(%q): %v", s, err)
			continue
		}
		want, err := stdDecode([]byte(s))
		if err != nil {
			t.Fatalf("encoding/json(%q): %v", s, err)
		}
		if !reflect.DeepEqual(toAny(got), want) {
			t.Errorf("parseJSON(%q) = %#v, encoding/json %#v", s, toAny(got), want)
		}
	}
}

func TestParseJSONRefuses(t *testing.T) {
	for _, tt := range []struct{ body, code, why string }{
		{``, codeBadJSON, "empty"},
		{"  \n", codeBadJSON, "empty"},
		{`{`, codeBadJSON, "ends inside"},
		{`{"a"}`, codeBadJSON, "':'"},
		{`{"a":1,}`, codeBadJSON, "a key"},
		{`[1,]`, codeBadJSON, "a value"},
		{`[1 2]`, codeBadJSON, "',' or ']'"},
		{`{"a":1 "b":2}`, codeBadJSON, "',' or '}'"},
		{`01`, codeBadJSON, "data after"},
		{`1.`, codeBadJSON, "a digit"},
		{`.5`, codeBadJSON, "a value"},
		{`-`, codeBadJSON, "a digit"},
		{`1e`, codeBadJSON, "a digit"},
		{`+1`, codeBadJSON, "a value"},
		{`NaN`, codeBadJSON, "a value"},
		{`tru`, codeBadJSON, "true"},
		{`nul`, codeBadJSON, "null"},
		{`"a`, codeBadJSON, `'"'`},
		{`"\x"`, codeBadJSON, "bad escape"},
		{`"\u12"`, codeBadJSON, `\u escape`},
		{`"\u+123"`, codeBadJSON, `\u escape`},
		{"\"a\tb\"", codeBadJSON, "control character"},
		{"\"a\nb\\n\"", codeBadJSON, "control character"},
		{"\"\\n\nb\"", codeBadJSON, "control character"},
		{`"\ud800"`, codeBadJSON, "surrogate"},
		{`"\udc00"`, codeBadJSON, "surrogate"},
		{`"\ud800\u0041"`, codeBadJSON, "surrogate"},
		{`"\ud800\ud800"`, codeBadJSON, "surrogate"},
		{"\"\xff\"", codeBadJSON, "UTF-8"},
		{"\xef\xbb\xbf{}", codeBadJSON, "a value"},
		{`{} {}`, codeBadJSON, "data after"},
		{`{}x`, codeBadJSON, "data after"},
		{strings.Repeat(`[`, maxDepth+1) + strings.Repeat(`]`, maxDepth+1), codeBadJSON, "deeper"},
		{strings.Repeat(`{"a":`, maxDepth+1) + `1` + strings.Repeat(`}`, maxDepth+1), codeBadJSON, "deeper"},
		{`{"a":1,"a":1}`, codeDuplicateKey, "twice"},
		{`{"a":1,"A":1}`, codeDuplicateKey, "differ only in case"},
		{`{"k":1,"\u212a":1}`, codeDuplicateKey, "differ only in case"}, // the Kelvin sign folds to k
		{`{"x":[{"b":1,"b":2}]}`, codeDuplicateKey, "twice"},
		{`{"a":1,"\u0061":2}`, codeDuplicateKey, "twice"},
	} {
		_, err := parseJSON([]byte(tt.body))
		var inv *vendors.Invalid
		if !errors.As(err, &inv) || inv.Code != tt.code || !strings.Contains(inv.Reason, tt.why) {
			t.Errorf("parseJSON(%q) = %v, want %s ...%s...", tt.body, err, tt.code, tt.why)
		}
	}
}

func TestFoldKeyMatchesEncodingJSON(t *testing.T) {
	// encoding/json fills a field from any key that folds to its name;
	// foldKey must put such keys together.
	var into struct {
		Subject string `json:"subject"`
		Kind    string `json:"kind"`
	}
	for _, k := range []string{"SUBJECT", "Subject", "ſubject", "\u212aind", "KIND"} {
		into.Subject, into.Kind = "", ""
		if err := json.Unmarshal([]byte(`{"`+k+`":"x"}`), &into); err != nil {
			t.Fatal(err)
		}
		matched := into.Subject == "x" || into.Kind == "x"
		together := foldKey(k) == foldKey("subject") || foldKey(k) == foldKey("kind")
		if matched != together {
			t.Errorf("%q: encoding/json matched %v, foldKey together %v", k, matched, together)
		}
	}
}

// FuzzParseJSON checks that whatever parseJSON accepts, encoding/json
// accepts too and reads the same, and that it refuses valid JSON only for
// a reason it documents.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,"b",null,true]}`, `{"a":1,"A":2}`, `"\ud83d\ude00"`, `"\ud800"`, `[[[[]]]]`, `{"k":{"k":1}}`, `-0.0e-0`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseJSON(b)
		if err != nil {
			var inv *vendors.Invalid
			if !errors.As(err, &inv) || (inv.Code != codeBadJSON && inv.Code != codeDuplicateKey) {
				t.Fatalf("refused with %v", err)
			}
			if inv.Code == codeBadJSON && json.Valid(b) && utf8.Valid(b) &&
				!strings.Contains(inv.Reason, "deeper") && !strings.Contains(inv.Reason, "surrogate") {
				t.Fatalf("refused valid JSON %q: %v", b, err)
			}
			return
		}
		want, err := stdDecode(b)
		if err != nil || !json.Valid(b) {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", b, err)
		}
		if got := toAny(v); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: parseJSON %#v, encoding/json %#v", b, got, want)
		}
	})
}

func TestParseJSONManyKeys(t *testing.T) {
	// Past smallObject members, duplicates are found through a map: the
	// same answers either way.
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	obj := func(extra string) []byte { return []byte("{" + strings.Join(keys, ",") + extra + "}") }
	if _, err := parseJSON(obj("")); err != nil {
		t.Fatalf("40 distinct keys: %v", err)
	}
	for _, extra := range []string{`,"k3":1`, `,"K3":1`, `,"k39":1`, `,"K20":1`} {
		var inv *vendors.Invalid
		if _, err := parseJSON(obj(extra)); !errors.As(err, &inv) || inv.Code != codeDuplicateKey {
			t.Errorf("40 keys and %s: %v", extra, err)
		}
	}
	// A duplicate inside the first smallObject members, and one that
	// arrives exactly when the map takes over.
	small := make([]string, smallObject)
	for i := range small {
		small[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	for _, extra := range []string{`,"k0":1`, `,"k15":1`} {
		b := []byte("{" + strings.Join(small, ",") + extra + "}")
		var inv *vendors.Invalid
		if _, err := parseJSON(b); !errors.As(err, &inv) || inv.Code != codeDuplicateKey {
			t.Errorf("%d keys and %s: %v", smallObject, extra, err)
		}
	}
}
