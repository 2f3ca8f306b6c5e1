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

// Reward is what one recorded check-in day earns in a campaign: the same
// rule for members and staff (staff then keep only the campaign score).
type Reward struct {
	// Points are the campaign's points for the day (0 for a make-up: a
	// make-up saves the streak, it earns nothing by itself).
	Points int64
	// Bonuses are the streak bonuses the day's run reaches for the first time.
	Bonuses []scenarios.StreakBonus
	// Milestones are the milestones the day count reaches for the first time.
	Milestones []*scenarios.Milestone
}

// Score is the campaign score the reward adds (the leaderboard's points).
func (rw Reward) Score() int64 {
	n := rw.Points
	for _, b := range rw.Bonuses {
		n += int64(b.Points)
	}
	for _, m := range rw.Milestones {
		n += int64(m.Points)
	}
	return n
}

// ComputeReward says what day earns; p must already hold day (Record). A
// bonus counts the whole run the day belongs to: a make-up may join two
// runs. Bonuses and milestones already in p are not earned again.
func ComputeReward(c *scenarios.Campaign, p *Progress, day Day, makeup bool) Reward {
	var rw Reward
	if !makeup {
		rw.Points = int64(c.Points)
	}
	end := day
	for p.Has(end + 1) {
		end++
	}
	streak := p.StreakAt(end)
	for _, b := range c.StreakBonus {
		if streak >= b.Days && !p.Rewarded(b.Days) {
			rw.Bonuses = append(rw.Bonuses, b)
		}
	}
	for _, m := range c.Milestones {
		if m.Day <= p.Count() && !p.Reached(m.Day) {
			rw.Milestones = append(rw.Milestones, m)
		}
	}
	return rw
}

// Apply records rw in p: its score, its bonuses and milestones as given
// (each once), and the certificate a milestone awards.
func (p *Progress) Apply(rw Reward) {
	p.Score += rw.Score()
	for _, b := range rw.Bonuses {
		p.Bonuses = append(p.Bonuses, b.Days)
	}
	for _, m := range rw.Milestones {
		p.Milestones = append(p.Milestones, m.Day)
		if m.Certificate {
			p.Certificate = true
		}
	}
}
