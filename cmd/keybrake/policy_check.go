package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keybrake/keybrake/money"
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
	if p.Halt {
		fmt.Fprintln(w, "HALTED: every call of every agent is refused (halt: true)")
	}
	for _, v := range sortedKeys(p.Vendors) {
		l := p.Vendors[v]
		fmt.Fprintf(w, "vendor %s (shared by all agents):%s\n", v, limits(l.DailyCap, nil, l.DailyCount))
	}
	for _, c := range sortedKeys(p.FX) {
		for _, r := range p.FX[c] {
			fmt.Fprintf(w, "fx: %s\n", r)
		}
	}
	for _, name := range sortedKeys(p.Agents) {
		a := p.Agents[name]
		status := ""
		if a.Revoked {
			status = "  REVOKED: every call answers 401"
		}
		fmt.Fprintf(w, "agent %s%s\n", name, status)
		for _, v := range sortedKeys(a.Grants) {
			g := a.Grants[v]
			fmt.Fprintf(w, "  %s:%s\n", v, limits(g.DailyCap, g.PerCallMax, g.DailyCount))
			if len(g.Allow) == 0 {
				fmt.Fprintln(w, "    allows nothing")
			}
			for _, r := range g.Allow {
				fmt.Fprintf(w, "    allow %s %s%s\n", r.Method, r.Path, ruleExtras(r))
			}
		}
	}
}

func limits(dailyCap, perCall *money.Amount, count int64) string {
	var parts []string
	if dailyCap != nil {
		parts = append(parts, "daily cap "+dailyCap.String())
	}
	if perCall != nil {
		parts = append(parts, "per call "+perCall.String())
	}
	if count > 0 {
		parts = append(parts, fmt.Sprintf("daily count %d", count))
	}
	if len(parts) == 0 {
		return " no money limits (money-moving calls refused)"
	}
	return " " + strings.Join(parts, ", ")
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
