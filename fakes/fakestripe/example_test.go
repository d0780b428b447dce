package fakestripe_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
)

// A refund whose answer is lost: the money moves, the client sees a 500,
// and the retry under the same Idempotency-Key is replayed rather than
// refunding twice.
func ExampleServer_ExecuteThenFail() {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})
	ts := httptest.NewServer(fs)
	defer ts.Close()
	defer fs.Close()
	sc := client.New("sk_test_123", testenv.StripeBackends(ts.URL, nil, 0))

	fs.ExecuteThenFail(1, 500)
	params := &stripe.RefundParams{Charge: stripe.String("ch_1"), Amount: stripe.Int64(2000)}
	params.SetIdempotencyKey("refund-ch_1-1")
	_, err := sc.Refunds.New(params)
	fmt.Println("first attempt failed:", err != nil, "moved:", fs.Moved()["usd"])

	re, err := sc.Refunds.New(params)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("retry:", re.ID, re.Amount, "replayed:", re.LastResponse.Header.Get("Idempotent-Replayed"))
	fmt.Println("moved:", fs.Moved()["usd"], "refunded:", fs.Refunded("ch_1"))
	// Output:
	// first attempt failed: true moved: 2000
	// retry: re_fs0000000003 2000 replayed: true
	// moved: 2000 refunded: 2000
}
