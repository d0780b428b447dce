// Package money holds exact sums of money: an integer count of units of a
// currency, never a float.
//
// Vendors disagree on the unit. Stripe counts minor units (cents, yen, fils);
// Twilio and Resend price single messages in fractions of a cent (0.0079 USD
// an SMS segment). So an Amount counts micros, millionths of the currency's
// major unit, which holds every vendor's price exactly, and converts to and
// from minor units without loss: 1 USD cent is 10,000 micros, 1 yen is
// 1,000,000 micros, 1 fils is 1,000 micros.
//
// The largest amount is about 9.2 trillion major units; arithmetic that would
// overflow reports it instead of wrapping.
package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MicrosPerUnit is the number of micros in one major unit of any currency.
const MicrosPerUnit = 1_000_000

// ErrOverflow is returned by arithmetic whose result does not fit an int64.
var ErrOverflow = errors.New("money: amount overflows")

// Currency is an upper-case ISO 4217 code such as "USD". The zero value is
// no currency.
type Currency string

// Exponent is the number of decimal places of the currency's minor unit as
// the vendors count it (Stripe's conventions: JPY 0, USD 2, KWD 3, ISK 2).
// ok is false for a code Keybrake does not know.
func (c Currency) Exponent() (exp int, ok bool) {
	if len(c) != 3 {
		return 0, false
	}
	if _, known := currencies[c]; !known {
		return 0, false
	}
	switch c {
	case "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF",
		"UGX", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0, true
	case "BHD", "JOD", "KWD", "OMR", "TND":
		return 3, true
	}
	return 2, true
}

// ParseCurrency accepts a known ISO 4217 code in either case, as vendors send
// "usd" and policies write "USD".
func ParseCurrency(s string) (Currency, error) {
	c := Currency(strings.ToUpper(s))
	if _, ok := c.Exponent(); !ok {
		return "", fmt.Errorf("unknown currency %q", s)
	}
	return c, nil
}

// Amount is an exact sum of money in one currency. The zero value is zero
// in no currency. Amounts are values: copy them freely.
type Amount struct {
	Micros   int64
	Currency Currency
}

// FromMinor builds an amount from a count of the currency's minor units, as
// Stripe sends them (100 is 1.00 USD or 100 JPY).
func FromMinor(minor int64, c Currency) (Amount, error) {
	exp, ok := c.Exponent()
	if !ok {
		return Amount{}, fmt.Errorf("unknown currency %q", c)
	}
	m, err := mul(minor, pow10(6-exp))
	if err != nil {
		return Amount{}, err
	}
	return Amount{Micros: m, Currency: c}, nil
}

// Minor returns the amount in minor units. exact is false when the amount
// holds a fraction of a minor unit; minor is then rounded up, the safe
// direction for a spending limit.
func (a Amount) Minor() (minor int64, exact bool) {
	exp, ok := a.Currency.Exponent()
	if !ok {
		return 0, false
	}
	unit := pow10(6 - exp)
	minor, rest := a.Micros/unit, a.Micros%unit
	if rest > 0 {
		minor++
	}
	if rest < 0 {
		// Rounding towards zero already rounded a negative amount up.
		return minor, false
	}
	return minor, rest == 0
}

// MinorDecimal renders the amount in minor units as an exact decimal
// ("1099", or "0.79" for 0.0079 USD): what the audit log calls amount.
func (a Amount) MinorDecimal() string {
	exp, ok := a.Currency.Exponent()
	if !ok {
		return strconv.FormatInt(a.Micros, 10)
	}
	return trimFraction(decimal(a.Micros, 6-exp), 0)
}

// ParseMinorDecimal reads what MinorDecimal wrote: an exact, possibly
// negative decimal count of minor units of c.
func ParseMinorDecimal(s string, c Currency) (Amount, error) {
	exp, ok := c.Exponent()
	if !ok {
		return Amount{}, fmt.Errorf("unknown currency %q", c)
	}
	neg := strings.HasPrefix(s, "-")
	v, err := parseDecimal(strings.TrimPrefix(s, "-"), 6-exp)
	if err != nil {
		return Amount{}, fmt.Errorf("minor amount %q: %w", s, err)
	}
	// parseDecimal counted millionths of s; s counts minor units, each
	// 10^(6-exp) micros, so the millionths of s are micros * 10^exp.
	micros := v / pow10(exp)
	if neg {
		micros = -micros
	}
	return Amount{Micros: micros, Currency: c}, nil
}

// String renders the amount in major units with the currency's usual
// decimals, more where a fraction of a minor unit needs them: "500.00 USD",
// "100000 JPY", "0.0079 USD".
func (a Amount) String() string {
	s := a.Decimal()
	if a.Currency == "" {
		return s
	}
	return s + " " + string(a.Currency)
}

// Decimal renders the amount in major units as an exact decimal without its
// currency code: the currency's usual decimals, more where a fraction of a
// minor unit needs them, never rounded ("10.99", "0.0085", "100000",
// "-0.50"). It is String without the code, and what the audit log writes.
func (a Amount) Decimal() string {
	exp, ok := a.Currency.Exponent()
	if !ok {
		exp = 2
	}
	return trimFraction(decimal(a.Micros, 6), exp)
}

// minMicros is the magnitude of the most negative Amount, in major units.
const minMicros = "9223372036854.775808"

