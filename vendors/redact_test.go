package vendors_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/vendors"
	_ "github.com/keybrake/keybrake/vendors/builtin" // registers the vendors' secret formats
)

func TestRedactParam(t *testing.T) {
	tests := []struct {
		key, value, want string
		keep             bool
	}{
		{"card[cvc]", "123", "", false},
		{"payment_method_data[card][cvc]", "123", "", false},
		{"CVC", "123", "", false},
		{"card[number]", "4242424242424242", "424242******4242", true},
		{"card[number]", "4242 4242 4242 4242", "424242******4242", true},
		{"description", "order 4000056655665556 refund", "order 400005******5556 refund", true},
		{"description", "1234567890123", "1234567890123", true}, // fails Luhn: not a card
		{"metadata[note]", "key sk_live_abcDEF123 leaked", "key [redacted] leaked", true},
		{"metadata[note]", "rk_test_51abc", "[redacted]", true},
		{"amount", "1099", "1099", true},
		{"charge", "ch_1", "ch_1", true},
		{"refund", "re_RlgOR7xXLqdGbMX", "re_RlgOR7xXLqdGbMX", true}, // a Stripe refund id, not a Resend key
		{"note", "re_123456789_abcdefghijk", "[redacted]", true},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			got, keep := vendors.RedactParam(tt.key, tt.value)
			if keep != tt.keep || got != tt.want {
				t.Fatalf("RedactParam = %q, %v; want %q, %v", got, keep, tt.want, tt.keep)
			}
		})
	}
}

// redactCorpus is text RedactText must read as the expressions did: card
// numbers at every length, split and joined every way, next to each other
// and to credentials, and credentials inside and beside words.
var redactCorpus = []string{
	"", "4", "4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242",
	"4242  4242 4242 4242", "4242 -4242", "4242--4242-4242-4242", "4242424242424242 ", " 4242424242424242",
	"42424242424242424242",                 // 20 digits: the first 19 fail Luhn, kept
	"424242424242424242424242424242424242", // runs of 19 after 19
	"4000056655665556 4000056655665556",    // two cards, a space apart: one run of 19, then the rest
	"4000056655665556x4000056655665556",    // two cards, apart
	"order 4000056655665556 refund", "378282246310005", "30569309025904", "6011111111111117",
	"3056930902590", // 13 digits
	"1234567890123", "0000000000000", "00000000000000000000000000",
	"4242 4242 4242 424", "4-2-4-2-4-2-4-2-4-2-4-2-4-2-4-2", "4 2 4 2 4 2 4 2 4 2 4 2 4 2 4 2 -",
	"\u0664\u0662\u0664\u0662 ٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢", // Arabic-Indic digits are not \d
	"key sk_live_abcDEF123 leaked", "rk_test_51abc", "sk_live_", "xsk_live_abc", "sk_live_abc_", "sk_live_abc-def",
	"sk_test_4242424242424242", "4242424242424242sk_live_a", "4242424242424242 sk_live_a",
	"whsec_abc", "whsec_", "re_123456789_abcdefghijk", "re_RlgOR7xXLqdGbMX", "re__x", "re_a_b_c",
	"SK0123456789abcdef0123456789ABCDEF", "SK0123456789abcdef0123456789ABCDE", "SK0123456789abcdef0123456789ABCDEF0",
	"xSK0123456789abcdef0123456789ABCDEF", "pk_live_abc", "Pk_live_abc", "ab\xffsk_live_x\xfe", "sk_live_\xff",
	"metadata[sk_test_zzz]", "a&b=c [x]", "ch_3MmlLrLkdIwHu7ix0snN0B15", "6735",
}

// TestRedactTextMatchesRegexp checks the scanners against the expressions
// they replace, on the corpus and on it joined pairwise.
func TestRedactTextMatchesRegexp(t *testing.T) {
	var texts []string
	for _, a := range redactCorpus {
		for _, b := range redactCorpus {
			texts = append(texts, a+b, a+" "+b, a+"-"+b)
		}
	}
	for _, s := range texts {
		if got, want := vendors.RedactText(s), vendors.RedactTextByRegexp(s); got != want {
			t.Errorf("RedactText(%q) = %q, the expressions give %q", s, got, want)
		}
	}
}

