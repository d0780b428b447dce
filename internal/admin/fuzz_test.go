package admin_test

import (
	"testing"

	"github.com/keybrake/keybrake/internal/admin"
)

// FuzzParseQuery: whatever a query string says, ParseQuery either refuses
// it or reads a query that EncodeQuery writes back to the same query.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"",
		"agent=refund-bot&since=2026-01-02T03:04:05Z&follow=1",
		"since=2026-01-02T03:04:05.123456789%2B02:00&until=2026-01-02T04:00:00Z",
		"decision=capped&limit=10&customer=cus_1&vendor=stripe",
		"agent=a&agent=b",
		"limit=-1",
		"a=1;b=2",
		"agent=%ZZ",
		"follow=0&customer=%26x%3Dy",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, follow, err := admin.ParseQuery(raw)
		if err != nil {
			return
		}
		enc := admin.EncodeQuery(q, follow)
		q2, follow2, err := admin.ParseQuery(enc)
		if err != nil {
			t.Fatalf("ParseQuery(%q) read %+v, whose encoding %q does not parse: %v", raw, q, enc, err)
		}
		if follow2 != follow || !q2.Since.Equal(q.Since) || !q2.Until.Equal(q.Until) {
			t.Fatalf("%q -> %+v -> %q -> %+v", raw, q, enc, q2)
		}
		q2.Since, q2.Until = q.Since, q.Until
		if q2 != q {
			t.Fatalf("%q -> %+v -> %q -> %+v", raw, q, enc, q2)
		}
	})
}
