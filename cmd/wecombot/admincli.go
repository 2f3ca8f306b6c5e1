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
// command's own. done is set when help was printed.
type subcommand struct {
	sub    string
	pos    []string
	server string
}

func parseSubcommand(name, usage string, args []string, stdout, stderr io.Writer, flags func(*flag.FlagSet)) (sc subcommand, done bool, err error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(stderr, usage)
			return sc, true, &exitError{exitUsage, errSilent}
		}
		fmt.Fprint(stdout, usage)
		return sc, true, nil
	}
	sc.sub = args[0]
	cl := newCommandLine(name+" "+sc.sub, usage, 0, -1)
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
