package policy

import (
	"testing"
)

func BenchmarkParse(b *testing.B) {
	data := readFile(b, "testdata/good/full.yaml")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := Parse("full.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorize decides a call that only the last of five rules
// allows, through a placeholder and a parameter condition.
func BenchmarkAuthorize(b *testing.B) {
	p := mustParse(b, "keybrake.yaml", []byte(authorizePolicy))
	r := req("refund-bot", "stripe", "POST", "/v1/customers/cus_1", "metadata[tier]", "gold", "email", "a@example.com")
	if v, _ := p.Authorize(r); v.Decision != Allowed {
		b.Fatal(v)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, _ := p.Authorize(r); v.Decision != Allowed {
				b.Error(v)
				return
			}
		}
	})
}

func BenchmarkAuthorizeRefused(b *testing.B) {
	p := mustParse(b, "keybrake.yaml", []byte(authorizePolicy))
	r := req("refund-bot", "stripe", "POST", "/v1/transfers", "amount", "100")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, _ := p.Authorize(r); v.Decision != Blocked {
				b.Error(v)
				return
			}
		}
	})
}

// BenchmarkLimits counts a converted amount against an agent and a vendor
// cap, and both unit counts.
func BenchmarkLimits(b *testing.B) {
	p := mustParse(b, "shared.yaml", []byte(sharedPolicy))
	r := req("refund-bot", "stripe", "POST", "/v1/refunds")
	_, rule := p.Authorize(r)
	a := amt(b, "10.00 EUR")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if l, v := p.Limits(r, rule, a, 1, "2026-11-25"); v.Decision != Allowed || len(l) != 4 {
				b.Error(v)
				return
			}
		}
	})
}
