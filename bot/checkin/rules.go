package checkin

import (
	"time"

	"github.com/wecombot/wecombot/scenarios"
)

// Day is a calendar day in a campaign's zone, counted from 1970-01-01, so
// consecutive days differ by one whatever the zone's offset.
type Day int

// DayOf returns the calendar day t falls on in zone.
func DayOf(t time.Time, zone *time.Location) Day {
	y, m, d := t.In(zone).Date()
	return Day(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// Midnight returns the day's local midnight in zone.
func (d Day) Midnight(zone *time.Location) time.Time {
	u := time.Unix(int64(d)*86400, 0).UTC()
	return time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, zone)
}

// String formats the day as 2006-01-02.
func (d Day) String() string { return time.Unix(int64(d)*86400, 0).UTC().Format("2006-01-02") }

// ParseDay parses 2006-01-02.
func ParseDay(s string) (Day, bool) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return 0, false
	}
	return Day(t.Unix() / 86400), true
}

// clockOf is the time of day of t in zone, as an offset from midnight by
// the wall clock (so a window reads the same on DST-changing days).
func clockOf(t time.Time, zone *time.Location) time.Duration {
	h, m, s := t.In(zone).Clock()
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second
}

// InWindow reports whether t is inside one of the campaign's daily windows.
func InWindow(c *scenarios.Campaign, t time.Time) bool {
	off := clockOf(t, c.Zone)
	for _, w := range c.Windows {
		if w.Contains(off) {
			return true
		}
	}
	return false
}

// Outcome is the result of a check-in or make-up attempt.
type Outcome int

// Outcomes. Everything but CheckedIn and MadeUp changes nothing.
const (
	CheckedIn Outcome = iota
	MadeUp
	Already
	OutsideWindow
	NotStarted
	Closed
	NotInAudience
	MakeupUnavailable
)

var outcomeNames = [...]string{"checked_in", "made_up", "already", "outside_window", "not_started", "closed", "not_in_audience", "makeup_unavailable"}

func (o Outcome) String() string { return outcomeNames[o] }

// OK reports whether the attempt records a day.
func (o Outcome) OK() bool { return o == CheckedIn || o == MadeUp }

// Span returns the campaign's first and last day for a member: the dated
// campaign's dates, or for a rolling campaign the member's run from their
// first check-in (first is p.First; zero-length when p is nil).
func Span(c *scenarios.Campaign, p *Progress, today Day) (first, last Day) {
	if !c.Rolling() {
		return DayOf(c.Start, c.Zone), DayOf(c.End, c.Zone)
	}
	first = today
	if p != nil && len(p.Days) > 0 {
		first = p.First
	}
	return first, first + Day(c.Days) - 1
}

// Attempt decides a check-in at now for a member whose progress is p (nil:
// none yet); closed is whether the campaign was closed by its close reminder.
// It returns the outcome and the day it concerns.
func Attempt(c *scenarios.Campaign, p *Progress, now time.Time, closed bool) (Outcome, Day) {
	today := DayOf(now, c.Zone)
	if closed {
		return Closed, today
	}
	first, last := Span(c, p, today)
	switch {
	case today < first:
		return NotStarted, today
	case today > last:
		return Closed, today
	case !InWindow(c, now):
		return OutsideWindow, today
	case p.Has(today):
		return Already, today
	}
	return CheckedIn, today
}

// AttemptMakeup decides a make-up (补卡) at now: the most recent missed day
// within makeup.within_days before today, inside the member's campaign days,
// while make-ups are left. Points are checked by the caller (it holds the
// balance). Make-ups are allowed at any time of day.
func AttemptMakeup(c *scenarios.Campaign, p *Progress, now time.Time, closed bool) (Outcome, Day) {
	today := DayOf(now, c.Zone)
	if closed {
		return Closed, today
	}
	mu := c.Makeup
	if mu.Max == 0 || mu.WithinDays == 0 || p == nil || len(p.Days) == 0 {
		return MakeupUnavailable, today
	}
	first, last := Span(c, p, today)
	if today > last+1 {
		// The day after the last day is still fine: yesterday can be made up.
		return Closed, today
	}
	if len(p.Makeups) >= mu.Max {
		return MakeupUnavailable, today
	}
	for d := today - 1; d >= today-Day(mu.WithinDays) && d >= first; d-- {
		if d <= last && !p.Has(d) {
			return MadeUp, d
		}
	}
	return MakeupUnavailable, today
}

// IsOpen reports whether the campaign takes check-ins on day (for a rolling
// campaign: always, each member's run starts with their first check-in).
func IsOpen(c *scenarios.Campaign, day Day) bool {
	if c.Rolling() {
		return true
	}
	return day >= DayOf(c.Start, c.Zone) && day <= DayOf(c.End, c.Zone)
}
