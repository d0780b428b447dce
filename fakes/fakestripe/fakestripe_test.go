package fakestripe_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
)

const testKey = "sk_test_fakestripe"

// newFake starts a fake and a stripe-go client on it making at most
// retries retries.
func newFake(t *testing.T, retries int64) (*fakestripe.Server, *client.API, string) {
	t.Helper()
	fs, url := fakestripe.Start(t)
	// A bound on every call, so that a fault that strikes more often
	// than it should fails the test instead of hanging it.
	hc := &http.Client{Timeout: 10 * time.Second}
	return fs, client.New(testKey, testenv.StripeBackends(url, hc, retries)), url
}

// stripeErr asserts err is a *stripe.Error with this status and code.
func stripeErr(t *testing.T, err error, status int, code stripe.ErrorCode) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	if !errors.As(err, &se) {
		t.Fatalf("got %v (%T), want a *stripe.Error", err, err)
	}
	if se.HTTPStatusCode != status || se.Code != code {
		t.Fatalf("got status %d code %q (%s), want %d %q", se.HTTPStatusCode, se.Code, se.Msg, status, code)
	}
	if !strings.HasPrefix(se.RequestID, "req_") {
		t.Errorf("error has no Request-Id: %q", se.RequestID)
	}
	return se
}

func moved(t *testing.T, fs *fakestripe.Server, currency string, want int64) {
	t.Helper()
	if got := fs.Moved()[currency]; got != want {
		t.Fatalf("moved %d %s, want %d (movements %+v)", got, currency, want, fs.Movements())
	}
}

func refundParams(charge string, amount int64, idemKey string) *stripe.RefundParams {
	p := &stripe.RefundParams{Charge: stripe.String(charge)}
	if amount > 0 {
		p.Amount = stripe.Int64(amount)
	}
	if idemKey != "" {
		p.SetIdempotencyKey(idemKey)
	}
	return p
}

func TestRefundMovesMoney(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})

	re, err := sc.Refunds.New(refundParams("ch_1", 1500, ""))
	if err != nil {
		t.Fatal(err)
	}
	if re.Amount != 1500 || re.Charge.ID != "ch_1" || re.Status != stripe.RefundStatusSucceeded || re.Currency != "usd" {
		t.Fatalf("refund %+v", re)
	}
	if !strings.HasPrefix(re.LastResponse.RequestID, "req_") {
		t.Errorf("no Request-Id: %q", re.LastResponse.RequestID)
	}
	moved(t, fs, "usd", 1500)
	if got := fs.Refunded("ch_1"); got != 1500 {
		t.Fatalf("Refunded = %d", got)
	}
	ch, err := sc.Charges.Get("ch_1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ch.AmountRefunded != 1500 || ch.Refunded || ch.AmountCaptured != 5000 || !ch.Captured {
		t.Fatalf("charge %+v", ch)
	}
	got, err := sc.Refunds.Get(re.ID, nil)
	if err != nil || got.Amount != 1500 {
		t.Fatalf("get refund: %+v %v", got, err)
	}
}

func TestRefundAmounts(t *testing.T) {
	tests := []struct {
		name      string
		charge    fakestripe.Charge
		amount    int64 // 0: none sent
		want      int64 // refunded; 0 means refused
		wantCode  stripe.ErrorCode
		wantMoved int64
	}{
		{"all that remains", fakestripe.Charge{Amount: 5000, Captured: true, AmountRefunded: 1000}, 0, 4000, "", 4000},
		{"exactly what remains", fakestripe.Charge{Amount: 5000, Captured: true, AmountRefunded: 1000}, 4000, 4000, "", 4000},
		{"more than remains", fakestripe.Charge{Amount: 5000, Captured: true, AmountRefunded: 4000}, 1001, 0, stripe.ErrorCodeChargeAlreadyRefunded, 0},
		{"nothing remains", fakestripe.Charge{Amount: 5000, Captured: true, AmountRefunded: 5000}, 0, 0, stripe.ErrorCodeChargeAlreadyRefunded, 0},
		{"partial capture bounds it", fakestripe.Charge{Amount: 5000, Captured: true, AmountCaptured: 3000}, 3001, 0, stripe.ErrorCodeChargeAlreadyRefunded, 0},
		{"uncaptured is released, nothing moves", fakestripe.Charge{Amount: 5000}, 0, 5000, "", 0},
		{"uncaptured cannot be partly refunded", fakestripe.Charge{Amount: 5000}, 100, 0, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, sc, _ := newFake(t, 0)
			c := tt.charge
			c.ID, c.Currency = "ch_1", "eur"
			fs.AddCharge(c)
			re, err := sc.Refunds.New(refundParams("ch_1", tt.amount, ""))
			if tt.want == 0 {
				se := stripeErr(t, err, http.StatusBadRequest, tt.wantCode)
				if se.Type != stripe.ErrorTypeInvalidRequest {
					t.Errorf("type %q", se.Type)
				}
			} else if err != nil || re.Amount != tt.want {
				t.Fatalf("got %+v, %v; want a refund of %d", re, err, tt.want)
			}
			moved(t, fs, "eur", tt.wantMoved)
		})
	}
}

