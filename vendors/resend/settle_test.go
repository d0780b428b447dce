package resend

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"testing"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// priced classifies r and prices it as the transport does: price per
// email times Quantity.
func priced(t *testing.T, r *vendors.Request, perEmail int64) *vendors.Call {
	t.Helper()
	c, err := Vendor{}.Classify(r)
	if err != nil {
		t.Fatal(err)
	}
	q := c.Priced.Quantity
	if q < 0 {
		q = 1000 // what a policy might say a broadcast counts
	}
	c.Amount = money.Amount{Micros: perEmail * q, Currency: "USD"}
	return c
}

func usd(micros int64) money.Amount { return money.Amount{Micros: micros, Currency: "USD"} }

func TestSettle(t *testing.T) {
	send := priced(t, req("POST", "/emails", emailJSON("")), 900)
	broadcast := priced(t, req("POST", "/broadcasts/"+uuid1+"/send", ""), 900)
	batch3 := priced(t, req("POST", "/emails/batch", batchJSON(3, func(int) string { return "" }), "X-Batch-Validation", "permissive"), 900)
	// 1000 micros over 3 emails: shares of 333.33... round up.
	odd := priced(t, req("POST", "/emails/batch", batchJSON(3, func(int) string { return "" })), 0)
	odd.Amount = usd(1000)

	// 1, 3 and 1 recipients: priced per email (2700) or per recipient (4500).
	uneven := func(amount int64) *vendors.Call {
		c := priced(t, req("POST", "/emails/batch", `[`+emailJSON("")+`,`+emailJSON(`"cc":["c@z.example","d@z.example"]`)+`,`+emailJSON("")+`]`,
			"X-Batch-Validation", "permissive"), 0)
		c.Amount = usd(amount)
		return c
	}

	tests := []struct {
		name  string
		c     *vendors.Call
		body  string
		moved money.Amount
		units int64
		obj   string
	}{
		{"send", send, `{"id":"` + uuid1 + `"}`, usd(900), -1, uuid1},
		{"send without id", send, `{}`, usd(900), -1, ""},
		{"broadcast", broadcast, `{"id":"` + uuid2 + `"}`, usd(900_000), -1, uuid2},
		{"batch all sent", batch3, `{"data":[{"id":"a"},{"id":"b"},{"id":"c"}]}`, usd(2700), 3, "a,b,c"},
		{"batch all sent, empty errors", batch3, `{"data":[{"id":"a"},{"id":"b"},{"id":"c"}],"errors":[]}`, usd(2700), 3, "a,b,c"},
		{"batch partial", batch3, `{"data":[{"id":"a"},{"id":"c"}],"errors":[{"index":1,"message":"Invalid to field"}]}`, usd(1800), 2, "a,c"},
		{"batch none sent", batch3, `{"data":[],"errors":[{"index":0,"message":"x"},{"index":1,"message":"x"},{"index":2,"message":"x"}]}`, usd(0), 0, ""},
		// A mock answers one ID for any batch: nothing says the others
		// failed, so they count.
		{"batch answer lists fewer ids", batch3, `{"data":[{"id":"a"}]}`, usd(2700), 3, "a"},
		{"odd share, 1 of 3", odd, `{"data":[{"id":"a"}],"errors":[{"index":1,"message":"x"},{"index":2,"message":"x"}]}`, usd(334), 1, "a"},
		{"odd share, 2 of 3", odd, `{"data":[{"id":"a"},{"id":"b"}],"errors":[{"index":1,"message":"x"}]}`, usd(667), 2, "a,b"},
		// The larger of the email share (2/3) and the recipient share.
		{"uneven, the big one failed", uneven(2700), `{"data":[{"id":"a"},{"id":"c"}],"errors":[{"index":1,"message":"x"}]}`, usd(1800), 2, "a,c"},
		{"uneven, a small one failed", uneven(2700), `{"data":[{"id":"b"},{"id":"c"}],"errors":[{"index":0,"message":"x"}]}`, usd(2160), 2, "b,c"},
		{"uneven per recipient, a small one failed", uneven(4500), `{"data":[{"id":"b"},{"id":"c"}],"errors":[{"index":0,"message":"x"}]}`, usd(3600), 2, "b,c"},
		{"uneven per recipient, the big one failed", uneven(4500), `{"data":[{"id":"a"},{"id":"c"}],"errors":[{"index":1,"message":"x"}]}`, usd(3000), 2, "a,c"},
		{"odd share, 3 of 3", odd, `{"data":[{"id":"a"},{"id":"b"},{"id":"c"}]}`, usd(1000), 3, "a,b,c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Vendor{}.Settle(tt.c, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if s.Moved != tt.moved || s.Units != tt.units || s.Object != tt.obj || s.Estimated {
				t.Fatalf("Settle = %+v, want moved %v units %d object %q", s, tt.moved, tt.units, tt.obj)
			}
		})
	}
}

