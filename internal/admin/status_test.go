package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// writeDay writes a day of refund-bot's calls: 20.00 settled, 30.00
// reserved of which 25.00 settled, 40.00 unknown, 10.00 still in flight,
// 5.00 released, and a refusal.
func writeDay(f *fixture) {
	f.reserve(0, usd("20.00"), usd("20.00"), audit.Settled)
	f.reserve(1, usd("30.00"), usd("25.00"), audit.Settled)
	f.reserve(2, usd("40.00"), money.Amount{}, audit.Unknown)
	f.reserve(3, usd("10.00"), money.Amount{}, audit.Reserved)
	f.reserve(4, usd("5.00"), money.Amount{}, audit.Released)
	f.refuse(5, "refund-bot", policy.Capped)
}

func TestComputeStatus(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	pol := parsePolicy(t)
	day := f.day
	// What the counters hold after writeDay, and the limits of testPolicy
	// in the order ComputeStatus lists them.
	wantLimits := []admin.LimitStatus{
		{Agent: "refund-bot", Vendor: "stripe", Rule: "agents.refund-bot.stripe.daily_cap", Key: "agent/refund-bot/stripe/" + day + "/USD",
			Unit: "USD", Max: usd("500.00").Micros, Settled: usd("45.00").Micros, Pending: usd("10.00").Micros, Unknown: usd("40.00").Micros},
		{Agent: "refund-bot", Vendor: "stripe", Rule: "agents.refund-bot.stripe.daily_count", Key: "agent/refund-bot/stripe/" + day + "/units",
			Unit: "units", Max: 100, Settled: 2, Pending: 1, Unknown: 1},
		{Agent: "texter", Vendor: "twilio", Rule: "agents.texter.twilio.daily_cap", Key: "agent/texter/twilio/" + day + "/USD",
			Unit: "USD", Max: usd("10.00").Micros},
		{Vendor: "stripe", Rule: "vendors.stripe.daily_cap", Key: "vendor/stripe/" + day + "/USD",
			Unit: "USD", Max: usd("2000.00").Micros, Settled: usd("45.00").Micros, Pending: usd("10.00").Micros, Unknown: usd("40.00").Micros},
		{Vendor: "twilio", Rule: "vendors.twilio.daily_count", Key: "vendor/twilio/" + day + "/units", Unit: "units", Max: 1000},
	}
	// A day's limits free at the next midnight (UTC: testPolicy names no
	// zone).
	end, _ := time.Parse("2006-01-02", day)
	for i := range wantLimits {
		wantLimits[i].Frees = end.AddDate(0, 0, 1)
	}
	wantOpen := admin.OpenStatus{Reserved: 1, Unknown: 1, Oldest: f.now.Add(2).UTC(), Amounts: map[string]string{"USD": "50.00"}}

	kill := "the kill switch /etc/keybrake.yaml.halt"
	tests := []struct {
		name          string
		pol           *policy.Policy
		polErr        error
		stops         policy.Stops
		wantHaltedBy  string // "": not halted
		wantRevokedBy map[string]string
		wantHash      string
		wantErr       string
		wantLimits    []admin.LimitStatus
	}{
		{name: "policy only", pol: pol, wantRevokedBy: map[string]string{"texter": "the policy (revoked: true)"}, wantHash: pol.Hash, wantLimits: wantLimits},
		// What a Brake passes: its policy in force carries its stops.
		{name: "kill switch names an agent", pol: pol.WithStops(policy.Stops{Revoked: map[string]string{"refund-bot": kill, "texter": kill}}),
			wantRevokedBy: map[string]string{"refund-bot": kill, "texter": "the policy (revoked: true)"}, wantHash: pol.Hash + "+revoked:refund-bot", wantLimits: wantLimits},
		{name: "Brake.Halt", pol: pol.WithStops(policy.Stops{Halt: "Brake.Halt"}), wantHaltedBy: "Brake.Halt",
			wantRevokedBy: map[string]string{"texter": "the policy (revoked: true)"}, wantHash: pol.Hash + "+halt", wantLimits: wantLimits},
		// A source Keybrake does not know is printed as it is.
		{name: "fleet stop", pol: pol.WithStops(policy.Stops{Halt: "fleet halt 7 by alice: incident 42", Revoked: map[string]string{"refund-bot": "fleet revoke 8 by bob"}}),
			wantHaltedBy: "fleet halt 7 by alice: incident 42", wantRevokedBy: map[string]string{"refund-bot": "fleet revoke 8 by bob", "texter": "the policy (revoked: true)"},
			wantHash: pol.Hash + "+halt+revoked:refund-bot", wantLimits: wantLimits},
		{name: "policy halts", pol: haltingPolicy(t), stops: policy.Stops{Halt: kill}, wantHaltedBy: "the policy (halt: true)",
			wantRevokedBy: map[string]string{"texter": "the policy (revoked: true)"}, wantHash: haltingPolicy(t).Hash, wantLimits: wantLimits},
		{name: "invalid policy", polErr: errors.New("keybrake.yaml:3: daily_cap: bad"), stops: policy.Stops{Halt: kill, Revoked: map[string]string{"x": kill}},
			wantHaltedBy: kill, wantRevokedBy: map[string]string{"x": kill}, wantErr: "keybrake.yaml:3: daily_cap: bad", wantLimits: []admin.LimitStatus{}},
		{name: "no policy at all", wantErr: "no policy is in force", wantLimits: []admin.LimitStatus{}},
		{name: "last valid policy kept", pol: pol, polErr: errors.New("file invalid"), wantRevokedBy: map[string]string{"texter": "the policy (revoked: true)"},
			wantHash: pol.Hash, wantErr: "file invalid", wantLimits: wantLimits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := admin.ComputeStatus(context.Background(), f.s, tt.pol, tt.polErr, day, tt.stops)
			if err != nil {
				t.Fatal(err)
			}
			wantRevoked := slices.Sorted(maps.Keys(tt.wantRevokedBy))
			if wantRevoked == nil {
				wantRevoked = []string{}
			}
			if s.Day != day || s.Halted != (tt.wantHaltedBy != "") || s.HaltedBy != tt.wantHaltedBy || s.PolicyHash != tt.wantHash || s.PolicyError != tt.wantErr ||
				!reflect.DeepEqual(s.Revoked, wantRevoked) || !maps.Equal(s.RevokedBy, tt.wantRevokedBy) {
				t.Errorf("status = day %s halted %v by %q hash %q error %q revoked %q by %q\nwant day %s halted by %q hash %q error %q revoked by %q",
					s.Day, s.Halted, s.HaltedBy, s.PolicyHash, s.PolicyError, s.Revoked, s.RevokedBy, day, tt.wantHaltedBy, tt.wantHash, tt.wantErr, tt.wantRevokedBy)
			}
			if !reflect.DeepEqual(s.Limits, tt.wantLimits) {
				t.Errorf("limits:\n got %+v\nwant %+v", s.Limits, tt.wantLimits)
			}
			if !reflect.DeepEqual(s.Open, wantOpen) {
				t.Errorf("open = %+v, want %+v", s.Open, wantOpen)
			}
			if tt.pol != nil && s.PolicyFile != "/etc/keybrake.yaml" {
				t.Errorf("policy file %q", s.PolicyFile)
			}
		})
	}
	if got := wantLimits[0].Used(); got != usd("95.00").Micros {
		t.Errorf("Used = %d", got)
	}
}

