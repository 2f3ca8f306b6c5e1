package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/scenarios"
)

// The check-in (打卡) feature: campaign keywords in 微信客服 check a member in
// (before keyword rules), taps on the signed H5 page arrive as
// campaign.checkin events, and scheduled reminders as campaign.tick events.
// The ledger, leaderboard and scheduler are bot/checkin; this file applies
// a campaign's rules to a member inside the event's transaction.

// Stage-change cause of a milestone's funnel move.
const CauseMilestone = "milestone"

// certTTL is how long a shared certificate link stays valid.
const certTTL = 365 * 24 * time.Hour

// Engine paths of members' H5 pages (bot/server serves them).
const (
	PathCheckin     = "/checkin"
	PathCertificate = "/checkin/cert"
)

// checkinCommand takes a campaign's check-in, make-up and leaderboard keywords.
func (r *run) checkinCommand(ms *memberState, surface, text string) (bool, error) {
	if len(r.sc.Campaigns) == 0 {
		return false, nil
	}
	if ms == nil {
		return r.staffCheckinCommand(surface, text)
	}
	if surface != scenarios.SurfaceKf {
		return false, nil
	}
	if r.ev.OpenKfID != "" {
		// Remember the conversation: reminders to members go through it.
		if err := checkin.NoteKf(r.tx, ms.m.ExternalUserID, r.ev.OpenKfID, r.at); err != nil {
			return false, fmt.Errorf("note kf contact: %w", err)
		}
	}
	camp, makeup := r.matchCampaign(text)
	if camp == nil {
		return false, nil
	}
	reply, _, err := r.checkIn(ms, camp, makeup)
	if err != nil {
		return false, err
	}
	return true, r.kfReply(ms, reply, r.ev.OpenKfID, true)
}

// matchCampaign finds the campaign a message asks to check in to (or make
// up, when makeup is true): make-up keywords first, then check-in keywords;
// when several campaigns share a keyword the one open now wins.
func (r *run) matchCampaign(text string) (camp *scenarios.Campaign, makeup bool) {
	if text == "" {
		return nil, false
	}
	var hits []*scenarios.Campaign
	for _, mk := range []bool{true, false} {
		for _, c := range r.sc.Campaigns {
			kws := c.Keywords
			if mk {
				if c.Makeup.Max == 0 {
					continue
				}
				kws = c.Makeup.Keywords
			}
			for _, kw := range kws {
				if strings.Contains(text, kw) {
					hits = append(hits, c)
					break
				}
			}
		}
		if len(hits) > 0 {
			makeup = mk
			break
		}
	}
	if len(hits) == 0 {
		return nil, false
	}
	for _, c := range hits {
		if checkin.IsOpen(c, checkin.DayOf(r.at, c.Zone)) && checkin.InWindow(c, r.at) {
			return c, makeup
		}
	}
	return hits[0], makeup
}

