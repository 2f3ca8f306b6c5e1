package engine

import "github.com/wecombot/wecombot/bot"

// active records that the member did something herself at the event's time
// (added the staff, wrote to 微信客服, checked in, ordered, joined a
// customer group): her last activity, which segments' silent_days and
// active_days read.
func (r *run) active(ms *memberState) {
	if r.ev.Source == bot.SourceAI {
		return // an AI tool's synthetic message is not the customer acting
	}
	if ms.m.Touch(r.at) {
		ms.dirty = true
	}
}
