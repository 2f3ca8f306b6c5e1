package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/ai/guard"
	"github.com/wecombot/wecombot/bot/ai/state"
	"github.com/wecombot/wecombot/scenarios"
)

// The AI reply feature: a message no command or keyword rule took is
// checked by the input guard here, inside the event's transaction
// (hand-off words and upset members go to a human, banned words get the
// fallback, prompt-injection attempts the refusal), rate limited per member,
// and otherwise owed an ai_reply action that the AI sender answers later,
// outside the callback. The action's key derives from the message, so a
// retried or replayed message is answered once.
//
// kv buckets:
//
//	ai_ratelimit  <scope> → recent model replies (replyLog), for ai.rate_limit
const bucketAIRateLimit = bot.BucketAIRateLimit

// aiOff answers the AI bot when the scenario has no ai section.
const aiOff = "AI 回复未开启：场景里没有 ai 段（persona、faq）。"

// aiFallback answers kf and app messages nothing else took.
func (r *run) aiFallback(ms *memberState, surface, text string) (bool, error) {
	a := r.sc.AI
	if a == nil || r.ev.Source == bot.SourceAI {
		// A tool call's stand-in message ("打卡") never asks the model again.
		return false, nil
	}
	text = guard.CapInput(text)
	if text == "" {
		return false, nil
	}
	p := bot.AIReply{Text: text, Ref: r.ref}
	switch surface {
	case scenarios.SurfaceKf:
		if ms == nil || r.ev.OpenKfID == "" {
			return false, nil
		}
		p.Surface, p.MemberID, p.OpenKfID = bot.AISurfaceKf, ms.m.ExternalUserID, r.ev.OpenKfID
	case scenarios.SurfaceApp:
		p.Surface, p.StaffID = bot.AISurfaceApp, r.ev.StaffID
	default:
		return false, nil
	}
	verdict := guard.CheckInput(a, text)
	if surface == scenarios.SurfaceApp && (verdict == guard.VerdictHandoff || verdict == guard.VerdictNegative) {
		// Staff asking the internal assistant for a human is just a question.
		verdict = guard.VerdictOK
	}
	r.log.Debug().Str("verdict", verdict.String()).Str("surface", surface).Msg("ai fallback")
	switch verdict {
	case guard.VerdictHandoff, guard.VerdictNegative:
		if err := r.handoff(ms, verdict.String()); err != nil {
			return true, err
		}
		if a.HandoffReply == nil || a.HandoffReply.Source() == "" {
			return true, nil
		}
		return true, r.aiFixed(&p, verdict, r.render(a.HandoffReply, r.sc.DataFor(ms.m)))
	case guard.VerdictBanned:
		return true, r.aiFixed(&p, verdict, guard.FallbackText(r.sc, r.aiData(ms, p.StaffID)))
	case guard.VerdictInjection:
		return true, r.aiFixed(&p, verdict, guard.RefusalText(r.sc, r.aiData(ms, p.StaffID)))
	}
	scope := "kf|" + p.MemberID
	if p.MemberID == "" {
		scope = "app|" + p.StaffID
	}
	allowed, err := r.allowAI(scope, a.RateLimit)
	if err != nil {
		return true, err
	}
	if !allowed {
		r.log.Info().Str("scope", scope).Msg("ai.rate_limit reached; not answering")
		return true, nil
	}
	return true, r.enqueue(bot.ActionAIReply, "ai|"+r.ref, p.MemberID, p, time.Time{}, time.Time{})
}

