// Package vendors is the contract between Keybrake's shared code and what
// it knows of each vendor; see doc.go for the whole story.
package vendors

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/keybrake/keybrake/money"
)

// Vendor is one vendor's knowledge. Implementations are stateless values,
// safe for concurrent use.
type Vendor interface {
	// Name is the vendor's name in policies and audit records: "stripe".
	Name() string

	// Hosts are the official API hosts, lower case, without port. Calls
	// to any other host are refused unless the operator configured it.
	Hosts() []string

	// Info describes the vendor to the shared code: its policy keys,
	// price items, request-id headers, credential formats and help. It
	// must return the same description every time.
	Info() Info

	// Classify reads a request that passed Keybrake's generic checks
	// (method, host, path, body size) and says what it is. It refuses
	// what it cannot read with certainty (content type, parameter syntax,
	// duplicate keys, malformed amounts) by returning an *Invalid error.
	Classify(r *Request) (*Call, error)

	// Resolve completes a call whose Call.Lookup is set, or whose
	// SubjectLookup is set when need.Customer is: it fetches what the
	// request does not carry (the amount of a refund without amount, the
	// currency of a capture, the customer of a charge) with get, and fills
	// the call in. What never changes about an object (its currency, its
	// customer) it may read from facts, which may be nil, instead of
	// fetching, and returns what it learned for the transport to keep.
	// An error refuses the call.
	Resolve(ctx context.Context, c *Call, need Need, get Getter, facts Facts) (learned []Fact, err error)

	// Settle reads a 2xx response body of a call that can move money and
	// says what moved, in the call's currency. An error means the amount
	// is unknown; the reservation then stays counted.
	Settle(c *Call, body []byte) (Settlement, error)

	// Deny renders a refusal as the vendor's own error response, so that
	// the vendor's SDK surfaces it as its usual error type, does not
	// retry it, and keeps Refusal.Details where RefusalDetails finds it.
	Deny(req *http.Request, r Refusal) *http.Response

	// RefusalDetails finds, in an error returned by the vendor's SDK, the
	// Details of a refusal Deny rendered. ok is false for other errors.
	RefusalDetails(err error) (details []byte, ok bool)
}

// Request is the part of an outgoing HTTP request a vendor classifies. It
// is a copy: changing it changes nothing that is sent.
type Request struct {
	Method string      // upper case, checked
	Host   string      // the official host the call is addressed to (or the configured endpoint's)
	Path   string      // the escaped path, checked: no dot segments, no escapes, no empty segments
	Query  string      // the raw query string, unparsed
	Header http.Header // the request's headers
	Body   []byte      // the whole body, at most the limit
}

// Call is a classified request.
type Call struct {
	// Operation names what the call does: "refunds.create".
	Operation string
	// Params are the decoded request parameters (form or query keys as
	// sent, e.g. "metadata[k]"; JSON fields flattened to "to[0]"), for
	// policy conditions.
	Params url.Values
	// Audit are the parameters as the audit log may keep them: secrets
	// dropped, card numbers masked, personal data removed.
	Audit map[string]string

	// MovesMoney is true when the operation can move money. Amount is
	// then what it moves, once known (zero when the operation moves
	// nothing in this form, such as a manual-capture payment intent).
	MovesMoney bool
	Amount     money.Amount
	// Uncapped, when not empty, says the call can move money Keybrake
	// does not count, and why ("Stripe charges a subscription's invoices
	// itself"): the policy allows it only by a rule that accepts that.
	Uncapped string
	// Count is how many billable units the call uses (emails sent,
	// messages, money-moving calls), for count limits.
	Count int64

	// Priced, when set, says the policy's prices make Amount: the
	// transport prices the call after Resolve, and Amount's currency is
	// the price's.
	Priced *Priced

	// Lookup, when not empty, says what Resolve must fetch before the
	// call can be decided: "GET /v1/charges/ch_1".
	Lookup string

	// Customer and Account are the subjects the call touches, when known.
	Customer string
	Account  string

	// SubjectLookup, when not empty, is the GET that tells which customer
	// the object the call acts on belongs to, when the request does not
	// name it ("GET /v1/charges/ch_1" for a capture or a retrieve).
	// Resolve performs it only when Need.Customer is set (a customer
	// scope is in force), and fills Customer.
	SubjectLookup string
	// NoCustomer is set by Resolve when the object the call acts on
	// belongs to no customer (a scope refuses it unless allowed).
	NoCustomer bool

	// Recipients are the call's destinations: phone numbers in E.164
	// (Twilio To), or email addresses, lower case (Resend to, cc and bcc,
	// of every email of a batch).
	Recipients []string
	// MostRecipients is the largest number of addresses (to, cc, bcc)
	// in one email of the call.
	MostRecipients int64
	// Senders are the call's From values: numbers or messaging service
	// SIDs (Twilio), addresses, lower case, without display names (Resend).
	Senders []string
	// AudienceUnknown: the call sends to recipients, from senders, that
	// the request does not show (a Resend broadcast to a saved audience);
	// a scope on recipients or senders refuses it.
	AudienceUnknown bool
	// RefundOf is the charge a refund draws on (for a payment intent, its
	// latest charge, found by Resolve), for max_refunds_per_charge.
	RefundOf string
	// Creates names the kind of object the call creates whose ID the
	// transport remembers ("customer", for created_by_agent scopes);
	// Settle then returns the ID in Settlement.Object, and the transport
	// reads the 2xx body even when the call moves no money.
	Creates string

	// IdempotencyKey is the key the vendor deduplicates writes by.
	IdempotencyKey string

	// State is the vendor's own memo between Classify, Resolve and
	// Settle (the object's state before the call, for instance).
	State any
}

