package twilio

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/money"
)

func BenchmarkClassifySMS(b *testing.B) {
	r := req("POST", messages, "Body="+url.QueryEscape(strings.Repeat("Your verification code is 123456. ", 8))+
		"&From=%2B15005550006&StatusCallback=https%3A%2F%2Fexample.com%2Fstatus&To=%2B15558675310")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := (Vendor{}).Classify(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSegments(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"GSM-7 1600", strings.Repeat("Hello, world! ", 115)[:1600]},
		{"UCS-2 1600", strings.Repeat("Привет, мир! 😀 ", 100)[:1600]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					Segments(bc.body)
				}
			})
		})
	}
}

func BenchmarkSettleReconcile(b *testing.B) {
	c, err := Vendor{}.Classify(req("POST", messages, sms("")))
	if err != nil {
		b.Fatal(err)
	}
	c.Amount, _ = money.ParsePrice("0.0079 USD")
	created := []byte(message(testMessage, "null", "null", `"1"`))
	priced := []byte(message(testMessage, `"-0.00790"`, `"USD"`, `"1"`))
	get := func(ctx context.Context, path string) (int, []byte, error) { return 200, priced, nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			st, err := Vendor{}.Settle(c, created)
			if err != nil {
				b.Fatal(err)
			}
			if _, done, err := (Vendor{}).Reconcile(context.Background(), c.Operation, st.Object, "USD", get); err != nil || !done {
				b.Fatal(done, err)
			}
		}
	})
}
