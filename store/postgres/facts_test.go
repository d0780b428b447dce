package postgres_test

import (
	"context"
	"testing"

	"github.com/keybrake/keybrake/internal/testenv"
)

// A fact read once is answered from memory after: the row deleted behind
// the store's back (which nothing of Keybrake does) still reads, which
// only a cache can do. A fact another Store sets is read from the
// database the first time.
func TestFactsAreReadOnce(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	a, b := open(t, dsn, nil), open(t, dsn, nil)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	if err := a.SetFact(ctx, "stripe/charge/ch_1/currency", "usd"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := b.Fact(ctx, "stripe/charge/ch_1/currency"); err != nil || !ok || v != "usd" {
		t.Fatalf("another Store's fact: %q %v %v", v, ok, err)
	}
	testenv.PostgresExec(t, dsn, `DELETE FROM keybrake_facts`)
	for _, s := range []interface {
		Fact(context.Context, string) (string, bool, error)
	}{a, b} {
		if v, ok, err := s.Fact(ctx, "stripe/charge/ch_1/currency"); err != nil || !ok || v != "usd" {
			t.Fatalf("a fact read or written before: %q %v %v, want it from memory", v, ok, err)
		}
	}
	if _, ok, err := b.Fact(ctx, "stripe/charge/ch_2/currency"); err != nil || ok {
		t.Fatalf("a fact never set: %v %v", ok, err)
	}
}