func TestRefundBeyondRemainingIsNotSaved(t *testing.T) {
	// A refused refund is not saved under its idempotency key: the same
	// key with corrected parameters executes.
	fs, sc, _ := newFake(t, 0)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 1000, Currency: "usd", Captured: true})
	_, err := sc.Refunds.New(refundParams("ch_1", 1500, "key-1"))
	se := stripeErr(t, err, 400, stripe.ErrorCodeChargeAlreadyRefunded)
	if se.Param != "amount" {
		t.Errorf("param %q", se.Param)
	}
	re, err := sc.Refunds.New(refundParams("ch_1", 1000, "key-1"))
	if err != nil || re.Amount != 1000 {
		t.Fatalf("%+v %v", re, err)
	}
	if re.LastResponse.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("executed request marked replayed")
	}
	ch, err := sc.Charges.Get("ch_1", nil)
	if err != nil || !ch.Refunded || ch.AmountRefunded != 1000 {
		t.Fatalf("fully refunded charge %+v %v", ch, err)
	}
	_, err = sc.Refunds.New(refundParams("ch_1", 0, ""))
	se = stripeErr(t, err, 400, stripe.ErrorCodeChargeAlreadyRefunded)
	if !strings.Contains(se.Msg, "has already been refunded") {
		t.Errorf("message %q", se.Msg)
	}
	moved(t, fs, "usd", 1000)
}

func TestExecuteThenFailThenReplay(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})
	fs.ExecuteThenFail(1, http.StatusInternalServerError)

	_, err := sc.Refunds.New(refundParams("ch_1", 700, "retry-me"))
	se := stripeErr(t, err, 500, "")
	if se.Type != stripe.ErrorTypeAPI {
		t.Fatalf("type %q", se.Type)
	}
	// The money moved although the client saw an error.
	moved(t, fs, "usd", 700)

	re, err := sc.Refunds.New(refundParams("ch_1", 700, "retry-me"))
	if err != nil {
		t.Fatal(err)
	}
	if re.Amount != 700 || re.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("refund %+v, replayed %q", re, re.LastResponse.Header.Get("Idempotent-Replayed"))
	}
	if orig := re.LastResponse.Header.Get("Original-Request"); orig == "" || orig == re.LastResponse.RequestID {
		t.Errorf("Original-Request %q, Request-Id %q", orig, re.LastResponse.RequestID)
	}
	moved(t, fs, "usd", 700)
	if got := fs.Refunded("ch_1"); got != 700 {
		t.Fatalf("Refunded = %d", got)
	}
	if n := fs.RequestsTo("POST", "/v1/refunds"); n != 2 {
		t.Fatalf("requests = %d", n)
	}
	log := fs.Log()
	if !log[0].Fault || log[0].Status != 500 || log[1].Fault || !log[1].Replayed || log[1].Status != 200 {
		t.Fatalf("log %+v", log)
	}
	if log[0].IdempotencyKey != "retry-me" || log[0].Params.Get("amount") != "700" {
		t.Fatalf("log %+v", log[0])
	}
}

func TestSDKRetryIsReplayed(t *testing.T) {
	// stripe-go retries a 503 on POST with the same Idempotency-Key; the
	// retry must be replayed, not executed again.
	fs, sc, _ := newFake(t, 1)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})
	fs.ExecuteThenFail(1, http.StatusServiceUnavailable)
	re, err := sc.Refunds.New(refundParams("ch_1", 0, ""))
	if err != nil {
		t.Fatal(err)
	}
	if re.Amount != 5000 || re.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("%+v", re)
	}
	moved(t, fs, "usd", 5000)
	log := fs.Log()
	if len(log) != 2 || log[0].IdempotencyKey == "" || log[0].IdempotencyKey != log[1].IdempotencyKey {
		t.Fatalf("log %+v", log)
	}
}

func TestFailNextDoesNothing(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})
	fs.FailNext(2, http.StatusTooManyRequests)
	for i := 0; i < 2; i++ {
		_, err := sc.Refunds.New(refundParams("ch_1", 100, "k"))
		stripeErr(t, err, 429, stripe.ErrorCodeRateLimit)
	}
	moved(t, fs, "usd", 0)
	re, err := sc.Refunds.New(refundParams("ch_1", 100, "k"))
	if err != nil {
		t.Fatal(err)
	}
	if re.LastResponse.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("a failed request's key was saved")
	}
	moved(t, fs, "usd", 100)
}

func TestFaultNonJSONBodyIsRetriedBySDK(t *testing.T) {
	fs, sc, _ := newFake(t, 1)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})
	fs.Inject(fakestripe.Fault{Times: 1, Status: 502, Body: "<html>502 Bad Gateway</html>"})
	if _, err := sc.Refunds.New(refundParams("ch_1", 100, "")); err != nil {
		t.Fatal(err)
	}
	if n := fs.RequestsTo("POST", "/v1/refunds"); n != 2 {
		t.Fatalf("requests = %d, want the SDK's retry", n)
	}
	moved(t, fs, "usd", 100)
}

