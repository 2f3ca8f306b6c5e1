package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/loadtest"
	"github.com/wecombot/wecombot/storage/bolt"
)

// backup writes a consistent copy of the bbolt file. While `wecombot serve`
// runs it holds the file's lock, so the copy comes from the server
// (GET /api/v1/backup, a read transaction's WriteTo: serving goes on);
// when no server runs, the file is opened read-only and copied directly.
func backup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cl := newCommandLine("backup", `Usage: wecombot backup [--url URL] FILE|-

Writes a consistent copy of the database to FILE (or stdout with -).
Safe while serving: with the server running, the copy is streamed from its
admin API (GET /api/v1/backup, bearer WECOMBOT_ADMIN_TOKEN); with no server
running, the data file is read directly. FILE is written to FILE.partial,
checked, then renamed, so a failed backup never leaves a truncated FILE.`, 1, 1)
	cl.argsHint = "FILE (or - for stdout)"
	target := cl.fs.String("url", "", "running bot's base URL (default http://127.0.0.1 on the configured listen port)")
	pos, done, err := cl.parse(args, stdout, stderr)
	if done {
		return err
	}
	dest := pos[0]
	cfg, _, err := loadConfig(getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL != "" {
		return &exitError{exitUsage, errors.New(pgBackupHelp)}
	}

	// Write to stdout, or to FILE.partial and rename once checked.
	var out io.Writer = stdout
	var partial *os.File
	if dest != "-" {
		if partial, err = os.OpenFile(dest+".partial", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		defer func() {
			if partial != nil {
				partial.Close()
				os.Remove(partial.Name())
			}
		}()
		out = partial
	}

	source := ""
	st, err := bolt.Open(cfg.DBPath(), bolt.Options{ReadOnly: true, OpenTimeout: 200 * time.Millisecond})
	switch {
	case err == nil:
		source = "the data file " + cfg.DBPath() + " (no server running)"
		_, err = st.Backup(out)
		st.Close()
		if err != nil {
			return fmt.Errorf("backup from %s: %w", cfg.DBPath(), err)
		}
	case errors.Is(err, bot.ErrStoreLocked):
		base := *target
		if base == "" {
			if base, err = localURL(cfg.Listen); err != nil {
				return &exitError{exitUsage, fmt.Errorf("backup: %w (or pass --url)", err)}
			}
		}
		source = "the running server at " + base
		if err := backupFromServer(ctx, base, cfg.AdminToken, out); err != nil {
			return err
		}
	case errors.Is(err, os.ErrNotExist):
		return &exitError{exitStore, fmt.Errorf("backup: no database at %s (check WECOMBOT_DATA_DIR)", cfg.DBPath())}
	default:
		return &exitError{exitStore, fmt.Errorf("backup: %w", err)}
	}
	if partial == nil {
		fmt.Fprintf(stderr, "backup: streamed from %s\n", source)
		return nil
	}
	if err := partial.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := partial.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	sum, err := checkDatabase(ctx, partial.Name())
	if err != nil {
		return &exitError{exitStore, fmt.Errorf("backup: the copy does not check out, not keeping it: %w", err)}
	}
	if err := os.Rename(partial.Name(), dest); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	partial = nil
	syncDir(filepath.Dir(dest))
	fmt.Fprintf(stdout, "backup: wrote %s from %s: %s\n", dest, source, describe(sum))
	return nil
}

// backupFromServer downloads GET /api/v1/backup into out.
func backupFromServer(ctx context.Context, base, token string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/v1/backup", nil)
	if err != nil {
		return &exitError{exitUsage, fmt.Errorf("backup: --url: %w", err)}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 0}).Do(req)
	if err != nil {
		return &exitError{exitLocked, fmt.Errorf("backup: the data file is locked by a running wecombot, but its admin API at %s does not answer (%v); pass --url", base, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (set WECOMBOT_ADMIN_TOKEN to the server's token)"
		}
		return fmt.Errorf("backup: server answered %s%s: %s", resp.Status, hint, strings.TrimSpace(string(msg)))
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		return fmt.Errorf("backup: download cut short: %w", err)
	}
	return nil
}

// restore replaces the data file with a checked backup. The server must be
// stopped; the file it replaces is kept beside it.
// pgBackupHelp is what backup and restore say when the store is PostgreSQL.
const pgBackupHelp = `the store is PostgreSQL (WECOMBOT_DATABASE_URL): back it up with PostgreSQL's own tools, e.g.
  pg_dump --format=custom --file=wecombot.dump "$WECOMBOT_DATABASE_URL"   (consistent while serving)
and restore into an empty database with all wecombot nodes stopped:
  pg_restore --exit-on-error --dbname="$WECOMBOT_DATABASE_URL" wecombot.dump
(point-in-time recovery: WAL archiving or your provider's snapshots; see docs/deploy.md)`

func restore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cl := newCommandLine("restore", `Usage: wecombot restore FILE

Replaces the database in WECOMBOT_DATA_DIR with the backup FILE after
checking it. Stop wecombot first. The current file is kept as
wecombot.db.before-restore-TIME. Actions the backup still owes (pending
outbox rows) are sent again when wecombot starts: see docs/deploy.md.`, 1, 1)
	cl.argsHint = "FILE (the backup to restore)"
	pos, done, err := cl.parse(args, stdout, stderr)
	if done {
		return err
	}
	src := pos[0]
	cfg, _, err := loadConfig(getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL != "" {
		return &exitError{exitUsage, errors.New(pgBackupHelp)}
	}
	sum, err := checkDatabase(ctx, src)
	if err != nil {
		return &exitError{exitStore, fmt.Errorf("restore: %s is not a usable backup: %w", src, err)}
	}
	dest := cfg.DBPath()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return &exitError{exitStore, fmt.Errorf("restore: %w", err)}
	}
	kept := ""
	if _, err := os.Stat(dest); err == nil {
		// A shared lock held through the swap: a running server refuses it,
		// and a server starting meanwhile waits and fails fast.
		cur, err := bolt.Open(dest, bolt.Options{ReadOnly: true, OpenTimeout: time.Second})
		if errors.Is(err, bot.ErrStoreLocked) {
			return &exitError{exitLocked, fmt.Errorf("restore: wecombot is running on %s; stop it first", dest)}
		}
		if err == nil {
			defer cur.Close()
		}
		// A corrupt current file is exactly when one restores: keep it aside anyway.
		kept = dest + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := copyFile(dest, kept); err != nil {
			return fmt.Errorf("restore: keep the current file: %w", err)
		}
		// Its ingest log (events acknowledged after its last move) goes
		// aside with it: they belong to that file, not to the backup.
		if err := os.Rename(bolt.IngestLogPath(dest), bolt.IngestLogPath(kept)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore: keep the current file's ingest log: %w", err)
		}
	}
	tmp := dest + ".restoring"
	if err := copyFile(src, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	syncDir(cfg.DataDir)
	fmt.Fprintf(stdout, "restore: %s now holds %s\n", dest, describe(sum))
	if kept != "" {
		fmt.Fprintf(stdout, "restore: the previous file is kept as %s\n", kept)
	}
	if sum.Outbox.Pending > 0 {
		fmt.Fprintf(stdout, "restore: %d outbox actions were still owed at backup time and will be sent when wecombot starts (welcome codes past their 20 s are dropped as too late)\n", sum.Outbox.Pending)
	}
	return nil
}

// checkDatabase opens a file read-only, runs bbolt's consistency check and
// counts what it holds.
func checkDatabase(ctx context.Context, path string) (bolt.Summary, error) {
	st, err := bolt.Open(path, bolt.Options{ReadOnly: true, OpenTimeout: time.Second})
	if err != nil {
		return bolt.Summary{}, err
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		return bolt.Summary{}, err
	}
	return st.Summarize(ctx)
}

func describe(s bolt.Summary) string {
	return fmt.Sprintf("%s, %d members, %d events (last seq %d, %d unprocessed), outbox %d sent / %d pending / %d failed",
		loadtest.MB(s.Bytes), s.Members, s.Events.LastSeq, s.Events.LastSeq, s.Events.Pending, s.Outbox.Sent, s.Outbox.Pending, s.Outbox.Failed)
}

// copyFile copies src to dst (created 0600) and fsyncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncDir makes a rename durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
