package main

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// globals are the persistent flags, which every command accepts anywhere
// on its line.
type globals struct {
	policy string // the policy file
	db     string // the agent's database file
	color  string // --color: auto, always or never
}

// screen is where stdout goes (see screenOf); a bad --color is misuse.
func (g *globals) screen(cmd *cobra.Command, e *env) (screen, error) {
	sc, err := screenOf(e, g.color)
	if err != nil {
		return sc, misuse(cmd, "%v", err)
	}
	return sc, nil
}

// newRoot returns the keybrake command and its subcommands, writing to e.
func newRoot(e *env) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "keybrake",
		Short: "the operator's tool for a running Keybrake",
		Long: `The operator's tool for a running Keybrake: see what the agents did and how
much money moved, revoke or restore an agent, halt every agent, check a
policy file. Flags go anywhere on the line:

  keybrake halt refund-bot --policy /etc/keybrake/keybrake.yaml

halts refund-bot by that policy, as it would with the flag first.

The policy file is --policy, else $KEYBRAKE_POLICY, else ./keybrake.yaml;
the database --db, else $KEYBRAKE_DATABASE_URL, else $KEYBRAKE_DB, else
./keybrake.db. While the agent runs, its Brake answers the audit and
status commands on a socket beside a database file (<db>.sock); otherwise
they read the file. A postgres:// URL is a fleet's shared store, which
every process reads and writes at once.

Exit status:
  0  done
  1  found a problem: a broken chain (audit verify), an invalid policy
     (policy check), or a failure (a file missing, unreadable or locked)
  2  the command line is wrong: an unknown flag, a bad value, the wrong
     arguments, or no command`,
		Version: version(debug.ReadBuildInfo()),
		Args:    commandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmd.Help(); err != nil {
				return err
			}
			return misuse(cmd, "no command given")
		},
		SilenceUsage:      true,
		SilenceErrors:     true,
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(flagError)

	pf := root.PersistentFlags()
	pf.StringVar(&g.policy, "policy", orDefault(e.getenv("KEYBRAKE_POLICY"), "keybrake.yaml"),
		"the policy `file` ($KEYBRAKE_POLICY)")
	pf.StringVar(&g.color, "color", "auto", "colour decisions: auto (on a terminal, unless $NO_COLOR is set), always or never")
	pf.StringVar(&g.db, "db", orDefault(e.getenv("KEYBRAKE_DATABASE_URL"), orDefault(e.getenv("KEYBRAKE_DB"), "keybrake.db")),
		"the agent's database `file` ($KEYBRAKE_DB; a running agent answers on the file + \".sock\"), or a fleet's shared store, postgres://... ($KEYBRAKE_DATABASE_URL, the default when set)")

	root.AddCommand(
		newAuditCmd(e, g),
		newStatusCmd(e, g),
		newRevokeCmd(e, g),
		newRestoreCmd(e, g),
		newHaltCmd(e, g),
		newResumeCmd(e, g),
		newPolicyCmd(e, g),
		newServeCmd(e, g),
		newUICmd(e, g),
		newKeysCmd(e),
		newApprovalsCmd(e, g), // approve.go
		newApproveCmd(e, g),
		newDenyCmd(e, g),
	)
	// Made now rather than when the root runs, so that their argument
	// checks give usage errors too. Powershell's stays: cobra makes it
	// for nothing.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			needsCommand(c)
		}
	}
	walk(root, func(c *cobra.Command) {
		c.SuggestionsMinimumDistance = 2
		if c.Args != nil {
			c.Args = usageArgs(c.Args)
		}
	})
	return root
}

// needsCommand makes cmd, a group of commands, refuse to run alone or
// with an argument that is not one of them.
func needsCommand(cmd *cobra.Command) {
	cmd.Args = commandArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return misuse(cmd, "%s takes a command: %s", cmdName(cmd), strings.Join(commandNames(cmd), ", "))
	}
}

// cmdName is cmd's path without the root's name: "audit summary".
func cmdName(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return cmd.Name()
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

// usageError is a command line keybrake cannot act on: exit 2. It says
// what is wrong and how to fix it on one line.
type usageError struct {
	err  error
	path string // the command whose --help tells more: "keybrake halt"
}

func (e *usageError) Error() string {
	return fmt.Sprintf("%v; see '%s --help'", e.err, e.path)
}

func (e *usageError) Unwrap() error { return e.err }

// misuse is a usage error of cmd.
func misuse(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...), path: cmd.CommandPath()}
}

