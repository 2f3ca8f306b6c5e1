package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/wecombot/wecombot/bot"
)

const eventsUsage = `Usage:
  wecombot events failed [--server URL]
  wecombot events retry SEQ|--all [--server URL]

Events whose handler failed (the same error on a healthy store, three
times) are recorded as failed instead of blocking the log; a store that
refuses writes (disk full, read-only) fails no event: they wait as pending.
"failed" lists the failed events with their errors; "retry" puts one (SEQ)
or every failed event (--all) back, and the running bot applies them again
through the engine's usual idempotency: what an event already caused is not
caused twice. Fix the cause first (a scenario, a bug), then retry.

The bot's admin API is found at --server (default: http://127.0.0.1:<port of
WECOMBOT_LISTEN>) with the bearer token WECOMBOT_ADMIN_TOKEN, if set.
`

// events is `wecombot events`: list and replay failed events.
func events(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var all *bool
	// retry takes SEQ or --all: its count is checked below.
	nargs := map[string]int{"failed": 0, "retry": -1}
	sc, done, err := parseSubcommand("events", eventsUsage, nargs, args, stdout, stderr, func(fs *flag.FlagSet) {
		all = fs.Bool("all", false, "retry every failed event (retry)")
	})
	if done || err != nil {
		return err
	}
	api, err := adminFor(sc.server, getenv, stderr)
	if err != nil {
		return err
	}
	switch sc.sub {
	case "failed":
		if len(sc.pos) != 0 {
			return &exitError{exitUsage, fmt.Errorf("%s", "events failed takes no arguments")}
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTYPE\tMEMBER\tRECEIVED\tERROR")
		for cursor := ""; ; {
			var page struct {
				FailedEvents []bot.FailedEvent `json:"failed_events"`
				NextCursor   string            `json:"next_cursor"`
			}
			if _, err := api.do(ctx, http.MethodGet, "/api/v1/events/failed?limit=1000&cursor="+url.QueryEscape(cursor), nil, &page); err != nil {
				return err
			}
			for _, f := range page.FailedEvents {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", f.Event.Seq, f.Event.Type, f.Event.ExternalUserID, f.Event.ReceivedAt.Format("2006-01-02 15:04:05"), f.Error)
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		return tw.Flush()
	case "retry":
		path := "/api/v1/events/retry"
		switch {
		case *all && len(sc.pos) == 0:
		case !*all && len(sc.pos) == 1:
			seq, err := strconv.ParseUint(sc.pos[0], 10, 64)
			if err != nil || seq == 0 {
				return &exitError{exitUsage, fmt.Errorf("%s", fmt.Sprintf("SEQ must be an event seq (a positive whole number), got %q", sc.pos[0]))}
			}
			path = fmt.Sprintf("/api/v1/events/%d/retry", seq)
		default:
			return &exitError{exitUsage, fmt.Errorf("%s", "events retry takes one SEQ or --all")}
		}
		var out struct {
			Retried int `json:"retried"`
		}
		if _, err := api.do(ctx, http.MethodPost, path, nil, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d failed event(s) put back; the bot applies them now\n", out.Retried)
		return nil
	}
	return &exitError{exitUsage, fmt.Errorf("%s", fmt.Sprintf("unknown events command %q (failed, retry)", sc.sub))}
}
