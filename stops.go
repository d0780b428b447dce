package keybrake

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// Fleet stops. When Options.Store implements store.Stops (store/postgres),
// a halt or revocation is kept in the store and obeys every process on it:
// Brake.Halt, Resume, Revoke and Restore write there, and every Brake
// watches the store's stops and merges them into the stops of its policy
// in force (reload.go), each naming its source ("keybrake halt --db on
// HOST by USER at TIME"), so that a refusal says who stopped the agent.
// Publishing the merged policy wakes the calls waiting inside Keybrake as
// a local Revoke does.
//
// Failures fail closed. Open reads the stops before it returns, so a
// revoked agent is never admitted after a restart, and fails when it
// cannot. Brake.Halt and Revoke take effect in this process before the
// store is asked, and stay in effect here when the store cannot be
// written (the failure is reported to Options.ErrorLog and Logger). A
// watch whose read fails keeps the stops it knew; calls are then refused
// by the store's own errors anyway.

// fleetWrite bounds Brake.Halt, Resume, Revoke and Restore's write to the
// store.
const fleetWrite = 10 * time.Second

// fleetPending is how long a stop this process wrote holds here before the
// watch has seen it: a read the watch began before the write committed
// must not lift it meanwhile.
const fleetPending = 5 * time.Second

type stopID struct {
	kind    store.StopKind
	subject string
}

func idOf(st store.Stop) stopID { return stopID{st.Kind, st.Subject} }

// fleetState is the fleet's part of policyState, guarded by its mu.
type fleetState struct {
	stops   store.Stops
	known   []store.Stop           // as the watch (or Open) last read them
	pending map[stopID]store.Stop  // written here, not yet seen by the watch
	token   map[stopID]*struct{}   // which write's expiry may drop pending
	learned func(rec audit.Record) // logs a change the watch brought
	report  func(error)
	cancel  context.CancelFunc // ends the watch
	done    chan struct{}      // closed when it has ended
}

// inForce is known with what this process wrote and the watch has not
// confirmed yet.
func (f *fleetState) inForce() []store.Stop {
	if len(f.pending) == 0 {
		return f.known
	}
	out := slices.Clone(f.known)
	for id, st := range f.pending {
		if !slices.ContainsFunc(out, func(k store.Stop) bool { return idOf(k) == id }) {
			out = append(out, st)
		}
	}
	return out
}

// fleetHalt and fleetRevoked are the fleet's part of policyState.stops.
// Called with mu held.
func (s *policyState) fleetStops() (halt string, revoked map[string][]string, keys map[string]string) {
	revoked, keys = map[string][]string{}, map[string]string{}
	if s.fleet == nil {
		return "", revoked, keys
	}
	stops := s.fleet.inForce()
	sort.Slice(stops, func(i, j int) bool {
		if stops[i].Kind != stops[j].Kind {
			return stops[i].Kind < stops[j].Kind
		}
		return stops[i].Subject < stops[j].Subject
	})
	for _, st := range stops {
		switch {
		case st.Kind == store.StopHalt && st.Subject == "":
			halt = st.Source()
		case st.Kind == store.StopHalt && strings.HasPrefix(st.Reason, tripPrefix):
			// A trip: addTrips (trip.go) puts it in force as one.
		case st.Kind == store.StopHalt || st.Kind == store.StopRevoke:
			revoked[st.Subject] = append(revoked[st.Subject], st.Source())
		case st.Kind == store.StopKey:
			keys[st.Subject] = st.Source()
		}
	}
	return halt, revoked, keys
}

// stopSources is stops for a reader that does not hold mu: the sources
// of the stops beyond the file, known whether or not a policy is in force.
func (s *policyState) stopSources() policy.Stops {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stops()
}

// keyStoppedBy says what revoked the agent key id fleet-wide, or "".
func (s *policyState) keyStoppedBy(id string) string {
	if m := s.keys.Load(); m != nil {
		return (*m)[id]
	}
	return ""
}

