package ui

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
)

// maxWindow bounds what one request reads.
const maxWindow = 31 * 24 * time.Hour

// defaultRecords and maxRecords bound what /api/records sends of a window:
// the first ones, with the window's total, so that a person narrows the
// window rather than scrolls through thousands.
const (
	defaultRecords = 500
	maxRecords     = 5000
)

// decisions are the calls' decisions, in the order the page stacks them.
var decisions = []policy.Decision{policy.Allowed, policy.Capped, policy.Blocked, policy.Scoped, policy.Revoked, policy.Held, policy.Error}

// window reads since and until (RFC 3339; until defaults to now, since to
// 15 minutes before until) and the filters allowed, refusing anything
// else: a misspelt filter must not silently select everything.
func (s *Server) window(v url.Values, filters ...string) (audit.Query, error) {
	var q audit.Query
	allowed := map[string]bool{"since": true, "until": true}
	for _, f := range filters {
		allowed[f] = true
	}
	for k, vs := range v {
		if !allowed[k] {
			return q, fmt.Errorf("unknown parameter %q", k)
		}
		if len(vs) > 1 {
			return q, fmt.Errorf("parameter %q given %d times", k, len(vs))
		}
	}
	q.Until = s.opts.Now()
	if u := v.Get("until"); u != "" {
		t, err := time.Parse(time.RFC3339Nano, u)
		if err != nil {
			return q, fmt.Errorf("until: %v", err)
		}
		q.Until = t
	}
	q.Since = q.Until.Add(-15 * time.Minute)
	if u := v.Get("since"); u != "" {
		t, err := time.Parse(time.RFC3339Nano, u)
		if err != nil {
			return q, fmt.Errorf("since: %v", err)
		}
		q.Since = t
	}
	switch d := q.Until.Sub(q.Since); {
	case d <= 0:
		return q, fmt.Errorf("since (%s) must be before until (%s)", q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano))
	case d > maxWindow:
		return q, fmt.Errorf("a window of %v is more than the %v one request reads", d, maxWindow)
	}
	q.Since, q.Until = q.Since.UTC(), q.Until.UTC()
	q.Agent, q.Vendor, q.Customer = v.Get("agent"), v.Get("vendor"), v.Get("customer")
	if d := v.Get("decision"); d != "" {
		if !known(policy.Decision(d)) {
			return q, fmt.Errorf("unknown decision %q", d)
		}
		q.Decision = policy.Decision(d)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxRecords {
			return q, fmt.Errorf("limit %q: want 1 to %d", l, maxRecords)
		}
		q.Limit = n
	}
	return q, nil
}

func known(d policy.Decision) bool {
	for _, k := range decisions {
		if d == k {
			return true
		}
	}
	return false
}
