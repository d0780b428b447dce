package policy

import (
	"maps"
	"slices"
	"sort"
	"strings"
)

// Stops are the revocations beyond the policy file, each with what made
// it, so that a refused call's reason names its real source.
type Stops struct {
	// Halt says what halts every agent ("Brake.Halt", "the kill switch
	// /etc/keybrake/keybrake.yaml.halt"); "" for nothing.
	Halt string
	// Revoked names, for each agent revoked beyond the file, what
	// revoked it.
	Revoked map[string]string
	// Tripped names, for each agent a rate limit with halt: true has
	// halted, the limit and where the halt is kept.
	Tripped map[string]Trip
}

// Trip is the halt of an agent by its own rate limit, until a person
// resumes it.
type Trip struct {
	Rule string // the rate limit: "agents.refund-bot.stripe.rate[0]"
	By   string // where it is kept and since when, as a person reads it: "the kill switch /etc/keybrake.yaml.halt since 2026-12-03T15:04:05Z"
}

// TripBy adds the trip of agent; an agent tripped already keeps its first.
func (s *Stops) TripBy(agent string, t Trip) {
	if s.Tripped == nil {
		s.Tripped = map[string]Trip{}
	}
	if _, ok := s.Tripped[agent]; !ok {
		s.Tripped[agent] = t
	}
}

// HaltBy adds a halt of every agent by what by names: where something
// halts them already, Halt names both ("Brake.Halt and the kill switch
// ...").
func (s *Stops) HaltBy(by string) { s.Halt = andSource(s.Halt, by) }

// RevokeBy adds a revocation of agent by what by names, naming both
// sources where the agent is revoked already.
func (s *Stops) RevokeBy(agent, by string) {
	if s.Revoked == nil {
		s.Revoked = map[string]string{}
	}
	s.Revoked[agent] = andSource(s.Revoked[agent], by)
}

// Add adds every stop of o to s, as HaltBy and RevokeBy do.
func (s *Stops) Add(o Stops) {
	if o.Halt != "" {
		s.HaltBy(o.Halt)
	}
	for _, a := range slices.Sorted(maps.Keys(o.Revoked)) {
		s.RevokeBy(a, o.Revoked[a])
	}
	for _, a := range slices.Sorted(maps.Keys(o.Tripped)) {
		s.TripBy(a, o.Tripped[a])
	}
}

func andSource(have, by string) string {
	if have == "" {
		return by
	}
	return have + " and " + by
}

// WithRevocations is WithStops for overrides whose source is not told:
// halt refuses every call, and every agent named in revoked is revoked.
func (p *Policy) WithRevocations(halt bool, revoked []string) *Policy {
	s := Stops{Revoked: map[string]string{}}
	if halt {
		s.Halt = "an override of the policy"
	}
	for _, a := range revoked {
		s.Revoked[a] = "an override of the policy"
	}
	return p.WithStops(s)
}

// WithStops returns p as an agent runner or operator has overridden it
// outside the file: s.Halt refuses every call, every agent in s.Revoked
// is revoked, whether or not the file says so, and every agent in
// s.Tripped is refused as tripped, each refusal naming its source. The result is a new Policy sharing p's unchanged
// parts; p is not modified. Its Hash is p's with the overrides appended
// ("a1b2...+halt", "a1b2...+revoked:refund-bot"), so the audit log shows
// that a call was decided under an override. With no overrides it returns
// p itself. Agents named in s.Revoked that the file does not know stay
// unknown (refused anyway).
func (p *Policy) WithStops(s Stops) *Policy {
	var names []string
	for a := range s.Revoked {
		if ag, ok := p.Agents[a]; ok && !ag.Revoked {
			names = append(names, a)
		}
	}
	var tripped []string
	for a := range s.Tripped {
		if ag, ok := p.Agents[a]; ok && ag.Tripped == nil {
			tripped = append(tripped, a)
		}
	}
	halt := s.Halt != ""
	if (!halt || p.Halt) && len(names) == 0 && len(tripped) == 0 {
		return p
	}
	q := *p
	var tags []string
	if halt && !p.Halt {
		q.Halt, q.HaltedBy = true, s.Halt
		tags = append(tags, "halt")
	}
	if len(names) > 0 || len(tripped) > 0 {
		q.Agents = make(map[string]*Agent, len(p.Agents))
		for k, v := range p.Agents {
			q.Agents[k] = v
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		for _, a := range names {
			ag := *p.Agents[a]
			ag.Revoked, ag.RevokedBy = true, s.Revoked[a]
			q.Agents[a] = &ag
		}
		tags = append(tags, "revoked:"+strings.Join(names, ","))
	}
	if len(tripped) > 0 {
		sort.Strings(tripped)
		for _, a := range tripped {
			ag := *q.Agents[a]
			trip := s.Tripped[a]
			ag.Tripped = &trip
			q.Agents[a] = &ag
		}
		tags = append(tags, "tripped:"+strings.Join(tripped, ","))
	}
	q.Hash = p.Hash + "+" + strings.Join(tags, "+")
	return &q
}
