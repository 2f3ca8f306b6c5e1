// Package sweep runs the periodic looks over the member base that turn the
// passing of time into events: silence is the absence of events, so no
// callback ever says "she went quiet". Every hour the silent sweep reads
// the members (bot/segments: short read transactions, never holding up
// callbacks or the engine) and appends a member.silent event for each
// member the scenario's silent rule finds quiet; once a day at
// loss_alerts.digest_at it appends loss.digest for the day before. Like the
// campaign scheduler it never changes state or sends anything: the engine
// handles the events exactly once (dedupe keys), on every node and after
// every restart. simulate calls the same functions on its clock.
package sweep

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/segments"
	"github.com/wecombot/wecombot/scenarios"
)

// Every is how often the silent sweep runs (on the hour).
const Every = time.Hour

// MaxPerSweep bounds the member.silent events one sweep appends: switching
// the silent rule on over a large synced community marks (and tags in
// WeCom) its long-quiet members over several hours instead of in one burst
// of appends and mark_tag calls. The next sweep goes on where this one
// stopped (the members marked are no longer found).
var MaxPerSweep = 20000

// SilentEvent is the member.silent event for m at now. Its dedupe key names
// her last activity: one event per stretch of silence.
func SilentEvent(m *bot.Member, now time.Time) *bot.Event {
	last := m.LastActivity()
	return &bot.Event{Type: bot.EventMemberSilent, Source: bot.SourceCron, ExternalUserID: m.ExternalUserID, At: now, ReceivedAt: now,
		DedupeKey: "silent|" + m.ExternalUserID + "|" + strconv.FormatInt(last.Unix(), 10),
		Data:      map[string]string{bot.DataLastActive: last.UTC().Format(time.RFC3339)}}
}

// Silent calls fn with a member.silent event for every member sc's silent
// rule finds quiet at now and not yet marked. It returns how many.
func Silent(ctx context.Context, v segments.Viewer, sc *scenarios.Scenario, now time.Time, fn func(*bot.Event) error) (int, error) {
	if sc == nil || sc.Silent == nil {
		return 0, nil
	}
	n := 0
	var failed error
	_, err := segments.Each(ctx, v, sc.Silent.Segment, now, "", func(m *bot.Member) bool {
		if m.IsSilent() {
			return true // marked before (the tag is optional: the mark is not)
		}
		if err := fn(SilentEvent(m, now)); err != nil {
			failed = err
			return false
		}
		n++
		return n < MaxPerSweep
	})
	if err == nil {
		err = failed
	}
	return n, err
}

// DigestEvent is the loss.digest event for day (YYYY-MM-DD), due at at.
func DigestEvent(day string, at time.Time) *bot.Event {
	return &bot.Event{Type: bot.EventLossDigest, Source: bot.SourceCron, At: at, ReceivedAt: at,
		DedupeKey: "digest|" + day, Data: map[string]string{bot.DataDay: day}}
}

// Digests returns the loss digests due in (from, to] under sc, oldest
// first: one a day at loss_alerts.digest_at (brand zone), covering the
// day before.
func Digests(sc *scenarios.Scenario, from, to time.Time) []*bot.Event {
	if sc == nil || sc.LossAlerts == nil || !sc.LossAlerts.HasDigest || !to.After(from) {
		return nil
	}
	zone := sc.Brand.Zone
	var out []*bot.Event
	f := from.In(zone)
	for day := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, zone); !day.After(to); day = day.AddDate(0, 0, 1) {
		at := day.Add(sc.LossAlerts.DigestAt)
		if at.After(from) && !at.After(to) {
			out = append(out, DigestEvent(day.AddDate(0, 0, -1).Format(time.DateOnly), at))
		}
	}
	return out
}

// Slots returns the silent sweep's times in (from, to]: every hour on the hour.
func Slots(from, to time.Time) []time.Time {
	var out []time.Time
	for t := from.Truncate(Every).Add(Every); !t.After(to); t = t.Add(Every) {
		out = append(out, t)
	}
	return out
}

// Store is what the runner needs: reads and appends.
type Store interface {
	segments.Viewer
	AppendEvent(ctx context.Context, ev *bot.Event) (dup bool, err error)
}

// Runner runs the sweeps in serve.
type Runner struct {
	Store    Store
	Scenario func() *scenarios.Scenario
	// Notify wakes the pipeline after appends (may be nil).
	Notify func()
	Log    zerolog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// StartDelay is how long after start the first sweep waits (default
	// StartDelay): a restart's backlog of callbacks — welcome codes live
	// 20 s — goes first.
	StartDelay time.Duration
}

// StartDelay is the runner's default wait before its first sweep.
const StartDelay = time.Minute

// Run sweeps StartDelay after start and then every hour, and appends the
// digests as they come due, until ctx ends. A digest missed while the
// process was down (in the last 24 h) is appended at the first sweep.
func (r *Runner) Run(ctx context.Context) {
	delay := r.StartDelay
	if delay == 0 {
		delay = StartDelay
	}
	if delay > 0 {
		wait := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wait.C:
		}
	}
	now := r.now()
	last := now.Add(-24 * time.Hour)
	r.sweep(ctx, now, last)
	last = now
	for {
		next := now.Truncate(Every).Add(Every)
		for _, ev := range Digests(r.Scenario(), now, next) {
			if ev.At.Before(next) {
				next = ev.At
			}
		}
		timer := time.NewTimer(next.Add(time.Second).Sub(r.now()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		now = r.now()
		r.sweep(ctx, now, last)
		last = now
	}
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// sweep appends what is due at now: digests since last, and the silent sweep.
func (r *Runner) sweep(ctx context.Context, now, last time.Time) {
	sc := r.Scenario()
	appended := 0
	add := func(ev *bot.Event) error {
		dup, err := r.Store.AppendEvent(ctx, ev)
		if err != nil {
			return fmt.Errorf("append %s: %w", ev.DedupeKey, err)
		}
		if !dup {
			appended++
		}
		return nil
	}
	for _, ev := range Digests(sc, last, now) {
		if err := add(ev); err != nil {
			r.Log.Error().Err(err).Msg("loss digest not recorded; it is tried again at the next sweep")
		}
	}
	start := time.Now()
	n, err := Silent(ctx, r.Store, sc, now, add)
	if err != nil && ctx.Err() == nil {
		r.Log.Error().Err(err).Msg("silent sweep stopped; the next one goes on")
	}
	if n > 0 || appended > 0 {
		r.Log.Info().Int("silent", n).Int("appended", appended).Dur("took", time.Since(start)).Msg("member sweep")
		if r.Notify != nil {
			r.Notify()
		}
	}
}