func TestSettleRefuses(t *testing.T) {
	send := priced(t, req("POST", "/emails", emailJSON("")), 900)
	batch3 := priced(t, req("POST", "/emails/batch", batchJSON(3, func(int) string { return "" })), 900)
	noState := *batch3
	noState.State = nil
	notSending := &vendors.Call{Operation: "domains.create", MovesMoney: true}
	for _, tt := range []struct {
		name string
		c    *vendors.Call
		body string
	}{
		{"not json", send, `<html>`},
		{"send answers an array", send, `[{"id":"x"}]`},
		{"batch without data", batch3, `{"id":"x"}`},
		{"batch data not array", batch3, `{"data":{"id":"x"}}`},
		{"batch data item not object", batch3, `{"data":["x"]}`},
		{"batch more ids than emails", batch3, `{"data":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}]}`},
		{"batch more answers than emails", batch3, `{"data":[{"id":"a"},{"id":"b"}],"errors":[{"index":0,"message":"x"},{"index":1,"message":"x"}]}`},
		{"batch error index out of range", batch3, `{"data":[{"id":"a"}],"errors":[{"index":3,"message":"x"}]}`},
		{"batch error index twice", batch3, `{"data":[{"id":"a"}],"errors":[{"index":1,"message":"x"},{"index":1,"message":"y"}]}`},
		{"batch error index negative", batch3, `{"data":[{"id":"a"}],"errors":[{"index":-1,"message":"x"}]}`},
		{"batch error index string", batch3, `{"data":[{"id":"a"}],"errors":[{"index":"1","message":"x"}]}`},
		{"batch error index fraction", batch3, `{"data":[{"id":"a"}],"errors":[{"index":1.5,"message":"x"}]}`},
		{"batch errors not array", batch3, `{"data":[{"id":"a"}],"errors":"x"}`},
		{"batch duplicate key", batch3, `{"data":[],"data":[{"id":"a"}]}`},
		{"batch without state", &noState, `{"data":[{"id":"a"}]}`},
		{"operation that sends nothing", notSending, `{"id":"x"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Vendor{}.Settle(tt.c, []byte(tt.body))
			if !errors.Is(err, ErrSettle) {
				t.Fatalf("Settle = %+v, %v; want ErrSettle", s, err)
			}
		})
	}
}

func TestSettleNothingMoved(t *testing.T) {
	c, err := Vendor{}.Classify(req("GET", "/emails/"+uuid1, ""))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Vendor{}.Settle(c, []byte(`{"id":"x"}`))
	if err != nil || s != (vendors.Settlement{Units: -1}) {
		t.Fatalf("Settle = %+v, %v", s, err)
	}
}

func TestShare(t *testing.T) {
	for _, tt := range []struct {
		a, n, d int64
	}{
		{0, 0, 1}, {900, 1, 1}, {1000, 1, 3}, {1000, 2, 3}, {1000, 0, 3}, {1, 1, 100}, {99, 1, 100}, {100, 99, 100},
		{math.MaxInt64, 100, 100}, {math.MaxInt64, 99, 100}, {math.MaxInt64, 1, 3}, {math.MaxInt64 - 1, 1, 2}, {math.MaxInt64, 0, 100},
	} {
		t.Run(fmt.Sprint(tt.a, "*", tt.n, "/", tt.d), func(t *testing.T) {
			got, err := share(usd(tt.a), tt.n, tt.d)
			if err != nil {
				t.Fatal(err)
			}
			// ceil(a*n/d) in exact arithmetic.
			num := new(big.Int).Mul(big.NewInt(tt.a), big.NewInt(tt.n))
			num.Add(num, big.NewInt(tt.d-1))
			want := num.Div(num, big.NewInt(tt.d))
			if got.Micros != want.Int64() || got.Currency != "USD" {
				t.Fatalf("share = %v, want %v micros", got, want)
			}
		})
	}
	for _, bad := range [][3]int64{{1, 2, 1}, {1, -1, 1}, {1, 0, 0}, {-1, 1, 1}} {
		if got, err := share(usd(bad[0]), bad[1], bad[2]); err == nil {
			t.Errorf("share(%v) = %v, want an error", bad, got)
		}
	}
}
