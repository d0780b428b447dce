package fakeresend

import (
	"bytes"
	"crypto/sha256"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/keybrake/keybrake/fakes/fakefault"
	"github.com/keybrake/keybrake/internal/pattern"
)

// DefaultAPIKey is a well-formed Resend API key for tests: any key of
// that shape is accepted until SetAPIKeys.
const DefaultAPIKey = "re_fakeresend_0123456789"

// IdempotencyWindow is how long Resend keeps an idempotency key.
const IdempotencyWindow = 24 * time.Hour

// Server is a fake Resend API. It is an http.Handler, meant for
// httptest.NewServer (or Start). The zero value is not usable; call New.
// All methods are safe for concurrent use; requests are handled one at a
// time under one lock, except for the waits of Delay and Hang, which hold
// nothing.
type Server struct {
	// FailNext, ExecuteThenFail, Delay, Hang, ClearFaults and On, the
	// same in every fake; Inject, with this package's Fault, is Server's.
	fakefault.Injector

	mu sync.Mutex

	keys map[[sha256.Size]byte]bool // nil: any well-formed key

	emailSeq   int
	emails     []*emailObj
	broadcasts []*broadcastObj
	idem       map[idemKey]*saved

	faults *fakefault.Faults
	log    *fakefault.Log[Request]
	now    func() time.Time
}

// New returns an empty fake Resend that accepts any well-formed API key.
func New() *Server {
	s := &Server{
		idem:   map[idemKey]*saved{},
		faults: fakefault.New("fakeresend", statusAnswer),
		now:    time.Now,
	}
	s.Injector = s.faults.Injector()
	s.log = fakefault.NewLog(&s.mu, (*Request).route, (Request).clone)
	return s
}

// Close releases every request held by Delay or Hang: each is dropped
// without an answer, as a server that goes away would. Requests arriving
// after Close are answered as usual. Call it before closing the
// httptest.Server, whose Close waits for running handlers. It is
// idempotent.
func (s *Server) Close() { s.faults.Close() }

var apiKeyPattern = regexp.MustCompile(`^re_[A-Za-z0-9_]+$`)

// SetAPIKeys makes the server accept only these keys (the server keeps
// their SHA-256, not the keys): any other well-formed key is answered 403
// invalid_api_key, as Resend answers a key it does not know. It panics on
// a key that is not "re_" and letters, digits or "_".
func (s *Server) SetAPIKeys(keys ...string) {
	m := map[[sha256.Size]byte]bool{}
	for _, k := range keys {
		if !apiKeyPattern.MatchString(k) {
			panic("fakeresend: an API key must be re_ and letters, digits or _")
		}
		m[sha256.Sum256([]byte(k))] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = m
}

// SetClock replaces the server's clock (time.Now), which dates emails and
// expires idempotency keys, so that tests need not sleep.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Request is what the fake saw of one request. The Authorization header
// is never kept.
type Request struct {
	Method          string //
	Path            string // the escaped path, without the query
	Body            []byte // as received; nil when refused before it was read (faults, 401, 403, 413)
	IdempotencyKey  string //
	BatchValidation string // the x-batch-validation header
	Status          int    // the status answered; 0 while running, or when it was dropped unanswered
	Replayed        bool   // answered from a saved idempotent result
	Fault           bool   // a fault matched it
}

func (r *Request) route() (method, path string) { return r.Method, r.Path }

// clone copies r with its own Body.
func (r Request) clone() Request {
	r.Body = bytes.Clone(r.Body)
	return r
}

// Requests returns how many requests the server has received, whatever it
// answered (faults, 401s and replays included).
func (s *Server) Requests() int { return s.log.Len() }

// RequestsTo returns how many requests had exactly this method and path
// (the escaped path, without the query string).
func (s *Server) RequestsTo(method, path string) int { return s.log.Count(method, path) }

// Log returns a copy of every request seen so far, oldest first.
func (s *Server) Log() []Request { return s.log.Snapshot() }

// idemKey scopes an idempotency key to the endpoint it was used on.
type idemKey struct{ path, key string }

// saved is the result kept for an idempotency key.
type saved struct {
	fingerprint string // the canonical body, and the batch mode
	status      int
	body        []byte
	at          time.Time
}

// maxBody bounds a request body: 1 MiB, far more than any test needs.
const maxBody = 1 << 20

// maxIdemKey is the longest idempotency key Resend accepts, in characters.
const maxIdemKey = 256

// call is one request being handled.
type call struct {
	r    *http.Request
	vars map[string]string
	body []byte
	now  time.Time
}

func errorResponse(e *apiError) fakefault.Response {
	return fakefault.Response{Status: e.status, Body: e.body(), Header: http.Header{}}
}

// endpoint is one route: a handler reads and changes state with s.mu held
// and returns the object to answer with 200, or an error.
type endpoint struct {
	method     string
	path       pattern.Pattern
	idempotent bool // honours Idempotency-Key
	handler    func(s *Server, c *call) (any, *apiError)
}

// routes is the deliberately small part of Resend's API fakeresend
// models. Anything else is answered 404 (405 for a modelled path and
// another method), as Resend answers.
var routes = []endpoint{
	{"POST", pattern.MustCompile("/emails"), true, (*Server).sendEmail},
	{"POST", pattern.MustCompile("/emails/batch"), true, (*Server).sendBatch},
	{"GET", pattern.MustCompile("/emails/{id}"), false, (*Server).getEmail},
	{"POST", pattern.MustCompile("/broadcasts/{id}/send"), false, (*Server).sendBroadcast},
}

// route finds the endpoint for a request. The path is matched escaped, so
// an escape or a dot segment matches nothing. known reports whether some
// route has this path with another method.
func route(method, escapedPath string) (rt *endpoint, vars map[string]string, known bool) {
	for i := range routes {
		v, ok := routes[i].path.Match(escapedPath)
		if !ok {
			continue
		}
		if routes[i].method == method {
			return &routes[i], v, true
		}
		known = true
	}
	return nil, nil, known
}

// ServeHTTP answers one request as Resend would: faults first, then
// authentication, routing, idempotency and the endpoint's work.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	idx := s.log.Append(Request{
		Method:          r.Method,
		Path:            r.URL.EscapedPath(),
		IdempotencyKey:  r.Header.Get("Idempotency-Key"),
		BatchValidation: r.Header.Get("X-Batch-Validation"),
	})
	hit := s.faults.Take(r)
	s.log.At(idx).Fault = hit != nil
	s.mu.Unlock()

	res := s.faults.Serve(r, hit, func() fakefault.Response { return s.handle(r, idx) })
	s.mu.Lock()
	s.log.At(idx).Status = res.Status
	s.mu.Unlock()
	res.Write(w, "application/json; charset=utf-8")
}

