package policy

import (
	"fmt"

	"github.com/keybrake/keybrake/money"
)

// PriceQuery is what a call uses of a vendor's priced items, as the vendor
// classified it: Quantity units of Item to Destination.
type PriceQuery struct {
	Item        string // "sms", "mms", "call_minute", "email", "broadcast"
	Destination string // E.164 number for prices by prefix; "" for none
	Quantity    int64  // segments, minutes, emails; negative: unbounded
	Recipients  int64  // addresses across to, cc and bcc (email)
}

// Cost prices a call from the vendors section of the policy: the item's
// price for the destination (longest prefix, else the default) times the
// quantity. It also returns the quantity it counted, which differs from
// q.Quantity for an unbounded call (AssumeCallMinutes), a broadcast
// (BroadcastEmails) or an email billed per recipient. A call the policy
// cannot price is refused (Blocked), with the rule to add. Cost is pure.
func (p *Policy) Cost(vendor string, q PriceQuery) (amount money.Amount, quantity int64, v Verdict) {
	l := p.Vendors[vendor]
	at := "vendors." + vendor
	item, quantity := q.Item, q.Quantity
	switch {
	case item == "call_minute" && quantity < 0:
		if l == nil || l.AssumeCallMinutes == 0 {
			return money.Amount{}, 0, Verdict{Decision: Blocked, Rule: at + ".assume_call_minutes", Code: "keybrake_call_unbounded",
				Reason: "a call without TimeLimit could run for hours; set TimeLimit, or assume_call_minutes under " + at}
		}
		quantity = l.AssumeCallMinutes
	case item == "broadcast":
		if l == nil || l.BroadcastEmails == 0 {
			return money.Amount{}, 0, Verdict{Decision: Blocked, Rule: at + ".broadcast_emails", Code: "keybrake_broadcast_unbounded",
				Reason: "Keybrake cannot know how many emails a broadcast sends; set broadcast_emails under " + at}
		}
		item, quantity = "email", l.BroadcastEmails
	case item == "email" && l != nil && l.BillPerRecipient:
		quantity = q.Recipients
	}
	if quantity < 0 {
		return money.Amount{}, 0, Verdict{Decision: Blocked, Rule: at, Code: "keybrake_amount_unknown",
			Reason: fmt.Sprintf("the quantity of %s is unknown", item)}
	}
	var table *PriceTable
	if l != nil {
		table = l.Prices[item]
	}
	rule := at + ".prices." + item
	if table == nil {
		return money.Amount{}, 0, Verdict{Decision: Blocked, Rule: rule, Code: "keybrake_no_price",
			Reason: fmt.Sprintf("the policy gives no price for %s %s; add %s", vendor, item, rule)}
	}
	price, matched, ok := table.Lookup(q.Destination)
	if !ok {
		return money.Amount{}, 0, Verdict{Decision: Blocked, Rule: rule, Code: "keybrake_no_price",
			Reason: fmt.Sprintf("the policy prices %s %s for no prefix of %s and has no default", vendor, item, q.Destination)}
	}
	amount, err := price.Times(quantity)
	if err != nil {
		return money.Amount{}, 0, Verdict{Decision: Blocked, Rule: rule, Code: "keybrake_bad_amount",
			Reason: fmt.Sprintf("%d x %s overflows", quantity, price)}
	}
	return amount, quantity, Verdict{Decision: Allowed, Rule: rule + "." + matched}
}