func TestShouldRetryHeader(t *testing.T) {
	fs, sc, _ := newFake(t, 2)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})
	fs.Inject(fakestripe.Fault{Times: 1, Status: 503, ShouldRetry: "false"})
	_, err := sc.Refunds.New(refundParams("ch_1", 100, ""))
	stripeErr(t, err, 503, "")
	if n := fs.Requests(); n != 1 {
		t.Fatalf("requests = %d: Stripe-Should-Retry: false was not obeyed", n)
	}
}

func TestIdempotencyKeyWithOtherParameters(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})
	if _, err := sc.Refunds.New(refundParams("ch_1", 100, "same")); err != nil {
		t.Fatal(err)
	}
	_, err := sc.Refunds.New(refundParams("ch_1", 200, "same"))
	se := stripeErr(t, err, 400, "")
	var ie *stripe.IdempotencyError
	if se.Type != stripe.ErrorTypeIdempotency || !errors.As(se.Err, &ie) {
		t.Fatalf("type %q err %T", se.Type, se.Err)
	}
	// The same key on another account is another key.
	fs.AddCharge(fakestripe.Charge{ID: "ch_2", Account: "acct_A", Amount: 5000, Currency: "usd", Captured: true})
	p := refundParams("ch_2", 200, "same")
	p.SetStripeAccount("acct_A")
	if _, err := sc.Refunds.New(p); err != nil {
		t.Fatal(err)
	}
	moved(t, fs, "usd", 300)
}

func TestAccountsAreSeparate(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Account: "acct_A", Amount: 5000, Currency: "usd", Captured: true})
	_, err := sc.Refunds.New(refundParams("ch_1", 100, ""))
	se := stripeErr(t, err, 400, stripe.ErrorCodeResourceMissing)
	if se.Param != "charge" {
		t.Errorf("param %q", se.Param)
	}
	p := refundParams("ch_1", 100, "")
	p.SetStripeAccount("acct_A")
	if _, err := sc.Refunds.New(p); err != nil {
		t.Fatal(err)
	}
	mv := fs.Movements()
	if len(mv) != 1 || mv[0].Account != "acct_A" || mv[0].Kind != "refund" || mv[0].Amount != 100 {
		t.Fatalf("movements %+v", mv)
	}
	_, err = sc.Charges.Get("ch_1", nil)
	stripeErr(t, err, 404, stripe.ErrorCodeResourceMissing)
}

func TestCharges(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddCustomer("cus_1")

	auth, err := sc.Charges.New(&stripe.ChargeParams{
		Amount: stripe.Int64(1000), Currency: stripe.String("USD"), Customer: stripe.String("cus_1"),
		Capture: stripe.Bool(false),
	})
	if err != nil {
		t.Fatal(err)
	}
	if auth.Captured || auth.AmountCaptured != 0 || auth.Currency != "usd" || auth.Customer.ID != "cus_1" || auth.Status != "succeeded" {
		t.Fatalf("authorization %+v", auth)
	}
	moved(t, fs, "usd", 0)

	ch, err := sc.Charges.Capture(auth.ID, &stripe.ChargeCaptureParams{Amount: stripe.Int64(600)})
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Captured || ch.AmountCaptured != 600 || ch.Amount != 1000 {
		t.Fatalf("captured %+v", ch)
	}
	moved(t, fs, "usd", 600)
	_, err = sc.Charges.Capture(auth.ID, nil)
	stripeErr(t, err, 400, stripe.ErrorCodeChargeAlreadyCaptured)

	re, err := sc.Refunds.New(refundParams(auth.ID, 0, ""))
	if err != nil || re.Amount != 600 {
		t.Fatalf("%+v %v", re, err)
	}
	moved(t, fs, "usd", 1200)

	direct, err := sc.Charges.New(&stripe.ChargeParams{
		Amount: stripe.Int64(250), Currency: stripe.String("jpy"), Source: &stripe.PaymentSourceSourceParams{Token: stripe.String("tok_visa")},
	})
	if err != nil || !direct.Captured || direct.AmountCaptured != 250 || !direct.Paid {
		t.Fatalf("%+v %v", direct, err)
	}
	moved(t, fs, "jpy", 250)

	_, err = sc.Charges.New(&stripe.ChargeParams{Amount: stripe.Int64(250), Currency: stripe.String("usd"), Customer: stripe.String("cus_nope")})
	stripeErr(t, err, 400, stripe.ErrorCodeResourceMissing)
	_, err = sc.Charges.New(&stripe.ChargeParams{Amount: stripe.Int64(250), Currency: stripe.String("usd")})
	stripeErr(t, err, 400, stripe.ErrorCodeParameterMissing)
}

func TestDeclineIsSaved(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	newDeclined := func() (*stripe.Charge, error) {
		p := &stripe.ChargeParams{
			Amount: stripe.Int64(999), Currency: stripe.String("usd"),
			Source: &stripe.PaymentSourceSourceParams{Token: stripe.String("tok_chargeDeclinedInsufficientFunds")},
		}
		p.SetIdempotencyKey("decline-1")
		return sc.Charges.New(p)
	}
	_, err := newDeclined()
	se := stripeErr(t, err, 402, stripe.ErrorCodeCardDeclined)
	if se.Type != stripe.ErrorTypeCard || se.DeclineCode != "insufficient_funds" || se.ChargeID == "" {
		t.Fatalf("%+v", se)
	}
	var ce *stripe.CardError
	if !errors.As(se.Err, &ce) {
		t.Fatalf("Err %T", se.Err)
	}
	_, err = newDeclined()
	se2 := stripeErr(t, err, 402, stripe.ErrorCodeCardDeclined)
	if se2.ChargeID != se.ChargeID || se2.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("decline not replayed: %+v", se2)
	}
	moved(t, fs, "usd", 0)
	c, ok := fs.Charge("", se.ChargeID)
	if !ok || c.Captured {
		t.Fatalf("failed charge %+v %v", c, ok)
	}
}

