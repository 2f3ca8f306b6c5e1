package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/wecomsync"
	"github.com/wecombot/wecombot/config"
)

// syncControl binds the syncer to serve's lifetime for the admin API.
type syncControl struct {
	s   *wecomsync.Syncer
	ctx context.Context
}

func (c syncControl) StartSync(trigger string) bool { return c.s.Start(c.ctx, trigger) }

func (c syncControl) SyncProgress(ctx context.Context) (wecomsync.Progress, error) {
	return c.s.Progress(ctx)
}

// scheduleSync runs the sync once at the first start with credentials (and
// resumes one a crash interrupted), then daily at cfg.SyncAt in the brand's
// zone; SyncAt "off" turns both automatic runs off (an interrupted run
// still resumes). The returned func stops the schedule.
func scheduleSync(ctx context.Context, cfg *config.Config, s *wecomsync.Syncer, store bot.Store, zone *time.Location, log zerolog.Logger) (func(), error) {
	var cur *engine.SyncRun
	if err := store.View(ctx, func(tx bot.Tx) (err error) { cur, err = engine.CurrentSyncRun(tx); return err }); err != nil {
		return nil, fmt.Errorf("read the last sync: %w", err)
	}
	hour, minute, err := cfg.SyncClock()
	if err != nil {
		return nil, err
	}
	switch {
	case cur == nil && hour < 0:
		log.Info().Msg("automatic sync is off (WECOMBOT_SYNC_AT=off): run wecombot sync to import the existing customers and groups")
	case cur == nil:
		log.Info().Msg("first start with WeCom credentials: importing the existing customers and groups (nothing is sent to them)")
		s.Start(ctx, "first_start")
	case cur.Status == engine.SyncRunning:
		log.Info().Str("run", cur.ID).Msg("resuming the sync that was interrupted")
		s.Start(ctx, "resume")
	}
	if hour < 0 {
		return func() {}, nil
	}
	if zone == nil {
		zone = time.Local
	}
	c := cron.New(cron.WithLocation(zone), cron.WithChain(cron.Recover(cron.DiscardLogger)))
	if _, err := c.AddFunc(fmt.Sprintf("%d %d * * *", minute, hour), func() { s.Start(ctx, "daily") }); err != nil {
		return nil, err
	}
	c.Start()
	return func() { c.Stop() }, nil
}

const syncUsage = `Usage:
  wecombot sync [--status] [--no-wait] [--server URL]

Imports the brand's existing customers, customer groups and corp tags from
WeCom into the running bot (staff with customer contact, their customers,
groups with their members, the tag library). Imported members get their
follow users, remarks, tags, channel and a stage (aware, or interest when in
a customer group); nothing is sent to them. A sync also runs once on the
first start with credentials and daily at WECOMBOT_SYNC_AT (default 03:30).

Prints a progress line until the sync is done, then what changed.
--status prints the running or last sync and returns; --no-wait starts it
and returns.
`

// syncCmd is `wecombot sync`.
func syncCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var status, noWait *bool
	sc, done, err := parseSubcommand("sync", syncUsage, map[string]int{"run": 0}, append([]string{"run"}, args...), stdout, stderr, func(fs *flag.FlagSet) {
		status = fs.Bool("status", false, "print the running or last sync and return")
		noWait = fs.Bool("no-wait", false, "start the sync and return")
	})
	if done || err != nil {
		return err
	}
	api, err := adminFor(sc.server, getenv, stderr)
	if err != nil {
		return err
	}
	var v syncAnswer
	if *status {
		if _, err := api.do(ctx, http.MethodGet, "/api/v1/sync", nil, &v); err != nil {
			return err
		}
		fmt.Fprintln(stdout, v.line())
		return nil
	}
	code, err := api.do(ctx, http.MethodPost, "/api/v1/sync", map[string]any{}, &v)
	if err != nil {
		return err
	}
	if code == http.StatusOK {
		fmt.Fprintln(stdout, "a sync is already running:")
	}
	if *noWait {
		fmt.Fprintln(stdout, v.line())
		return nil
	}
	runID := ""
	if v.Run != nil {
		runID = v.Run.ID
	}
	last := ""
	for {
		line := v.line()
		if line != last {
			fmt.Fprintln(stdout, line)
			last = line
		}
		if v.Run != nil && v.Run.ID != runID && runID != "" {
			runID = v.Run.ID
		}
		if v.Run != nil && (v.Run.ID == runID || runID == "") && (v.Run.Status == engine.SyncDone || v.Run.Status == engine.SyncFailed) && !v.Running {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		if _, err := api.do(ctx, http.MethodGet, "/api/v1/sync", nil, &v); err != nil {
			return err
		}
	}
	r := v.Run
	if r.Status == engine.SyncFailed {
		return errors.New("sync failed: " + r.Error)
	}
	fmt.Fprintf(stdout, "done: %d customers (%d new, %d updated, %d gone), %d groups (%d new, %d updated, %d gone), %d WeCom calls\n",
		r.Customers, r.New, r.Updated, r.Gone, r.Groups, r.GroupsNew, r.GroupsUpdated, r.GroupsGone, v.Calls)
	if len(r.OutOfRange) > 0 {
		fmt.Fprintf(stdout, "not read: the customers of %s — outside the app's 可见范围 (visible range); add them in 应用管理 → the app → 可见范围 and sync again\n",
			strings.Join(r.OutOfRange, ", "))
	}
	return nil
}

// syncAnswer is what /api/v1/sync answers.
type syncAnswer struct {
	wecomsync.Progress
	Detail string `json:"detail"`
}

// line is the CLI's progress line.
func (v syncAnswer) line() string {
	r := v.Run
	if r == nil {
		if v.Detail != "" {
			return v.Detail
		}
		return "no sync has run yet"
	}
	bar := progressBar(v.Ratio, 24)
	s := fmt.Sprintf("sync %s %s %3.0f%% %s: %d/%d relations, %d customers (%d new, %d updated), %d groups",
		r.ID, bar, v.Ratio*100, r.Status+"/"+r.Phase, r.Relations, r.Estimate, r.Customers, r.New, r.Updated, r.Groups)
	if v.ETASeconds > 0 {
		s += fmt.Sprintf(", ETA %s", (time.Duration(v.ETASeconds) * time.Second).Round(time.Second))
	}
	if r.Error != "" {
		s += " — " + r.Error
	}
	return s
}

func progressBar(ratio float64, width int) string {
	n := int(ratio*float64(width) + 0.5)
	n = max(0, min(width, n))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
