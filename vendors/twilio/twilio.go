package twilio

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keybrake/keybrake/vendors"
)

// The products whose hosts Keybrake accepts: the REST API 2010-04-01
// (Messages, Calls, ...), Messaging (services, senders) and Verify.
const (
	APIHost       = "api.twilio.com"
	MessagingHost = "messaging.twilio.com"
	VerifyHost    = "verify.twilio.com"
)

// edges are Twilio's documented edge locations, public and private
// (Interconnect), as twilio-go's SetEdge or TWILIO_EDGE name them.
var edges = []string{
	"ashburn", "dublin", "frankfurt", "roaming", "sao-paulo", "singapore", "sydney", "tokyo", "umatilla",
	"ashburn-ix", "frankfurt-ix", "london-ix", "san-jose-ix", "sao-paulo-ix", "singapore-ix", "sydney-ix", "tokyo-ix",
}

// regions are Twilio's processing regions, as twilio-go's SetRegion or
// TWILIO_REGION name them. Twilio retired the region-only API hosts but
// api.us1.twilio.com on 2026-04-28; those of the processing regions stay
// in the list because twilio-go still builds them (a call there fails at
// Twilio, costing nothing), those of the legacy edge IDs (de1, jp1, sg1,
// br1, us2) are not accepted.
var regions = []string{"us1", "ie1", "au1"}

// products are the first labels of the accepted hosts.
var products = []string{"api", "messaging", "verify"}

// hosts is every host twilio-go builds for the products from an edge and
// a region (client.RequestHandler.BuildUrl): product.twilio.com with
// neither, product.REGION.twilio.com with a region alone,
// product.EDGE.REGION.twilio.com with both, and product.EDGE.us1.twilio.com
// with an edge alone, which the list already holds.
var hosts, hostProduct = func() ([]string, map[string]string) {
	var list []string
	byHost := map[string]string{}
	for _, p := range products {
		add := func(labels ...string) {
			h := strings.Join(append(append([]string{p}, labels...), "twilio", "com"), ".")
			list = append(list, h)
			byHost[h] = p
		}
		add()
		for _, r := range regions {
			add(r)
		}
		for _, e := range edges {
			for _, r := range regions {
				add(e, r)
			}
		}
	}
	return list, byHost
}()

// Vendor is Keybrake's knowledge of Twilio, for twilio-go v1.31. The zero
// value is ready to use; it holds no state and is safe for concurrent use.
type Vendor struct{}

var (
	_ vendors.Vendor     = Vendor{}
	_ vendors.Reconciler = Vendor{}
)

// Name returns "twilio", the vendor's name in policies and audit records.
func (Vendor) Name() string { return "twilio" }

// Hosts returns every host twilio-go v1.31 sends the accepted products'
// calls to: api.twilio.com, messaging.twilio.com and verify.twilio.com,
// each also as PRODUCT.REGION.twilio.com for the processing regions us1,
// ie1 and au1 and as PRODUCT.EDGE.REGION.twilio.com for every documented
// edge (ashburn, dublin, frankfurt, roaming, sao-paulo, singapore, sydney,
// tokyo, umatilla, and the Interconnect edges ashburn-ix, frankfurt-ix,
// london-ix, san-jose-ix, sao-paulo-ix, singapore-ix, sydney-ix, tokyo-ix)
// and each of those regions: 165 hosts. Hosts of products Keybrake does not read (voice, lookups,
// conversations, ...) are not among them, so their calls are refused. A
// fresh slice each time, so a caller cannot change another's.
func (Vendor) Hosts() []string { return slices.Clone(hosts) }

// ErrSettle wraps every failure of Settle to read what a call did. The
// reservation then stays counted at what was reserved.
var ErrSettle = errors.New("twilio: cannot read what the call did")

// ErrReconcile wraps every failure of Reconcile to read a price.
var ErrReconcile = errors.New("twilio: cannot read the price")

// Resolve does nothing: everything a Twilio call costs is in the request
// and the policy's price list, so Classify never asks for a lookup. A call
// that nonetheless carries one is refused with an error.
func (Vendor) Resolve(_ context.Context, c *vendors.Call, _ vendors.Need, _ vendors.Getter, _ vendors.Facts) ([]vendors.Fact, error) {
	if c.Lookup == "" && c.SubjectLookup == "" {
		return nil, nil
	}
	return nil, fmt.Errorf("twilio: no lookup is defined, got %q", strings.TrimSpace(c.Lookup+" "+c.SubjectLookup))
}
