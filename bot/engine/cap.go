package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// The per-member contact cap (反骚扰): limits.contact_per_day and
// contact_per_week bound how many proactive messages — follow-ups,
// campaign reminders, coupon deliveries, broadcasts, SOP steps; never
// replies to her own messages — one member gets, counted on the day each
// is due (brand zone). A message over the cap is recorded skipped with its
// reason (the member's timeline and simulate show it), never sent; it uses
// no mass-send quota. Features send proactive messages through
// enqueueProactive (engine.go), which checks and counts here.
//
//	contact_cap  <external_userid> → {"YYYY-MM-DD": n, …} the days of the last week (brand zone)
//
// One record per member, pruned to the week on every write, so the bucket
// stays as large as the member base however long the bot runs.

// capWindow is the days a record keeps: the weekly cap's 7 days, and
// follow-ups scheduled up to a week ahead.
const capWindow = 14

// contactDays reads the member's per-day counts.
func (r *run) contactDays(member string) (map[string]int, error) {
	days := map[string]int{}
	if _, err := r.getJSON(bot.BucketContactCap, member, &days); err != nil {
		return nil, fmt.Errorf("read contact cap: %w", err)
	}
	return days, nil
}

func (r *run) capDay(t time.Time) string { return t.In(r.sc.Brand.Zone).Format(time.DateOnly) }

// contactCapReason says why a proactive message to member due at when is
// over her cap, or "" when it may go.
func (r *run) contactCapReason(member string, when time.Time) (string, error) {
	perDay, perWeek := r.sc.Limits.ContactPerDay, r.sc.Limits.ContactPerWeek
	if perDay <= 0 && perWeek <= 0 {
		return "", nil
	}
	days, err := r.contactDays(member)
	if err != nil {
		return "", err
	}
	today := days[r.capDay(when)]
	if perDay > 0 && today >= perDay {
		return fmt.Sprintf("contact cap: %d proactive messages per member per day (limits.contact_per_day), %d already due on %s",
			perDay, today, r.capDay(when)), nil
	}
	if perWeek <= 0 {
		return "", nil
	}
	week := 0
	for i := 0; i < 7; i++ {
		week += days[r.capDay(when.AddDate(0, 0, -i))]
	}
	if week >= perWeek {
		return fmt.Sprintf("contact cap: %d proactive messages per member in 7 days (limits.contact_per_week), %d already due in the 7 days to %s",
			perWeek, week, r.capDay(when)), nil
	}
	return "", nil
}

// countContact counts a proactive message to member due at when, dropping
// days the caps no longer look at.
func (r *run) countContact(member string, when time.Time) error {
	return r.addContact(member, r.capDay(when), +1)
}

// releaseContact gives back a proactive message counted on day (capDay)
// that never went out (dropped or canceled before delivery: a stopped
// SOP's step, a member who deleted the sender), so it doesn't crowd out a
// later one.
func (r *run) releaseContact(member, day string) error {
	if member == "" || day == "" {
		return nil
	}
	return r.addContact(member, day, -1)
}

func (r *run) addContact(member, day string, n int) error {
	days, err := r.contactDays(member)
	if err != nil {
		return err
	}
	if days[day] += n; days[day] <= 0 {
		delete(days, day)
	}
	oldest := r.capDay(r.now.AddDate(0, 0, -capWindow))
	for d := range days {
		if d < oldest {
			delete(days, d)
		}
	}
	raw, err := json.Marshal(days)
	if err != nil {
		return err
	}
	return r.tx.Put(bot.BucketContactCap, member, raw)
}
