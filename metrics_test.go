package keybrake_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	stripego "github.com/stripe/stripe-go/v76"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/admin"
)

// metricsPolicy caps refund-bot at 100.00 USD a day: four refunds of
// 25.00 fit, the fifth is capped.
const metricsPolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 100.00 USD
      per_call_max: 30.00 USD
      allow:
        - POST /v1/refunds
`

// scrape GETs /metrics on the Brake's admin socket and parses it.
func scrape(t *testing.T, sock string) map[string]*dto.MetricFamily {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://admin/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// series flattens a family to "label=value,..." -> value.
func series(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(ls)
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		out[strings.Join(ls, ",")] = v
	}
	return out
}

// TestMetricsMatchTheAudit: refunds through stripe-go until the daily cap
// refuses, a call the policy blocks and one of an agent it does not know;
// then /metrics on the admin socket says exactly what the audit log says.
func TestMetricsMatchTheAudit(t *testing.T) {
	fs, url := fakestripe.Start(t)
	for i := 0; i < 6; i++ {
		fs.AddCharge(fakestripe.Charge{ID: fmt.Sprintf("ch_m%d", i), Amount: 10000, Currency: "usd", Captured: true})
	}
	db := filepath.Join(t.TempDir(), "keybrake.db")
	kb := openBrake(t, metricsPolicy, keybrake.Options{DBPath: db, Endpoints: fakeEndpoint(url)})

	// A runner registers the collector in a registry of its own.
	reg := prometheus.NewRegistry()
	if err := reg.Register(kb.Collector()); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(""), "keybrake_calls_total"); err != nil {
		t.Fatalf("calls before any call: %v", err)
	}

	bot := sdkNoRetry(kb, "refund-bot")
	capped := false
	for i := 0; i < 6 && !capped; i++ {
		_, err := bot.Refunds.New(refund(fmt.Sprintf("ch_m%d", i), 2500))
		if err != nil {
			stripeErr(t, err, 402)
			capped = true
		}
	}
	if !capped {
		t.Fatal("the daily cap never refused")
	}
	if _, err := bot.Customers.New(&stripego.CustomerParams{}); err == nil {
		t.Fatal("a call the policy does not allow passed")
	}
	if _, err := sdkNoRetry(kb, "cust_4242-stranger").Refunds.New(refund("ch_m5", 100)); err == nil {
		t.Fatal("an agent the policy does not know refunded")
	}

	recs := dump(t, kb, audit.Query{})
	wantCalls := map[string]float64{}
	wantReserved, wantSettled := map[string]float64{}, map[string]float64{}
	for _, r := range recs {
		if r.Event != "" {
			continue
		}
		agent := r.Agent
		if agent != "refund-bot" {
			agent = "other"
		}
		code := r.Code
		if r.Decision == keybrake.Allowed {
			code = ""
		}
		wantCalls[fmt.Sprintf("agent=%s,code=%s,decision=%s,vendor=%s", agent, code, r.Decision, r.Vendor)]++
		money := fmt.Sprintf("agent=%s,currency=%s,vendor=%s", agent, strings.ToUpper(string(r.Reserved.Currency)), r.Vendor)
		if r.Reserved.Micros > 0 {
			wantReserved[money] += float64(r.Reserved.Micros)
		}
		if r.Outcome == audit.Settled && r.Settled.Micros > 0 {
			wantSettled[fmt.Sprintf("agent=%s,currency=%s,vendor=%s", agent, r.Settled.Currency, r.Vendor)] += float64(r.Settled.Micros)
		}
	}
	if wantCalls["agent=refund-bot,code=keybrake_daily_cap,decision=capped,vendor=stripe"] != 1 ||
		wantCalls["agent=refund-bot,code=,decision=allowed,vendor=stripe"] != 4 {
		t.Fatalf("the audit says %v, not four allowed refunds and one capped", wantCalls)
	}

	fams := scrape(t, db+".sock")
	for _, c := range []struct {
		name string
		want map[string]float64
	}{
		{"keybrake_calls_total", wantCalls},
		{"keybrake_money_reserved_micros_total", wantReserved},
		{"keybrake_money_settled_micros_total", wantSettled},
		{"keybrake_money_unknown_micros_total", map[string]float64{}},
	} {
		got := series(fams, c.name)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s:\n got %v\nwant %v (the audit)", c.name, got, c.want)
		}
	}
	if got := wantSettled["agent=refund-bot,currency=USD,vendor=stripe"]; got != 100_000_000 {
		t.Errorf("settled %v micros, want 100.00 USD", got)
	}

	// The cap gauge is the store's counter over the cap.
	st, err := admin.Dial(db + ".sock").Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var used, max int64
	var lUnit string
	for _, l := range st.Limits {
		if l.Rule == "agents.refund-bot.stripe.daily_cap" {
			used, max, lUnit = l.Used(), l.Max, l.Unit
		}
	}
	const key = "agent=refund-bot,rule=agents.refund-bot.stripe.daily_cap,vendor=stripe"
	if util := series(fams, "keybrake_cap_utilization")[key]; max == 0 || util != float64(used)/float64(max) || util != 1 {
		t.Errorf("keybrake_cap_utilization %v, the counter %d of %d", util, used, max)
	}
	if u := series(fams, "keybrake_cap_used")["agent=refund-bot,rule=agents.refund-bot.stripe.daily_cap,unit="+lUnit+",vendor=stripe"]; u != float64(used) {
		t.Errorf("keybrake_cap_used{unit=%s} %v, the counter %d: %v", lUnit, u, used, series(fams, "keybrake_cap_used"))
	}
	if up := series(fams, "keybrake_store_up")[""]; up != 1 {
		t.Errorf("keybrake_store_up %v", up)
	}
	for _, name := range []string{"keybrake_decision_duration_seconds", "keybrake_store_commit_duration_seconds", "keybrake_policy_reloads_total", "keybrake_alerts_dropped_total"} {
		if fams[name] == nil {
			t.Errorf("%s is missing", name)
		}
	}
	if n := fams["keybrake_decision_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n < 5 {
		t.Errorf("%d decisions timed, want at least the five refunds", n)
	}

	// The runner's registry sees the same counters as the socket.
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]*dto.MetricFamily{}
	for _, f := range gathered {
		mine[f.GetName()] = f
	}
	if a, b := fmt.Sprint(series(mine, "keybrake_calls_total")), fmt.Sprint(series(fams, "keybrake_calls_total")); a != b {
		t.Errorf("the runner's registry says %s, the socket %s", a, b)
	}

	// Nothing of a customer, charge or record reaches the metrics.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, bad := range []string{"ch_", "cust_", "stranger", "sk_", "re_", "/v1/"} {
					if strings.Contains(l.GetValue(), bad) {
						t.Errorf("%s{%s=%q} carries %q", name, l.GetName(), l.GetValue(), bad)
					}
				}
			}
		}
	}
}

// TestMetricsPolicyReload: a change of the policy file counts as ok, a
// broken one as invalid.
func TestMetricsPolicyReload(t *testing.T) {
	pf := writePolicy(t, metricsPolicy)
	kb := openBrake(t, "", keybrake.Options{PolicyFile: pf, PolicyPoll: 10 * time.Millisecond, NoFileEvents: true})
	reg := prometheus.NewRegistry()
	reg.MustRegister(kb.Collector())
	reloads := func(result string) float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]*dto.MetricFamily{}
		for _, f := range fams {
			m[f.GetName()] = f
		}
		return series(m, "keybrake_policy_reloads_total")["result="+result]
	}
	if reloads("ok") != 0 || reloads("invalid") != 0 {
		t.Fatal("reloads counted before any change")
	}
	writeFile(t, pf, strings.Replace(metricsPolicy, "100.00 USD", "90.00 USD", 1))
	eventually(t, "the reload to be counted", func() bool { return reloads("ok") == 1 })
	writeFile(t, pf, "version: 1\nagents: [[[\n")
	eventually(t, "the invalid policy to be counted", func() bool { return reloads("invalid") == 1 })
}

// TestMetricsAfterClose: a scrape after Close answers, without the caps,
// and says the store is down.
func TestMetricsAfterClose(t *testing.T) {
	kb := openBrake(t, metricsPolicy, keybrake.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(kb.Collector())
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*dto.MetricFamily{}
	for _, f := range gathered {
		m[f.GetName()] = f
	}
	if up := series(m, "keybrake_store_up")[""]; up != 0 || m["keybrake_store_up"] == nil {
		t.Errorf("keybrake_store_up %v after Close", up)
	}
	if m["keybrake_cap_utilization"] != nil {
		t.Error("caps reported from a closed store")
	}
}
