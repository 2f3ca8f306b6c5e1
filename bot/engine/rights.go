package engine

// Level rights (会员权益, issue 20) and the economy's scheduled work.
//
// Reaching a level (levels follow earned points, economy.go) gives, once
// per member and level, the level's coupon and gift and an announcement;
// the level tag is written back as before. While at a level a member gets
// its monthly coupon once per calendar month and its birthday coupon on her
// birthday (bot.Member.Birthday, from the profile form), once a year.
//
// The scheduler appends an economy.tick every hour; the first at or after
// 10:00 in the brand's zone opens the day's jobs (points expiry; birthdays; the month's coupons, opened on the
// first tick of a month) and works on them in bounded steps, and every
// later event continues a little (economyAfter, paced in time), so no
// transaction grows with the number of members and a burst of events
// doesn't carry a member-wide job at its own rate.
//
// KV buckets:
//
//	economy_jobs  pending|<job> → cursor; done|<job> → present; paced → when
//	              an event last continued them (unix ns, 8 bytes). Jobs:
//	              expire|YYYY-MM-DD, birthday|YYYY-MM-DD, monthly|YYYY-MM
//	level_rights  <member>|reach|<level>, <member>|monthly|YYYY-MM, <member>|birthday|YYYY → present
//	birthdays     MM-DD|<member> → present

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/scenarios"
)

const (
	bucketEconomyJobs = bot.BucketEconomyJobs
	bucketLevelRights = bot.BucketLevelRights
	bucketBirthdays   = bot.BucketBirthdays
)

// Work budgets: members (or expiry days) one event handles; other events
// than the ticks continue at most once per economyPace (economyAfter).
const (
	economyTickBudget  = 500
	economyAfterBudget = 50
	economyPace        = 250 * time.Millisecond
	// economyPacedKey holds when an event last continued the jobs (unix ns).
	economyPacedKey = "paced"
)

// levelRights gives what reaching the member's new level brings, once: a
// level drop brings nothing and takes nothing back.
func (r *run) levelRights(ms *memberState) error {
	if ms.m.Level == ms.levelAtLoad || ms.rightsDone {
		return nil
	}
	ms.rightsDone = true
	to, from := r.sc.Level(ms.m.Level), r.sc.Level(ms.levelAtLoad)
	if to == nil || to.MinPoints == 0 || (from != nil && to.MinPoints <= from.MinPoints) {
		return nil
	}
	id := ms.m.ExternalUserID
	key := id + "|reach|" + to.Name
	if done, err := r.has(bucketLevelRights, key); err != nil || done {
		return err
	}
	if err := r.tx.Put(bucketLevelRights, key, present); err != nil {
		return fmt.Errorf("record level right: %w", err)
	}
	r.log.Info().Str("member", id).Str("level", to.Name).Msg("level reached")
	var parts []string
	if !ms.levelAnnounced {
		d := r.sc.DataFor(ms.m)
		d.LevelMin = to.MinPoints
		parts = append(parts, r.render(to.Announce, d))
	}
	if to.Coupon != nil {
		res, err := r.issue(ms, to.Coupon, "level:"+to.Name)
		if err != nil {
			return err
		}
		if res.outcome == issueNew || res.outcome == issueReplay {
			parts = append(parts, res.text)
		}
	}
	if to.Gift != nil {
		res, err := r.redeemItem(ms, to.Gift, "level", true)
		if err != nil {
			return err
		}
		if res.outcome == redeemOK || res.outcome == redeemReplay {
			parts = append(parts, res.text)
		}
	}
	r.note(ms, joinText(parts...), false)
	return nil
}

// indexBirthday keeps the birthdays index in step with the member's birthday.
func (r *run) indexBirthday(ms *memberState) error {
	if ms.m.Birthday == ms.birthdayAtLoad {
		return nil
	}
	id := ms.m.ExternalUserID
	if old := monthDay(ms.birthdayAtLoad); old != "" {
		if err := r.tx.Delete(bucketBirthdays, old+"|"+id); err != nil {
			return err
		}
	}
	if now := monthDay(ms.m.Birthday); now != "" {
		if err := r.tx.Put(bucketBirthdays, now+"|"+id, present); err != nil {
			return fmt.Errorf("index birthday: %w", err)
		}
	}
	ms.birthdayAtLoad = ms.m.Birthday
	return nil
}

// monthDay is MM-DD of a YYYY-MM-DD birthday ("" when it isn't one).
func monthDay(birthday string) string {
	b, err := time.Parse(bot.BirthdayLayout, birthday)
	if err != nil {
		return ""
	}
	return b.Format("01-02")
}

