package keybrake

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/keybrake/keybrake/internal/watch"
	"github.com/keybrake/keybrake/policy"
)

// The shadow policy (Options.ShadowPolicyFile) is read, watched and
// reloaded like the real one, and published beside it with the same stops
// (kill switch, halts, revocations), so that where the two differ it is
// the file that differs. The transport decides every call by it a second
// time (internal/transport/shadow.go); nothing it decides is enforced. A
// shadow file that stops parsing keeps its last valid version in force
// and says so in the audit log: a candidate being edited must never stop
// the real policy's calls, nor go quiet.

// shadowState is the shadow policy of a policyState. Its fields but
// current are guarded by the policyState's mu.
type shadowState struct {
	path string
	file *policy.Policy // the last valid shadow policy
	hash string         // of the bytes last read, valid or not

	current atomic.Pointer[policy.Policy] // file with the real stops
}

// loadShadow reads the shadow policy at Open: one that does not parse is
// an error then, as the real one's is.
func (s *policyState) loadShadow(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("shadow policy: %w", err)
	}
	pol, err := policy.ParseFor(path, data, s.vendors)
	if err != nil {
		return fmt.Errorf("shadow policy: %w", err)
	}
	s.shadow = &shadowState{path: path, file: pol, hash: pol.Hash}
	return nil
}

// checkShadow re-reads the shadow file, under mu, and publishes a change.
func (s *policyState) checkShadow() {
	sh := s.shadow
	if sh == nil {
		return
	}
	data, err := watch.ReadStable(sh.path, nil)
	if errors.Is(err, watch.ErrUnstable) {
		return // the next check reads it whole
	}
	hash := "unreadable"
	if err == nil {
		sum := sha256.Sum256(data)
		hash = hex.EncodeToString(sum[:])[:16]
	}
	if hash == sh.hash {
		return
	}
	sh.hash = hash
	var pol *policy.Policy
	if err == nil {
		pol, err = policy.ParseFor(sh.path, data, s.vendors)
	}
	if err != nil {
		s.emit("shadow_invalid", fmt.Sprintf("shadow policy %s could not be read, keeping %s: %v", sh.path, sh.file.Hash, err),
			map[string]string{"shadow": sh.file.Hash, "error": err.Error()})
		return
	}
	old := sh.file.Hash
	sh.file = pol
	s.publishShadow()
	s.emit("shadow_reload", fmt.Sprintf("shadow policy reloaded: %s -> %s", old, pol.Hash),
		map[string]string{"old": old, "new": pol.Hash})
}

// publishShadow puts the shadow file in force with the real stops. Called
// with mu held, by publish.
func (s *policyState) publishShadow() {
	if s.shadow != nil {
		s.shadow.current.Store(s.shadow.file.WithStops(s.stops()))
	}
}

// watched are the files a Brake watches: the policy, the kill switch and
// the shadow policy.
func watched(opts Options) []string {
	files := []string{opts.PolicyFile, opts.HaltFile}
	if opts.ShadowPolicyFile != "" {
		files = append(files, opts.ShadowPolicyFile)
	}
	return files
}

// shadowInForce is the transport's Shadow: nil without a shadow policy.
func (s *policyState) shadowInForce() *policy.Policy {
	if s.shadow == nil {
		return nil
	}
	return s.shadow.current.Load()
}
