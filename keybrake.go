// Package keybrake lets an autonomous agent hold a live vendor API key
// (Stripe, Twilio, Resend) without being able to burn money.
//
// A Brake reads a policy file and a durable store. Its HTTPClient and
// Transport give a vendor's official SDK an http.RoundTripper chain that,
// in the agent's own process and before any byte leaves it, classifies
// each call, decides it by the policy, reserves the money it can move
// against per-call and UTC-day caps, sends it, settles the reservation from
// the vendor's response, and writes one audit record. A refused call
// reaches the agent as the SDK's own error (402 capped, 403 blocked, 401
// revoked, 503 error); AsDenial recovers the decision from it.
//
//	kb, err := keybrake.Open(keybrake.Options{PolicyFile: "keybrake.yaml", DBPath: "keybrake.db"})
//	defer kb.Close()
//	sc := client.New(key, stripevendor.Backends(kb.HTTPClient("refund-bot", keybrake.Stripe)))
package keybrake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/transport"
	"github.com/keybrake/keybrake/internal/watch"
	"github.com/keybrake/keybrake/notify"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
	"github.com/keybrake/keybrake/vendors"
)

// Vendor names a vendor as policies and audit records do: a built-in
// vendor (vendors/builtin), or one of Options.Vendors.
type Vendor string

// The vendors Keybrake knows out of the box.
const (
	Stripe Vendor = "stripe"
	Twilio Vendor = "twilio"
	Resend Vendor = "resend"
)

// Decision is what Keybrake decided about a call.
type Decision = policy.Decision

// The decisions.
const (
	Allowed = policy.Allowed
	Blocked = policy.Blocked
	Scoped  = policy.Scoped
	Capped  = policy.Capped
	Revoked = policy.Revoked
	Held    = policy.Held
	Error   = policy.Error
)

