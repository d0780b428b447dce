package twilio

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

func price(t testing.TB, s string) money.Amount {
	t.Helper()
	a, err := money.ParsePrice(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const (
	messageURI = accountPath + "/Messages/" + testMessage + ".json"
	mmsURI     = accountPath + "/Messages/" + testMMS + ".json"
	callURI    = accountPath + "/Calls/" + testCall + ".json"
)

// message renders a message resource as Twilio answers it; price and
// unit are JSON values ("null", `"-0.00790"`).
func message(sid, priceJSON, unitJSON, segments string) string {
	return fmt.Sprintf(`{"account_sid":%q,"api_version":"2010-04-01","body":"Hello","num_segments":%s,"num_media":"0",`+
		`"price":%s,"price_unit":%s,"sid":%q,"status":"queued","to":"+15558675310",`+
		`"uri":"/2010-04-01/Accounts/%s/Messages/%s.json"}`, testAccount, segments, priceJSON, unitJSON, sid, testAccount, sid)
}

func callResource(priceJSON, unitJSON string) string {
	return fmt.Sprintf(`{"account_sid":%q,"sid":%q,"status":"completed","duration":"15","price":%s,"price_unit":%s,`+
		`"uri":"/2010-04-01/Accounts/%s/Calls/%s.json"}`, testAccount, testCall, priceJSON, unitJSON, testAccount, testCall)
}

func classified(t *testing.T, r *vendors.Request, amount money.Amount) *vendors.Call {
	t.Helper()
	c, err := Vendor{}.Classify(r)
	if err != nil {
		t.Fatal(err)
	}
	c.Amount = amount // as the transport prices it
	return c
}

func TestSettle(t *testing.T) {
	smsCall := func() *vendors.Call {
		return classified(t, req("POST", messages, sms("")), price(t, "0.0079 USD"))
	}
	twoSegments := func() *vendors.Call {
		return classified(t, req("POST", messages, "To=%2B15558675310&Body="+strings.Repeat("a", 200)), price(t, "0.0158 USD"))
	}
	voice := func() *vendors.Call {
		return classified(t, req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit=120"), price(t, "0.028 USD"))
	}
	tests := []struct {
		name      string
		call      *vendors.Call
		body      string
		moved     money.Amount
		estimated bool
		object    string
		units     int64
	}{
		{"queued, price null", smsCall(), message(testMessage, "null", "null", `"1"`), price(t, "0.0079 USD"), true, messageURI, 1},
		{"twilio counts more segments", twoSegments(), message(testMessage, "null", `"USD"`, `"3"`), price(t, "0.0158 USD"), true, messageURI, 3},
		{"num_segments as a number", smsCall(), message(testMessage, "null", "null", `1`), price(t, "0.0079 USD"), true, messageURI, 1},
		{"num_segments absent", smsCall(), strings.Replace(message(testMessage, "null", "null", `"1"`), `"num_segments":"1",`, "", 1), price(t, "0.0079 USD"), true, messageURI, -1},
		{"num_segments unreadable", smsCall(), message(testMessage, "null", "null", `"one"`), price(t, "0.0079 USD"), true, messageURI, -1},
		{"already priced", smsCall(), message(testMessage, `"-0.00790"`, `"USD"`, `"1"`), price(t, "0.0079 USD"), false, messageURI, 1},
		{"priced differently", twoSegments(), message(testMessage, `"-0.02370"`, `"USD"`, `"3"`), price(t, "0.0237 USD"), false, messageURI, 3},
		{"priced at zero", smsCall(), message(testMessage, `"0.00000"`, `"USD"`, `"0"`), price(t, "0 USD"), false, messageURI, 0},
		{"price_unit lower case", smsCall(), message(testMessage, `"-0.0079"`, `"usd"`, `"1"`), price(t, "0.0079 USD"), false, messageURI, 1},
		{"price as a number", smsCall(), message(testMessage, `-0.0079`, `"USD"`, `"1"`), price(t, "0.0079 USD"), false, messageURI, 1},
		{"trailing zeros past six decimals", smsCall(), message(testMessage, `"-0.00790000"`, `"USD"`, `"1"`), price(t, "0.0079 USD"), false, messageURI, 1},
		{"mms sid", classified(t, req("POST", messages, "To=%2B15558675310&MediaUrl=https%3A%2F%2Fx"), price(t, "0.02 USD")),
			message(testMMS, "null", "null", `"1"`), price(t, "0.02 USD"), true, mmsURI, 1},
		{"call queued", voice(), callResource("null", "null"), price(t, "0.028 USD"), true, callURI, -1},
		{"call priced (the spec's example)", voice(), callResource(`"-0.03000"`, `"USD"`), price(t, "0.03 USD"), false, callURI, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Vendor{}.Settle(tt.call, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if st.Moved != tt.moved || st.Estimated != tt.estimated || st.Object != tt.object || st.Units != tt.units {
				t.Fatalf("Settle = %+v; want Moved %v Estimated %v Object %s Units %d", st, tt.moved, tt.estimated, tt.object, tt.units)
			}
		})
	}
}

func TestSettleNothingMoved(t *testing.T) {
	c := classified(t, req("GET", messages, ""), money.Amount{})
	st, err := Vendor{}.Settle(c, []byte(`not even JSON`))
	if err != nil || !st.Moved.IsZero() || st.Units != -1 || st.Estimated {
		t.Fatalf("Settle = %+v, %v", st, err)
	}
}

func TestSettleRefusals(t *testing.T) {
	smsCall := func() *vendors.Call {
		return classified(t, req("POST", messages, sms("")), price(t, "0.0079 USD"))
	}
	otherAccount := "AC" + strings.Repeat("f", 32)
	tests := []struct {
		name string
		call *vendors.Call
		body string
	}{
		{"not JSON", smsCall(), `<Response/>`},
		{"JSON array", smsCall(), `[]`},
		{"no uri", smsCall(), `{"sid":"` + testMessage + `","account_sid":"` + testAccount + `","price":null}`},
		{"uri of a call", smsCall(), callResource("null", "null")},
		{"uri of a message for a call", classified(t, req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx"), price(t, "1 USD")),
			message(testMessage, "null", "null", `"1"`)},
		{"uri disagrees with sid", smsCall(), strings.Replace(message(testMessage, "null", "null", `"1"`), `"sid":"SM0123`, `"sid":"SM9123`, 1)},
		{"uri with a query", smsCall(), strings.Replace(message(testMessage, "null", "null", `"1"`), `.json"}`, `.json?x=1"}`, 1)},
		{"uri upper-case hex", smsCall(), strings.ReplaceAll(message(testMessage, "null", "null", `"1"`), "abcdef", "ABCDEF")},
		{"another account", smsCall(), strings.ReplaceAll(message(testMessage, "null", "null", `"1"`), testAccount, otherAccount)},
		{"price without unit", smsCall(), message(testMessage, `"-0.0079"`, "null", `"1"`)},
		{"unit unknown", smsCall(), message(testMessage, `"-0.0079"`, `"XYZ"`, `"1"`)},
		{"unit of another currency", smsCall(), message(testMessage, `"-0.0079"`, `"EUR"`, `"1"`)},
		{"price with exponent", smsCall(), message(testMessage, `"-7.9e-3"`, `"USD"`, `"1"`)},
		{"price with seven decimals", smsCall(), message(testMessage, `"-0.0079001"`, `"USD"`, `"1"`)},
		{"price words", smsCall(), message(testMessage, `"free"`, `"USD"`, `"1"`)},
		{"price leading zero", smsCall(), message(testMessage, `"-00.0079"`, `"USD"`, `"1"`)},
		{"price plus", smsCall(), message(testMessage, `"+0.0079"`, `"USD"`, `"1"`)},
		{"price object", smsCall(), message(testMessage, `{"amount":1}`, `"USD"`, `"1"`)},
		{"operation not priced", &vendors.Call{Operation: "messages.update", MovesMoney: true}, message(testMessage, "null", "null", `"1"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Vendor{}.Settle(tt.call, []byte(tt.body))
			if !errors.Is(err, ErrSettle) {
				t.Fatalf("Settle = %+v, %v; want ErrSettle", st, err)
			}
		})
	}
}

// fakeTwilio answers GETs of resources by path, and counts them.
type fakeTwilio struct {
	status int
	bodies map[string]string
	err    error
	gets   []string
}

func (f *fakeTwilio) get(ctx context.Context, path string) (int, []byte, error) {
	f.gets = append(f.gets, path)
	if f.err != nil {
		return 0, nil, f.err
	}
	b, ok := f.bodies[path]
	if !ok {
		return 404, []byte(`{"code":20404,"message":"not found","status":404}`), nil
	}
	status := f.status
	if status == 0 {
		status = 200
	}
	return status, []byte(b), nil
}

func TestReconcile(t *testing.T) {
	netErr := errors.New("connection reset")
	tests := []struct {
		name     string
		op, obj  string
		currency money.Currency
		fake     *fakeTwilio
		moved    money.Amount
		done     bool
		wantErr  bool
		wantGets int
	}{
		{name: "still null", op: "messages.create", obj: messageURI, currency: "USD",
			fake: &fakeTwilio{bodies: map[string]string{messageURI: message(testMessage, "null", "null", `"1"`)}}, wantGets: 1},
		{name: "priced", op: "messages.create", obj: messageURI, currency: "USD",
			fake:  &fakeTwilio{bodies: map[string]string{messageURI: message(testMessage, `"-0.00790"`, `"USD"`, `"1"`)}},
			moved: price(t, "0.0079 USD"), done: true, wantGets: 1},
		{name: "priced in euros", op: "messages.create", obj: messageURI, currency: "EUR",
			fake:  &fakeTwilio{bodies: map[string]string{messageURI: message(testMessage, `"-0.0712"`, `"EUR"`, `"1"`)}},
			moved: price(t, "0.0712 EUR"), done: true, wantGets: 1},
		{name: "mms", op: "messages.create", obj: mmsURI, currency: "USD",
			fake:  &fakeTwilio{bodies: map[string]string{mmsURI: message(testMMS, `"-0.0200"`, `"USD"`, `"1"`)}},
			moved: price(t, "0.02 USD"), done: true, wantGets: 1},
		{name: "call priced", op: "calls.create", obj: callURI, currency: "USD",
			fake:  &fakeTwilio{bodies: map[string]string{callURI: callResource(`"-0.03000"`, `"USD"`)}},
			moved: price(t, "0.03 USD"), done: true, wantGets: 1},
		{name: "call in progress", op: "calls.create", obj: callURI, currency: "USD",
			fake: &fakeTwilio{bodies: map[string]string{callURI: callResource("null", "null")}}, wantGets: 1},
		{name: "currency differs", op: "messages.create", obj: messageURI, currency: "USD",
			fake:    &fakeTwilio{bodies: map[string]string{messageURI: message(testMessage, `"-0.0712"`, `"EUR"`, `"1"`)}},
			wantErr: true, wantGets: 1},
		{name: "no currency", op: "messages.create", obj: messageURI,
			fake:    &fakeTwilio{bodies: map[string]string{messageURI: message(testMessage, `"-0.0079"`, `"USD"`, `"1"`)}},
			wantErr: true, wantGets: 1},
		{name: "not found", op: "messages.create", obj: messageURI, currency: "USD", fake: &fakeTwilio{}, wantErr: true, wantGets: 1},
		{name: "server error", op: "messages.create", obj: messageURI, currency: "USD",
			fake:    &fakeTwilio{status: 500, bodies: map[string]string{messageURI: `{}`}},
			wantErr: true, wantGets: 1},
		{name: "network error", op: "messages.create", obj: messageURI, currency: "USD", fake: &fakeTwilio{err: netErr}, wantErr: true, wantGets: 1},
		{name: "answers another message", op: "messages.create", obj: messageURI, currency: "USD",
			fake:    &fakeTwilio{bodies: map[string]string{messageURI: message(testMMS, `"-0.0079"`, `"USD"`, `"1"`)}},
			wantErr: true, wantGets: 1},
		{name: "object of another kind", op: "messages.create", obj: callURI, currency: "USD", fake: &fakeTwilio{}, wantErr: true},
		{name: "object with a query", op: "messages.create", obj: messageURI + "?PageSize=1000", currency: "USD", fake: &fakeTwilio{}, wantErr: true},
		{name: "object elsewhere", op: "calls.create", obj: "/v1/Services", currency: "USD", fake: &fakeTwilio{}, wantErr: true},
		{name: "operation not priced later", op: "messages.list", obj: messageURI, currency: "USD", fake: &fakeTwilio{}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			moved, done, err := Vendor{}.Reconcile(context.Background(), tt.op, tt.obj, tt.currency, tt.fake.get)
			if tt.wantErr {
				if !errors.Is(err, ErrReconcile) {
					t.Fatalf("Reconcile = %v, %v, %v; want ErrReconcile", moved, done, err)
				}
				if tt.fake.err != nil && !errors.Is(err, tt.fake.err) {
					t.Errorf("the Getter's error is not wrapped: %v", err)
				}
			} else if err != nil || moved != tt.moved || done != tt.done {
				t.Fatalf("Reconcile = %v, %v, %v; want %v, %v", moved, done, err, tt.moved, tt.done)
			}
			if len(tt.fake.gets) != tt.wantGets {
				t.Fatalf("GETs %v, want %d", tt.fake.gets, tt.wantGets)
			}
			for _, g := range tt.fake.gets {
				if g != tt.obj {
					t.Errorf("fetched %s, want %s", g, tt.obj)
				}
			}
		})
	}
}
