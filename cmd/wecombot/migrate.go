package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/bolt"
	"github.com/wecombot/wecombot/storage/postgres"
)

// migrate creates or upgrades the PostgreSQL schema, or copies a bbolt
// database into PostgreSQL (resumable, counts verified).
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cl := newCommandLine("migrate", `Usage: wecombot migrate [--to postgres://…] [--from bolt:PATH]

Without --from: creates or upgrades the PostgreSQL schema to this build's
version and prints the versions (serve also does it at start; run it
before rolling a new version out to several nodes).

With --from bolt:PATH: copies a bbolt database (wecombot.db; stop the
server first) into PostgreSQL — events with their processed state, dedupe
keys, members, the outbox with every action's status, and all feature
data — then compares the counts on both sides. The target must be empty
or hold an interrupted copy of the same file: re-run the same command to
resume it. --to defaults to WECOMBOT_DATABASE_URL.`, 0, 0)
	from := cl.fs.String("from", "", "bbolt database to copy, as bolt:PATH")
	to := cl.fs.String("to", "", "PostgreSQL URL (default WECOMBOT_DATABASE_URL)")
	if _, done, err := cl.parse(args, stdout, stderr); done {
		return err
	}
	target := *to
	if target == "" {
		cfg, _, err := loadConfig(getenv, stderr)
		if err != nil {
			return err
		}
		target = cfg.DatabaseURL
	}
	if target == "" {
		return &exitError{exitUsage, errors.New("migrate: no PostgreSQL database: pass --to postgres://… or set WECOMBOT_DATABASE_URL")}
	}
	shown := "postgres"
	if u, err := url.Parse(target); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		shown = u.Redacted()
	} else {
		return &exitError{exitUsage, errors.New("migrate: --to must be a postgres://user:password@host:5432/database URL")}
	}
	before, after, err := postgres.MigrateURL(ctx, target)
	if err != nil {
		return &exitError{exitStore, fmt.Errorf("migrate: %s: %w", shown, err)}
	}
	if before == after {
		fmt.Fprintf(stdout, "schema of %s is at version %d (current)\n", shown, after)
	} else {
		fmt.Fprintf(stdout, "schema of %s migrated from version %d to %d\n", shown, before, after)
	}
	if *from == "" {
		return nil
	}
	path, ok := strings.CutPrefix(*from, "bolt:")
	if !ok || path == "" {
		return &exitError{exitUsage, errors.New("migrate: --from must be bolt:PATH (the wecombot.db file)")}
	}
	return copyBolt(ctx, path, target, shown, stdout)
}

func copyBolt(ctx context.Context, path, target, shown string, stdout io.Writer) error {
	abs, err := absPath(path)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	src, err := bolt.Open(abs, bolt.Options{ReadOnly: true, OpenTimeout: 500 * time.Millisecond})
	if err != nil {
		if errors.Is(err, bot.ErrStoreLocked) {
			return &exitError{exitLocked, fmt.Errorf("migrate: %s is in use: stop wecombot before copying it", abs)}
		}
		return &exitError{exitStore, fmt.Errorf("migrate: %w", err)}
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, target, postgres.Options{NoMigrate: true})
	if err != nil {
		return &exitError{exitStore, fmt.Errorf("migrate: %s: %w", shown, err)}
	}
	defer dst.Close()
	source := "bolt:" + abs
	im, st, err := dst.BeginImport(ctx, source)
	if err != nil {
		return &exitError{exitStore, fmt.Errorf("migrate: %s: %w", shown, err)}
	}
	if st.EventSeq+st.ActionID > 0 || st.MemberID != "" || st.KVBucket != "" {
		fmt.Fprintf(stdout, "resuming the copy of %s (after event %d, action %d, member %q, key %s/%q)\n", abs, st.EventSeq, st.ActionID, st.MemberID, st.KVBucket, st.KVKey)
	}
	start := time.Now()
	eventSeq, actionSeq, err := src.Export(ctx, bolt.ExportFrom{EventSeq: st.EventSeq, ActionID: st.ActionID, MemberID: st.MemberID, KVBucket: st.KVBucket, KVKey: st.KVKey},
		bolt.ExportSink{Event: im.Event, Dedupe: im.Dedupe, Member: im.Member, Action: im.Action, KV: im.KV})
	if err == nil {
		err = im.Finish(source, eventSeq, actionSeq)
	}
	if err != nil {
		return &exitError{exitStore, fmt.Errorf("migrate: copy interrupted (%v); run the same command again to resume", err)}
	}
	fmt.Fprintf(stdout, "copied %s in %s: %v\n", abs, time.Since(start).Round(time.Millisecond), im.Rows)
	return verifyCopy(ctx, src, dst, stdout)
}

// verifyCopy compares counts of every kind, and the event and outbox
// states, between the source and the copy.
func verifyCopy(ctx context.Context, src *bolt.Store, dst *postgres.Store, stdout io.Writer) error {
	a, err := src.Counts(ctx)
	if err != nil {
		return err
	}
	b, err := dst.Counts(ctx)
	if err != nil {
		return err
	}
	se, _ := src.EventStats(ctx)
	de, _ := dst.EventStats(ctx)
	so, _ := src.OutboxStats(ctx)
	do, _ := dst.OutboxStats(ctx)
	for k, v := range map[string][2]int{
		"events pending": {se.Pending, de.Pending}, "events failed": {se.Failed, de.Failed},
		"outbox pending": {so.Pending, do.Pending}, "outbox sent": {so.Sent, do.Sent}, "outbox failed": {so.Failed, do.Failed},
		"last event seq": {int(se.LastSeq), int(de.LastSeq)},
	} {
		a[k], b[k] = v[0], v[1]
	}
	var names []string
	for k := range a {
		names = append(names, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	bad := 0
	fmt.Fprintf(stdout, "%-28s %10s %10s\n", "", "bolt", "postgres")
	for _, k := range names {
		mark := ""
		if a[k] != b[k] {
			mark, bad = "  MISMATCH", bad+1
		}
		fmt.Fprintf(stdout, "%-28s %10d %10d%s\n", k, a[k], b[k], mark)
	}
	if bad > 0 {
		return &exitError{exitStore, fmt.Errorf("migrate: %d counts differ between the bbolt file and the copy", bad)}
	}
	fmt.Fprintln(stdout, "verified: every count matches; point WECOMBOT_DATABASE_URL at the database and start wecombot")
	return nil
}

func absPath(p string) (string, error) {
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	return filepath.Abs(p)
}
