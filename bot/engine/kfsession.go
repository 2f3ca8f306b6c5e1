package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// 微信客服 session rules (WECOM.md §8): the bot may send to a customer only
// within 48 h of the customer's last message, at most 5 messages per
// customer message, and only while the session is new or bot-held — never
// while it is queued for or held by a person. One budget per (account,
// customer) is shared by every feature: enqueue consults it for each kf
// message, and a message outside it is recorded as skipped, never attempted.

// KfWindow and KfRepliesPerMessage are WeCom's 微信客服 send limits.
const (
	KfWindow            = 48 * time.Hour
	KfRepliesPerMessage = 5
)

// kf service states (kf/service_state/get).
const (
	kfStateNew    = 0
	kfStateBot    = 1
	kfStateQueue  = 2
	kfStatePerson = 3
	kfStateEnded  = 4
)

var bucketKfSessions = bot.BucketKfSessions

// KfSession is what the engine knows of one customer's session with one
// 微信客服 account.
type KfSession struct {
	// LastCustomerAt is the customer's last message: the 48 h window's start.
	LastCustomerAt time.Time `json:"last_customer_at,omitzero"`
	// Sent counts kf messages owed since LastCustomerAt (at most 5).
	Sent int `json:"sent,omitempty"`
	// State is WeCom's service_state; Servicer the person holding it (3).
	State    int       `json:"state"`
	Servicer string    `json:"servicer,omitempty"`
	Greeted  time.Time `json:"greeted,omitzero"`
}

func kfSessionKey(openKfID, externalUserID string) string { return openKfID + "|" + externalUserID }

// ReadKfSession returns the session (zero and false when the customer never
// wrote or opened the chat).
func ReadKfSession(tx bot.Tx, openKfID, externalUserID string) (KfSession, bool, error) {
	var s KfSession
	raw, err := tx.Get(bucketKfSessions, kfSessionKey(openKfID, externalUserID))
	if errors.Is(err, bot.ErrNotFound) || (err == nil && raw == nil) {
		return KfSession{State: kfStateEnded}, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, false, fmt.Errorf("decode kf session: %w", err)
	}
	return s, true, nil
}

func (r *run) putKfSession(openKfID, externalUserID string, s KfSession) error {
	return r.putJSON(bucketKfSessions, kfSessionKey(openKfID, externalUserID), s)
}

// kfCustomerWrote opens a new window: the customer's message allows 5 more
// messages for 48 h, and starts a new session if the last one had ended.
func (r *run) kfCustomerWrote() error {
	return r.updateKfSession(func(s *KfSession) error {
		if r.ev.At.After(s.LastCustomerAt) {
			s.LastCustomerAt, s.Sent = r.ev.At, 0
		}
		if s.State == kfStateEnded {
			s.State, s.Servicer = kfStateNew, ""
		}
		return nil
	})
}

// updateKfSession applies fn to the session of the event's customer and
// account and stores it (nothing when the event names neither).
func (r *run) updateKfSession(fn func(s *KfSession) error) error {
	ev := r.ev
	if ev.OpenKfID == "" || ev.ExternalUserID == "" {
		return nil
	}
	s, _, err := ReadKfSession(r.tx, ev.OpenKfID, ev.ExternalUserID)
	if err != nil {
		return err
	}
	if err := fn(&s); err != nil {
		return err
	}
	return r.putKfSession(ev.OpenKfID, ev.ExternalUserID, s)
}

// kfBudget says why a kf message due at due may not go out ("" when it
// may) and, when it may, counts it against the customer's budget.
func (r *run) kfBudget(p bot.KfMessage, due time.Time) (reason string, err error) {
	s, found, err := ReadKfSession(r.tx, p.OpenKfID, p.ExternalUserID)
	if err != nil {
		return "", err
	}
	if reason := kfRefusal(s, found, due); reason != "" {
		return reason, nil
	}
	s.Sent++
	return "", r.putKfSession(p.OpenKfID, p.ExternalUserID, s)
}

// kfRefusal is why WeCom would refuse a kf message at t ("" if it wouldn't).
func kfRefusal(s KfSession, found bool, t time.Time) string {
	switch {
	case !found || s.LastCustomerAt.IsZero():
		return "the customer never wrote to this 微信客服 account"
	case s.State == kfStatePerson:
		return "a person (" + s.Servicer + ") holds the 微信客服 session"
	case s.State == kfStateQueue:
		return "the 微信客服 session is queued for a person"
	case s.State == kfStateEnded:
		return "the 微信客服 session has ended"
	case t.Sub(s.LastCustomerAt) > KfWindow:
		return "more than 48 h since the customer's last 微信客服 message"
	case s.Sent >= KfRepliesPerMessage:
		return "5 messages already sent since the customer's last 微信客服 message"
	}
	return ""
}

