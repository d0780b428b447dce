package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/approval"
	"github.com/keybrake/keybrake/internal/atomicfile"
	"github.com/keybrake/keybrake/internal/ui"
	"github.com/keybrake/keybrake/store"
)

// uiFlags are keybrake ui's own flags.
type uiFlags struct {
	listen          string
	tlsCert, tlsKey string
	allowActions    bool
}

func newUICmd(e *env, g *globals) *cobra.Command {
	f := &uiFlags{}
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "serve the incident page: what the agents did, second by second, and what held them",
		Long: `Serves a local web page of the database: where every cap stands now and who
is stopped, calls per second by decision over the last 15 minutes (or any
window, down to one second) with the first refused call and every policy
and kill-switch event marked, and the records of any window, each opening
its full redacted record. New calls appear as they are written.

It prints the page's address once, with a random token that every request
must carry (the link sets it as a cookie), and opens nothing by itself. It
reads as the other commands do: through the running agent's Brake on
<db>.sock when one answers, else the file read-only; or a fleet's shared
store (--db postgres://...).

The page is read-only unless started with --allow-actions: then it has
halt, resume, revoke and restore buttons, and approve and deny buttons for
held calls, each behind a confirmation naming exactly what it does, that do
what 'keybrake halt', 'resume', 'revoke', 'restore', 'approve' and 'deny' do
with the same --policy and --db.

It listens on loopback unless given --tls-cert and --tls-key. SIGTERM or
SIGINT stops it.`,
		Example: `  keybrake ui --db keybrake.db
  keybrake ui --db postgres://keybrake@db.internal/keybrake --allow-actions`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return serveUI(ctx, e, g, f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.listen, "listen", "127.0.0.1:0", "where the page is served: `host:port` (port 0: any free one)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve TLS with this certificate `file` (needed to listen beyond loopback)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the TLS key `file`")
	fs.BoolVar(&f.allowActions, "allow-actions", false, "let the page halt, resume, revoke and restore agents, and approve or deny held calls")
	return cmd
}

func serveUI(ctx context.Context, e *env, g *globals, f *uiFlags) error {
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return &usageError{err: errors.New("--tls-cert and --tls-key go together"), path: "keybrake ui"}
	}
	tls := f.tlsCert != ""
	host, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return &usageError{err: fmt.Errorf("--listen %q: want host:port", f.listen), path: "keybrake ui"}
	}
	if !loopbackHost(host) && !tls {
		return &usageError{err: fmt.Errorf("--listen %s is not a loopback address: give --tls-cert and --tls-key (the page's token would cross the network in clear)", f.listen), path: "keybrake ui"}
	}
	src, where, closeSrc, err := pageSource(ctx, g)
	if err != nil {
		return err
	}
	defer closeSrc()
	opts := ui.Options{Source: src, Where: where, Database: dbName(g.db)}
	if f.allowActions {
		opts.Act = pageActions(e, g)
	}
	page, err := ui.New(opts)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: page, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }} // a signal ends the pages' event streams too
	errs := make(chan error, 1)
	go func() {
		if tls {
			errs <- srv.ServeTLS(l, f.tlsCert, f.tlsKey)
		} else {
			errs <- srv.Serve(l)
		}
	}()
	scheme := "http"
	if tls {
		scheme = "https"
	}
	mode := "read-only (--allow-actions to act from it)"
	if f.allowActions {
		mode = "with actions: halt, resume, revoke, restore, approve, deny"
	}
	fmt.Fprintf(e.stdout, "%s\n", page.Link(scheme+"://"+l.Addr().String()))
	fmt.Fprintf(e.stderr, "keybrake ui: the page of %s, %s; open the link above (it carries the page's token). Ctrl-C stops it.\n", where, mode)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errs:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx) // the event streams ended with ctx; nothing else to drain
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// servePage is keybrake serve's incident page: the same page as keybrake
// ui's, its token kept in a file (made when missing) instead of printed,
// since serve's output goes to a log. On a file it reads serve's own Brake
// through its socket alone: the file is that Brake's, so the fallback of
// the other commands (the file opened read-only) would only wait for the
// lock and fail.
func servePage(ctx context.Context, e *env, g *globals, f *serveFlags) (http.Handler, func(), error) {
	token, err := pageToken(tokenFile(f))
	if err != nil {
		return nil, nil, err
	}
	var (
		src      admin.Source = admin.Dial(g.db + ".sock") // this serve's own Brake, which holds the file
		where                 = "this keybrake serve's Brake on " + g.db + ".sock"
		closeSrc              = func() {}
	)
	if isDatabaseURL(g.db) {
		if src, where, closeSrc, err = pageSource(ctx, g); err != nil {
			return nil, nil, err
		}
	}
	opts := ui.Options{Source: src, Where: where, Database: dbName(g.db), Token: token}
	if f.allowActions {
		opts.Act = pageActions(e, g)
	}
	page, err := ui.New(opts)
	if err != nil {
		closeSrc()
		return nil, nil, err
	}
	return page, closeSrc, nil
}

