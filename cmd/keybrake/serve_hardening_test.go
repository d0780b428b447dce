package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/fakes/faketwilio"
)

// These tests run keybrake serve, the binary, at its edges: a drain on
// SIGTERM with a call in flight, the probes, a keys file gone bad, a
// Twilio account the proxy does not hold, a second replica, a unix socket,
// and the listening flags. Every wait is a loop on a condition, bounded.

// bound is how long a condition loop waits before the test fails; never
// asserted as a duration.
const bound = 30 * time.Second

var adminAt = regexp.MustCompile(`admin on (\S+) \(`)

// proc is keybrake serve run by a test, its stderr kept under a lock so
// the test can read it while serve still writes.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	code int // the exit status, once done is closed

	mu  sync.Mutex
	log strings.Builder
}

// runServe starts keybrake serve in dir with args after its own
// --listen 127.0.0.1:0 --admin 127.0.0.1:0 (a later flag wins) and kills
// it when the test ends.
func runServe(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		err := p.cmd.Wait() // after the pipe is drained, as StderrPipe asks
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			p.code = exit.ExitCode()
		case err != nil:
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// await waits for a line of stderr matching re and returns its
// submatches; it fails the test if serve exits first.
func (p *proc) await(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		if m := re.FindStringSubmatch(p.stderr()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.stderr()); m != nil {
				return m
			}
			t.Fatalf("keybrake serve exited %d before saying %q:\n%s", p.code, re, p.stderr())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("keybrake serve never said %q:\n%s", re, p.stderr())
		}
	}
}

// exit waits for serve to end and returns its exit status.
func (p *proc) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(bound):
		t.Fatalf("keybrake serve did not exit:\n%s", p.stderr())
		return 0
	}
}

// started waits for serve to listen and returns its agent and admin
// addresses (host:port).
func (p *proc) started(t *testing.T) (agents, admin string) {
	t.Helper()
	admin = p.await(t, adminAt)[1]
	agents = strings.TrimPrefix(p.await(t, listening)[1], "http://")
	return agents, admin
}

// stripeDir is a directory with servePolicy and a key for refund-bot on
// stripe, and returns the key.
func stripeDir(t *testing.T) (dir, key string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keybrake.yaml"), []byte(servePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := keybrakeIn(t, dir, nil, "keys", "add", "refund-bot", "stripe")
	if code != 0 {
		t.Fatalf("keys add: %d %s", code, errOut)
	}
	return dir, strings.TrimSpace(out)
}

// fakeStripe serves a fakestripe with ch_1 for the test.
func fakeStripe(t *testing.T) (*fakestripe.Server, string) {
	t.Helper()
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 90000, Currency: "usd", Captured: true})
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	t.Cleanup(fs.Close) // first: it releases what a fault holds
	return fs, srv.URL
}

// get answers a GET of url: status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// until polls cond until it holds, failing the test after bound.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeHeaderLimit: a request whose header is far over serve's
// MaxHeaderBytes is answered 431 by net/http, before any handler.
func TestServeHeaderLimit(t *testing.T) {
	fs, vendor := fakeStripe(t)
	dir, key := stripeDir(t)
	s := startServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--endpoint", "stripe="+vendor)

	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(bound))
	// Written while the answer is read: net/http answers and hangs up
	// before reading all of it.
	go func() {
		fmt.Fprintf(conn, "POST /v1/refunds HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nX-Pad: %s\r\nContent-Length: 0\r\n\r\n", key, strings.Repeat("p", 1<<20))
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 1 MiB header: %d, want 431", resp.StatusCode)
	}
	if n := fs.Requests(); n != 0 {
		t.Fatalf("%d requests reached the vendor", n)
	}
}

// gate serves fs, holding the first refund until release.
func gate(t *testing.T, fs *fakestripe.Server) (url string, arrived <-chan struct{}, release func()) {
	t.Helper()
	in, open := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := false
		if r.Method == "POST" && r.URL.Path == "/v1/refunds" {
			once.Do(func() { first = true })
		}
		if first {
			close(in)
			<-open
		}
		fs.ServeHTTP(w, r)
	}))
	release = sync.OnceFunc(func() { close(open) })
	t.Cleanup(srv.Close)
	t.Cleanup(release) // before Close, which waits for the held handler
	return srv.URL, in, release
}