// checkIn applies one check-in (or make-up) attempt and returns the text to
// tell the member. A rejected attempt changes nothing.
func (r *run) checkIn(ms *memberState, camp *scenarios.Campaign, makeup bool) (string, checkin.Outcome, error) {
	id := ms.m.ExternalUserID
	closed, err := checkin.IsClosed(r.tx, camp.Name)
	if err != nil {
		return "", 0, err
	}
	p, err := checkin.LoadProgress(r.tx, camp.Name, id)
	if err != nil {
		return "", 0, err
	}
	var outcome checkin.Outcome
	var day checkin.Day
	switch {
	case !camp.Audience.IncludesAt(ms.m, r.at):
		outcome = checkin.NotInAudience
	case makeup:
		outcome, day = checkin.AttemptMakeup(camp, p, r.at, closed)
		if outcome == checkin.MadeUp && ms.m.Points < int64(camp.Makeup.CostPoints) {
			outcome = checkin.MakeupUnavailable
		}
	default:
		outcome, day = checkin.Attempt(camp, p, r.at, closed)
	}
	l := r.log.Info().Str("campaign", camp.Name).Str("outcome", outcome.String())
	if !outcome.OK() {
		l.Msg("check-in refused")
		text, err := checkin.Reply(camp, outcome, r.campaignData(ms, camp, p))
		if err != nil {
			r.log.Warn().Err(err).Msg("check-in message template failed")
		}
		return text, outcome, nil
	}
	isNew := p == nil
	if isNew {
		p = &checkin.Progress{Campaign: camp.Name, Member: id}
	}
	oldScore := p.Score
	if err := checkin.Record(r.tx, p, day, r.at, makeup, r.ref); err != nil {
		return "", 0, err
	}
	ms.m.CheckIns++
	ms.dirty = true
	if makeup {
		if cost := int64(camp.Makeup.CostPoints); cost > 0 {
			if err := r.addPoints(ms, -cost, "makeup", camp.Name); err != nil {
				return "", 0, err
			}
		}
	}
	// The reward rule staff check-ins apply too (checkin.ComputeReward);
	// members also get it as points, tags, stage moves and coupons.
	reward := checkin.ComputeReward(camp, p, day, makeup)
	p.Apply(reward)
	if reward.Points > 0 {
		if err := r.addPoints(ms, reward.Points, "checkin", camp.Name); err != nil {
			return "", 0, err
		}
	}
	for _, b := range reward.Bonuses {
		if err := r.addPoints(ms, int64(b.Points), fmt.Sprintf("streak:%d", b.Days), camp.Name); err != nil {
			return "", 0, err
		}
	}
	var couponTexts []string
	for _, m := range reward.Milestones {
		if m.Points > 0 {
			if err := r.addPoints(ms, int64(m.Points), fmt.Sprintf("milestone:%d", m.Day), camp.Name); err != nil {
				return "", 0, err
			}
		}
		r.addTag(ms, m.Tag)
		if m.Stage != bot.StageNone {
			r.moveTo(ms, m.Stage, CauseMilestone, false)
		}
		if m.Coupon != nil {
			res, err := r.issue(ms, m.Coupon, fmt.Sprintf("milestone:%s:%d", camp.Name, m.Day))
			if err != nil {
				return "", 0, fmt.Errorf("milestone coupon: %w", err)
			}
			if res.text != "" {
				couponTexts = append(couponTexts, res.text)
			}
		}
	}
	if err := r.signal(ms, scenarios.SignalCheckIn); err != nil {
		return "", 0, err
	}
	if err := checkin.SaveProgress(r.tx, p, oldScore, isNew); err != nil {
		return "", 0, err
	}
	// Settle the level now so the reply shows it (finish re-applies, a no-op);
	// a level-up is announced (its tag is written back with the others).
	before := r.sc.Level(ms.m.Level)
	r.applyLevel(ms)
	var levelUp *scenarios.Level
	if after := r.sc.Level(ms.m.Level); after != nil && after != before && after.MinPoints > 0 &&
		(before == nil || after.MinPoints > before.MinPoints) {
		levelUp = after
		ms.levelAnnounced = true
		r.log.Info().Str("level", after.Name).Msg("level up")
	}
	l.Str("day", day.String()).Int("days", p.Count()).Int64("score", p.Score).Int64("points", ms.m.Points).Msg("checked in")

	data := r.campaignData(ms, camp, p)
	parts := r.rewardLines(camp, outcome, reward, data, levelUp, func() string {
		return r.link(PathCertificate, checkin.CertPurpose, checkin.Subject(ms.m.ExternalUserID, camp.Name), certTTL)
	})
	parts = append(parts, couponTexts...)
	return strings.Join(nonEmpty(parts), "\n"), outcome, nil
}

// rewardLines is a successful check-in's reply, member or staff: the
// outcome's message, a line per streak bonus, the level-up (levelUp nil:
// none), then each milestone's text; a certificate milestone gets its link
// (certLink; nil for staff, who get no certificate) and, when its text
// doesn't show it, the certificate_link line. Every line is a scenario
// template (messages.*, with documented defaults).
func (r *run) rewardLines(camp *scenarios.Campaign, outcome checkin.Outcome, reward checkin.Reward,
	data scenarios.TemplateData, levelUp *scenarios.Level, certLink func() string) []string {
	text, err := checkin.Reply(camp, outcome, data)
	if err != nil {
		r.log.Warn().Err(err).Msg("check-in message template failed")
	}
	parts := []string{text}
	for _, b := range reward.Bonuses {
		d := data
		d.Streak, d.Bonus = b.Days, int64(b.Points)
		parts = append(parts, r.render(camp.Messages.StreakBonus, d))
	}
	if levelUp != nil {
		d := data
		d.Level, d.LevelMin = levelUp.Name, levelUp.MinPoints
		parts = append(parts, r.render(camp.Messages.LevelUp, d))
	}
	for _, m := range reward.Milestones {
		if certLink == nil && (m.Coupon != nil || m.Certificate) {
			// Texts announcing a coupon or certificate would promise staff
			// what they don't get.
			continue
		}
		md := data
		if m.Certificate {
			md.Link = certLink()
		}
		parts = append(parts, r.render(m.Text, md))
		if m.Certificate && md.Link != "" && !strings.Contains(m.Text.Source(), ".Link") {
			md.Certificate = camp.Name + "证书"
			if camp.Certificate != nil {
				md.Certificate = camp.Certificate.Title
			}
			parts = append(parts, r.render(camp.Messages.CertificateLink, md))
		}
	}
	return parts
}