// attachFleet reads the fleet's stops, before any call is admitted.
func (s *policyState) attachFleet(st store.Stops, learned func(audit.Record), report func(error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), fleetWrite)
	defer cancel()
	stops, err := st.ReadStops(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fleet = &fleetState{stops: st, known: stops, pending: map[stopID]store.Stop{}, token: map[stopID]*struct{}{},
		learned: learned, report: report}
	s.publish()
	return nil
}

// fleetReadReport is how often a fleet's stops that keep failing to read
// are reported again: the watch reads every second, and an on-call whose
// database is down wants one line a minute, not sixty.
const fleetReadReport = time.Minute

// watchFleet follows the fleet's stops until ctx ends. A read that fails
// is reported at once, then at most once every fleetReadReport while the
// reads keep failing, and the first read that works again once.
func (s *policyState) watchFleet(ctx context.Context) {
	f := s.fleet
	var (
		failed0, reported time.Time // the first failure of the run, and the last report
		failures          int
	)
	err := f.stops.WatchStops(ctx, func(stops []store.Stop, err error) {
		now := time.Now()
		if err != nil {
			failures++
			switch {
			case failures == 1:
				failed0, reported = now, now
				f.report(failed("fleet_stops_read", fmt.Errorf("keybrake: reading the fleet's stops: %w (the stops known are kept)", err)))
			case now.Sub(reported) >= fleetReadReport:
				reported = now
				f.report(failed("fleet_stops_read", fmt.Errorf("keybrake: reading the fleet's stops still fails, %d reads since %s: %w (the stops known are kept)",
					failures, failed0.UTC().Format(time.RFC3339), err)))
			}
			return
		}
		if failures > 0 {
			f.report(recovered("fleet_stops_read", fmt.Errorf("keybrake: reading the fleet's stops works again, after %d failed reads since %s",
				failures, failed0.UTC().Format(time.RFC3339))))
			failures = 0
		}
		s.learnFleet(stops)
	})
	if err != nil && ctx.Err() == nil {
		f.report(failed("fleet_stops_watch", fmt.Errorf("keybrake: watching the fleet's stops ended: %w", err)))
	}
}

// learnFleet puts the stops the watch read in force.
func (s *policyState) learnFleet(stops []store.Stop) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fleet
	before := describeStops(f.inForce())
	f.known = stops
	for _, st := range stops {
		delete(f.pending, idOf(st))
		delete(f.token, idOf(st))
	}
	after := describeStops(f.inForce())
	if after == before {
		return
	}
	s.publish()
	f.learned(audit.Record{Time: s.now(), Vendor: "keybrake", Event: "fleet_stops", Outcome: audit.None,
		Reason: "the fleet's stops changed: " + after})
}

