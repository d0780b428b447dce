package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keybrake/keybrake/internal/testenv"
)

// These tests run the vendors' official SDKs for other languages (the
// Node and Python clients an agent would use) against keybrake serve, in
// front of the mocks the Go tests use: stripe-mock for Stripe, Prism with
// Twilio's and Resend's OpenAPI descriptions. Each SDK is pointed at the
// proxy the way its documentation allows, presents the agent's kb_ key
// where the vendor's secret would go, and never sees the secret. The
// scripts in clients/ make the calls and print one JSON line per call,
// what the SDK made of the answer; the tests assert on those lines.
//
// The Node packages are installed by .ci/run (npm ci from
// clients/package-lock.json into $KEYBRAKE_TOOLS_DIR/clients, named by
// $KEYBRAKE_CLIENTS), stripe-python is Debian's python3-stripe
// ($KEYBRAKE_PYTHON, by default /usr/bin/python3). A missing one skips its
// test, saying how to get it; under CI=true it fails.

const clientsPolicy = `version: 1
vendors:
  twilio:
    prices:
      sms:
        default: 0.0079 USD
  resend:
    prices:
      email: 0.0030 USD
agents:
  refund-bot:
    stripe:
      daily_cap: 3.00 USD
      allow:
        - POST /v1/refunds
  sms-bot:
    twilio:
      daily_cap: 0.02 USD
      allow:
        - POST /2010-04-01/Accounts/{sid}/Messages.json
  mail-bot:
    resend:
      daily_cap: 0.01 USD
      allow: [POST /emails]
`

// The secrets keybrake serve holds. stripe-mock takes any sk_test_ key;
// Prism's Twilio example Message is for this account, which Keybrake
// checks an answer against.
var (
	clientsTwilioSID   = "AC" + strings.Repeat("a", 32)
	clientsTwilioToken = "0123456789abcdef0123456789abcdef"
	clientsResendKey   = "re_" + "123456789_abcdefghijklmnop"
)

// stripeCall is one call's line from clients/stripe.js or
// clients/stripe_python.py.
type stripeCall struct {
	Op          string `json:"op"`
	Status      int    `json:"status"`
	Code        string `json:"code"`
	ErrorCode   string `json:"error_code"` // stripe-python: e.error.code
	Type        string `json:"type"`       // the SDK's error class
	RawType     string `json:"raw_type"`   // the body's error.type (stripe-node)
	ShouldRetry string `json:"should_retry"`
	Message     string `json:"message"`
	ID          string `json:"id"`
	Amount      int64  `json:"amount"`
}

// twilioCall is one call's line from clients/twilio.js.
type twilioCall struct {
	Op       string `json:"op"`
	Status   int    `json:"status"`
	Code     int    `json:"code"`
	MoreInfo string `json:"more_info"`
	Message  string `json:"message"`
	Keybrake string `json:"keybrake_code"` // details.keybrake.code
	SID      string `json:"sid"`
	Host     string `json:"host"` // the host twilio-node meant
}

// resendCall is one call's line from clients/resend.js: resend-node
// returns {data, error} and throws nothing.
type resendCall struct {
	Op    string `json:"op"`
	ID    string `json:"id"`
	Error *struct {
		StatusCode int             `json:"statusCode"`
		Name       string          `json:"name"`
		Message    string          `json:"message"`
		Keybrake   json.RawMessage `json:"keybrake"`
	} `json:"error"`
}

// unavailable skips the test with how to get what is missing, or fails
// it under CI=true, where a skip would pass a build that tested nothing
// (internal/testenv's rule).
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and "+format, args...)
	}
	t.Skipf(format, args...)
}

