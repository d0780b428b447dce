package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	brake "github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/internal/keys"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// With --db postgres://... (or $KEYBRAKE_DATABASE_URL), halt, resume,
// revoke and restore write a fleet stop to the shared store instead of the
// host's files: every process and proxy replica on the store obeys it
// within a second, whatever host it runs on and whichever policy file it
// reads. The kill switch file and the policy file stay for one host.
// keys revoke revokes the key in the keys file and in the store.

// operator is how a stop the command makes names its source: the
// command, the host and the user who ran it.
func operator(command string) string {
	host, _ := os.Hostname()
	who := userName()
	if who == "" {
		who = "an unknown user"
	}
	return fmt.Sprintf("keybrake %s --db on %s by %s", command, host, who)
}

// userName is the user running the command, "" when unknown.
func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

// withStops runs fn on the stops of the shared store db names.
func withStops(db string, fn func(ctx context.Context, st store.Stops) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := openShared(ctx, db)
	if err != nil {
		return err
	}
	err = fn(ctx, st)
	if cerr := st.Close(); err == nil && cerr != nil && !errors.Is(cerr, store.ErrClosed) {
		err = cerr
	}
	return err
}

// fleetHalt is keybrake halt --db: every agent, or those named.
func fleetHalt(e *env, db string, agents []string) error {
	where := dbName(db)
	return withStops(db, func(ctx context.Context, st store.Stops) error {
		by := operator("halt")
		if len(agents) == 0 {
			in, changed, err := st.SetStop(ctx, store.Stop{Kind: store.StopHalt, By: by, Time: time.Now()})
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintf(e.stdout, "%s: every agent is already halted fleet-wide, by %s; nothing changed\n", where, in.Source())
				return nil
			}
			fmt.Fprintf(e.stdout, "%s: every agent halted fleet-wide; 'keybrake resume --db' undoes it\n", where)
			return nil
		}
		var done, already []string
		for _, a := range dedupe(agents) {
			_, changed, err := st.SetStop(ctx, store.Stop{Kind: store.StopHalt, Subject: a, By: by, Time: time.Now()})
			if err != nil {
				return err
			}
			if changed {
				done = append(done, a)
			} else {
				already = append(already, a)
			}
		}
		if len(done) > 0 {
			fmt.Fprintf(e.stdout, "%s: halted %s fleet-wide; 'keybrake resume --db' undoes it\n", where, strings.Join(done, ", "))
		}
		if len(already) > 0 {
			fmt.Fprintf(e.stdout, "%s: %s already halted fleet-wide; nothing changed for them\n", where, strings.Join(already, ", "))
		}
		return nil
	})
}

// fleetResume is keybrake resume --db: every halt lifted, of every agent
// and of those named; revocations stay.
func fleetResume(e *env, db string, agents []string) error {
	where := dbName(db)
	return withStops(db, func(ctx context.Context, st store.Stops) error {
		stops, err := st.ReadStops(ctx)
		if err != nil {
			return err
		}
		var lifted, revoked []string
		for _, s := range stops {
			if s.Kind == store.StopRevoke {
				revoked = append(revoked, s.Subject)
			}
			if s.Kind != store.StopHalt || len(agents) > 0 && !slices.Contains(agents, s.Subject) {
				continue
			}
			changed, err := st.ClearStop(ctx, store.Stop{Kind: store.StopHalt, Subject: s.Subject, By: operator("resume"), Time: time.Now()})
			if err != nil {
				return err
			}
			if changed {
				lifted = append(lifted, orEvery(s.Subject))
			}
		}
		if len(lifted) == 0 {
			fmt.Fprintf(e.stdout, "%s: no fleet halt; nothing changed\n", where)
		} else {
			fmt.Fprintf(e.stdout, "%s: lifted the fleet's halt of %s; agents are decided by the policy again\n", where, strings.Join(lifted, ", "))
		}
		if len(revoked) > 0 {
			fmt.Fprintf(e.stdout, "%s: still revoked fleet-wide: %s ('keybrake restore AGENT --db' lifts one)\n", where, strings.Join(revoked, ", "))
		}
		return nil
	})
}

