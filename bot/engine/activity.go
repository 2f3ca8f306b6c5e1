package engine

import (
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Last activity and silent members (沉默客户).
//
// Every action a member takes herself (adding a staff member, writing to
// 微信客服, checking in, paying an order, joining a customer group) moves
// her last activity, which segments' silent_days and active_days read. The
// hourly sweep (bot/sweep) appends member.silent for members the silent
// rule finds quiet; the engine checks again here, tags her with
// silent.tag (written to WeCom like a stage tag) and counts her in the
// week's went-silent; her next activity removes the tag and counts her as
// come back. Both set a flag on the member's state (wentSilent, cameBack)
// for the features after the handler (an SOP triggered by silent).

// active records that the member did something herself at the event's time.
func (r *run) active(ms *memberState) {
	if r.ev.Source == bot.SourceAI {
		return // an AI tool's synthetic message is not the customer acting
	}
	if ms.m.Touch(r.at) {
		ms.dirty = true
	}
	if !ms.m.IsSilent() {
		return
	}
	ms.m.SilentSince = time.Time{}
	ms.dirty = true
	ms.cameBack = true
	if sl := r.sc.Silent; sl != nil {
		r.removeTag(ms, sl.Tag)
	}
	r.tally(ms.m, func(w *WeekStats) { w.CameBack++ })
	r.log.Info().Str("member", ms.m.ExternalUserID).Msg("silent member is back")
}

// memberSilent handles the sweep's member.silent: mark her silent unless
// she was active since, is lost, or already is.
func (r *run) memberSilent() error {
	sl := r.sc.Silent
	if sl == nil || r.ev.ExternalUserID == "" {
		return nil
	}
	ms, err := r.member(r.ev.ExternalUserID, false)
	if err != nil || ms == nil {
		return err
	}
	m := ms.m
	if m.Lost || m.IsSilent() || r.at.Sub(m.LastActivity()) < sl.For() {
		return nil // active again since the sweep looked, or a replay
	}
	m.SilentSince = r.at
	ms.dirty = true
	ms.wentSilent = true
	r.addTag(ms, sl.Tag)
	r.tally(m, func(w *WeekStats) { w.WentSilent++ })
	r.log.Info().Time("last_active", m.LastActivity()).Msg("member went silent")
	return nil
}
