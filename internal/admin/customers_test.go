package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

const customersPolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 5000.00 USD
      allow: [POST /v1/refunds]
      customers:
        ids: [cus_1]
        daily_cap: 100.00 USD
        daily_count: 5
  other-bot:
    stripe:
      daily_cap: 10.00 USD
      allow: [POST /v1/refunds]
`

// TestStatusCustomers: status lists, per per-customer limit, how many
// customers were counted today and the most used of them, parsing the
// account and customer out of policy.Limits' keys; other days, other
// agents and other currencies are not theirs.
func TestStatusCustomers(t *testing.T) {
	f := newFixture(t)
	pol, err := policy.Parse("/etc/keybrake.yaml", []byte(customersPolicy))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(i int, holds ...audit.Hold) {
		t.Helper()
		a, err := f.s.Reserve(ctx, &store.Reservation{Record: f.call(0, usd("1.00")), Holds: holds})
		if err != nil || a.Result != store.Admitted {
			t.Fatalf("Reserve %d = %+v, %v", i, a, err)
		}
	}
	key := func(account, customer, day, unit string) string {
		return "customer/refund-bot/stripe/" + account + "/" + customer + "/" + day + "/" + unit
	}
	// 12 customers today, customer i holding i+1 dollars and one refund;
	// the last ones under a connected account.
	for i := range 12 {
		account := ""
		if i >= 10 {
			account = "acct_1"
		}
		c := fmt.Sprintf("cus_%02d", i)
		put(i, audit.Hold{Key: key(account, c, f.day, "USD"), Unit: "USD", Limit: -1, Amount: int64(i+1) * 1_000_000},
			audit.Hold{Key: key(account, c, f.day, "units"), Unit: "units", Limit: -1, Amount: 1})
	}
	// Not counted: another day, another currency, another agent, and an
	// ID with a slash in it is still one customer.
	put(100, audit.Hold{Key: key("", "cus_big", "2020-01-01", "USD"), Unit: "USD", Limit: -1, Amount: 99_000_000})
	put(101, audit.Hold{Key: key("", "cus_eur", f.day, "EUR"), Unit: "EUR", Limit: -1, Amount: 99_000_000})
	put(102, audit.Hold{Key: "customer/other-bot/stripe//cus_00/" + f.day + "/USD", Unit: "USD", Limit: -1, Amount: 99_000_000})
	put(103, audit.Hold{Key: key("", "odd/id", f.day, "USD"), Unit: "USD", Limit: -1, Amount: 500_000})

	s, err := localStatus(f, pol)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Customers) != 2 {
		t.Fatalf("Customers = %+v, want the money cap and the count of refund-bot's grant", s.Customers)
	}
	money, count := s.Customers[0], s.Customers[1]
	if money.Agent != "refund-bot" || money.Vendor != "stripe" || money.Rule != "agents.refund-bot.stripe.customers.daily_cap" || money.Counted != 13 ||
		len(money.Top) != admin.TopCustomers {
		t.Fatalf("money = %s counted %d, %d shown; want refund-bot's daily_cap, 13 counted, %d shown", money.Rule, money.Counted, len(money.Top), admin.TopCustomers)
	}
	first := admin.LimitStatus{Agent: "refund-bot", Vendor: "stripe", Account: "acct_1", Customer: "cus_11", Rule: money.Rule,
		Key: key("acct_1", "cus_11", f.day, "USD"), Unit: "USD", Max: 100_000_000, Pending: 12_000_000}
	if !reflect.DeepEqual(money.Top[0], first) {
		t.Errorf("most used:\n got %+v\nwant %+v", money.Top[0], first)
	}
	for i, l := range money.Top {
		if want := fmt.Sprintf("cus_%02d", 11-i); l.Customer != want {
			t.Errorf("Top[%d] = %s, want %s (most used first)", i, l.Customer, want)
		}
	}
	if count.Rule != "agents.refund-bot.stripe.customers.daily_count" || count.Counted != 12 || count.Top[0].Unit != "units" || count.Top[0].Max != 5 || count.Top[0].Pending != 1 {
		t.Errorf("count = %+v", count)
	}
	// Ties (every customer one refund) come in key order: the platform's
	// own customers ("" account) first.
	if count.Top[0].Customer != "cus_00" || count.Top[0].Account != "" {
		t.Errorf("count.Top[0] = %+v, want cus_00 of the platform", count.Top[0])
	}
	odd := false
	for _, l := range append(money.Top, count.Top...) {
		odd = odd || l.Customer == "odd/id"
	}
	if odd {
		t.Errorf("odd/id (0.50) is among the ten most used")
	}

	// Over the socket, JSON carries it all back, money as decimals.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back admin.Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Customers, s.Customers) {
		t.Errorf("JSON round trip:\n got %+v\nwant %+v", back.Customers, s.Customers)
	}
	var raw struct {
		Customers []struct {
			Top []map[string]any `json:"top"`
		} `json:"customers"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if got := raw.Customers[0].Top[0]; got["pending"] != "12.00" || got["max"] != "100.00" || got["customer"] != "cus_11" || got["account"] != "acct_1" {
		t.Errorf("JSON of the most used = %v", got)
	}
}

// TestStatusOddIDCounted: a customer ID holding a slash is one customer,
// parsed whole.
func TestStatusOddIDCounted(t *testing.T) {
	f := newFixture(t)
	pol, err := policy.Parse("/etc/keybrake.yaml", []byte(customersPolicy))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := "customer/refund-bot/stripe//odd/id/" + f.day + "/USD"
	if a, err := f.s.Reserve(ctx, &store.Reservation{Record: f.call(0, usd("1.00")), Holds: []audit.Hold{{Key: k, Unit: "USD", Limit: -1, Amount: 3}}}); err != nil || a.Result != store.Admitted {
		t.Fatalf("Reserve = %+v, %v", a, err)
	}
	s, err := localStatus(f, pol)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Customers[0]; c.Counted != 1 || c.Top[0].Customer != "odd/id" || c.Top[0].Account != "" {
		t.Errorf("customers = %+v", s.Customers)
	}
}

// localStatus is the status a Brake's socket serves for f's day, pol in
// force.
func localStatus(f *fixture, pol *policy.Policy) (*admin.Status, error) {
	l := &admin.Local{Store: f.s, State: func() admin.State { return admin.State{Policy: pol, Day: f.day} }}
	return l.Status(context.Background())
}
