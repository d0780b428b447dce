package vendors_test

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/vendors"
	"github.com/keybrake/keybrake/vendors/builtin"
)

// The keys every grant and every vendors: section hold whatever the vendor
// declares; a vendor key by one of these names would be shadowed.
var (
	commonGrantKeys  = []string{"daily_cap", "per_call_max", "daily_count", "allow"}
	commonSharedKeys = []string{"daily_cap", "daily_count", "prices"}
	keyName          = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// settings is a vendors.Settings of fixed values.
type settings struct {
	counts map[string]int64
	flags  map[string]bool
}

func (s settings) Count(key string) int64 { return s.counts[key] }
func (s settings) Flag(key string) bool   { return s.flags[key] }

// TestBuiltinInfo checks that every built-in vendor describes itself in a
// way the shared code can read without naming it: the policy parser finds
// each key once and knows what to do with it, the scope check can match
// every list, a priced call has prices to count against, and the
// redaction and audit record get what they need.
func TestBuiltinInfo(t *testing.T) {
	vs := builtin.Vendors()
	if len(vs) == 0 {
		t.Fatal("no built-in vendors")
	}
	var names []string
	for _, v := range vs {
		names = append(names, v.Name())
	}
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("vendor names %q, want unique and in name order", names)
	}
	for _, v := range vs {
		t.Run(v.Name(), func(t *testing.T) {
			info := v.Info()
			if info.Help == "" {
				t.Error("no Help")
			}
			checkKeys(t, "Grant", info.Grant, commonGrantKeys)
			checkKeys(t, "Shared", info.Shared, commonSharedKeys)
			checkPrices(t, info)
			checkUnits(t, info)

			if len(info.RequestIDHeaders) == 0 {
				t.Error("no RequestIDHeaders: audit records would keep no vendor request ID")
			}
			seen := map[string]bool{}
			for _, h := range info.RequestIDHeaders {
				c := http.CanonicalHeaderKey(strings.TrimSpace(h))
				if h == "" || c == "" || seen[c] {
					t.Errorf("RequestIDHeaders %q: empty or repeated %q", info.RequestIDHeaders, h)
				}
				seen[c] = true
			}

			for _, s := range info.Secrets {
				re, err := regexp.Compile(s)
				if err != nil {
					t.Errorf("Secrets %q does not compile: %v", s, err)
					continue
				}
				if re.MatchString("") {
					t.Errorf("Secrets %q matches the empty string: it would redact nothing and everything", s)
				}
			}
		})
	}
}

// checkKeys checks one section's keys: well-named, each once, none a
// common key, each of a kind the section takes and complete for its kind.
func checkKeys(t *testing.T, section string, keys []vendors.Key, common []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, k := range keys {
		if !keyName.MatchString(k.Name) {
			t.Errorf("%s key %q: want lower snake case", section, k.Name)
		}
		if seen[k.Name] {
			t.Errorf("%s key %q declared twice", section, k.Name)
		}
		seen[k.Name] = true
		if slices.Contains(common, k.Name) {
			t.Errorf("%s key %q is a common key", section, k.Name)
		}
		if k.Help == "" {
			t.Errorf("%s key %q has no Help", section, k.Name)
		}
		switch k.Kind {
		case vendors.ListKey:
			if section != "Grant" {
				t.Errorf("%s key %q is a ListKey outside a grant", section, k.Name)
			}
			if k.Subject != vendors.Recipients && k.Subject != vendors.Senders {
				t.Errorf("ListKey %q checks Subject %d, want Recipients or Senders", k.Name, k.Subject)
			}
			m := k.Match
			if m == nil || m.Check == nil || m.Match == nil || m.Noun == "" || m.Plural == "" {
				t.Errorf("ListKey %q has no complete Matcher: %+v", k.Name, m)
			}
		case vendors.MaxKey:
			if section != "Grant" {
				t.Errorf("%s key %q is a MaxKey outside a grant", section, k.Name)
			}
			if k.Subject != vendors.RecipientsPerEmail {
				t.Errorf("MaxKey %q checks Subject %d, not a count", k.Name, k.Subject)
			}
		case vendors.CustomersKey, vendors.AccountsKey:
			if section != "Grant" {
				t.Errorf("%s key %q is a scope outside a grant", section, k.Name)
			}
		case vendors.CountSetting, vendors.FlagSetting:
			if section != "Shared" {
				t.Errorf("%s key %q is a setting outside the shared section", section, k.Name)
			}
		default:
			t.Errorf("%s key %q has Kind %d", section, k.Name, k.Kind)
		}
	}
}

