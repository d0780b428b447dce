// Package faketwilio is a fake Twilio REST API (2010-04-01) to run in the
// tests of your own agent. Like stripe-mock is for Stripe, it is a local
// server that twilio-go v1.31 talks to as it would to api.twilio.com for
// messages and calls; unlike Prism serving Twilio's OpenAPI description,
// which checks requests against the spec but answers fixed examples
// ("price": null forever, one segment whatever the body), it remembers
// what it sent and keeps a ledger of what that will cost. A message's
// num_segments follows its body, its price appears later as Twilio fills
// it in, the bill adds up, and a test can inject the failures that leave
// the outcome of a send unknown.
//
// # Starting one
//
// Start serves a new fake on a loopback httptest.Server for the duration
// of a test and returns it with its base URL; set the prices the test
// expects (the defaults are Twilio's US list prices):
//
//	ft, url := faketwilio.Start(t)
//	ft.SetPrice("+44", "0.0400")
//
// Outside a test, serve New yourself, and Close the fake before the
// httptest.Server, whose Close waits for the requests a Hang holds.
//
// # Pointing twilio-go at it
//
// twilio-go hard-codes https://api.twilio.com, so give it an HTTP client
// that sends every request to the fake instead (HTTPClient, or Transport
// below a RoundTripper of your own), with the credentials the fake
// accepts (DefaultAccountSID and DefaultAuthToken, or SetCredentials):
//
//	c := &client.Client{
//		Credentials: client.NewCredentials(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken),
//		HTTPClient:  faketwilio.HTTPClient(url),
//	}
//	c.SetAccountSid(faketwilio.DefaultAccountSID)
//	tw := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})
//
// # Pointing a Keybrake Brake at it
//
// To test the agent as it runs, braked, give twilio-go the Brake's client
// instead and let the Brake send the traffic to the fake through
// Options.Endpoints (plain http is accepted for loopback hosts only):
//
//	kb, err := keybrake.Open(keybrake.Options{
//		PolicyFile: policyFile,
//		DBPath:     filepath.Join(t.TempDir(), "keybrake.db"),
//		Endpoints:  map[keybrake.Vendor]string{keybrake.Twilio: url},
//	})
//	c.HTTPClient = kb.HTTPClient("sms-bot", keybrake.Twilio)
//
// A message the policy refuses never reaches the fake; keybrake.AsDenial
// recovers the decision from twilio-go's error. Twilio answers a new
// message with "price": null, so the Brake counts it at the policy's
// estimate until PriceMessages (or SetPriceDelay) has priced it and
// Brake.Reconcile has read the price; then the ledger and the Brake's
// audit log (Brake.Dump) agree: see Example_smsToTheCap.
//
// # The ledger
//
// Spent is what Twilio will bill for everything done so far, Billed what
// the API already shows; Messages and Calls list each with its segments,
// price and status. Log, Requests and RequestsTo say what the fake was
// asked, whatever it answered.
//
// # Injecting faults
//
// A Server embeds a fakefault.Injector, the same in every fake:
//
//	ft.FailNext(1, 503)         // the next request: 503, nothing sent
//	ft.ExecuteThenFail(1, 500)  // sends, then answers 500: the answer lost
//	ft.On("POST", "/2010-04-01/Accounts/"+faketwilio.DefaultAccountSID+"/Calls.json").FailNext(1, 429)
//	ft.Hang()                   // every request from now on hangs...
//	ft.ClearFaults()            // ...until this
//
// Inject takes a Fault with Twilio's own fields besides: the error code in
// the body, or a non-Twilio body as a proxy would send. A fault strikes
// before the work, or with Execute after it, and Close releases every
// request a fault holds. Twilio has no idempotency key for messages or
// calls, so a retry after ExecuteThenFail sends again: the test sees what
// the agent's retries cost.
//
// # What it stands in for
//
//   - The wire: Basic auth with the one account SID and auth token the
//     test set (SetCredentials; anything else is 401 code 20003 with
//     WWW-Authenticate, and the token is never echoed or logged); form
//     bodies with repeated keys for lists (MediaUrl, StatusCallbackEvent);
//     JSON answers with the spec's and twilio-go's field names, dates in
//     RFC 2822, a Twilio-Request-Id on every answer ("RQ" and 32 hex
//     digits); Twilio's error shape {"code","message","more_info","status"}
//     with the HTTP status; 404 code 20404 for any other route, for an
//     unknown SID and for another account's path.
//   - Messages (POST .../Messages.json, GET .../Messages/{Sid}.json): To
//     in E.164 (400 21604 when missing, 21211 when not a number); From (a
//     number, short code or alphanumeric sender ID, else 21212) or
//     MessagingServiceSid (21603 when neither); Body or MediaUrl (21602
//     when neither; 21617 over 1600 characters; at most 10 http(s) media
//     URLs); SendAsMms. The answer is 201 with a SID "SM" and 32 hex digits
//     counting from 1, status "queued", "price": null, "price_unit": "USD",
//     num_segments from Segments (GSM-7 160/153 septets, extension
//     characters counting two; UCS-2 70/67 UTF-16 code units) and
//     num_media. A message through a Messaging Service alone is "accepted"
//     with num_segments "0" until priced, as the spec describes.
//   - Prices: each message is priced when it is sent, at segments times
//     the SMS unit price for its destination (SetPrice: per prefix, the
//     longest wins, "" for the rest) or the MMS price (SetMMSPrice) for an
//     MMS (MediaUrl or SendAsMms=true). The API shows that price only once
//     PriceMessages is called or SetPriceDelay has passed, then as Twilio
//     writes it ("-0.00790") with status "sent" and date_sent.
//   - Calls (POST .../Calls.json, GET .../Calls/{Sid}.json): To and From
//     in E.164 (21201, 21213 when missing), exactly one of Url, Twiml or
//     ApplicationSid, TimeLimit (seconds, 1 to 86400, default 14400). The
//     answer is 201 with a SID "CA...", status "queued", price and
//     duration null, until CompleteCalls or CompleteCall ends it: then its
//     duration (at most TimeLimit) and a negative price, its started
//     minutes times the per-minute price (SetCallPrice) when it was placed.
//   - Money: Spent is what Twilio will bill for everything done so far,
//     Billed what the API shows already; Messages and Calls list each with
//     its cost.
//   - Faults (see above): an error before anything happened, an error
//     after the message was sent (the answer lost on its way back), a slow
//     answer, no answer at all.
//
// # What it does not model
//
// The rest of Twilio's API (404), list endpoints, query parameters,
// subaccounts, API-key authentication, parameters that change the body or
// what it costs in ways the fake cannot follow (ContentSid and
// ContentVariables, SmartEncoded, ShortenUrls, scheduling, Record,
// MachineDetection and the like: all refused with 400 code 20001, as is
// any parameter not listed above and any scalar parameter sent twice,
// where Twilio would ignore or pick one), user-perceived characters made
// of several code points in segment counting (Twilio keeps them in one
// part; the fake may split them), MMS outside +1 (refused: Twilio would
// send an SMS with a link), channels (whatsapp:, client:, sip:), delivery
// and failure statuses, status callbacks, Twilio's rate limits (except as
// injected faults), currencies other than USD, and test credentials'
// magic numbers. Twilio has no idempotency key for messages or calls, and
// twilio-go never retries: neither does anything here.
//
// Everything a Server does is serialised under one lock, so the order of
// concurrent requests is the order they took it in; the waits of Delay and
// Hang are outside the lock.
package faketwilio