// TestServeDrainsOnSIGTERM: a refund held at the vendor when SIGTERM
// arrives still completes, 200 to the agent, serve exits 0, and the audit
// log says the refund settled.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 90000, Currency: "usd", Captured: true})
	vendor, arrived, release := gate(t, fs)
	dir, key := stripeDir(t)
	p := runServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--endpoint", "stripe="+vendor)
	agents, admin := p.started(t)

	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+agents+"/v1/refunds", strings.NewReader("charge=ch_1&amount=1500"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- answer{resp.StatusCode, string(b), err}
	}()
	select {
	case <-arrived:
	case <-time.After(bound):
		t.Fatal("the refund never reached the vendor")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Released only once serve has stopped accepting, so the refund is
	// drained, not merely finished before the signal was read.
	until(t, "serve to stop accepting", func() bool {
		c, err := net.Dial("tcp", agents)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case <-p.done:
		t.Fatalf("serve exited %d with a call in flight:\n%s", p.code, p.stderr())
	default:
	}
	// While it drains, readiness says so: a balancer stops sending.
	if status, body := get(t, "http://"+admin+"/readyz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("/readyz while draining: %d %s, want 503 saying it drains", status, body)
	}
	release()
	var a answer
	select {
	case a = <-answered:
	case <-time.After(bound):
		t.Fatal("the held refund never got its answer")
	}
	if a.err != nil || a.status != 200 || !strings.Contains(a.body, `"object": "refund"`) && !strings.Contains(a.body, `"object":"refund"`) {
		t.Fatalf("the held refund: %d %v %s", a.status, a.err, a.body)
	}
	if code := p.exit(t); code != 0 {
		t.Fatalf("serve exited %d on SIGTERM:\n%s", code, p.stderr())
	}
	if fs.Refunded("ch_1") != 1500 {
		t.Fatalf("refunded %d", fs.Refunded("ch_1"))
	}

	out, errOut, code := keybrakeIn(t, dir, nil, "audit", "--format", "jsonl")
	if code != 0 {
		t.Fatalf("audit: %d %s", code, errOut)
	}
	var refunds []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if r["path"] == "/v1/refunds" {
			refunds = append(refunds, r)
		}
	}
	if len(refunds) != 1 || refunds[0]["outcome"] != "settled" || refunds[0]["status"] != 200.0 {
		t.Fatalf("audit after the drain, want the refund settled:\n%s", out)
	}
}

