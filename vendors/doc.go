// Package vendors is the contract between Keybrake's shared code and what
// it knows of each vendor, and the helpers vendors share.
//
// Keybrake's transport, policy, redaction and keybrake.AsDenial never name
// a vendor. Everything they need to know of Stripe, Twilio or Resend (its
// hosts, how to read its requests, what a call moves, what its answer says
// moved, how its SDK reads an error) they ask of a [Vendor]: a value with
// eight methods, one of which, [Vendor.Info], describes the rest of it
// (its policy keys, price items, request-ID headers and credential
// formats). A built-in vendor is its folder under vendors/ and one line in
// vendors/builtin; a vendor of your own is a value of your own package.
//
// The interface and the types its methods take and return are public and
// stable: a vendor written outside this module keeps compiling and keeps
// its meaning. Fields may be added to the structs ([Request], [Call],
// [Settlement], [Refusal], [Info], [Key], [Need], [Priced]), and a new
// field's zero value always means what the contract meant without it.
// Methods are never added to [Vendor]; a new capability is a separate
// interface that the shared code looks for with a type assertion, as it
// does for [Reconciler], [CustomerReader], [LookupHeaderer] and [Custody].
//
// # Registering a vendor
//
// The vendors Keybrake knows out of the box are listed in
// vendors/builtin, one line each; adding one to Keybrake is its folder and
// that line. A vendor of your own goes in keybrake.Options.Vendors, under
// its name:
//
//	kb, err := keybrake.Open(keybrake.Options{
//		PolicyFile: "keybrake.yaml",
//		DBPath:     "keybrake.db",
//		Vendors:    map[keybrake.Vendor]vendors.Vendor{"payouts": payoutsVendor{}},
//	})
//	client := kb.HTTPClient("payout-bot", "payouts")
//
// The policy then takes the vendor's name under agents and under vendors,
// with the common grant keys (daily_cap, per_call_max, daily_count, allow)
// and those its Info declares, and keybrake.AsDenial recognises its
// refusals. The name must be a policy key (^[a-z0-9][a-z0-9_-]{0,62}$,
// not "revoked"), equal to the map key, and not a built-in vendor's; Open
// refuses anything else. examples/custom-vendor is a whole vendor written
// this way, outside this package, with its tests.
//
// # Concurrency
//
// A vendor is a value without state: the transport calls every method from
// many goroutines at once, for many agents, for the life of the process.
// Every method must be safe for concurrent use and must not keep anything
// between calls; what Classify learns that Resolve or Settle needs goes in
// [Call.State]. The process-wide state this package itself holds (the
// credential formats of [RedactSecrets], the refusal memory of
// [RememberRefusal]) is safe for concurrent use.
//
// # One call
//
// For each request an agent's SDK sends, the transport asks the vendor, in
// this order:
//
//  1. [Vendor.Hosts]. Before the vendor sees a request, the transport
//     refuses one addressed anywhere but an official host over https or
//     the endpoint configured in keybrake.Options.Endpoints; a method
//     other than GET, POST, PUT, PATCH or DELETE, or a method-override
//     header; a path with an escape, a dot or empty segment, a trailing
//     slash or a path parameter; a body over its limit (1 MiB). Hosts are
//     lower case, without port.
//
//  2. [Vendor.Classify] reads the [Request] (a copy: the method, the
//     official host, the checked path without the endpoint's prefix, the
//     raw query, the headers, the whole body) and says what the call is.
//     It must be pure. It fails closed: whatever it cannot read with
//     certainty, and whatever the vendor might read otherwise than it
//     does (a content type it does not expect, a parameter twice, a JSON
//     key twice or in another case, a number that could be two amounts,
//     an endpoint it does not know that could move money), it refuses by
//     returning an [*Invalid] with a keybrake_<reason> code; [Invalidf]
//     builds one, [FormPairs] reads a form or query strictly. The call is
//     refused Blocked, 403, by the rule "request", with that code (any
//     other error refuses it too, as keybrake_bad_request). A call that
//     can move money sets [Call.MovesMoney] and either its Amount, or
//     [Call.Lookup] for Resolve to find it, or [Call.Priced] for the
//     policy to price it; Count is its billable units for daily_count.
//     [Call.Audit] is what the audit log keeps of its parameters, each
//     passed through [RedactParam] or [RedactText].
//
//  3. The policy authorizes the call by its method, path and Params.
//
//  4. [Vendor.Resolve] is called only when Call.Lookup is set, or when
//     [Need.Customer] is (a customer scope is in force) and
//     Call.SubjectLookup is. It fetches what the request does not say with
//     the [Getter], which sends a GET with the call's own credentials
//     through the same transport, bounded by ctx (the request's context,
//     also ended when the call is refused meanwhile), and fills the call
//     in. What never changes about an object it may read from [Facts],
//     which may be nil, and it returns what it learned ([Fact]) for the
//     transport to keep. An error refuses the call: Error, 503,
//     keybrake_lookup_failed. A call that still moves money of an unknown
//     currency after Resolve is refused too. A vendor whose requests say
//     everything returns an error when asked to resolve anything.
//
//  5. The policy checks the call's scope (the Subjects of the vendor's
//     list keys), prices a Priced call ([Info.Units], the policy's
//     prices) and decides its limits; the store reserves its money and
//     units durably; the call is sent.
//
//  6. [Vendor.Settle] is called with the body of a 2xx answer (at most
//     1 MiB, once the agent has read it to the end or closed it) to a call
//     with MovesMoney or Creates set, and says what moved, in the call's
//     currency: after the policy decided, Call.Amount is what was
//     reserved, the policy's price for a priced call. An error means the
//     amount is unknown: the audit record says unknown and the whole
//     reservation stays counted against every limit until it is
//     reconciled. Settle never sees other answers: a 4xx releases the
//     reservation, a 5xx leaves it unknown.
//
//  7. [Vendor.Deny] renders a refusal, at any stage, as the vendor's own
//     error response, which the transport returns to the SDK instead of
//     sending anything. [Refusal] carries the status (401 revoked, 402
//     capped, 403 blocked or scoped, 503 error), the code, a message, the
//     request ID of the audit record (kb_<n>) and Details, the whole
//     decision as JSON. The response must make the vendor's SDK surface
//     its usual error, keep Details where RefusalDetails finds them, and
//     not retry: a status the SDK would retry (Resend's 429) is changed,
//     a retry header the SDK honours (Stripe-Should-Retry) is set to no.
//     Deny must not read or close the request's body and must always
//     return a response. [JSONResponse] builds one.
//
//  8. [Vendor.RefusalDetails] is what keybrake.AsDenial asks of an error
//     the SDK returned: it tries every vendor it knows, in name order, and
//     takes the first details that decode as a refusal. So a vendor must
//     recognise its own refusals and no others: find its own error type
//     (errors.As) or its own message format, never a bare token.
//
// An SDK that keeps nothing of an error but its message (resend-go) can
// still lead back to the decision: Deny puts a [NewRefusalToken] in the
// message and remembers Details under it with [RememberRefusal], and
// RefusalDetails finds the token in the error's text and calls
// [RecallRefusal]. The memory holds the latest 4096 refusals of the
// process and is shared by every vendor, so a vendor should find tokens
// only inside its own message format, and rebuild what it can from the
// message when the memory has forgotten it.
//
// # What Info declares, and who reads it
//
// [Info] is read when a Brake opens and whenever the policy is reloaded,
// and once for each transport; it must return the same description every
// time. A zero Info is valid: a vendor whose grants take only the common
// keys and whose calls are never priced.
//
//   - Grant and Shared are read by the policy parser: each [Key] becomes a
//     key of the vendor's grants (a [ListKey] or [MaxKey] on a [Subject]
//     of the call, a [CustomersKey] or [AccountsKey] scope) or of its
//     section under vendors (a [CountSetting] or [FlagSetting] for Units).
//     A ListKey needs a complete [Matcher], which checks the policy's
//     entries and matches the call's values; the parser refuses a vendor
//     whose keys it cannot follow when the Brake opens.
//   - Prices and Units are read by the policy's pricing: the items a
//     policy may price, and how a Priced call counts by the shared
//     settings. Units must be pure.
//   - RequestIDHeaders is read by the transport, for the audit record's
//     RequestID; ReplayHeader, to settle at nothing an answer the vendor
//     replayed.
//   - Secrets are credential formats that [RedactText] masks in every
//     audit record, whichever vendor's call it is. The built-in vendors
//     register theirs with [RedactSecrets] when their package loads;
//     keybrake.Open registers those of Options.Vendors.
//   - Help and each Key's Help are for people; nothing is decided by them.
//
// The optional interfaces are found by type assertion: a [Reconciler]
// prices settled calls later (keybrake.Brake.Reconcile), a
// [CustomerReader] reads customer metadata for metadata scopes, a
// [LookupHeaderer] pins headers on Keybrake's own lookups, and a [Custody]
// lets keybrake serve (keybrake.Brake.Proxy) call the vendor for an agent
// while holding the vendor's secret itself.
package vendors