// Options configures a Brake. Zero fields mean the documented defaults.
type Options struct {
	// PolicyFile is the policy, YAML or JSON, decoded strictly. Required.
	PolicyFile string

	// ShadowPolicyFile, when set, is a candidate policy that decides
	// every call a second time and changes nothing: the audit record of
	// a call it would decide otherwise keeps its decision, rule and code
	// (audit.Record.Shadow), and its limits count in counters of their
	// own. It is watched and reloaded like PolicyFile; one that stops
	// parsing keeps its last valid version. See docs/policy.md, "Shadow".
	ShadowPolicyFile string

	// DBPath is the bbolt file for counters, reservations and the audit
	// log, created with mode 0600. Required unless Store is set. A second
	// process opening a file in use gets an error within a second.
	DBPath string

	// Store, when set, is used instead of opening DBPath: any
	// store.Store, such as one of your own that passes the conformance
	// suite in store/storetest, or a store/bolt Store opened with options
	// of your choosing. The Brake closes it. Nil means open DBPath.
	// A store shared by a fleet that implements store.Stops
	// (store/postgres) also carries the fleet's halts and revocations:
	// Open reads them before it returns (and fails when it cannot), the
	// Brake obeys them as they change, and Halt, Resume, Revoke and
	// Restore write them (see Revoke).
	Store store.Store

	// Vendors adds vendors of your own to the built-in ones, each under
	// its name (vendors.Vendor.Name; see vendors/doc.go for the contract
	// and examples/custom-vendor). A policy may then grant and limit them
	// like any other; a built-in vendor cannot be replaced. nil: the
	// built-in vendors only.
	Vendors map[Vendor]vendors.Vendor

	// Endpoints sends a vendor's traffic to another base URL (stripe-mock,
	// a test proxy). Requests addressed to the vendor's official hosts or
	// to this URL are then accepted; without an entry only the official
	// hosts are. Plain http is accepted only for loopback hosts.
	Endpoints map[Vendor]string

	// Clock is the time source; nil means time.Now. UTC days for the caps
	// come from it; tests inject one instead of sleeping past midnight.
	Clock func() time.Time

	// ErrorLog receives failures no caller can be told of (a completion
	// that could not be written: its money stays counted; a watcher that
	// had to be rebuilt). nil drops them.
	ErrorLog func(error)

	// Logger, when set, receives the same failures and every policy event
	// (reload, invalid file, kill switch, revoke, halt) as structured
	// log/slog records; see logging.go for their shape. It and ErrorLog
	// may be set together; nil logs nothing.
	Logger *slog.Logger

	// TracerProvider, when set, receives one OpenTelemetry span per call,
	// allowed or refused, started in the request's context; the request
	// sent to the vendor carries it. Its name, attributes and status are
	// in docs/observability.md (and tracing.go). nil traces nothing, at no
	// cost: no span, and the caller's context passed on unchanged.
	TracerProvider trace.TracerProvider

	// HaltFile is the kill switch. While a file exists at this path,
	// every call of the agents it names (one per line, # comments) is
	// revoked, or of every agent when it names none or cannot be read,
	// whatever the policy says and whether or not it parses. Zero means
	// PolicyFile + ".halt". It is watched like the policy.
	HaltFile string

	// KeepLastValidPolicy keeps deciding by the last valid policy when
	// the policy file, changed while the Brake runs, does not parse. The
	// default refuses every call with 503 (code keybrake_policy_invalid)
	// until a valid file appears, so that no agent runs on rules someone
	// tried to change. Either way the failure is audited, and the kill
	// switch, Revoke and Halt keep working.
	KeepLastValidPolicy bool

	// PolicyPoll is how often the policy file and the kill switch are
	// re-read and hashed whatever the file events say: the backstop for
	// file systems without inotify (NFS, SMB, FUSE) and lost events. Zero
	// means 250 ms; negative turns the poll off.
	PolicyPoll time.Duration

	// NoFileEvents turns inotify (fsnotify) off; the poll alone then
	// notices changes.
	NoFileEvents bool

	// Notifier receives alerts for refused calls (capped, revoked,
	// blocked, scoped, error) and failed policy reloads, grouped per
	// agent and rule so a stuck loop pages once and then sends running
	// counts (package notify; notify/slack posts to a Slack webhook).
	// Alerting never blocks or slows a call: a bounded queue, drops
	// counted. nil: no alerts.
	Notifier notify.Notifier
	// NotifyOptions tunes the grouping (window, queue); zero fields mean
	// notify's defaults. Its Report defaults to ErrorLog.
	NotifyOptions notify.Options

	// AdminSocket is the unix socket (mode 0600) where the Brake serves
	// its audit log, status and chain check, read-only, to the keybrake
	// command: bbolt's lock keeps other processes out of the database
	// while the agent runs. Zero means DBPath + ".sock" (none without a
	// DBPath); "-" turns it off.
	AdminSocket string
	// Warnings are lines `keybrake status` repeats, from the admin
	// socket, for as long as the Brake runs: what its runner wants an
	// operator to see ("keybrake serve" says it listens in plain HTTP
	// beyond loopback). Keep secrets out of them.
	Warnings []string

	// Retention is how long audit records and closed days' counters are
	// kept; older ones are pruned in the background, every hour. Records
	// whose money is still counted (reserved, unknown) are never pruned.
	// Zero means 90 days; negative keeps everything; less than two days
	// keeps two (a day of the policy's time zone can end well after its
	// UTC date).
	Retention time.Duration

	// CloseTimeout bounds how long Close waits for the calls in flight
	// to finish and write their records (see Shutdown). A call still in
	// flight at the deadline keeps its money counted, as after a crash,
	// and Close says how many there were. Zero means 10 s; negative does
	// not wait.
	CloseTimeout time.Duration
}

// DefaultRetention is how long the audit log is kept when
// Options.Retention is zero.
const DefaultRetention = 90 * 24 * time.Hour

