package transport

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/vendors"
)

// gather finds whom the call touches: the customer and account
// (Stripe), the destinations and senders (Twilio, Resend), as the vendor
// classified and resolved them, and what the policy needs that Keybrake
// knows itself (whether this agent created the customer) or must fetch (a
// customer's metadata). It looks up only what the grant needs; decide then
// asks the policy.
func (t *RoundTripper) gather(c *call) (policy.Verdict, bool) {
	vc := c.vc
	s := requestSubject(vc)
	if c.needs.Customer {
		// A call the vendor could trace to no customer, and that does
		// not create one, may reach any customer's objects: a list or
		// search without a filter, an object Keybrake does not know.
		s.AllCustomers = vc.Customer == "" && !vc.NoCustomer && vc.Creates != "customer"
	}
	ctx := c.req.Context()
	if s.Customer != "" && c.needs.Created {
		_, created, err := t.env.store.Fact(ctx, createdFact(t.vendor.Name(), vc.Account, t.agent, s.Customer))
		if err != nil {
			return policy.Verdict{Decision: policy.Error, Rule: "store", Code: "keybrake_store_error",
				Reason: "could not read which customers this agent created: " + err.Error()}, false
		}
		s.CreatedByAgent = created
	}
	if s.Customer != "" && !s.CreatedByAgent && c.needs.Metadata {
		lctx, stop := t.untilRefused(c)
		md, err := t.metadata(lctx, c, s.Customer)
		if v, ok := stop(); !ok {
			return v, false
		}
		if err != nil {
			return policy.Verdict{Decision: policy.Error, Rule: c.rule.ID, Code: "keybrake_lookup_failed",
				Reason: fmt.Sprintf("the metadata of customer %s could not be read: %v", s.Customer, err)}, false
		}
		s.Metadata = md
	}
	c.who = s
	c.gathered = true
	return policy.Verdict{}, true
}

// requestSubject is whom the call touches as its request (and Resolve)
// says, before any lookup of Keybrake's own.
func requestSubject(vc *vendors.Call) policy.Subject {
	return policy.Subject{
		Customer:          vc.Customer,
		NoCustomer:        vc.NoCustomer,
		Account:           vc.Account,
		Recipients:        vc.Recipients,
		Senders:           vc.Senders,
		MostRecipients:    vc.MostRecipients,
		RecipientsUnknown: vc.AudienceUnknown,
	}
}

// createdFact names the fact that agent created customer on vendor (per
// connected account).
func createdFact(vendor, account, agent, customer string) string {
	return "created/" + vendor + "/" + account + "/" + agent + "/" + customer
}

// rememberCreated records, synchronously (the agent's next call may act on
// it), that the agent created customer.
func (t *RoundTripper) rememberCreated(c *call, id string) {
	ctx, cancel := t.env.writeContext(c.req.Context())
	defer cancel()
	if err := t.env.store.SetFact(ctx, createdFact(t.vendor.Name(), c.vc.Account, t.agent, id), "1"); err != nil {
		t.env.report(&Failure{Op: "created_customer_write", Agent: t.agent, Vendor: t.vendor.Name(),
			Err: fmt.Errorf("keybrake: customer %s created by %s could not be recorded; calls on it will be out of scope: %w", id, t.agent, err)})
	}
}

// metadataTTL is how long a customer's metadata is trusted: it can change,
// so a cohort by metadata is looked up again after this.
const metadataTTL = time.Minute

func (t *RoundTripper) metadata(ctx context.Context, c *call, customer string) (map[string]string, error) {
	reader, ok := t.vendor.(vendors.CustomerReader)
	if !ok {
		return nil, fmt.Errorf("%s customers carry no metadata Keybrake can read", t.vendor.Name())
	}
	key := t.vendor.Name() + "/" + c.vc.Account + "/" + customer
	now := t.env.now()
	if md, ok := t.env.metadata.get(key, now); ok {
		return md, nil
	}
	md, err := reader.CustomerMetadata(ctx, customer, t.getter(c))
	if err != nil {
		return nil, err
	}
	t.env.metadata.put(key, md, now.Add(metadataTTL))
	return md, nil
}

// metadataCache holds customers' metadata for a short while, bounded.
type metadataCache struct {
	mu      sync.Mutex
	entries map[string]metadataEntry
}

type metadataEntry struct {
	md      map[string]string
	expires time.Time
}

const metadataCacheSize = 10000

func (m *metadataCache) get(key string, now time.Time) (map[string]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	return e.md, true
}

func (m *metadataCache) put(key string, md map[string]string, expires time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil || len(m.entries) >= metadataCacheSize {
		m.entries = make(map[string]metadataEntry)
	}
	m.entries[key] = metadataEntry{md: md, expires: expires}
}
