package simulation

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/outreach"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/bot/sweep"
)

// simLinkKey signs simulate's links (public_url): a fixed, public demo key,
// so the output is reproducible. Never used outside simulate.
const simLinkKey = "wecombot-simulate-demo-link-key"

func (s *simulator) setupCheckin(start time.Time) error {
	s.lastTick = start
	if s.script.PublicURL == "" {
		return nil
	}
	signer, err := signlink.New([]byte(simLinkKey), func() time.Time { return s.clock })
	if err != nil {
		return err
	}
	s.engine.WithLinks(signer, s.script.PublicURL)
	return nil
}

// advance moves the simulation to `to`: with cron on, every campaign
// reminder due on the way fires at its time, as the scheduler would append
// it; owed actions are sent in due order in between.
func (s *simulator) advance(ctx context.Context, to time.Time) error {
	if s.script.Cron || s.script.Economy {
		for _, j := range s.scheduled(s.lastTick, to) {
			if err := s.drain(ctx, j.at); err != nil {
				return err
			}
			s.clock = j.at
			if err := j.run(ctx); err != nil {
				return err
			}
		}
		s.lastTick = to
	}
	return s.drain(ctx, to)
}

// quiet appends and handles ev without printing it; what it causes prints.
func (s *simulator) quiet(ctx context.Context, ev *bot.Event) error {
	if _, err := s.store.AppendEvent(ctx, ev); err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	failed := s.pl.Stats().Failed
	if _, err := s.pl.HandlePending(ctx); err != nil {
		return err
	}
	if s.pl.Stats().Failed != failed {
		return fmt.Errorf("the engine failed on %s", ev.DedupeKey)
	}
	return s.reportSkipped(ctx)
}

// scheduledJob is something serve's schedulers do at a time.
type scheduledJob struct {
	at  time.Time
	run func(context.Context) error
}

// scheduled lists what serve's schedulers would append in (from, to], in
// time order: campaign reminders, broadcasts, the hourly member sweep (silent
// members) and the daily loss digest.
func (s *simulator) scheduled(from, to time.Time) []scheduledJob {
	var jobs []scheduledJob
	for _, t := range checkin.Ticks(s.sc, from, to) {
		if !s.script.Cron && !t.Economy() {
			continue
		}
		jobs = append(jobs, scheduledJob{t.Slot, func(ctx context.Context) error {
			if t.Economy() && t.Slot.In(s.sc.Brand.Zone).Hour() != checkin.EconomyOpenHour {
				// The economy's other hourly ticks only carry on its work:
				// handled, not printed.
				return s.quiet(ctx, t.Event(t.Slot))
			}
			if err := s.deliver(ctx, t.Event(t.Slot), 1); err != nil {
				return fmt.Errorf("campaign reminder %s: %w", t.DedupeKey(), err)
			}
			return nil
		}})
	}
	if !s.script.Cron {
		return jobs
	}
	// Broadcasts' occurrences (after reminders on equal times).
	for _, o := range outreach.Occurrences(s.sc, from, to) {
		ev := o.Event(o.At)
		jobs = append(jobs, scheduledJob{o.At, func(ctx context.Context) error {
			if err := s.deliver(ctx, ev, 1); err != nil {
				return fmt.Errorf("%s: %w", ev.DedupeKey, err)
			}
			return nil
		}})
	}
	for _, ev := range sweep.Digests(s.sc, from, to) {
		jobs = append(jobs, scheduledJob{ev.At, func(ctx context.Context) error { return s.deliver(ctx, ev, 1) }})
	}
	if s.sc.Silent != nil {
		for _, at := range sweep.Slots(from, to) {
			jobs = append(jobs, scheduledJob{at, func(ctx context.Context) error {
				var found []*bot.Event
				if _, err := sweep.Silent(ctx, s.store, s.sc, at, func(ev *bot.Event) error { found = append(found, ev); return nil }); err != nil {
					return fmt.Errorf("silent sweep: %w", err)
				}
				for _, ev := range found {
					if err := s.deliver(ctx, ev, 1); err != nil {
						return err
					}
				}
				return nil
			}})
		}
	}
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].at.Before(jobs[j].at) })
	return jobs
}

// finishCheckin runs the clock on to the script's until.
func (s *simulator) finishCheckin(ctx context.Context) error {
	if s.script.Until == "" {
		return nil
	}
	until, err := parseSimTime(s.script.Until, s.zone)
	if err != nil {
		return fmt.Errorf("simulation script: until: %w", err)
	}
	if until.Before(s.clock) {
		return fmt.Errorf("simulation script: until %s is before the last step", s.fmtTime(until))
	}
	if err := s.advance(ctx, until); err != nil {
		return err
	}
	s.clock = until
	return nil
}

// tapEvent makes a step's event a tap on the member's check-in page
// (tap: wm_x, campaign: name; default the scenario's first campaign).
func (s *simulator) tapEvent(ev *bot.Event, member string, st *simStep) {
	camp := st.Campaign
	if camp == "" && len(s.sc.Campaigns) > 0 {
		camp = s.sc.Campaigns[0].Name
	}
	ev.Type, ev.ExternalUserID, ev.Source = checkin.EventCheckIn, member, bot.SourceSim
	ev.Data[checkin.DataCampaign] = camp
	if st.DedupeKey == "" {
		zone := s.zone
		if c := s.sc.Campaign(camp); c != nil {
			zone = c.Zone
		}
		ev.DedupeKey = checkin.TapDedupeKey(member, camp, checkin.DayOf(s.clock, zone))
	}
}

// tapResult prints what a member's page shows after her tap: the check-in
// page, the catalogue, the gift address form.
func (s *simulator) tapResult(ctx context.Context, ev *bot.Event) error {
	page := map[bot.EventType]string{checkin.EventCheckIn: "check-in page", engine.EventRedeem: "catalogue page",
		engine.EventRedeemAddress: "gift address page"}[ev.Type]
	if page == "" {
		return nil
	}
	return s.store.View(ctx, func(tx bot.Tx) error {
		text, ok, err := checkin.LoadResult(tx, ev.DedupeKey)
		if err != nil || !ok {
			return err
		}
		s.line("page", "%s of %s shows:", page, ev.ExternalUserID)
		s.text(text)
		return nil
	})
}

// leaderboards prints each campaign's final top 10 and participation.
func (s *simulator) leaderboards(ctx context.Context) error {
	return s.store.View(ctx, func(tx bot.Tx) error {
		for _, c := range s.sc.Campaigns {
			parts, perDay, err := checkin.Participation(tx, c.Name)
			if err != nil {
				return err
			}
			if parts == 0 {
				continue
			}
			fmt.Fprintf(s.out, "# leaderboard %s (%d participants)\n", c.Name, parts)
			top, err := checkin.Top(tx, c.Name, 10)
			if err != nil {
				return err
			}
			for _, st := range top {
				p, err := checkin.LoadProgress(tx, c.Name, st.Member)
				if err != nil {
					return err
				}
				fmt.Fprintf(s.out, "%d. %s score=%d days=%d longest_streak=%d makeups=%d certificate=%v\n",
					st.Rank, st.Member, st.Score, p.Count(), p.LongestStreak(), len(p.Makeups), p.Certificate)
			}
			for _, d := range perDay {
				fmt.Fprintf(s.out, "  %s: %d check-ins\n", d.Day, d.CheckIns)
			}
		}
		return nil
	})
}
