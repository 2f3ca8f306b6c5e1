package checkin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/schedule"
	"github.com/wecombot/wecombot/scenarios"
)

// Tick is one firing of a campaign reminder.
type Tick struct {
	Campaign string
	// Reminder is the index in the campaign's reminders.
	Reminder int
	Spec     string
	// Slot is the scheduled time (not when the process got round to it).
	Slot time.Time
}

// EventEconomyTick is the member economy's hourly run (bot/engine
// rights.go): points expiry, monthly and birthday coupons. Data: slot.
const EventEconomyTick bot.EventType = "economy.tick"

// EconomySpec is when the economy runs, in the brand's zone: hourly, so a
// day's work (expiry, birthdays, the 1st's monthly coupons) starts in the
// first hour and carries on in bounded steps.
const EconomySpec = "0 * * * *"

// EconomyOpenHour is the hour (brand's zone) from which a day's economy
// work starts: expiry, birthday and monthly coupons reach members in the
// morning, not at midnight.
const EconomyOpenHour = 10

// economyReminder marks a Tick as the economy's, not a campaign reminder.
const economyReminder = -1

// Economy reports whether the tick is the economy's hourly run.
func (t Tick) Economy() bool { return t.Reminder == economyReminder }

// DedupeKey is the tick's event-log dedupe key: the same slot appended twice
// (a restart's catch-up, a second node) is stored once.
func (t Tick) DedupeKey() string {
	if t.Economy() {
		return "sched|economy|" + strconv.FormatInt(t.Slot.Unix(), 10)
	}
	return "sched|" + t.Campaign + "|" + strconv.Itoa(t.Reminder) + "|" + strconv.FormatInt(t.Slot.Unix(), 10)
}

// Event is the tick as an event for the log.
func (t Tick) Event(received time.Time) *bot.Event {
	if t.Economy() {
		return &bot.Event{Type: EventEconomyTick, Source: bot.SourceCron, DedupeKey: t.DedupeKey(), At: t.Slot, ReceivedAt: received,
			Data: map[string]string{DataSlot: strconv.FormatInt(t.Slot.Unix(), 10)}}
	}
	return &bot.Event{Type: EventTick, Source: bot.SourceCron, DedupeKey: t.DedupeKey(), At: t.Slot, ReceivedAt: received,
		Data: map[string]string{DataCampaign: t.Campaign, DataReminder: strconv.Itoa(t.Reminder), DataSpec: t.Spec,
			DataSlot: strconv.FormatInt(t.Slot.Unix(), 10)}}
}

// ParseTick reads a tick back from its event.
func ParseTick(ev *bot.Event) (Tick, error) {
	idx, err1 := strconv.Atoi(ev.Data[DataReminder])
	slot, err2 := strconv.ParseInt(ev.Data[DataSlot], 10, 64)
	if err1 != nil || err2 != nil || ev.Data[DataCampaign] == "" {
		return Tick{}, errors.New("campaign tick without campaign, reminder or slot")
	}
	return Tick{Campaign: ev.Data[DataCampaign], Reminder: idx, Spec: ev.Data[DataSpec], Slot: time.Unix(slot, 0)}, nil
}

// reminderSchedule returns the reminder's schedule in the campaign's zone.
func reminderSchedule(c *scenarios.Campaign, r *scenarios.Reminder) cron.Schedule {
	if s, ok := r.Schedule.(*cron.SpecSchedule); ok {
		cp := *s // the scenario is immutable: zone a copy
		cp.Location = c.Zone
		return &cp
	}
	return r.Schedule
}

// Ticks returns every reminder firing of sc in (from, to], in time order
// (campaign file order, then reminder order, on equal times). simulate and
// the scheduler's catch-up use it; no clock is involved.
func Ticks(sc *scenarios.Scenario, from, to time.Time) []Tick {
	var out []Tick
	for _, c := range sc.Campaigns {
		for i, r := range c.Reminders {
			if r.Schedule == nil {
				continue
			}
			s := reminderSchedule(c, r)
			for t := s.Next(from); !t.IsZero() && !t.After(to); t = s.Next(t) {
				out = append(out, Tick{Campaign: c.Name, Reminder: i, Spec: r.Spec, Slot: t})
			}
		}
	}
	if s := economySchedule(sc); s != nil {
		for t := s.Next(from); !t.IsZero() && !t.After(to); t = s.Next(t) {
			out = append(out, economyTick(t))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Slot.Before(out[j].Slot) })
	return out
}