func TestPaymentIntents(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddCustomer("cus_1")

	pi, err := sc.PaymentIntents.New(&stripe.PaymentIntentParams{
		Amount: stripe.Int64(1000), Currency: stripe.String("usd"), Customer: stripe.String("cus_1"),
		CaptureMethod: stripe.String("manual"), PaymentMethod: stripe.String("pm_card_visa"), Confirm: stripe.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if pi.Status != stripe.PaymentIntentStatusRequiresCapture || pi.AmountCapturable != 1000 || pi.LatestCharge == nil {
		t.Fatalf("%+v", pi)
	}
	moved(t, fs, "usd", 0)

	pi, err = sc.PaymentIntents.IncrementAuthorization(pi.ID, &stripe.PaymentIntentIncrementAuthorizationParams{Amount: stripe.Int64(1500)})
	if err != nil || pi.Amount != 1500 || pi.AmountCapturable != 1500 {
		t.Fatalf("%+v %v", pi, err)
	}
	_, err = sc.PaymentIntents.Capture(pi.ID, &stripe.PaymentIntentCaptureParams{AmountToCapture: stripe.Int64(1501)})
	stripeErr(t, err, 400, stripe.ErrorCodeAmountTooLarge)

	pi, err = sc.PaymentIntents.Capture(pi.ID, &stripe.PaymentIntentCaptureParams{AmountToCapture: stripe.Int64(1200)})
	if err != nil || pi.Status != stripe.PaymentIntentStatusSucceeded || pi.AmountReceived != 1200 || pi.AmountCapturable != 0 {
		t.Fatalf("%+v %v", pi, err)
	}
	moved(t, fs, "usd", 1200)
	_, err = sc.PaymentIntents.Capture(pi.ID, nil)
	stripeErr(t, err, 400, stripe.ErrorCodePaymentIntentUnexpectedState)

	re, err := sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi.ID)})
	if err != nil || re.Amount != 1200 || re.PaymentIntent.ID != pi.ID || re.Charge.ID != pi.LatestCharge.ID {
		t.Fatalf("%+v %v", re, err)
	}
	moved(t, fs, "usd", 2400)

	// Automatic capture moves money at confirmation.
	auto, err := sc.PaymentIntents.New(&stripe.PaymentIntentParams{Amount: stripe.Int64(300), Currency: stripe.String("usd")})
	if err != nil || auto.Status != stripe.PaymentIntentStatusRequiresPaymentMethod {
		t.Fatalf("%+v %v", auto, err)
	}
	_, err = sc.PaymentIntents.Confirm(auto.ID, nil)
	stripeErr(t, err, 400, stripe.ErrorCodePaymentIntentUnexpectedState)
	auto, err = sc.PaymentIntents.Confirm(auto.ID, &stripe.PaymentIntentConfirmParams{PaymentMethod: stripe.String("pm_card_visa")})
	if err != nil || auto.Status != stripe.PaymentIntentStatusSucceeded || auto.AmountReceived != 300 {
		t.Fatalf("%+v %v", auto, err)
	}
	moved(t, fs, "usd", 2700)
	_, err = sc.PaymentIntents.Confirm(auto.ID, nil)
	stripeErr(t, err, 400, stripe.ErrorCodePaymentIntentUnexpectedState)

	// A decline leaves the intent waiting for another payment method.
	_, err = sc.PaymentIntents.New(&stripe.PaymentIntentParams{
		Amount: stripe.Int64(300), Currency: stripe.String("usd"),
		PaymentMethod: stripe.String("pm_card_chargeDeclined"), Confirm: stripe.Bool(true),
	})
	se := stripeErr(t, err, 402, stripe.ErrorCodeCardDeclined)
	if se.PaymentIntent == nil || se.PaymentIntent.Status != stripe.PaymentIntentStatusRequiresPaymentMethod || se.PaymentIntent.LastPaymentError == nil {
		t.Fatalf("%+v", se.PaymentIntent)
	}
	moved(t, fs, "usd", 2700)

	got, err := sc.PaymentIntents.Get(pi.ID, nil)
	if err != nil || got.AmountReceived != 1200 {
		t.Fatalf("%+v %v", got, err)
	}
	list := sc.PaymentIntents.List(&stripe.PaymentIntentListParams{Customer: stripe.String("cus_1")})
	n := 0
	for list.Next() {
		n++
	}
	if list.Err() != nil || n != 1 {
		t.Fatalf("listed %d, %v", n, list.Err())
	}
}

