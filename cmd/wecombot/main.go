// Command wecombot runs a brand's private-traffic community on WeCom (企业微信).
//
// main only wires the process to run(); everything testable lives behind run,
// so end-to-end tests start the real server in-process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Only `wecombot serve` sets the memory limit: bench's in-process
	// servers share the bench's process, which keeps the runtime's default.
	setsMemoryLimit = len(os.Args) > 1 && os.Args[1] == "serve"
	// serve and bench (which runs serve's code in-process) take one P
	// more than cores: a thread in fdatasync holds its P (procs.go).
	applyProcs(os.Getenv, len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "bench"))
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "wecombot:", err)
		}
		os.Exit(exitCode(err))
	}
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes.
const (
	exitFailure = 1 // a command failed (check found problems, doctor found faults)
	exitUsage   = 2 // bad command line
	exitLocked  = 3 // the data directory is in use by another process
	exitStore   = 4 // the data file cannot be opened (corrupt, permissions)
)

// exitError carries an exit code through run's error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errSilent marks an error already reported to the user.
var errSilent = errors.New("already reported")

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

const usage = `wecombot — private-traffic community bot for WeCom (企业微信)

Usage:
  wecombot serve                 run the bot (callback server, workers, dashboard)
  wecombot check                 validate config and scenarios; exit 1 with file:line errors
  wecombot doctor                check credentials, trusted IP (60020) and the callback; print what to fix
  wecombot simulate [--scenario PATH] [EVENTS.yaml|-]
                                 run scenarios offline against a script of events (no file: the demo week)
  wecombot callback TYPE [flags]  send a signed test callback to a running bot (sandbox keys by default)
  wecombot channel list|create STATE [--staff IDS] | create --group STATE
                                 list channels; create a "contact me" code carrying STATE (add_contact_way),
                                 or a group channel's 加入群聊 QR code (add_join_way)
  wecombot sync [--status]       import the existing customers, groups and tags from WeCom (through the running bot)
  wecombot transfer FROM TO [--customers IDS] [--resigned] | list | unassigned
                                 move a staff member's customers and groups to another (在职/离职继承)
  wecombot backup FILE|-          write a consistent copy of the database (safe while serving)
  wecombot restore FILE          replace the database with a checked backup (server stopped)
  wecombot migrate [--to postgres://…] [--from bolt:PATH]
                                 create/upgrade the PostgreSQL schema; copy a bbolt database into it (resumable, verified)
  wecombot coupons import|generate|grant|report
                                 coupon codes: import a CSV, generate, grant to a member, report (docs/shop-webhook.md)
  wecombot events failed|retry SEQ|--all
                                 list events a handler failed on; replay them once the cause is fixed
  wecombot bench [--duration 10s --concurrency 64 --rate 0 --members 0]
                                 load-test the real server in-process against a fake WeCom (docs/performance.md)
  wecombot ask [flags] "QUESTION" ask the bot as a 微信客服 member would, offline (keyword rules, then the AI reply)
  wecombot healthcheck           exit 0 if the local server's /healthz answers 200 (for container healthchecks)
  wecombot version               print the version
  wecombot help COMMAND          a command's flags (or: wecombot COMMAND --help)

Configuration comes from environment variables (see README.md), optionally a
YAML file named by WECOMBOT_CONFIG. With no WECOM_SECRET the bot runs in
sandbox mode: outbound WeCom calls are recorded and logged, not sent.
`

// run is the whole program: args exclude the program name.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{exitUsage, errSilent}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "check":
		return check(ctx, rest, getenv, stdout, stderr)
	case "doctor":
		return doctor(ctx, rest, getenv, stdout, stderr)
	case "backup":
		return backup(ctx, rest, getenv, stdout, stderr)
	case "restore":
		return restore(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return bench(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, rest, getenv, stdout, stderr)
	case "simulate":
		return simulate(ctx, rest, getenv, stdin, stdout, stderr)
	case "callback":
		return callback(ctx, rest, getenv, stdout, stderr)
	case "channel":
		return channel(ctx, rest, getenv, stdout, stderr)
	case "sync":
		return syncCmd(ctx, rest, getenv, stdout, stderr)
	case "transfer":
		return transferCmd(ctx, rest, getenv, stdout, stderr)
	case "ask":
		return ask(ctx, rest, getenv, stdout, stderr)
	case "coupons":
		return coupons(ctx, rest, getenv, stdout, stderr)
	case "events":
		return events(ctx, rest, getenv, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-v":
		cl := newCommandLine("version", "Usage: wecombot version\n\nPrints the version this binary was built as.", 0, 0)
		if _, done, err := cl.parse(rest, stdout, stderr); done {
			return err
		}
		fmt.Fprintf(stdout, "wecombot %s\n", version)
		return nil
	case "help", "--help", "-h":
		if len(rest) > 0 && rest[0] != "help" && !strings.HasPrefix(rest[0], "-") { // wecombot help simulate
			return run(ctx, []string{rest[0], "--help"}, getenv, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return &exitError{exitUsage, errSilent}
}

// healthcheck asks the local server's /healthz, for images without curl. It
// reads the same configuration as serve (WECOMBOT_LISTEN, else the YAML
// file's listen:), so it asks where the server listens.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cl := newCommandLine("healthcheck", "Usage: wecombot healthcheck [--url URL]\n\nExits 0 when the local server's /healthz answers 200, else 1 (for container\nhealthchecks). The address is the one serve listens on: WECOMBOT_LISTEN, else\nlisten: in the WECOMBOT_CONFIG file, else :8080.", 0, 0)
	target := cl.fs.String("url", "", "base URL to ask instead of the configured listen address")
	if _, done, err := cl.parse(args, stdout, stderr); done {
		return err
	}
	base := *target
	if base == "" {
		cfg, _, err := loadConfig(getenv, stderr)
		if err != nil {
			return err
		}
		if base, err = localURL(cfg.Listen); err != nil {
			return err
		}
	}
	base = strings.TrimRight(base, "/")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthz: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz answered %s", resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