func checkPrices(t *testing.T, info vendors.Info) {
	t.Helper()
	if info.Units != nil && len(info.Prices) == 0 {
		t.Error("Units is set but no Prices: no priced call could be counted")
	}
	seen := map[string]bool{}
	for _, p := range info.Prices {
		if !keyName.MatchString(p) || seen[p] {
			t.Errorf("Prices %q: %q is malformed or repeated", info.Prices, p)
		}
		seen[p] = true
	}
}

// checkUnits checks that Units counts a bounded call of every price item
// as an item with a price, and that what it refuses names a setting the
// vendor declares, which once set lets the call count.
func checkUnits(t *testing.T, info vendors.Info) {
	t.Helper()
	if info.Units == nil {
		return
	}
	none := settings{}
	all := settings{counts: map[string]int64{}, flags: map[string]bool{}}
	shared := map[string]vendors.KeyKind{}
	for _, k := range info.Shared {
		shared[k.Name] = k.Kind
		all.counts[k.Name] = 7
		all.flags[k.Name] = true
	}
	for _, item := range info.Prices {
		got, n, err := info.Units(vendors.Priced{Item: item, Destination: "+15558675310", Quantity: 1, Recipients: 1}, none)
		if err != nil || !slices.Contains(info.Prices, got) || n < 0 {
			t.Errorf("Units(1 %s) = %q, %d, %v; want a priced item", item, got, n, err)
		}
		unbounded := vendors.Priced{Item: item, Quantity: -1, Recipients: 1}
		_, _, err = info.Units(unbounded, none)
		var up *vendors.Unpriced
		if !errors.As(err, &up) {
			continue
		}
		if kind, ok := shared[up.Key]; !ok || kind != vendors.CountSetting && kind != vendors.FlagSetting {
			t.Errorf("Units(unbounded %s) refuses naming %q, not a setting in Shared", item, up.Key)
		}
		if !strings.HasPrefix(up.Code, "keybrake_") || up.Reason == "" {
			t.Errorf("Units(unbounded %s) = %+v: want a keybrake_ code and a reason", item, up)
		}
		if _, _, err := info.Units(unbounded, all); errors.As(err, &up) {
			t.Errorf("Units(unbounded %s) with every setting set: %v", item, err)
		}
	}
}

// TestInfoIsFresh checks that changing one Info changes neither the next
// nor the vendor: the shared code may keep and sort what it reads.
func TestInfoIsFresh(t *testing.T) {
	for _, v := range builtin.Vendors() {
		t.Run(v.Name(), func(t *testing.T) {
			want := describe(v.Info())
			got := v.Info()
			for i := range got.Grant {
				got.Grant[i].Name += "!"
			}
			for _, s := range [][]string{got.Prices, got.RequestIDHeaders, got.Secrets} {
				for i := range s {
					s[i] += "!"
				}
			}
			if again := describe(v.Info()); again != want {
				t.Errorf("after changing one Info, the next is\n%s\nwant\n%s", again, want)
			}
		})
	}
}