func TestSeededPaymentIntent(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddPaymentIntent(fakestripe.PaymentIntent{ID: "pi_1", Amount: 2000, Currency: "gbp", CaptureMethod: "manual", Status: "requires_capture"})
	pi, err := sc.PaymentIntents.Capture("pi_1", nil)
	if err != nil || pi.AmountReceived != 2000 {
		t.Fatalf("%+v %v", pi, err)
	}
	moved(t, fs, "gbp", 2000)
	got, ok := fs.PaymentIntent("", "pi_1")
	if !ok || got.Status != "succeeded" || got.LatestCharge == "" {
		t.Fatalf("%+v", got)
	}
	c, _ := fs.Charge("", got.LatestCharge)
	if !c.Captured || c.AmountCaptured != 2000 || c.PaymentIntent != "pi_1" {
		t.Fatalf("%+v", c)
	}
}

func TestTransfersPayoutsTopups(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	tr, err := sc.Transfers.New(&stripe.TransferParams{Amount: stripe.Int64(1000), Currency: stripe.String("usd"), Destination: stripe.String("acct_X")})
	if err != nil || tr.Amount != 1000 || tr.Destination.ID != "acct_X" {
		t.Fatalf("%+v %v", tr, err)
	}
	if _, err := sc.TransferReversals.New(&stripe.TransferReversalParams{ID: stripe.String(tr.ID), Amount: stripe.Int64(400)}); err != nil {
		t.Fatal(err)
	}
	rv, err := sc.TransferReversals.New(&stripe.TransferReversalParams{ID: stripe.String(tr.ID)})
	if err != nil || rv.Amount != 600 || rv.Transfer.ID != tr.ID {
		t.Fatalf("%+v %v", rv, err)
	}
	_, err = sc.TransferReversals.New(&stripe.TransferReversalParams{ID: stripe.String(tr.ID), Amount: stripe.Int64(1)})
	stripeErr(t, err, 400, "")
	tr, err = sc.Transfers.Get(tr.ID, nil)
	if err != nil || tr.AmountReversed != 1000 || !tr.Reversed || len(tr.Reversals.Data) != 2 {
		t.Fatalf("%+v %v", tr, err)
	}
	_, err = sc.Transfers.New(&stripe.TransferParams{Amount: stripe.Int64(1000), Currency: stripe.String("usd"), Destination: stripe.String("cus_1")})
	stripeErr(t, err, 400, stripe.ErrorCodeResourceMissing)

	po, err := sc.Payouts.New(&stripe.PayoutParams{Amount: stripe.Int64(700), Currency: stripe.String("usd")})
	if err != nil || po.Status != stripe.PayoutStatusPending || po.Amount != 700 {
		t.Fatalf("%+v %v", po, err)
	}
	tu, err := sc.Topups.New(&stripe.TopupParams{Amount: stripe.Int64(50), Currency: stripe.String("usd")})
	if err != nil || tu.Amount != 50 {
		t.Fatalf("%+v %v", tu, err)
	}
	moved(t, fs, "usd", 1000+400+600+700+50)
	kinds := ""
	for _, m := range fs.Movements() {
		kinds += m.Kind + " "
	}
	if kinds != "transfer transfer_reversal transfer_reversal payout topup " {
		t.Fatalf("kinds %q", kinds)
	}
	if _, err := sc.Payouts.Get(tu.ID, nil); err == nil {
		t.Fatal("a top-up was found as a payout")
	}
}

func TestInvoices(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddCustomer("cus_1")
	fs.AddInvoice(fakestripe.Invoice{ID: "in_1", Customer: "cus_1", Currency: "usd", AmountDue: 2500})
	fs.AddInvoice(fakestripe.Invoice{ID: "in_2", Customer: "cus_1", Currency: "usd", AmountDue: 900, Status: "draft"})

	inv, err := sc.Invoices.Pay("in_1", nil)
	if err != nil || inv.Status != stripe.InvoiceStatusPaid || inv.AmountPaid != 2500 || inv.AmountRemaining != 0 || inv.Charge == nil {
		t.Fatalf("%+v %v", inv, err)
	}
	moved(t, fs, "usd", 2500)
	_, err = sc.Invoices.Pay("in_1", nil)
	stripeErr(t, err, 400, "")

	inv, err = sc.Invoices.Pay("in_2", &stripe.InvoicePayParams{PaidOutOfBand: stripe.Bool(true)})
	if err != nil || !inv.PaidOutOfBand || inv.Status != stripe.InvoiceStatusPaid {
		t.Fatalf("%+v %v", inv, err)
	}
	moved(t, fs, "usd", 2500)
	got, _ := fs.Invoice("", "in_2")
	if got.AmountPaid != 900 || got.AmountRemaining != 0 {
		t.Fatalf("%+v", got)
	}
}