// economyTick opens the day's jobs and works on them.
func (r *run) economyTick() error {
	slot, err := strconv.ParseInt(r.ev.Data[checkin.DataSlot], 10, 64)
	if err != nil {
		r.log.Warn().Msg("economy tick without a slot; ignored")
		return nil
	}
	local := time.Unix(slot, 0).In(r.sc.Brand.Zone)
	if local.Hour() < checkin.EconomyOpenHour {
		// Nobody wants a birthday coupon at 3 a.m.: earlier ticks only carry on.
		_, err := r.runJobs(economyTickBudget)
		return err
	}
	day := local.Format(time.DateOnly)
	var jobs []string
	if r.sc.Points.Expires() {
		jobs = append(jobs, "expire|"+day)
	}
	monthly, birthday := false, false
	for _, l := range r.sc.Levels {
		monthly = monthly || l.MonthlyCoupon != nil
		birthday = birthday || l.BirthdayCoupon != nil
	}
	if birthday {
		jobs = append(jobs, "birthday|"+day)
	}
	if monthly {
		jobs = append(jobs, "monthly|"+local.Format("2006-01"))
	}
	for _, job := range jobs {
		pending, err := r.has(bucketEconomyJobs, "pending|"+job)
		if err != nil {
			return err
		}
		done, err := r.has(bucketEconomyJobs, "done|"+job)
		if err != nil {
			return err
		}
		if !pending && !done {
			r.log.Info().Str("job", job).Msg("economy job opened")
			if err := r.tx.Put(bucketEconomyJobs, "pending|"+job, []byte{0}); err != nil {
				return fmt.Errorf("open economy job: %w", err)
			}
		}
	}
	_, err = r.runJobs(economyTickBudget)
	return err
}

// economyAfter continues the economy's open jobs a little after other
// events: economyAfterBudget members at most once per economyPace of the
// engine's clock (the last continuation's time is kept with the jobs), so
// the work a job adds is bounded in time, about 200 members a second, not
// in events. At a burst's thousand events a second a million-member job
// would otherwise ride on every one of them and hold back the welcomes
// that must go inside WeCom's 20 s; 200 a second is also about what WeCom
// takes of message/send (10,000 a minute), so going faster would only
// queue the coupons' messages in the outbox.
func (r *run) economyAfter() error {
	if r.ev.Type == checkin.EventEconomyTick {
		return nil
	}
	if v, err := r.tx.Get(bucketEconomyJobs, economyPacedKey); err == nil && len(v) == 8 {
		since := r.now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(v))))
		if since >= 0 && since < economyPace {
			return nil
		}
	} else if err != nil && !errors.Is(err, bot.ErrNotFound) {
		return fmt.Errorf("read economy pace: %w", err)
	}
	open, err := r.runJobs(economyAfterBudget)
	if err != nil || !open {
		return err
	}
	return r.tx.Put(bucketEconomyJobs, economyPacedKey, binary.BigEndian.AppendUint64(nil, uint64(r.now.UnixNano())))
}

// runJobs works on the open jobs, oldest first, within budget members;
// open tells whether there were any.
func (r *run) runJobs(budget int) (open bool, err error) {
	type job struct{ key, cursor string }
	var jobs []job
	if err := r.tx.Scan(bucketEconomyJobs, "pending|", func(k string, v []byte) bool {
		c := string(v)
		if c == "\x00" {
			c = ""
		}
		jobs = append(jobs, job{strings.TrimPrefix(k, "pending|"), c})
		return true
	}); err != nil {
		return false, err
	}
	for _, j := range jobs {
		if budget <= 0 {
			break
		}
		kind, arg, _ := strings.Cut(j.key, "|")
		var cursor string
		var used int
		var err error
		switch kind {
		case "expire":
			cursor, used, err = r.expireJob(arg, budget)
		case "birthday":
			cursor, used, err = r.birthdayJob(arg, j.cursor, budget)
		case "monthly":
			cursor, used, err = r.monthlyJob(arg, j.cursor, budget)
		default:
			cursor = ""
		}
		if err != nil {
			return true, fmt.Errorf("economy job %s: %w", j.key, err)
		}
		budget -= max(used, 1)
		if cursor == "" {
			if err := r.tx.Delete(bucketEconomyJobs, "pending|"+j.key); err != nil {
				return true, err
			}
			if err := r.tx.Put(bucketEconomyJobs, "done|"+j.key, present); err != nil {
				return true, err
			}
			r.log.Info().Str("job", j.key).Msg("economy job done")
			continue
		}
		if err := r.tx.Put(bucketEconomyJobs, "pending|"+j.key, []byte(cursor)); err != nil {
			return true, err
		}
	}
	return len(jobs) > 0, nil
}

// expireJob expires points whose last day is before day; cursor "" when done.
func (r *run) expireJob(day string, budget int) (string, int, error) {
	today, err := time.ParseInLocation(time.DateOnly, day, r.sc.Brand.Zone)
	if err != nil {
		return "", 0, nil
	}
	more, err := r.expirePoints(today, budget)
	if more {
		return "more", budget, err
	}
	return "", 1, err
}

