// Package fakeresend is a fake Resend API to run in the tests of your own
// agent. Like stripe-mock is for Stripe, it is a local server that
// resend-go v2.28 talks to as it would to api.resend.com for sending
// emails, batches and broadcasts; unlike Prism serving Resend's OpenAPI
// description, which checks requests against the spec but keeps no state
// (/emails answers {"id":"string"}, /emails/batch one data entry whatever
// the batch size), it remembers what it sent and keeps a ledger of the
// emails and recipients it actually sent. One ID per email sent, a
// permissive batch sends the valid emails and reports the others, a retry
// under the same Idempotency-Key sends nothing twice, and a test can
// inject the failures that leave the outcome of a send unknown.
//
// # Starting one
//
// Start serves a new fake on a loopback httptest.Server for the duration
// of a test and returns it with its base URL, without a trailing slash:
//
//	fr, url := fakeresend.Start(t)
//
// Outside a test, serve New yourself, and Close the fake before the
// httptest.Server, whose Close waits for the requests a Hang holds.
//
// # Pointing resend-go at it
//
// Set the client's BaseURL to the fake's (resend-go needs the trailing
// slash). The fake accepts any well-formed key, DefaultAPIKey for one,
// until SetAPIKeys names the ones it takes:
//
//	rc := resend.NewCustomClient(nil, fakeresend.DefaultAPIKey)
//	rc.BaseURL, _ = neturl.Parse(url + "/")
//
// # Pointing a Keybrake Brake at it
//
// To test the agent as it runs, braked, leave resend-go addressing
// api.resend.com and let the Brake send its traffic to the fake through
// Options.Endpoints (plain http is accepted for loopback hosts only):
//
//	kb, err := keybrake.Open(keybrake.Options{
//		PolicyFile: policyFile,
//		DBPath:     filepath.Join(t.TempDir(), "keybrake.db"),
//		Endpoints:  map[keybrake.Vendor]string{keybrake.Resend: url},
//	})
//	rc := resend.NewCustomClient(kb.HTTPClient("mail-bot", keybrake.Resend), fakeresend.DefaultAPIKey)
//
// An email the policy refuses never reaches the fake; keybrake.AsDenial
// recovers the decision from resend-go's error, which keeps only a
// message. The ledger then says what the sends the policy allowed actually
// sent, to compare with the Brake's audit log (Brake.Dump): see
// Example_emailsToTheCap. Resend answers with no price; the fake does
// not invent one: what an email costs is the policy's.
//
// # The ledger
//
// Sent and Recipients count the transactional emails sent and their To,
// Cc and Bcc recipients; Emails lists each; Broadcasts and
// BroadcastRecipients count broadcasts apart, as Resend bills them apart.
// Log, Requests and RequestsTo say what the fake was asked, whatever it
// answered.
//
// # Injecting faults
//
// A Server embeds a fakefault.Injector, the same in every fake:
//
//	fr.FailNext(1, 429)                        // Resend's rate limit, with its headers; nothing sent
//	fr.ExecuteThenFail(1, 500)                 // sends, then answers 500: the answer lost
//	fr.On("POST", "/emails/batch").HangNext(1) // no answer and nothing sent, until the client gives up
//	fr.Hang()                                  // every request from now on hangs...
//	fr.ClearFaults()                           // ...until this
//
// Inject takes a Fault with Resend's own fields besides: the error name in
// the body, or a non-Resend body as a proxy would send. A fault strikes
// before the work, or with Execute after it, and Close releases every
// request a fault holds.
//
// # What it stands in for
//
//   - The wire: "Authorization: Bearer re_..." (missing, or not Bearer:
//     401 missing_api_key; not shaped like a Resend key: 401
//     invalid_api_key; well-formed but not among SetAPIKeys: 403
//     invalid_api_key; keys are never echoed, and only their SHA-256 is
//     kept); JSON bodies (application/json, at most 1 MiB, one value, no
//     key twice in an object); Resend's error shape
//     {"statusCode","name","message"} with the names Resend documents;
//     404 not_found for any other path, 405 method_not_allowed for a
//     modelled path and another method.
//   - POST /emails: from ("user@example.com" or "Name <user@example.com>"),
//     to (a string or an array, 1 to 50 addresses), cc and bcc (at most
//     50 each), reply_to, subject, html or text, headers, tags,
//     attachments (each with content or path). A missing field is 422
//     missing_required_field, an invalid one 422 validation_error, a
//     field resend-go's SendEmailRequest does not have is refused too.
//     The answer is {"id"} with a UUID-shaped ID counting from 1
//     ("00000000-0000-4000-8000-000000000001").
//   - POST /emails/batch: a JSON array of 1 to 100 emails, without
//     attachments. With x-batch-validation strict (the default) one
//     invalid email refuses the whole batch (422, its message prefixed
//     with "emails[i]: "); with permissive the valid ones are sent and
//     the answer is {"data":[{"id"}...],"errors":[{"index","message"}...]}
//     ("errors" always present, possibly empty).
//   - GET /emails/{id}: the email, with resend-go's field names and
//     last_event "sent"; 422 invalid_parameter for an ID that is not a
//     UUID, 404 for an unknown one.
//   - POST /broadcasts/{id}/send for broadcasts the test seeds
//     (AddBroadcast with an audience size): {"id"}, once; a second send
//     is 422, an unknown broadcast 404. BroadcastRecipients counts what
//     was sent; Sent and Recipients count transactional emails only,
//     because Resend bills the two differently.
//   - Idempotency-Key on /emails and /emails/batch, for 24 hours
//     (IdempotencyWindow, by the server's clock): the same key on the same
//     endpoint with the same body (compared as canonical JSON, with the
//     batch mode) replays the saved status and body and sends nothing;
//     with another body it is 409 invalid_idempotent_request, the name
//     Resend's error reference gives (its OpenAPI description documents
//     no error at all); a key of 0 or more than 256 characters is 400
//     invalid_idempotency_key. Only sends that succeeded are saved: a
//     refused request can be corrected and sent again under its key.
//     Resend's 409 concurrent_idempotent_requests cannot happen here, as
//     requests are handled one at a time; inject it as a fault.
//   - Faults (see above): an error before anything happened
//     (FailNext(n, 429) is the rate limit, with Resend's ratelimit-limit,
//     ratelimit-remaining, ratelimit-reset and retry-after headers, which
//     resend-go reads into *resend.RateLimitError), an error after the
//     emails went out, a slow answer, no answer at all.
//
// # What it does not model
//
// The rest of Resend's API (404), listing emails, query parameters,
// scheduling (scheduled_at is refused unless empty), templates and React
// bodies, domains and whether the sender's domain is verified, test-mode
// restrictions on recipients, delivery events (every email stays "sent"),
// contacts and audiences beyond a recipient count, restricted (sending
// only) keys, idempotency keys scoped to a team or API key (here they are
// scoped to the endpoint alone), Idempotency-Key on broadcasts (ignored,
// as on /emails/{id}), rate limits and quotas except as injected faults,
// and attachment sizes.
//
// Everything a Server does is serialised under one lock, so the order of
// concurrent requests is the order they took it in; the waits of Delay and
// Hang are outside the lock.
package fakeresend
