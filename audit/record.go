// Package audit is Keybrake's record of what every call asked for and what
// Keybrake decided: one Record per call, allowed or refused, written by the
// store and read back with a Query.
package audit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// Outcome is where a call's money stands.
type Outcome string

// The outcomes. A call is Reserved from the moment its record is committed,
// before any byte is sent, until its response is seen; a Reserved record
// found after a crash is turned Unknown. Reserved and Unknown money stays
// counted against every limit until someone reconciles it.
const (
	None     Outcome = "none"     // refused: nothing was sent, nothing held
	Reserved Outcome = "reserved" // held and sent (or about to be); no response yet
	Settled  Outcome = "settled"  // the vendor answered 2xx; Settled is what moved
	Released Outcome = "released" // the vendor certainly did nothing (4xx, connection refused)
	Unknown  Outcome = "unknown"  // 5xx, timeout, cancellation or crash after sending; still counted
	Replayed Outcome = "replayed" // a retry of a settled call; the vendor replays, nothing new moves
	Retried  Outcome = "retried"  // superseded by a retry with the same idempotency key, which took over its holds
)

// Hold is one limit a call counts against: a day's money cap or call count.
// Limit, Amount and Settled are in the limit's own Unit: micros of its
// currency, or calls and messages ("units"). A negative Limit is no limit:
// the store counts the hold without checking it.
//
// In JSON (MarshalJSON) the money of a currency Unit is an exact decimal
// string in major units, as the record's own amounts are; a count is an
// integer.
//
// A Window makes the hold count in a rolling window rather than a
// counter's whole life: against its Limit count only the holds of the same
// Key whose records are less than Window older than this one (see
// store.Store.Reserve).
type Hold struct {
	Key     string
	Unit    string // a currency code (amounts in micros) or "units"
	Limit   int64
	Amount  int64
	Settled int64
	Window  time.Duration // a rolling window's length; 0 for a counter
}

type jsonHold struct {
	Key     string          `json:"key"`
	Unit    string          `json:"unit"`
	Window  string          `json:"window,omitempty"` // "1m0s"
	Limit   json.RawMessage `json:"limit"`
	Amount  json.RawMessage `json:"amount"`
	Settled json.RawMessage `json:"settled"`
}

