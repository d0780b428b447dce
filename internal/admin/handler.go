package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// TrailerError is the HTTP trailer that carries an error met after /audit
// started streaming.
const TrailerError = "Keybrake-Error"

// FollowInterval is how often a followed /audit polls its Source.
const FollowInterval = 200 * time.Millisecond

// MetricsSource is a Source that also has metrics: Handler then serves
// GET /metrics with the handler Metrics returns (the Brake's collector in
// a registry of its own, in the Prometheus text format).
type MetricsSource interface {
	Source
	Metrics() http.Handler
}

// Handler serves src: GET /audit, GET /status, GET /verify and GET
// /approvals (see the package doc), GET /metrics when src is a
// MetricsSource, and POST /approvals/decide when src is an Approver: the
// only request that changes anything.
// Any other path is 404, any other method 405. It is safe for concurrent
// use; one Verify runs at a time (it reads the whole store), later ones
// wait for it within their request's context.
func Handler(src Source) http.Handler {
	return &handler{src: src, verify: make(chan struct{}, 1)}
}

type handler struct {
	src    Source
	verify chan struct{} // a one-slot semaphore
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every endpoint is GET and changes nothing, but one: an approval's
	// decision (approvals.go).
	method, refusal := http.MethodGet, "admin: only GET is served: this endpoint changes nothing"
	var serve func(http.ResponseWriter, *http.Request)
	switch r.URL.Path {
	case "/approvals/decide":
		method, refusal = http.MethodPost, "admin: POST an approval's decision"
		serve = h.decideApproval
	case "/approvals":
		serve = h.approvals
	case "/audit":
		serve = h.audit
	case "/status":
		serve = h.status
	case "/verify":
		serve = h.verifyChain
	case "/metrics":
		ms, ok := h.src.(MetricsSource)
		if !ok {
			http.NotFound(w, r)
			return
		}
		serve = ms.Metrics().ServeHTTP
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		http.Error(w, refusal, http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	serve(w, r)
}

func (h *handler) audit(w http.ResponseWriter, r *http.Request) {
	q, following, err := ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson; charset=utf-8")
	w.Header().Set("Trailer", TrailerError)
	w.WriteHeader(http.StatusOK)
	// The status goes out now: a query that finds little in a long log
	// must not look like a stuck server to the client.
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	jl := audit.NewJSONLines(w)
	flush := func() error {
		if err := jl.Flush(); err != nil {
			return err
		}
		if fl != nil {
			fl.Flush()
		}
		return nil
	}
	n := 0
	write := func(rec *audit.Record) error {
		if err := jl.Write(rec); err != nil {
			return err
		}
		// A long backlog goes out in pieces, not all at the end.
		if n++; n%256 == 0 {
			return flush()
		}
		return nil
	}
	ctx := r.Context()
	if following {
		err = follow(ctx, h.src, q, FollowInterval, time.Now, write, flush)
	} else {
		err = h.src.Query(ctx, q, write)
	}
	if ferr := flush(); err == nil {
		err = ferr
	}
	if err != nil {
		// The client may be gone (then nobody reads this), or the server
		// is closing: either way the stream did not end by itself.
		msg := err.Error()
		if ctx.Err() != nil {
			msg = "the server ended the stream (its Brake is closing?)"
		}
		w.Header().Set(TrailerError, oneLine(msg))
	}
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	status := h.src.Status
	switch r.URL.RawQuery {
	case "":
	case "spend=false":
		status = h.src.Glance
	default:
		http.Error(w, "admin: /status takes no parameters but spend=false", http.StatusBadRequest)
		return
	}
	s, err := status(r.Context())
	if err != nil {
		http.Error(w, "admin: status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, s)
}

// verifyResult is the JSON of /verify.
type verifyResult struct {
	Report     verifyReport `json:"report"`
	ChainError *chainError  `json:"chain_error,omitempty"`
}

type verifyReport struct {
	Checkpoint uint64 `json:"checkpoint"`
	Entries    int    `json:"entries"`
	Records    int    `json:"records"`
	Head       uint64 `json:"head"`
	HeadHash   string `json:"head_hash"`
}

type chainError struct {
	Problem store.ChainProblem `json:"problem"`
	Entry   uint64             `json:"entry"`
	Record  uint64             `json:"record"`
	Detail  string             `json:"detail"`
}

func (h *handler) verifyChain(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > 0 {
		http.Error(w, "admin: /verify takes no parameters", http.StatusBadRequest)
		return
	}
	select {
	case h.verify <- struct{}{}:
		defer func() { <-h.verify }()
	case <-r.Context().Done():
		return
	}
	rep, err := h.src.Verify(r.Context())
	res := verifyResult{Report: verifyReport(rep)}
	var ce *store.ChainError
	switch {
	case errors.As(err, &ce):
		res.ChainError = &chainError{Problem: ce.Problem, Entry: ce.Entry, Record: ce.Record, Detail: ce.Detail}
	case err != nil:
		http.Error(w, "admin: verify: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, res)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "admin: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// ParseQuery reads the query string of GET /audit: the audit.Query and
// whether to follow. It refuses unknown and repeated parameters, times
// that are not RFC 3339, empty values, an unknown decision and a negative or
// malformed limit: a filter it cannot read must not select everything.
func ParseQuery(raw string) (q audit.Query, follow bool, err error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, false, fmt.Errorf("admin: query %q: %w", raw, err)
	}
	for k, vs := range vals {
		if len(vs) != 1 {
			return q, false, fmt.Errorf("admin: parameter %q is given %d times", k, len(vs))
		}
		v := vs[0]
		if v == "" {
			return q, false, fmt.Errorf("admin: parameter %q is empty", k)
		}
		switch k {
		case "since", "until":
			t, terr := time.Parse(time.RFC3339Nano, v)
			if terr != nil {
				return q, false, fmt.Errorf("admin: %s %q is not an RFC 3339 time", k, v)
			}
			if k == "since" {
				q.Since = t
			} else {
				q.Until = t
			}
		case "agent":
			q.Agent = v
		case "vendor":
			q.Vendor = v
		case "customer":
			q.Customer = v
		case "decision":
			q.Decision = policy.Decision(v)
			if !q.Decision.Valid() {
				return q, false, fmt.Errorf("admin: decision %q is not one of allowed, blocked, scoped, capped, revoked, held, error", v)
			}
		case "limit":
			n, nerr := strconv.Atoi(v)
			if nerr != nil || n < 0 || strconv.Itoa(n) != v {
				return q, false, fmt.Errorf("admin: limit %q is not a count", v)
			}
			q.Limit = n
		case "after":
			n, nerr := strconv.ParseUint(v, 10, 64)
			if nerr != nil || strconv.FormatUint(n, 10) != v {
				return q, false, fmt.Errorf("admin: after %q is not a record ID", v)
			}
			q.After = n
		case "follow":
			switch v {
			case "1", "true":
				follow = true
			case "0", "false":
			default:
				return q, false, fmt.Errorf("admin: follow %q is not 1 or 0", v)
			}
		default:
			return q, false, fmt.Errorf("admin: unknown parameter %q (since, until, agent, vendor, decision, customer, limit, after, follow)", k)
		}
	}
	return q, follow, nil
}

// EncodeQuery is the query string ParseQuery reads back as q and follow.
// Empty fields are left out; times keep their nanoseconds.
func EncodeQuery(q audit.Query, follow bool) string {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	set("agent", q.Agent)
	set("vendor", q.Vendor)
	set("decision", string(q.Decision))
	set("customer", q.Customer)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if follow {
		v.Set("follow", "1")
	}
	return v.Encode()
}

// oneLine makes s safe as a header value.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}
