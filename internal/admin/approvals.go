package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keybrake/keybrake/internal/approval"
)

// Approvals on the admin socket: GET /approvals lists the open ones, and
// POST /approvals/decide (a form: id, approve=true|false, by, ttl) lets the
// operator approve or deny one in the running Brake, whose lock keeps the
// `keybrake approve` command out of the database file. The socket is the
// operator's side: mode 0600, never reached through the agent's transport
// or the proxy's agent port.

// Approver is a Source that can decide approvals: Handler then serves
// POST /approvals/decide.
type Approver interface {
	DecideApproval(ctx context.Context, id string, approve bool, by string, ttl time.Duration) (*approval.Approval, error)
}

// Approvals lists the approvals open now that calls held since since
// asked for.
func (l *Local) Approvals(ctx context.Context, since time.Time) ([]*approval.Approval, error) {
	if l.Store == nil {
		return nil, errNoStore
	}
	return approval.NewBook(l.Store, l.Now).Open(ctx, since)
}

func (h *handler) approvals(w http.ResponseWriter, r *http.Request) {
	l, ok := h.src.(interface {
		Approvals(ctx context.Context, since time.Time) ([]*approval.Approval, error)
	})
	if !ok {
		http.NotFound(w, r)
		return
	}
	since := time.Now().Add(-approval.Lookback)
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			http.Error(w, "admin: since: "+err.Error(), http.StatusBadRequest)
			return
		}
		since = t
	}
	list, err := l.Approvals(r.Context(), since)
	if err != nil {
		http.Error(w, "admin: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if list == nil {
		list = []*approval.Approval{}
	}
	writeJSON(w, list)
}

func (h *handler) decideApproval(w http.ResponseWriter, r *http.Request) {
	ap, ok := h.src.(Approver)
	if !ok {
		http.NotFound(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "admin: "+err.Error(), http.StatusBadRequest)
		return
	}
	f := r.PostForm
	approve, err := strconv.ParseBool(f.Get("approve"))
	if err != nil {
		http.Error(w, "admin: approve: want true or false", http.StatusBadRequest)
		return
	}
	var ttl time.Duration
	if s := f.Get("ttl"); s != "" {
		if ttl, err = time.ParseDuration(s); err != nil || ttl <= 0 {
			http.Error(w, "admin: ttl: want a positive duration such as 1h", http.StatusBadRequest)
			return
		}
	}
	a, err := ap.DecideApproval(r.Context(), f.Get("id"), approve, f.Get("by"), ttl)
	switch {
	case errors.Is(err, approval.ErrNotFound):
		http.Error(w, "admin: "+err.Error(), http.StatusNotFound)
	case errors.Is(err, approval.ErrDecided):
		http.Error(w, "admin: "+err.Error(), http.StatusConflict)
	case err != nil:
		http.Error(w, "admin: "+err.Error(), http.StatusInternalServerError)
	default:
		writeJSON(w, a)
	}
}

// Approvals asks the Brake for the open approvals held calls asked for
// since since.
func (c *Client) Approvals(ctx context.Context, since time.Time) ([]*approval.Approval, error) {
	resp, done, err := c.get(ctx, "/approvals?since="+url.QueryEscape(since.UTC().Format(time.RFC3339Nano)), c.headerTimeout)
	if err != nil {
		return nil, err
	}
	defer done()
	defer resp.Body.Close()
	var list []*approval.Approval
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("admin: reading the approvals from %s: %w", c.path, err)
	}
	return list, nil
}

// DecideApproval asks the Brake to approve or deny id as by; ttl 0 is the
// default. The errors of approval (ErrNotFound, ErrDecided) come back as
// themselves, wrapped.
func (c *Client) DecideApproval(ctx context.Context, id string, approve bool, by string, ttl time.Duration) (*approval.Approval, error) {
	form := url.Values{"id": {id}, "approve": {strconv.FormatBool(approve)}, "by": {by}}
	if ttl > 0 {
		form.Set("ttl", ttl.String())
	}
	ctx, cancel := context.WithTimeout(ctx, c.headerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://keybrake/approvals/decide", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.hc.Do(req)
	if err != nil {
		var ns *noServerError
		if errors.As(err, &ns) {
			return nil, ns
		}
		return nil, fmt.Errorf("admin: POST /approvals/decide on %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(b)), "admin: "))
		switch resp.StatusCode {
		case http.StatusNotFound:
			return nil, fmt.Errorf("%w (%s)", approval.ErrNotFound, msg)
		case http.StatusConflict:
			return nil, fmt.Errorf("%w (%s)", approval.ErrDecided, msg)
		}
		return nil, fmt.Errorf("admin: POST /approvals/decide on %s: %s: %s", c.path, resp.Status, msg)
	}
	var a approval.Approval
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("admin: reading the approval from %s: %w", c.path, err)
	}
	return &a, nil
}
