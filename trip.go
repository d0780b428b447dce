package keybrake

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/atomicfile"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// Trips. A rate limit with halt: true that refuses a call halts its agent
// until a person resumes it: a loop caught by its velocity limit stops,
// rather than running at the limit for the rest of the day. The halt is
// kept where it outlives the process and reaches whoever shares the
// agent's budget: in the fleet's store (a StopHalt of the agent whose
// Reason is "tripped by RULE"), else in the kill switch file (a line
// "AGENT # tripped by RULE at TIME"). `keybrake resume` lifts it (with
// AGENT, only that agent's), as does Brake.Resume. It holds in this
// process from the instant it trips, before it is kept, and goes on
// holding here when it cannot be kept (reported to Options.ErrorLog). The
// trip is an audit event ("trip"), which pages through the notifier.

// tripPrefix begins what keeps a trip: the fleet stop's Reason, the kill
// switch line's comment.
const tripPrefix = "tripped by "

// parseTrip reads a trip kept in text ("tripped by RULE at TIME", or
// "tripped by RULE"), where names where it is kept.
func parseTrip(text, where string) (policy.Trip, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), tripPrefix)
	if !ok || rest == "" {
		return policy.Trip{}, false
	}
	rule, at, _ := strings.Cut(rest, " at ")
	t := policy.Trip{Rule: rule, By: where}
	if at != "" {
		t.By += " since " + at
	}
	return t, true
}

// trip is the transport's Trip: agent's rate limit rule has refused a
// call, saying reason.
func (b *Brake) trip(agent, rule, reason string) {
	s := b.policies
	now := s.now().UTC()
	s.mu.Lock()
	if s.trippedLocked(agent) {
		s.mu.Unlock()
		return
	}
	if s.trips == nil {
		s.trips = map[string]policy.Trip{}
	}
	s.trips[agent] = policy.Trip{Rule: rule, By: fmt.Sprintf("this process (pid %d) since %s", os.Getpid(), now.Format(time.RFC3339))}
	s.publish()
	where := "in this process only"
	err := s.keepTrip(agent, rule, now)
	if err == nil {
		where = "kept in the kill switch " + s.haltFile
		if s.fleet != nil {
			where = "kept in the fleet's store"
		}
	} else {
		b.report(failed("trip_write", fmt.Errorf("keybrake: agent %s tripped by %s: the trip could not be kept, it holds in this process only: %w", agent, rule, err)))
	}
	hash := "invalid"
	if pol, err := s.inForce(); err == nil {
		hash = pol.Hash
	}
	s.event(audit.Record{
		Time: s.now(), Agent: agent, Vendor: "keybrake", Path: s.path, Event: "trip", Rule: rule, Outcome: audit.None, PolicyHash: hash,
		Reason: fmt.Sprintf("agent %s halted: its rate limit %s refused a call (%s); %s; 'keybrake resume %s' lets it call again", agent, rule, reason, where, agent),
		Params: map[string]string{"agent": agent, "rule": rule},
	})
	s.mu.Unlock()
}

// trippedLocked reports whether agent is tripped already. Called with mu
// held.
func (s *policyState) trippedLocked(agent string) bool {
	st := policy.Stops{}
	s.addTrips(&st)
	_, ok := st.Tripped[agent]
	return ok
}

// keepTrip writes the trip where it outlives the process and, once it is
// there, drops the local one: the kept trip is then the one `keybrake
// resume` lifts. Called with mu held.
func (s *policyState) keepTrip(agent, rule string, at time.Time) error {
	if f := s.fleet; f != nil {
		ctx, cancel := context.WithTimeout(context.Background(), fleetWrite)
		defer cancel()
		st := store.Stop{Kind: store.StopHalt, Subject: agent, By: processName("trip"), Reason: tripPrefix + rule, Time: at}
		inForce, _, err := f.stops.SetStop(ctx, st)
		if err != nil {
			return err
		}
		s.holdWritten(inForce) // stops.go
	} else {
		old, err := os.ReadFile(s.haltFile)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		if len(old) > 0 && old[len(old)-1] != '\n' {
			old = append(old, '\n')
		}
		if err == nil && len(strings.TrimSpace(stripComments(string(old)))) == 0 {
			// The file halts every agent already: a line would turn it
			// into a halt of this one alone.
			return nil
		}
		line := fmt.Sprintf("%s # %s%s at %s\n", agent, tripPrefix, rule, at.Format(time.RFC3339))
		if err := atomicfile.Write(s.haltFile, append(old, line...), 0o600); err != nil {
			return err
		}
		s.kill = readKillSwitch(s.haltFile)
	}
	delete(s.trips, agent)
	s.publish()
	return nil
}

func stripComments(text string) string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		b.WriteString(line)
	}
	return b.String()
}

// addTrips adds every trip in force to st: this process's, the kill
// switch's and the fleet's. Called with mu held.
func (s *policyState) addTrips(st *policy.Stops) {
	for _, a := range slices.Sorted(maps.Keys(s.trips)) {
		st.TripBy(a, s.trips[a])
	}
	if s.kill.present {
		for _, a := range slices.Sorted(maps.Keys(s.kill.trips)) {
			st.TripBy(a, s.kill.trips[a])
		}
	}
	if s.fleet != nil {
		fleet, _ := FleetStops(s.fleet.inForce())
		for _, a := range slices.Sorted(maps.Keys(fleet.Tripped)) {
			st.TripBy(a, fleet.Tripped[a])
		}
	}
}