// aibotText answers an AI bot (智能机器人) @-mention: the callback opened a
// stream, the AI sender fills it.
func (r *run) aibotText() error {
	ev := r.ev
	// Commands first: a check-in keyword in an @-mention checks the staff member in.
	if done, err := r.messageCommands(nil, SurfaceAIBot, ev.Content); err != nil || done {
		return err
	}
	streamID := ev.Data["stream_id"]
	if streamID == "" {
		r.log.Warn().Msg("aibot message without a stream id; not answering")
		return nil
	}
	p := bot.AIReply{Surface: bot.AISurfaceAIBot, StaffID: ev.StaffID, ChatID: ev.ChatID, StreamID: streamID,
		ResponseURL: ev.Data["response_url"], Text: guard.CapInput(ev.Content), Ref: r.ref}
	a := r.sc.AI
	if a == nil {
		p.Answer = aiOff
		return r.enqueue(bot.ActionAIReply, "ai|"+r.ref, "", p, time.Time{}, time.Time{})
	}
	switch v := guard.CheckInput(a, p.Text); v {
	case guard.VerdictBanned:
		return r.aiFixed(&p, v, guard.FallbackText(r.sc, r.aiData(nil, p.StaffID)))
	case guard.VerdictInjection:
		return r.aiFixed(&p, v, guard.RefusalText(r.sc, r.aiData(nil, p.StaffID)))
	}
	allowed, err := r.allowAI("aibot|"+p.StaffID, a.RateLimit)
	if err != nil {
		return err
	}
	if !allowed {
		p.Verdict = "rate_limited"
		p.Answer = "消息有点多，稍后再问我吧～"
		return r.enqueue(bot.ActionAIReply, "ai|"+r.ref, "", p, time.Time{}, time.Time{})
	}
	return r.enqueue(bot.ActionAIReply, "ai|"+r.ref, "", p, time.Time{}, time.Time{})
}

// aiAnswer takes the AI sender's answer to one message and decides, in this
// event's transaction, everything that follows: the message is marked
// answered (a second answer to it, from a retried action, changes nothing),
// the exchange remembered, model failures counted toward
// ai.handoff_after_failures, the member handed to a human after too many
// failures or an unanswered question (ai.notify_unanswered), and the reply
// enqueued on the message's surface (or the AI bot stream stored).
func (r *run) aiAnswer() error {
	var ans bot.AIAnswer
	if err := json.Unmarshal([]byte(r.ev.Data[bot.AIAnswerKey]), &ans); err != nil || ans.Reply.Ref == "" {
		r.log.Warn().Err(err).Msg("ai.answer without a readable answer; nothing to deliver")
		return nil
	}
	p := &ans.Reply
	if done, err := state.Answered(r.tx, p.Ref); err != nil || done {
		return err
	}
	if err := state.MarkAnswered(r.tx, p.Ref, ans.Source); err != nil {
		return err
	}
	scope := state.Scope(p)
	if err := state.Remember(r.tx, scope, p.Ref, r.at, p.Text, ans.Text); err != nil {
		return err
	}
	handoff := ""
	if p.Answer == "" && r.sc.AI != nil {
		// Only model answers count: a fixed answer (refusal, fallback for a
		// banned word) says nothing about the model.
		tooMany, err := state.CountFailure(r.tx, scope, ans.Failed, r.sc.AI.HandoffAfterFailures)
		if err != nil {
			return err
		}
		switch {
		case tooMany:
			handoff = "model_failures"
		case ans.Unanswered && r.sc.AI.NotifyUnanswered:
			// The fallback promises a colleague will follow up: tell one.
			handoff = "unanswered"
		}
	}
	if err := r.deliverAIAnswer(&ans); err != nil {
		return err
	}
	if handoff == "" || p.MemberID == "" {
		return nil
	}
	ms, err := r.member(p.MemberID, false)
	if err != nil || ms == nil {
		return err
	}
	return r.handoff(ms, handoff)
}

// deliverAIAnswer enqueues the answer on its message's surface: kf/send_msg
// inside 微信客服's 48 h window, message/send to a staff member, or the AI bot
// stream (stored for WeCom's polls; past the poll window, response_url).
func (r *run) deliverAIAnswer(ans *bot.AIAnswer) error {
	p := &ans.Reply
	key := "aireply|" + p.Ref
	switch p.Surface {
	case bot.AISurfaceKf:
		msg := bot.KfMessage{OpenKfID: p.OpenKfID, ExternalUserID: p.MemberID, Text: ans.Text, MsgID: kfMsgID(key)}
		return r.enqueueFor(ans, bot.ActionKfMessage, key, p.MemberID, msg, ans.AskedAt.Add(KfReplyWindow))
	case bot.AISurfaceApp:
		msg := bot.StaffMessage{ToUsers: []string{p.StaffID}, Text: ans.Text}
		return r.enqueueFor(ans, bot.ActionStaffMessage, key, p.MemberID, msg, time.Time{})
	case bot.AISurfaceAIBot:
		if err := state.PutStream(r.tx, p.StreamID, state.StreamState{Content: ans.Text, Finished: true, Updated: r.at}); err != nil {
			return err
		}
		if p.ResponseURL == "" || r.at.Sub(ans.AskedAt) < state.StreamPollWindow {
			return nil
		}
		// WeCom has stopped polling the stream: answer through response_url
		// (usable once, for an hour after the message).
		resp := bot.AIBotResponse{URL: p.ResponseURL, Markdown: ans.Text}
		return r.enqueueFor(ans, bot.ActionAIBotResponse, "aibotresp|"+p.Ref, p.MemberID, resp, ans.AskedAt.Add(time.Hour))
	}
	r.log.Warn().Str("surface", p.Surface).Msg("ai.answer for an unknown surface; nothing delivered")
	return nil
}

