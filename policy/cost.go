package policy

import (
	"errors"
	"fmt"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// PriceQuery is what a call uses of a vendor's priced items, as the vendor
// classified it (vendors.Priced): Quantity units of Item to Destination.
type PriceQuery = vendors.Priced

// Cost prices a call from the vendors section of the policy: the item's
// price for the destination (longest prefix, else the default) times the
// quantity. The vendor's Units first turns the call into the item and
// quantity its price counts, by the vendor's shared settings (a call
// without TimeLimit counts assume_call_minutes minutes); Cost returns that
// quantity too. A call the policy cannot price is refused (Blocked), with
// the rule to add. Cost is pure.
func (p *Policy) Cost(vendor string, q PriceQuery) (amount money.Amount, quantity int64, v Verdict) {
	l := p.Vendors[vendor]
	at := "vendors." + vendor
	item, quantity := q.Item, q.Quantity
	if units := p.infos[vendor].Units; units != nil {
		var err error
		item, quantity, err = units(q, l)
		var up *vendors.Unpriced
		switch {
		case errors.As(err, &up):
			return money.Amount{}, 0, Verdict{Decision: Blocked, Rule: at + "." + up.Key, Code: up.Code, Reason: up.Reason}
		case err != nil:
			return money.Amount{}, 0, Verdict{Decision: Blocked, Rule: at, Code: "keybrake_amount_unknown", Reason: err.Error()}
		}
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