// kfSkipReason is a short metric label for a refusal.
func kfSkipReason(reason string) string {
	switch reason[:min(len(reason), 8)] {
	case "the cust":
		return "never_wrote"
	case "a person", "the 微信":
		return "person_holds"
	case "more tha":
		return "window_48h"
	case "5 messag":
		return "over_5"
	}
	return "other"
}

// kfEnter handles enter_session: the customer opened the chat (from a link
// whose scene may name a channel). With a welcome_code and a kf greeting in
// the scenario, the greeting goes out once with kf/send_msg_on_event.
func (r *run) kfEnter() error {
	ev := r.ev
	if ev.OpenKfID == "" || ev.ExternalUserID == "" {
		return nil
	}
	ms, err := r.member(ev.ExternalUserID, true)
	if err != nil {
		return err
	}
	scene := ev.Data["scene"]
	if ch := r.sc.ChannelByState(scene); ch != nil && ms.m.Channel == "" {
		ms.m.Channel, ms.m.State = ch.Name, scene
		for _, t := range ch.Tags {
			r.addTag(ms, t)
		}
		ms.dirty = true
	}
	s, _, err := ReadKfSession(r.tx, ev.OpenKfID, ev.ExternalUserID)
	if err != nil {
		return err
	}
	if s.State == kfStateEnded {
		s.State = kfStateNew
	}
	code := ev.Data["welcome_code"]
	if code != "" && r.sc.Kf != nil && s.Greeted.IsZero() {
		text := r.render(r.sc.Kf.Greeting, r.sc.DataFor(ms.m))
		key := "kfgreet|" + ev.OpenKfID + "|" + ev.ExternalUserID + "|" + code
		msg := bot.KfEventMessage{OpenKfID: ev.OpenKfID, ExternalUserID: ev.ExternalUserID, Code: code, Text: text, MsgID: kfMsgID(key)}
		if err := r.enqueue(bot.ActionKfEventMessage, key, ev.ExternalUserID, msg, time.Time{}, ev.At.Add(20*time.Second)); err != nil {
			return err
		}
		s.Greeted = r.at
	}
	return r.putKfSession(ev.OpenKfID, ev.ExternalUserID, s)
}

// kfSession handles session_status_change: a person took or ended the session.
func (r *run) kfSessionChange() error {
	return r.updateKfSession(func(s *KfSession) error {
		d := r.ev.Data
		switch d["change_type"] {
		case "1", "2": // taken from the queue, transferred
			s.State, s.Servicer = kfStatePerson, d["new_servicer"]
		case "3": // ended: the bot answers again when the customer writes
			s.State, s.Servicer = kfStateEnded, ""
		case "4": // reopened
			s.State, s.Servicer = kfStateNew, ""
		}
		r.log.Info().Str("change_type", d["change_type"]).Int("state", s.State).Str("servicer", s.Servicer).Msg("微信客服 session changed")
		return nil
	})
}

// kfSendFail records WeCom's msg_send_fail (the message it could not
// deliver) onto the action that sent it, which fails with the reason.
func (r *run) kfSendFail() error {
	ev := r.ev
	ft, _ := strconv.Atoi(ev.Data["fail_type"])
	why := map[int]string{0: "unknown", 1: "kf account deleted", 2: "app closed", 4: "past 48 h", 5: "session closed",
		6: "over 5 messages", 10: "refused by the customer"}[ft]
	msgID := ev.Data["fail_msgid"]
	r.log.Warn().Str("fail_msgid", msgID).Int("fail_type", ft).Str("why", why).Msg("微信客服 message not delivered (msg_send_fail)")
	if err := r.tx.Put(bucketKfSessions, "fail|"+msgID, []byte(strconv.Itoa(ft)+" "+why)); err != nil {
		return err
	}
	raw, err := r.tx.Get(bucketKfMsgIDs, msgID)
	if errors.Is(err, bot.ErrNotFound) {
		return nil // not one of ours (a person's message), or swept
	}
	if err != nil {
		return err
	}
	id, key := parseKfMsgIDEntry(raw)
	r.e.metrics.SendResult("kf", bot.KfUndelivered)
	detail := fmt.Sprintf("not delivered: WeCom reported msg_send_fail (fail_type %d: %s)", ft, why)
	err = r.tx.SetActionResult(id, bot.ActionResult{Status: bot.ActionFailed, Result: bot.KfUndelivered, Detail: detail, At: r.at})
	if errors.Is(err, bot.ErrConflict) || errors.Is(err, bot.ErrNotFound) {
		// Still being sent (its outcome not recorded yet) or swept: the
		// failure stays recorded under fail|msgid.
		r.log.Info().Err(err).Uint64("action", id).Msg("msg_send_fail not written onto its action")
		return nil
	}
	if err != nil {
		return err
	}
	_, err = r.outreachOutcome(key, bot.KfUndelivered, detail)
	return err
}

