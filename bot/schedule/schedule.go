// Package schedule runs wecombot's clock-driven work on robfig/cron: a
// job's firing never does the work itself, it appends an event (with a
// dedupe key naming the slot) to the durable log, so the engine acts on
// each slot exactly once, across restarts, catch-ups and nodes. Campaign
// reminders (bot/checkin) and broadcasts (bot/outreach) use it.
package schedule

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
)

// Job is one schedule: at each of its times, Event(slot) is appended.
type Job struct {
	Schedule cron.Schedule
	// Event is the event of the firing at slot (the schedule's time, not
	// when the process got round to it).
	Event func(slot time.Time) *bot.Event
}

// Appender is the part of the event log a scheduler needs.
type Appender interface {
	AppendEvent(ctx context.Context, ev *bot.Event) (dup bool, err error)
}

// Options configure a Scheduler.
type Options struct {
	Log    zerolog.Logger
	Events Appender
	// Notify wakes the pipeline after an append (may be nil).
	Notify func()
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Zone is cron's default location (the brand's zone).
	Zone *time.Location
	// What names the events in logs ("campaign tick").
	What string
}

// Scheduler fires jobs on cron.
type Scheduler struct {
	o Options

	mu      sync.Mutex
	cron    *cron.Cron
	current any
}

// New returns a stopped scheduler; Load starts it.
func New(o Options) *Scheduler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Zone == nil {
		o.Zone = time.Local
	}
	if o.What == "" {
		o.What = "scheduled event"
	}
	return &Scheduler{o: o}
}

// Fire appends ev; a duplicate (the slot was appended before) is not an
// error. It reports whether ev was new.
func (s *Scheduler) Fire(ctx context.Context, ev *bot.Event) (bool, error) {
	dup, err := s.o.Events.AppendEvent(ctx, ev)
	if err != nil {
		return false, fmt.Errorf("append %s: %w", ev.DedupeKey, err)
	}
	if dup {
		s.o.Log.Debug().Str("key", ev.DedupeKey).Msg(s.o.What + " already in the log")
		return false, nil
	}
	s.o.Log.Info().Str("key", ev.DedupeKey).Time("slot", ev.At).Msg(s.o.What + " due")
	if s.o.Notify != nil {
		s.o.Notify()
	}
	return true, nil
}

// Load replaces the jobs (unless version is the one loaded: then it does
// nothing and returns false), after appending catchUp — firings missed
// while the process was down, which the log's dedupe drops when they did
// fire.
func (s *Scheduler) Load(ctx context.Context, version any, jobs []Job, catchUp []*bot.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if version == s.current {
		return false
	}
	if s.cron != nil {
		<-s.cron.Stop().Done()
	}
	s.current = version
	logger := cronLogger{s.o.Log}
	c := cron.New(cron.WithLocation(s.o.Zone), cron.WithChain(cron.Recover(logger), cron.SkipIfStillRunning(logger)))
	for _, j := range jobs {
		j := j
		c.Schedule(j.Schedule, cron.FuncJob(func() {
			slot := LastSlot(j.Schedule, s.o.Now())
			if slot.IsZero() {
				return
			}
			ev := j.Event(slot)
			if _, err := s.Fire(ctx, ev); err != nil {
				s.o.Log.Error().Err(err).Msg("scheduled event not recorded; it is caught up on restart")
			}
		}))
	}
	for _, ev := range catchUp {
		if _, err := s.Fire(ctx, ev); err != nil {
			s.o.Log.Error().Err(err).Msg("catch up scheduled event")
		}
	}
	c.Start()
	s.cron = c
	return true
}

// Stop stops cron and waits for a running job.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cron != nil {
		<-s.cron.Stop().Done()
		s.cron = nil
	}
}

// LastSlot is the latest firing of sched at or before now within the last
// 25 hours: the slot a job running (slightly late) at now stands for (zero
// when there is none, e.g. a one-off time that hasn't come).
func LastSlot(sched cron.Schedule, now time.Time) time.Time {
	var slot time.Time
	for t := sched.Next(now.Add(-25 * time.Hour)); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		slot = t
	}
	return slot
}

// cronLogger adapts zerolog to cron.Logger.
type cronLogger struct{ l zerolog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug().Fields(kv).Msg("cron: " + msg) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error().Err(err).Fields(kv).Msg("cron: " + msg)
}
