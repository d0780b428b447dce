package keybrake

// Metrics: the Brake's Prometheus collector.
//
// (*Brake).Collector returns a prometheus.Collector that the runner
// registers in a registry of its own; the Brake registers nothing in the
// default registry. The admin socket (GET /metrics) and `keybrake serve`'s
// --admin listener serve it in the Prometheus text format. The metrics:
//
//	keybrake_calls_total{agent,vendor,decision,code}          counter
//	    Calls decided, by decision (allowed, blocked, scoped, capped,
//	    revoked, held, error) and refusal code ("" for allowed calls), counted
//	    once a call's record is final: a refusal once written, an allowed
//	    call once its completion is handed to the store.
//	keybrake_money_reserved_micros_total{agent,vendor,currency}  counter
//	    Money durably reserved against the caps, in millionths of the
//	    currency's major unit (1 USD = 1000000), exact integers.
//	keybrake_money_settled_micros_total{agent,vendor,currency}   counter
//	    Money the vendor says moved (the audit record's settled amount),
//	    in millionths of the currency's major unit.
//	keybrake_money_reconciled_micros_total{agent,vendor,currency,direction}
//	                                                             counter
//	    How far Reconcile moved settled money from the estimate it replaced
//	    to the vendor's real price, in millionths of the currency's major
//	    unit: direction "up" when the price was above the estimate, "down"
//	    below. A counter cannot fall, so a lower price is counted here
//	    rather than taken off settled: settled + up - down is what the
//	    audit says moved, for the calls this process settled and
//	    reconciled.
//	keybrake_money_unknown_micros_total{agent,vendor,currency}   counter
//	    Money reserved by calls whose outcome is unknown (no answer, a 5xx,
//	    an unreadable body): counted against the caps until reconciled, in
//	    millionths of the currency's major unit.
//	keybrake_cap_utilization{agent,vendor,rule}                  gauge
//	    Today's (UTC) counter of a daily cap or count of the policy in
//	    force over its maximum: settled, pending and unknown over max,
//	    read from the store at scrape time (agent "" for a vendor-wide
//	    limit). Missing while the store does not answer within 2 s.
//	keybrake_cap_used{agent,vendor,rule,unit}                    gauge
//	keybrake_cap_max{agent,vendor,rule,unit}                     gauge
//	    The same counter and maximum, in micros of unit (a currency) or in
//	    calls (unit "units").
//	keybrake_store_up                                            gauge
//	    1 when the store answered the scrape's reads, else 0.
//	keybrake_decision_duration_seconds                           histogram
//	    From classifying a call to its decision by the policy (allowed or
//	    refused), lookups of the vendor included.
//	keybrake_store_commit_duration_seconds{op,result}            histogram
//	    Durations of the store writes of calls: op "reserve" (the caller
//	    waits for it) or "complete" (in the background); result "ok" or
//	    "error".
//	keybrake_policy_reloads_total{result}                        counter
//	    Policy file changes read while the Brake runs: result "ok" (a new
//	    policy in force) or "invalid" (refused; see KeepLastValidPolicy).
//	keybrake_alerts_dropped_total                                counter
//	    Alerts for refused calls dropped by the Notifier's bounded queue
//	    (notify.Stats.Dropped); always 0 without a Notifier.
//
// Label values are bounded: agent is an agent of the policy in force (or
// of one in force earlier in this process), else "other"; vendor is a
// registered vendor; decision and direction fixed sets; code a keybrake_
// or vendor refusal code, else "other"; currency a three-letter code,
// else "other"; rule a limit of the policy. No customer, record, request or
// idempotency id, path, key or amount is ever a label.

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/transport"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// Collector returns the Brake's metrics (see metrics.go's doc) as a
// prometheus.Collector, for the runner to register in its own registry:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(kb.Collector())
//
// Every call returns the same collector, so it can be registered once per
// registry. Collecting reads today's cap counters from the store, bounded
// by 2 s; it is safe for concurrent use, also after Close (the caps are
// then missing and keybrake_store_up is 0).
func (b *Brake) Collector() prometheus.Collector { return b.metrics }

// MetricsHandler serves the Brake's collector alone, in a registry of its
// own, in the Prometheus text format: what the admin socket's /metrics
// serves.
func (b *Brake) MetricsHandler() http.Handler { return b.metrics.handler }

// statusTimeout bounds the store reads of one scrape.
const statusTimeout = 2 * time.Second

// other replaces a label value outside the bounded set.
const other = "other"

// maxAgentLabels bounds the agent names remembered from policies.
const maxAgentLabels = 10000

