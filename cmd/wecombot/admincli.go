package main

import (
	"errors"
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
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return sc, true, &exitError{exitUsage, errSilent}
		}
		return sc, true, nil
	}
	sc.sub = args[0]
	rest := args[1:]
	fs := flag.NewFlagSet(name+" "+sc.sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	fs.StringVar(&sc.server, "server", "", "the running bot's base URL")
	if flags != nil {
		flags(fs)
	}
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return sc, true, nil
			}
			return sc, true, &exitError{exitUsage, err}
		}
		rest = fs.Args()
		if len(rest) > 0 {
			sc.pos, rest = append(sc.pos, rest[0]), rest[1:]
		}
	}
	return sc, false, nil
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