// describe renders what of an Info can be compared: everything but
// functions.
func describe(info vendors.Info) string {
	var b strings.Builder
	fmt.Fprintf(&b, "help %q\n", info.Help)
	for _, keys := range [][]vendors.Key{info.Grant, info.Shared} {
		for _, k := range keys {
			fmt.Fprintf(&b, "key %s %d %d %v %q\n", k.Name, k.Kind, k.Subject, k.Match != nil, k.Help)
		}
	}
	fmt.Fprintf(&b, "prices %q units %v\nheaders %q replay %q\nsecrets %q\n", info.Prices, info.Units != nil, info.RequestIDHeaders, info.ReplayHeader, info.Secrets)
	return b.String()
}

// sid is a messaging service SID: MG and 32 lower-case hex digits.
const sid = "MG0123456789abcdef0123456789abcdef"

func TestMatcherCheck(t *testing.T) {
	tests := []struct {
		name  string
		m     *vendors.Matcher
		entry string
		ok    bool
	}{
		{"destination number", vendors.PhoneDestinations, "+15558675310", true},
		{"destination shortest number", vendors.PhoneDestinations, "+1234567", true},
		{"destination longest number", vendors.PhoneDestinations, "+123456789012345", true},
		{"destination country prefix", vendors.PhoneDestinations, "+1*", true},
		{"destination longer prefix", vendors.PhoneDestinations, "+44207*", true},
		{"destination without plus", vendors.PhoneDestinations, "15558675310", false},
		{"destination leading zero", vendors.PhoneDestinations, "+05558675310", false},
		{"destination too short", vendors.PhoneDestinations, "+123456", false},
		{"destination too long", vendors.PhoneDestinations, "+1234567890123456", false},
		{"destination with spaces", vendors.PhoneDestinations, "+1 555 867 5310", false},
		{"destination star alone", vendors.PhoneDestinations, "*", false},
		{"destination plus star", vendors.PhoneDestinations, "+*", false},
		{"destination star inside", vendors.PhoneDestinations, "+1*5", false},
		{"destination empty", vendors.PhoneDestinations, "", false},
		{"destination service SID", vendors.PhoneDestinations, sid, false},

		{"sender number", vendors.PhoneSenders, "+15005550006", true},
		{"sender service SID", vendors.PhoneSenders, sid, true},
		{"sender SID upper-case hex", vendors.PhoneSenders, "MG0123456789ABCDEF0123456789ABCDEF", false},
		{"sender SID too short", vendors.PhoneSenders, sid[:len(sid)-1], false},
		{"sender other SID", vendors.PhoneSenders, "PN0123456789abcdef0123456789abcdef", false},
		{"sender prefix", vendors.PhoneSenders, "+1*", false},
		{"sender alphanumeric", vendors.PhoneSenders, "Acme", false},
		{"sender empty", vendors.PhoneSenders, "", false},

		{"recipient address", vendors.EmailRecipients, "ops@example.com", true},
		{"recipient address with tag", vendors.EmailRecipients, "ops+billing@mail.example.co.uk", true},
		{"recipient domain", vendors.EmailRecipients, "@example.com", true},
		{"recipient upper case", vendors.EmailRecipients, "Ops@Example.com", false},
		{"recipient bare domain", vendors.EmailRecipients, "example.com", false},
		{"recipient dotless domain", vendors.EmailRecipients, "@localhost", false},
		{"recipient no domain", vendors.EmailRecipients, "ops@", false},
		{"recipient display name", vendors.EmailRecipients, "ops <ops@example.com>", false},
		{"recipient space", vendors.EmailRecipients, "ops@example.com ", false},
		{"recipient empty", vendors.EmailRecipients, "", false},

		{"sender address", vendors.EmailSenders, "billing@acme.example", true},
		{"sender domain", vendors.EmailSenders, "@acme.example", true},
		{"sender upper-case domain", vendors.EmailSenders, "@ACME.example", false},
		{"sender two ats", vendors.EmailSenders, "a@b@acme.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Check(tt.entry)
			if (err == nil) != tt.ok {
				t.Fatalf("Check(%q) = %v, want ok %v", tt.entry, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "want") {
				t.Errorf("Check(%q) = %v: does not say what is wanted", tt.entry, err)
			}
		})
	}
}

