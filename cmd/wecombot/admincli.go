package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// subcommand parses `wecombot NAME SUB [args] [flags]` for commands that
// talk to the running bot (channel, coupons): flags may come before or
// after the positional arguments. It adds --server; flags adds the
// command's own. nargs gives each subcommand's number of positional
// arguments: an unknown subcommand or a wrong count is a usage error (exit 2)
// before anything connects. done is set when the command should return err.
type subcommand struct {
	sub    string
	pos    []string
	server string
}

func parseSubcommand(name, usage string, nargs map[string]int, args []string, stdout, stderr io.Writer, flags func(*flag.FlagSet)) (sc subcommand, done bool, err error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(stderr, usage)
			return sc, true, &exitError{exitUsage, errSilent}
		}
		fmt.Fprint(stdout, usage)
		return sc, true, nil
	}
	sc.sub = args[0]
	n, known := nargs[sc.sub]
	if !known {
		fmt.Fprintf(stderr, "wecombot %s: unknown command %q\n\n%s", name, sc.sub, usage)
		return sc, true, &exitError{exitUsage, errSilent}
	}
	cl := newCommandLine(name+" "+sc.sub, usage, n, n)
	cl.fs.StringVar(&sc.server, "server", "", "the running bot's base URL")
	if flags != nil {
		flags(cl.fs)
	}
	sc.pos, done, err = cl.parse(args[1:], stdout, stderr)
	return sc, done, err
}

// adminFor returns a client for the running bot's admin API: server, else
// this machine's WECOMBOT_LISTEN, with WECOMBOT_ADMIN_TOKEN.
func adminFor(server string, getenv func(string) string, stderr io.Writer) (*adminClient, error) {
	cfg, _, err := loadConfig(getenv, stderr)
	if err != nil {
		return nil, err
	}
	base := server
	if base == "" {
		if base, err = localURL(cfg.Listen); err != nil {
			return nil, err
		}
	}
	return &adminClient{base: strings.TrimRight(base, "/"), token: cfg.AdminToken}, nil
}
