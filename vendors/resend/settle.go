package resend

import (
	"errors"
	"fmt"
	"strings"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// ErrSettle wraps every failure of Settle to read what a call did. The
// transport then keeps the reservation counted as unknown.
var ErrSettle = errors.New("resend: cannot read what was sent")

// Settle reads the 2xx answer to a call that sends mail. Resend answers a
// send with the email's or broadcast's ID; a 2xx means it accepted the
// whole call, so the priced amount moved (Units -1: as many as reserved).
//
// A batch answers {"data": [{"id"}...], "errors": [{"index", "message"}]};
// in permissive mode the emails listed in errors were not sent. Settle
// counts every email not listed in errors as sent (the real API lists an
// ID for each; an answer that lists fewer IDs than that, as a mock might,
// is still counted in full: the safe direction), Units is their number,
// and the reserved amount is scaled to them:
//
//	moved = ceil(c.Amount * max(sent / emails, recipients of sent / recipients))
//
// The policy may have priced the batch per email or per recipient, and
// Settle does not know which: the larger share is exact for one and never
// less than the truth for the other, and the two agree whenever the sent
// emails have the batch's average number of recipients (all sent, none
// sent, or equal recipients). It is computed in integers without overflow
// and rounded up, so a batch never costs less than its share. An answer
// Settle cannot read (not JSON, more IDs or errors than emails, an error
// index out of range or listed twice) is an error wrapping ErrSettle.
// Settle is pure and safe for concurrent use.
func (Vendor) Settle(c *vendors.Call, body []byte) (vendors.Settlement, error) {
	if !c.MovesMoney {
		return vendors.Settlement{Units: -1}, nil
	}
	v, err := parseJSON(body)
	if err != nil {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: %w", ErrSettle, c.Operation, err)
	}
	if v.kind != jsonObject {
		return vendors.Settlement{}, fmt.Errorf("%w: %s: the answer is %s, not an object", ErrSettle, c.Operation, v.kind)
	}
	switch kindOf(c.Operation) {
	case kindEmailSend, kindBroadcastSend, kindBroadcastCreate:
		id, _ := stringMember(v, "id")
		return vendors.Settlement{Moved: c.Amount, Object: id, Units: -1}, nil
	case kindEmailBatch:
		st, ok := c.State.(*state)
		if !ok || st.items <= 0 || int64(len(st.recipients)) != st.items {
			return vendors.Settlement{}, fmt.Errorf("%w: emails.batch: the call does not say how many emails it sent", ErrSettle)
		}
		s, err := settleBatch(c.Amount, st, v)
		if err != nil {
			return vendors.Settlement{}, fmt.Errorf("%w: emails.batch: %w", ErrSettle, err)
		}
		return s, nil
	}
	return vendors.Settlement{}, fmt.Errorf("%w: operation %q does not send mail", ErrSettle, c.Operation)
}

func settleBatch(reserved money.Amount, st *state, v *jsonValue) (vendors.Settlement, error) {
	items := st.items
	data := v.member("data")
	if data == nil || data.kind != jsonArray {
		return vendors.Settlement{}, errors.New("the answer has no data array")
	}
	ids := make([]string, 0, len(data.items))
	for i, d := range data.items {
		if d.kind != jsonObject {
			return vendors.Settlement{}, fmt.Errorf("data[%d] is %s, not an object", i, d.kind)
		}
		if id, ok := stringMember(d, "id"); ok && id != "" {
			ids = append(ids, id)
		}
	}
	failed := int64(0)
	unsent := make([]bool, items)
	if e := v.member("errors"); e != nil && e.kind != jsonNull {
		if e.kind != jsonArray {
			return vendors.Settlement{}, fmt.Errorf("errors is %s, not an array", e.kind)
		}
		for i, item := range e.items {
			var idx *jsonValue
			if item.kind == jsonObject {
				idx = item.member("index")
			}
			if idx == nil || idx.kind != jsonNumber || !byteRE.MatchString(idx.text) || len(idx.text) > 3 {
				return vendors.Settlement{}, fmt.Errorf("errors[%d] has no index Keybrake can read", i)
			}
			n := int64(0)
			for _, ch := range idx.text {
				n = n*10 + int64(ch-'0')
			}
			if n >= items || unsent[n] {
				return vendors.Settlement{}, fmt.Errorf("errors[%d] names email %s of %d, or names it twice", i, idx.text, items)
			}
			unsent[n] = true
		}
		failed = int64(len(e.items))
	}
	if int64(len(data.items))+failed > items {
		return vendors.Settlement{}, fmt.Errorf("the answer lists %d sent and %d failed of %d emails", len(data.items), failed, items)
	}
	sent := items - failed
	var all, reached int64 // recipients
	for i, r := range st.recipients {
		all += r
		if !unsent[i] {
			reached += r
		}
	}
	num, den := sent, items
	if all > 0 && reached*items > sent*all {
		num, den = reached, all
	}
	moved, err := share(reserved, num, den)
	if err != nil {
		return vendors.Settlement{}, err
	}
	return vendors.Settlement{Moved: moved, Object: strings.Join(ids, ","), Units: sent}, nil
}

// share returns ceil(a * n / d) for 0 <= n <= d, d > 0, without overflow:
// a = q*d + r, so a*n/d = q*n + r*n/d, where q*n <= a and r*n < d*d.
func share(a money.Amount, n, d int64) (money.Amount, error) {
	if d <= 0 || n < 0 || n > d || d > 1<<31 {
		return money.Amount{}, fmt.Errorf("cannot take %d of %d", n, d)
	}
	if a.Micros < 0 {
		return money.Amount{}, fmt.Errorf("reserved amount %v is negative", a)
	}
	q, r := a.Micros/d, a.Micros%d
	part := q*n + (r*n+d-1)/d
	return money.Amount{Micros: part, Currency: a.Currency}, nil
}

func stringMember(v *jsonValue, key string) (string, bool) {
	m := v.member(key)
	if m == nil || m.kind != jsonString {
		return "", false
	}
	return m.text, true
}