// enqueueFor enqueues an AI answer's delivery, attributed to the inbound
// message's event (not the ai.answer event) like the reply it is.
func (r *run) enqueueFor(ans *bot.AIAnswer, kind bot.ActionKind, key, memberID string, payload any, notAfter time.Time) error {
	a, err := bot.NewAction(kind, key, payload)
	if err != nil {
		return err
	}
	a.MemberID, a.EventSeq, a.CreatedAt, a.DueAt, a.NotAfter = memberID, ans.EventSeq, r.now, r.now, notAfter
	if a.EventSeq == 0 {
		a.EventSeq = r.ev.Seq
	}
	return r.enqueueAction(a)
}

// aiHandoff hands a member to a human on an ai.handoff event (appended by
// older versions' AI sender after repeated failures).
func (r *run) aiHandoff() error {
	if r.ev.ExternalUserID == "" || r.sc.AI == nil {
		return nil
	}
	ms, err := r.member(r.ev.ExternalUserID, false)
	if err != nil || ms == nil {
		return err
	}
	return r.handoff(ms, r.ev.Data["reason"])
}

// handoff hands a member to a human: the hand-off tag and a staff
// notification (ai.handoff_staff, else the member's staff).
func (r *run) handoff(ms *memberState, reason string) error {
	a := r.sc.AI
	if ms == nil {
		return nil
	}
	r.addTag(ms, a.HandoffTag)
	data := r.sc.DataFor(ms.m)
	to := a.HandoffStaff
	if len(to) == 0 {
		if s := ms.m.PrimaryStaff(); s != "" {
			to = []string{s}
		}
	}
	if len(to) > 0 {
		why := map[string]string{"handoff": "请求人工服务", "negative": "情绪不满", "model_failures": "AI 多次未能回答",
			"unanswered": "问了 AI 答不上的问题"}[reason]
		if why == "" {
			why = reason
		}
		text := fmt.Sprintf("客户%s（来自%s，阶段：%s）%s，请尽快在企业微信回复。最近消息：%s",
			data.Name, orDash(data.Channel), orDash(data.StageName), why, guard.CapInput(r.ev.Content))
		if err := r.enqueue(bot.ActionStaffMessage, "handoff|"+r.ref, ms.m.ExternalUserID,
			bot.StaffMessage{ToUsers: to, Text: text}, time.Time{}, time.Time{}); err != nil {
			return err
		}
	} else {
		r.log.Warn().Msg("hand-off: no staff member to notify (set ai.handoff_staff)")
	}
	return r.kfHandoff(ms)
}

// aiFixed answers without the model because of the input guard's verdict
// (hand-off reply, refusal, fallback): the reply still goes through the AI
// sender, which delivers it on the message's surface, remembers it and
// counts the verdict.
func (r *run) aiFixed(p *bot.AIReply, v guard.Verdict, text string) error {
	p.Verdict = v.String()
	return r.aiDirect(p, text)
}

// aiDirect answers with text on the message's surface through the AI
// sender (e.g. a command's reply to an AI bot @-mention, whose stream only
// the AI sender fills).
func (r *run) aiDirect(p *bot.AIReply, text string) error {
	p.Answer = text
	return r.enqueue(bot.ActionAIReply, "ai|"+r.ref, p.MemberID, p, time.Time{}, time.Time{})
}

func (r *run) aiData(ms *memberState, staff string) scenarios.TemplateData {
	if ms != nil {
		return r.sc.DataFor(ms.m)
	}
	d := r.sc.DataFor(nil)
	d.Staff = staff
	return d
}

// allowAI applies ai.rate_limit to scope (see allowRate).
func (r *run) allowAI(scope string, limit scenarios.RateLimit) (bool, error) {
	return r.allowRate(bucketAIRateLimit, scope, limit)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
