package resend

import (
	"strings"
	"testing"
)

func TestPlainAddress(t *testing.T) {
	ok := []string{
		"a@x.example", "first.last+tag@sub.acme.example", "o'brien@x.example", "a!#$%&'*+-/=?^_`{|}~@x.example",
		strings.Repeat("l", 64) + "@x.example", "a@" + strings.Repeat("d", 63) + ".example", "a@x-y.example", "1@2.3",
	}
	bad := []string{
		"", "a", "@x.example", "a@", "a@x", "a@x.example.", "a@.x.example", "a@x..example", ".a@x.example", "a.@x.example",
		"a..b@x.example", "a b@x.example", `"a b"@x.example`, "a@[127.0.0.1]", "a@-x.example", "a@x-.example", "a@x_y.example",
		strings.Repeat("l", 65) + "@x.example", "a@" + strings.Repeat("d", 64) + ".example", "a@b@x.example", "ä@x.example",
		"a@exämple.com", "a@x.example(comment)", "a(comment)@x.example", strings.Repeat("a", 60) + "@" + strings.Repeat(strings.Repeat("d", 60)+".", 4) + "example",
	}
	for _, a := range ok {
		if why := plainAddress(a); why != "" {
			t.Errorf("plainAddress(%q) = %q, want accepted", a, why)
		}
	}
	for _, a := range bad {
		if why := plainAddress(a); why == "" {
			t.Errorf("plainAddress(%q) accepted", a)
		}
	}
}

func TestCheckAddressForms(t *testing.T) {
	ok := []string{
		"a@x.example", "<a@x.example>", "Acme <a@x.example>", `"Acme Billing" <a@x.example>`, "Zoë Müller <z@x.example>",
		"Acme - Billing & Co. <a@x.example>",
	}
	bad := []string{
		"Acme<a@x.example>", "Acme  <a@x.example>", " Acme <a@x.example>", "Acme <a@x.example> ", "Acme a@x.example>",
		`"Acme" Billing" <a@x.example>`, `Ac"me <a@x.example>`, `Acme\ <a@x.example>`, "Acme <b> <a@x.example>",
		"a@x.example <b@y.example>", "Acme, Inc. <a@x.example>", "Acme; <a@x.example>", "Acme\u200b <a@x.example>",
		"Acme\t <a@x.example>", "<>", "Acme <>", "Acme <a@x.example", strings.Repeat("n", 520) + " <a@x.example>",
	}
	for _, a := range ok {
		if _, err := checkAddress(a, "from", ""); err != nil {
			t.Errorf("checkAddress(%q) = %v, want accepted", a, err)
		}
	}
	for _, a := range bad {
		if _, err := checkAddress(a, "from", ""); err == nil {
			t.Errorf("checkAddress(%q) accepted", a)
		}
	}
}
