package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/media"
	"github.com/wecombot/wecombot/bot/poster"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/scenarios"
)

// mediaKeepInterval is how often serve checks that every file the scenario
// attaches is uploaded and its media_id far from WeCom's 3-day expiry.
const mediaKeepInterval = time.Hour

// newMediaLibrary builds the media library on the real client, or on a
// recorder in the sandbox (nothing is uploaded; ids are made up).
func newMediaLibrary(store bot.Store, client *wecomapi.Client, posters *poster.Renderer, now func() time.Time, log zerolog.Logger) *media.Library {
	lib := &media.Library{Store: store, Open: scenarios.ReadMedia, Render: posters.Media, Now: now, Log: log.With().Str("component", "media").Logger()}
	if client != nil {
		lib.Uploader, lib.Fetch = client, client.Fetch
	} else {
		lib.Uploader = &media.Recorder{}
		lib.Fetch = func(context.Context, string) ([]byte, error) {
			return nil, fmt.Errorf("the sandbox fetches no URLs")
		}
	}
	return lib
}

// withMedia makes sender resolve scenario media before delivering.
func withMedia(sender bot.Sender, lib *media.Library) bot.Sender {
	return &media.Sender{Next: sender, Lib: lib, Classify: wecomapi.Classify, Stale: wecomapi.IsStaleMedia}
}

// keepMedia uploads the current scenario's media now and then hourly, so
// sends find fresh media ids (welcome codes live only 20 s: no time to
// upload then).
func keepMedia(ctx context.Context, lib *media.Library, current func() *scenarios.Scenario, log zerolog.Logger) {
	t := time.NewTicker(mediaKeepInterval)
	defer t.Stop()
	for {
		if notes, err := lib.Keep(ctx, current().Media); err != nil {
			log.Warn().Err(err).Msg("media: some scenario attachments could not be uploaded; sends will try again")
		} else if len(notes) > 0 {
			log.Info().Strs("uploads", notes).Msg("media: scenario attachments uploaded")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