func nonEmpty(ss []string) []string {
	out := ss[:0]
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

// checkinLink is the member's personal check-in page, valid until the
// campaign (or their rolling run) is over.
func (r *run) checkinLink(id string, camp *scenarios.Campaign) string {
	ttl := time.Duration(camp.Days+1) * 24 * time.Hour
	if !camp.Rolling() {
		ttl = max(camp.End.AddDate(0, 0, 2).Sub(r.now), time.Hour)
	}
	return r.link(PathCheckin, checkin.LinkPurpose, checkin.Subject(id, camp.Name), ttl)
}

// campaignData is the template data of a campaign message to a member.
func (r *run) campaignData(ms *memberState, camp *scenarios.Campaign, p *checkin.Progress) scenarios.TemplateData {
	return r.memberCampaignData(ms.m, camp, p)
}

func (r *run) memberCampaignData(m *bot.Member, camp *scenarios.Campaign, p *checkin.Progress) scenarios.TemplateData {
	d := r.sc.DataFor(m)
	d.Campaign = camp.Name
	d.Day = p.Count()
	d.Streak = p.Streak(checkin.DayOf(r.at, camp.Zone))
	d.Link = r.checkinLink(m.ExternalUserID, camp)
	if p != nil {
		if rank, _, ok, err := checkin.Rank(r.tx, camp.Name, m.ExternalUserID); err == nil && ok {
			d.Rank = rank
		}
	}
	return d
}

// kfReply sends text to the member in 微信客服: through openKfID, else the
// member's last kf conversation if it is recent enough. rateLimited applies
// keywords.rate_limit.
func (r *run) kfReply(ms *memberState, text, openKfID string, rateLimited bool) error {
	if text == "" {
		return nil
	}
	id := ms.m.ExternalUserID
	if openKfID == "" {
		k, err := checkin.LoadKf(r.tx, id)
		if err != nil {
			return err
		}
		if k == nil || r.at.Sub(k.At) > checkin.KfWindow {
			r.log.Info().Msg("no recent 微信客服 conversation with the member; check-in reply shown on the page only")
			return nil
		}
		openKfID = k.OpenKfID
	}
	if rateLimited {
		allowed, err := r.allowReply("kf|" + id)
		if err != nil {
			return err
		}
		if !allowed {
			r.log.Info().Msg("auto-reply rate limit reached; check-in recorded without a reply")
			return nil
		}
	}
	key := "reply|" + r.ref
	msg := bot.KfMessage{OpenKfID: openKfID, ExternalUserID: id, Text: text, MsgID: kfMsgID(key)}
	return r.enqueue(bot.ActionKfMessage, key, id, msg, time.Time{}, time.Time{})
}

// checkinTap handles a tap on the member's signed H5 page (the server
// verified the link and appended the event).
func (r *run) checkinTap() error {
	id := r.ev.ExternalUserID
	camp := r.sc.Campaign(r.ev.Data[checkin.DataCampaign])
	if id == "" || camp == nil {
		r.log.Warn().Str("campaign", r.ev.Data[checkin.DataCampaign]).Msg("check-in tap for an unknown member or campaign; ignored")
		return checkin.SaveResult(r.tx, r.resultKey(), "这个打卡活动已经不存在了。")
	}
	ms, err := r.member(id, false)
	if err != nil {
		return err
	}
	if ms == nil {
		r.log.Warn().Msg("check-in tap from a member wecombot doesn't know; ignored")
		return checkin.SaveResult(r.tx, r.resultKey(), "没有找到你的会员信息，请先添加客服。")
	}
	text, outcome, err := r.checkIn(ms, camp, false)
	if err != nil {
		return err
	}
	if err := checkin.SaveResult(r.tx, r.resultKey(), text); err != nil {
		return err
	}
	if outcome.OK() {
		// Rewards (coupon codes, certificate) also go to the kf conversation.
		return r.kfReply(ms, text, "", false)
	}
	return nil
}

// resultKey is where a tap's answer is kept for the page: the event's
// dedupe key, which the page knows (r.ref may be a hash of it).
func (r *run) resultKey() string {
	if r.ev.DedupeKey != "" {
		return r.ev.DedupeKey
	}
	return r.ref
}

// campaignTick turns a scheduled reminder into outbox actions: a mass-send
// task per group owner (staff confirm it), a group robot post, or a kf
// message per member; summaries and close carry the leaderboard, and close
// ends the campaign.
func (r *run) campaignTick() error {
	t, err := checkin.ParseTick(r.ev)
	if err != nil {
		r.log.Warn().Err(err).Msg("bad campaign tick; ignored")
		return nil
	}
	camp := r.sc.Campaign(t.Campaign)
	if camp == nil || t.Reminder >= len(camp.Reminders) || camp.Reminders[t.Reminder].Spec != t.Spec {
		r.log.Info().Str("campaign", t.Campaign).Int("reminder", t.Reminder).Msg("reminder no longer in the scenario (reloaded); skipped")
		return nil
	}
	done, err := checkin.TickDone(r.tx, t)
	if err != nil || done {
		return err
	}
	if err := checkin.MarkTick(r.tx, t); err != nil {
		return err
	}
	rem := camp.Reminders[t.Reminder]
	day := checkin.DayOf(t.Slot, camp.Zone)
	if !camp.Rolling() {
		// Openings and reminders run on the campaign's days; a summary or
		// close may also run the morning after the last day.
		first, last := checkin.Span(camp, nil, day)
		if rem.Kind == scenarios.ReminderSummary || rem.Kind == scenarios.ReminderClose {
			last++
		}
		if day < first || day > last {
			r.log.Debug().Str("campaign", camp.Name).Msg("reminder outside the campaign's dates; skipped")
			return nil
		}
	}
	closed, err := checkin.IsClosed(r.tx, camp.Name)
	if err != nil || closed {
		return err
	}
	data := r.sc.DataFor(nil)
	data.Campaign = camp.Name
	participants, _, err := checkin.Participation(r.tx, camp.Name)
	if err != nil {
		return err
	}
	today, err := checkin.CheckInsOn(r.tx, camp.Name, day)
	if err != nil {
		return err
	}
	data.Participants, data.Today = int(participants), int(today)
	if rem.Kind == scenarios.ReminderSummary || rem.Kind == scenarios.ReminderClose {
		if data.Board, err = r.boardText(camp, rem.Top); err != nil {
			return err
		}
	}
	if rem.Kind == scenarios.ReminderClose {
		if err := checkin.Close(r.tx, camp.Name, r.at); err != nil {
			return err
		}
	}
	r.log.Info().Str("campaign", camp.Name).Str("kind", rem.Kind).Str("to", rem.To).Msg("campaign reminder")
	withBoard := func(text string) string {
		if rem.Kind != scenarios.ReminderSummary && rem.Kind != scenarios.ReminderClose {
			return text
		}
		if strings.Contains(rem.Text.Source(), ".Board") {
			return text
		}
		head := fmt.Sprintf("📊 %s %s：今日打卡 %d 人，累计参与 %d 人\n🏆 排行榜", camp.Name, day, data.Today, data.Participants)
		if rem.Kind == scenarios.ReminderClose {
			head = fmt.Sprintf("🏁 %s 已结束，共 %d 人参与\n🏆 最终排行榜", camp.Name, data.Participants)
		}
		return strings.Join(nonEmpty([]string{text, head, data.Board}), "\n")
	}
	key := "sched|" + r.ref
	switch rem.To {
	case scenarios.ToRobot:
		text := withBoard(r.render(rem.Text, data))
		return r.enqueue(bot.ActionRobot, key, "", bot.RobotMessage{Robot: rem.Robot, Text: text}, time.Time{}, time.Time{})
	case scenarios.ToGroups:
		return r.remindGroups(camp, key, withBoard(r.render(rem.Text, data)))
	default:
		return r.remindMembers(camp, rem, key, day, data, withBoard)
	}
}

// boardText is the campaign's top n (default 10) as chat text.
func (r *run) boardText(camp *scenarios.Campaign, n int) (string, error) {
	if n <= 0 {
		n = 10
	}
	top, err := checkin.Top(r.tx, camp.Name, n)
	if err != nil {
		return "", err
	}
	names, days := map[string]string{}, map[string]int{}
	for _, s := range top {
		m, err := r.tx.Member(s.Member)
		if err == nil {
			names[s.Member] = r.sc.DataFor(m).Name
		} else if staff, ok := strings.CutPrefix(s.Member, "staff:"); ok {
			names[s.Member] = staff
		}
		p, err := checkin.LoadProgress(r.tx, camp.Name, s.Member)
		if err != nil {
			return "", err
		}
		days[s.Member] = p.Count()
	}
	return checkin.BoardText(top, names, days), nil
}

// remindGroups owes a mass send (add_msg_template, chat_type group) to each
// of the audience's customer groups, or every known group when the audience
// names none, from its owner; they become one task per owner, which the
// owner confirms in WeCom.
func (r *run) remindGroups(camp *scenarios.Campaign, key, text string) error {
	want := map[string]bool{}
	for _, g := range camp.Audience.Groups {
		want[g] = true
	}
	byOwner := map[string][]string{}
	var derr error
	err := r.tx.Scan(bucketGroups, "", func(_ string, v []byte) bool {
		var g groupRecord
		if derr = json.Unmarshal(v, &g); derr != nil {
			return false
		}
		if !g.DismissedAt.IsZero() || (len(want) > 0 && !want[g.ChatID]) {
			return true
		}
		if g.Owner == "" {
			r.log.Warn().Str("chat", g.ChatID).Msg("customer group without a known owner: no mass-send task for it")
			return true
		}
		byOwner[g.Owner] = append(byOwner[g.Owner], g.ChatID)
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	owners := make([]string, 0, len(byOwner))
	for o := range byOwner {
		owners = append(owners, o)
	}
	sort.Strings(owners)
	if len(owners) == 0 {
		r.log.Warn().Str("campaign", camp.Name).Msg("no customer groups to remind")
	}
	for _, o := range owners {
		// One send per group, so each group's monthly quota is counted; the
		// batcher (massbatch.go) makes them one task per owner.
		for _, chat := range byOwner[o] {
			p := bot.MassSend{ChatType: "group", Sender: o, ChatIDs: []string{chat}, Text: text}
			if err := r.enqueue(bot.ActionMassSend, key+"|"+o+"|"+chat, "", p, time.Time{}, time.Time{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// remindMembers sends a kf message to each member it concerns who wrote to
// 微信客服 within the last 48 hours (WeCom refuses older conversations): for
// remind, participants whose run is open today and who haven't checked in;
// otherwise everyone in the audience.
func (r *run) remindMembers(camp *scenarios.Campaign, rem *scenarios.Reminder, key string, day checkin.Day, base scenarios.TemplateData, withBoard func(string) string) error {
	type target struct {
		id   string
		kfID string
	}
	var targets []target
	// Only members whose last kf message is inside WeCom's window can be
	// written to: read those (kf_recent by day), not every member who ever wrote.
	err := checkin.EachKfSince(r.tx, r.at.Add(-checkin.KfWindow), r.at, func(id string, k checkin.KfContact) bool {
		targets = append(targets, target{id, k.OpenKfID})
		return true
	})
	if err != nil {
		return err
	}
	sent := 0
	for _, t := range targets {
		m, err := r.tx.Member(t.id)
		if errors.Is(err, bot.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if m.Lost || !camp.Audience.IncludesAt(m, r.at) {
			continue
		}
		p, err := checkin.LoadProgress(r.tx, camp.Name, t.id)
		if err != nil {
			return err
		}
		if rem.Kind == scenarios.ReminderRemind {
			if p == nil || p.Has(day) {
				continue
			}
			if first, last := checkin.Span(camp, p, day); day < first || day > last {
				continue
			}
		}
		d := r.memberCampaignData(m, camp, p)
		d.Board, d.Today, d.Participants = base.Board, base.Today, base.Participants
		text := withBoard(r.render(rem.Text, d))
		k := key + "|" + t.id
		msg := bot.KfMessage{OpenKfID: t.kfID, ExternalUserID: t.id, Text: text, MsgID: kfMsgID(k)}
		if err := r.enqueueProactive("", bot.ActionKfMessage, k, t.id, msg, time.Time{}, time.Time{}); err != nil {
			return err
		}
		sent++
	}
	r.log.Info().Str("campaign", camp.Name).Int("members", sent).Msg("campaign reminder to members")
	return nil
}