// CustomerReader is implemented by vendors whose customers carry metadata
// a scope can select by (Stripe). Metadata fetches customer id with get.
type CustomerReader interface {
	CustomerMetadata(ctx context.Context, customer string, get Getter) (map[string]string, error)
}

// LookupHeaderer is implemented by vendors whose lookups must not take
// some headers as the agent sent them: the values LookupHeader returns
// replace the request's on Keybrake's own lookups. Stripe pins its API
// version, so an agent cannot choose the shape of the answer Keybrake
// reads.
type LookupHeaderer interface {
	LookupHeader() http.Header
}

// Settlement is what a vendor's answer says a call did.
type Settlement struct {
	// Moved is the money that moved, in the call's currency.
	Moved money.Amount
	// Object is the ID of what the call made or acted on (re_..., SM...,
	// an email's ID), kept in the audit record for reconciliation.
	Object string
	// Estimated is true when the vendor has not priced the call yet
	// (Twilio answers "price": null): Moved is then Keybrake's estimate,
	// counted until a Reconciler settles it to the real price.
	Estimated bool
	// Units is how many billable units were used, for count limits; a
	// negative value means as many as were reserved.
	Units int64
}

// Reconciler is implemented by vendors that price calls after answering
// them. Reconcile fetches the object a settled call made and reports its
// real price; done is false while the vendor has not priced it yet.
type Reconciler interface {
	Reconcile(ctx context.Context, operation, object string, currency money.Currency, get Getter) (moved money.Amount, done bool, err error)
}

// Priced is a call whose money comes from the policy's price list rather
// than from the request: Quantity units of Item, priced per Destination.
type Priced struct {
	Item        string // "sms", "mms", "call_minute", "email"
	Destination string // an E.164 number, for prices by country prefix; "" for none
	Quantity    int64  // segments, minutes, emails; negative: unbounded (a call without TimeLimit)
	Recipients  int64  // for email: the addresses across to, cc and bcc, for plans billed per recipient
}

// Getter fetches path (with its query) from the vendor with the call's own
// credentials, through the same underlying transport, and returns the
// status and body. It refuses bodies over a limit.
type Getter func(ctx context.Context, path string) (status int, body []byte, err error)

// Facts reads what never changes once learned, such as the currency of a
// charge; store.Store satisfies it. A vendor returns what it learns from
// Resolve, and the transport keeps it.
type Facts interface {
	Fact(ctx context.Context, key string) (value string, ok bool, err error)
}

// Refusal is what a vendor needs to render a refusal.
type Refusal struct {
	Status    int    // 401, 402, 403 or 503
	Code      string // keybrake_<reason>
	Message   string // for a person
	RequestID string // identifies the audit record
	Details   []byte // the whole decision as JSON, for keybrake.AsDenial
}

// Invalid is a request Keybrake refuses because it cannot read it with
// certainty.
type Invalid struct {
	Code   string // keybrake_<reason>
	Reason string
}

func (e *Invalid) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Reason) }

// Invalidf returns an *Invalid with a formatted reason.
func Invalidf(code, format string, args ...any) error {
	return &Invalid{Code: code, Reason: fmt.Sprintf(format, args...)}
}