// Brake holds the policy, the store and the state the chains share. It is
// safe for concurrent use. Close it when the agent is done.
type Brake struct {
	opts      Options
	store     store.Store
	env       *transport.Env
	vendors   registry
	endpoints map[Vendor]*url.URL
	policies  *policyState
	watcher   *watch.Watcher
	base      *http.Transport
	alerts    *notify.Dispatcher // nil without a Notifier
	admin     *admin.Server      // nil without an admin socket
	metrics   *brakeMetrics      // the Collector (metrics.go)
	stopPrune context.CancelFunc // cancels the prune in progress, and the next ones
	pruned    chan struct{}      // closed once the pruning goroutine has returned

	closeOnce sync.Once
	closed    chan struct{} // closed once the first Shutdown has finished
	closeErr  error
}

// Open loads the policy and opens the store. It fails, naming the file, the
// line and the problem, on any policy it cannot read with certainty.
func Open(opts Options) (*Brake, error) {
	if opts.PolicyFile == "" {
		return nil, errors.New("keybrake: Options.PolicyFile is required")
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.HaltFile == "" {
		opts.HaltFile = opts.PolicyFile + ".halt"
	}
	reg, err := withVendors(opts.Vendors)
	if err != nil {
		return nil, err
	}
	remember(opts.Vendors)
	policies := &policyState{
		path:     opts.PolicyFile,
		haltFile: opts.HaltFile,
		keepLast: opts.KeepLastValidPolicy,
		now:      opts.Clock,
		vendors:  reg.sorted(),
	}
	if opts.ShadowPolicyFile != "" {
		if err := policies.loadShadow(opts.ShadowPolicyFile); err != nil { // shadow.go
			return nil, fmt.Errorf("keybrake: %w", err)
		}
	}
	if err := policies.load(); err != nil {
		return nil, fmt.Errorf("keybrake: %w", err)
	}
	endpoints, err := reg.parseEndpoints(opts.Endpoints)
	if err != nil {
		return nil, err
	}
	st := opts.Store
	if st == nil {
		if opts.DBPath == "" {
			return nil, errors.New("keybrake: Options.DBPath or Options.Store is required")
		}
		st, err = bolt.Open(opts.DBPath, nil)
		if err != nil {
			return nil, fmt.Errorf("keybrake: %w", err)
		}
	}
	b := &Brake{opts: opts, store: st, vendors: reg, endpoints: endpoints, policies: policies}
	b.base = vendorTransport()
	b.metrics = newMetrics(b) // metrics.go
	lastDay, _, err := st.Fact(context.Background(), lastDayFact)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("keybrake: reading the store: %w", err)
	}
	if opts.Notifier != nil {
		no := opts.NotifyOptions
		if no.Report == nil {
			no.Report = b.report
		}
		b.alerts = notify.NewDispatcher(opts.Notifier, no)
	}
	b.env = transport.NewEnv(transport.Config{
		Store:         st,
		Policy:        policies.inForce,
		PolicyChanged: policies.changed,
		Now:           opts.Clock,
		Report:        b.report,
		LastDay:       lastDay,
		Observe:       b.alerts.Offer, // a nil Dispatcher ignores
		Metrics:       b.metrics,
		Tracer:        newTracer(opts.TracerProvider), // tracing.go
		Trip:          b.trip,                         // trip.go
		Level:         b.level,                        // trip.go: alert_at
		Opened:        b.opened,                       // approvals.go
		Shadow:        policies.shadowInForce,         // shadow.go
	})
	policies.event = b.recordEvent
	if err := b.openFleet(); err != nil { // stops.go: a fleet's stops, before the first call
		b.env.Close()
		b.alerts.Close(context.Background())
		st.Close()
		return nil, err
	}
	b.watcher, err = watch.Start(watch.Config{
		Files:    watched(opts),
		Poll:     opts.PolicyPoll,
		NoEvents: opts.NoFileEvents,
		Check:    policies.check,
		Report:   b.report,
	})
	if err != nil {
		b.env.Close()
		b.alerts.Close(context.Background())
		st.Close()
		return nil, fmt.Errorf("keybrake: watching the policy: %w", err)
	}
	if err := b.serveAdmin(); err != nil {
		b.Close()
		return nil, err
	}
	b.startPruning()
	return b, nil
}

