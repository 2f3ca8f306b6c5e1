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
	// CatchUp is how far back Load appends the firings missed while the
	// process was down (the log's dedupe and the engine's own records drop
	// those that did fire); zero takes the kind's default, negative turns
	// catching up off.
	CatchUp time.Duration
}

// Kind is what one user of the package schedules: its log names and its
// default catch-up.
type Kind struct {
	// Component is the logger's component ("scheduler").
	Component string
	// What names the events in logs ("campaign tick").
	What string
	// CatchUp is the default of Options.CatchUp.
	CatchUp time.Duration
}

// Scheduler fires jobs on cron.
type Scheduler struct {
	o    Options
	what string
	log  zerolog.Logger

	mu      sync.Mutex
	cron    *cron.Cron
	current any
}

// New returns a stopped scheduler of kind k; Load starts it.
func New(o Options, k Kind) *Scheduler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Zone == nil {
		o.Zone = time.Local
	}
	if o.CatchUp == 0 {
		o.CatchUp = k.CatchUp
	}
	if k.What == "" {
		k.What = "scheduled event"
	}
	log := o.Log
	if k.Component != "" {
		log = log.With().Str("component", k.Component).Logger()
	}
	return &Scheduler{o: o, what: k.What, log: log}
}

// Now is the scheduler's clock.
func (s *Scheduler) Now() time.Time { return s.o.Now() }

// Log is the scheduler's logger.
func (s *Scheduler) Log() *zerolog.Logger { return &s.log }

// Fire appends ev; a duplicate (the slot was appended before) is not an
// error. It reports whether ev was new.
func (s *Scheduler) Fire(ctx context.Context, ev *bot.Event) (bool, error) {
	dup, err := s.o.Events.AppendEvent(ctx, ev)
	if err != nil {
		return false, fmt.Errorf("append %s: %w", ev.DedupeKey, err)
	}
	if dup {
		s.log.Debug().Str("key", ev.DedupeKey).Msg(s.what + " already in the log")
		return false, nil
	}
	s.log.Info().Str("key", ev.DedupeKey).Time("slot", ev.At).Msg(s.what + " due")
	if s.o.Notify != nil {
		s.o.Notify()
	}
	return true, nil
}

// Load replaces the jobs (unless version is the one loaded: then it does
// nothing and returns false), after appending the firings missed while the
// process was down: missed(from, to) lists those in the last CatchUp.
func (s *Scheduler) Load(ctx context.Context, version any, jobs []Job, missed func(from, to time.Time) []*bot.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if version == s.current {
		return false
	}
	var catchUp []*bot.Event
	if s.o.CatchUp > 0 {
		now := s.o.Now()
		catchUp = missed(now.Add(-s.o.CatchUp), now)
	}
	if s.cron != nil {
		<-s.cron.Stop().Done()
	}
	s.current = version
	logger := cronLogger{s.log}
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
				s.log.Error().Err(err).Msg("scheduled event not recorded; it is caught up on restart")
			}
		}))
	}
	for _, ev := range catchUp {
		if _, err := s.Fire(ctx, ev); err != nil {
			s.log.Error().Err(err).Msg("catch up scheduled event")
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
