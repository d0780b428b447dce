package ui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/approval"
)

//go:embed static
var static embed.FS

// Options configure a Server. Source is required; every other zero field
// means a documented default.
type Options struct {
	// Source is what the page shows: a Brake's admin socket, or a store.
	Source admin.Source
	// Act carries out an action and says in one line what it did; nil
	// makes the page read-only (POST /api/act answers 403).
	Act func(ctx context.Context, a Action) (string, error)
	// Token is what every request must carry; "" means a random one of
	// 256 bits.
	Token string
	// Where says what Source reads ("the agent's Brake on x.sock") and
	// Database which database; both are shown in the page's header.
	Where, Database string
	// Poll is how often /api/events looks for new records; 0 means 250 ms.
	Poll time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the failures no request can report (an event stream
	// that cannot read its source); nil means slog.Default().
	Logger *slog.Logger
}

// Action is what POST /api/act asks for.
type Action struct {
	// Verb is "halt", "resume", "revoke", "restore", "approve" or "deny".
	Verb string `json:"verb"`
	// Agent is the agent it is for; "" with halt or resume means every
	// agent (the kill switch, or the fleet's halt).
	Agent string `json:"agent"`
	// Approval is the approval approve and deny decide (apr_...).
	Approval string `json:"approval,omitempty"`
}

// Server is the page and its API, an http.Handler. It is safe for
// concurrent use.
type Server struct {
	opts      Options
	token     string
	csrf      string
	cookie    string
	mux       *http.ServeMux
	day       *background[dayRecords]           // spend.go
	approvals *background[[]*approval.Approval] // nil: the Source lists none
}

// New returns the Server opts describe.
func New(opts Options) (*Server, error) {
	if opts.Source == nil {
		return nil, errors.New("ui: Options.Source is nil")
	}
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, token: opts.Token, day: newDayRecords(opts.Source)}
	if l, ok := opts.Source.(approvalLister); ok {
		s.approvals = newOpenApprovals(l, opts.Now)
	}
	if s.token == "" {
		s.token = NewToken()
	}
	mac := hmac.New(sha256.New, []byte(s.token))
	mac.Write([]byte("keybrake ui csrf"))
	s.csrf = base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	id := sha256.Sum256([]byte(s.token))
	s.cookie = "keybrake_ui_" + hex.EncodeToString(id[:4])

	assets, _ := fs.Sub(static, "static")
	s.mux = http.NewServeMux()
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(assets)))
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, assets, "index.html")
	})
	s.mux.HandleFunc("GET /api/session", s.session)
	s.mux.HandleFunc("GET /api/now", s.now)
	s.mux.HandleFunc("GET /api/timeline", s.timeline)
	s.mux.HandleFunc("GET /api/records", s.records)
	s.mux.HandleFunc("GET /api/records/{id}", s.record)
	s.mux.HandleFunc("GET /api/events", s.events)
	s.mux.HandleFunc("POST /api/act", s.act)
	return s, nil
}

// NewToken is a random token of 256 bits, as New makes when
// Options.Token is "".
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Token is what every request must carry.
func (s *Server) Token() string { return s.token }

// Link is the page's address on base ("http://127.0.0.1:8183"), with the
// token: what `keybrake ui` prints once.
func (s *Server) Link(base string) string {
	return strings.TrimSuffix(base, "/") + "/?token=" + url.QueryEscape(s.token)
}

// contentSecurity allows this server's own script, style and requests and
// nothing else: no inline code, no framing, no form posting anywhere.
const contentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// ServeHTTP authenticates r and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurity)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	if t := r.URL.Query().Get("token"); t != "" && r.Method == http.MethodGet && r.URL.Path == "/" {
		if !s.valid(t) {
			s.refuse(w, "the token in this link is not this page's: open the link keybrake ui printed last")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: s.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		http.Redirect(w, r, "/", http.StatusSeeOther) // the token leaves the address bar and the history
		return
	}
	if !s.authenticated(r) {
		s.refuse(w, "this page needs the link keybrake ui printed (with ?token=...)")
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) authenticated(r *http.Request) bool {
	if c, err := r.Cookie(s.cookie); err == nil && s.valid(c.Value) {
		return true
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.valid(t) {
		return true
	}
	return false
}

func (s *Server) valid(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(s.token)) == 1
}

func (s *Server) refuse(w http.ResponseWriter, why string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte("keybrake ui: " + why + "\n"))
}

func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"actions":  s.opts.Act != nil,
		"csrf":     s.csrf,
		"source":   s.opts.Where,
		"database": s.opts.Database,
	})
}

func (s *Server) now(w http.ResponseWriter, r *http.Request) {
	st, err := s.opts.Source.Glance(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "reading the status: "+err.Error())
		return
	}
	if d, ok := s.day.get(s.opts.Logger); ok && d.day == st.Day {
		st.Spend, st.Shadow = d.spend, d.shadow // else none yet: the next refresh has them
	}
	out := struct {
		*admin.Status
		Approvals []pageApproval `json:"approvals"`
	}{Status: st, Approvals: []pageApproval{}}
	if s.approvals != nil {
		list, _ := s.approvals.get(s.opts.Logger)
		now := s.opts.Now()
		for _, a := range list {
			out.Approvals = append(out.Approvals, pageApprovalOf(a, now))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// act carries out one Action: a POST from this page only (the CSRF
// header, a JSON body, this host's Origin).
func (s *Server) act(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Keybrake-CSRF")), []byte(s.csrf)) != 1 {
		writeError(w, http.StatusForbidden, "missing or wrong X-Keybrake-CSRF header: act from the page")
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			writeError(w, http.StatusForbidden, "the request comes from another origin ("+o+")")
			return
		}
	}
	if s.opts.Act == nil {
		writeError(w, http.StatusForbidden, "the page is read-only: start keybrake ui with --allow-actions to act from it")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "want a JSON body (Content-Type: application/json)")
		return
	}
	var a Action
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		writeError(w, http.StatusBadRequest, "reading the action: "+err.Error())
		return
	}
	approving := a.Verb == "approve" || a.Verb == "deny"
	switch {
	case a.Verb != "halt" && a.Verb != "resume" && a.Verb != "revoke" && a.Verb != "restore" && !approving:
		writeError(w, http.StatusBadRequest, "unknown verb "+quote(a.Verb)+": want halt, resume, revoke, restore, approve or deny")
		return
	case approving && (!approval.ValidID(a.Approval) || a.Agent != ""):
		writeError(w, http.StatusBadRequest, a.Verb+" needs an approval id (apr_...) and no agent")
		return
	case !approving && a.Approval != "":
		writeError(w, http.StatusBadRequest, a.Verb+" takes no approval")
		return
	case a.Agent == "" && (a.Verb == "revoke" || a.Verb == "restore"):
		writeError(w, http.StatusBadRequest, a.Verb+" needs an agent")
		return
	case a.Agent != "" && a.Verb == "resume":
		writeError(w, http.StatusBadRequest, "resume lifts the halt of every agent and takes no agent; restore lifts one agent's revocation")
		return
	}
	msg, err := s.opts.Act(r.Context(), a)
	if err != nil {
		s.opts.Logger.Warn("keybrake ui: action failed", "verb", a.Verb, "agent", a.Agent, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.opts.Logger.Info("keybrake ui: action", "verb", a.Verb, "agent", a.Agent, "result", msg)
	writeJSON(w, http.StatusOK, map[string]string{"message": msg})
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}