// usageArgs makes a failed argument check a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		var u *usageError
		if err == nil || errors.As(err, &u) {
			return err
		}
		return &usageError{err: err, path: cmd.CommandPath()}
	}
}

// commandArgs is the check of a command whose arguments name its
// subcommands (the root, policy).
func commandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return unknownCommand(cmd, args[0])
}

func unknownCommand(cmd *cobra.Command, arg string) error {
	msg := fmt.Sprintf("unknown command %q", arg)
	if cmd.HasParent() {
		msg += " for " + cmdName(cmd)
	}
	if s := cmd.SuggestionsFor(arg); len(s) > 0 {
		msg += " (did you mean " + strings.Join(s, " or ") + "?)"
	} else {
		msg += " (commands: " + strings.Join(commandNames(cmd), ", ") + ")"
	}
	return misuse(cmd, "%s", msg)
}

func commandNames(cmd *cobra.Command) []string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return names
}

// exactArgs wants n arguments, named what in the messages.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		got := "none"
		if len(args) > 0 {
			got = fmt.Sprintf("%d (%s)", len(args), strings.Join(args, " "))
		}
		return misuse(cmd, "%s takes %s, got %s: %s", cmdName(cmd), what, got, cmd.UseLine())
	}
}

// noArgs refuses any argument; hint, if any, follows the message.
func noArgs(hint func(arg string) string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		if cmd.HasAvailableSubCommands() && len(cmd.SuggestionsFor(args[0])) > 0 {
			return unknownCommand(cmd, args[0])
		}
		msg := fmt.Sprintf("unexpected argument %q", args[0])
		if hint != nil {
			msg += " " + hint(args[0])
		}
		return misuse(cmd, "%s", msg)
	}
}

// flagError makes a flag that does not parse a usage error that says how
// to write it.
func flagError(cmd *cobra.Command, err error) error {
	fs := cmd.Flags()
	var (
		notExist *pflag.NotExistError
		noValue  *pflag.ValueRequiredError
		badValue *pflag.InvalidValueError
	)
	switch {
	case errors.As(err, &notExist) && notExist.GetSpecifiedShortnames() == "":
		if near := nearestFlag(fs, notExist.GetSpecifiedName()); near != "" {
			err = fmt.Errorf("%w (did you mean --%s?)", err, near)
		} else {
			err = fmt.Errorf("%w (%s takes %s)", err, cmdName(cmd), flagNames(fs))
		}
	case errors.As(err, &noValue) && noValue.GetFlag() != nil:
		f := noValue.GetFlag()
		name, _ := pflag.UnquoteUsage(f)
		err = fmt.Errorf("%w: give it as --%s %s", err, f.Name, name)
	case errors.As(err, &badValue) && badValue.GetFlag() != nil:
		f := badValue.GetFlag()
		_, usage := pflag.UnquoteUsage(f)
		err = fmt.Errorf("%w (--%s: %s)", err, f.Name, usage)
	}
	return &usageError{err: err, path: cmd.CommandPath()}
}

// nearestFlag is the name of fs's flag closest to typed, if one is close:
// a typo of a letter or two, or a prefix.
func nearestFlag(fs *pflag.FlagSet, typed string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := distance(typed, f.Name)
		if strings.HasPrefix(f.Name, typed) && len(typed) >= 2 {
			d = min(d, 1)
		}
		if d < bestD || d == bestD && f.Name < best {
			best, bestD = f.Name, d
		}
	})
	return best
}

func flagNames(fs *pflag.FlagSet) string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && f.Name != "help" {
			names = append(names, "--"+f.Name)
		}
	})
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// version is the --version line: the module's version and the commit it
// was built from, as the Go toolchain recorded them.
func version(bi *debug.BuildInfo, ok bool) string {
	v, rev, modified := "", "", false
	if ok {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	if rev == "" {
		rev = "unknown"
	}
	if modified {
		rev += ", modified"
	}
	return fmt.Sprintf("keybrake %s (revision %s)", v, rev)
}
