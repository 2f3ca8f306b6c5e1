package engine

import (
	"errors"
	"fmt"
	"strconv"
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
//	contact_cap  <external_userid>|<YYYY-MM-DD brand zone> → messages due that day (decimal)

// contactsOn reads the member's count for the day of t.
func (r *run) contactsOn(member string, t time.Time) (int, error) {
	raw, err := r.tx.Get(bot.BucketContactCap, member+"|"+t.In(r.sc.Brand.Zone).Format(time.DateOnly))
	if errors.Is(err, bot.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read contact cap: %w", err)
	}
	n, _ := strconv.Atoi(string(raw))
	return n, nil
}

// contactCapReason says why a proactive message to member due at when is
// over her cap, or "" when it may go.
func (r *run) contactCapReason(member string, when time.Time) (string, error) {
	perDay, perWeek := r.sc.Limits.ContactPerDay, r.sc.Limits.ContactPerWeek
	if perDay <= 0 && perWeek <= 0 {
		return "", nil
	}
	today, err := r.contactsOn(member, when)
	if err != nil {
		return "", err
	}
	if perDay > 0 && today >= perDay {
		return fmt.Sprintf("contact cap: %d proactive messages per member per day (limits.contact_per_day), %d already due on %s",
			perDay, today, when.In(r.sc.Brand.Zone).Format(time.DateOnly)), nil
	}
	if perWeek <= 0 {
		return "", nil
	}
	week := today
	for i := 1; i < 7; i++ {
		n, err := r.contactsOn(member, when.AddDate(0, 0, -i))
		if err != nil {
			return "", err
		}
		week += n
	}
	if week >= perWeek {
		return fmt.Sprintf("contact cap: %d proactive messages per member in 7 days (limits.contact_per_week), %d already due in the 7 days to %s",
			perWeek, week, when.In(r.sc.Brand.Zone).Format(time.DateOnly)), nil
	}
	return "", nil
}

// countContact counts a proactive message to member due at when.
func (r *run) countContact(member string, when time.Time) error {
	n, err := r.contactsOn(member, when)
	if err != nil {
		return err
	}
	return r.tx.Put(bot.BucketContactCap, member+"|"+when.In(r.sc.Brand.Zone).Format(time.DateOnly), []byte(strconv.Itoa(n+1)))
}
