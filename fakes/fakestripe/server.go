package fakestripe

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/keybrake/keybrake/fakes/fakefault"
)

// Server is a fake Stripe API. It is an http.Handler, meant for
// httptest.NewServer (or Start). The zero value is not usable; call New.
// All methods are safe for concurrent use; requests are handled one at a
// time under one lock, except for the waits of Delay and Hang, which hold
// nothing.
type Server struct {
	// FailNext, ExecuteThenFail, Delay, Hang, ClearFaults and On, the
	// same in every fake; Inject, with this package's Fault, is Server's.
	fakefault.Injector

	mu  sync.Mutex
	seq int // for IDs and creation order

	customers map[key]*customerObj
	charges   map[key]*chargeObj
	intents   map[key]*paymentIntentObj
	refunds   map[key]*refundObj
	transfers map[key]*transferObj
	payouts   map[key]*payoutObj // payouts and top-ups
	invoices  map[key]*invoiceObj
	fees      map[key]*applicationFeeObj

	idem      map[idemKey]*saved
	faults    *fakefault.Faults
	log       *fakefault.Log[Request]
	movements []Movement

	now func() time.Time
}

// key scopes an object to the account it lives in ("" for the platform,
// else the Stripe-Account the request acted for).
type key struct{ account, id string }

// New returns an empty fake Stripe.
func New() *Server {
	s := &Server{
		customers: map[key]*customerObj{},
		charges:   map[key]*chargeObj{},
		intents:   map[key]*paymentIntentObj{},
		refunds:   map[key]*refundObj{},
		transfers: map[key]*transferObj{},
		payouts:   map[key]*payoutObj{},
		invoices:  map[key]*invoiceObj{},
		fees:      map[key]*applicationFeeObj{},
		idem:      map[idemKey]*saved{},
		faults:    fakefault.New("fakestripe", statusAnswer),
		now:       time.Now,
	}
	s.Injector = s.faults.Injector()
	s.log = fakefault.NewLog(&s.mu, (*Request).route, nil)
	return s
}

// Close releases every request held by Delay or Hang: each is dropped
// without an answer, as a server that goes away would. Requests arriving
// after Close are answered as usual. Call it before closing the
// httptest.Server, whose Close waits for running handlers. It is
// idempotent.
func (s *Server) Close() { s.faults.Close() }

// Request is what the fake saw of one request.
type Request struct {
	ID             string     // the Request-Id it answered with
	Method         string     //
	Path           string     // the escaped path, without the query
	Params         url.Values // the decoded parameters (query, and body for writes); nil when refused before they were read (faults, 401, 403, bad bodies)
	IdempotencyKey string     //
	StripeAccount  string     //
	StripeVersion  string     //
	Status         int        // the status answered; 0 while running, or when it was dropped unanswered
	Replayed       bool       // answered from a saved idempotent result
	Fault          bool       // a fault matched it
}

func (r *Request) route() (method, path string) { return r.Method, r.Path }

// Movement is one movement of money the fake made: a captured charge, a
// capture, a refund, a transfer or its reversal, a payout, a top-up, a
// paid invoice, an application fee refund. Authorizations (uncaptured
// charges, manual-capture payment intents, incremental authorizations)
// and released authorizations move nothing.
type Movement struct {
	Kind      string // "charge", "charge_capture", "payment_intent", "payment_intent_capture", "refund", "transfer", "transfer_reversal", "payout", "topup", "invoice_payment", "application_fee_refund"
	Object    string // the ID of the object that records it (charge, refund, transfer...)
	Amount    int64  // in minor units of Currency, always positive
	Currency  string // lower case, as Stripe writes it
	Account   string // the Stripe-Account it happened in, "" for the platform
	RequestID string // the request that made it
}

// ForgetIdempotencyKeys drops every saved idempotent result, as Stripe
// does with a key once it is 24 hours old: a request that carries one
// again is executed again.
func (s *Server) ForgetIdempotencyKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idem = map[idemKey]*saved{}
}

