package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// commandLine is one subcommand's command line: its flags, its help text and
// how many positional arguments it takes. Every subcommand parses through
// it, so they all behave alike:
//   - flags may come before or after positional arguments
//     (`simulate ev.yaml --scenario X`); `--` ends the flags;
//   - a wrong number of positional arguments is a usage error (exit 2)
//     naming the extra or missing argument;
//   - -h/--help prints the help to stdout and exits 0;
//   - the help lists flags as --name, like the usage line.
type commandLine struct {
	fs *flag.FlagSet
	// help is the text above the flag list: "Usage: wecombot NAME …\n\nWhat it does."
	help string
	// minArgs and maxArgs bound the positional arguments (maxArgs < 0: no limit).
	minArgs, maxArgs int
	// argsHint names the positional arguments for the "missing argument" error.
	argsHint string
}

func newCommandLine(name, help string, minArgs, maxArgs int) *commandLine {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by parse, help by printHelp
	return &commandLine{fs: fs, help: help, minArgs: minArgs, maxArgs: maxArgs}
}

// parse parses args. done is true when the command should return err at once
// (help printed: err nil; bad command line: an exit-2 error, already reported
// on stderr with the help).
func (c *commandLine) parse(args []string, stdout, stderr io.Writer) (pos []string, done bool, err error) {
	rest := args
	for len(rest) > 0 {
		if err := c.fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printHelp(stdout)
				return nil, true, nil
			}
			return nil, true, c.usageError(stderr, err.Error())
		}
		left := c.fs.Args()
		if consumed := len(rest) - len(left); consumed > 0 && rest[consumed-1] == "--" {
			pos = append(pos, left...) // after "--" everything is positional
			break
		}
		if len(left) > 0 {
			pos, left = append(pos, left[0]), left[1:]
		}
		rest = left
	}
	if c.maxArgs >= 0 && len(pos) > c.maxArgs {
		extra := pos[c.maxArgs:]
		return nil, true, c.usageError(stderr, fmt.Sprintf("unexpected argument %s", quoteArgs(extra)))
	}
	if len(pos) < c.minArgs {
		if c.argsHint != "" {
			return nil, true, c.usageError(stderr, "missing "+c.argsHint)
		}
		return nil, true, c.usageError(stderr, fmt.Sprintf("takes %d argument(s), got %d", c.minArgs, len(pos)))
	}
	return pos, false, nil
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, " ")
}

// usageError reports a bad command line on stderr: the problem, then the help.
func (c *commandLine) usageError(stderr io.Writer, problem string) error {
	fmt.Fprintf(stderr, "wecombot %s: %s\n\n", c.fs.Name(), problem)
	c.printHelp(stderr)
	return &exitError{exitUsage, errSilent}
}

// printHelp writes the help text and the flags, spelled --name.
func (c *commandLine) printHelp(w io.Writer) {
	fmt.Fprintln(w, strings.TrimRight(c.help, "\n"))
	printFlags(w, c.fs)
}

// printFlags lists fs's flags as --name TYPE, with their usage and default,
// in the same spelling the usage lines use.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		usage = strings.ReplaceAll(usage, "\n", "\n    \t")
		if !isZeroDefault(f) {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, usage)
	})
}

func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return true
	}
	return false
}