// nodeClients returns the node_modules the Node clients run with, after
// checking each package of clients/package.json is installed there at its
// pinned version.
func nodeClients(t *testing.T) string {
	t.Helper()
	how := "install them as .ci/run does:\n\tmkdir -p DIR && cp cmd/keybrake/clients/package.json cmd/keybrake/clients/package-lock.json DIR && npm ci --prefix DIR\nwith DIR $KEYBRAKE_TOOLS_DIR/clients (or point KEYBRAKE_CLIENTS at DIR)"
	if _, err := exec.LookPath("node"); err != nil {
		unavailable(t, "node is not on $PATH; the official Node clients need Node.js 20 (Debian: apt-get install nodejs npm)")
	}
	dir, explicit := os.LookupEnv("KEYBRAKE_CLIENTS")
	if !explicit {
		tools := os.Getenv("KEYBRAKE_TOOLS_DIR")
		if tools == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				unavailable(t, "no tools directory (%v); set KEYBRAKE_CLIENTS", err)
			}
			tools = filepath.Join(cache, "keybrake", "tools")
		}
		dir = filepath.Join(tools, "clients")
	}
	var pkg struct{ Dependencies map[string]string }
	b, err := os.ReadFile(filepath.Join("clients", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil || len(pkg.Dependencies) == 0 {
		t.Fatalf("clients/package.json: %v", err)
	}
	for name, want := range pkg.Dependencies {
		var got struct{ Version string }
		b, err := os.ReadFile(filepath.Join(dir, "node_modules", name, "package.json"))
		if err == nil {
			err = json.Unmarshal(b, &got)
		}
		var problem string
		switch {
		case err == nil && got.Version == want:
			continue
		case err == nil:
			problem = fmt.Sprintf("%s has %s@%s, clients/package.json pins %s", dir, name, got.Version, want)
		default:
			problem = fmt.Sprintf("npm %s@%s is not installed in %s (%v)", name, want, dir, err)
		}
		if explicit { // set on purpose: a failure, never a skip
			t.Fatalf("$KEYBRAKE_CLIENTS: %s; %s", problem, how)
		}
		unavailable(t, "%s; %s", problem, how)
	}
	return filepath.Join(dir, "node_modules")
}

// python returns a python3 that imports Debian's stripe module.
func python(t *testing.T) string {
	t.Helper()
	py, explicit := os.LookupEnv("KEYBRAKE_PYTHON")
	if !explicit {
		py = "/usr/bin/python3"
	}
	out, err := exec.Command(py, "-c", "import stripe, stripe.version; stripe.api_base; print(stripe.version.VERSION)").CombinedOutput()
	if err != nil && explicit {
		t.Fatalf("$KEYBRAKE_PYTHON=%s cannot import stripe: %v: %s", py, err, bytes.TrimSpace(out))
	}
	if err != nil {
		unavailable(t, "%s cannot import stripe (%v: %s); install Debian's python3-stripe (apt-get install python3-stripe), or point KEYBRAKE_PYTHON at a python3 that has stripe", py, err, bytes.TrimSpace(out))
	}
	t.Logf("stripe-python %s (%s)", bytes.TrimSpace(out), py)
	return py
}

// agentEnv is the environment an agent's process gets: the test binary's
// without any vendor secret or HTTP proxy, plus extra.
func agentEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "STRIPE_SECRET_KEY", "STRIPE_API_KEY", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "RESEND_API_KEY",
			"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NODE_OPTIONS":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// runClient runs an SDK script of clients/ as the agent and decodes its
// lines. The working directory is a temporary one, so nothing the SDK or
// its runtime writes lands in the repository.
func runClient[T any](t *testing.T, env []string, program string, args ...string) []T {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("clients", args[0]))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(program, append([]string{script}, args[1:]...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", program, strings.Join(args, " "), err, &stdout, &stderr)
	}
	t.Logf("%s %s:\n%s", filepath.Base(program), strings.Join(args, " "), stdout.Bytes())
	var calls []T
	sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	for sc.Scan() {
		var c T
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s %s: line %q: %v\nstderr:\n%s", program, args[0], sc.Text(), err, &stderr)
		}
		calls = append(calls, c)
	}
	if len(calls) != len(args)-1 {
		t.Fatalf("%s %s: %d lines for %d calls:\n%s\nstderr:\n%s", program, strings.Join(args, " "), len(calls), len(args)-1, &stdout, &stderr)
	}
	return calls
}

// servedAgent is keybrake serve in a directory of its own, with the
// policy above, and one agent's key.
type servedAgent struct {
	*served
	dir string
	key string
}