func TestApplicationFees(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddApplicationFee(fakestripe.ApplicationFee{ID: "fee_1", FromAccount: "acct_A", Amount: 300, Currency: "usd", Charge: "ch_1"})
	fr, err := sc.FeeRefunds.New(&stripe.FeeRefundParams{ID: stripe.String("fee_1"), Amount: stripe.Int64(100)})
	if err != nil || fr.Amount != 100 || fr.Fee.ID != "fee_1" {
		t.Fatalf("%+v %v", fr, err)
	}
	fr, err = sc.FeeRefunds.New(&stripe.FeeRefundParams{ID: stripe.String("fee_1")})
	if err != nil || fr.Amount != 200 {
		t.Fatalf("%+v %v", fr, err)
	}
	_, err = sc.FeeRefunds.New(&stripe.FeeRefundParams{ID: stripe.String("fee_1")})
	stripeErr(t, err, 400, "")
	fee, err := sc.ApplicationFees.Get("fee_1", nil)
	if err != nil || !fee.Refunded || fee.AmountRefunded != 300 || len(fee.Refunds.Data) != 2 || fee.Account.ID != "acct_A" {
		t.Fatalf("%+v %v", fee, err)
	}
	moved(t, fs, "usd", 300)

	// A charge on a connected account with an application fee makes one.
	p := &stripe.ChargeParams{
		Amount: stripe.Int64(1000), Currency: stripe.String("usd"), ApplicationFeeAmount: stripe.Int64(50),
		Source: &stripe.PaymentSourceSourceParams{Token: stripe.String("tok_visa")},
	}
	p.SetStripeAccount("acct_A")
	ch, err := sc.Charges.New(p)
	if err != nil || ch.ApplicationFee == nil {
		t.Fatalf("%+v %v", ch, err)
	}
	fee, err = sc.ApplicationFees.Get(ch.ApplicationFee.ID, nil)
	if err != nil || fee.Amount != 50 || fee.Charge.ID != ch.ID {
		t.Fatalf("%+v %v", fee, err)
	}
	p.StripeAccount = nil
	_, err = sc.Charges.New(p)
	stripeErr(t, err, 400, "")
}

func TestCustomers(t *testing.T) {
	_, sc, _ := newFake(t, 0)
	var ids []string
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		cu, err := sc.Customers.New(&stripe.CustomerParams{Email: stripe.String(email)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cu.ID)
	}
	up := &stripe.CustomerParams{Name: stripe.String("Bea")}
	up.AddMetadata("tier", "gold")
	cu, err := sc.Customers.Update(ids[1], up)
	if err != nil || cu.Name != "Bea" || cu.Email != "b@example.com" || cu.Metadata["tier"] != "gold" {
		t.Fatalf("%+v %v", cu, err)
	}
	cu, err = sc.Customers.Get(ids[1], nil)
	if err != nil || cu.Metadata["tier"] != "gold" {
		t.Fatalf("%+v %v", cu, err)
	}
	lp := &stripe.CustomerListParams{}
	lp.Limit = stripe.Int64(2)
	lp.Single = true
	it := sc.Customers.List(lp)
	var got []string
	for it.Next() {
		got = append(got, it.Customer().ID)
	}
	if it.Err() != nil || len(got) != 2 || got[0] != ids[2] || got[1] != ids[1] || !it.CustomerList().HasMore {
		t.Fatalf("list %v (want newest first of %v), has_more %v, %v", got, ids, it.CustomerList().HasMore, it.Err())
	}
	all := sc.Customers.List(&stripe.CustomerListParams{})
	n := 0
	for all.Next() {
		n++
	}
	if all.Err() != nil || n != 3 {
		t.Fatalf("paged through %d, %v", n, all.Err())
	}
	_, err = sc.Customers.Get("cus_nope", nil)
	stripeErr(t, err, 404, stripe.ErrorCodeResourceMissing)
}

func TestConcurrentRefundsNeverExceedTheCharge(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 1000, Currency: "usd", Captured: true})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := sc.Refunds.New(refundParams("ch_1", 30, ""))
			mu.Lock()
			defer mu.Unlock()
			var se *stripe.Error
			switch {
			case err == nil:
				ok++
			case errors.As(err, &se) && se.Code == stripe.ErrorCodeChargeAlreadyRefunded:
				refused++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 33 || refused != 17 {
		t.Fatalf("%d refunds, %d refused; want 33 and 17", ok, refused)
	}
	moved(t, fs, "usd", 990)
}

func TestDelayRespectsTheClient(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 1000, Currency: "usd", Captured: true})
	fs.Delay(10 * time.Second)
	hc := &http.Client{Timeout: 200 * time.Millisecond}
	sc := client.New(testKey, testenv.StripeBackends(url, hc, 0))
	start := time.Now()
	if _, err := sc.Refunds.New(refundParams("ch_1", 100, "")); err == nil {
		t.Fatal("no error from a delayed request")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	moved(t, fs, "usd", 0)
	waitStatus(t, fs, 0, 0)

	fs.ClearFaults()
	if _, err := sc.Refunds.New(refundParams("ch_1", 100, "")); err != nil {
		t.Fatal(err)
	}
	moved(t, fs, "usd", 100)
}

// waitStatus waits until the handler of log entry i has finished and
// checks the status it recorded (0 when dropped unanswered).
func waitStatus(t *testing.T, fs *fakestripe.Server, i, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		log := fs.Log()
		if len(log) > i && log[i].Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %+v", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecuteThenHang(t *testing.T) {
	// The call times out, yet the money moved; the retry is replayed.
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 1000, Currency: "usd", Captured: true})
	fs.On("POST", "/v1/refunds").ExecuteThenHang(1)
	sc := client.New(testKey, testenv.StripeBackends(url, nil, 0))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	p := refundParams("ch_1", 400, "timeout-1")
	p.Context = ctx
	if _, err := sc.Refunds.New(p); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline", err)
	}
	moved(t, fs, "usd", 400)

	retry := refundParams("ch_1", 400, "timeout-1")
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	retry.Context = ctx
	re, err := sc.Refunds.New(retry)
	if err != nil || re.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("%+v %v", re, err)
	}
	moved(t, fs, "usd", 400)
}