var bucketKfMsgIDs = bot.BucketKfMsgIDs

// indexKfMsgID remembers which action sends a 微信客服 msgid, so WeCom's
// msg_send_fail (which names only the msgid) lands on it.
func (r *run) indexKfMsgID(a *bot.Action, payload any) error {
	if a.Status != bot.ActionPending || a.ID == 0 {
		return nil
	}
	var msgID string
	switch p := payload.(type) {
	case bot.KfMessage:
		msgID = p.MsgID
	case bot.KfEventMessage:
		msgID = p.MsgID
	}
	if msgID == "" {
		return nil
	}
	return r.tx.Put(bucketKfMsgIDs, msgID, kfMsgIDEntry(a))
}

// kfTransferDone applies a session moved by kf/service_state/trans.
func (r *run) kfTransferDone(d map[string]string) error {
	state, _ := strconv.Atoi(d["state"])
	s, _, err := ReadKfSession(r.tx, d["open_kfid"], d["external_user_id"])
	if err != nil {
		return err
	}
	s.State, s.Servicer = state, d["servicer"]
	return r.putKfSession(d["open_kfid"], d["external_user_id"], s)
}

// kfHandoff moves the member's 微信客服 session to a person: the first of
// ai.handoff_staff, else the queue. It goes a moment after the hand-off
// reply, which the bot may still send; from the transfer on, it is silent.
func (r *run) kfHandoff(ms *memberState) error {
	if r.ev.OpenKfID == "" {
		return nil
	}
	t := bot.KfTransfer{OpenKfID: r.ev.OpenKfID, ExternalUserID: ms.m.ExternalUserID, State: kfStateQueue}
	if staff := r.sc.AI.HandoffStaff; len(staff) > 0 {
		t.State, t.Servicer = kfStatePerson, staff[0]
	}
	return r.enqueue(bot.ActionKfTransfer, "kftrans|"+r.ref, ms.m.ExternalUserID, t, r.now.Add(2*time.Second), time.Time{})
}

// kfGuard is the outbox's last check of a kf message: a person may have
// taken the session, or the window closed, since it was queued.
func kfGuard(tx bot.Tx, a *bot.Action) (string, error) {
	var p bot.KfMessage
	if err := a.Decode(&p); err != nil {
		return "", nil
	}
	s, found, err := ReadKfSession(tx, p.OpenKfID, p.ExternalUserID)
	if err != nil || !found {
		return "", err
	}
	if s.State == kfStatePerson || s.State == kfStateQueue || s.State == kfStateEnded {
		return kfRefusal(s, true, a.DueAt), nil
	}
	return "", nil
}

// DefaultMassSendPerMonth is add_msg_template's per-customer limit: "同一个
// 企业每个自然月内仅可针对一个客户/客户群发送4条消息". Beyond it WeCom drops the
// customer silently (fail_list), so the engine doesn't ask.
const DefaultMassSendPerMonth = 4

var bucketMassQuota = bot.BucketMassQuota

// massQuota counts a mass-send to member (a customer, or "group|<chat_id>") in due's natural month (brand
// zone), or says why it would exceed WeCom's quota.
func (r *run) massQuota(member string, due time.Time) (reason string, err error) {
	limit := r.sc.Limits.MassSendPerMonth
	if limit <= 0 {
		limit = DefaultMassSendPerMonth
	}
	key := r.massQuotaKey(member, due)
	raw, err := r.tx.Get(bucketMassQuota, key)
	if err != nil && !errors.Is(err, bot.ErrNotFound) {
		return "", err
	}
	n, _ := strconv.Atoi(string(raw))
	if n >= limit {
		return fmt.Sprintf("over WeCom's mass-send quota (%d per customer or group per natural month; %d already in %s)", limit, n, due.In(r.sc.Brand.Zone).Format("2006-01")), nil
	}
	return "", r.tx.Put(bucketMassQuota, key, []byte(strconv.Itoa(n+1)))
}

// massQuotaKey is the mass_quota record counting member's (or a group's,
// "group|<chat>") mass sends in due's natural month.
func (r *run) massQuotaKey(member string, due time.Time) string {
	return member + "|" + due.In(r.sc.Brand.Zone).Format("2006-01")
}

// massQuotaRelease gives back a mass send counted under key that never
// reached WeCom (dropped when its batch closed: an SOP step of a stopped
// sequence, a member who deleted the sender), so it doesn't crowd out a
// later one that month.
func (r *run) massQuotaRelease(key string) error {
	raw, err := r.tx.Get(bucketMassQuota, key)
	if errors.Is(err, bot.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(string(raw))
	if n <= 1 {
		return r.tx.Delete(bucketMassQuota, key)
	}
	return r.tx.Put(bucketMassQuota, key, []byte(strconv.Itoa(n-1)))
}
