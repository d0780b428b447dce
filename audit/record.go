// Package audit is Keybrake's record of what every call asked for and what
// Keybrake decided: one Record per call, allowed or refused, written by the
// store and read back with a Query.
package audit

import (
	"encoding/json"
	"fmt"
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
// Amount and Settled are in the limit's own unit (micros of its currency, or
// calls).
type Hold struct {
	Key     string `json:"key"`
	Unit    string `json:"unit"` // a currency code (amounts in micros) or "units"
	Limit   int64  `json:"limit"`
	Amount  int64  `json:"amount"`
	Settled int64  `json:"settled"`
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
	Amount         json.Number       `json:"amount"`
	Reserved       json.Number       `json:"reserved"`
	Settled        json.Number       `json:"settled"`
	Currency       string            `json:"currency,omitempty"`
	Outcome        Outcome           `json:"outcome"`
	Estimated      bool              `json:"estimated,omitempty"`
	Object         string            `json:"object,omitempty"`
	Params         map[string]string `json:"params,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
	KeyID          string            `json:"key_id,omitempty"`
	Customer       string            `json:"customer,omitempty"`
	Account        string            `json:"account,omitempty"`
	Holds          []Hold            `json:"holds,omitempty"`
	RetryOf        uint64            `json:"retry_of,omitempty"`
	Lookup         string            `json:"lookup,omitempty"`
	RequestID      string            `json:"request_id,omitempty"`
	DurationMS     json.Number       `json:"duration_ms"`
	PolicyHash     string            `json:"policy"`
	PrevHash       string            `json:"prev,omitempty"`
}

// MarshalJSON writes the record as one Dump line. Amounts are exact decimals
// in minor units of currency ("amount": 1099 for 10.99 USD), so a reader that
// sums them in integers gets the truth.
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
		Amount:   minorNumber(r.Amount, cur),
		Reserved: minorNumber(r.Reserved, cur),
		Settled:  minorNumber(r.Settled, cur),
		Currency: string(cur), Outcome: r.Outcome, Estimated: r.Estimated, Object: r.Object, Params: r.Params,
		IdempotencyKey: r.IdempotencyKey, KeyID: r.KeyID, Customer: r.Customer, Account: r.Account,
		Holds: r.Holds, RetryOf: r.RetryOf, Lookup: r.Lookup, RequestID: r.RequestID,
		DurationMS: json.Number(durationMS(r.Duration)),
		PolicyHash: r.PolicyHash, PrevHash: r.PrevHash,
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads a line written by MarshalJSON.
func (r *Record) UnmarshalJSON(b []byte) error {
	var j jsonRecord
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var err error
	cur := money.Currency(j.Currency)
	amount := func(n json.Number) money.Amount {
		if err != nil || n == "" || (n == "0" && cur == "") {
			return money.Amount{}
		}
		var a money.Amount
		a, err = money.ParseMinorDecimal(string(n), cur)
		return a
	}
	*r = Record{
		ID: j.ID, Time: j.Time, Agent: j.Agent, Vendor: j.Vendor, Method: j.Method, Host: j.Host,
		Path: j.Path, Operation: j.Operation, Event: j.Event, Decision: j.Decision, Code: j.Code, Rule: j.Rule,
		Reason: j.Reason, Status: j.Status,
		Amount: amount(j.Amount), Reserved: amount(j.Reserved), Settled: amount(j.Settled),
		Outcome: j.Outcome, Estimated: j.Estimated, Object: j.Object, Params: j.Params, IdempotencyKey: j.IdempotencyKey, KeyID: j.KeyID,
		Customer: j.Customer, Account: j.Account, Holds: j.Holds, RetryOf: j.RetryOf,
		Lookup: j.Lookup, RequestID: j.RequestID, PolicyHash: j.PolicyHash, PrevHash: j.PrevHash,
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

func minorNumber(a money.Amount, cur money.Currency) json.Number {
	if cur == "" {
		return "0"
	}
	a.Currency = cur
	return json.Number(a.MinorDecimal())
}

func durationMS(d time.Duration) string {
	us := d.Microseconds()
	sign := ""
	if us < 0 {
		sign, us = "-", -us
	}
	return fmt.Sprintf("%s%d.%03d", sign, us/1000, us%1000)
}
