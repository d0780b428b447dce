package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keybrake/keybrake/policy"
)

func newPolicyCheckCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "validate a policy file and print what it allows",
		Long: `Reads FILE as Keybrake would and prints the effective policy: every agent,
its caps and the rules it is allowed. Exits 1 with the file, line and
reason on the first problem.`,
		Example: `  keybrake policy check /etc/keybrake/keybrake.yaml`,
		Args:    exactArgs(1, "one FILE"),
		RunE: func(_ *cobra.Command, args []string) error {
			p, err := policy.Load(args[0])
			if err != nil {
				return err
			}
			printPolicy(e, p)
			return nil
		},
	}
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
	// An agent with no money limit anywhere has its money-moving calls
	// refused: say so where the operator looks.
	for _, name := range sortedKeys(p.Agents) {
		for _, v := range sortedKeys(p.Agents[name].Grants) {
			g := p.Agents[name].Grants[v]
			shared := p.Vendors[v]
			if g.DailyCap == nil && g.DailyCount == 0 && (shared == nil || (shared.DailyCap == nil && shared.DailyCount == 0)) {
				fmt.Fprintf(w, "note: agent %s on %s has no daily cap or count, its own or the vendor's: its money-moving calls are refused\n", name, v)
			}
		}
	}
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
