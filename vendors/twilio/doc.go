// Package twilio is Keybrake's knowledge of Twilio, for twilio-go v1.31:
// the hosts it calls, how to read its requests strictly, what a message or
// a call costs, how its answers settle and are reconciled once Twilio
// prices them, and how a refusal looks so that twilio-go surfaces it as
// its own *client.TwilioRestError after one attempt.
//
// # Wiring
//
// twilio-go takes an *http.Client through its client.Client:
//
//	c := &client.Client{Credentials: client.NewCredentials(sid, token), HTTPClient: kb.HTTPClient("sms-bot", keybrake.Twilio)}
//	c.SetAccountSid(sid)
//	tw := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})
//
// (ClientParams.AccountSid is ignored when Client is set.) Hosts lists
// api.twilio.com, messaging.twilio.com and verify.twilio.com, and every
// PRODUCT.REGION.twilio.com and PRODUCT.EDGE.REGION.twilio.com twilio-go
// builds from SetEdge/SetRegion (or TWILIO_EDGE/TWILIO_REGION) with
// Twilio's documented edges and its processing regions us1, ie1 and au1.
// Other products' hosts (voice, lookups, conversations, ...) are refused
// by the transport.
//
// # Reading a request
//
// Classify refuses, with a *vendors.Invalid whose Code is keybrake_<reason>,
// anything Twilio might read differently from Keybrake:
//
//   - a method other than GET, POST, DELETE (keybrake_bad_method); a path
//     on the wrong product's host: api.* serves /2010-04-01/, messaging.*
//     /v1/, /v2/ and /v3/, verify.* /v2/ (keybrake_wrong_host);
//   - under /2010-04-01, a last segment that does not end in ".json" or a
//     dot anywhere else: Twilio also creates messages at "Messages" and
//     "Messages.xml", which Keybrake would not recognise; any path segment
//     that is one of the endpoint table's in another case ("messages.json")
//     (keybrake_bad_path);
//   - a POST whose Content-Type is not exactly
//     application/x-www-form-urlencoded, as twilio-go sends it (no charset,
//     no JSON: the few Messaging and Verify endpoints twilio-go sends JSON
//     to are refused outright); a GET or DELETE may carry that type or none
//     (keybrake_bad_content_type);
//   - a query string on a POST or a DELETE, which twilio-go sends without
//     one to these products (keybrake_query_on_write); a body on a GET or
//     DELETE (keybrake_body_on_get);
//   - parameters url.ParseQuery rejects, empty pairs, a pair without "=",
//     a value that is not valid UTF-8 (keybrake_bad_params); a decoded name
//     that is not ^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*[<>]?$, the
//     shape of every name twilio-go sends ("To", "Config.AppId",
//     "DateSent<"), so "To+" ("To ") is refused (keybrake_bad_param_name);
//     a name given twice unless Twilio defines it as a list (MediaUrl,
//     PersistentAction, StatusCallbackEvent, RecordingStatusCallbackEvent,
//     the conference event lists, Permissions, and the Messaging lists), or
//     two names that differ only in case, "Body" and "body"
//     (keybrake_duplicate_param);
//   - an Account SID that is not ^AC[0-9a-f]{32}$, a message SID not
//     ^(SM|MM)[0-9a-f]{32}$, a call SID not ^CA[0-9a-f]{32}$, a media SID
//     not ^ME[0-9a-f]{32}$, a Verify service not ^VA[0-9a-f]{32}$, in the
//     path, wherever it goes on (keybrake_bad_id). Twilio issues lower-case
//     hex; its OpenAPI description also allows upper case, which is refused.
//
// On messages.create and calls.create, also:
//
//   - any parameter twilio-go v1.31 does not send to that endpoint
//     (keybrake_unknown_param): a parameter Twilio adds may change the cost;
//   - To missing (keybrake_missing_param); To not E.164,
//     ^\+[1-9][0-9]{6,14}$ (keybrake_bad_destination); To or a message's
//     From a channel address (whatsapp:, messenger:, rcs:) or a call's To a
//     sip: or client: address (keybrake_unsupported_channel): those are
//     priced per conversation, template or leg in ways the policy's price
//     list does not describe;
//   - a message with ContentSid (a template whose text Keybrake cannot
//     see), with ShortenUrls=true (links rewritten to a length Keybrake
//     cannot know), without Body and MediaUrl, or an MMS to a number outside
//     +1 (keybrake_amount_unknown); SendAsMms or ShortenUrls other than
//     true/false, an empty MediaUrl, a TimeLimit that is not a positive
//     whole number of seconds (keybrake_bad_param).
//
// Account is the Account SID of the path; Customer stays empty (a phone
// number is personal data, not an ID). Twilio takes no idempotency key.
// Audit keeps every parameter vendors.RedactParam keeps, judging Twilio's
// PascalCase names in snake_case (SipAuthPassword is dropped), list
// elements as Name[i]; it drops Body, ContentVariables and Verify codes,
// and keeps a message's Body.chars, Body.segments and Body.encoding
// instead of its text.
//
// # The cost model, as implemented
//
// Keybrake does not know Twilio's prices: the policy's price list does
// (per Item and destination prefix). Classify says what is bought and how
// many; the transport prices it before deciding.
//
//	operation                        Priced                                      Count
//	messages.create  SMS             Item "sms", Destination To, Quantity segments  segments
//	messages.create  MMS             Item "mms", Destination To, Quantity 1         1
//	calls.create                     Item "call_minute", Destination To,
//	                                 Quantity ceil(TimeLimit/60), -1 without        1
//	verify.verifications.create      none (MovesMoney false)                        1
//
// A message is an MMS when it has a MediaUrl or SendAsMms=true; otherwise
// Segments counts its Body (GSM-7 160/153, UCS-2 70/67, see Segments).
// A call without TimeLimit may last Twilio's default of four hours: its
// Quantity is -1 and the policy decides whether to assume a maximum or
// refuse it. Every other endpoint, named in the table (messages.list,
// calls.update, accounts.retrieve, ...) or not, moves no money as far as
// Keybrake knows and passes on the policy's allow list alone.
//
// Twilio answers a new message or call with "price": null and prices it
// minutes later. Settle then reports the call's estimate with Estimated
// set and the resource's uri as Object; Reconcile fetches that uri until
// price is set and reports its absolute value in price_unit, which must be
// the reservation's currency. An answer already priced (as a completed
// call's) settles exactly. A message's Units is its num_segments.
//
// # What Keybrake does NOT protect on Twilio
//
//   - SMS pumping (artificially inflated traffic): fraudsters make an
//     agent text numbers they profit from, usually premium or high-cost
//     international ranges, through sign-up or OTP forms the agent serves.
//     Keybrake caps what the agent spends, per message, per day and in
//     count, but every message under the cap is still paid. Price high-cost
//     prefixes explicitly in the policy, allow only the countries the agent
//     serves (Twilio's Messaging Geographic Permissions do it at the
//     account), and keep daily_count tight: the count limit is what stops
//     pumping to cheap-looking numbers.
//   - What a call does after it connects: the TwiML at Url, Twiml or
//     ApplicationSid can <Dial> more numbers, each leg billed on its own;
//     recordings, transcriptions, answering machine detection, SIP and
//     Media Streams are billed apart. calls.update can redirect a live call
//     to new TwiML. Only the first leg's minutes are counted.
//   - Messages and calls made other ways: Conference participants
//     (dial-outs), Studio flows, Notify, Conversations, scheduled messages'
//     later sends (reserved when scheduled), and any product on a host
//     Keybrake refuses anyway.
//   - Verify: verify.verifications.create sends a message Twilio bills at
//     Verify's price plus the channel's, which Keybrake does not count in
//     money; it counts one unit, so a daily_count limit applies.
//   - Phone numbers bought (IncomingPhoneNumbers, billed monthly), short
//     codes, Messaging Services and A2P registrations (vetting fees), and
//     Lookup queries: allow-listed writes there are uncapped.
//   - Estimates: SmartEncoded=true can send fewer segments than counted
//     (Keybrake errs high); Twilio's MMS Converter may send an MMS to a
//     +1 carrier without MMS as an SMS with a link, billed per segment,
//     which the "mms" price may not cover; prices change. Until Reconcile
//     settles a call, the estimate is what the caps count; a message
//     Twilio never prices (some failures are not billed) stays counted at
//     its estimate.
//
// # Refusals
//
// Deny answers with Twilio's JSON error shape, code CodeRevoked (401),
// CodeCapped (402), CodeBlocked (403) or CodeError (503), and the decision
// under details.keybrake, so twilio-go returns a *client.TwilioRestError
// with that Status after one attempt; RefusalDetails reads the decision
// back from it.
package twilio