// Requests returns how many requests the server has received, whatever
// it answered (faults, 401s and replays included).
func (s *Server) Requests() int { return s.log.Len() }

// RequestsTo returns how many requests had exactly this method and path
// (the escaped path, without the query string).
func (s *Server) RequestsTo(method, path string) int { return s.log.Count(method, path) }

// Log returns a copy of every request seen so far, oldest first.
func (s *Server) Log() []Request { return s.log.Snapshot() }

// Movements returns every movement of money made through the API so far,
// oldest first. Seeded state is not a movement.
func (s *Server) Movements() []Movement {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Movement, len(s.movements))
	copy(out, s.movements)
	return out
}

// Moved returns the money moved through the API so far per currency (lower
// case), in minor units: the sum of Movements, whatever their direction.
func (s *Server) Moved() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]int64{}
	for _, mv := range s.movements {
		m[mv.Currency] += mv.Amount
	}
	return m
}

// Refunded returns the amount_refunded of the charge with this ID, in
// whichever account it lives, as Stripe reports it (a released
// authorization counts), and 0 for an unknown charge.
func (s *Server) Refunded(chargeID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.charges {
		if k.id == chargeID {
			return c.AmountRefunded
		}
	}
	return 0
}

func (s *Server) move(c *call, kind, object string, amount int64, currency string) {
	s.movements = append(s.movements, Movement{
		Kind: kind, Object: object, Amount: amount, Currency: currency,
		Account: c.account, RequestID: c.requestID,
	})
}

// newID returns a fresh ID with Stripe's prefix for the kind of object.
// IDs are deterministic ("ch_fs0000000001"), so tests and examples can
// name them; they never collide with seeded IDs, which are checked.
func (s *Server) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s_fs%010d", prefix, s.seq)
}

// maxBody bounds a request body: Stripe's own limit is far smaller than
// anything a test would need to exceed.
const maxBody = 1 << 20

// call is one request being handled.
type call struct {
	r         *http.Request
	requestID string
	account   string
	params    params
	vars      map[string]string
	now       int64
	// fingerprint identifies the request for its idempotency key.
	fingerprint string
}

// ServeHTTP answers one request as Stripe would: faults first, then
// authentication, idempotency, routing, and the endpoint's work.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	reqID := s.newRequestID()
	idx := s.log.Append(Request{
		ID:             reqID,
		Method:         r.Method,
		Path:           r.URL.EscapedPath(),
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
		StripeAccount:  r.Header.Get("Stripe-Account"),
		StripeVersion:  r.Header.Get("Stripe-Version"),
	})
	hit := s.faults.Take(r)
	s.log.At(idx).Fault = hit != nil
	s.mu.Unlock()

	w.Header().Set("Request-Id", reqID)
	res := s.faults.Serve(r, hit, func() fakefault.Response { return s.handle(r, reqID, idx) })
	s.mu.Lock()
	s.log.At(idx).Status = res.Status
	s.mu.Unlock()
	res.Write(w, "application/json")
}

func (s *Server) newRequestID() string {
	s.seq++
	return fmt.Sprintf("req_fs%010d", s.seq)
}

func errorResponse(e *apiError) fakefault.Response {
	return fakefault.Response{Status: e.status, Body: e.body(), Header: http.Header{}}
}

// handle does everything after faults. It holds the lock while it reads
// and changes state, so each request is atomic.
func (s *Server) handle(r *http.Request, reqID string, idx int) fakefault.Response {
	res := s.handleLocked(r, reqID, idx)
	if v := r.Header.Get("Stripe-Version"); v != "" {
		res.Header.Set("Stripe-Version", v)
	} else {
		res.Header.Set("Stripe-Version", APIVersion)
	}
	return res
}

// APIVersion is the Stripe API version whose shapes fakestripe answers
// with, the one stripe-go v76 sends.
const APIVersion = "2023-10-16"

