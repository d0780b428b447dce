package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keybrake/keybrake/policy"
)

func newPolicyCheckCmd(e *env) *cobra.Command {
	var strict bool
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "validate a policy file and print what it allows",
		Long: `Reads FILE as Keybrake would and prints the effective policy: every agent
on every vendor with its caps, its scopes and the rules it is allowed,
then warnings about what is valid but probably not meant: an agent with no
daily cap or count anywhere (its money-moving calls are all refused), a
destination prefix that admits a whole world zone ("+4*"), Twilio destinations "+1*" without a price for
the high-cost NANP prefixes SMS pumping targets, an allow rule an earlier
one always wins over. Exits 1 with the file, line and reason on the first
problem, and with --strict on any warning.`,
		Example: `  keybrake policy check /etc/keybrake/keybrake.yaml
  keybrake policy check --strict keybrake.yaml   # in CI, before a deploy`,
		Args: exactArgs(1, "one FILE"),
		RunE: func(_ *cobra.Command, args []string) error {
			p, err := policy.Load(args[0])
			if err != nil {
				return err
			}
			printPolicy(e, p)
			warnings := policyWarnings(p)
			for _, w := range warnings {
				fmt.Fprintf(e.stdout, "warning: %s\n", w)
			}
			if strict && len(warnings) > 0 {
				return fmt.Errorf("%s: %d warning(s), and --strict", p.File, len(warnings))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "exit 1 on any warning, not only on an invalid file")
	return cmd
}

func printPolicy(e *env, p *policy.Policy) {
	w := e.stdout
	fmt.Fprintf(w, "%s: valid (policy %s)\n", p.File, p.Hash)
	order, by := subjects(policyFacts(p))
	for _, s := range order {
		fmt.Fprintf(w, "%s\n", s)
		for _, f := range by[s] {
			fmt.Fprintf(w, "  %s\n", show(f.key, f.value))
		}
	}
}

// highCostNANP are the +1 prefixes outside the US and Canada, billed as
// international and the favourite targets of SMS pumping: "+1*" admits
// them at the default price unless the policy prices them.
var highCostNANP = []string{
	"+1242", "+1246", "+1264", "+1268", "+1284", "+1340", "+1345", "+1441", "+1473", "+1649",
	"+1658", "+1664", "+1670", "+1671", "+1684", "+1721", "+1758", "+1767", "+1784",
	"+1809", "+1829", "+1849", "+1868", "+1869", "+1876",
}

// policyWarnings are what a valid policy says that is probably not meant.
func policyWarnings(p *policy.Policy) []string {
	var out []string
	for _, name := range sortedKeys(p.Agents) {
		for _, v := range sortedKeys(p.Agents[name].Grants) {
			g, shared := p.Agents[name].Grants[v], p.Vendors[v]
			who := "agent " + name + " on " + v
			if g.DailyCap == nil && g.DailyCount == 0 && (shared == nil || (shared.DailyCap == nil && shared.DailyCount == 0)) && len(g.Allow) > 0 {
				out = append(out, who+" has no daily cap or count, its own or the vendor's: every call it is allowed that can move money is refused (set daily_cap)")
			}
			for _, l := range g.Lists {
				for _, entry := range l.Entries {
					// "+4*" is every number of world zone 4: dozens of
					// countries, whatever the operator meant.
					if len(entry) == 3 && entry[0] == '+' && entry[2] == '*' && entry != "+1*" {
						out = append(out, fmt.Sprintf("%s: %s %q admits every number of world numbering zone %c, dozens of countries; name the countries (\"+44*\")", who, l.Key, entry, entry[1]))
					}
					if entry == "+1*" {
						if missing := unpricedNANP(shared); len(missing) > 0 {
							out = append(out, fmt.Sprintf("%s: %s \"+1*\" admits the high-cost NANP prefixes %s at the default price; price them under vendors.%s.prices (SMS pumping targets them)",
								who, l.Key, strings.Join(missing, " "), v))
						}
					}
				}
			}
			out = append(out, shadowed(who, g.Allow)...)
			out = append(out, unallowedApprovals(who, g)...)
		}
	}
	return out
}

// unpricedNANP are the high-cost NANP prefixes no price of l names.
func unpricedNANP(l *policy.VendorLimits) []string {
	var missing []string
	for _, prefix := range highCostNANP {
		priced := l != nil && len(l.Prices) > 0
		if l != nil {
			for _, t := range l.Prices {
				if _, ok := t.Prefixes[prefix]; !ok {
					priced = false
				}
			}
		}
		if !priced {
			missing = append(missing, prefix)
		}
	}
	return missing
}

// shadowed are the rules an earlier rule of the same method and path,
// without parameter conditions, always wins over: they can never match.
func shadowed(who string, rules []*policy.Rule) []string {
	var out []string
	for i, r := range rules {
		for _, earlier := range rules[:i] {
			if earlier.Method == r.Method && earlier.Path.String() == r.Path.String() && len(earlier.Params) == 0 && !r.Uncapped {
				out = append(out, fmt.Sprintf("%s: allow %s %s (%s) can never match: %s, before it, always does", who, r.Method, r.Path, r.ID, earlier.ID))
				break
			}
		}
	}
	return out
}

// unallowedApprovals are approve rules no allow rule of the grant matches
// by method and path: they hold nothing, since the call is blocked first.
func unallowedApprovals(who string, g *policy.Grant) []string {
	var out []string
	for _, r := range g.Approve {
		allowed := false
		for _, a := range g.Allow {
			allowed = allowed || a.Method == r.Method && a.Path.String() == r.Path.String()
		}
		if !allowed {
			out = append(out, fmt.Sprintf("%s: approve %s %s (%s) holds nothing: no allow rule admits %s %s, so its calls are blocked before any approval",
				who, r.Method, r.Path, r.ID, r.Method, r.Path))
		}
	}
	return out
}

func ruleExtras(r *policy.Rule) string {
	var parts []string
	for _, k := range sortedKeys(r.Params) {
		parts = append(parts, k+"="+strings.Join(r.Params[k], "|"))
	}
	if r.PerCallMax != nil {
		parts = append(parts, "per call "+r.PerCallMax.String())
	}
	if r.Uncapped {
		parts = append(parts, "UNCAPPED: money it moves is not counted")
	}
	if len(parts) == 0 {
		return ""
	}
	return "  (" + strings.Join(parts, ", ") + ")"
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
