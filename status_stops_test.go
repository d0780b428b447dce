package keybrake_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/internal/admin"
)

// While no policy is in force (the file turned invalid, and the default
// refuses every call), the live status still names the source of each
// stop: the kill switch and its path for the halt, Brake.Revoke for an
// agent revoked in process, not "the agent runner".
func TestLiveStatusNamesStopsWithoutAPolicy(t *testing.T) {
	f := newRevocationFixture(t, keybrake.Options{}, nil)
	sock := filepath.Join(f.dir, "keybrake.db.sock")
	kill := f.policy + ".halt"
	writeFile(t, kill, "# every agent\n")
	f.await(f.bot, "keybrake_halted")
	f.kb.Revoke("other")
	renameInto(t, f.policy, "version: 1\nagents:\n  bot:\n    stripe:\n      daily_cap: 500 dollars\n")

	var s *admin.Status
	eventually(t, "the invalid policy to leave none in force", func() bool {
		var err error
		if s, err = admin.Dial(sock).Status(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s.PolicyError != ""
	})
	if s.PolicyHash != "" || !strings.Contains(s.PolicyError, "500 dollars") {
		t.Fatalf("status: policy %q, error %q; want none in force, and why", s.PolicyHash, s.PolicyError)
	}
	if want := "the kill switch " + kill; !s.Halted || s.HaltedBy != want {
		t.Errorf("status: halted %v by %q, want by %q", s.Halted, s.HaltedBy, want)
	}
	if len(s.Revoked) != 1 || s.Revoked[0] != "other" || s.RevokedBy["other"] != "Brake.Revoke" {
		t.Errorf("status: revoked %v by %v, want other by Brake.Revoke", s.Revoked, s.RevokedBy)
	}
}