func FuzzRedactText(f *testing.F) {
	for _, s := range redactCorpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := vendors.RedactText(s), vendors.RedactTextByRegexp(s); got != want {
			t.Fatalf("RedactText(%q) = %q, the expressions give %q", s, got, want)
		}
	})
}

// TestRedactTextKeepsCleanText checks that a text with nothing to mask is
// returned as it is, without a copy.
func TestRedactTextKeepsCleanText(t *testing.T) {
	for _, s := range []string{"ch_3MmlLrLkdIwHu7ix0snN0B15", "1000", "metadata[order_id]", "order 6735"} {
		if allocs := testing.AllocsPerRun(10, func() { vendors.RedactText(s) }); allocs != 0 {
			t.Errorf("RedactText(%q) allocates %v times", s, allocs)
		}
	}
}

func TestClues(t *testing.T) {
	tests := []struct {
		format string
		want   []string // nil: none known, every text is scanned
	}{
		{`(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+`, []string{"sk_test_", "sk_live_", "rk_test_", "rk_live_"}},
		{`whsec_[A-Za-z0-9]+`, []string{"whsec_"}},
		{`SK[0-9a-fA-F]{32}`, []string{"SK"}},
		{`re_[A-Za-z0-9]+_[A-Za-z0-9]+`, []string{"re_"}},
		{`pk_(?:live|test)_[A-Za-z0-9]+`, []string{"pk_live_", "pk_test_"}},
		{`(?:abc)+x`, []string{"abc"}},
		{`a(?:bc)?d`, []string{"a"}}, // an optional part promises nothing
		{`(?:key|tok)[0-9]{2,}|secret`, []string{"key", "tok", "secret"}},
		{`(?i)sk_live_[a-z]+`, nil}, // case-folded
		{`[a-z]+`, nil},
		{`x*`, nil},
		{`a|[0-9]`, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a"}},
		{`a|[a-z]`, nil}, // a branch of too many characters promises nothing
		{`\x{FFFD}abc|def`, nil},
		{`(?:a|b|c|d)(?:e|f|g|h)(?:i|j)`, []string{ // 32 to join the third: two parts are joined
			"ae", "af", "ag", "ah", "be", "bf", "bg", "bh", "ce", "cf", "cg", "ch", "de", "df", "dg", "dh"}},
	}
	for _, tt := range tests {
		got := vendors.Clues(tt.format)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Clues(%q) = %q, want %q", tt.format, got, tt.want)
			continue
		}
		// Every match holds a clue.
		re := regexp.MustCompile(tt.format)
		for _, s := range []string{"sk_live_abc", "rk_test_1", "whsec_x", "SK0123456789abcdef0123456789ABCDEF", "re_a_b",
			"pk_test_1", "abcabcx", "ad", "abcd", "key12", "tok99", "secret", "Sk_LIVE_x", "aei", "dhj"} {
			if m := re.FindString(s); m != "" && got != nil && !slices.ContainsFunc(got, func(c string) bool { return strings.Contains(m, c) }) {
				t.Errorf("Clues(%q) = %q: match %q holds none", tt.format, got, m)
			}
		}
	}
}

func TestSensitiveNameMatchesSuffixes(t *testing.T) {
	names := []string{"", "_", "cvc", "CVC", "xcvc", "x_cvc", "x__cvc", "cvc_", "_cvc", "card[cvc]", "card[x_cvc]", "card[cvc]x",
		"token", "auth_token", "sip_auth_password", "password_hint", "api_key", "apikey", "my_api_key", "pin", "spin", "a_pin",
		"metadata[order_id]", "card[number]", "a[b][secret]", "a[secret][b]", "[", "]", "a[", "cvv2", "cvv_2", "Secret", "x[TOKEN]"}
	for _, a := range names {
		for _, b := range []string{"", "_", "x", "_cvc", "[token]", "]"} {
			k := a + b
			if got, want := vendors.SensitiveName(k), vendors.SensitiveNameBySuffixes(k); got != want {
				t.Errorf("sensitiveName(%q) = %v, by suffixes %v", k, got, want)
			}
		}
	}
}