func economyTick(slot time.Time) Tick {
	return Tick{Reminder: economyReminder, Spec: EconomySpec, Slot: slot}
}

// economySchedule is the economy's hourly schedule in the brand's zone, or
// nil when the scenario has nothing scheduled (no expiry, no monthly or
// birthday coupons).
func economySchedule(sc *scenarios.Scenario) cron.Schedule {
	if !sc.EconomyScheduled() {
		return nil
	}
	s, err := cron.ParseStandard(EconomySpec)
	if err != nil {
		panic(err) // a constant
	}
	spec := s.(*cron.SpecSchedule)
	spec.Location = sc.Brand.Zone
	return spec
}

// TickDone reports whether the engine already acted on the tick (a second
// guard behind the log's dedupe, which forgets keys after its TTL).
func TickDone(tx bot.Tx, t Tick) (bool, error) {
	_, err := tx.Get(BucketTicks, t.DedupeKey())
	if errors.Is(err, bot.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// MarkTick records that the engine acted on the tick.
func MarkTick(tx bot.Tx, t Tick) error { return tx.Put(BucketTicks, t.DedupeKey(), present) }

// Appender is the part of the event log the scheduler needs.
type Appender = schedule.Appender

// SchedulerOptions configure a Scheduler: Zone is cron's default
// location (the brand's zone; each reminder runs in its campaign's zone);
// CatchUp (firings missed while the process was down, re-appended on start
// and reload: the log's dedupe drops those that did fire) defaults to 15
// minutes.
type SchedulerOptions = schedule.Options

// Scheduler runs campaign reminders (bot/schedule). A firing never sends
// anything: it appends a campaign.tick event to the durable log, so the
// engine turns it into outbox actions exactly once, even across restarts.
type Scheduler struct {
	inner *schedule.Scheduler
}

// NewScheduler returns a stopped scheduler; Load starts it.
func NewScheduler(o SchedulerOptions) *Scheduler {
	return &Scheduler{inner: schedule.New(o, schedule.Kind{Component: "scheduler", What: "campaign tick", CatchUp: 15 * time.Minute})}
}

// Fire appends the tick's event; a duplicate (the slot was appended before)
// is not an error.
func (s *Scheduler) Fire(ctx context.Context, t Tick) error {
	if _, err := s.inner.Fire(ctx, t.Event(s.inner.Now())); err != nil {
		return fmt.Errorf("campaign tick: %w", err)
	}
	return nil
}

// Load replaces the cron entries with sc's reminders (on start and on every
// scenario reload) and catches up firings missed in the last CatchUp.
func (s *Scheduler) Load(ctx context.Context, sc *scenarios.Scenario) {
	var jobs []schedule.Job
	for _, camp := range sc.Campaigns {
		for i, r := range camp.Reminders {
			if r.Schedule == nil {
				continue
			}
			tick := Tick{Campaign: camp.Name, Reminder: i, Spec: r.Spec}
			jobs = append(jobs, schedule.Job{Schedule: reminderSchedule(camp, r), Event: func(slot time.Time) *bot.Event {
				t := tick
				t.Slot = slot
				return t.Event(s.inner.Now())
			}})
		}
	}
	if sched := economySchedule(sc); sched != nil {
		jobs = append(jobs, schedule.Job{Schedule: sched, Event: func(slot time.Time) *bot.Event { return economyTick(slot).Event(s.inner.Now()) }})
	}
	missed := func(from, to time.Time) (evs []*bot.Event) {
		for _, t := range Ticks(sc, from, to) {
			evs = append(evs, t.Event(to))
		}
		return evs
	}
	if s.inner.Load(ctx, sc, jobs, missed) {
		s.inner.Log().Info().Int("reminders", len(jobs)).Str("scenario", sc.Version).Msg("campaign schedule loaded")
	}
}

// Stop stops cron and waits for a running job.
func (s *Scheduler) Stop() { s.inner.Stop() }
