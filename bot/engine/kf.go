package engine

import (
	"time"

	"github.com/wecombot/wecombot/bot"
)

// tagChange owes a reload of the corp tag library: tags were created,
// renamed or deleted in the admin console, and a cached id of a deleted tag
// would be refused (40068).
func (r *run) tagChange() error {
	return r.enqueue(bot.ActionTagRefresh, "tagrefresh|"+r.ref, "",
		bot.TagRefresh{ID: r.ev.TagID, Type: r.ev.TagType, ChangeType: r.ev.ChangeType}, time.Time{}, time.Time{})
}

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
