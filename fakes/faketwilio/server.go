package faketwilio

import (
	"crypto/subtle"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/keybrake/keybrake/fakes/fakefault"
	"github.com/keybrake/keybrake/internal/pattern"
	"github.com/keybrake/keybrake/money"
)

// The credentials a new Server accepts until SetCredentials. twilio-go
// refuses credentials that are not alphanumeric.
const (
	DefaultAccountSID = "AC0123456789abcdef0123456789abcdef"
	DefaultAuthToken  = "fedcba9876543210fedcba9876543210"
)

// APIVersion is the version of Twilio's REST API the fake speaks.
const APIVersion = "2010-04-01"

// Server is a fake Twilio REST API. It is an http.Handler, meant for
// httptest.NewServer (or Start). The zero value is not usable; call New.
// All methods are safe for concurrent use; requests are handled one at a
// time under one lock, except for the waits of Delay and Hang, which hold
// nothing.
type Server struct {
	// FailNext, ExecuteThenFail, Delay, Hang, ClearFaults and On, the
	// same in every fake; Inject, with this package's Fault, is Server's.
	fakefault.Injector

	mu sync.Mutex

	accountSID string
	authToken  string

	seq      map[string]int // per SID prefix, so that IDs do not depend on other traffic
	messages []*messageObj
	calls    []*callObj

	smsPrices  priceTable
	mmsPrices  priceTable
	callPrices priceTable
	priceDelay time.Duration

	faults *fakefault.Faults
	log    *fakefault.Log[Request]
	now    func() time.Time
}

// New returns a fake Twilio with no messages or calls, the default
// credentials and the default prices.
func New() *Server {
	s := &Server{
		accountSID: DefaultAccountSID,
		authToken:  DefaultAuthToken,
		seq:        map[string]int{},
		smsPrices:  priceTable{},
		mmsPrices:  priceTable{},
		callPrices: priceTable{},
		faults:     fakefault.New("faketwilio", statusAnswer),
		now:        time.Now,
	}
	s.Injector = s.faults.Injector()
	s.log = fakefault.NewLog(&s.mu, (*Request).route, (Request).clone)
	s.smsPrices.set("SMS", "", DefaultSMSPrice)
	s.mmsPrices.set("MMS", "", DefaultMMSPrice)
	s.callPrices.set("call", "", DefaultCallPrice)
	return s
}

// Close releases every request held by Delay or Hang: each is dropped
// without an answer, as a server that goes away would. Requests arriving
// after Close are answered as usual. Call it before closing the
// httptest.Server, whose Close waits for running handlers. It is
// idempotent.
func (s *Server) Close() { s.faults.Close() }

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
	alphanumeric      = regexp.MustCompile(`^[A-Za-z0-9]+$`)
)

// SetCredentials sets the only account SID and auth token the server
// accepts (Basic auth, as twilio-go sends them). It panics on a SID that
// is not "AC" and 32 lower-case hex digits, or a token that is not
// alphanumeric, as twilio-go would refuse to send it.
func (s *Server) SetCredentials(accountSID, authToken string) {
	if !accountSIDPattern.MatchString(accountSID) {
		panic(fmt.Sprintf("faketwilio: account SID %q is not AC and 32 hex digits", accountSID))
	}
	if !alphanumeric.MatchString(authToken) {
		panic("faketwilio: the auth token must be alphanumeric")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accountSID, s.authToken = accountSID, authToken
}

// AccountSID returns the account SID the server accepts.
func (s *Server) AccountSID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accountSID
}

// SetPrice sets the price of one SMS segment to destinations starting
// with prefix ("+1", "+44", or "" for every destination no other prefix
// matches; the longest matching prefix wins). unit is a decimal in US
// dollars with at most six decimals ("0.0079"). A message is priced when
// it is sent: changing a price later does not change it. SetPrice panics
// on a malformed prefix or price.
func (s *Server) SetPrice(prefix, unit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.smsPrices.set("SMS", prefix, unit)
}

// SetMMSPrice is SetPrice for MMS, priced per message: a message with
// MediaUrl or SendAsMms=true.
func (s *Server) SetMMSPrice(prefix, unit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mmsPrices.set("MMS", prefix, unit)
}

