package engine

import (
	"fmt"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
)

// What the engine does with an event, in one place. Handle (engine.go)
// runs, inside the event's transaction:
//
//  1. dispatch: the one handler for the event's type (the table below
//     names each handler's home file);
//  2. afterEvent: the features that look at what the event changed, in order;
//  3. finish (engine.go): levels, tag rules, tag write-back, store members.
//
// A member's or staff member's message (kf.text, app.text, aibot.text) is
// offered, in order, to messageCommands, then to the scenario's keyword
// rules (keywords.go), then to messageFallback.
//
// Features call each other directly (a milestone's coupon is r.issue from
// coupons.go). No handler does network I/O: whatever is owed to WeCom or the
// model is an outbox action whose key derives from r.ref.

// dispatch runs the handler for r.ev's type. Types not listed (app.enter/click,
// unknown ones) change nothing.
func (r *run) dispatch() error {
	switch r.ev.Type {
	// Contacts and welcome (contact.go: welcome scripts, follow-ups,
	// attribution; funnel.go: stage moves).
	case bot.EventContactAdd, bot.EventContactAddHalf:
		return r.contactAdd()
	case bot.EventContactEdit:
		return r.contactEdit()
	case bot.EventContactDelFollow:
		return r.contactDeleted("customer")
	case bot.EventContactDel:
		return r.contactDeleted("staff")
	case bot.EventTagChange:
		return r.tagChange()
	case bot.EventContactTransferFail:
		return r.transferFail() // transfer.go
	// Customer groups (groups.go).
	case bot.EventGroupCreate:
		return r.groupCreate()
	case bot.EventGroupUpdate:
		return r.groupUpdate()
	case bot.EventGroupDismiss:
		return r.groupDismiss()
	case bot.EventGroupWelcomeSync:
		return r.groupWelcomeSync()
	// Messages (keywords.go; kf.go pulls 微信客服 messages; ai.go answers the AI bot).
	case bot.EventKfNotify:
		return r.kfNotify()
	case bot.EventKfText:
		return r.kfText()
	// 微信客服 sessions (kfsession.go): greeting, hand-over, delivery failures.
	case bot.EventKfEnter:
		return r.kfEnter()
	case bot.EventKfSession:
		return r.kfSessionChange()
	case bot.EventKfSendFail:
		return r.kfSendFail()
	case bot.EventAppText:
		return r.appText()
	case bot.EventAIBotText:
		return r.aibotText()
	case bot.EventAIAnswer:
		return r.aiAnswer()
	case bot.EventAIHandoff:
		return r.aiHandoff()
	// Shop orders (funnel.go; coupons.go redeems codes in couponsAfter).
	case bot.EventOrderPaid:
		return r.orderPaid()
	case bot.EventOrderRefunded:
		return r.orderRefunded()
	// Check-in campaigns (checkin.go, checkin_staff.go).
	case checkin.EventCheckIn:
		return r.checkinTap()
	case checkin.EventTick:
		return r.campaignTick()
	// The member economy (economy.go, redeem.go, rights.go).
	case checkin.EventEconomyTick:
		return r.economyTick()
	case EventRedeem:
		return r.redeemTap()
	case EventRedeemAddress:
		return r.redeemAddress()
	case EventRedeemShipped:
		return r.redeemShipped()
	// Coupons (coupons.go).
	case EventCouponGrant:
		return r.couponGrant()
	case EventCouponImport, EventCouponGenerate:
		return r.couponRequest() // coupons_codes.go
	// Operator requests and what WeCom created for them (results.go;
	// referral.go takes invite codes).
	case bot.EventContactWayCreate:
		return r.contactWayCreate()
	case bot.EventActionResult:
		return r.actionResult()
	// Sync of the existing community from WeCom (sync.go).
	case bot.EventSyncStart:
		return r.syncStart()
	case bot.EventSyncPage:
		return r.syncPage()
	case bot.EventSyncFinish:
		return r.syncFinish()
	case bot.EventSyncFail:
		return r.syncFail()
	// The profile form's submissions (profile.go).
	case EventProfileSubmit:
		return r.profileSubmit()
	// Staff transfer (transfer.go; results in results.go).
	case bot.EventTransferRequest:
		return r.transferRequest()
	// Silent members and loss alerts (activity.go, loss.go).
	case bot.EventMemberSilent:
		return r.memberSilent()
	case bot.EventLossDigest:
		return r.lossDigest()
	// Broadcasts (broadcast.go): an occurrence, an API broadcast; their
	// fan-out pages return as action results.
	case bot.EventBroadcastRun:
		return r.broadcastRunEvent()
	case bot.EventBroadcastCreate:
		return r.broadcastCreate()
	case bot.EventSOPDate:
		return r.sopDateEvent() // sop.go
	case bot.EventSOPState:
		return r.sopState() // sop.go
	}
	return nil
}

// messageCommands offers a message (surface scenarios.SurfaceKf with the
// member, SurfaceApp or SurfaceAIBot with ms nil) to the features' commands
// in order; the first that takes it (true) ends the message's handling:
// keyword rules and the fallback don't run.
func (r *run) messageCommands(ms *memberState, surface, text string) (bool, error) {
	for _, command := range []func(*memberState, string, string) (bool, error){
		r.checkinCommand,  // 打卡/补卡/排行 (checkin.go)
		r.posterCommand,   // 任务宝 poster keywords (poster.go)
		r.referralCommand, // invite code keywords (referral.go)
		r.profileCommand,  // the profile form's keywords (profile.go)
		r.redeemCommand,   // 兑换 (redeem.go)
	} {
		if done, err := command(ms, surface, text); err != nil || done {
			return done, err
		}
	}
	return false, nil
}

// messageFallback answers a message no command or keyword rule took: the AI
// reply (ai.go).
func (r *run) messageFallback(ms *memberState, surface, text string) (bool, error) {
	return r.aiFallback(ms, surface, text)
}

// afterEvent runs, for every handled event once its handler is done, the
// features that react to what the event changed, in order.
func (r *run) afterEvent() error {
	for _, step := range []struct {
		name string
		run  func() error
	}{
		{"referral", r.referralAfter},    // credit referrers of new/lost invitees (referral.go)
		{"coupons", r.couponsAfter},      // stage-change coupons, redemption on orders (coupons.go)
		{"economy", r.economyAfter},      // the economy's scheduled work left over (rights.go)
		{"sop", r.sopAfter},              // SOP stop conditions, then triggers (sop.go)
		{"broadcasts", r.broadcastAfter}, // orders within 7 days of a broadcast (broadcast.go)
	} {
		if err := step.run(); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	return nil
}
