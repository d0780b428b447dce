package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/keybrake/keybrake/policy"
)

func newPolicyDiffCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "what changes for which agent when NEW replaces OLD",
		Long: `Reads two policy files as Keybrake would and prints, subject by subject
(an agent on a vendor, a vendor's shared limits), what NEW changes: a
limit raised, lowered, set or removed, an allow rule or a scope added or
taken away, an agent revoked or restored. Both files must be valid; the
first problem is printed with its file and line. Exits 0 whether or not
they differ.`,
		Example: `  keybrake policy diff /etc/keybrake/keybrake.yaml keybrake.yaml.new`,
		Args:    exactArgs(2, "OLD and NEW"),
		RunE: func(_ *cobra.Command, args []string) error {
			old, err := policy.Load(args[0])
			if err != nil {
				return err
			}
			next, err := policy.Load(args[1])
			if err != nil {
				return err
			}
			printDiff(e.stdout, old, next)
			return nil
		},
	}
}

// printDiff writes what next changes from old, subject by subject: "-"
// for what goes, "+" for what comes, "~" for a value that changes.
func printDiff(w io.Writer, old, next *policy.Policy) {
	fmt.Fprintf(w, "--- %s (policy %s)\n+++ %s (policy %s)\n", old.File, old.Hash, next.File, next.Hash)
	oldOrder, oldBy := subjects(policyFacts(old))
	newOrder, newBy := subjects(policyFacts(next))
	order := oldOrder
	for _, s := range newOrder {
		if !slices.Contains(order, s) {
			order = append(order, s)
		}
	}
	changed := false
	for _, s := range slices.Sorted(slices.Values(order)) {
		lines := diffFacts(oldBy[s], newBy[s])
		if len(lines) == 0 {
			continue
		}
		changed = true
		fmt.Fprintf(w, "\n%s\n", s)
		for _, l := range lines {
			fmt.Fprintln(w, "  "+l)
		}
	}
	if !changed {
		fmt.Fprintln(w, "\nno change in what any agent may do")
	}
}

// diffFacts compares one subject's facts.
func diffFacts(old, next []fact) []string {
	index := func(fs []fact) map[string]string {
		m := map[string]string{}
		for _, f := range fs {
			m[f.key] = f.value
		}
		return m
	}
	o, n := index(old), index(next)
	var out []string
	for _, f := range old {
		v, ok := n[f.key]
		switch {
		case !ok:
			out = append(out, "- "+show(f.key, f.value))
		case v != f.value:
			out = append(out, fmt.Sprintf("~ %s: %s -> %s", f.key, f.value, v))
		}
	}
	for _, f := range next {
		if _, ok := o[f.key]; !ok {
			out = append(out, "+ "+show(f.key, f.value))
		}
	}
	return out
}

func show(key, value string) string {
	if value == "" {
		return key
	}
	return key + ": " + value
}