func TestMatcherMatch(t *testing.T) {
	tests := []struct {
		name         string
		m            *vendors.Matcher
		entry, value string
		want         bool
	}{
		{"prefix admits its country", vendors.PhoneDestinations, "+1*", "+15558675310", true},
		{"prefix refuses another country", vendors.PhoneDestinations, "+1*", "+445558675310", false},
		{"longer prefix", vendors.PhoneDestinations, "+4420*", "+442071234567", true},
		{"longer prefix refuses its neighbour", vendors.PhoneDestinations, "+4420*", "+442171234567", false},
		{"number admits itself", vendors.PhoneDestinations, "+15558675310", "+15558675310", true},
		{"number is not a prefix", vendors.PhoneDestinations, "+1555867531", "+15558675310", false},
		{"number refuses another", vendors.PhoneDestinations, "+15558675310", "+15558675311", false},

		{"sender number", vendors.PhoneSenders, "+15005550006", "+15005550006", true},
		{"sender other number", vendors.PhoneSenders, "+15005550006", "+15005550007", false},
		{"service SID", vendors.PhoneSenders, sid, sid, true},
		{"other service SID", vendors.PhoneSenders, sid, sid[:len(sid)-1] + "0", false},
		{"SID is not a number", vendors.PhoneSenders, sid, "+15005550006", false},

		{"domain admits its address", vendors.EmailRecipients, "@example.com", "ops@example.com", true},
		{"domain in any case", vendors.EmailRecipients, "@example.com", "Ops@EXAMPLE.com", true},
		{"domain refuses a subdomain", vendors.EmailRecipients, "@example.com", "ops@mail.example.com", false},
		{"domain refuses a longer name", vendors.EmailRecipients, "@example.com", "ops@badexample.com", false},
		{"domain refuses another", vendors.EmailRecipients, "@example.com", "ops@example.org", false},
		{"subdomain entry", vendors.EmailRecipients, "@mail.example.com", "ops@mail.example.com", true},
		{"subdomain entry refuses its parent", vendors.EmailRecipients, "@mail.example.com", "ops@example.com", false},
		{"address admits itself", vendors.EmailRecipients, "ops@example.com", "ops@example.com", true},
		{"address in any case", vendors.EmailRecipients, "ops@example.com", "OPS@Example.COM", true},
		{"address refuses another", vendors.EmailRecipients, "ops@example.com", "ops2@example.com", false},
		{"address refuses its domain", vendors.EmailRecipients, "ops@example.com", "@example.com", false},
		{"sender domain", vendors.EmailSenders, "@acme.example", "Billing@Acme.Example", true},
		{"sender address", vendors.EmailSenders, "billing@acme.example", "billing@acme.example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.m.Check(tt.entry); err != nil {
				t.Fatalf("the entry itself is refused: %v", err)
			}
			if got := tt.m.Match(tt.entry, tt.value); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.entry, tt.value, got, tt.want)
			}
		})
	}
}

// TestMatcherNouns checks the words the scope's refusals use.
func TestMatcherNouns(t *testing.T) {
	for _, tt := range []struct {
		m            *vendors.Matcher
		noun, plural string
	}{
		{vendors.PhoneDestinations, "destination", "destinations"},
		{vendors.PhoneSenders, "sender", "senders"},
		{vendors.EmailRecipients, "recipient", "recipients"},
		{vendors.EmailSenders, "sender", "senders"},
	} {
		if tt.m.Noun != tt.noun || tt.m.Plural != tt.plural {
			t.Errorf("Matcher %q/%q, want %q/%q", tt.m.Noun, tt.m.Plural, tt.noun, tt.plural)
		}
	}
}
