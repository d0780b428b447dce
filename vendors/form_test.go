package vendors

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// pairs collects what FormPairs reads of raw as "name=value" strings.
func pairs(raw string) ([]string, error) {
	var out []string
	err := FormPairs(raw, func(name, value string) error {
		out = append(out, name+"="+value)
		return nil
	})
	return out, err
}

func TestFormPairs(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want []string
	}{
		{"empty", "", nil},
		{"in order, repeats kept", "b=2&a=1&b=3", []string{"b=2", "a=1", "b=3"}},
		{"unescaped", "metadata%5Bk%5D=a+b%26c&x=%C3%A9", []string{"metadata[k]=a b&c", "x=é"}},
		{"empty name and value", "=&a=", []string{"=", "a="}},
		{"second = is the value's", "a=b=c", []string{"a=b=c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pairs(tt.raw)
			if err != nil {
				t.Fatalf("FormPairs(%q): %v", tt.raw, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("FormPairs(%q) read %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestFormPairsRefuses(t *testing.T) {
	tests := []struct {
		name, raw, why string
	}{
		{"semicolon", "a=1;b=2", "do not parse"},
		{"bad escape in value", "a=%zz", "do not parse"},
		{"bad escape in name", "a%=1", "do not parse"},
		{"empty pair", "a=1&&b=2", "empty pair"},
		{"& at the end", "a=1&", "empty pair"},
		{"& at the start", "&a=1", "empty pair"},
		{"only &", "&", "empty pair"},
		{"no =", "a=1&flag", `parameter "flag" has no '='`},
		{"long pair quoted short", "a=1&" + strings.Repeat("x", 100), `"` + strings.Repeat("x", 64) + `..."`},
		{"semicolon after a bad escape", "a=%zz&b=1;c=2", "invalid semicolon separator"},
		{"too many pairs", strings.Repeat("a=1&", 10000) + "a=1", "exceeded limit"},
		{"empty pair before a bad escape", "a=1&&b=%zz", "do not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := FormPairs(tt.raw, func(string, string) error { calls++; return nil })
			var inv *Invalid
			if !errors.As(err, &inv) || inv.Code != "keybrake_bad_params" {
				t.Fatalf("FormPairs(%q) = %v, want keybrake_bad_params", tt.raw, err)
			}
			if !strings.Contains(inv.Reason, tt.why) {
				t.Errorf("reason %q does not say %q", inv.Reason, tt.why)
			}
			if strings.HasPrefix(tt.why, "do not parse") && calls != 0 {
				t.Errorf("each called %d times for a form url.ParseQuery refuses", calls)
			}
		})
	}
}

// TestFormPairsOrder checks that a form with two faults is refused for the
// first: each's refusal of an early pair wins over a later empty pair, and
// nothing after a refusal is read.
func TestFormPairsOrder(t *testing.T) {
	stop := errors.New("stop")
	var seen []string
	err := FormPairs("a=1&B=2&c=3&&", func(name, _ string) error {
		seen = append(seen, name)
		if name == "B" {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("err = %v, want each's own error unchanged", err)
	}
	if fmt.Sprint(seen) != "[a B]" {
		t.Fatalf("each saw %q, want [a B]", seen)
	}
	// Faults found by FormPairs itself come in order too.
	_, err = pairs("a=1&flag&&")
	if err == nil || !strings.Contains(err.Error(), "has no '='") {
		t.Fatalf("err = %v, want the pair without '=' first", err)
	}
}

// FuzzFormPairs checks that FormPairs refuses only with keybrake_bad_params,
// and that what it accepts reads the same to url.ParseQuery: the same
// values under each name, in the same order, one pair per "&".
func FuzzFormPairs(f *testing.F) {
	f.Add("amount=100&currency=usd")
	f.Add("To=%2B15558675310&MediaUrl=a&MediaUrl=b")
	f.Add("a=1;b=2")
	f.Add("a=1&&b")
	f.Add("=&%3D=%26")
	f.Fuzz(func(t *testing.T, raw string) {
		var names, values []string
		err := FormPairs(raw, func(name, value string) error {
			names = append(names, name)
			values = append(values, value)
			return nil
		})
		if err != nil {
			var inv *Invalid
			if !errors.As(err, &inv) || inv.Code != "keybrake_bad_params" || inv.Reason == "" || !utf8.ValidString(inv.Reason) {
				t.Fatalf("FormPairs(%q) refused with %v", raw, err)
			}
			return
		}
		goParsed, perr := url.ParseQuery(raw)
		if perr != nil {
			t.Fatalf("accepted %q, which url.ParseQuery refuses: %v", raw, perr)
		}
		if raw != "" && len(names) != strings.Count(raw, "&")+1 {
			t.Fatalf("read %d pairs of %q", len(names), raw)
		}
		mine := url.Values{}
		for i, n := range names {
			mine[n] = append(mine[n], values[i])
		}
		if fmt.Sprint(mine) != fmt.Sprint(goParsed) {
			t.Fatalf("read %q as %v, url.ParseQuery as %v", raw, mine, goParsed)
		}
	})
}

func ExampleFormPairs() {
	params := url.Values{}
	err := FormPairs("to=%2B15558675310&body=Hello+there", func(name, value string) error {
		if _, dup := params[name]; dup {
			return Invalidf("keybrake_duplicate_param", "parameter %q appears more than once", name)
		}
		params[name] = []string{value}
		return nil
	})
	fmt.Println(params, err)

	err = FormPairs("to=1&&body=x", func(string, string) error { return nil })
	fmt.Println(err)
	// Output:
	// map[body:[Hello there] to:[+15558675310]] <nil>
	// keybrake_bad_params: parameters hold an empty pair (&&, or & at an end)
}