// SetCallPrice is SetPrice for calls, priced per started minute.
func (s *Server) SetCallPrice(prefix, unit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callPrices.set("call", prefix, unit)
}

// SetPriceDelay makes each message priced on its own once d has passed
// since it was created (by the server's clock), as Twilio fills the price
// in minutes after sending. 0, the default, leaves messages unpriced
// until PriceMessages. It panics if d < 0.
func (s *Server) SetPriceDelay(d time.Duration) {
	if d < 0 {
		panic("faketwilio: negative price delay")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.priceDelay = d
}

// SetClock replaces the server's clock (time.Now), which dates objects
// and drives SetPriceDelay, so that tests need not sleep.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Request is what the fake saw of one request. The Authorization header
// is never kept.
type Request struct {
	ID     string     // the Twilio-Request-Id it answered with
	Method string     //
	Path   string     // the escaped path, without the query
	Params url.Values // the decoded form of a write; nil when refused before it was read (faults, 401, bad bodies) and for reads
	Status int        // the status answered; 0 while running, or when it was dropped unanswered
	Fault  bool       // a fault matched it
}

func (r *Request) route() (method, path string) { return r.Method, r.Path }

// clone copies r with its own Params.
func (r Request) clone() Request {
	if r.Params != nil {
		r.Params = params{r.Params}.clone()
	}
	return r
}

// Requests returns how many requests the server has received, whatever it
// answered (faults and 401s included).
func (s *Server) Requests() int { return s.log.Len() }

// RequestsTo returns how many requests had exactly this method and path
// (the escaped path, without the query string).
func (s *Server) RequestsTo(method, path string) int { return s.log.Count(method, path) }

// Log returns a copy of every request seen so far, oldest first.
func (s *Server) Log() []Request { return s.log.Snapshot() }

// Spent returns, per currency, what Twilio would bill for everything done
// through the API so far: every message created, at the price it was sent
// at, whether or not that price is visible yet, and every completed call.
// Calls still in progress cost nothing yet.
func (s *Server) Spent() map[money.Currency]money.Amount {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[money.Currency]money.Amount{}
	for _, m := range s.messages {
		add(out, m.cost)
	}
	for _, c := range s.calls {
		if c.completed {
			add(out, c.cost)
		}
	}
	return out
}

// Billed is Spent limited to what the API already shows: messages whose
// price is visible and completed calls.
func (s *Server) Billed() map[money.Currency]money.Amount {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.priceDue()
	out := map[money.Currency]money.Amount{}
	for _, m := range s.messages {
		if m.priced {
			add(out, m.cost)
		}
	}
	for _, c := range s.calls {
		if c.completed {
			add(out, c.cost)
		}
	}
	return out
}

func add(m map[money.Currency]money.Amount, a money.Amount) {
	cur, ok := m[a.Currency]
	if !ok {
		m[a.Currency] = a
		return
	}
	sum, err := cur.Add(a)
	if err != nil {
		panic(fmt.Sprintf("faketwilio: %v", err)) // nine trillion dollars of SMS
	}
	m[a.Currency] = sum
}

// newSID returns the next SID with this two-letter prefix: the prefix and
// 32 hex digits counting from 1 ("SM00000000000000000000000000000001"),
// so that tests and examples can name them.
func (s *Server) newSID(prefix string) string {
	s.seq[prefix]++
	return fmt.Sprintf("%s%032x", prefix, s.seq[prefix])
}

// maxBody bounds a request body; Twilio's own limits are far smaller
// than anything a test would need to exceed.
const maxBody = 1 << 20

// call is one request being handled.
type call struct {
	r      *http.Request
	vars   map[string]string
	params params
	now    time.Time
}

func errorResponse(e *apiError) fakefault.Response {
	h := http.Header{}
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="Twilio API"`)
	}
	return fakefault.Response{Status: e.status, Body: e.body(), Header: h}
}

// endpoint is one route: a handler reads and changes state with s.mu held
// and returns the status and object to answer, or an error.
type endpoint struct {
	method  string
	path    pattern.Pattern
	params  []string // scalar form parameters a write models
	lists   []string // parameters sent as repeated keys
	handler func(s *Server, c *call) (int, any, *apiError)
}

// routes is the deliberately small part of Twilio's API faketwilio
// models; anything else is answered 404, as Twilio answers an unknown
// resource.
var routes = []endpoint{
	{"POST", pattern.MustCompile("/2010-04-01/Accounts/{AccountSid}/Messages.json"), messageParams, messageLists, (*Server).createMessage},
	{"GET", pattern.MustCompile("/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"), nil, nil, (*Server).getMessage},
	{"POST", pattern.MustCompile("/2010-04-01/Accounts/{AccountSid}/Calls.json"), callParams, callLists, (*Server).createCall},
	{"GET", pattern.MustCompile("/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json"), nil, nil, (*Server).getCall},
}

// route finds the endpoint for a request. The path is matched escaped, so
// an escape or a dot segment matches nothing, and a placeholder never
// spans "/" or ".".
func route(method, escapedPath string) (*endpoint, map[string]string) {
	for i := range routes {
		if routes[i].method != method {
			continue
		}
		if vars, ok := routes[i].path.Match(escapedPath); ok {
			return &routes[i], vars
		}
	}
	return nil, nil
}

// ServeHTTP answers one request as Twilio would: faults first, then
// authentication, routing, and the endpoint's work.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	id := s.newSID("RQ")
	idx := s.log.Append(Request{ID: id, Method: r.Method, Path: r.URL.EscapedPath()})
	hit := s.faults.Take(r)
	s.log.At(idx).Fault = hit != nil
	s.mu.Unlock()

	w.Header().Set("Twilio-Request-Id", id)
	res := s.faults.Serve(r, hit, func() fakefault.Response { return s.handle(r, idx) })
	s.mu.Lock()
	s.log.At(idx).Status = res.Status
	s.mu.Unlock()
	res.Write(w, "application/json; charset=utf-8")
}

// handle does everything after faults, holding the lock while it reads
// and changes state, so that each request is atomic.
func (s *Server) handle(r *http.Request, idx int) fakefault.Response {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBody+1))

	s.mu.Lock()
	defer s.mu.Unlock()
	s.priceDue()

	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.accountSID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.authToken)) != 1 {
		return errorResponse(unauthorized())
	}
	switch {
	case readErr != nil:
		return errorResponse(badRequest(codeBadRequest, "faketwilio: reading the request body: %v", readErr))
	case len(body) > maxBody:
		e := badRequest(codeBadRequest, "Request body too large")
		e.status = http.StatusRequestEntityTooLarge
		return errorResponse(e)
	}

	path := r.URL.EscapedPath()
	rt, vars := route(r.Method, path)
	if rt == nil || vars["AccountSid"] != s.accountSID {
		// Another account's resources are as invisible as a missing one.
		return errorResponse(notFound(path))
	}
	if r.URL.RawQuery != "" {
		return errorResponse(badRequest(codeBadRequest, "faketwilio does not model query parameters (got %q)", r.URL.RawQuery))
	}
	c := &call{r: r, vars: vars, now: s.now().UTC()}
	if r.Method == http.MethodPost {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return errorResponse(badRequest(codeBadRequest, "The request body must be application/x-www-form-urlencoded, got %q", r.Header.Get("Content-Type")))
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return errorResponse(badRequest(codeBadRequest, "Invalid request body: %v", err))
		}
		c.params = params{form}
		s.log.At(idx).Params = c.params.clone()
		if err := c.params.check(rt.params, rt.lists); err != nil {
			return errorResponse(err)
		}
	} else if len(body) > 0 {
		return errorResponse(badRequest(codeBadRequest, "faketwilio does not model a body on %s", r.Method))
	}

	status, obj, apiErr := rt.handler(s, c)
	if apiErr != nil {
		return errorResponse(apiErr)
	}
	return fakefault.Response{Status: status, Body: mustJSON(obj), Header: http.Header{}}
}

// rfc2822 is how Twilio writes dates: "Thu, 24 Aug 2023 05:01:45 +0000".
const rfc2822 = time.RFC1123Z

func uri(accountSID, collection, sid string) string {
	return "/2010-04-01/Accounts/" + accountSID + "/" + collection + "/" + sid + ".json"
}
