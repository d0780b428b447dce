package keybrake

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/watch"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/vendors"
)

// Policies change under a running agent. The file is watched (see
// internal/watch); every change is read, hashed, parsed and validated in
// full, and only then swapped in with one atomic store, so a call sees the
// old policy or the new one, never a mix. Around the file sit the
// revocations that must not depend on a parse succeeding: the kill switch
// file, and Revoke and Halt from the agent runner.

// ErrPolicyInvalid is the error a call is refused with (503,
// keybrake_policy_invalid) while the policy file does not parse and
// Options.KeepLastValidPolicy is off.
var ErrPolicyInvalid = errors.New("keybrake: the policy file is invalid")

// inForce is what calls are decided by: the effective policy, or why no
// policy is in force.
type inForce struct {
	pol      *policy.Policy
	err      error
	replaced chan struct{} // closed when a newer state is published
}

// settleInvalid is how long a policy file that does not parse is given to
// finish being written before it is declared invalid: an in-place write
// shows an empty or half-written file first. An empty file is the state
// between an in-place write's truncation and its data, which a busy or
// descheduled writer can stretch, so it is given longer.
const (
	settleInvalid = 60 * time.Millisecond
	settleEmpty   = time.Second
)

// policyState is the policy machinery of a Brake. Calls only load current;
// everything else runs in the watcher's goroutine or under mu.
type policyState struct {
	path     string
	haltFile string
	keepLast bool
	now      func() time.Time
	vendors  []vendors.Vendor       // what the policy may name
	event    func(rec audit.Record) // writes a reload event to the audit log

	current atomic.Pointer[inForce]

	mu        sync.Mutex
	file      *policy.Policy // last valid policy read from the file
	fileHash  string         // hash of the bytes last read, valid or not
	invalid   error          // the file on disk does not parse, or is gone
	failing   string         // hash of failing bytes being given time to settle
	failSince time.Time
	kill      killSwitch
	halted    bool                   // Halt()
	revoked   map[string]bool        // Revoke(agent)
	trips     map[string]policy.Trip // tripped here, not yet kept (trip.go)
	fleet     *fleetState            // the shared store's stops (stops.go); nil without one
	shadow    *shadowState           // the shadow policy (shadow.go); nil without one

	keys atomic.Pointer[map[string]string] // the fleet's revoked agent keys, for the proxy
}

// killSwitch is the state of the halt file: while it exists, it revokes the
// agents it names, one per line, or every agent when it names none or
// cannot be read.
type killSwitch struct {
	present bool
	agents  []string // nil, with no trips: every agent
	// trips are the agents halted by their own rate limits (trip.go), in
	// lines "refund-bot # tripped by agents.refund-bot.stripe.rate[0] at
	// TIME": halted like the others, and refused as tripped.
	trips map[string]policy.Trip
	hash  string
}

// all reports whether the kill switch halts every agent.
func (k killSwitch) all() bool { return k.present && k.agents == nil && len(k.trips) == 0 }

func (k killSwitch) describe() string {
	switch {
	case !k.present:
		return "absent"
	case k.all() && k.hash == "unreadable":
		return "present but unreadable: every agent halted"
	case k.all():
		return "present: every agent"
	}
	names := slices.Clone(k.agents)
	for _, a := range slices.Sorted(maps.Keys(k.trips)) {
		names = append(names, a+" (tripped by "+k.trips[a].Rule+")")
	}
	return "present: halts " + strings.Join(names, ", ")
}

// load reads everything once, at Open: a policy that does not parse then
// is an error, not a state.
func (s *policyState) load() error {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	pol, err := policy.ParseFor(s.path, data, s.vendors)
	if err != nil {
		return err
	}
	s.file, s.fileHash = pol, pol.Hash
	s.kill = readKillSwitch(s.haltFile)
	s.publish()
	return nil
}

