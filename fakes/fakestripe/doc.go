// Package fakestripe is a fake Stripe API to run in the tests of your own
// agent. Like stripe-mock, it is a local server that stripe-go v76 talks to
// as it would to api.stripe.com; unlike stripe-mock, which checks every
// parameter against Stripe's OpenAPI spec but keeps no state (every refund
// answers amount 100, whatever was asked), it remembers what it did and
// keeps a ledger of the money actually moved. A refund refunds what was
// asked and no more, a second refund fails once the first emptied the
// charge, a retry under the same Idempotency-Key is replayed rather than
// executed twice, and a test can inject the failures that leave the
// outcome of a payment unknown. The wire format follows stripe-go v76 and
// API version 2023-10-16, with the field names of stripe-go's types.
//
// # Starting one
//
// Start serves a new fake on a loopback httptest.Server for the duration
// of a test and returns it with its base URL; seed the objects the agent
// will act on:
//
//	fs, url := fakestripe.Start(t)
//	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})
//
// Outside a test (an example, a demo), serve New yourself, and Close the
// fake before the httptest.Server, whose Close waits for the requests a
// Hang holds:
//
//	fs := fakestripe.New()
//	ts := httptest.NewServer(fs)
//	defer ts.Close()
//	defer fs.Close() // runs first
//
// # Pointing stripe-go at it
//
// Give stripe-go a backend whose URL is the fake's, with a test-mode key
// (sk_test_ or rk_test_; live keys are refused):
//
//	b := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{URL: stripe.String(url)})
//	sc := client.New("sk_test_123", &stripe.Backends{API: b, Connect: b, Uploads: b})
//
// # Pointing a Keybrake Brake at it
//
// To test the agent as it runs, braked, leave stripe-go addressing
// api.stripe.com and let the Brake send its traffic to the fake through
// Options.Endpoints (plain http is accepted for loopback hosts only):
//
//	kb, err := keybrake.Open(keybrake.Options{
//		PolicyFile: policyFile,
//		DBPath:     filepath.Join(t.TempDir(), "keybrake.db"),
//		Endpoints:  map[keybrake.Vendor]string{keybrake.Stripe: url},
//	})
//	sc := client.New("sk_test_123", stripevendor.Backends(kb.HTTPClient("refund-bot", keybrake.Stripe)))
//
// where stripevendor is github.com/keybrake/keybrake/vendors/stripe. A
// refund the policy refuses never reaches the fake; keybrake.AsDenial
// recovers the decision from stripe-go's error. The ledger then says what
// the refunds the policy allowed actually moved, to compare with the
// Brake's audit log (Brake.Dump): see Example_refundsToTheCap.
//
// # The ledger
//
// Moved is the money moved through the API per currency, in minor units;
// Movements lists each movement (its kind, object, amount, account and
// request); Refunded is a charge's amount_refunded. Seeded objects are not
// movements. Log, Requests and RequestsTo say what the fake was asked,
// whatever it answered.
//
// # Injecting faults
//
// A Server embeds a fakefault.Injector, the same in every fake:
//
//	fs.FailNext(1, 503)                      // the next request: 503, nothing done
//	fs.ExecuteThenFail(1, 500)               // refunds, then answers 500: the answer lost
//	fs.On("POST", "/v1/refunds").HangNext(1) // no answer and nothing done, until the client gives up
//	fs.On("GET", "/v1/charges/").DelayNext(1, 2*time.Second)
//	fs.Hang()                                // every request from now on hangs...
//	fs.ClearFaults()                         // ...until this
//
// Inject takes a Fault with Stripe's own fields besides: the error type and
// code in the body, Stripe-Should-Retry, or a non-Stripe body as a proxy
// would send. A fault strikes before the work, or with Execute after it,
// and Close releases every request a fault holds.
//
// # What it stands in for
//
//   - The wire: form-encoded bodies (POST parameters may also come in the
//     query string, merged, the body winning; a repeated key keeps its last
//     value, as Stripe's parser does), "Authorization: Bearer" with a
//     test-mode secret or restricted key (anything else is 401; live keys
//     are refused, and no key is ever stored or echoed), Stripe-Account
//     (objects live in the account that created them; a request sees only
//     its own account's), a Request-Id on every answer, Stripe's error
//     shape {"error":{"type","code","message","param",...}}, 404 for
//     unknown URLs, and a refusal of every parameter an endpoint does not
//     model, known to Stripe or not, so that nothing is silently ignored.
//   - Idempotency as Stripe documents it, for POST: the same
//     Idempotency-Key (per account) with the same method, path and
//     parameters replays the saved status and body without doing anything
//     again, with "Idempotent-Replayed: true" and "Original-Request"; with
//     different ones it answers 400 idempotency_error. Results are saved
//     only once the endpoint started executing: successes and card
//     declines, not parameter or state errors (a refund larger than what
//     remains can be corrected and sent again under the same key).
//   - Money: customers; charges (captured at once unless capture=false;
//     partial capture; application_fee_amount on a connected account makes
//     an application fee when captured); payment intents (create, update,
//     confirm, capture with amount_to_capture, increment_authorization;
//     manual capture holds, automatic capture moves); refunds by charge or
//     payment intent, amount optional (all that remains), never more than
//     remains (400 charge_already_refunded), and refunding an uncaptured
//     charge releases it; transfers and reversals; payouts; top-ups;
//     paying invoices (out of band too); refunding application fees.
//     Moved, Movements and Refunded say what moved.
//   - Declines: the test payment methods and tokens pm_card_chargeDeclined,
//     pm_card_chargeDeclinedInsufficientFunds, tok_chargeDeclined and
//     tok_chargeDeclinedInsufficientFunds are declined with Stripe's 402
//     card_error; any other payment method succeeds.
//   - Faults (see above): an error before anything happened, an error
//     after the money moved (the answer lost on its way back), a slow
//     answer, no answer at all.
//
// # What it does not model
//
// Everything else Stripe does: the rest of the API (404), expand (refused),
// list pagination beyond limit and starting_after, parameter validation
// beyond what is listed (stripe-mock checks that against the spec),
// minimum charge amounts and currency lists (any three-letter code goes),
// balances (a payout never runs short), asynchronous state (payouts and
// top-ups stay pending, refunds succeed at once, nothing expires),
// webhooks, 3-D Secure and requires_action, customers' saved payment
// methods (paying an invoice without one succeeds), connected accounts'
// existence (any acct_ ID is one), live mode, rate limits and Stripe's
// own concurrency errors (except as injected faults), charges of a
// payment intent captured through /v1/charges/{id}/capture (refused), and
// how Stripe reports the released rest of a partially captured
// authorization (here amount_refunded counts refunds only, and the rest
// simply stays uncaptured).
//
// Everything a Server does is serialised under one lock, so the order of
// concurrent requests is the order they took it in; the waits of Delay and
// Hang are outside the lock.
package fakestripe