// serveFor adds a key for agent on vendor and starts keybrake serve with
// the vendor's secrets in env, sending the vendor's traffic to mock.
func serveFor(t *testing.T, agent, vendor, mock string, env ...string) *servedAgent {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keybrake.yaml"), []byte(clientsPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := keybrakeIn(t, dir, nil, "keys", "add", agent, vendor)
	key := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(key, "kb_") {
		t.Fatalf("keys add: %d %q %q", code, out, errOut)
	}
	s := startServe(t, dir, env, "--endpoint", vendor+"="+mock)
	t.Cleanup(func() {
		if log := s.stderr.String(); strings.Contains(log, key) || secretIn(log) {
			t.Errorf("keybrake serve logged the agent key or a vendor secret:\n%s", log)
		}
	})
	return &servedAgent{served: s, dir: dir, key: key}
}

func secretIn(s string) bool {
	return strings.Contains(s, serveSecret) || strings.Contains(s, clientsTwilioToken) || strings.Contains(s, clientsResendKey)
}

// revoke revokes the agent's key with keybrake keys revoke and waits until
// the running proxy refuses it: the cap is spent, so until then every call
// is refused 402 and nothing moves.
func (a *servedAgent) revoke(t *testing.T) {
	t.Helper()
	list, _, _ := keybrakeIn(t, a.dir, nil, "keys", "list")
	id := regexp.MustCompile(`kbk_\w+`).FindString(list)
	if _, e, code := keybrakeIn(t, a.dir, nil, "keys", "revoke", id); id == "" || code != 0 {
		t.Fatalf("keys revoke %q: %d %s", id, code, e)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := refundAt(t, a.url, "Bearer "+a.key, "100")
		if status == 401 && strings.Contains(body, "keybrake_key_revoked") {
			return
		}
		if status != 402 || time.Now().After(deadline) {
			t.Fatalf("after keys revoke: %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond) // waiting for the watcher, not asserting time
	}
}

// stripeRefusals runs the same story through a Stripe SDK: refunds of
// 1.00 USD (stripe-mock answers every refund with amount 100) until the
// 3.00 USD cap, the fourth refused 402; a transfer, which the policy does
// not allow, refused 403; and after keys revoke, the key refused 401. run
// makes the calls named by ops with the agent's key. It returns the
// proxy, still serving.
func stripeRefusals(t *testing.T, run func(a *servedAgent, ops ...string) []stripeCall, sdkType func(status int) string) *servedAgent {
	a := serveFor(t, "refund-bot", "stripe", testenv.StripeMock(t), "STRIPE_SECRET_KEY="+serveSecret)

	calls := run(a, "refund", "refund", "refund", "refund", "transfer")
	for i, c := range calls[:3] {
		if c.Status != 200 || c.Amount != 100 || !strings.HasPrefix(c.ID, "re_") {
			t.Errorf("refund %d: %+v, want 200 and a refund of 100", i+1, c)
		}
	}
	wantRefused(t, calls[3], 402, "keybrake_daily_cap", sdkType)
	wantRefused(t, calls[4], 403, "keybrake_not_allowed", sdkType)

	a.revoke(t)
	wantRefused(t, run(a, "refund")[0], 401, "keybrake_key_revoked", sdkType)
	return a
}

func wantRefused(t *testing.T, c stripeCall, status int, code string, sdkType func(int) string) {
	t.Helper()
	if c.Status != status || c.Code != code || c.ShouldRetry != "false" || !strings.Contains(c.Message, "Keybrake") {
		t.Errorf("%s: %+v, want status %d, code %s, Stripe-Should-Retry: false and Keybrake's message", c.Op, c, status, code)
	}
	if want := sdkType(status); c.Type != want {
		t.Errorf("%s: the SDK raised %s, want %s", c.Op, c.Type, want)
	}
}

// TestStripeNode: stripe-node pointed at the proxy with its host, port and
// protocol options. Its errors carry the refusal's HTTP status as
// statusCode and the code as code; it picks the error class from the
// status, not from the body's type (invalid_request_error): 402 is a
// StripeCardError, as Stripe's own 402s are card declines.
func TestStripeNode(t *testing.T) {
	t.Parallel()
	modules := nodeClients(t)
	stripeRefusals(t, func(a *servedAgent, ops ...string) []stripeCall {
		env := agentEnv("NODE_PATH="+modules, "KEYBRAKE_URL="+a.url, "KEYBRAKE_AGENT_KEY="+a.key)
		calls := runClient[stripeCall](t, env, "node", append([]string{"stripe.js"}, ops...)...)
		for _, c := range calls {
			if c.Status >= 400 && c.RawType != "invalid_request_error" {
				t.Errorf("%s: raw type %q", c.Op, c.RawType)
			}
		}
		return calls
	}, func(status int) string {
		return map[int]string{401: "StripeAuthenticationError", 402: "StripeCardError", 403: "StripePermissionError"}[status]
	})
}

// TestStripePython: Debian's stripe-python 5.0 with stripe.api_base set to
// the proxy. It picks the error class from the status too: 402 is a
// CardError, 403 a PermissionError, 401 an AuthenticationError, each with
// http_status. Only CardError gets the body's code as e.code; the others
// leave it None, and the code is e.error.code.
func TestStripePython(t *testing.T) {
	t.Parallel()
	py := python(t)
	stripeRefusals(t, func(a *servedAgent, ops ...string) []stripeCall {
		env := agentEnv("PYTHONDONTWRITEBYTECODE=1", "NO_PROXY=127.0.0.1,localhost", "KEYBRAKE_URL="+a.url, "KEYBRAKE_AGENT_KEY="+a.key)
		calls := runClient[stripeCall](t, env, py, append([]string{"stripe_python.py"}, ops...)...)
		for i, c := range calls {
			if c.Status == 402 && c.Code != c.ErrorCode {
				t.Errorf("%s: CardError code %q, body's %q", c.Op, c.Code, c.ErrorCode)
			}
			calls[i].Code = c.ErrorCode
		}
		return calls
	}, func(status int) string {
		return map[int]string{401: "AuthenticationError", 402: "CardError", 403: "PermissionError"}[status]
	})
}

// TestStripeCurl: the calls of Stripe's curl examples (-u KEY:, form
// fields), and the vendor's real secret refused 401 without being echoed.
func TestStripeCurl(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		unavailable(t, "curl is not on $PATH (Debian: apt-get install curl)")
	}
	curl := func(t *testing.T, url, user, path string, form ...string) stripeCall {
		t.Helper()
		args := []string{"-sS", "--noproxy", "*", "-u", user + ":", "-w", "\n%{http_code}\n%header{stripe-should-retry}"}
		for _, f := range form {
			args = append(args, "-d", f)
		}
		cmd := exec.Command("curl", append(args, url+path)...)
		cmd.Env = agentEnv()
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("curl %s: %v: %s", path, err, ee.Stderr)
			}
			t.Fatal(err)
		}
		lines := strings.Split(string(out), "\n")
		if len(lines) < 3 {
			t.Fatalf("curl %s: %q", path, out)
		}
		body := strings.Join(lines[:len(lines)-2], "\n")
		c := stripeCall{Op: path, ShouldRetry: lines[len(lines)-1]}
		status, err := strconv.Atoi(lines[len(lines)-2])
		if err != nil {
			t.Fatalf("curl %s: status %q", path, lines[len(lines)-2])
		}
		c.Status = status
		var v struct {
			ID     string `json:"id"`
			Amount int64  `json:"amount"`
			Error  struct {
				Type, Code, Message string
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("curl %s: %d %q: %v", path, c.Status, body, err)
		}
		c.ID, c.Amount, c.Code, c.Message, c.Type = v.ID, v.Amount, v.Error.Code, v.Error.Message, v.Error.Type
		if c.Status == 200 {
			t.Logf("curl %s: 200 %s amount %d", path, c.ID, c.Amount)
		} else {
			t.Logf("curl %s: %d %s", path, c.Status, body)
		}
		return c
	}
	refund := []string{"charge=ch_1", "amount=100"}
	a := stripeRefusals(t, func(a *servedAgent, ops ...string) []stripeCall {
		var calls []stripeCall
		for _, op := range ops {
			var c stripeCall
			switch op {
			case "refund":
				c = curl(t, a.url, a.key, "/v1/refunds", refund...)
			case "transfer":
				c = curl(t, a.url, a.key, "/v1/transfers", "amount=100", "currency=usd", "destination=acct_1")
			}
			c.Op = op
			calls = append(calls, c)
		}
		return calls
	}, func(int) string { return "invalid_request_error" }) // no SDK: the body's error.type

	// The agent holding the vendor's own secret is an incident: refused,
	// and the secret is not echoed.
	c := curl(t, a.url, serveSecret, "/v1/refunds", refund...)
	if c.Status != 401 || c.Code != "keybrake_vendor_secret" || c.ShouldRetry != "false" || strings.Contains(c.Message, serveSecret) {
		t.Errorf("the real secret: %+v, want 401 keybrake_vendor_secret without the secret", c)
	}
}

