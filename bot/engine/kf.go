package engine

import (
	"time"

	"github.com/wecombot/wecombot/bot"
)

// kfNotify handles 微信客服 notifications: kf_msg_or_event carries no message, only "pull".
// The engine owes a kf_sync action for it (key from the notification, so
// a retried callback pulls once); the kf puller runs kf/sync_msg outside
// the transaction and appends each message as a kf.text event.
func (r *run) kfNotify() error {
	if r.ev.OpenKfID == "" {
		r.log.Warn().Msg("kf_msg_or_event without OpenKfId; nothing to pull")
		return nil
	}
	// The token is valid for 10 minutes; the puller retries without it after.
	return r.enqueue(bot.ActionKfSync, "kfsync|"+r.ref, "", bot.KfSync{OpenKfID: r.ev.OpenKfID, Token: r.ev.KfToken}, time.Time{}, time.Time{})
}
