package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	brake "github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/internal/keys"
	"github.com/keybrake/keybrake/vendors/builtin"
)

func newKeysCmd(e *env) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "agent keys for keybrake serve: add, list, revoke",
		Long: `Agent keys are what an agent presents to 'keybrake serve' instead of the
vendor's secret: one key per agent and vendor. The keys file holds only
their SHA-256 hashes; it must be readable by its owner alone (chmod 600).
A running proxy sees every change to it at once.`,
	}
	cmd.PersistentFlags().StringVar(&file, "keys", orDefault(e.getenv("KEYBRAKE_KEYS"), "keybrake.keys"), "the agent keys `file` ($KEYBRAKE_KEYS)")
	add := &cobra.Command{
		Use:   "add AGENT VENDOR",
		Short: "make a new agent key; prints the key, once",
		Args:  exactArgs(2, "an agent and a vendor"),
		RunE: func(cmd *cobra.Command, args []string) error {
			agent, vendor := args[0], args[1]
			if !builtinVendor(vendor) {
				return misuse(cmd, "vendor %q is not one keybrake serve proxies (%s)", vendor, vendorNames())
			}
			token, entry, err := keys.Add(file, agent, vendor, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, token)
			fmt.Fprintf(e.stderr, "keybrake: added %s for %s on %s to %s; the key is shown only now\n", entry.ID, agent, vendor, file)
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "the keys: ids, agents, vendors, created, last used, revoked (never the keys)",
		Long: `Lists the keys of the keys file: id, agent, vendor, when each was created,
when this host's keybrake serve last admitted a call presenting it (written
beside the keys file, FILE.used, every 10 seconds and at exit; "never" if
it has not), and when it was revoked. The keys themselves are never shown:
the file holds only their hashes.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			f, err := keys.Load(file)
			if err != nil {
				return err
			}
			used, usedErr := keys.LoadUsage(file)
			if usedErr != nil {
				fmt.Fprintf(e.stderr, "keybrake: last uses unknown: %v\n", usedErr)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tAGENT\tVENDOR\tCREATED\tLAST USED\tREVOKED")
			for _, k := range f.Entries() {
				revoked := "-"
				if k.IsRevoked() {
					revoked = k.Revoked.Format(time.RFC3339)
				}
				when := lastUsed(used, k.ID)
				if usedErr != nil {
					when = "unknown"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Agent, k.Vendor, k.Created.Format(time.RFC3339), when, revoked)
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke KEY_ID",
		Short: "revoke a key; a running proxy refuses it at once",
		Long: `Revokes the key in the keys file; a running proxy refuses it at once.
With --db postgres://... (or $KEYBRAKE_DATABASE_URL) it is revoked in the
fleet's shared store too, so every keybrake serve replica on the store
refuses it within a second, whichever copy of the keys file it reads.`,
		Args: exactArgs(1, "a key id (kbk_...)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if db := cmd.Flag("db"); db != nil && isDatabaseURL(db.Value.String()) {
				return fleetKeyRevoke(e, db.Value.String(), file, args[0]) // fleetstops.go
			}
			if err := keys.Revoke(file, args[0], time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: revoked %s\n", file, args[0])
			return nil
		},
	}
	cmd.AddCommand(add, list, revoke)
	needsCommand(cmd)
	return cmd
}

func builtinVendor(name string) bool {
	for _, v := range builtin.Vendors() {
		if v.Name() == name {
			return true
		}
	}
	return false
}

// keyFinder answers the proxy's key lookups from the watched keys file.
type keyFinder struct{ set *keys.Set }

func (k keyFinder) FindKey(token string) (brake.AgentKey, brake.KeyResult) {
	e, res := k.set.Lookup(token)
	key := brake.AgentKey{ID: e.ID, Agent: e.Agent, Vendor: brake.Vendor(e.Vendor)}
	switch res {
	case keys.OK:
		return key, brake.KeyFound
	case keys.Revoked:
		return key, brake.KeyRevoked
	case keys.Unavailable:
		return brake.AgentKey{}, brake.KeyUnavailable
	}
	return brake.AgentKey{}, brake.KeyUnknown
}

// secretsFrom reads a vendor's secret from the file the keys file names
// for it, else from the environment. A secret file holds NAME=value lines
// (the vendor's names), or, for a vendor with one name, just the value.
func secretsFrom(set *keys.Set, getenv func(string) string) func(brake.Vendor, []string) (map[string]string, error) {
	return func(v brake.Vendor, names []string) (map[string]string, error) {
		f, err := set.File()
		if err != nil {
			return nil, err
		}
		out := make(map[string]string, len(names))
		if path, ok := f.Secret(string(v)); ok {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("the secret file for %s: %w", v, err)
			}
			if err := parseSecretFile(data, names, out); err != nil {
				return nil, fmt.Errorf("the secret file for %s (%s): %w", v, path, err)
			}
			return out, nil
		}
		for _, n := range names {
			val := getenv(n)
			if val == "" {
				return nil, fmt.Errorf("$%s is not set", n)
			}
			out[n] = val
		}
		return out, nil
	}
}

func parseSecretFile(data []byte, names []string, out map[string]string) error {
	text := strings.TrimSpace(string(data))
	if len(names) == 1 && !strings.Contains(text, "\n") && !strings.HasPrefix(text, names[0]+"=") {
		out[names[0]] = text
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("a line is not NAME=value") // the value is never echoed
		}
		out[strings.TrimSpace(name)] = strings.TrimSpace(val)
	}
	for _, n := range names {
		if out[n] == "" {
			return fmt.Errorf("it does not set %s", n)
		}
	}
	return nil
}