// brakeMetrics implements transport.Metrics and prometheus.Collector.
type brakeMetrics struct {
	b *Brake

	calls      *prometheus.CounterVec
	reserved   *prometheus.CounterVec
	settled    *prometheus.CounterVec
	reconciled *prometheus.CounterVec // direction up or down
	unknown    *prometheus.CounterVec
	decision   prometheus.Histogram
	commit     *prometheus.HistogramVec
	reloads    *prometheus.CounterVec

	capUtil *prometheus.Desc
	capUsed *prometheus.Desc
	capMax  *prometheus.Desc
	storeUp *prometheus.Desc
	dropped *prometheus.Desc

	handler http.Handler

	mu     sync.Mutex
	agents map[string]bool // agents of every policy seen in force
}

var _ transport.Metrics = (*brakeMetrics)(nil)

func newMetrics(b *Brake) *brakeMetrics {
	money := []string{"agent", "vendor", "currency"}
	m := &brakeMetrics{
		b: b,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keybrake_calls_total",
			Help: "Calls decided, by decision and refusal code (empty for allowed calls)."},
			[]string{"agent", "vendor", "decision", "code"}),
		reserved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keybrake_money_reserved_micros_total",
			Help: "Money durably reserved against the caps, in millionths of the currency's major unit."}, money),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keybrake_money_settled_micros_total",
			Help: "Money the vendor says moved, in millionths of the currency's major unit."}, money),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keybrake_money_reconciled_micros_total",
			Help: "How far reconciliation moved settled money from its estimate to the vendor's price (direction up or down), in millionths of the currency's major unit."},
			[]string{"agent", "vendor", "currency", "direction"}),
		unknown: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keybrake_money_unknown_micros_total",
			Help: "Money reserved by calls whose outcome is unknown (counted until reconciled), in millionths of the currency's major unit."}, money),
		decision: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "keybrake_decision_duration_seconds",
			Help:    "Time from classifying a call to its decision by the policy, vendor lookups included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		commit: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "keybrake_store_commit_duration_seconds",
			Help:    "Durations of the store writes of calls: op reserve (the caller waits) or complete (in the background).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}},
			[]string{"op", "result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keybrake_policy_reloads_total",
			Help: "Policy file changes read while running: result ok (in force) or invalid (refused)."},
			[]string{"result"}),
		capUtil: prometheus.NewDesc("keybrake_cap_utilization",
			"Today's (UTC) counter of a daily limit of the policy in force over its maximum (settled, pending and unknown).",
			[]string{"agent", "vendor", "rule"}, nil),
		capUsed: prometheus.NewDesc("keybrake_cap_used",
			"Today's (UTC) counter of a daily limit: settled, pending and unknown, in micros of unit or in calls (unit units).",
			[]string{"agent", "vendor", "rule", "unit"}, nil),
		capMax: prometheus.NewDesc("keybrake_cap_max",
			"The maximum of a daily limit of the policy in force, in micros of unit or in calls (unit units).",
			[]string{"agent", "vendor", "rule", "unit"}, nil),
		storeUp: prometheus.NewDesc("keybrake_store_up",
			"1 when the store answered this scrape's reads of the cap counters, else 0.", nil, nil),
		dropped: prometheus.NewDesc("keybrake_alerts_dropped_total",
			"Alerts for refused calls dropped by the notifier's bounded queue.", nil, nil),
		agents: map[string]bool{},
	}
	for _, r := range []string{"ok", "invalid"} {
		m.reloads.WithLabelValues(r) // a reload counter exists at 0 from the start
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

func (m *brakeMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.calls.Describe(ch)
	m.reserved.Describe(ch)
	m.settled.Describe(ch)
	m.reconciled.Describe(ch)
	m.unknown.Describe(ch)
	m.decision.Describe(ch)
	m.commit.Describe(ch)
	m.reloads.Describe(ch)
	ch <- m.capUtil
	ch <- m.capUsed
	ch <- m.capMax
	ch <- m.storeUp
	ch <- m.dropped
}

func (m *brakeMetrics) Collect(ch chan<- prometheus.Metric) {
	m.calls.Collect(ch)
	m.reserved.Collect(ch)
	m.settled.Collect(ch)
	m.reconciled.Collect(ch)
	m.unknown.Collect(ch)
	m.decision.Collect(ch)
	m.commit.Collect(ch)
	m.reloads.Collect(ch)
	var dropped int64
	if m.b.alerts != nil {
		dropped = m.b.alerts.Stats().Dropped
	}
	ch <- prometheus.MustNewConstMetric(m.dropped, prometheus.CounterValue, float64(dropped))
	m.collectCaps(ch)
}

// collectCaps reads today's counters of the policy's limits, as `keybrake
// status` does.
func (m *brakeMetrics) collectCaps(ch chan<- prometheus.Metric) {
	up := 0.0
	defer func() { ch <- prometheus.MustNewConstMetric(m.storeUp, prometheus.GaugeValue, up) }()
	st := m.b.adminState()
	if st.Policy == nil {
		up = 1 // nothing to read: no limits are in force
		return
	}
	day := m.b.opts.Clock().UTC().Format(time.DateOnly)
	if st.Day > day {
		day = st.Day // the day clock never goes backwards
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	s, err := admin.ComputeStatus(ctx, m.b.store, st.Policy, nil, day, policy.Stops{})
	if err != nil {
		return
	}
	up = 1
	for _, l := range s.Limits {
		used := float64(l.Used())
		ch <- prometheus.MustNewConstMetric(m.capUsed, prometheus.GaugeValue, used, l.Agent, l.Vendor, l.Rule, l.Unit)
		ch <- prometheus.MustNewConstMetric(m.capMax, prometheus.GaugeValue, float64(l.Max), l.Agent, l.Vendor, l.Rule, l.Unit)
		if l.Max > 0 {
			ch <- prometheus.MustNewConstMetric(m.capUtil, prometheus.GaugeValue, used/float64(l.Max), l.Agent, l.Vendor, l.Rule)
		}
	}
}

// transport.Metrics.

func (m *brakeMetrics) Decided(d time.Duration) { m.decision.Observe(d.Seconds()) }

func (m *brakeMetrics) Committed(op string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.commit.WithLabelValues(op, result).Observe(d.Seconds())
}

func (m *brakeMetrics) Reserved(agent, vendor string, a money.Amount) {
	m.addMoney(m.reserved, agent, vendor, a)
}

func (m *brakeMetrics) Finished(rec *audit.Record) {
	agent := m.agent(rec.Agent)
	code := rec.Code
	if rec.Decision == policy.Allowed {
		code = ""
	} else if !boundedCode(code) {
		code = other
	}
	m.calls.WithLabelValues(agent, rec.Vendor, string(rec.Decision), code).Inc()
	switch rec.Outcome {
	case audit.Settled:
		m.addMoney(m.settled, rec.Agent, rec.Vendor, rec.Settled)
	case audit.Unknown:
		m.addMoney(m.unknown, rec.Agent, rec.Vendor, rec.Reserved)
	}
}

// resettled counts the change Reconcile made to a settled record: from
// the estimate rec says was settled to moved, the vendor's price.
func (m *brakeMetrics) resettled(rec *audit.Record, moved money.Amount) {
	was := rec.Settled
	if was.Currency != moved.Currency { // a price in another currency: the estimate goes, the price comes
		m.addMoney(m.reconciled, rec.Agent, rec.Vendor, was, "down")
		m.addMoney(m.reconciled, rec.Agent, rec.Vendor, moved, "up")
		return
	}
	delta := money.Amount{Micros: moved.Micros - was.Micros, Currency: moved.Currency}
	if delta.Micros < 0 {
		delta.Micros = -delta.Micros
		m.addMoney(m.reconciled, rec.Agent, rec.Vendor, delta, "down")
		return
	}
	m.addMoney(m.reconciled, rec.Agent, rec.Vendor, delta, "up")
}

// addMoney adds a to v's series of agent, vendor, a's currency and extra
// labels.
func (m *brakeMetrics) addMoney(v *prometheus.CounterVec, agent, vendor string, a money.Amount, extra ...string) {
	if a.Micros <= 0 {
		return
	}
	cur := string(a.Currency)
	if len(cur) != 3 {
		cur = other
	}
	v.WithLabelValues(append([]string{m.agent(agent), vendor, cur}, extra...)...).Add(float64(a.Micros))
}

// agent is name as a label: an agent of a policy in force, else "other",
// so that a runner passing arbitrary names cannot grow the series.
func (m *brakeMetrics) agent(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.agents[name] {
		return name
	}
	if pol, err := m.b.policies.inForce(); err == nil && pol != nil {
		if _, ok := pol.Agents[name]; ok && len(m.agents) < maxAgentLabels {
			m.agents[name] = true
			return name
		}
	}
	return other
}

// boundedCode reports whether a refusal code is one of the fixed kind:
// lower-case letters, digits and underscores, short.
func boundedCode(code string) bool {
	if code == "" || len(code) > 64 {
		return false
	}
	return strings.Trim(code, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}

// policyEvent counts a policy event's reload result (see recordEvent).
func (m *brakeMetrics) policyEvent(event string) {
	switch event {
	case "policy_reload":
		m.reloads.WithLabelValues("ok").Inc()
	case "policy_invalid":
		m.reloads.WithLabelValues("invalid").Inc()
	}
}