// publish computes the effective policy and swaps it in. Called with mu
// held (or before anyone else can see s).
func (s *policyState) publish() {
	_, _, keys := s.fleetStops()
	s.keys.Store(&keys)
	s.publishShadow() // shadow.go: with the same stops
	if s.invalid != nil && !s.keepLast {
		s.swap(&inForce{err: s.invalid})
		return
	}
	s.swap(&inForce{pol: s.file.WithStops(s.stops())})
}

// stops are the revocations beyond the file, each naming its source, as
// a refused call's reason and `keybrake status` say them. Called with mu
// held.
func (s *policyState) stops() policy.Stops {
	kill := "the kill switch " + s.haltFile
	st := policy.Stops{Revoked: map[string]string{}}
	if s.halted {
		st.HaltBy("Brake.Halt")
	}
	if s.kill.all() {
		st.HaltBy(kill)
	}
	fleetHalt, fleetRevoked, _ := s.fleetStops()
	if fleetHalt != "" {
		st.HaltBy(fleetHalt)
	}
	for a := range s.revoked {
		st.RevokeBy(a, "Brake.Revoke")
	}
	if s.kill.present {
		for _, a := range s.kill.agents {
			st.RevokeBy(a, kill)
		}
	}
	for _, a := range slices.Sorted(maps.Keys(fleetRevoked)) {
		for _, by := range fleetRevoked[a] {
			st.RevokeBy(a, by)
		}
	}
	s.addTrips(&st) // trip.go
	return st
}

// swap puts f in force and wakes whoever waits on the state it replaces.
func (s *policyState) swap(f *inForce) {
	f.replaced = make(chan struct{})
	if old := s.current.Swap(f); old != nil {
		close(old.replaced)
	}
}

// changed returns a channel closed when the policy in force is next
// replaced, so that calls waiting inside Keybrake can be decided again.
func (s *policyState) changed() <-chan struct{} {
	return s.current.Load().replaced
}

func (s *policyState) inForce() (*policy.Policy, error) {
	f := s.current.Load()
	return f.pol, f.err
}

// check is the watcher's callback: it re-reads the kill switch and the
// policy and publishes what changed.
func (s *policyState) check() (again time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	again = s.checkFile()
	s.checkShadow() // shadow.go
	if k := readKillSwitch(s.haltFile); k.present != s.kill.present || k.hash != s.kill.hash {
		old := s.kill
		s.kill = k
		s.publish()
		s.emit("kill_switch", fmt.Sprintf("kill switch %s: %s (was %s)", s.haltFile, k.describe(), old.describe()), nil)
	}
	return again
}

// checkFile reads the policy file; it returns how soon to look again when
// the file seems to be in the middle of a write.
func (s *policyState) checkFile() time.Duration {
	data, err := watch.ReadStable(s.path, nil)
	if errors.Is(err, watch.ErrUnstable) {
		return 5 * time.Millisecond
	}
	if err != nil {
		if s.invalid == nil || s.fileHash != "" {
			s.fileHash = ""
			s.setInvalid(fmt.Errorf("%w: %w", ErrPolicyInvalid, err), "")
		}
		return 0
	}
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])[:16]
	if h == s.fileHash {
		return 0
	}
	pol, perr := policy.ParseFor(s.path, data, s.vendors)
	if perr != nil {
		now := s.now()
		if s.failing != h {
			s.failing, s.failSince = h, now
		}
		settle := settleInvalid
		if len(data) == 0 {
			settle = settleEmpty
		}
		if now.Sub(s.failSince) < settle {
			return 10 * time.Millisecond
		}
		s.fileHash = h
		s.setInvalid(fmt.Errorf("%w: %w", ErrPolicyInvalid, perr), h)
		return 0
	}
	s.failing = ""
	old := s.currentHash()
	s.file, s.fileHash, s.invalid = pol, h, nil
	s.publish()
	s.emit("policy_reload", fmt.Sprintf("policy reloaded: %s -> %s", old, pol.Hash), map[string]string{
		"old": old, "new": pol.Hash, "result": "applied",
	})
	return 0
}

