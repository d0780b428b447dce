// Package resend is Keybrake's knowledge of Resend, for resend-go v2.28
// (spec 1.5.0): the host it calls, how to read its JSON requests strictly,
// which calls send mail and how many emails they count, how answers
// settle, and how a refusal looks so that resend-go surfaces it as its own
// error without retrying.
//
// # Wiring
//
// resend-go takes the *http.Client directly and calls https://api.resend.com/
// (or RESEND_BASE_URL, read once when the package loads):
//
//	client := resendgo.NewCustomClient(kb.HTTPClient("mailer", keybrake.Resend), apiKey)
//
// resend-go sends JSON bodies with ContentLength 0 and no GetBody
// (chunked); the transport buffers them, within its body limit, before
// Classify sees them.
//
// # Reading a request
//
// Classify refuses, with a *vendors.Invalid whose Code is keybrake_<reason>,
// anything Resend might read differently from Keybrake:
//
//   - a method other than GET, POST, PATCH, DELETE (keybrake_bad_method);
//     a path with anything but lower-case letters, digits, "-", "_", "."
//     and "/": Resend's paths and IDs are lower case, and a router that
//     ignores case would read /EMAILS as /emails (keybrake_bad_path);
//   - a path shaped like a known endpoint whose ID is not a lower-case
//     UUID (keybrake_bad_id), so POST /broadcasts/x/send is refused rather
//     than passed as an unknown call that moves nothing. Contacts by email
//     address, templates by alias, events and suppressions by name are
//     refused for the same reason;
//   - a POST or PATCH body whose Content-Type is not exactly
//     application/json (optionally with the single parameter
//     charset=utf-8); a POST or PATCH without body may carry no Content-Type, as
//     resend-go sends cancel and verify (keybrake_bad_content_type); a body
//     on a GET or DELETE (keybrake_unexpected_body); a query string on a
//     POST, PATCH or DELETE (keybrake_query_on_write);
//   - a GET query that url.ParseQuery refuses, has empty pairs or a pair
//     without "=" (keybrake_bad_params), a name that is not
//     ^[a-z][a-z0-9_]*$ (keybrake_bad_param_name), or a name twice
//     (keybrake_duplicate_param);
//   - a body that is not exactly one JSON value (RFC 8259): invalid UTF-8,
//     a byte order mark, control characters in strings, a \u escape that
//     leaves half a surrogate pair, data after the value, arrays and
//     objects nested more than 16 deep (keybrake_bad_json); a key given
//     twice in one object, or two keys that differ only in case as
//     bytes.EqualFold sees it ("to" and "TO", "subject" and "ſubject"), at
//     any depth (keybrake_duplicate_key): encoding/json matches keys
//     case-insensitively and keeps the last, Resend's JavaScript the exact
//     key; an object key that is empty or holds "[" or "]", which would make
//     its flattened name ambiguous (keybrake_bad_param_name);
//   - an Idempotency-Key given twice, empty, longer than Resend's 256
//     characters, outside printable ASCII, with a space at an end, or sent
//     to any endpoint but POST /emails and /emails/batch, where Resend
//     would act twice on a retry Keybrake took for a replay; an
//     x-batch-validation given twice, other than strict or permissive, or
//     sent anywhere but /emails/batch (keybrake_bad_header).
//
// An email (POST /emails, and each item of a batch) is read field by
// field with exact, case-sensitive names:
//
//   - only the fields Resend documents and resend-go sends: from, to, cc,
//     bcc, reply_to, subject, html, text, headers, tags, attachments,
//     scheduled_at, template, topic_id; any other field could change whom
//     or how much Resend sends (keybrake_unknown_param);
//   - each of its own JSON type: a number, null, object or array where a
//     string belongs is refused; headers an object of strings; tags
//     [{name, value}] of ASCII letters, digits, "_" and "-" (at most 256);
//     attachments objects whose content is a string or an array of byte
//     values 0-255 (resend-go's form); template {id, variables of strings
//     or numbers} (keybrake_bad_param, keybrake_missing_param);
//   - from and to present (keybrake_missing_param); to one address or a
//     list of 1 to 50; cc, bcc and reply_to at most 50 each, a bound
//     Keybrake sets so that no field reaches unbounded recipients
//     (keybrake_bad_recipients);
//   - every address one plain address: "a@x.example", "<a@x.example>" or
//     "Name <a@x.example>" (the name optionally in double quotes), the
//     address an ASCII dot-atom and a domain name. Commas and semicolons
//     anywhere (a list in one entry would be counted as one recipient), "@"
//     in the name ("billing@bank.example <x@evil.example>"), quotes or
//     brackets out of place, control and invisible formatting characters,
//     quoted local parts, IP literals and internationalised addresses are
//     refused (keybrake_bad_address);
//   - a subject with a control character, a header whose value holds one, a
//     header name that is not a field name, and headers that name
//     recipients or the sender (To, Cc, Bcc, From, Sender, Reply-To,
//     Return-Path, Resent-*), which could reach people Keybrake did not
//     count or pass for a sender the policy did not allow
//     (keybrake_bad_param).
//
// A batch is a JSON array of 1 to 100 such emails (keybrake_bad_batch);
// an error in one names it ("email [3]: ..."). Other endpoints need a JSON
// object as body (keybrake_bad_param) and are otherwise only read for
// Params.
//
// # Params and Audit
//
// Params are the GET query, or the JSON body flattened for policy
// conditions: an object's members as key[name], an array's items as
// key[0], key[1]..., strings as they are, numbers as written, booleans as
// true or false, null as nothing (so a condition on it fails). In an email,
// to, cc, bcc and reply_to are always lists (a single address is to[0], as
// Resend reads a string as a list of one), and attachment content is left
// out. A batch holds each email under emails[i] ("emails[0][from]") and,
// when every email has the same value for a top-level string field (from,
// subject, ...), that field under its own name: a policy condition on from
// then holds for a batch exactly when it holds for every email in it.
//
// Audit keeps, for emails, the senders, the number of recipients (and of
// emails in a batch), the subject's length in characters, the number of
// attachments, tags, and scheduled_at, template and topic_id; never
// recipients' addresses, subjects, bodies or attachment content, which are
// personal data. For a batch it adds the validation mode. For other calls
// it keeps the GET query and the names of the body's top-level fields, not
// their values (contacts are personal data).
//
// # What sending costs
//
// Resend's transactional plans bill emails: a monthly quota per plan, then
// overage per block of 1,000 emails (0.90 USD per 1,000 on Pro in 2025; a
// price belongs in the policy, never in code). Its quota counts every To,
// Cc and Bcc recipient of an email as one email. Marketing plans bill the
// contacts stored, and broadcasts go to every contact of a segment or
// audience.
//
//	operation          call                           Count    Priced
//	emails.send        POST /emails                   1        {Item: "email", Quantity: 1, Recipients: to+cc+bcc}
//	emails.batch       POST /emails/batch             emails   {Item: "email", Quantity: emails, Recipients: sum over emails}
//	broadcasts.send    POST /broadcasts/{id}/send     -1       {Item: "broadcast", Quantity: -1}
//	broadcasts.create  POST /broadcasts, "send": true -1       {Item: "broadcast", Quantity: -1}
//
// All four have MovesMoney true; the transport prices them from the
// policy. A policy that prices per email counts Quantity; one that follows
// Resend's quota counts Recipients. Keybrake does not know how many
// contacts a broadcast reaches: Quantity and Count -1 mean the policy must
// say how many emails a broadcast counts (broadcast_emails), or the call
// is refused. "send" on
// POST /broadcasts must be a JSON boolean: JavaScript would take the
// string "false" as true. Every other endpoint moves nothing and is
// allowed or refused by the policy's allowlist alone; endpoints not in the
// table get Operation "".
//
// # Scope: recipients and senders
//
// For an email, and for every email of a batch, Classify lists
// Recipients, the addresses of to, cc and bcc, and Senders, the address
// of from: each bare (no display name, no angle brackets), in lower case,
// deduplicated and sorted, so that "Ann <ANN@x.example>" and
// "ann@x.example" are one recipient. A policy's recipient or sender scope
// compares these. reply_to is not a recipient: it receives nothing when
// the email is sent, only the answers a person chooses to write (it is
// still bounded and checked as an address). Priced.Recipients still counts
// every entry, duplicates included, as Resend's quota does, and so does
// MostRecipients, the most entries of to, cc and bcc in one email of the
// call, for a policy's max_recipients.
//
// Lower case is exact here: addresses are ASCII (internationalised ones
// are refused), so no Unicode case folding can make two addresses one.
// The local part is compared without case although RFC 5321 lets a server
// tell "Ann" from "ann"; in practice mail services do not.
//
// Broadcasts (broadcasts.send, and broadcasts.create with "send": true) go
// to an audience or segment whose contacts Keybrake cannot see, from a
// sender stored with the broadcast (which broadcasts.update can change):
// they have Recipients and Senders nil. nil there means unknown, not
// nobody: a recipient or sender scope must refuse them, as it must the
// other calls that make Resend send mail later (automations, events),
// which name no recipients either. Resend calls have no customers:
// SubjectLookup is never set, and Resolve refuses one.
//
// # Settling
//
// A 2xx answer to a send means Resend accepted all of it: Settle reports
// the priced amount, Units -1 (as reserved), and the email's or
// broadcast's ID. A batch answers {"data":[{"id"}...],"errors":[{"index",
// "message"}]}; in permissive mode the emails listed in errors were not
// sent. Settle counts every email not listed in errors as sent (an answer
// listing fewer IDs, as a mock does, is still counted in full: the safe
// direction), and scales the reserved amount to them exactly,
// ceil(reserved * sent / emails), rounding up. An answer it cannot read
// wraps ErrSettle and the reservation stays counted.
//
// # Refusals
//
// resend-go keeps nothing of an error response but its message
// (errors.New("[ERROR]: " + message)) except for 429, which it turns into
// a *resend.RateLimitError. Deny therefore answers with the refusal's
// status (401, 402, 403 or 503; never 429), Resend's error shape
// {"statusCode", "name", "message"} plus "keybrake" (the details), and a
// message that carries everything:
//
//	Keybrake refused this call (<decision>): <reason> (rule "<rule>", code <code>, status <status>, request "<request id>", kbr_<16 hex>)
//
// The token names the refusal in the process-wide refusal memory of
// package vendors; RefusalDetails finds the message anywhere in an error's
// text (through *url.Error and wrapping), recalls the details, and, when
// the memory has forgotten them, rebuilds decision, code, rule, reason,
// status, vendor and call ID from the message.
//
// # What Keybrake does NOT protect on Resend
//
//   - Reputation. Bounces and spam complaints cost deliverability and can
//     get sending paused (Resend pauses accounts above a 4% bounce rate);
//     none of that is money Keybrake counts. An agent allowed to send may
//     still send the wrong thing to the right people.
//   - Broadcast size. broadcasts.send counts what the policy says a
//     broadcast counts; an agent allowed to add contacts
//     (audiences.contacts.create, contacts.create, contacts.create_import,
//     contacts.add_segment) or to point a broadcast at another segment
//     (broadcasts.update) can make the same call reach more people.
//   - Automations and events. automations.create and automations.update
//     (status enabled) and events.send make Resend send mail later, on its
//     own schedule; none of it is counted.
//   - Scheduled email is counted when scheduled; emails.cancel and
//     broadcasts.cancel give nothing back, and emails.update reschedules
//     without a new count.
//   - API keys. api_keys.create returns a new key that does not go through
//     Keybrake at all: an agent allowed it holds an unbraked key. Never
//     allow it; the same goes for webhooks (they receive every event, with
//     addresses) and domains.
//   - Received email counts against Resend's quota too; Keybrake sees only
//     what the agent sends.
//   - cc, bcc and reply_to are capped at 50 by Keybrake, not by Resend;
//     internationalised addresses and display names with commas are
//     refused though Resend may accept them; large attachments are bounded
//     by the transport's body limit, not by Resend's.
package resend
