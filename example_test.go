package keybrake_test

import (
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	stripevendor "github.com/keybrake/keybrake/vendors/stripe"
)

// Wrap stripe-go for one agent; the second refund would take the agent over
// its daily cap, so it is answered 402 before it leaves the process.
func Example() {
	// A fake Stripe with one charge stands in for api.stripe.com.
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 10000, Currency: "usd", Captured: true})
	srv := httptest.NewServer(fs)
	defer srv.Close()

	dir, _ := os.MkdirTemp("", "keybrake-example")
	defer os.RemoveAll(dir)
	policyFile := filepath.Join(dir, "keybrake.yaml")
	os.WriteFile(policyFile, []byte(`version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 50.00 USD
      allow: [POST /v1/refunds]
`), 0o600)

	kb, err := keybrake.Open(keybrake.Options{
		PolicyFile: policyFile,
		DBPath:     filepath.Join(dir, "keybrake.db"),
		Endpoints:  map[keybrake.Vendor]string{keybrake.Stripe: srv.URL},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer kb.Close()
	sc := client.New("sk_test_example", stripevendor.Backends(kb.HTTPClient("refund-bot", keybrake.Stripe)))

	for _, cents := range []int64{4000, 2000} {
		_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String("ch_1"), Amount: stripego.Int64(cents)})
		if d, ok := keybrake.AsDenial(err); ok {
			fmt.Printf("%d: %s (%d) by %s\n", cents, d.Decision, d.Status, d.Rule)
			continue
		}
		fmt.Printf("%d: refunded, err=%v\n", cents, err)
	}
	// Output:
	// 4000: refunded, err=<nil>
	// 2000: capped (402) by agents.refund-bot.stripe.daily_cap
}
