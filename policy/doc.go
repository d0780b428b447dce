// Package policy reads Keybrake's policy file and decides calls by it.
//
// A policy says, for each agent and each vendor account it holds a key to,
// which endpoints the agent may call, with which parameters, and how much
// money and how many billable units it may move per UTC day. Everything not
// written in the policy is refused.
//
// Evaluation is pure: [Policy.Authorize] and [Policy.Limits] do no I/O and
// read no clock; the day is a parameter. A refusal is a [Verdict] naming the
// rule that made it, never an error. Authorize answers "may this call be
// made at all"; Limits answers "which daily counters must it fit", and the
// store checks and reserves those counters atomically.
//
// # The file
//
// A policy is one YAML document (JSON is YAML too, and reads the same):
//
//	version: 1
//	agents:
//	  refund-bot:
//	    stripe:
//	      daily_cap: 500.00 USD          # all money this agent moves on Stripe per UTC day
//	      per_call_max: 50.00 USD
//	      allow:
//	        - POST /v1/refunds
//	        - GET /v1/charges/{id}
//	        - GET /v1/payment_intents/{id}
//	        - method: POST
//	          path: /v1/payment_intents
//	          params: {capture_method: manual}   # immediate capture is not allowed
//	  billing-bot:
//	    revoked: true                     # every call answers 401
//	    stripe:
//	      daily_cap: 100000 JPY
//	      allow: [POST /v1/charges]
//
// Top-level keys:
//
//   - version (required): 1.
//   - halt: true refuses every call of every agent (Revoked, 401). The
//     emergency brake; default false.
//   - fx: exchange rates, used only to count a call in one currency against
//     a limit in another (below).
//   - vendors: limits shared by every agent on one vendor account.
//   - agents (required): at least one agent, by name. A name is 1 to 63
//     characters of a-z, 0-9, _ and -, starting with a letter or digit.
//
// An agent holds revoked (true refuses all its calls: Revoked, 401) and one
// grant per vendor it may call, under the vendor's name: a built-in vendor
// (vendors/builtin, for Parse) or one given to ParseFor. A grant holds the
// common keys below and those its vendor declares (vendors.Info.Grant:
// customer and account scopes, lists of destinations, recipients or
// senders, maxima):
//
//   - daily_cap: all the money the agent may move on the vendor per UTC day,
//     as "500.00 USD". Required for any call that moves money: without it
//     such calls are refused (none is free by default).
//   - per_call_max: the most one call may move. Not above daily_cap when both
//     are in the same currency.
//   - daily_count: billable units per UTC day (messages, emails, SMS
//     segments), a positive whole number.
//   - allow: the rules; a call is allowed only if one matches. Empty or absent
//     allows nothing.
//
// The vendors section takes daily_cap and daily_count per vendor name, the
// vendor's prices when it declares price items, and its own settings
// (vendors.Info.Shared); a call counts against both its agent's limits and
// its vendor's.
//
// # Amounts
//
// An amount is a plain decimal number, one space, and an upper-case ISO 4217
// code: "500.00 USD", "100000 JPY", "12.345 KWD". Caps and prices alike take
// up to six decimals, so that a cap can be set in the fractions of a cent a
// vendor charges ("0.0020 USD"); a seventh is an error, as are signs,
// exponents, thousands separators, "500 dollars" and lower-case codes.
// Amounts are exact; no float is ever involved.
//
// # Rules
//
// A rule is either a string (the method, exactly one space, and the path)
// or a mapping:
//
//	allow:
//	  - POST /v1/refunds
//	  - method: POST
//	    path: /v1/payment_intents
//	    per_call_max: 20.00 USD        # stricter than the grant's, for this rule
//	    params:
//	      capture_method: manual       # must be sent, once, with this value
//	      confirm: [true, false]       # one of these
//	      metadata[tier]: gold         # keys as the vendor's form encoding sends them
//
// The method is GET, POST, PUT, PATCH or DELETE, upper case. The path is a
// template: "/" then segments separated by "/"; a segment is literal text
// (letters, digits, _, -, .), placeholders, or both. A placeholder "{name}"
// matches one or more of A-Z a-z 0-9 _ - in one segment and never "/" or
// ".", so "/v1/charges/{id}" matches /v1/charges/ch_1 but not
// /v1/charges/ch_1/refunds, and "{sid}.json" matches "SM1.json" but not
// "SM1.x.json". Matching is exact and case-sensitive: no wildcards, no
// trailing slash, no escapes, no dot segments.
//
// A parameter condition holds when the parameter is present exactly once in
// the call and its value equals one of the listed values, compared as text:
// true, 5 and manual are kept as written. Parameters a rule does not name are
// not restricted by it (the vendor layer refuses ones it cannot read). In
// flow style ([...] and {...}) YAML reads "[", "]", "{" and "}" as
// punctuation, so quote a bracketed name or a placeholder path there:
// {"metadata[tier]": gold}, ["GET /v1/charges/{id}"].
//
// Rules are tried in file order; the first whose method, path and every
// parameter condition hold allows the call. A call the vendor layer says
// can move money Keybrake cannot count (a Stripe subscription, which Stripe
// charges itself; Request.Uncapped) is allowed only by a rule with
// uncapped: true, written by an operator who accepts that the rule's calls
// move money outside every cap; rules without it pass such calls over.
// Each rule's ID, used in verdicts
// and the audit log, is its dotted path: agents.refund-bot.stripe.allow[3].
//
// # Currencies and fx
//
// A limit counts in its own currency. A call in another currency counts only
// if fx has a direct rate from the call's currency to the limit's:
//
//	fx:
//	  EUR: 1.0850 USD               # one EUR counts as 1.0850 USD
//	  GBP: [1.2700 USD, 1.1700 EUR]
//
// Rates are never inverted (EUR -> USD does not give USD -> EUR) or chained
// (GBP -> EUR -> USD is not GBP -> USD). A conversion rounds up to the
// millionth of a unit, so a converted amount never understates a call. A call
// that a limit cannot count is refused (keybrake_currency_not_capped): write
// the rate, or a cap in that currency. fx rates are what the operator chooses
// to count, not market data; pick them on the safe side.
//
// # Strictness
//
// The file must read as written. Parse refuses, naming the file and line:
// unknown and duplicate keys; values of the wrong type (revoked: yes,
// version: "1", daily_count: 0); inexact amounts and unknown currencies; bad
// methods and paths; anchors, aliases and merge keys (<<); explicit tags
// (!!str); a second YAML document; an empty file; bytes that are not UTF-8;
// control characters and lone carriage returns; Unicode line separators,
// bidirectional overrides and zero-width characters, anywhere, comments
// included.
//
// # Verdicts
//
// Authorize, in order:
//
//	halt: true                          revoked  halt                          keybrake_halted
//	agent not in the policy             blocked  agents                        keybrake_unknown_agent
//	agent revoked                       revoked  agents.<a>.revoked            keybrake_revoked
//	agent tripped by a rate limit       revoked  agents.<a>.<v>.rate[<i>]      keybrake_tripped
//	no grant for the vendor             blocked  agents.<a>                    keybrake_vendor_not_granted
//	a rule matches                      allowed  agents.<a>.<v>.allow[<i>]
//	uncapped money, no uncapped: true   blocked  agents.<a>.<v>.allow[<i>]     keybrake_uncapped_money
//	method and path match, params don't blocked  agents.<a>.<v>.allow[<i>]     keybrake_param_not_allowed
//	no rule matches                     blocked  agents.<a>.<v>.allow          keybrake_not_allowed
//
// Limits, for an allowed call:
//
//	negative amount, unknown currency   blocked  agents.<a>.<v>                keybrake_bad_amount
//	negative unit count                 blocked  agents.<a>.<v>                keybrake_bad_count
//	over a per-call maximum             capped   <rule ID>.per_call_max or agents.<a>.<v>.per_call_max  keybrake_per_call_max
//	moves money, no daily_cap           blocked  agents.<a>.<v>                keybrake_no_cap
//	no fx rate to a limit's currency    blocked  that limit's rule             keybrake_currency_not_capped
//	otherwise                           allowed  the rule's ID, with the limits:
//
//	agent/<a>/<v>/<day>/<CUR>   daily_cap     agents.<a>.<v>.daily_cap     when the call moves money
//	vendor/<v>/<day>/<CUR>      daily_cap     vendors.<v>.daily_cap        when it moves money and the vendor has a cap
//	agent/<a>/<v>/<day>/units   daily_count   agents.<a>.<v>.daily_count   when it has units and the grant a count
//	vendor/<v>/<day>/units      daily_count   vendors.<v>.daily_count      when it has units and the vendor a count
//
// and, where the grant (agent/<a>/<v>/...) or the vendor's section
// (vendor/<v>/...) sets them, the budgets (budgets.go, windows.go):
//
//	.../week/<sunday>/<CUR|units>    weekly_cap, weekly_count     the calendar week, named by its last day
//	.../month/<last>/<CUR|units>     monthly_cap, monthly_count   the calendar month, named by its last day
//	.../rate/<per>/calls             rate: {count, per}           every call; a rolling window (Limit.Window)
//	.../rate/<per>/<CUR>             rate: {spend, per}           when it moves money; a rolling window
//	run/<a>/<v>/r:<run>/<CUR|calls>  per_run: {cap, count}        the call's run (Request.Run)
//
// A grant with per_run refuses a call with no run (blocked, rule
// agents.<a>.<v>.per_run, keybrake_no_run) unless allow_no_run, and a bad
// run id (keybrake_bad_run). Days, weeks and months are the policy's time
// zone's (timezone:, default UTC). When the store finds a limit full,
// Limit.OverLimit words the refusal: capped, with code keybrake_daily_cap,
// _daily_count, _weekly_cap, _weekly_count, _monthly_cap, _monthly_count,
// _rate_count, _rate_spend, _run_cap, _run_count or _count_reached.
//
// Equal to a maximum is allowed; one micro more is not. A nil *Policy, a bad
// day, or Limits called for a call the policy did not allow, is Decision
// Error (503).
package policy