// resumeTrips lifts every trip: Brake.Resume. The kill switch keeps its
// other lines; a file of trips alone is removed.
func (s *policyState) resumeTrips() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.trips)
	var errs []error
	if s.fleet != nil {
		ctx, cancel := context.WithTimeout(context.Background(), fleetWrite)
		defer cancel()
		for _, stop := range s.fleet.inForce() {
			if stop.Kind != store.StopHalt || stop.Subject == "" || !strings.HasPrefix(stop.Reason, tripPrefix) {
				continue
			}
			lift := store.Stop{Kind: store.StopHalt, Subject: stop.Subject, By: processName("Resume"), Time: s.now()}
			if _, err := s.fleet.stops.ClearStop(ctx, lift); err != nil {
				errs = append(errs, err)
				continue
			}
			s.fleet.lifted(idOf(stop)) // stops.go
		}
	}
	if len(s.kill.trips) > 0 {
		if _, err := removeLines(s.haltFile, func(_, comment string) bool {
			_, ok := parseTrip(comment, "")
			return ok
		}); err != nil {
			errs = append(errs, err)
		}
		s.kill = readKillSwitch(s.haltFile)
	}
	s.publish()
	if len(errs) > 0 {
		return fmt.Errorf("keybrake: Brake.Resume: a trip could not be lifted: %v", errs[0])
	}
	return nil
}

// ResumeAgents removes from the kill switch file at path the lines that
// halt the agents named, tripped by a rate limit or halted by `keybrake
// halt AGENT`, keeps the others, and removes the file when no agent is
// left in it. It reports how many lines it removed. A file that names no
// agent halts every agent, and is left as it is. `keybrake resume AGENT`
// is it.
func ResumeAgents(path string, agents []string) (int, error) {
	return removeLines(path, func(name, _ string) bool { return slices.Contains(agents, name) })
}

// removeLines rewrites the kill switch without the lines drop selects,
// and removes it when no agent line is left. It reports how many lines
// went.
func removeLines(path string, drop func(name, comment string) bool) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	var keep []string
	removed, names := 0, 0
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		name, comment, _ := strings.Cut(line, "#")
		name = strings.TrimSpace(name)
		if name != "" && drop(name, comment) {
			removed++
			continue
		}
		if name != "" {
			names++
		}
		keep = append(keep, line)
	}
	if removed == 0 {
		return 0, nil
	}
	if names == 0 {
		return removed, os.Remove(path)
	}
	return removed, atomicfile.Write(path, []byte(strings.Join(keep, "\n")+"\n"), 0o600)
}

// level is the transport's Level: a reservation took l to pct percent of
// its Max (alert_at). It is an audit event ("alert"), which alerts through
// the notifier.
func (b *Brake) level(agent, vendor string, l policy.Limit, pct, used int64) {
	pol, _ := b.policies.inForce()
	hash := ""
	if pol != nil {
		hash = pol.Hash
	}
	show := func(n int64) string {
		if l.Unit == "units" || l.Unit == "calls" {
			return fmt.Sprintf("%d %s", n, l.Unit)
		}
		return money.Amount{Micros: n, Currency: money.Currency(l.Unit)}.String()
	}
	name := l.Rule[strings.LastIndexByte(l.Rule, '.')+1:]
	b.recordEvent(audit.Record{
		Time: b.opts.Clock(), Agent: agent, Vendor: vendor, Event: "alert", Rule: l.Rule, Outcome: audit.None, PolicyHash: hash,
		Reason: fmt.Sprintf("%s on %s reached %d%% of its %s of %s (period ending %s): %s counted", orEvery(agent), vendor, pct, name, show(l.Max), l.Period, show(used)),
		Params: map[string]string{"level": fmt.Sprintf("%d%%", pct), "key": l.Key},
	})
}

func orEvery(agent string) string {
	if agent == "" {
		return "every agent"
	}
	return agent
}

// FleetStops reads a fleet's stops (store.Stops.ReadStops) as a Brake on
// that store puts them in force, for a reader without one (`keybrake
// status --db postgres://...`): the halt of every agent, the agents
// revoked or halted by name, the agents tripped by their rate limits,
// each naming its source, and the revoked agent keys.
func FleetStops(list []store.Stop) (stops policy.Stops, revokedKeys map[string]string) {
	stops.Revoked, revokedKeys = map[string]string{}, map[string]string{}
	for _, s := range list {
		switch {
		case s.Kind == store.StopHalt && s.Subject == "":
			stops.HaltBy(s.Source())
		case s.Kind == store.StopKey:
			revokedKeys[s.Subject] = s.Source()
		case s.Kind == store.StopHalt && strings.HasPrefix(s.Reason, tripPrefix):
			t, _ := parseTrip(s.Reason, "the fleet's store, by "+s.By)
			t.By += " since " + s.Time.UTC().Format(time.RFC3339)
			stops.TripBy(s.Subject, t)
		default:
			stops.RevokeBy(s.Subject, s.Source())
		}
	}
	return stops, revokedKeys
}