func (s *policyState) setInvalid(err error, hash string) {
	old := s.currentHash()
	s.invalid = err
	s.failing = ""
	s.publish()
	result := "refusing every call until the file is fixed"
	if s.keepLast {
		result = "keeping the last valid policy " + s.file.Hash
	}
	s.emit("policy_invalid", fmt.Sprintf("policy reload failed, %s: %v", result, err), map[string]string{
		"old": old, "new": hash, "result": result, "error": err.Error(),
	})
}

func (s *policyState) currentHash() string {
	if s.invalid != nil && !s.keepLast {
		return "invalid"
	}
	return s.file.Hash
}

func (s *policyState) emit(event, reason string, params map[string]string) {
	pol, err := s.inForce()
	hash := "invalid"
	if err == nil {
		hash = pol.Hash
	}
	s.event(audit.Record{
		Time:       s.now(),
		Vendor:     "keybrake",
		Path:       s.path,
		Event:      event,
		Reason:     reason,
		Params:     params,
		Outcome:    audit.None,
		PolicyHash: hash,
	})
}

// setRevoked and setHalted are Revoke, Restore, Halt and Resume in this
// process alone (stops.go writes them to a fleet's store); quiet leaves
// the audit record to the fleet's store.
func (s *policyState) setRevoked(agent string, revoked bool) { s.setRevokedAs(agent, revoked, false) }

func (s *policyState) setHalted(halted bool) { s.setHaltedAs(halted, false) }

func (s *policyState) setRevokedAs(agent string, revoked, quiet bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revoked[agent] == revoked {
		return
	}
	if revoked {
		if s.revoked == nil {
			s.revoked = map[string]bool{}
		}
		s.revoked[agent] = true
	} else {
		delete(s.revoked, agent)
	}
	s.publish()
	if quiet {
		return
	}
	what := "restored"
	if revoked {
		what = "revoked"
	}
	s.emit("revoke", fmt.Sprintf("agent %s %s by the agent runner", agent, what), map[string]string{"agent": agent, "revoked": fmt.Sprint(revoked)})
}

func (s *policyState) setHaltedAs(halted, quiet bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.halted == halted {
		return
	}
	s.halted = halted
	s.publish()
	if quiet {
		return
	}
	what := "resumed"
	if halted {
		what = "halted"
	}
	s.emit("halt", "every agent "+what+" by the agent runner", map[string]string{"halted": fmt.Sprint(halted)})
}

// KillSwitchStops reads the kill switch file at path as a running Brake
// does, for a reader without one (`keybrake status` on a database no
// Brake serves): the stops it puts in force, each naming the file as the
// Brake names it, and what the file says, for a person.
func KillSwitchStops(path string) (policy.Stops, string) {
	k := readKillSwitch(path)
	by := "the kill switch " + path
	st := policy.Stops{Revoked: map[string]string{}}
	if k.all() {
		st.HaltBy(by)
	}
	for _, a := range k.agents {
		st.RevokeBy(a, by)
	}
	for _, a := range slices.Sorted(maps.Keys(k.trips)) {
		st.TripBy(a, k.trips[a])
	}
	return st, k.describe()
}

// readKillSwitch reads the halt file. Its mere presence revokes: a file
// that exists but cannot be read, or names no agent, revokes every agent.
func readKillSwitch(path string) killSwitch {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(path); errors.Is(lerr, fs.ErrNotExist) {
			return killSwitch{}
		}
	}
	if err != nil {
		return killSwitch{present: true, hash: "unreadable"}
	}
	sum := sha256.Sum256(data)
	k := killSwitch{present: true, hash: hex.EncodeToString(sum[:8])}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, comment, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if t, ok := parseTrip(comment, "the kill switch "+path); ok {
			if k.trips == nil {
				k.trips = map[string]policy.Trip{}
			}
			k.trips[line] = t
			continue
		}
		k.agents = append(k.agents, line)
	}
	if sc.Err() != nil {
		k.agents, k.trips = nil, nil
	}
	sort.Strings(k.agents)
	return k
}
