package keybrake_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
)

// TestDumpContext: DumpContext writes what Dump writes, and a context that
// has ended stops it before it reads the store.
func TestDumpContext(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_dump", Amount: 900000, Currency: "usd", Captured: true})
	kb := openBrake(t, capPolicy, keybrake.Options{Endpoints: fakeEndpoint(url)})
	bot := newSDK(t, kb, "refund-bot")
	for range 2 {
		if _, err := bot.Refunds.New(refund("ch_dump", 2500)); err != nil {
			t.Fatal(err)
		}
	}
	q := audit.Query{Agent: "refund-bot"}

	var plain, withCtx bytes.Buffer
	if err := kb.Dump(&plain, q); err != nil {
		t.Fatal(err)
	}
	if err := kb.DumpContext(context.Background(), &withCtx, q); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(plain.String(), "\n"); n != 2 {
		t.Fatalf("Dump wrote %d lines, want 2:\n%s", n, plain.String())
	}
	if plain.String() != withCtx.String() {
		t.Fatalf("DumpContext wrote\n%s\nDump wrote\n%s", withCtx.String(), plain.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var cancelled bytes.Buffer
	if err := kb.DumpContext(ctx, &cancelled, q); !errors.Is(err, context.Canceled) {
		t.Fatalf("DumpContext with a cancelled context = %v, want context.Canceled", err)
	}
	if cancelled.Len() != 0 {
		t.Fatalf("DumpContext with a cancelled context wrote %q", cancelled.String())
	}
}