func orEvery(agent string) string {
	if agent == "" {
		return "every agent"
	}
	return agent
}

// fleetRevoke is keybrake revoke|restore AGENT --db.
func fleetRevoke(e *env, db, agent string, on bool) error {
	where := dbName(db)
	return withStops(db, func(ctx context.Context, st store.Stops) error {
		s := store.Stop{Kind: store.StopRevoke, Subject: agent, By: operator(map[bool]string{true: "revoke", false: "restore"}[on]), Time: time.Now()}
		if on {
			in, changed, err := st.SetStop(ctx, s)
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintf(e.stdout, "%s: agent %s is already revoked fleet-wide, by %s; nothing changed\n", where, agent, in.Source())
				return nil
			}
			fmt.Fprintf(e.stdout, "%s: agent %s revoked fleet-wide; 'keybrake restore %s --db' undoes it\n", where, agent, agent)
			return nil
		}
		changed, err := st.ClearStop(ctx, s)
		if err != nil {
			return err
		}
		if !changed {
			fmt.Fprintf(e.stdout, "%s: agent %s is not revoked fleet-wide; nothing changed\n", where, agent)
		} else {
			fmt.Fprintf(e.stdout, "%s: agent %s restored fleet-wide\n", where, agent)
		}
		stops, err := st.ReadStops(ctx)
		if err != nil {
			return err
		}
		for _, h := range stops {
			if h.Kind == store.StopHalt && (h.Subject == "" || h.Subject == agent) {
				fmt.Fprintf(e.stdout, "%s: %s is still halted fleet-wide, by %s; 'keybrake resume --db' lifts it\n", where, orEvery(h.Subject), h.Source())
			}
		}
		return nil
	})
}

// fleetKeyRevoke is keybrake keys revoke KEY_ID --db: the key is revoked
// in the keys file, when it holds it, and in the shared store, so every
// keybrake serve replica refuses it, whichever copy of the keys file it
// reads.
func fleetKeyRevoke(e *env, db, file, id string) error {
	if !strings.HasPrefix(id, "kbk_") {
		return fmt.Errorf("%q is not a key id (kbk_...); 'keybrake keys list' shows them", id)
	}
	inFile := true
	if err := keys.Revoke(file, id, time.Now()); errors.Is(err, keys.ErrUnknownID) {
		inFile = false
	} else if err != nil {
		return err
	}
	where := dbName(db)
	return withStops(db, func(ctx context.Context, st store.Stops) error {
		in, changed, err := st.SetStop(ctx, store.Stop{Kind: store.StopKey, Subject: id, By: operator("keys revoke"), Time: time.Now()})
		if err != nil {
			return err
		}
		if inFile {
			fmt.Fprintf(e.stdout, "%s: revoked %s\n", file, id)
		} else {
			fmt.Fprintf(e.stdout, "%s: holds no key %s; revoking it in the shared store only\n", file, id)
		}
		if changed {
			fmt.Fprintf(e.stdout, "%s: revoked %s fleet-wide; every keybrake serve on it refuses the key\n", where, id)
		} else {
			fmt.Fprintf(e.stdout, "%s: %s was already revoked fleet-wide, by %s\n", where, id, in.Source())
		}
		return nil
	})
}

// storeStops reads the fleet's stops from st for an offline status: the
// halt and revocations they make, each naming its source as a refused
// call's reason does (Stop.Source), and the agent keys revoked fleet-wide
// (key id -> source). ok is false, with nothing read, for a store that
// keeps no fleet stops (store/bolt).
func storeStops(ctx context.Context, st store.Store) (stops policy.Stops, revokedKeys map[string]string, ok bool, err error) {
	fs, ok := st.(store.Stops)
	if !ok {
		return policy.Stops{}, nil, false, nil
	}
	list, err := fs.ReadStops(ctx)
	if err != nil {
		return policy.Stops{}, nil, true, fmt.Errorf("reading the fleet's stops: %w", err)
	}
	stops, revokedKeys = brake.FleetStops(list) // as a Brake on the store reads them
	return stops, revokedKeys, true, nil
}