func TestCloseReleasesHang(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.Hang()
	sc := client.New(testKey, testenv.StripeBackends(url, nil, 0))
	done := make(chan error, 1)
	go func() {
		_, err := sc.Charges.Get("ch_1", nil)
		done <- err
	}()
	waitRequests(t, fs, 1)
	fs.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a hung request was answered")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hung request")
	}
}

func waitRequests(t *testing.T, fs *fakestripe.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for fs.Requests() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests, want %d", fs.Requests(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestScopedFaults(t *testing.T) {
	fs, sc, _ := newFake(t, 0)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 1000, Currency: "usd", Captured: true})
	fs.On("POST", "/v1/refunds").FailNext(1, 500)
	if _, err := sc.Charges.Get("ch_1", nil); err != nil {
		t.Fatalf("a refund fault struck a charge read: %v", err)
	}
	_, err := sc.Refunds.New(refundParams("ch_1", 1, ""))
	stripeErr(t, err, 500, "")
	if _, err := sc.Refunds.New(refundParams("ch_1", 1, "")); err != nil {
		t.Fatalf("the fault struck twice: %v", err)
	}
}

// raw sends a request by hand.
func raw(t *testing.T, method, url, body string, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v\n%s", method, url, err, b)
	}
	if !strings.HasPrefix(res.Header.Get("Request-Id"), "req_") {
		t.Errorf("%s %s: no Request-Id", method, url)
	}
	return res, m
}

func errField(m map[string]any, k string) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e[k].(string)
	return s
}

func TestWire(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 100000, Currency: "usd", Captured: true})
	auth := map[string]string{"Authorization": "Bearer " + testKey}
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     map[string]string
		wantStatus int
		wantType   string // error type, "" for success
		wantCode   string
		wantAmount float64 // for a refund
	}{
		{"no key", "GET", "/v1/charges/ch_1", "", map[string]string{}, 401, "invalid_request_error", "", 0},
		{"basic auth", "GET", "/v1/charges/ch_1", "", map[string]string{"Authorization": "Basic c2tfdGVzdF8xOg=="}, 401, "invalid_request_error", "", 0},
		{"live key", "GET", "/v1/charges/ch_1", "", map[string]string{"Authorization": "Bearer sk_live_abc"}, 401, "invalid_request_error", "", 0},
		{"garbage key", "GET", "/v1/charges/ch_1", "", map[string]string{"Authorization": "Bearer nope"}, 401, "invalid_request_error", "", 0},
		{"unknown route", "GET", "/v1/nope", "", auth, 404, "invalid_request_error", "", 0},
		{"wrong method", "DELETE", "/v1/charges/ch_1", "", auth, 404, "invalid_request_error", "", 0},
		{"dot segments", "GET", "/v1/charges/../refunds", "", auth, 404, "invalid_request_error", "", 0},
		{"escaped path", "GET", "/v1/%63harges/ch_1", "", auth, 404, "invalid_request_error", "", 0},
		{"trailing slash", "GET", "/v1/charges/ch_1/", "", auth, 404, "invalid_request_error", "", 0},
		{"bad account", "GET", "/v1/charges/ch_1", "", map[string]string{"Authorization": "Bearer " + testKey, "Stripe-Account": "x"}, 403, "invalid_request_error", "account_invalid", 0},
		{"last duplicate wins", "POST", "/v1/refunds", "charge=ch_1&amount=1&amount=99", auth, 200, "", "", 99},
		{"query merged into POST", "POST", "/v1/refunds?amount=7", "charge=ch_1", auth, 200, "", "", 7},
		{"body beats query", "POST", "/v1/refunds?amount=7", "charge=ch_1&amount=8", auth, 200, "", "", 8},
		{"unknown parameter", "POST", "/v1/refunds", "charge=ch_1&amount=1&amount_x=2", auth, 400, "invalid_request_error", "parameter_unknown", 0},
		{"unmodelled parameter", "POST", "/v1/refunds", "charge=ch_1&reverse_transfer=true", auth, 400, "invalid_request_error", "parameter_unknown", 0},
		{"expand", "POST", "/v1/refunds", "charge=ch_1&expand[0]=charge", auth, 400, "invalid_request_error", "parameter_unknown", 0},
		{"signed amount", "POST", "/v1/refunds", "charge=ch_1&amount=%2B100", auth, 400, "invalid_request_error", "parameter_invalid_integer", 0},
		{"decimal amount", "POST", "/v1/refunds", "charge=ch_1&amount=1.5", auth, 400, "invalid_request_error", "parameter_invalid_integer", 0},
		{"zero amount", "POST", "/v1/refunds", "charge=ch_1&amount=0", auth, 400, "invalid_request_error", "amount_too_small", 0},
		{"nine digits", "POST", "/v1/refunds", "charge=ch_1&amount=100000000", auth, 400, "invalid_request_error", "amount_too_large", 0},
		{"semicolon", "POST", "/v1/refunds", "charge=ch_1;amount=5", auth, 400, "invalid_request_error", "", 0},
		{"metadata", "POST", "/v1/refunds", "charge=ch_1&amount=2&metadata[order]=42", auth, 200, "", "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, m := raw(t, tt.method, url+tt.path, tt.body, tt.header)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %v", res.StatusCode, tt.wantStatus, m)
			}
			if tt.wantType == "" {
				if m["object"] != "refund" || m["amount"] != tt.wantAmount {
					t.Fatalf("got %v, want a refund of %v", m, tt.wantAmount)
				}
				return
			}
			if errField(m, "type") != tt.wantType || errField(m, "code") != tt.wantCode || errField(m, "message") == "" {
				t.Fatalf("error %v, want type %q code %q", m, tt.wantType, tt.wantCode)
			}
		})
	}
	// The key is never echoed.
	for _, bad := range []string{"sk_live_secret123", "sk_test_secret123!"} {
		_, m := raw(t, "GET", url+"/v1/charges/ch_1", "", map[string]string{"Authorization": "Bearer " + bad})
		if msg := errField(m, "message"); msg == "" || strings.Contains(msg, "secret123") {
			t.Fatalf("message %q", msg)
		}
	}
	res, m := raw(t, "POST", url+"/v1/refunds", "charge=ch_1&amount=3", map[string]string{"Authorization": "Bearer " + testKey, "Content-Type": "application/json"})
	if res.StatusCode != 400 {
		t.Fatalf("a JSON content type was accepted: %v", m)
	}
}

