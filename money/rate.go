package money

import (
	"fmt"
	"math/big"
	"strings"
)

// Rate converts amounts of one currency into another: one major unit of From
// is worth Per of To. A policy writes it "EUR: 1.0850 USD". Rates are exact
// decimals; conversion rounds up, so a converted amount never understates
// what a call spends against a limit. The zero value converts nothing.
type Rate struct {
	From Currency
	Per  Amount // the value of one major unit of From, in Per.Currency
}

// ParseRate reads the right-hand side of an fx entry ("1.0850 USD", at most
// six decimals) for amounts in from.
func ParseRate(from Currency, s string) (Rate, error) {
	per, err := ParsePrice(s)
	if err != nil {
		return Rate{}, err
	}
	if per.Micros <= 0 {
		return Rate{}, fmt.Errorf("rate %q: must be more than zero", s)
	}
	if per.Currency == from {
		return Rate{}, fmt.Errorf("rate %q: converts %s into itself", s, from)
	}
	return Rate{From: from, Per: per}, nil
}

// Convert returns a in the rate's target currency, rounded up to the micro.
func (r Rate) Convert(a Amount) (Amount, error) {
	if a.Currency != r.From {
		return Amount{}, fmt.Errorf("money: rate converts %s, not %s", r.From, a.Currency)
	}
	// a.Micros micros of From * (r.Per.Micros micros of To per 10^6 micros of From).
	p := new(big.Int).Mul(big.NewInt(a.Micros), big.NewInt(r.Per.Micros))
	q, m := new(big.Int).QuoRem(p, big.NewInt(MicrosPerUnit), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return Amount{}, ErrOverflow
	}
	return Amount{Micros: q.Int64(), Currency: r.Per.Currency}, nil
}

// String renders the rate as a policy writes it: "1 EUR = 1.085 USD".
func (r Rate) String() string {
	return "1 " + string(r.From) + " = " + strings.TrimSpace(r.Per.String())
}