func (b *Brake) report(err error) {
	if b.opts.ErrorLog != nil {
		b.opts.ErrorLog(err)
	}
	b.logFailure(err)
}

// recordEvent writes a policy event (reload, kill switch, revocation) to
// the audit log, so the log shows from which call on it took effect.
func (b *Brake) recordEvent(rec audit.Record) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := b.store.Append(ctx, &rec)
	if err != nil {
		b.report(fmt.Errorf("keybrake: audit event %s could not be written: %w", rec.Event, err))
	}
	rec.ID = id
	b.logEvent(&rec)
	b.metrics.policyEvent(rec.Event) // metrics: policy reloads by result
	b.alerts.Offer(&rec)
}

// Revoke revokes agent until Restore, whatever the policy file says: its
// next call, and every call already waiting inside Keybrake, is refused
// with 401. For agent runners with their own control plane; an operator
// uses the kill switch file or `keybrake revoke`. Audited.
//
// With a store shared by a fleet (one that implements store.Stops, as
// store/postgres does), Revoke, Restore, Halt and Resume act fleet-wide:
// they write the stop to the store, waiting up to 10 s for it, and every
// process on the store obeys it within a second, naming "Brake.Revoke in
// pid N on HOST" as its source; a Restore or Resume in any process (or
// `keybrake restore|resume --db`) lifts it. They fail closed: a Revoke or
// Halt holds in this process before the store is asked, and goes on
// holding here, as a local stop, when the store cannot be written; the
// failure goes to Options.ErrorLog and Logger (Policy().HaltedBy and
// Agent.RevokedBy then say "Brake.Halt", not the fleet's source).
// Without such a store they act in this process alone.
func (b *Brake) Revoke(agent string) { b.policies.revoke("Revoke", agent, true) }

// Restore undoes Revoke. An agent the policy file revokes stays revoked.
func (b *Brake) Restore(agent string) { b.policies.revoke("Restore", agent, false) }

// Halt refuses every call of every agent until Resume: in this process,
// or in the whole fleet with a shared store (see Revoke).
func (b *Brake) Halt() { b.policies.halt("Halt", true) }

// Resume undoes Halt, and with a shared store lifts the fleet's halt of
// every agent, whoever set it (halts naming agents stay; `keybrake resume
// --db` lifts those). It also lifts every trip: the halts rate limits
// with halt: true made (trip.go), in this process, the kill switch file
// or the fleet's store.
func (b *Brake) Resume() {
	b.policies.halt("Resume", false)
	if err := b.policies.resumeTrips(); err != nil {
		b.report(err)
	}
}

// lastDayFact keeps the latest UTC day counted, across restarts.
const lastDayFact = "keybrake/last_day"

// Policy returns the policy calls are decided by now, with the kill
// switch, Revoke and Halt applied, or the error every call is refused with
// while the policy file is invalid.
func (b *Brake) Policy() (*policy.Policy, error) { return b.policies.inForce() }

// vendorTransport is http.DefaultTransport's clone with a pool sized for
// many concurrent agents: the base under every chain that names no other.
func vendorTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = idlePerHost
	t.MaxIdleConns = idleInAll
	return t
}

// Transport returns the chain for agent on vendor v over next (nil means a
// clone of http.DefaultTransport that keeps up to 256 idle connections a
// host, shared by every chain of the Brake). For a vendor Keybrake does not know, it
// returns a RoundTripper that refuses every request with an error.
func (b *Brake) Transport(agent string, v Vendor, next http.RoundTripper) http.RoundTripper {
	vd, ok := b.vendors[v]
	if !ok {
		return unknownVendor{v, b.vendors.names()}
	}
	if next == nil {
		next = b.base
	}
	return transport.New(b.env, agent, vd, b.endpoints[v], next)
}