func TestRequestIDsAreUnique(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.FailNext(1, 500)
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		res, _ := raw(t, "GET", url+"/v1/charges/ch_1", "", map[string]string{"Authorization": "Bearer " + testKey})
		id := res.Header.Get("Request-Id")
		if seen[id] {
			t.Fatalf("Request-Id %q twice", id)
		}
		seen[id] = true
	}
}

func TestInjectRefusesNonsense(t *testing.T) {
	tests := []struct {
		name string
		f    func(*fakestripe.Server)
	}{
		{"success status", func(s *fakestripe.Server) { s.FailNext(1, 200) }},
		{"no effect", func(s *fakestripe.Server) { s.Inject(fakestripe.Fault{Times: 1}) }},
		{"zero times", func(s *fakestripe.Server) { s.FailNext(0, 500) }},
		{"bad should-retry", func(s *fakestripe.Server) { s.Inject(fakestripe.Fault{Status: 500, ShouldRetry: "yes"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.f(fakestripe.New())
		})
	}
}

func TestSeedsRefuseNonsense(t *testing.T) {
	tests := []struct {
		name string
		f    func(*fakestripe.Server)
	}{
		{"charge id", func(s *fakestripe.Server) { s.AddCharge(fakestripe.Charge{ID: "pi_1", Amount: 1, Currency: "usd"}) }},
		{"charge amount", func(s *fakestripe.Server) { s.AddCharge(fakestripe.Charge{ID: "ch_1", Currency: "usd"}) }},
		{"charge over-refunded", func(s *fakestripe.Server) {
			s.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 10, Currency: "usd", Captured: true, AmountRefunded: 11})
		}},
		{"charge captured more than amount", func(s *fakestripe.Server) {
			s.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 10, Currency: "usd", Captured: true, AmountCaptured: 11})
		}},
		{"charge twice", func(s *fakestripe.Server) {
			s.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 10, Currency: "usd"})
			s.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 10, Currency: "usd"})
		}},
		{"charge unknown customer", func(s *fakestripe.Server) {
			s.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 10, Currency: "usd", Customer: "cus_x"})
		}},
		{"intent status", func(s *fakestripe.Server) {
			s.AddPaymentIntent(fakestripe.PaymentIntent{ID: "pi_1", Amount: 10, Currency: "usd", Status: "paid"})
		}},
		{"intent holds money it cannot", func(s *fakestripe.Server) {
			s.AddPaymentIntent(fakestripe.PaymentIntent{ID: "pi_1", Amount: 10, Currency: "usd", AmountReceived: 10})
		}},
		{"transfer destination", func(s *fakestripe.Server) {
			s.AddTransfer(fakestripe.Transfer{ID: "tr_1", Amount: 10, Currency: "usd", Destination: "cus_1"})
		}},
		{"invoice paid status", func(s *fakestripe.Server) {
			s.AddCustomer("cus_1")
			s.AddInvoice(fakestripe.Invoice{ID: "in_1", Customer: "cus_1", Currency: "usd", AmountDue: 10, Status: "paid"})
		}},
		{"fee over-refunded", func(s *fakestripe.Server) {
			s.AddApplicationFee(fakestripe.ApplicationFee{ID: "fee_1", Amount: 10, Currency: "usd", AmountRefunded: 11})
		}},
		{"bad account", func(s *fakestripe.Server) { s.AddCustomerTo("acct-1", "cus_1") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.f(fakestripe.New())
		})
	}
}
