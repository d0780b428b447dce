package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	brake "github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/internal/keys"
	"github.com/keybrake/keybrake/store"
)

// serveFlags are keybrake serve's own flags.
type serveFlags struct {
	keys            string
	listen          string
	admin           string
	endpoints       []string
	tlsCert, tlsKey string
	insecureListen  bool
	shutdownTimeout time.Duration
	maxInFlight     int
	uiTokenFile     string
	allowActions    bool
	shadow          string // --shadow: the shadow policy file
}

func newServeCmd(e *env, g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run the brake as a local proxy that holds the vendors' secrets",
		Long: `Runs the brake as a proxy: an agent in any language points its vendor SDK's
base URL at --listen and presents its Keybrake agent key (kb_..., from
'keybrake keys add') where the SDK puts the vendor's secret. Every call is
decided by the policy, exactly as the library decides it, and below the
decision the agent's key is replaced by the vendor's secret, which the
proxy reads from the environment (STRIPE_SECRET_KEY; TWILIO_ACCOUNT_SID and
TWILIO_AUTH_TOKEN; RESEND_API_KEY) or from a file the keys file names.

It listens on loopback (or a unix socket, unix:/path) unless given
--tls-cert and --tls-key, or --insecure-listen. /healthz, /readyz and /metrics are
served on --admin, not on the agent port, beside the incident page (see
'keybrake ui'), whose token is kept in --ui-token-file rather than printed
to a log. SIGTERM or SIGINT stops
accepting, drains calls in flight for at most --shutdown-timeout, and exits
0.`,
		Example: `  keybrake keys add refund-bot stripe --keys keybrake.keys
  STRIPE_SECRET_KEY=sk_live_... keybrake serve --keys keybrake.keys --listen 127.0.0.1:8181`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return serve(ctx, e, g, f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.keys, "keys", orDefault(e.getenv("KEYBRAKE_KEYS"), "keybrake.keys"), "the agent keys `file` ($KEYBRAKE_KEYS)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8181", "where agents connect: `host:port` or unix:/path")
	fs.StringVar(&f.admin, "admin", "127.0.0.1:8182", "where /healthz, /readyz and /metrics are served: `host:port`, unix:/path, or - for none")
	fs.StringArrayVar(&f.endpoints, "endpoint", nil, "send a vendor's traffic elsewhere: `vendor=URL` (a mock), repeatable")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve TLS with this certificate `file` (needed to listen beyond loopback)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the TLS key `file`")
	fs.BoolVar(&f.insecureListen, "insecure-listen", false, "allow plain HTTP on a non-loopback address (agents' keys then cross the network in clear)")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long calls in flight may take to finish on SIGTERM")
	fs.IntVar(&f.maxInFlight, "max-in-flight", 256, "calls in flight beyond which the proxy answers 503")
	fs.StringVar(&f.uiTokenFile, "ui-token-file", "", "the incident page's token `file` on --admin, made (0600) when missing (default: the keys file + \".ui-token\")")
	fs.StringVar(&f.shadow, "shadow", "", "a candidate policy `file` that decides every call a second time and changes nothing (audit summary --shadow shows where it differs)")
	fs.BoolVar(&f.allowActions, "allow-actions", false, "let the incident page on --admin halt, resume, revoke and restore agents, and approve or deny held calls")
	return cmd
}

