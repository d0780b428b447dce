// Package checked is the counter arithmetic every store does before it
// admits, settles or releases a hold: sums that report an overflow and
// differences that report going negative, instead of wrapping. A counter
// that would wrap is corrupt data, never a number to compare with a cap.
package checked

import (
	"math"

	"github.com/keybrake/keybrake/store"
)

// Total is store.Counter.Total with an overflow reported (ok false)
// instead of wrapped.
func Total(c store.Counter) (int64, bool) {
	s, ok := Add(c.Settled, c.Pending)
	if !ok {
		return 0, false
	}
	return Add(s, c.Unknown)
}

// Add returns a+b for non-negative a and b; ok is false on overflow.
func Add(a, b int64) (int64, bool) {
	if b > math.MaxInt64-a {
		return 0, false
	}
	return a + b, true
}

// Sub returns a-b for 0 <= b; ok is false when the result would be
// negative.
func Sub(a, b int64) (int64, bool) {
	if b > a {
		return 0, false
	}
	return a - b, true
}
