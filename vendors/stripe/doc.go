// Package stripe is Keybrake's knowledge of Stripe, for stripe-go v76 (API
// version 2023-10-16): the hosts it calls, how to read its requests
// strictly, what each money-moving call moves, how its responses settle,
// and how a refusal looks so that stripe-go surfaces it as its own
// *stripe.Error without retrying.
//
// # Wiring
//
// Backends builds the three stripe-go backends over Keybrake's client:
//
//	sc := client.New(key, stripe.Backends(kb.HTTPClient("refund-bot", keybrake.Stripe)))
//
// # Reading a request
//
// Classify refuses, with a *vendors.Invalid whose Code is keybrake_<reason>,
// anything Stripe might read differently from Keybrake:
//
//   - a method other than GET, POST, DELETE (keybrake_bad_method); an API
//     path on connect.stripe.com, an /oauth/ path on api.stripe.com, a
//     non-/v1/files path on files.stripe.com (keybrake_wrong_host);
//   - a write whose Content-Type is not exactly
//     application/x-www-form-urlencoded, optionally with the single
//     parameter charset=utf-8 (Stripe decodes percent-encoded UTF-8, so
//     that parameter is unambiguous; any other is refused). Multipart file
//     uploads to files.stripe.com are therefore refused too
//     (keybrake_bad_content_type). A GET may carry the form Content-Type,
//     as stripe-go sends it, or none;
//   - a query string on a POST or DELETE, which Stripe would merge into the
//     body parameters (keybrake_query_on_write); a body on a GET
//     (keybrake_body_on_get);
//   - parameters url.ParseQuery rejects (";", bad escapes), empty pairs, a
//     pair without "=" (keybrake_bad_params); a decoded name that is empty
//     or not ^[a-z0-9_]+(\[[^\[\]]*\])*$, so "amount+" ("amount ") is
//     refused (keybrake_bad_param_name); any name given twice, in any
//     encoding (keybrake_duplicate_param);
//   - an amount anywhere (the name or its last bracketed part is amount,
//     ends in _amount, is amount_to_capture or quantity) that is not
//     ^(0|[1-9][0-9]{0,7})$, a *_decimal that is not
//     ^(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?$, or an amount in BHD, JOD,
//     KWD, OMR or TND whose last digit is not 0 (keybrake_bad_amount);
//     values under a metadata hash are free text and not checked;
//   - a currency money.ParseCurrency does not know (keybrake_bad_currency);
//   - a top-level customer parameter, or one naming an object of a
//     customer (charge, payment_intent, invoice, subscription,
//     from_subscription, schedule, setup_intent, refund), or a path ID
//     under a known collection, without its kind's prefix: ch_ or py_,
//     pi_, cus_, in_, tr_, trr_, fee_, fr_, re_ or pyr_, po_, tu_, cn_,
//     cs_, plink_, dp_ or du_, sub_, txn_, seti_, pm_ or card_ or src_,
//     qt_, ii_, sub_sched_, si_ (keybrake_bad_id). Known literals
//     (/v1/charges/search, /v1/invoices/upcoming, ...) are allowed;
//   - a Stripe-Account that is not acct_..., or either it or
//     Idempotency-Key given twice (keybrake_bad_header);
//   - a scalar Keybrake reads for money sent as a hash ("amount[x]=1"), any
//     of the ID parameters above sent as a hash, a
//     customer parameter other than the one in a /v1/customers/{id} path, a
//     capture or confirm not "true"/"false", a capture_method other than
//     automatic, automatic_async, manual (keybrake_bad_param);
//   - a money-moving call without the parameters its amount depends on
//     (keybrake_missing_param), or a credit note priced only by its lines
//     (keybrake_amount_unknown).
//
// Customer is the customer parameter, or the ID in any /v1/customers/{id}
// path (listed in the endpoint table or not), or the customer of the
// objects a lookup fetched (see Scope). Account is the Stripe-Account
// header; IdempotencyKey the Idempotency-Key header. Audit keeps every
// parameter vendors.RedactParam keeps, redacted.
//
// # The money table, as implemented
//
// Amounts are minor units of the currency. Every operation below has
// MovesMoney true and Count 1. "Lookup" is the GET Resolve performs; the
// settled amount is read from the 2xx response, whose currency must be the
// call's.
//
//	operation                                   amount reserved                                        lookup                   settled
//	charges.create            POST /v1/charges  amount, currency; 0 when capture=false                  -                        amount_captured if captured, else 0
//	charges.capture           .../{ch}/capture  amount, else amount - amount_captured                   GET /v1/charges/{ch}     amount_captured - before
//	charges.refund            .../{ch}/refund   amount, else amount - amount_refunded                   GET /v1/charges/{ch}     amount_refunded - before (answers a charge)
//	charge_refunds.create     .../{ch}/refunds  amount, else amount - amount_refunded                   GET /v1/charges/{ch}     refund amount (0 if failed/canceled)
//	payment_intents.create                      amount, currency when confirm=true and capture_method
//	                                            automatic/automatic_async; else 0                       -                        amount_received
//	payment_intents.confirm                     intent amount; 0 when capture_method (the body's
//	                                            override, else the intent's) is manual                  GET /v1/payment_intents  amount_received - before
//	payment_intents.capture                     amount_to_capture, else amount_capturable               GET /v1/payment_intents  amount_received - before
//	payment_intents.increment_authorization     zero, no currency (an authorisation)                    -                        zero
//	refunds.create                              amount, else charge amount - amount_refunded or
//	                                            intent amount_received; currency ALWAYS looked up       charge or intent         amount (0 if failed/canceled)
//	transfers.create                            amount, currency                                        -                        amount
//	transfer_reversals.create                   amount, else amount - amount_reversed                   GET /v1/transfers/{tr}   amount
//	payouts.create, topups.create               amount, currency                                        -                        amount
//	invoices.pay                                amount_remaining                                        GET /v1/invoices/{in}    amount_paid - before
//	application_fee_refunds.create              amount, else amount - amount_refunded                   GET /v1/application_fees amount
//	credit_notes.create                         amount, else refund_amount + credit_amount +
//	                                            out_of_band_amount (at least one named)                 GET /v1/invoices/{in}    amount
//
// "before" is what the object had already captured, received, refunded
// or paid when looked up; when Settle does not have it, it counts the
// whole running total, the safe direction.
//
// checkout.sessions.create and payment_links.create move nothing when
// made (the customer pays later) and are named but have MovesMoney false.
// Every other endpoint in the table (retrieve, list, update, cancel...)
// moves nothing; endpoints not in the table get Operation "".
//
// # Scope: which customers a call touches
//
// A policy may bound an agent to some customers (those it created, a
// listed cohort, those whose metadata matches). The policy decides; the
// vendor says, exactly and failing closed, whom a call touches. After
// Classify, and Resolve when the policy needs the customer (vendors.Need), a call is in
// one of four states:
//
//	Customer set              the call touches that customer's objects
//	NoCustomer                it touches an object that belongs to no customer
//	both                      it acts on an object of no customer and names a
//	                          customer (attaching one: charges.update customer=,
//	                          payment_methods.attach): a scope checks both
//	neither, no SubjectLookup Keybrake cannot bound the customers: a list or
//	                          search without a customer filter reads every
//	                          customer's objects; a call on an object Keybrake
//	                          cannot tie to a customer; and customers.create
//	                          (Creates "customer"), whose customer is new
//
// A scope must refuse the last state, except a customers.create it allows.
//
// Where the customer comes from:
//
//   - the customer parameter, or a /v1/customers/{id} path, any method,
//     any sub-path (checked to agree with each other by Classify);
//   - the object a call acts on by ID, any method, any sub-path, listed
//     in the endpoint table or not: charges, payment intents, invoices,
//     subscriptions, setup intents, payment methods, checkout sessions,
//     quotes, credit notes, invoice items, subscription schedules (their
//     own customer field); refunds and disputes (their charge's customer,
//     or their payment intent's when they have no charge: two lookups);
//     subscription items (their subscription's);
//   - the objects a request names in its top-level parameters charge,
//     payment_intent, invoice, subscription, from_subscription, schedule
//     (a subscription schedule), setup_intent and refund: a refund's
//     charge, a credit note's invoice, an invoice item's invoice and
//     subscription, a list's filter (GET /v1/refunds?charge=ch_1 lists one
//     charge's refunds). A GET that names a customer needs no lookup: a
//     list filtered by customer holds that customer's objects only.
//
// The money Lookup, when the call has one, fetches the object the call
// moves money on, and that answer tells its customer too (Resolve fills
// Customer or NoCustomer from it, whether or not the customer is needed).
// SubjectLookup is the GET of the first other such object, "" when there
// is none: a capture, a refund of a charge or intent, an invoice payment
// and a credit note need no GET beyond their Lookup. When the customer is needed
// set, Resolve fetches every object not yet told, and refuses (ErrLookup)
// unless they all belong to the customer the request names, if any, and
// to one another. It looks objects up even when the request names a
// customer, because on an update the parameter names the new owner, not
// the one the object has: the transport calls Resolve whenever Lookup is
// set, or the customer is needed and SubjectLookup is. A null customer sets
// NoCustomer; a missing customer field, an answer that is not the object
// asked for, or a refund or dispute naming neither charge nor payment
// intent is refused.
//
// A settled customer is kept as a fact (key stripe/<account>/<object>/<id>,
// value "<currency> <customer>") and read instead of fetching: charges
// take a customer only while they have none, invoices, subscriptions,
// quotes, credit notes, checkout sessions, invoice items and schedules
// never change theirs, and a refund or dispute of a charge keeps its
// charge's. "No customer" is never kept as proof (a charge may be given
// one, a checkout session gets one when paid), and nothing is kept of
// payment intents, setup intents and payment methods, whose customer can
// change (update, attach, detach).
//
// Classify sets NoCustomer itself for operations whose objects never
// belong to a customer: transfers, transfer reversals, payouts (and their
// cancellation), top-ups, application fee refunds, payment links, and
// charges, payment intents and checkout sessions created without a
// customer (Stripe refuses to charge a customer's saved card or payment
// method without naming the customer).
//
// RefundOf is the charge a refund draws on: the path's charge for
// charges.refund and charge_refunds.create, the charge parameter of
// refunds.create, and for refunds.create of a payment intent the intent's
// latest_charge, read by Resolve from the lookup it always makes for it
// (facts never spare it). An intent without a charge (latest_charge
// null) leaves RefundOf empty; Stripe refuses to refund it anyway. An
// answer without the field (an API version before 2022-11-15, which the
// request's own Stripe-Version header can ask for, since lookups carry the
// call's headers) leaves it empty too without a scope, and is refused
// (ErrLookup) when the customer is needed, so that refunds per charge are
// never counted against no charge.
//
// customers.create has Creates "customer": Settle returns the new
// customer's ID in Settlement.Object although the call moves no money.
// CustomerMetadata reads a customer's metadata, strings only, refusing a
// deleted customer.
//
// What Keybrake cannot tell:
//
//   - Lists and searches without a customer filter: every operation
//     named *.list or *.search (and invoices.upcoming without customer,
//     subscription or schedule) reads every customer's objects, as do
//     the reads of objects that belong to no customer but link to
//     customers' objects (transfers, payouts, balance transactions,
//     application fees: expand can follow source_transaction and the
//     like). They are left in the fourth state.
//   - expand: a read of a customer's object may expand the objects it
//     links to; they are that customer's, or the account's.
//   - payment_method and source parameters are not looked up: a new card
//     belongs to no customer, so a scope would refuse every first
//     payment; Stripe refuses a payment method attached to one customer
//     used for another.
//   - Objects Keybrake does not know (reviews, early fraud warnings,
//     Terminal, Issuing, Treasury...) are in the fourth state unless they
//     name a customer.
//
// # What Keybrake does NOT protect on Stripe
//
// Keybrake caps only the operations in the money table. Calls that can move
// money by an amount Keybrake cannot know carry Call.Uncapped, the reason
// (uncapped.go), and the policy refuses them unless the allow rule says
// uncapped: true, the operator's acceptance that they move money outside
// every cap:
//
//   - Subscriptions (create, update, cancel, resume; subscription items
//     and schedules) create invoices that Stripe charges on its own
//     schedule, the first one often at once.
//   - Invoices created, updated or finalized, and invoice items, with
//     automatic collection are charged by Stripe later; only invoices.pay
//     is counted. Accepted quotes (.../accept) create such invoices.
//   - Customer balance and cash balance moves
//     (/v1/customers/{id}/balance_transactions,
//     /v1/payment_intents/{id}/apply_customer_balance), payout reversals,
//     Terminal (refund_payment, process_payment_intent), every write under
//     Issuing and Treasury.
//
// Writes Keybrake does not know at all (test helpers, and any endpoint
// newer than this table) pass on the allowlist alone. Also:
//
//   - Money that moves after the call by the customer's action: a
//     checkout session or payment link paid, a payment intent confirmed
//     with 3-D Secure, a manual-capture intent captured by someone else.
//   - invoices.pay with paid_out_of_band=true is counted although Stripe
//     moves nothing; a payment intent refund reserves everything received,
//     not what is left after earlier refunds.
//   - File uploads (multipart) are refused outright, not classified.
//
// # Refusals
//
// Deny answers with Stripe's error shape and Stripe-Should-Retry: false,
// so stripe-go returns a *stripe.Error with HTTPStatusCode the refusal's
// status (401 revoked, 402 capped, 403 blocked or scoped, 503 error) after
// exactly one attempt; RefusalDetails reads the refusal back from that
// error's raw body. The Connect backend (OAuth) gets the flat error shape
// it decodes.
package stripe