func tokenFile(f *serveFlags) string {
	if f.uiTokenFile != "" {
		return f.uiTokenFile
	}
	return f.keys + ".ui-token"
}

// pageToken reads the page's token from path, or makes one there (0600)
// when there is none. A token file anyone else may read is refused, as
// the keys file is.
func pageToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		token := ui.NewToken()
		if err := atomicfile.Write(path, []byte(token+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("making the incident page's token file: %w", err)
		}
		return token, nil
	}
	if err != nil {
		return "", fmt.Errorf("the incident page's token file: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("the incident page's token file %s is readable by others (mode %04o): chmod 600 it", path, st.Mode().Perm())
	}
	token := strings.TrimSpace(string(data))
	if len(token) < 32 {
		return "", fmt.Errorf("the incident page's token file %s holds %d characters; a token has at least 32 (delete the file to make a new one)", path, len(token))
	}
	return token, nil
}

// pageSource is what the page reads, as the other commands read it. A
// shared store is opened once, its pool serving every request. A file is
// found again for every request: the agent's Brake on its socket while
// one answers, else the file opened read-only for that request alone, so
// that an agent started meanwhile gets its lock.
func pageSource(ctx context.Context, g *globals) (admin.Source, string, func(), error) {
	state := func() admin.State { return offlineState(g.policy).State }
	if isDatabaseURL(g.db) {
		st, err := openShared(ctx, g.db)
		if err != nil {
			return nil, "", nil, err
		}
		return fleetStatus{&admin.Local{Store: st, State: state}}, "the shared store " + dbName(g.db), func() { st.Close() }, nil
	}
	where := g.db + " (through the agent's Brake on " + g.db + ".sock while one answers, else the file read-only)"
	return fileSource{db: g.db, state: state}, where, func() {}, nil
}

// fileSource is a database file read through withSource for every call.
type fileSource struct {
	db    string
	state func() admin.State
}

func (f fileSource) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	return withSource(f.db, f.state, func(src source) error { return src.Query(ctx, q, fn) })
}

func (f fileSource) Status(ctx context.Context) (*admin.Status, error) {
	return f.status(ctx, admin.Source.Status)
}

func (f fileSource) Glance(ctx context.Context) (*admin.Status, error) {
	return f.status(ctx, admin.Source.Glance)
}

func (f fileSource) status(ctx context.Context, status func(admin.Source, context.Context) (*admin.Status, error)) (*admin.Status, error) {
	var st *admin.Status
	err := withSource(f.db, f.state, func(src source) error {
		var err error
		st, err = status(src.Source, ctx)
		return err
	})
	return st, err
}

// Approvals lists the open approvals, as `keybrake approvals` does.
func (f fileSource) Approvals(ctx context.Context, since time.Time) ([]*approval.Approval, error) {
	var list []*approval.Approval
	err := withSource(f.db, f.state, func(src source) error {
		l, ok := src.Source.(approvalLister)
		if !ok {
			return fmt.Errorf("%s cannot list approvals", src.where)
		}
		var err error
		list, err = l.Approvals(ctx, since)
		return err
	})
	return list, err
}

func (f fileSource) Verify(ctx context.Context) (store.VerifyReport, error) {
	var rep store.VerifyReport
	err := withSource(f.db, f.state, func(src source) error {
		var err error
		rep, err = src.Verify(ctx)
		return err
	})
	return rep, err
}

// pageActions carries out the page's buttons exactly as the commands of
// the same names do with the same --policy and --db (the kill switch
// file and the policy file, or the fleet's stops in the shared store),
// one at a time, and answers with what the command would have printed.
func pageActions(e *env, g *globals) func(context.Context, ui.Action) (string, error) {
	var mu sync.Mutex
	return func(_ context.Context, a ui.Action) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		var out bytes.Buffer
		ae := &env{stdout: &out, stderr: &out, getenv: e.getenv}
		var agents []string
		if a.Agent != "" {
			agents = []string{a.Agent}
		}
		fleet := isDatabaseURL(g.db)
		var err error
		switch {
		case a.Verb == "halt" && fleet:
			err = fleetHalt(ae, g.db, agents)
		case a.Verb == "halt":
			err = halt(ae, haltPath(g, ""), agents)
		case a.Verb == "resume" && fleet:
			err = fleetResume(ae, g.db, nil)
		case a.Verb == "resume":
			err = resume(ae, haltPath(g, ""))
		case (a.Verb == "revoke" || a.Verb == "restore") && fleet:
			err = fleetRevoke(ae, g.db, a.Agent, a.Verb == "revoke")
		case a.Verb == "revoke" || a.Verb == "restore":
			err = setRevoked(ae, g.policy, a.Agent, a.Verb == "revoke")
		case a.Verb == "approve" || a.Verb == "deny":
			err = decide(ae, g, a.Approval, a.Verb == "approve", "the incident page of "+whoami(), 0) // approve.go
		default:
			return "", fmt.Errorf("unknown action %q", a.Verb)
		}
		return strings.Join(strings.Split(strings.TrimSpace(out.String()), "\n"), " · "), err // the command's lines, on one
	}
}