// authenticate checks "Authorization: Bearer re_...". The key is never
// kept or echoed.
func (s *Server) authenticate(h string) *apiError {
	key, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || key == "" {
		return &apiError{status: http.StatusUnauthorized, name: nameMissingAPIKey, message: "Missing API key in the authorization header."}
	}
	if !apiKeyPattern.MatchString(key) {
		return &apiError{status: http.StatusUnauthorized, name: nameInvalidAPIKey, message: "API key is invalid."}
	}
	if s.keys != nil && !s.keys[sha256.Sum256([]byte(key))] {
		return &apiError{status: http.StatusForbidden, name: nameInvalidAPIKey, message: "API key is invalid."}
	}
	return nil
}

// handle does everything after faults, holding the lock while it reads
// and changes state, so that each request is atomic.
func (s *Server) handle(r *http.Request, idx int) fakefault.Response {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBody+1))

	s.mu.Lock()
	defer s.mu.Unlock()

	if err := s.authenticate(r.Header.Get("Authorization")); err != nil {
		return errorResponse(err)
	}
	switch {
	case readErr != nil:
		return errorResponse(badRequest("fakeresend: reading the request body: %v", readErr))
	case len(body) > maxBody:
		e := badRequest("Request body too large.")
		e.status = http.StatusRequestEntityTooLarge
		return errorResponse(e)
	}
	s.log.At(idx).Body = body

	path := r.URL.EscapedPath()
	rt, vars, known := route(r.Method, path)
	if rt == nil {
		if known {
			return errorResponse(&apiError{status: http.StatusMethodNotAllowed, name: nameMethodNotAllowed, message: "Method is not allowed for the requested path."})
		}
		return errorResponse(notFound("The requested endpoint does not exist."))
	}
	if r.URL.RawQuery != "" {
		return errorResponse(badRequest("fakeresend does not model query parameters (got %q).", r.URL.RawQuery))
	}
	c := &call{r: r, vars: vars, body: body, now: s.now().UTC()}
	if r.Method == http.MethodPost {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return errorResponse(badRequest("The request body must be application/json, got %q.", r.Header.Get("Content-Type")))
		}
		if err := checkJSON(body); err != nil {
			return errorResponse(badRequest("Invalid JSON body: %v.", err))
		}
	} else if len(body) > 0 {
		return errorResponse(badRequest("fakeresend does not model a body on %s.", r.Method))
	}

	var ik idemKey
	var fingerprint string
	_, useIdem := r.Header["Idempotency-Key"]
	useIdem = useIdem && rt.idempotent
	if useIdem {
		key := r.Header.Get("Idempotency-Key")
		if n := utf8.RuneCountInString(key); n < 1 || n > maxIdemKey {
			return errorResponse(&apiError{status: http.StatusBadRequest, name: nameInvalidIdemKey, message: "The key must be between 1-256 chars."})
		}
		ik = idemKey{path: path, key: key}
		fingerprint = r.Header.Get("X-Batch-Validation") + " " + canonical(body)
		if sv, ok := s.idem[ik]; ok && c.now.Sub(sv.at) < IdempotencyWindow {
			if sv.fingerprint != fingerprint {
				return errorResponse(&apiError{status: http.StatusConflict, name: nameInvalidIdemRequest, message: "Same idempotency key used with a different request payload."})
			}
			s.log.At(idx).Replayed = true
			return fakefault.Response{Status: sv.status, Body: sv.body, Header: http.Header{}}
		}
	}

	obj, apiErr := rt.handler(s, c)
	if apiErr != nil {
		// Only what was sent is saved: a refused request can be
		// corrected and sent again under the same key.
		return errorResponse(apiErr)
	}
	res := fakefault.Response{Status: http.StatusOK, Body: mustJSON(obj), Header: http.Header{}}
	if useIdem {
		s.idem[ik] = &saved{fingerprint: fingerprint, status: res.Status, body: res.Body, at: c.now}
	}
	return res
}
