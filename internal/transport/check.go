package transport

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keybrake/keybrake/vendors"
)

// methods are the only methods a vendor API call may use, upper case as
// net/http sends them verbatim.
var methods = map[string]bool{
	http.MethodGet: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true,
}

// overrideHeaders let a server treat a request as another method than the
// one Keybrake decided on.
var overrideHeaders = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// target is where a checked request is addressed.
type target struct {
	host string // the official host, or the configured endpoint's host
	path string // the escaped path, without the endpoint's path prefix
}

// check refuses anything ambiguous about where a request goes and what it
// names, rather than cleaning it up: what Keybrake matched must be exactly
// what goes on the wire.
func (t *RoundTripper) check(req *http.Request) (target, error) {
	if !methods[req.Method] {
		return target{}, vendors.Invalidf("keybrake_bad_method", "method %q is not an upper-case GET, POST, PUT, PATCH or DELETE", req.Method)
	}
	for _, h := range overrideHeaders {
		if _, ok := req.Header[http.CanonicalHeaderKey(h)]; ok {
			return target{}, vendors.Invalidf("keybrake_method_override", "header %s would let the server run another method than %s", h, req.Method)
		}
	}
	u := req.URL
	if u == nil {
		return target{}, vendors.Invalidf("keybrake_bad_url", "request has no URL")
	}
	if u.Opaque != "" || u.User != nil || u.Fragment != "" || u.RawFragment != "" || u.ForceQuery {
		return target{}, vendors.Invalidf("keybrake_bad_url", "URL %s carries userinfo, a fragment or an opaque part", redactURL(u))
	}
	if req.Host != "" && req.Host != u.Host {
		return target{}, vendors.Invalidf("keybrake_host_mismatch", "Host header %q differs from the URL's host %q", req.Host, u.Host)
	}
	tg, err := t.checkHost(u)
	if err != nil {
		return target{}, err
	}
	path, err := checkPath(u)
	if err != nil {
		return target{}, err
	}
	if tg.host == t.endpointHost() && t.endpoint.Path != "" {
		prefix := strings.TrimSuffix(t.endpoint.Path, "/")
		if !strings.HasPrefix(path, prefix+"/") {
			return target{}, vendors.Invalidf("keybrake_bad_path", "path %q is outside the configured endpoint %s", path, t.endpoint)
		}
		path = strings.TrimPrefix(path, prefix)
	}
	tg.path = path
	return tg, nil
}

func (t *RoundTripper) checkHost(u *url.URL) (target, error) {
	host := u.Host
	if host != strings.ToLower(host) || strings.HasSuffix(u.Hostname(), ".") {
		return target{}, vendors.Invalidf("keybrake_unknown_host", "host %q is not in canonical form (lower case, no trailing dot)", host)
	}
	if t.endpoint != nil && u.Scheme == t.endpoint.Scheme && host == t.endpoint.Host {
		return target{host: host}, nil
	}
	if u.Scheme == "https" && t.hosts[host] {
		return target{host: host}, nil
	}
	return target{}, vendors.Invalidf("keybrake_unknown_host", "%s://%s is not a %s API host (official hosts: %s%s)",
		u.Scheme, host, t.vendor.Name(), t.someHosts(), t.endpointNote())
}

// someHosts names a few official hosts for a message; Twilio has 165.
func (t *RoundTripper) someHosts() string {
	hosts := t.vendor.Hosts()
	if len(hosts) > 3 {
		return strings.Join(hosts[:3], ", ") + fmt.Sprintf(" and %d more", len(hosts)-3)
	}
	return strings.Join(hosts, ", ")
}

func (t *RoundTripper) endpointHost() string {
	if t.endpoint == nil {
		return ""
	}
	return t.endpoint.Host
}

func (t *RoundTripper) endpointNote() string {
	if t.endpoint == nil {
		return "; no endpoint is configured"
	}
	return "; configured endpoint: " + t.endpoint.String()
}

// checkPath returns the escaped path after refusing escapes, dot segments,
// empty segments, a trailing slash and path parameters.
func checkPath(u *url.URL) (string, error) {
	p := u.EscapedPath()
	switch {
	case u.RawPath != "" || strings.ContainsRune(p, '%'):
		return "", vendors.Invalidf("keybrake_bad_path", "path %q holds a %%-escape; vendor IDs never need one", p)
	case !strings.HasPrefix(p, "/"):
		return "", vendors.Invalidf("keybrake_bad_path", "path %q is not absolute", p)
	case strings.ContainsAny(p, ";,"):
		return "", vendors.Invalidf("keybrake_bad_path", "path %q holds a path parameter", p)
	case p != "/" && strings.HasSuffix(p, "/"):
		return "", vendors.Invalidf("keybrake_bad_path", "path %q ends in a slash", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch seg {
		case "":
			return "", vendors.Invalidf("keybrake_bad_path", "path %q has an empty segment", p)
		case ".", "..":
			return "", vendors.Invalidf("keybrake_bad_path", "path %q has a dot segment", p)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if c <= ' ' || c >= 0x7f || c == '\\' {
				return "", vendors.Invalidf("keybrake_bad_path", "path %q holds character %q", p, c)
			}
		}
	}
	return p, nil
}

// redactURL drops userinfo before a URL goes into a message.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	return c.String()
}
