// Package outreach schedules the scenario's broadcasts (群发): each
// occurrence of a broadcast's at or cron becomes a broadcast.run event in
// the durable log, deduplicated by (broadcast, occurrence), so a restart, a
// catch-up or a second node never runs one twice. The engine does the
// fan-out (bot/engine broadcast.go); this package never sends anything.
package outreach

import (
	"context"
	"sort"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/schedule"
	"github.com/wecombot/wecombot/scenarios"
)

// Occurrence is one due run of a broadcast, or (SOP set) the day's scan
// of a date-triggered SOP.
type Occurrence struct {
	Broadcast string
	SOP       string
	At        time.Time
}

// Event is the occurrence as an event for the log.
func (o Occurrence) Event(received time.Time) *bot.Event {
	if o.SOP != "" {
		return bot.SOPDateEvent(o.SOP, o.At, received)
	}
	return bot.BroadcastRunEvent(o.Broadcast, o.At, received)
}

// daily is when a date-triggered SOP's scan runs: each midnight (brand zone).
const daily = "0 0 * * *"

// schedules lists sc's scheduled work: each broadcast's schedule, and a
// daily one per date-triggered SOP.
func schedules(sc *scenarios.Scenario) []Occurrence {
	var out []Occurrence
	for _, b := range sc.Broadcasts {
		if b.Schedule != nil {
			out = append(out, Occurrence{Broadcast: b.Name})
		}
	}
	for _, s := range sc.SOPs {
		if s.Trigger.Kind == scenarios.TriggerDate {
			out = append(out, Occurrence{SOP: s.Name})
		}
	}
	return out
}

func scheduleOf(sc *scenarios.Scenario, o Occurrence) cron.Schedule {
	if o.SOP != "" {
		sched, _ := cron.ParseStandard(daily)
		if s, ok := sched.(*cron.SpecSchedule); ok {
			s.Location = sc.Brand.Zone
		}
		return sched
	}
	return sc.Broadcast(o.Broadcast).Schedule
}

// Occurrences returns every occurrence of sc's scheduled work in (from,
// to], in time order (file order on equal times). simulate and the
// catch-up use it.
func Occurrences(sc *scenarios.Scenario, from, to time.Time) []Occurrence {
	var out []Occurrence
	for _, o := range schedules(sc) {
		sched := scheduleOf(sc, o)
		for t := sched.Next(from); !t.IsZero() && !t.After(to); t = sched.Next(t) {
			o.At = t
			out = append(out, o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// Options configure a Scheduler; CatchUp (occurrences missed while the
// process was down, re-appended on start and reload: the log's dedupe and
// the engine's run record drop those that ran) defaults to 1 hour.
type Options = schedule.Options

// Scheduler fires the scenario's broadcasts and date-triggered SOPs (bot/schedule).
type Scheduler struct {
	inner *schedule.Scheduler
}

// New returns a stopped scheduler; Load starts it.
func New(o Options) *Scheduler {
	return &Scheduler{inner: schedule.New(o, schedule.Kind{Component: "broadcasts", What: "broadcast", CatchUp: time.Hour})}
}

// Load replaces the entries with sc's (start and every reload) and catches
// up occurrences missed in the last CatchUp.
func (s *Scheduler) Load(ctx context.Context, sc *scenarios.Scenario) {
	var jobs []schedule.Job
	for _, o := range schedules(sc) {
		o := o
		jobs = append(jobs, schedule.Job{Schedule: scheduleOf(sc, o), Event: func(slot time.Time) *bot.Event {
			o.At = slot
			return o.Event(s.inner.Now())
		}})
	}
	missed := func(from, to time.Time) (evs []*bot.Event) {
		for _, o := range Occurrences(sc, from, to) {
			evs = append(evs, o.Event(to))
		}
		return evs
	}
	if s.inner.Load(ctx, sc, jobs, missed) {
		s.inner.Log().Info().Int("broadcasts", len(sc.Broadcasts)).Str("scenario", sc.Version).Msg("broadcast schedule loaded")
	}
}

// Stop stops cron and waits for a running job.
func (s *Scheduler) Stop() { s.inner.Stop() }