// HTTPClient returns an *http.Client whose Transport is the chain for agent
// on vendor v. It follows no redirects (vendor APIs do not redirect; a
// redirect would be a new call to decide) and times out after 80 seconds,
// as stripe-go's own client does.
func (b *Brake) HTTPClient(agent string, v Vendor) *http.Client {
	return &http.Client{
		Transport: b.Transport(agent, v, nil),
		Timeout:   80 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

type unknownVendor struct {
	v     Vendor
	known []string
}

func (u unknownVendor) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, fmt.Errorf("keybrake: vendor %q is not one Keybrake knows (%s); nothing was sent", string(u.v), strings.Join(u.known, ", "))
}

// Dump is DumpContext with context.Background(): it waits as long as the
// store takes.
func (b *Brake) Dump(w io.Writer, q audit.Query) error {
	return b.DumpContext(context.Background(), w, q)
}

// DumpContext writes the audit records q selects to w as JSON Lines,
// oldest first. It first waits for the completions of calls that have
// answered, so their settlements show. ctx bounds that wait and the
// store's reads: when it ends, DumpContext returns an error wrapping
// ctx.Err(), and w may hold the records written until then. It is safe to
// call concurrently with calls through the Brake.
func (b *Brake) DumpContext(ctx context.Context, w io.Writer, q audit.Query) error {
	if err := b.env.Flush(ctx); err != nil {
		return fmt.Errorf("keybrake: dump: waiting for completions: %w", err)
	}
	out := audit.NewJSONLines(w)
	if err := b.store.Query(ctx, q, out.Write); err != nil {
		return fmt.Errorf("keybrake: dump: %w", err)
	}
	return out.Flush()
}

// DefaultCloseTimeout is how long Close waits for the calls in flight when
// Options.CloseTimeout is zero.
const DefaultCloseTimeout = 10 * time.Second

// Close is Shutdown with a deadline of Options.CloseTimeout.
func (b *Brake) Close() error {
	timeout := b.opts.CloseTimeout
	if timeout == 0 {
		timeout = DefaultCloseTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return b.Shutdown(ctx)
}

// Shutdown stops the Brake. From its start a new call is refused with 503
// (decision Error, code keybrake_closing) in the vendor's error format,
// and audited while the store is open. It waits until ctx is done for the
// calls in flight to finish and write their records, including responses
// whose bodies their callers are still reading, then writes what is
// queued, closes the store and stops the Brake's goroutines. A call still
// in flight at ctx's end keeps its reservation counted (the next Open
// finds it unknown, as after a crash); Shutdown then returns an error
// saying how many there were, wrapping ctx.Err(), and closes the rest all
// the same.
//
// Shutdown and Close are safe to call concurrently and more than once: a
// later call waits for the first to finish and returns its result, or
// returns ctx's error if its own ctx ends first (the first goes on).
func (b *Brake) Shutdown(ctx context.Context) error {
	first := false
	b.closeOnce.Do(func() { first = true; b.closed = make(chan struct{}) })
	if !first {
		select {
		case <-b.closed:
			return b.closeErr
		case <-ctx.Done():
			return fmt.Errorf("keybrake: waiting for another Shutdown to finish: %w", ctx.Err())
		}
	}
	defer close(b.closed)
	// The watcher and the admin socket stay up while calls drain, so
	// that a revocation still stops them and the operator sees them.
	errDrain := b.env.Drain(ctx)
	if b.admin != nil {
		b.admin.Close()
	}
	if b.watcher != nil {
		b.watcher.Close()
	}
	b.closeFleet() // stops.go
	if b.stopPrune != nil {
		b.stopPrune() // a prune in progress stops between chunks
		<-b.pruned
	}
	errEnv := b.env.Close()
	actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	errAlerts := b.alerts.Close(actx)
	cancel()
	var errDay error
	if day := b.env.LastDay(); day != "" {
		errDay = b.store.SetFact(context.Background(), lastDayFact, day)
	}
	errStore := b.store.Close()
	b.base.CloseIdleConnections()
	b.closeErr = errors.Join(errDrain, errEnv, errAlerts, errDay, errStore)
	return b.closeErr
}
