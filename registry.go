package keybrake

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/keybrake/keybrake/vendors"
	"github.com/keybrake/keybrake/vendors/builtin"
)

// registry is the vendors a Brake brakes, by name.
type registry map[Vendor]vendors.Vendor

// builtins are the vendors Keybrake knows out of the box (vendors/builtin).
var builtins = func() registry {
	r := registry{}
	for _, v := range builtin.Vendors() {
		r[Vendor(v.Name())] = v
	}
	return r
}()

// withVendors is the built-in vendors and those of Options.Vendors. A
// vendor's key must be its name, and may not be a built-in vendor's.
func withVendors(custom map[Vendor]vendors.Vendor) (registry, error) {
	r := make(registry, len(builtins)+len(custom))
	for n, v := range builtins {
		r[n] = v
	}
	for n, v := range custom {
		switch {
		case v == nil:
			return nil, fmt.Errorf("keybrake: Options.Vendors[%q] is nil", n)
		case string(n) != v.Name():
			return nil, fmt.Errorf("keybrake: Options.Vendors[%q] names itself %q; the key must be its name", n, v.Name())
		case builtins[n] != nil:
			return nil, fmt.Errorf("keybrake: Options.Vendors[%q]: %s is a built-in vendor and cannot be replaced", n, n)
		}
		r[n] = v
	}
	return r, nil
}

// sorted is the vendors in name order.
func (r registry) sorted() []vendors.Vendor {
	out := make([]vendors.Vendor, 0, len(r))
	for _, v := range r {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

func (r registry) names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, string(n))
	}
	sort.Strings(names)
	return names
}

// opened are the vendors of Options.Vendors any Brake of this process was
// opened with, so that AsDenial recognises their refusals too. It only
// grows: RefusalDetails returns only details Keybrake itself put in a
// refusal (the built-in vendors share one memory of them: vendors.RememberRefusal),
// and whichever vendor finds them, they decode to the same Denial, so
// knowing one more vendor never misreads an error.
var opened = struct {
	sync.Mutex
	r registry
}{r: registry{}}

func remember(custom map[Vendor]vendors.Vendor) {
	opened.Lock()
	defer opened.Unlock()
	for n, v := range custom {
		opened.r[n] = v
		vendors.RedactSecrets(v.Info().Secrets...)
	}
}

// known is every vendor AsDenial searches: the built-in ones and those
// any Brake was opened with.
func known() registry {
	opened.Lock()
	defer opened.Unlock()
	r := make(registry, len(builtins)+len(opened.r))
	for n, v := range builtins {
		r[n] = v
	}
	for n, v := range opened.r {
		r[n] = v
	}
	return r
}

func (r registry) parseEndpoints(in map[Vendor]string) (map[Vendor]*url.URL, error) {
	out := make(map[Vendor]*url.URL, len(in))
	for v, raw := range in {
		if _, ok := r[v]; !ok {
			return nil, fmt.Errorf("keybrake: Options.Endpoints names unknown vendor %q", v)
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("keybrake: endpoint for %s: %w", v, err)
		}
		if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return nil, fmt.Errorf("keybrake: endpoint for %s %q must be scheme://host[:port][/prefix]", v, raw)
		}
		if u.Host != strings.ToLower(u.Host) {
			return nil, fmt.Errorf("keybrake: endpoint for %s %q: write the host in lower case", v, raw)
		}
		switch u.Scheme {
		case "https":
		case "http":
			if !loopback(u.Hostname()) {
				return nil, fmt.Errorf("keybrake: endpoint for %s %q: plain http only to a loopback host", v, raw)
			}
		default:
			return nil, fmt.Errorf("keybrake: endpoint for %s %q: scheme must be https (or http on loopback)", v, raw)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = ""
		out[v] = u
	}
	return out, nil
}

// Connections kept idle per vendor host, and in all. http.DefaultTransport
// keeps 2 a host: behind a proxy or a runner of many agents, every call
// past the second concurrent one would dial (and handshake TLS) afresh.
const (
	idlePerHost = 256
	idleInAll   = 1024
)

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