// MarshalJSON writes {"key":..,"unit":"USD","limit":"500.00","amount":"10.99",
// "settled":"0.00"} for a money limit and {"key":..,"unit":"units",
// "limit":100,"amount":1,"settled":0} for a count (or any unit that is not
// a known currency).
func (h Hold) MarshalJSON() ([]byte, error) {
	j := jsonHold{Key: h.Key, Unit: h.Unit}
	if h.Window != 0 {
		j.Window = h.Window.String()
	}
	cur := money.Currency(h.Unit)
	if _, ok := cur.Exponent(); ok {
		j.Limit, j.Amount, j.Settled = decimalJSON(h.Limit, cur), decimalJSON(h.Amount, cur), decimalJSON(h.Settled, cur)
	} else {
		j.Limit, j.Amount, j.Settled = integerJSON(h.Limit), integerJSON(h.Amount), integerJSON(h.Settled)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes, and the form before it,
// where every hold's money was a JSON number of micros.
func (h *Hold) UnmarshalJSON(b []byte) error {
	var j jsonHold
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	cur := money.Currency(j.Unit)
	var err error
	read := func(field string, v json.RawMessage) int64 {
		n, ferr := quantity(v, cur)
		if ferr != nil && err == nil {
			err = fmt.Errorf("audit: hold %q: %s: %w", j.Key, field, ferr)
		}
		return n
	}
	got := Hold{Key: j.Key, Unit: j.Unit, Limit: read("limit", j.Limit), Amount: read("amount", j.Amount), Settled: read("settled", j.Settled)}
	if err != nil {
		return err
	}
	if j.Window != "" {
		w, werr := time.ParseDuration(j.Window)
		if werr != nil || w <= 0 {
			return fmt.Errorf("audit: hold %q: window %q is not a positive duration", j.Key, j.Window)
		}
		got.Window = w
	}
	*h = got
	return nil
}

// Record is one call. ID and PrevHash are assigned by the store; everything
// else by the transport. Records are values once written: readers get copies.
type Record struct {
	ID        uint64
	Time      time.Time
	Agent     string
	Vendor    string
	Method    string
	Host      string
	Path      string
	Operation string
	// Event names a record that is not a call: "policy_reload",
	// "policy_invalid", "kill_switch", "revoke", "halt". Events have no
	// Decision.
	Event string

	Decision policy.Decision
	Code     string // keybrake_<reason> for refusals
	Rule     string // the policy rule that decided: "agents.refund-bot.stripe.daily_cap"
	Reason   string // for a person

	Params         map[string]string // redacted request parameters
	IdempotencyKey string
	KeyID          string // a short fingerprint of the credential, never the credential
	Customer       string
	Account        string
	// Run is the run (task) the call was made for, as its runner tagged
	// it (keybrake.WithRun, the proxy's Keybrake-Run header); Principal
	// who delegated it (WithPrincipal, Keybrake-On-Behalf-Of). Empty when
	// untagged.
	Run       string
	Principal string

	Amount   money.Amount // what the call can move, as classified (requested or looked up)
	Reserved money.Amount // what was held against limits, in Amount's currency
	Settled  money.Amount // what the vendor's response says moved
	Holds    []Hold
	Outcome  Outcome
	// Estimated is true while Settled is Keybrake's estimate of a call
	// the vendor has not priced yet; reconciliation replaces it.
	Estimated bool
	Object    string // the vendor object the call made or acted on
	RetryOf   uint64 // the earlier attempt this call retried or replayed
	Lookup    string // the lookup that found the amount, currency or customer

	Status     int // the vendor's HTTP status, or the refusal's
	RequestID  string
	Duration   time.Duration
	PolicyHash string
	PrevHash   string

	// Approval is the approval (apr_...) a held call waits for, or the
	// one an allowed call used up (approve_above, approve).
	Approval string
	// Shadow is what the shadow policy (Options.ShadowPolicyFile)
	// decided, when it decided otherwise than the policy in force; nil
	// when it agreed or no shadow policy is in force.
	Shadow *Shadow

	// What replay needs to decide the call again under another policy
	// (keybrake policy replay), as the vendor classified it and lookups
	// resolved it; the request's own part is Method, Path, Params,
	// Customer, Account, Run and Amount above. Each is empty when the
	// call has none, and then costs nothing on disk.
	MovesMoney bool               // the call can move money
	Uncapped   bool               // it can move money Keybrake does not count (a rule needs uncapped: true)
	Count      int64              // billable units as classified; negative: as many as its price counts
	RefundOf   string             // the charge a refund draws on, for max_refunds_per_charge
	Priced     *policy.PriceQuery // what the policy's prices were asked, for a priced call
	// Recipients and Senders are the call's destinations and From
	// values, kept only where the vendor's audit parameters already keep
	// them (Twilio's To and From, Resend's from): a recipient's email
	// address is personal data the log never holds. RecipientsWithheld
	// says the call had recipients or senders the record does not keep;
	// a Priced.Destination not kept is then left out too.
	Recipients         []string
	Senders            []string
	RecipientsWithheld bool
	MostRecipients     int64 // the most addresses in one email
	NoCustomer         bool  // the object acted on belongs to no customer
	AudienceUnknown    bool  // it sends to an audience Keybrake cannot see (a broadcast)
	CreatesCustomer    bool  // it creates a customer: a customer scope admits it without one
	// CustomerUnknown says a lookup would have found the customer of the
	// object acted on, and was not made: no customer scope was in force.
	CustomerUnknown bool
}

// Moved is what the call counts as moved: what the vendor settled, or
// what it still holds while in flight or of unknown outcome (it stays
// counted); nothing for a call refused or released.
func (r *Record) Moved() money.Amount {
	switch r.Outcome {
	case Settled:
		return r.Settled
	case Reserved, Unknown:
		return r.Reserved
	}
	return money.Amount{}
}

// Shadow is a shadow policy's decision about a call, kept when it differs
// from the decision that was enforced.
type Shadow struct {
	Decision policy.Decision `json:"decision"`
	Rule     string          `json:"rule"`
	Code     string          `json:"code,omitempty"`
	Policy   string          `json:"policy"` // the shadow policy's hash
}

// jsonPriced is a Record's Priced in JSON.
type jsonPriced struct {
	Item        string `json:"item"`
	Destination string `json:"destination,omitempty"`
	Quantity    int64  `json:"quantity"`
	Recipients  int64  `json:"recipients,omitempty"`
}

type jsonRecord struct {
	ID             uint64            `json:"id"`
	Time           time.Time         `json:"time"`
	Agent          string            `json:"agent"`
	Vendor         string            `json:"vendor"`
	Method         string            `json:"method"`
	Host           string            `json:"host,omitempty"`
	Path           string            `json:"path"`
	Operation      string            `json:"operation,omitempty"`
	Event          string            `json:"event,omitempty"`
	Decision       policy.Decision   `json:"decision"`
	Code           string            `json:"code,omitempty"`
	Rule           string            `json:"rule"`
	Reason         string            `json:"reason"`
	Status         int               `json:"status"`
	Amount         json.RawMessage   `json:"amount"`
	Reserved       json.RawMessage   `json:"reserved"`
	Settled        json.RawMessage   `json:"settled"`
	Currency       string            `json:"currency,omitempty"`
	Outcome        Outcome           `json:"outcome"`
	Estimated      bool              `json:"estimated,omitempty"`
	Object         string            `json:"object,omitempty"`
	Params         map[string]string `json:"params,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
	KeyID          string            `json:"key_id,omitempty"`
	Customer       string            `json:"customer,omitempty"`
	Account        string            `json:"account,omitempty"`
	Run            string            `json:"run,omitempty"`
	Principal      string            `json:"principal,omitempty"`
	Holds          []Hold            `json:"holds,omitempty"`
	RetryOf        uint64            `json:"retry_of,omitempty"`
	Lookup         string            `json:"lookup,omitempty"`
	RequestID      string            `json:"request_id,omitempty"`
	DurationMS     json.Number       `json:"duration_ms"`
	PolicyHash     string            `json:"policy"`
	PrevHash       string            `json:"prev,omitempty"`
	Approval       string            `json:"approval,omitempty"`
	Shadow         *Shadow           `json:"shadow,omitempty"`

	// What replay needs (Record).
	MovesMoney         bool        `json:"moves_money,omitempty"`
	Uncapped           bool        `json:"uncapped,omitempty"`
	Count              int64       `json:"count,omitempty"`
	RefundOf           string      `json:"refund_of,omitempty"`
	Priced             *jsonPriced `json:"priced,omitempty"`
	Recipients         []string    `json:"recipients,omitempty"`
	Senders            []string    `json:"senders,omitempty"`
	RecipientsWithheld bool        `json:"recipients_withheld,omitempty"`
	MostRecipients     int64       `json:"most_recipients,omitempty"`
	NoCustomer         bool        `json:"no_customer,omitempty"`
	AudienceUnknown    bool        `json:"audience_unknown,omitempty"`
	CreatesCustomer    bool        `json:"creates_customer,omitempty"`
	CustomerUnknown    bool        `json:"customer_unknown,omitempty"`
}

// MarshalJSON writes the record as one Dump line. Every money field is an
// exact decimal string in major units of the currency beside it, as many
// decimals as the amount has and never fewer than the currency's
// ("amount":"10.99","currency":"USD"; "0.0085" for a Twilio segment): never a
// float, and never a field in a unit its neighbours are not in. A record
// that holds no money has "0" and no currency. Holds follow the same
// convention in their own unit (Hold.MarshalJSON); counts are integers.
func (r *Record) MarshalJSON() ([]byte, error) {
	var cur money.Currency
	for _, a := range []money.Amount{r.Amount, r.Reserved, r.Settled} {
		if a.Currency == "" {
			if a.Micros != 0 {
				return nil, fmt.Errorf("audit: record %d has an amount without a currency", r.ID)
			}
			continue
		}
		if _, ok := a.Currency.Exponent(); !ok {
			return nil, fmt.Errorf("audit: record %d: unknown currency %q", r.ID, a.Currency)
		}
		if cur != "" && a.Currency != cur {
			return nil, fmt.Errorf("audit: record %d mixes %s and %s", r.ID, cur, a.Currency)
		}
		cur = a.Currency
	}
	j := jsonRecord{
		ID: r.ID, Time: r.Time.UTC(), Agent: r.Agent, Vendor: r.Vendor, Method: r.Method,
		Host: r.Host, Path: r.Path, Operation: r.Operation, Event: r.Event, Decision: r.Decision, Code: r.Code,
		Rule: r.Rule, Reason: r.Reason, Status: r.Status,
		Amount:   decimalJSON(r.Amount.Micros, cur),
		Reserved: decimalJSON(r.Reserved.Micros, cur),
		Settled:  decimalJSON(r.Settled.Micros, cur),
		Currency: string(cur), Outcome: r.Outcome, Estimated: r.Estimated, Object: r.Object, Params: r.Params,
		IdempotencyKey: r.IdempotencyKey, KeyID: r.KeyID, Customer: r.Customer, Account: r.Account,
		Run: r.Run, Principal: r.Principal,
		Holds: r.Holds, RetryOf: r.RetryOf, Lookup: r.Lookup, RequestID: r.RequestID,
		DurationMS: json.Number(durationMS(r.Duration)),
		PolicyHash: r.PolicyHash, PrevHash: r.PrevHash, Approval: r.Approval, Shadow: r.Shadow,
		MovesMoney: r.MovesMoney, Uncapped: r.Uncapped, Count: r.Count, RefundOf: r.RefundOf,
		Recipients: r.Recipients, Senders: r.Senders, RecipientsWithheld: r.RecipientsWithheld,
		MostRecipients: r.MostRecipients, NoCustomer: r.NoCustomer, AudienceUnknown: r.AudienceUnknown,
		CreatesCustomer: r.CreatesCustomer, CustomerUnknown: r.CustomerUnknown,
	}
	if q := r.Priced; q != nil {
		j.Priced = &jsonPriced{Item: q.Item, Destination: q.Destination, Quantity: q.Quantity, Recipients: q.Recipients}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads a line written by MarshalJSON, and one written
// before it, whose amounts were JSON numbers of minor units ("amount":1099
// for 10.99 USD) and whose holds' money was JSON numbers of micros: old
// dumps, and the records a store kept in JSON (store/postgres's rows,
// store/bolt's schema 2), read as they were written.
func (r *Record) UnmarshalJSON(b []byte) error {
	var j jsonRecord
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var err error
	cur := money.Currency(j.Currency)
	amount := func(field string, v json.RawMessage) money.Amount {
		a, aerr := recordAmount(v, cur)
		if aerr != nil && err == nil {
			err = fmt.Errorf("%s: %w", field, aerr)
		}
		return a
	}
	*r = Record{
		ID: j.ID, Time: j.Time, Agent: j.Agent, Vendor: j.Vendor, Method: j.Method, Host: j.Host,
		Path: j.Path, Operation: j.Operation, Event: j.Event, Decision: j.Decision, Code: j.Code, Rule: j.Rule,
		Reason: j.Reason, Status: j.Status,
		Amount: amount("amount", j.Amount), Reserved: amount("reserved", j.Reserved), Settled: amount("settled", j.Settled),
		Outcome: j.Outcome, Estimated: j.Estimated, Object: j.Object, Params: j.Params, IdempotencyKey: j.IdempotencyKey, KeyID: j.KeyID,
		Customer: j.Customer, Account: j.Account, Run: j.Run, Principal: j.Principal, Holds: j.Holds, RetryOf: j.RetryOf,
		Lookup: j.Lookup, RequestID: j.RequestID, PolicyHash: j.PolicyHash, PrevHash: j.PrevHash,
		Approval: j.Approval, Shadow: j.Shadow,
		MovesMoney: j.MovesMoney, Uncapped: j.Uncapped, Count: j.Count, RefundOf: j.RefundOf,
		Recipients: j.Recipients, Senders: j.Senders, RecipientsWithheld: j.RecipientsWithheld,
		MostRecipients: j.MostRecipients, NoCustomer: j.NoCustomer, AudienceUnknown: j.AudienceUnknown,
		CreatesCustomer: j.CreatesCustomer, CustomerUnknown: j.CustomerUnknown,
	}
	if q := j.Priced; q != nil {
		r.Priced = &policy.PriceQuery{Item: q.Item, Destination: q.Destination, Quantity: q.Quantity, Recipients: q.Recipients}
	}
	if err != nil {
		return fmt.Errorf("audit: record %d: %w", j.ID, err)
	}
	if j.DurationMS != "" {
		d, derr := time.ParseDuration(string(j.DurationMS) + "ms")
		if derr != nil {
			return fmt.Errorf("audit: record %d: duration_ms %q: %w", j.ID, j.DurationMS, derr)
		}
		r.Duration = d
	}
	return nil
}

// recordAmount reads a record's amount field: a string of major units (this
// format) or a number of minor units (the format before). Absent, or zero
// without a currency, it is the zero Amount.
func recordAmount(v json.RawMessage, cur money.Currency) (money.Amount, error) {
	s, quoted, err := scalar(v)
	if err != nil || s == "" {
		return money.Amount{}, err
	}
	if cur == "" {
		if zero(s) {
			return money.Amount{}, nil
		}
		return money.Amount{}, fmt.Errorf("%s without a currency", v)
	}
	if quoted {
		return money.ParseDecimal(s, cur)
	}
	return money.ParseMinorDecimal(s, cur)
}

// quantity reads a hold's limit, amount or settled in unit: a string of
// major units of a currency (this format), or an integer, which is micros
// of a currency (the format before) or a count.
func quantity(v json.RawMessage, unit money.Currency) (int64, error) {
	s, quoted, err := scalar(v)
	if err != nil || s == "" {
		return 0, err
	}
	if quoted {
		a, err := money.ParseDecimal(s, unit)
		return a.Micros, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not an integer", s)
	}
	return n, nil
}

// scalar is v's text and whether it was a JSON string; "" when v is
// absent. Anything but a string or a number is an error.
func scalar(v json.RawMessage) (string, bool, error) {
	if len(v) == 0 {
		return "", false, nil
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false, err
		}
		if s == "" {
			return "", false, fmt.Errorf("an empty string is not an amount")
		}
		return s, true, nil
	}
	if v[0] == '-' || (v[0] >= '0' && v[0] <= '9') {
		return string(v), false, nil
	}
	return "", false, fmt.Errorf("%s is not an amount", v)
}

// zero reports whether s is a plain decimal that is zero ("0", "0.00").
func zero(s string) bool {
	a, err := money.ParseDecimal(s, "USD") // any currency: only the number is read
	return err == nil && a.IsZero()
}

// decimalJSON is n micros of cur as a JSON string in major units, or "0"
// without a currency.
func decimalJSON(n int64, cur money.Currency) json.RawMessage {
	if cur == "" {
		return json.RawMessage(`"0"`)
	}
	return json.RawMessage(strconv.Quote(money.Amount{Micros: n, Currency: cur}.Decimal()))
}

func integerJSON(n int64) json.RawMessage {
	return json.RawMessage(strconv.FormatInt(n, 10))
}

func durationMS(d time.Duration) string {
	us := d.Microseconds()
	sign := ""
	if us < 0 {
		sign, us = "-", -us
	}
	return fmt.Sprintf("%s%d.%03d", sign, us/1000, us%1000)
}