// TestTwilioNode: twilio-node through its custom httpClient, which moves
// each request to the proxy. It takes the kb_ key as the auth token (it
// checks only that the account SID starts with AC), where twilio-go
// refuses credentials that are not alphanumeric. SMS pass up to the cap;
// the next is a RestException whose status is 402.
func TestTwilioNode(t *testing.T) {
	t.Parallel()
	modules := nodeClients(t)
	mock := testenv.Prism(t, testenv.TwilioSpecWithMediaURLFix(t))
	a := serveFor(t, "sms-bot", "twilio", mock, "TWILIO_ACCOUNT_SID="+clientsTwilioSID, "TWILIO_AUTH_TOKEN="+clientsTwilioToken)
	env := agentEnv("NODE_PATH="+modules, "KEYBRAKE_URL="+a.url, "KEYBRAKE_AGENT_KEY="+a.key, "TWILIO_ACCOUNT_SID="+clientsTwilioSID)

	// 0.02 USD at 0.0079 a segment: two single-segment SMS (0.0158).
	calls := runClient[twilioCall](t, env, "node", "twilio.js", "sms", "sms", "sms")
	for i, c := range calls[:2] {
		if c.Status != 201 || !strings.HasPrefix(c.SID, "SM") || c.Host != "api.twilio.com" {
			t.Errorf("sms %d: %+v, want a message SM... sent to the host api.twilio.com", i+1, c)
		}
	}
	if c := calls[2]; c.Status != 402 || c.Code != 900402 || c.Keybrake != "keybrake_daily_cap" || !strings.Contains(c.Message, "agents.sms-bot.twilio.daily_cap") {
		t.Errorf("third sms: %+v, want RestException status 402, code 900402, details.keybrake.code keybrake_daily_cap", c)
	}
}