// TestServeProbes: /healthz and /readyz are the admin listener's and not
// the agent port's; /readyz and every agent call fail while the keys file
// is unusable, and recover when it is fixed.
func TestServeProbes(t *testing.T) {
	fs, vendor := fakeStripe(t)
	dir, key := stripeDir(t)
	keysFile := filepath.Join(dir, "keybrake.keys")
	p := runServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--endpoint", "stripe="+vendor)
	agents, admin := p.started(t)

	if status, body := get(t, "http://"+admin+"/healthz"); status != 200 {
		t.Fatalf("/healthz: %d %s", status, body)
	}
	if status, body := get(t, "http://"+admin+"/readyz"); status != 200 {
		t.Fatalf("/readyz: %d %s", status, body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := get(t, "http://"+agents+path); status != 404 {
			t.Fatalf("%s on the agent port: %d %s, want 404", path, status, body)
		}
	}
	if n := fs.Requests(); n != 0 {
		t.Fatalf("the agent port forwarded %d probe requests", n)
	}

	good, err := os.ReadFile(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	breaks := []struct {
		name       string
		spoil, fix func() error
	}{
		{"readable by others",
			func() error { return os.Chmod(keysFile, 0o644) },
			func() error { return os.Chmod(keysFile, 0o600) }},
		{"garbage",
			func() error { return os.WriteFile(keysFile, []byte("version: 1\nkeys: [[[\n"), 0o600) },
			func() error { return os.WriteFile(keysFile, good, 0o600) }},
	}
	for _, b := range breaks {
		t.Run(b.name, func(t *testing.T) {
			if err := b.spoil(); err != nil {
				t.Fatal(err)
			}
			until(t, "/readyz to fail", func() bool {
				status, _ := get(t, "http://"+admin+"/readyz")
				return status == 503
			})
			if _, body := get(t, "http://"+admin+"/readyz"); !strings.Contains(body, "keys") {
				t.Fatalf("/readyz does not say the keys file is the problem: %s", body)
			}
			before := fs.Requests()
			status, body := refundAt(t, "http://"+agents, "Bearer "+key, "100")
			if status != 503 || !strings.Contains(body, "keybrake_keys_unavailable") {
				t.Fatalf("a call with the keys file broken: %d %s, want 503 keybrake_keys_unavailable", status, body)
			}
			if fs.Requests() != before {
				t.Fatal("a call with the keys file broken reached the vendor")
			}
			if err := b.fix(); err != nil {
				t.Fatal(err)
			}
			until(t, "/readyz to recover", func() bool {
				status, _ := get(t, "http://"+admin+"/readyz")
				return status == 200
			})
			if status, body := refundAt(t, "http://"+agents, "Bearer "+key, "100"); status != 200 {
				t.Fatalf("a call once the keys file is fixed: %d %s", status, body)
			}
		})
	}
}

const twilioPolicy = `version: 1
vendors:
  twilio:
    prices:
      sms: 0.0079 USD
agents:
  sms-bot:
    twilio:
      daily_cap: 1.00 USD
      allow:
        - POST /2010-04-01/Accounts/{sid}/Messages.json
`

// TestServeTwilioHoldsOneAccount: the proxy holds one account's token, and
// a call naming another account in its path or its credential is refused
// before it is sent; a call on the held account goes through.
func TestServeTwilioHoldsOneAccount(t *testing.T) {
	const (
		heldSID = "AC" + "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
		other   = "AC" + "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
	)
	token := strings.Repeat("c3", 16) // built from parts for secret scanners
	ft := faketwilio.New()
	ft.SetCredentials(heldSID, token)
	srv := httptest.NewServer(ft)
	t.Cleanup(srv.Close)
	t.Cleanup(ft.Close)

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keybrake.yaml"), []byte(twilioPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := keybrakeIn(t, dir, nil, "keys", "add", "sms-bot", "twilio")
	if code != 0 {
		t.Fatalf("keys add: %d %s", code, errOut)
	}
	key := strings.TrimSpace(out)
	p := runServe(t, dir, []string{"TWILIO_ACCOUNT_SID=" + heldSID, "TWILIO_AUTH_TOKEN=" + token}, "--endpoint", "twilio="+srv.URL)
	agents, _ := p.started(t)

	send := func(pathSID, user string) (int, string) {
		form := "To=%2B15551234567&From=%2B15550001111&Body=hello"
		req, _ := http.NewRequest("POST", "http://"+agents+"/2010-04-01/Accounts/"+pathSID+"/Messages.json", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+key)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tt := range []struct{ name, pathSID, user string }{
		{"another account in the path", other, heldSID},
		{"another account everywhere", other, other},
		{"another account in the credential", heldSID, other},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := send(tt.pathSID, tt.user)
			if status != 403 || !strings.Contains(body, "keybrake_secret_mismatch") || !strings.Contains(body, `"code":900403`) {
				t.Fatalf("%d %s, want Twilio's 403 with keybrake_secret_mismatch", status, body)
			}
			if strings.Contains(body, token) {
				t.Fatal("the refusal shows the token")
			}
			if n := ft.Requests(); n != 0 {
				t.Fatalf("%d requests reached Twilio", n)
			}
		})
	}
	if status, body := send(heldSID, heldSID); status != 201 {
		t.Fatalf("a message on the held account: %d %s", status, body)
	}
	if n := ft.RequestsTo("POST", "/2010-04-01/Accounts/"+heldSID+"/Messages.json"); n != 1 {
		t.Fatalf("%d messages reached Twilio, want 1", n)
	}
	if strings.Contains(p.stderr(), token) || strings.Contains(p.stderr(), key) {
		t.Fatal("serve logged the token or the agent key")
	}
}

// TestServeRefusesASecondReplica: a second serve on the database the
// first holds exits non-zero without waiting for the first, saying why
// and what to do instead.
func TestServeRefusesASecondReplica(t *testing.T) {
	_, vendor := fakeStripe(t)
	dir, _ := stripeDir(t)
	env := []string{"STRIPE_SECRET_KEY=" + serveSecret}
	first := runServe(t, dir, env, "--endpoint", "stripe="+vendor)
	first.started(t)

	second := runServe(t, dir, env, "--endpoint", "stripe="+vendor)
	code := second.exit(t)
	msg := second.stderr()
	if code == 0 || !strings.Contains(msg, "locked") || !strings.Contains(msg, "keybrake.db") || !strings.Contains(msg, "--db postgres://") {
		t.Fatalf("second serve: exit %d:\n%s", code, msg)
	}
	if strings.Contains(msg, "serving agents") {
		t.Fatalf("the second serve listened:\n%s", msg)
	}
	select {
	case <-first.done:
		t.Fatalf("the first serve exited %d:\n%s", first.code, first.stderr())
	default:
	}
}

// TestServeOnAUnixSocket: --listen unix:path makes a socket only its owner
// may connect to, in place of one an earlier serve left, and serves agents
// on it.
func TestServeOnAUnixSocket(t *testing.T) {
	_, vendor := fakeStripe(t)
	dir, key := stripeDir(t)
	sockDir, err := os.MkdirTemp("", "kb") // short: a socket path has ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "agents.sock")
	// The socket an earlier serve left behind, which this one replaces.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	p := runServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--endpoint", "stripe="+vendor, "--listen", "unix:"+sock)
	p.await(t, listening)

	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, want a socket with 0600", sock, st.Mode())
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	req, _ := http.NewRequest("POST", "http://keybrake/v1/refunds", strings.NewReader("charge=ch_1&amount=100"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a refund over the socket: %d %s", resp.StatusCode, b)
	}
}

// TestServeKeepsAFileWhereTheSocketWouldGo: --listen unix:path replaces
// a socket left by an earlier serve, and nothing else: a file there (a
// typo, the keys file) is refused and left as it was.
func TestServeKeepsAFileWhereTheSocketWouldGo(t *testing.T) {
	dir, _ := stripeDir(t)
	keysFile := filepath.Join(dir, "keybrake.keys")
	before, err := os.ReadFile(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	p := runServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--listen", "unix:"+keysFile)
	if code := p.exit(t); code == 0 || !strings.Contains(p.stderr(), "not a socket") {
		t.Fatalf("serve on unix:%s: exit %d:\n%s", keysFile, code, p.stderr())
	}
	if after, err := os.ReadFile(keysFile); err != nil || string(after) != string(before) {
		t.Fatalf("the file at the socket's path is gone or changed: %v", err)
	}
}

// TestServeListeningFlags: --tls-cert and --tls-key go together (a usage
// error otherwise), and --insecure-listen beyond loopback starts, warning.
func TestServeListeningFlags(t *testing.T) {
	dir, key := stripeDir(t)
	cert := filepath.Join(dir, "cert.pem")
	for _, args := range [][]string{{"--tls-cert", cert}, {"--tls-key", cert}} {
		_, errOut, code := keybrakeIn(t, dir, nil, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "-"}, args...)...)
		if code != 2 || !strings.Contains(errOut, "--tls-cert and --tls-key go together") {
			t.Fatalf("serve %v: %d %s, want a usage error", args, code, errOut)
		}
	}

	_, vendor := fakeStripe(t)
	p := runServe(t, dir, []string{"STRIPE_SECRET_KEY=" + serveSecret}, "--endpoint", "stripe="+vendor, "--listen", "0.0.0.0:0", "--insecure-listen")
	m := p.await(t, regexp.MustCompile(`WARNING: --insecure-listen: plain HTTP on \S+:(\d+); agent keys cross the network in clear`))
	if status, body := refundAt(t, "http://127.0.0.1:"+m[1], "Bearer "+key, "100"); status != 200 {
		t.Fatalf("a refund on the insecure listener: %d %s", status, body)
	}
	// status repeats it, from the running proxy's socket.
	out, errOut, code := keybrakeIn(t, dir, nil, "status")
	if code != 0 || !strings.Contains(out, "from the agent's Brake on") ||
		!regexp.MustCompile(`WARNING: keybrake serve --insecure-listen: plain HTTP on \S+:`+m[1]+`; agent keys cross the network in clear\n`).MatchString(out) {
		t.Errorf("status of an insecure proxy: %d %s\n%s", code, errOut, out)
	}
}
