package stripe

import "github.com/keybrake/keybrake/vendors"

// secrets are the credentials Stripe issues: secret and restricted keys
// (test and live) and webhook signing secrets.
var secrets = []string{
	`(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+`,
	`whsec_[A-Za-z0-9]+`,
}

func init() { vendors.RedactSecrets(secrets...) }

// Info describes Stripe to the shared code: a grant may scope the
// customers and the connected accounts an agent acts on; amounts come from
// the request or a lookup, so nothing is priced by the policy.
func (Vendor) Info() vendors.Info {
	return vendors.Info{
		Help: "Stripe (stripe-go v76): amounts from the request or a lookup; grants scope customers and connected accounts",
		Grant: []vendors.Key{
			{Name: "customers", Kind: vendors.CustomersKey,
				Help: "the customers the agent may touch: created_by_agent, ids, metadata, allow_no_customer, per-customer daily_cap and daily_count, max_refunds_per_charge"},
			{Name: "accounts", Kind: vendors.AccountsKey,
				Help: "the connected accounts (Stripe-Account) the agent may act for: ids, platform"},
		},
		RequestIDHeaders: []string{"Request-Id"},
		ReplayHeader:     "Idempotent-Replayed",
		Secrets:          append([]string(nil), secrets...),
	}
}