func (s *Server) handleLocked(r *http.Request, reqID string, idx int) fakefault.Response {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBody+1))

	s.mu.Lock()
	defer s.mu.Unlock()

	if err := authenticate(r.Header.Get("Authorization")); err != nil {
		return errorResponse(err)
	}
	account := r.Header.Get("Stripe-Account")
	if account != "" && !accountID.MatchString(account) {
		return errorResponse(&apiError{
			status: http.StatusForbidden, typ: "invalid_request_error", code: "account_invalid",
			message: fmt.Sprintf("The provided key does not have access to account '%s' (or that account does not exist). Application access may have been revoked.", account),
		})
	}

	switch {
	case readErr != nil:
		return errorResponse(invalid("", "", "fakestripe: reading the request body: %v", readErr))
	case len(body) > maxBody:
		e := invalid("", "", "Request body too large.")
		e.status = http.StatusRequestEntityTooLarge
		return errorResponse(e)
	}
	p, perr := parseParams(r, body)
	if perr != nil {
		return errorResponse(perr)
	}
	s.log.At(idx).Params = p.urlValues()

	rt, vars := route(r.Method, r.URL.EscapedPath())
	if rt == nil {
		e := invalid("", "", "Unrecognized request URL (%s: %s). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.", r.Method, r.URL.EscapedPath())
		e.status = http.StatusNotFound
		return errorResponse(e)
	}

	c := &call{r: r, requestID: reqID, account: account, params: p, vars: vars, now: s.now().Unix()}

	idemKeyValue := r.Header.Get("Idempotency-Key")
	useIdem := idemKeyValue != "" && r.Method == http.MethodPost
	var ik idemKey
	if useIdem {
		if len(idemKeyValue) > 255 {
			return errorResponse(invalid("", "", "Idempotency keys must be at most 255 characters long."))
		}
		ik = idemKey{account: account, key: idemKeyValue}
		fp := r.Method + " " + r.URL.EscapedPath() + "?" + p.fingerprint()
		if sv, ok := s.idem[ik]; ok {
			if sv.fingerprint != fp {
				return errorResponse(&apiError{
					status: http.StatusBadRequest, typ: "idempotency_error",
					message: fmt.Sprintf("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.", idemKeyValue),
				})
			}
			s.log.At(idx).Replayed = true
			h := http.Header{}
			h.Set("Idempotency-Key", idemKeyValue)
			h.Set("Idempotent-Replayed", "true")
			h.Set("Original-Request", sv.requestID)
			return fakefault.Response{Status: sv.status, Body: sv.body, Header: h}
		}
		c.fingerprint = fp
	}

	obj, apiErr := rt.handler(s, c)
	var res fakefault.Response
	executed := true
	if apiErr != nil {
		res = errorResponse(apiErr)
		executed = apiErr.executed
	} else {
		res = fakefault.Response{Status: http.StatusOK, Body: mustJSON(obj), Header: http.Header{}}
	}
	if useIdem {
		res.Header.Set("Idempotency-Key", idemKeyValue)
		// Stripe saves a result only once the endpoint started executing:
		// a request refused by its parameters can be corrected and sent
		// again with the same key.
		if executed {
			s.idem[ik] = &saved{fingerprint: c.fingerprint, status: res.Status, body: res.Body, requestID: reqID}
		}
	}
	return res
}

// parseParams decodes a request's parameters: the query string, merged on
// writes with a form body, which must be
// application/x-www-form-urlencoded as stripe-go sends it.
func parseParams(r *http.Request, body []byte) (params, *apiError) {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return params{}, invalid("", "", "Invalid query string: %v", err)
	}
	var form url.Values
	if len(body) > 0 {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return params{}, invalid("", "", "Invalid request: the body must be application/x-www-form-urlencoded, got %q.", r.Header.Get("Content-Type"))
		}
		form, err = url.ParseQuery(string(body))
		if err != nil {
			return params{}, invalid("", "", "Invalid request body: %v", err)
		}
	}
	return newParams(query, form), nil
}

func (p params) urlValues() url.Values {
	v := url.Values{}
	for _, k := range p.keys {
		v.Set(k, p.v[k])
	}
	return v
}
