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
// Flags go anywhere on the line. The policy file is --policy, else
// $KEYBRAKE_POLICY, else ./keybrake.yaml; the database --db, else
// $KEYBRAKE_DB, else ./keybrake.db. While the agent runs it holds the
// database's lock, and its Brake answers the audit and status commands on
// a socket beside it (<db>.sock); otherwise they read the file.
//
// It exits 0 when done, 1 when it found a problem (a broken audit chain, an
// invalid policy) or failed, and 2 when the command line is wrong, saying
// so on one line.
//
// Each command is a file of its own, built on spf13/cobra as kubectl and gh
// are; root.go holds the root, the persistent flags and the usage errors.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// env is what a command may touch, so tests run commands in-process too.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func main() {
	os.Exit(run(&env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:]))
}

// run runs the command line args and returns the exit status: 0 done, 1
// found a problem or failed, 2 misused.
func run(e *env, args []string) int {
	root := newRoot(e)
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(e.stderr, "keybrake: %v\n", err)
	var u *usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}
