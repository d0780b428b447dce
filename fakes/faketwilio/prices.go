package faketwilio

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/keybrake/keybrake/money"
)

// PriceUnit is the currency faketwilio bills in, as Twilio bills a
// US-dollar account: every price is in it.
const PriceUnit money.Currency = "USD"

// The unit prices a new Server starts with: US list prices when this was
// written, for tests to rely on only through the Server, never as truth
// about Twilio's prices.
const (
	DefaultSMSPrice  = "0.0079" // one SMS segment
	DefaultMMSPrice  = "0.0200" // one MMS message
	DefaultCallPrice = "0.0140" // one minute of an outbound call, started minutes rounded up
)

var prefixPattern = regexp.MustCompile(`^(\+[0-9]{1,15})?$`)

// priceTable maps destination prefixes ("+1", "+4420", "" for any other
// destination) to a unit price; the longest matching prefix wins.
type priceTable map[string]money.Amount

func (t priceTable) set(kind, prefix, unit string) {
	if !prefixPattern.MatchString(prefix) {
		panic(fmt.Sprintf("faketwilio: %s price prefix %q is neither \"\" nor \"+\" and digits", kind, prefix))
	}
	a, err := money.ParsePrice(unit + " " + string(PriceUnit))
	if err != nil {
		panic(fmt.Sprintf("faketwilio: %s price %q: %v", kind, unit, err))
	}
	t[prefix] = a
}

// lookup returns the unit price for a destination. A table always holds
// the default "" entry, so there always is one.
func (t priceTable) lookup(to string) money.Amount {
	best, price := -1, money.Amount{Currency: PriceUnit}
	for prefix, a := range t {
		if strings.HasPrefix(to, prefix) && len(prefix) > best {
			best, price = len(prefix), a
		}
	}
	return price
}

// formatPrice writes a charge as Twilio does: negative, with five decimals
// ("-0.00790"), six when the amount holds millionths; nothing charged is
// "0.00000".
func formatPrice(a money.Amount) string {
	m := a.Micros
	s := strconv.FormatInt(m/money.MicrosPerUnit, 10) + "." + fmt.Sprintf("%06d", m%money.MicrosPerUnit)
	s = strings.TrimSuffix(s, "0")
	if m != 0 {
		s = "-" + s
	}
	return s
}
