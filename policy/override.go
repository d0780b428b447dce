package policy

import (
	"sort"
	"strings"
)

// WithRevocations returns p as an agent runner or operator has overridden
// it outside the file: halt refuses every call, and every agent named in
// revoked is revoked, whether or not the file says so. The result is a new
// Policy sharing p's unchanged parts; p is not modified. Its Hash is p's
// with the overrides appended ("a1b2...+halt", "a1b2...+revoked:refund-bot"),
// so the audit log shows that a call was decided under an override. With no
// overrides it returns p itself. Agents named in revoked that the file does
// not know stay unknown (refused anyway).
func (p *Policy) WithRevocations(halt bool, revoked []string) *Policy {
	var names []string
	for _, a := range revoked {
		if ag, ok := p.Agents[a]; ok && !ag.Revoked {
			names = append(names, a)
		}
	}
	if (!halt || p.Halt) && len(names) == 0 {
		return p
	}
	q := *p
	var tags []string
	if halt && !p.Halt {
		q.Halt = true
		tags = append(tags, "halt")
	}
	if len(names) > 0 {
		sort.Strings(names)
		q.Agents = make(map[string]*Agent, len(p.Agents))
		for k, v := range p.Agents {
			q.Agents[k] = v
		}
		for _, a := range names {
			ag := *p.Agents[a]
			ag.Revoked = true
			q.Agents[a] = &ag
		}
		tags = append(tags, "revoked:"+strings.Join(names, ","))
	}
	q.Hash = p.Hash + "+" + strings.Join(tags, "+")
	return &q
}