func TestComputeStatusOtherDay(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	tomorrow := f.now.AddDate(0, 0, 1).Format("2006-01-02")
	later := f.now.AddDate(0, 0, 2).Format("2006-01-02")
	// Another day's counters are empty; open reservations are shown
	// whatever their day: their money is still counted.
	for _, day := range []string{tomorrow, later} {
		s, err := admin.ComputeStatus(context.Background(), f.s, parsePolicy(t), nil, day, policy.Stops{})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range s.Limits {
			if l.Used() != 0 || !strings.Contains(l.Key, "/"+day+"/") {
				t.Errorf("limit %+v on another day", l)
			}
		}
		if s.Open.Reserved != 1 || s.Open.Unknown != 1 || !s.Open.Oldest.Equal(f.now.Add(2)) {
			t.Errorf("day %s: open = %+v, want 1 reserved and 1 unknown", day, s.Open)
		}
	}
}

func TestComputeStatusRefuses(t *testing.T) {
	f := newFixture(t)
	for _, day := range []string{"", "today", "2025-13-01", "2025-1-01", "2025-02-30"} {
		if _, err := admin.ComputeStatus(context.Background(), f.s, nil, nil, day, policy.Stops{}); err == nil {
			t.Errorf("day %q accepted", day)
		}
	}
	f.s.Close()
	_, err := admin.ComputeStatus(context.Background(), f.s, parsePolicy(t), nil, f.day, policy.Stops{})
	if !errors.Is(err, store.ErrClosed) {
		t.Errorf("closed store: %v", err)
	}
	var zero admin.Local
	if _, err := zero.Status(context.Background()); err == nil {
		t.Error("a Local without a store gave a status")
	}
}

