package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/term"

	"github.com/keybrake/keybrake/policy"
)

// screen is what the CLI knows of where its output goes: a terminal (a
// table sized to it, coloured) or a pipe or a file (JSON Lines, no
// colour, nothing cut).
type screen struct {
	tty   bool // stdout is a terminal
	width int  // columns to fit; 0: no limit
	color bool // colour decisions
}

// screenOf looks at e's stdout. The width is the terminal's (x/term),
// $COLUMNS overriding it (a test, or a pane the terminal misreports);
// colour is on for a terminal unless $NO_COLOR is set (no-color.org) or
// $TERM is "dumb", and --color always or never decides outright.
func screenOf(e *env, color string) (screen, error) {
	var s screen
	if f, ok := e.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		s.tty = true
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			s.width = w
		}
	}
	if n, err := strconv.Atoi(e.getenv("COLUMNS")); err == nil && n > 0 {
		s.width = n
	}
	switch color {
	case "auto", "":
		s.color = s.tty && e.getenv("NO_COLOR") == "" && e.getenv("TERM") != "dumb"
	case "always":
		s.color = true
	case "never":
	default:
		return s, fmt.Errorf("--color %q: want auto, always or never", color)
	}
	return s, nil
}

// ANSI colours of the decisions: what moved money plain, what Keybrake
// stopped in colour, an error loudest.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1;31m"
	ansiGreen  = "\x1b[32m"
)

// decisionColor is the colour of a decision's cell; "" for none.
func decisionColor(d policy.Decision) string {
	switch d {
	case policy.Allowed:
		return ansiGreen
	case policy.Capped, policy.Scoped:
		return ansiYellow
	case policy.Blocked, policy.Revoked:
		return ansiRed
	case policy.Error:
		return ansiBold
	}
	return ""
}