func describeStops(stops []store.Stop) string {
	var out []string
	for _, st := range stops {
		what := "every agent halted"
		switch {
		case st.Kind == store.StopHalt && st.Subject != "":
			what = "agent " + st.Subject + " halted"
		case st.Kind == store.StopRevoke:
			what = "agent " + st.Subject + " revoked"
		case st.Kind == store.StopKey:
			what = "agent key " + st.Subject + " revoked"
		}
		out = append(out, what+" by "+st.Source())
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
}

// processName is how a stop made by a Brake names its source.
func processName(method string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("Brake.%s in pid %d on %s", method, os.Getpid(), host)
}

// setFleetStop is Halt, Resume, Revoke and Restore on a fleet store. The
// local switch (setHalted, setRevoked) is thrown first when stopping, so
// the stop holds here whatever the store says; once the store has it, the
// fleet's stop holds instead, and Resume or Restore anywhere lifts it.
func (s *policyState) setFleetStop(method string, kind store.StopKind, agent string, on bool) {
	f := s.fleet
	local := func(v bool, quiet bool) {
		if kind == store.StopHalt {
			s.setHaltedAs(v, quiet)
		} else {
			s.setRevokedAs(agent, v, quiet)
		}
	}
	if on {
		local(true, true)
	}
	st := store.Stop{Kind: kind, Subject: agent, By: processName(method), Time: s.now()}
	ctx, cancel := context.WithTimeout(context.Background(), fleetWrite)
	defer cancel()
	var err error
	if on {
		var inForce store.Stop
		if inForce, _, err = f.stops.SetStop(ctx, st); err == nil {
			s.mu.Lock()
			s.holdWritten(inForce)
			s.mu.Unlock()
			local(false, true) // publishes, with the fleet's stop in force
			return
		}
		s.emitLocal(kind, agent, true, err)
		f.report(writeFailed(method, agent, fmt.Errorf("keybrake: Brake.%s: the fleet's store could not be written; in force in this process only: %w", method, err)))
		return
	}
	local(false, true)
	if _, err = f.stops.ClearStop(ctx, st); err != nil {
		f.report(writeFailed(method, agent, fmt.Errorf("keybrake: Brake.%s: the fleet's store could not be written; its stop stays in force: %w", method, err)))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f.lifted(idOf(st))
	s.publish()
}

// lifted forgets a stop this process lifted in the fleet's store, without
// waiting for the watch to read that it is gone. Called with mu held.
func (f *fleetState) lifted(id stopID) {
	delete(f.pending, id)
	delete(f.token, id)
	f.known = slices.DeleteFunc(slices.Clone(f.known), func(k store.Stop) bool { return idOf(k) == id })
}

// holdWritten keeps a stop this process wrote to the fleet's store in
// force here until the watch has read it (a read it began between the
// commit and now would not show it, and it might not read again until the
// next change), or until fleetPending has passed. Called with mu held.
func (s *policyState) holdWritten(inForce store.Stop) {
	f := s.fleet
	id, tok := idOf(inForce), &struct{}{}
	if slices.ContainsFunc(f.known, func(k store.Stop) bool { return idOf(k) == id }) {
		return
	}
	f.pending[id], f.token[id] = inForce, tok
	time.AfterFunc(fleetPending, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if f.token[id] == tok {
			delete(f.pending, id)
			delete(f.token, id)
			s.publish()
		}
	})
}

// writeFailed is err, a write of Brake.method's stop of agent ("" for
// every agent) that the fleet's store refused, as the log keys it.
func writeFailed(method, agent string, err error) error {
	attrs := []slog.Attr{slog.String("method", method)}
	if agent != "" {
		attrs = append(attrs, slog.String("agent", agent))
	}
	return failed("fleet_stop_write", err, attrs...)
}

// emitLocal audits a stop that holds in this process only, since the
// fleet's store refused it.
func (s *policyState) emitLocal(kind store.StopKind, agent string, on bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == store.StopHalt {
		s.emit("halt", fmt.Sprintf("every agent halted by the agent runner, in this process only: the fleet's store failed: %v", err),
			map[string]string{"halted": fmt.Sprint(on)})
		return
	}
	s.emit("revoke", fmt.Sprintf("agent %s revoked by the agent runner, in this process only: the fleet's store failed: %v", agent, err),
		map[string]string{"agent": agent, "revoked": fmt.Sprint(on)})
}

// openFleet reads the fleet's stops, when the store keeps them, and
// follows them until Shutdown (closeFleet).
func (b *Brake) openFleet() error {
	fs, ok := b.store.(store.Stops)
	if !ok {
		return nil
	}
	if err := b.policies.attachFleet(fs, func(rec audit.Record) { b.logEvent(&rec) }, b.report); err != nil {
		return fmt.Errorf("keybrake: reading the fleet's stops: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := b.policies.fleet
	f.cancel, f.done = cancel, make(chan struct{})
	go func() {
		defer close(f.done)
		b.policies.watchFleet(ctx)
	}()
	return nil
}

// closeFleet stops following the fleet's stops.
func (b *Brake) closeFleet() {
	if f := b.policies.fleet; f != nil && f.cancel != nil {
		f.cancel()
		<-f.done
	}
}

// revoke and halt are Brake.Revoke, Restore, Halt and Resume: in the
// fleet's store when there is one, else in this process.
func (s *policyState) revoke(method, agent string, on bool) {
	if s.fleet != nil {
		s.setFleetStop(method, store.StopRevoke, agent, on)
		return
	}
	s.setRevoked(agent, on)
}

func (s *policyState) halt(method string, on bool) {
	if s.fleet != nil {
		s.setFleetStop(method, store.StopHalt, "", on)
		return
	}
	s.setHalted(on)
}
