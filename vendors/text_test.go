package vendors

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"empty", "", 64, ""},
		{"exactly n", a(64), 64, a(64)},
		{"one over", a(65), 64, a(64) + "..."},
		{"far over", a(1000), 64, a(64) + "..."},
		{"n is zero", "abc", 0, "..."},
		{"n is negative", "abc", -1, "..."},
		{"empty with n zero", "", 0, ""},
		// é is 2 bytes: the one starting at byte 63 would end at 65.
		{"two-byte rune across the cut", a(63) + "éé", 64, a(63) + "..."},
		{"two-byte rune ending at the cut", a(62) + "éé", 64, a(62) + "é..."},
		{"two-byte runes only", strings.Repeat("é", 40), 64, strings.Repeat("é", 32) + "..."},
		// € is 3 bytes, 😀 is 4: every byte of them inside the cut.
		{"three-byte rune, one byte in", a(63) + "€€", 64, a(63) + "..."},
		{"three-byte rune, two bytes in", a(62) + "€€", 64, a(62) + "..."},
		{"four-byte rune, three bytes in", a(61) + "😀😀", 64, a(61) + "..."},
		{"four-byte rune ending at the cut", a(60) + "😀😀", 64, a(60) + "😀..."},
		{"small n inside the first rune", "😀", 2, "..."},
		// Bytes that are not UTF-8 are kept one at a time, never
		// dropping more than the cut itself.
		{"invalid bytes", strings.Repeat("\x80", 70), 64, strings.Repeat("\x80", 64) + "..."},
		{"rune start without its rest", a(63) + "\xe2\x82", 64, a(63) + "\xe2..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Truncate(tt.in, tt.n)
			if got != tt.want {
				t.Fatalf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
			if utf8.ValidString(tt.in) && !utf8.ValidString(got) {
				t.Errorf("Truncate(%q, %d) = %q is not valid UTF-8", tt.in, tt.n, got)
			}
		})
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("amount=100", 64)
	f.Add(strings.Repeat("é", 40), 64)
	f.Add("a😀b", 2)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := Truncate(s, n)
		if len(s) <= n {
			if got != s {
				t.Fatalf("Truncate(%q, %d) = %q, want it unchanged", s, n, got)
			}
			return
		}
		kept, ok := strings.CutSuffix(got, "...")
		if !ok || !strings.HasPrefix(s, kept) || len(kept) > max(n, 0) {
			t.Fatalf("Truncate(%q, %d) = %q, want a prefix of at most %d bytes and ...", s, n, got, n)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Truncate(%q, %d) = %q cuts a rune", s, n, got)
		}
	})
}

func TestSortedKeys(t *testing.T) {
	tests := []struct {
		name string
		in   url.Values
		want []string
	}{
		{"nil", nil, []string{}},
		{"one", url.Values{"amount": {"1"}}, []string{"amount"}},
		{"bytewise order", url.Values{"b": nil, "a[x]": nil, "a": nil, "B": nil, "é": nil}, []string{"B", "a", "a[x]", "b", "é"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SortedKeys(tt.in)
			if got == nil || !slices.Equal(got, tt.want) {
				t.Fatalf("SortedKeys(%v) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
	// Any map with ordered keys, a set included.
	if got := SortedKeys(map[string]bool{"z": true, "m": false}); !slices.Equal(got, []string{"m", "z"}) {
		t.Errorf("SortedKeys(set) = %q, want [m z]", got)
	}
}
