// Package fakestripe is a small stateful fake of Stripe's API for tests:
// an http.Handler that answers stripe-go v76 the way api.stripe.com would,
// and remembers what it did, so that tests can check how much money moved,
// and inject the failures that make the outcome of a payment call unknown.
//
// stripe-mock, Stripe's own mock (see internal/testenv), validates every
// parameter against the real OpenAPI spec but keeps no state: every refund
// answers amount 100, whatever was asked. Tests of settlement, retries,
// timeouts and crashes need the other half: a refund that refunds what was
// asked and no more, a second refund that fails because the first one
// emptied the charge, a retry that is replayed rather than executed twice.
// That is what this package is for; its wire format follows stripe-go v76
// and API version 2023-10-16, with the field names of stripe-go's types.
//
//	fs := fakestripe.New()
//	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Captured: true})
//	ts := httptest.NewServer(fs)
//	defer ts.Close()
//	defer fs.Close() // runs first: releases requests held by Hang
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
//   - Faults (Fault, FailNext, ExecuteThenFail, Delay, Hang, On): an error
//     before anything happened, an error after the money moved (the answer
//     lost on its way back), a slow answer, no answer at all.
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