// TestResendNode: resend-node with RESEND_BASE_URL the proxy. Emails pass
// up to the cap; the next returns the refusal as its error object, the
// body as Keybrake wrote it.
func TestResendNode(t *testing.T) {
	t.Parallel()
	modules := nodeClients(t)
	mock := testenv.Prism(t, testenv.Spec(t, "resend/resend.json"))
	a := serveFor(t, "mail-bot", "resend", mock, "RESEND_API_KEY="+clientsResendKey)
	env := agentEnv("NODE_PATH="+modules, "RESEND_BASE_URL="+a.url, "KEYBRAKE_AGENT_KEY="+a.key)

	// 0.01 USD at 0.0030 an email: three emails (0.0090).
	calls := runClient[resendCall](t, env, "node", "resend.js", "email", "email", "email", "email")
	for i, c := range calls[:3] {
		if c.Error != nil || c.ID == "" {
			t.Errorf("email %d: %s, want an id", i+1, asJSON(c))
		}
	}
	c := calls[3]
	if c.Error == nil || c.Error.StatusCode != 402 || !strings.Contains(c.Error.Message, "keybrake_daily_cap") || len(c.Error.Keybrake) == 0 {
		t.Errorf("fourth email: %s, want error statusCode 402 with keybrake_daily_cap and the details", asJSON(c))
	}
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