// birthdayJob gives the birthday coupons of day to the members born on it
// (29 February birthdays on 28 February in other years), after cursor.
func (r *run) birthdayJob(day, cursor string, budget int) (string, int, error) {
	d, err := time.ParseInLocation(time.DateOnly, day, r.sc.Brand.Zone)
	if err != nil {
		return "", 0, nil
	}
	prefixes := []string{d.Format("01-02") + "|"}
	if d.Month() == time.February && d.Day() == 28 && !isLeapYear(d.Year()) {
		prefixes = append(prefixes, "02-29|")
	}
	var ids []string
	last := ""
	for _, p := range prefixes {
		if err := r.tx.Scan(bucketBirthdays, p, func(k string, _ []byte) bool {
			if k <= cursor {
				return true
			}
			if len(ids) == budget {
				return false
			}
			ids, last = append(ids, k[len(p):]), k
			return true
		}); err != nil {
			return "", 0, err
		}
	}
	for _, id := range ids {
		if err := r.periodicCoupon(id, "birthday|"+strconv.Itoa(d.Year()), d); err != nil {
			return "", 0, err
		}
	}
	if len(ids) < budget {
		return "", len(ids), nil
	}
	return last, len(ids), nil
}

func isLeapYear(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// monthlyJob gives the month's coupons to the members at a level with a
// monthly coupon after cursor ("<level>|<member>"), level by level from the
// lowest, each level's members in id order, through the search index's
// level terms: the job reads the members it gives to, not every member
// (at a million members most hold no such level). A member who climbs to a
// higher level mid-job is reached again there and her right, kept per
// month, is given once; one who drops to a level already passed waits for
// next month. A cursor without a level (an older build's, a member id)
// starts over: the rights already given stay given.
func (r *run) monthlyJob(month, cursor string, budget int) (string, int, error) {
	levels := make([]*scenarios.Level, 0, len(r.sc.Levels))
	for _, l := range r.sc.Levels {
		if l.MonthlyCoupon != nil {
			levels = append(levels, l)
		}
	}
	slices.SortStableFunc(levels, func(a, b *scenarios.Level) int { return cmp.Compare(a.MinPoints, b.MinPoints) })
	level, after, ok := strings.Cut(cursor, "|")
	start := 0
	if ok {
		start = slices.IndexFunc(levels, func(l *scenarios.Level) bool { return l.Name == level })
		if start < 0 {
			start, after = 0, "" // the level is gone from the scenario
		}
	} else {
		after = ""
	}
	used := 0
	for _, l := range levels[start:] {
		var ids []string
		if err := r.tx.TermMembers(bot.IndexKey(bot.TermLevel, l.Name), after, func(id string) bool {
			ids = append(ids, id)
			return used+len(ids) < budget
		}); err != nil {
			return "", 0, err
		}
		after = ""
		for _, id := range ids {
			if err := r.periodicCoupon(id, "monthly|"+month, time.Time{}); err != nil {
				return "", 0, err
			}
		}
		used += len(ids)
		if used >= budget {
			return l.Name + "|" + ids[len(ids)-1], used, nil
		}
	}
	return "", used, nil
}

// periodicCoupon gives member id her level's monthly or birthday coupon
// (period "monthly|YYYY-MM" or "birthday|YYYY"), once per period.
func (r *run) periodicCoupon(id, period string, birthday time.Time) error {
	ms, err := r.member(id, false)
	if err != nil || ms == nil {
		return err
	}
	m := ms.m
	l := r.sc.Level(m.Level)
	if l == nil || !m.HasActiveFollow() {
		return nil
	}
	kind, _, _ := strings.Cut(period, "|")
	pool := l.MonthlyCoupon
	if kind == "birthday" {
		pool = l.BirthdayCoupon
		if !m.BirthdayOn(birthday) {
			return nil // the index is ahead of a changed birthday
		}
	}
	if pool == nil {
		return nil
	}
	key := id + "|" + period
	if done, err := r.has(bucketLevelRights, key); err != nil || done {
		return err
	}
	if err := r.tx.Put(bucketLevelRights, key, present); err != nil {
		return fmt.Errorf("record level right: %w", err)
	}
	res, err := r.issue(ms, pool, strings.ReplaceAll(period, "|", ":"))
	if err != nil {
		return err
	}
	if res.outcome != issueNew && res.outcome != issueReplay {
		return nil
	}
	head := fmt.Sprintf("🎁「%s」会员本月福利已到账", l.Name)
	if kind == "birthday" {
		head = fmt.Sprintf("🎂 生日快乐，%s！「%s」会员生日礼已送上", r.sc.DataFor(m).Name, l.Name)
	}
	r.log.Info().Str("member", id).Str("period", period).Str("pool", pool.Name).Msg("level coupon given")
	return r.deliverCoupon(ms, "right|"+period+"|"+id, joinText(head, res.text))
}
