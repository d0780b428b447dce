package main

import (
	"fmt"
	"io"
	"time"

	"github.com/keybrake/keybrake/internal/admin"
)

// printShadow prints what the shadow policy decided otherwise, per agent:
// status's day, and audit summary --shadow's range. A range without any
// says so only when asked (always).
func printShadow(w io.Writer, agents []admin.ShadowAgent, what string, always bool) {
	if len(agents) == 0 {
		if always {
			fmt.Fprintf(w, "\nshadow policy: no call decided otherwise %s (or no shadow policy: keybrake serve --shadow FILE)\n", what)
		}
		return
	}
	fmt.Fprintf(w, "\nSHADOW: calls the shadow policy would have decided otherwise %s:\n", what)
	for _, a := range agents {
		fmt.Fprintf(w, "  %s on %s: %d of %d calls (shadow policy %s)\n", printable(a.Agent), printable(a.Vendor), a.Differ, a.Calls, printable(a.Policy))
		for _, c := range a.By {
			code := ""
			if c.Code != "" {
				code = ", " + c.Code
			}
			fmt.Fprintf(w, "    %5d  %s -> %s  by %s%s\n", c.Count, c.From, c.To, printable(c.Rule), printable(code))
		}
		fmt.Fprintf(w, "    first: #%d at %s, %s %s\n", a.First.ID, a.First.Time.UTC().Format(time.DateTime), printable(a.First.Method), printable(a.First.Path))
	}
}
