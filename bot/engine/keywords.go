package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// kfText handles a WeChat user's message in 微信客服: the kf_chat signal, then
// the first matching keyword rule (tags, signal, staff notification, reply).
func (r *run) kfText() error {
	ev := r.ev
	if ev.ExternalUserID == "" {
		return nil
	}
	ms, err := r.member(ev.ExternalUserID, true)
	if err != nil {
		return err
	}
	if err := r.signal(ms, scenarios.SignalKfChat); err != nil {
		return err
	}
	if ev.Source != bot.SourceAI { // an AI tool's synthetic message is not the customer writing
		if err := r.kfCustomerWrote(); err != nil {
			return err
		}
		s, _, err := ReadKfSession(r.tx, ev.OpenKfID, ev.ExternalUserID)
		if err != nil {
			return err
		}
		if s.State == kfStatePerson || s.State == kfStateQueue {
			r.log.Info().Str("servicer", s.Servicer).Msg("a person holds the 微信客服 session; the bot stays silent")
			return nil
		}
	}
	text := strings.TrimSpace(ev.Content)
	if done, err := r.messageCommands(ms, scenarios.SurfaceKf, text); err != nil || done {
		return err
	}
	rule := r.sc.Match(scenarios.SurfaceKf, text)
	if rule == nil {
		_, err := r.messageFallback(ms, scenarios.SurfaceKf, text)
		return err
	}
	ms.matched = rule
	for _, t := range rule.Tags {
		r.addTag(ms, t)
	}
	if err := r.signal(ms, rule.Signal); err != nil {
		return err
	}
	allowed, err := r.allowReply("kf|" + ev.ExternalUserID)
	if err != nil {
		return err
	}
	if !allowed {
		r.log.Info().Str("rule", rule.Name).Msg("auto-reply rate limit reached; not replying")
		return nil
	}
	// Levels and tag rules settle in finish; the reply sees the counters
	// (check-ins, stage) this event already changed.
	data := r.memberData(ms.m)
	reply := r.render(rule.Reply, data)
	if rule.Coupon != nil {
		res, err := r.issue(ms, rule.Coupon, "keyword:"+rule.Name)
		if err != nil {
			return err
		}
		reply = joinText(reply, res.text)
	}
	if reply != "" {
		key := "reply|" + r.ref
		msg := bot.KfMessage{OpenKfID: ev.OpenKfID, ExternalUserID: ev.ExternalUserID, Text: reply, MsgID: kfMsgID(key)}
		if err := r.enqueue(bot.ActionKfMessage, key, ev.ExternalUserID, msg, time.Time{}, time.Time{}); err != nil {
			return err
		}
	}
	// A rule that tags the AI's hand-off tag (「人工」) hands the 微信客服
	// session to a person, as the AI's own hand-off does.
	if r.sc.AI != nil && r.sc.AI.HandoffTag != "" && slices.Contains(rule.Tags, r.sc.AI.HandoffTag) {
		if err := r.kfHandoff(ms); err != nil {
			return err
		}
	}
	return r.notify(rule, ms.m, data)
}

// appText handles a staff member's message to the self-built app: keyword
// rules with on: [app] reply through message/send. Staff aren't members,
// so rules' tags and signals don't apply.
func (r *run) appText() error {
	ev := r.ev
	if ev.StaffID == "" {
		return nil
	}
	text := strings.TrimSpace(ev.Content)
	if done, err := r.messageCommands(nil, scenarios.SurfaceApp, text); err != nil || done {
		return err
	}
	rule := r.sc.Match(scenarios.SurfaceApp, text)
	if rule == nil {
		_, err := r.messageFallback(nil, scenarios.SurfaceApp, text)
		return err
	}
	if rule.Reply == nil || rule.Reply.Source() == "" {
		return nil
	}
	allowed, err := r.allowReply("app|" + ev.StaffID)
	if err != nil || !allowed {
		if err == nil {
			r.log.Info().Str("rule", rule.Name).Str("staff", ev.StaffID).Msg("auto-reply rate limit reached; not replying")
		}
		return err
	}
	data := r.sc.DataFor(nil)
	data.Staff = ev.StaffID
	msg := bot.StaffMessage{ToUsers: []string{ev.StaffID}, Text: r.render(rule.Reply, data)}
	return r.enqueue(bot.ActionStaffMessage, "reply|"+r.ref, "", msg, time.Time{}, time.Time{})
}

// notify sends the rule's staff notification to the configured staff, else
// to the member's own staff member.
func (r *run) notify(rule *scenarios.KeywordRule, m *bot.Member, data scenarios.TemplateData) error {
	if rule.Notify == nil {
		return nil
	}
	to := rule.Notify.Staff
	if len(to) == 0 {
		if s := m.PrimaryStaff(); s != "" {
			to = []string{s}
		}
	}
	if len(to) == 0 {
		r.log.Warn().Str("rule", rule.Name).Msg("no staff member to notify: the member follows nobody and the rule names no staff")
		return nil
	}
	msg := bot.StaffMessage{ToUsers: to, Text: r.render(rule.Notify.Text, data)}
	return r.enqueue(bot.ActionStaffMessage, "notify|"+r.ref, m.ExternalUserID, msg, time.Time{}, time.Time{})
}

// replyLog is the recent auto-replies to one member, for the rate limit.
type replyLog struct {
	Entries []replyEntry `json:"entries"`
}

type replyEntry struct {
	At  time.Time `json:"at"`
	Ref string    `json:"ref"`
}

// allowReply applies keywords.rate_limit to scope ("kf|<member>" or
// "app|<staff>").
func (r *run) allowReply(scope string) (bool, error) {
	return r.allowRate(bucketRateLimit, scope, r.sc.Keywords.RateLimit)
}

// allowRate applies limit to scope, counting by event time. The log is
// stored in the transaction, so a restart doesn't reset it, and a replayed
// event (same ref) is allowed again without counting twice. A zero limit
// allows everything.
func (r *run) allowRate(bucket, scope string, limit scenarios.RateLimit) (bool, error) {
	if limit.Max <= 0 || limit.Per <= 0 {
		return true, nil
	}
	var lg replyLog
	if _, err := r.getJSON(bucket, scope, &lg); err != nil {
		return false, err
	}
	cutoff := r.at.Add(-limit.Per)
	kept := lg.Entries[:0]
	for _, e := range lg.Entries {
		if e.Ref == r.ref {
			return true, nil
		}
		if e.At.After(cutoff) {
			kept = append(kept, e)
		}
	}
	if len(kept) >= limit.Max {
		return false, nil
	}
	lg.Entries = append(kept, replyEntry{At: r.at, Ref: r.ref})
	return true, r.putJSON(bucket, scope, lg)
}

// kfMsgID derives kf/send_msg's msgid (≤ 32 chars of [0-9a-zA-Z_-]) from the
// action key, so WeCom drops a resend of the same message.
func kfMsgID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}