func TestOpenAmountsPerCurrency(t *testing.T) {
	f := newFixture(t)
	eur, _ := money.Parse("12.34 EUR")
	jpy, _ := money.Parse("1000 JPY")
	price, _ := money.ParsePrice("0.0079 USD")
	for _, a := range []money.Amount{eur, jpy, jpy, price} {
		r := f.call(0, a)
		_, err := f.s.Reserve(context.Background(), &store.Reservation{Record: r,
			Holds: []audit.Hold{{Key: "k/" + string(a.Currency), Unit: string(a.Currency), Limit: -1, Amount: a.Micros}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := admin.ComputeStatus(context.Background(), f.s, nil, nil, f.day, policy.Stops{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"EUR": "12.34", "JPY": "2000", "USD": "0.0079"}
	if s.Open.Reserved != 4 || !reflect.DeepEqual(s.Open.Amounts, want) {
		t.Errorf("open = %+v, want 4 reserved holding %v", s.Open, want)
	}
}

func TestLocalStatus(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	clock := f.now.Add(-72 * time.Hour)
	l := &admin.Local{Store: f.s, Now: func() time.Time { return clock }, State: func() admin.State {
		return admin.State{PolicyFile: "/srv/policy.yaml", PolicyErr: errors.New("gone")}
	}}
	s, err := l.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Day != clock.UTC().Format("2006-01-02") || !s.Time.Equal(clock) || s.PolicyFile != "/srv/policy.yaml" || s.PolicyError != "gone" {
		t.Errorf("status %+v", s)
	}
}

// TestLimitStatusJSON: /status writes money as the audit log does, a
// decimal string in major units of the limit's unit, and reads the numbers
// of micros an older Brake wrote.
func TestLimitStatusJSON(t *testing.T) {
	limits := []admin.LimitStatus{
		{Agent: "texter", Vendor: "twilio", Rule: "agents.texter.twilio.daily_cap", Key: "agent/texter/twilio/2026-12-02/USD",
			Unit: "USD", Max: 20_000_000, Settled: 8500, Pending: 17_000, Unknown: 0},
		{Vendor: "twilio", Rule: "vendors.twilio.daily_count", Key: "vendor/twilio/2026-12-02/units", Unit: "units", Max: 1000, Settled: 3},
	}
	b, err := json.Marshal(limits)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"agent":"texter","vendor":"twilio","rule":"agents.texter.twilio.daily_cap","key":"agent/texter/twilio/2026-12-02/USD","unit":"USD","max":"20.00","settled":"0.0085","pending":"0.017","unknown":"0.00"},` +
		`{"vendor":"twilio","rule":"vendors.twilio.daily_count","key":"vendor/twilio/2026-12-02/units","unit":"units","max":1000,"settled":3,"pending":0,"unknown":0}]`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	for _, in := range []string{want,
		`[{"agent":"texter","vendor":"twilio","rule":"agents.texter.twilio.daily_cap","key":"agent/texter/twilio/2026-12-02/USD","unit":"USD","max":20000000,"settled":8500,"pending":17000,"unknown":0},` +
			`{"vendor":"twilio","rule":"vendors.twilio.daily_count","key":"vendor/twilio/2026-12-02/units","unit":"units","max":1000,"settled":3,"pending":0,"unknown":0}]`,
	} {
		var got []admin.LimitStatus
		if err := json.Unmarshal([]byte(in), &got); err != nil || !reflect.DeepEqual(got, limits) {
			t.Errorf("%s read as %+v, %v", in, got, err)
		}
	}
	var bad []admin.LimitStatus
	if err := json.Unmarshal([]byte(`[{"unit":"USD","max":"20 USD"}]`), &bad); err == nil {
		t.Errorf("a max of \"20 USD\" read as %+v", bad)
	}
}
