package policy

// Decision is what Keybrake decided about one call. A denial is a value, not
// an error: every decision but Allowed refuses the call before any byte of it
// leaves the process.
type Decision string

// The decisions, and the HTTP status a vendor SDK sees for each refusal.
const (
	Allowed Decision = "allowed" // every check passed; the vendor's own response
	Blocked Decision = "blocked" // no allow rule matches, a parameter condition fails, or the request is bad or ambiguous: 403
	Scoped  Decision = "scoped"  // the call touches a customer, account or recipient outside the agent's scope: 403
	Capped  Decision = "capped"  // the per-call maximum or a daily cap would be exceeded: 402
	Revoked Decision = "revoked" // the agent, or every agent, is revoked: 401
	Held    Decision = "held"    // a person must approve this exact request first (approve_above, approve): 403
	Error   Decision = "error"   // Keybrake cannot decide safely (store, lookup, unknown amount, invalid policy): 503
)

// Status is the HTTP status a refusal answers with; 200 for Allowed.
func (d Decision) Status() int {
	switch d {
	case Allowed:
		return 200
	case Blocked, Scoped, Held:
		return 403
	case Capped:
		return 402
	case Revoked:
		return 401
	default:
		return 503
	}
}

// Valid reports whether d is one of the decisions above.
func (d Decision) Valid() bool {
	switch d {
	case Allowed, Blocked, Scoped, Capped, Revoked, Held, Error:
		return true
	}
	return false
}
