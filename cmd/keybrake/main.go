// Command keybrake is the operator's tool for a running Keybrake: see what
// the agents did and how much money moved, revoke or restore an agent, halt
// every agent, check a policy file.
//
//	keybrake audit --agent refund-bot --since 90s   # what it just did
//	keybrake audit summary --since 15m              # the incident on one screen
//	keybrake status                                 # caps used today; who is stopped
//	keybrake revoke refund-bot                      # its next call answers 401
//	keybrake halt                                   # every agent stops, no parse needed
//	keybrake audit verify                           # was the log edited?
//	keybrake policy check keybrake.yaml
//
// The policy file is --policy, else $KEYBRAKE_POLICY, else ./keybrake.yaml;
// the database --db, else $KEYBRAKE_DB, else ./keybrake.db. While the agent
// runs it holds the database's lock, and its Brake answers the audit and
// status commands on a socket beside it (<db>.sock); otherwise they read
// the file.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand. run returns the exit status: 0 done, 1
// failed, 2 misused.
type command struct {
	summary string
	run     func(env *env, args []string) int
}

// env is what a command may touch, so tests run commands in-process too.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

var commands = map[string]command{}

func register(name, summary string, run func(env *env, args []string) int) {
	commands[name] = command{summary: summary, run: run}
}

func main() {
	os.Exit(run(&env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:]))
}

func run(e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	rest := args[1:]
	// Two-word commands: "policy check".
	if len(rest) > 0 {
		if _, ok := commands[name+" "+rest[0]]; ok {
			name, rest = name+" "+rest[0], rest[1:]
		}
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(e.stderr, "keybrake: unknown command %q\n\n", args[0])
		usage(e.stderr)
		return 2
	}
	return c.run(e, rest)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: keybrake <command> [flags] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'keybrake <command> -h' for a command's flags.")
}

// flags returns a flag set for a command that prints its own usage.
func flags(e *env, name, args, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: keybrake %s %s\n\n%s\n", name, args, strings.TrimSpace(about))
		if hasFlags(fs) {
			fmt.Fprintln(e.stderr, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// policyFlag adds --policy with its documented default.
func policyFlag(e *env, fs *flag.FlagSet) *string {
	def := e.getenv("KEYBRAKE_POLICY")
	if def == "" {
		def = "keybrake.yaml"
	}
	return fs.String("policy", def, "the policy file ($KEYBRAKE_POLICY)")
}

// parse parses flags; a -h is exit 0, a bad flag exit 2.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

func fail(e *env, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "keybrake: "+format+"\n", args...)
	return 1
}
