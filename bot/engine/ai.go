package engine

import (
	"fmt"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/ai/guard"
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
const bucketAIRateLimit = "ai_ratelimit"

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

// aiHandoff: the AI sender gave up on a member after repeated failures.
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
	return nil
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