// ParseDecimal reads what Decimal writes: an exact, possibly negative
// decimal in major units of c with at most six decimals ("10.99", "10.990",
// "0.0085", "-1"). Unlike Parse it takes more decimals than the currency
// has, as a price may; it refuses a plus sign, exponents, separators, a
// leading zero and more than six decimals, which no Amount can hold.
func ParseDecimal(s string, c Currency) (Amount, error) {
	if _, ok := c.Exponent(); !ok {
		return Amount{}, fmt.Errorf("unknown currency %q", c)
	}
	num, neg := strings.CutPrefix(s, "-")
	if neg && num == minMicros {
		return Amount{Micros: math.MinInt64, Currency: c}, nil // its magnitude is no int64
	}
	micros, err := parseDecimal(num, 6)
	if err != nil {
		return Amount{}, fmt.Errorf("amount %q %s: %w", s, c, err)
	}
	if neg {
		micros = -micros
	}
	return Amount{Micros: micros, Currency: c}, nil
}

// IsZero reports whether the amount is zero.
func (a Amount) IsZero() bool { return a.Micros == 0 }

// Add returns a+b. Both must be in the same currency.
func (a Amount) Add(b Amount) (Amount, error) {
	if a.Currency != b.Currency {
		return Amount{}, fmt.Errorf("money: cannot add %s to %s", b.Currency, a.Currency)
	}
	s := a.Micros + b.Micros
	if (b.Micros > 0 && s < a.Micros) || (b.Micros < 0 && s > a.Micros) {
		return Amount{}, ErrOverflow
	}
	return Amount{Micros: s, Currency: a.Currency}, nil
}

// Times returns the amount multiplied by n, as a price times a count.
func (a Amount) Times(n int64) (Amount, error) {
	m, err := mul(a.Micros, n)
	if err != nil {
		return Amount{}, err
	}
	return Amount{Micros: m, Currency: a.Currency}, nil
}

// Parse reads a limit as written in a policy: a non-negative decimal in major
// units, one space, and a currency code: "500.00 USD", "100000 JPY",
// "12.500 KWD". It refuses more decimals than the currency has ("1.005 USD",
// "100.5 JPY"), signs, exponents, separators and words ("500 dollars").
func Parse(s string) (Amount, error) {
	return parse(s, false)
}

// ParsePrice reads a unit price as vendors publish them, which may hold a
// fraction of a minor unit ("0.0079 USD"); at most six decimals.
func ParsePrice(s string) (Amount, error) {
	return parse(s, true)
}

func parse(s string, price bool) (Amount, error) {
	num, code, ok := strings.Cut(s, " ")
	if !ok || strings.Contains(code, " ") {
		return Amount{}, fmt.Errorf("amount %q: want a number and a currency code, as \"500.00 USD\"", s)
	}
	if len(code) != 3 || strings.ToUpper(code) != code {
		return Amount{}, fmt.Errorf("amount %q: %q is not an upper-case ISO 4217 currency code", s, code)
	}
	c := Currency(code)
	exp, known := c.Exponent()
	if !known {
		return Amount{}, fmt.Errorf("amount %q: unknown currency %s", s, code)
	}
	maxDecimals := exp
	if price {
		maxDecimals = 6
	}
	micros, err := parseDecimal(num, maxDecimals)
	if err != nil {
		return Amount{}, fmt.Errorf("amount %q: %w", s, err)
	}
	if !price && exp == 0 && strings.Contains(num, ".") {
		return Amount{}, fmt.Errorf("amount %q: %s has no minor unit; write whole units", s, code)
	}
	return Amount{Micros: micros, Currency: c}, nil
}

// parseDecimal reads "123" or "123.45" (at most maxDecimals decimals) into
// micros.
func parseDecimal(num string, maxDecimals int) (int64, error) {
	whole, frac, hasFrac := strings.Cut(num, ".")
	if !digits(whole) || (hasFrac && !digits(frac)) {
		return 0, fmt.Errorf("%q is not a plain decimal number", num)
	}
	if len(whole) > 1 && whole[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", num)
	}
	if len(frac) > maxDecimals {
		return 0, fmt.Errorf("%q has more than %d decimals", num, maxDecimals)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, ErrOverflow
	}
	micros, err := mul(w, MicrosPerUnit)
	if err != nil {
		return 0, err
	}
	if frac != "" {
		f, _ := strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		micros += f
		if micros < 0 {
			return 0, ErrOverflow
		}
	}
	return micros, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// trimFraction drops trailing zeros of a decimal's fraction, keeping at
// least keep decimals, and the point when none remain.
func trimFraction(s string, keep int) string {
	i := strings.IndexByte(s, '.')
	if i < 0 {
		return s
	}
	end := len(s)
	for end > i+1+keep && s[end-1] == '0' {
		end--
	}
	if end == i+1 {
		end = i
	}
	return s[:end]
}

// decimal renders v / 10^places exactly, with all places.
func decimal(v int64, places int) string {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u, 10)
	if places > 0 {
		if len(s) <= places {
			s = strings.Repeat("0", places-len(s)+1) + s
		}
		s = s[:len(s)-places] + "." + s[len(s)-places:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func pow10(n int) int64 {
	p := int64(1)
	for i := 0; i < n; i++ {
		p *= 10
	}
	return p
}

func mul(a, b int64) (int64, error) {
	if a == 0 || b == 0 {
		return 0, nil
	}
	p := a * b
	if p/b != a || (a == -1 && b == -1<<63) || (b == -1 && a == -1<<63) {
		return 0, ErrOverflow
	}
	return p, nil
}