func serve(ctx context.Context, e *env, g *globals, f *serveFlags) error {
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return &usageError{err: errors.New("--tls-cert and --tls-key go together"), path: "keybrake serve"}
	}
	tls := f.tlsCert != ""
	if err := checkListen("--listen", f.listen, tls, f.insecureListen); err != nil {
		return err
	}
	if f.admin != "-" {
		if err := checkListen("--admin", f.admin, false, false); err != nil {
			return err
		}
	}
	endpoints, err := parseEndpointFlags(f.endpoints)
	if err != nil {
		return err
	}
	set, err := keys.OpenSet(f.keys, keys.SetOptions{})
	if err != nil {
		return err
	}
	defer set.Close()
	usage := keys.NewUsage(f.keys)
	stopUsage, usageDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(usageDone)
		usage.Run(usedFlush, stopUsage, func(err error) { fmt.Fprintln(e.stderr, "keybrake:", err) })
	}()
	defer func() { close(stopUsage); <-usageDone }() // the last uses written before exit
	opts := brake.Options{
		PolicyFile:       g.policy,
		ShadowPolicyFile: f.shadow,
		DBPath:           g.db,
		Endpoints:        endpoints,
		ErrorLog:         func(err error) { fmt.Fprintln(e.stderr, "keybrake:", err) },
	}
	agents, err := listen(f.listen) // before Open, so that status can name the address it took
	if err != nil {
		return err
	}
	defer agents.Close() // the server has closed it; on an early return it is still open
	if f.insecureListen && !tls {
		opts.Warnings = []string{fmt.Sprintf("keybrake serve --insecure-listen: plain HTTP on %s; agent keys cross the network in clear", agents.Addr())}
	}
	if isDatabaseURL(g.db) {
		// Replicas share the store: one cap, whatever their number.
		st, err := openShared(context.Background(), g.db)
		if err != nil {
			return err
		}
		opts.DBPath, opts.Store = "", st // the Brake closes it
	}
	kb, err := brake.Open(opts)
	if err != nil && opts.Store != nil {
		opts.Store.Close() // Open may fail before it takes the store over; closed twice is ErrClosed
	}
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w\nAnother keybrake serve or agent holds %s. Replicas must not each keep their own cap: give them one shared store with --db postgres://URL", err, g.db)
	}
	if err != nil {
		return err
	}
	handler, err := kb.Proxy(brake.ProxyOptions{
		Keys:        noteUse{KeyFinder: keyFinder{set}, usage: usage, now: time.Now},
		Secret:      secretsFrom(set, e.getenv),
		MaxInFlight: f.maxInFlight,
	})
	if err != nil {
		kb.Close()
		return err
	}

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second, // slowloris
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errs := make(chan error, 2)
	go func() {
		if tls {
			errs <- srv.ServeTLS(agents, f.tlsCert, f.tlsKey)
		} else {
			errs <- srv.Serve(agents)
		}
	}()
	var (
		adminSrv *http.Server
		draining atomic.Bool // from SIGTERM on: /readyz answers 503, so a balancer stops sending
	)
	if f.admin != "-" {
		al, err := listen(f.admin)
		if err != nil {
			srv.Close()
			kb.Close()
			return err
		}
		page, closePage, err := servePage(ctx, e, g, f)
		if err != nil {
			al.Close()
			srv.Close()
			kb.Close()
			return err
		}
		defer closePage()
		adminSrv = &http.Server{Handler: adminHandler(kb, set, &draining, page), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
		go func() { errs <- adminSrv.Serve(al) }()
		fmt.Fprintf(e.stderr, "keybrake: admin on %s (/healthz, /readyz, /metrics)\n", al.Addr())
		fmt.Fprintf(e.stderr, "keybrake: the incident page on http://%s/?token=$(cat %s)%s\n", al.Addr(), tokenFile(f), map[bool]string{true: " (with actions)", false: " (read-only)"}[f.allowActions])
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	fmt.Fprintf(e.stderr, "keybrake: serving agents on %s://%s (policy %s, keys %s)\n", scheme, agents.Addr(), g.policy, f.keys)
	if f.insecureListen && !tls {
		fmt.Fprintf(e.stderr, "keybrake: WARNING: --insecure-listen: plain HTTP on %s; agent keys cross the network in clear\n", agents.Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errs:
	}
	draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	errHTTP := srv.Shutdown(sctx) // stop accepting; wait for handlers
	errBrake := kb.Shutdown(sctx) // their completions written; the store closed
	if adminSrv != nil {
		adminSrv.Close()
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(serveErr, errHTTP, errBrake)
}

// checkListen refuses an address beyond loopback without TLS, unless the
// operator says so.
func checkListen(flag, addr string, tls, insecure bool) error {
	if strings.HasPrefix(addr, "unix:") {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return &usageError{err: fmt.Errorf("%s %q: want host:port or unix:/path", flag, addr), path: "keybrake serve"}
	}
	if loopbackHost(host) || tls || insecure {
		return nil
	}
	if flag == "--admin" {
		return &usageError{err: fmt.Errorf("--admin %s is not a loopback address; the admin listener stays on this machine", addr), path: "keybrake serve"}
	}
	return &usageError{err: fmt.Errorf("--listen %s is not a loopback address: give --tls-cert and --tls-key, or --insecure-listen", addr), path: "keybrake serve"}
}

// loopbackHost reports whether host is this machine alone.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		// A socket an earlier serve left is replaced; anything else there
		// (a typo, the keys file) is the operator's and stays.
		switch st, err := os.Lstat(path); {
		case err == nil && st.Mode()&os.ModeSocket == 0:
			return nil, fmt.Errorf("unix:%s is not a socket; keybrake serve replaces only a socket there", path)
		case err == nil:
			if err := os.Remove(path); err != nil {
				return nil, err
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
		// The socket is made 0600 as it is created (umask), not after:
		// between a plain Listen and a Chmod, anyone on the host could
		// connect. The umask is the process's; for this instant it only
		// makes what else is created stricter.
		old := syscall.Umask(0o177)
		l, err := net.Listen("unix", path)
		syscall.Umask(old)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(path, 0o600); err != nil {
			l.Close()
			return nil, err
		}
		return l, nil
	}
	return net.Listen("tcp", addr)
}

func parseEndpointFlags(in []string) (map[brake.Vendor]string, error) {
	out := map[brake.Vendor]string{}
	for _, s := range in {
		v, u, ok := strings.Cut(s, "=")
		if !ok || v == "" || u == "" {
			return nil, &usageError{err: fmt.Errorf("--endpoint %q: want vendor=URL", s), path: "keybrake serve"}
		}
		out[brake.Vendor(v)] = u
	}
	return out, nil
}

// adminHandler serves the probes: /healthz while the process runs,
// /readyz while the policy and the keys file are valid, the store answers
// (Brake.Ready) and the proxy is not draining, /metrics in the
// Prometheus text format, and the incident page on everything else.
func adminHandler(kb *brake.Brake, set *keys.Set, draining *atomic.Bool, page http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", page) // the incident page (ui.go), behind its token
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", kb.MetricsHandler()) // the Brake's collector (metrics.go)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		var problems []string
		if draining.Load() {
			problems = append(problems, "draining: keybrake serve is shutting down and takes no new calls")
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := kb.Ready(ctx); err != nil {
			problems = append(problems, err.Error())
		}
		if err := set.Err(); err != nil {
			problems = append(problems, "keys: "+err.Error())
		}
		if len(problems) > 0 {
			http.Error(w, strings.Join(problems, "\n"), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}
