package engine

import (
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/scenarios"
)

// Staff check in too: a staff member's message to the app, or an @-mention
// of the AI bot (智能机器人) in an internal group, with a campaign keyword.
// Staff aren't members: they join the campaign's ledger and leaderboard as
// "staff:<userid>", earn campaign points (no balance, level, tags, coupons or
// certificate), and only campaigns without an audience take them.

// SurfaceAIBot is the surface of AI bot @-mentions offered to commands.
const SurfaceAIBot = "aibot"

// StaffParticipant is a staff member's id in campaign ledgers.
func StaffParticipant(userID string) string { return "staff:" + userID }

// staffCheckinCommand handles app and AI bot messages (no member).
func (r *run) staffCheckinCommand(surface, text string) (bool, error) {
	if (surface != scenarios.SurfaceApp && surface != SurfaceAIBot) || r.ev.StaffID == "" {
		return false, nil
	}
	camp, makeup := r.matchCampaign(text)
	if camp == nil {
		return false, nil
	}
	reply, err := r.staffCheckIn(camp, makeup)
	if err != nil {
		return false, err
	}
	if surface == SurfaceAIBot {
		ev := r.ev
		p := bot.AIReply{Surface: bot.AISurfaceAIBot, StaffID: ev.StaffID, ChatID: ev.ChatID, StreamID: ev.Data["stream_id"],
			ResponseURL: ev.Data["response_url"], Text: ev.Content, Ref: r.ref}
		if p.StreamID == "" {
			r.log.Warn().Msg("aibot check-in without a stream id; recorded without a reply")
			return true, nil
		}
		return true, r.aiDirect(&p, reply)
	}
	allowed, err := r.allowReply("app|" + r.ev.StaffID)
	if err != nil || !allowed {
		return true, err
	}
	msg := bot.StaffMessage{ToUsers: []string{r.ev.StaffID}, Text: reply}
	return true, r.enqueue(bot.ActionStaffMessage, "reply|"+r.ref, "", msg, time.Time{}, time.Time{})
}

// staffCheckIn applies a staff member's attempt; make-ups cost points staff
// don't have, so they are refused.
func (r *run) staffCheckIn(camp *scenarios.Campaign, makeup bool) (string, error) {
	id := StaffParticipant(r.ev.StaffID)
	closed, err := checkin.IsClosed(r.tx, camp.Name)
	if err != nil {
		return "", err
	}
	p, err := checkin.LoadProgress(r.tx, camp.Name, id)
	if err != nil {
		return "", err
	}
	var outcome checkin.Outcome
	var day checkin.Day
	switch {
	case !camp.Audience.Empty():
		outcome = checkin.NotInAudience
	case makeup:
		outcome = checkin.MakeupUnavailable
	default:
		outcome, day = checkin.Attempt(camp, p, r.at, closed)
	}
	data := func() scenarios.TemplateData {
		d := r.sc.DataFor(nil)
		d.Name, d.Staff, d.Campaign, d.Day = r.ev.StaffID, r.ev.StaffID, camp.Name, p.Count()
		d.Streak = p.Streak(checkin.DayOf(r.at, camp.Zone))
		if p != nil {
			d.Points = p.Score
			if rank, _, ok, err := checkin.Rank(r.tx, camp.Name, id); err == nil && ok {
				d.Rank = rank
			}
		}
		return d
	}
	l := r.log.Info().Str("campaign", camp.Name).Str("staff", r.ev.StaffID).Str("outcome", outcome.String())
	if !outcome.OK() {
		l.Msg("staff check-in refused")
		text, err := checkin.Reply(camp, outcome, data())
		if err != nil {
			r.log.Warn().Err(err).Msg("check-in message template failed")
		}
		return text, nil
	}
	isNew := p == nil
	if isNew {
		p = &checkin.Progress{Campaign: camp.Name, Member: id}
	}
	oldScore := p.Score
	if err := checkin.Record(r.tx, p, day, r.at, false, r.ref); err != nil {
		return "", err
	}
	// The members' reward rule; staff keep only the campaign score (no
	// balance, tags, coupons or certificate).
	reward := checkin.ComputeReward(camp, p, day, false)
	p.Apply(reward)
	p.Certificate = false
	if err := checkin.SaveProgress(r.tx, p, oldScore, isNew); err != nil {
		return "", err
	}
	l.Str("day", day.String()).Int("days", p.Count()).Int64("score", p.Score).Msg("staff checked in")
	parts := r.rewardLines(camp, outcome, reward, data(), nil, nil)
	return strings.Join(nonEmpty(parts), "\n"), nil
}
