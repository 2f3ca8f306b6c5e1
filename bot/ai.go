package bot

import (
	"context"
	"time"
)

// AI replies and 微信客服 pulls are outbox actions too: the engine decides
// that a message deserves a model answer (or that 微信客服 has messages to
// pull) inside the event's transaction, and a sender with store access does
// the slow part later, outside the 5 s callback.

// Action kinds for AI replies and 微信客服 pulls.
const (
	// ActionAIReply asks the AI sender to answer one inbound message (payload AIReply).
	ActionAIReply ActionKind = "ai_reply"
	// ActionKfSync asks the 微信客服 puller to run kf/sync_msg (payload KfSync).
	ActionKfSync ActionKind = "kf_sync"
	// ActionAIBotResponse posts an AI bot answer to the message's one-use
	// response_url, when WeCom stopped polling the stream before it finished
	// (payload AIBotResponse).
	ActionAIBotResponse ActionKind = "aibot_response"
)

// Event types of the AI features.
const (
	// EventAIBotText: a staff member @-mentioned the AI bot (智能机器人) in an
	// internal group or wrote to it 1:1 (/wecom/aibot).
	EventAIBotText EventType = "aibot.text"
	// EventAIAnswer: the AI sender produced the answer to one ai_reply
	// (Data[AIAnswerKey] holds an AIAnswer). The engine decides, inside this
	// event's transaction, the reply, memory, failure count and hand-off.
	EventAIAnswer EventType = "ai.answer"
	// EventAIHandoff: hand a member to a human. Older versions' AI sender
	// appended it after repeated model failures; the engine now hands off
	// inside the ai.answer event, and still handles ones in the log.
	EventAIHandoff EventType = "ai.handoff"
)

// AIAnswerKey is the EventAIAnswer Data key of the JSON-encoded AIAnswer.
const AIAnswerKey = "answer"

// AIAnswer is what the AI sender hands back to the engine for one message.
type AIAnswer struct {
	// Reply is the ai_reply action's payload (the message and its surface).
	Reply AIReply `json:"reply"`
	// Text is the answer to deliver; Source how it was made (model,
	// offline, fallback, fixed).
	Text   string `json:"text"`
	Source string `json:"source"`
	// Failed: the model failed and Text comes without it (counts toward
	// ai.handoff_after_failures).
	Failed bool `json:"failed,omitempty"`
	// Unanswered: Text is the fallback ("a colleague will follow up"), so
	// ai.notify_unanswered tells a human.
	Unanswered bool `json:"unanswered,omitempty"`
	// AskedAt is when the ai_reply was enqueued: 微信客服's 48 h reply window
	// and the AI bot's stream poll window count from it.
	AskedAt time.Time `json:"asked_at"`
	// EventSeq is the inbound message's event (the reply action's EventSeq).
	EventSeq uint64 `json:"event_seq,omitempty"`
}

// SourceAIBot marks events from the AI bot callback; SourceAI events the AI sender appends.
const (
	SourceAIBot = "aibot"
	SourceAI    = "ai"
)

// Surfaces an AI reply goes back on.
const (
	// AISurfaceKf answers through kf/send_msg.
	AISurfaceKf = "kf"
	// AISurfaceApp answers a staff member through message/send.
	AISurfaceApp = "app"
	// AISurfaceAIBot answers an AI bot @-mention through the stream the
	// callback opened (and response_url when the stream was abandoned).
	AISurfaceAIBot = "aibot"
)

// AIReply is the payload of ActionAIReply: one message to answer.
type AIReply struct {
	// Surface is AISurfaceKf, AISurfaceApp or AISurfaceAIBot.
	Surface string `json:"surface"`
	// MemberID is the customer (kf); empty for staff surfaces.
	MemberID string `json:"member_id,omitempty"`
	// StaffID is the staff member (app, aibot).
	StaffID string `json:"staff_id,omitempty"`
	// OpenKfID is the 微信客服 account (kf).
	OpenKfID string `json:"open_kfid,omitempty"`
	// StreamID is the AI bot stream to fill (aibot); ResponseURL its one-use follow-up URL.
	StreamID    string `json:"stream_id,omitempty"`
	ResponseURL string `json:"response_url,omitempty"`
	// ChatID is the AI bot's group chat, empty for 1:1.
	ChatID string `json:"chat_id,omitempty"`
	// Text is the member's message (already trimmed and capped by the engine).
	Text string `json:"text"`
	// Answer, when set, is the reply the engine already chose (a refusal, the
	// fallback): the sender delivers it without asking the model.
	Answer string `json:"answer,omitempty"`
	// Verdict is why the engine chose Answer (handoff, negative, banned,
	// injection, rate_limited), for metrics.
	Verdict string `json:"verdict,omitempty"`
	// Ref identifies the inbound message (the event's dedupe key or seq):
	// replies, memory turns and follow-up actions derive their keys from it.
	Ref string `json:"ref"`
}

// AIBotResponse is the payload of ActionAIBotResponse.
type AIBotResponse struct {
	URL      string `json:"url"`
	Markdown string `json:"markdown"`
}

// KfSync is the payload of ActionKfSync: pull 微信客服 messages of one account.
type KfSync struct {
	OpenKfID string `json:"open_kfid"`
	// Token is the kf_msg_or_event callback's token (valid 10 minutes); it
	// raises sync_msg's rate limit and may be empty.
	Token string `json:"token,omitempty"`
}

// SenderMux routes actions to senders by kind: ai_reply to the AI sender,
// kf_sync to the 微信客服 puller, everything else to Default (the WeCom
// client or the sandbox).
type SenderMux struct {
	Routes  map[ActionKind]Sender
	Default Sender
}

// Send delivers a through the sender for its kind.
func (m *SenderMux) Send(ctx context.Context, a *Action) (SendResult, bool, error) {
	return m.pick(a).Send(ctx, a)
}

func (m *SenderMux) pick(a *Action) Sender {
	if s, ok := m.Routes[a.Kind]; ok && s != nil {
		return s
	}
	return m.Default
}

// HoldUntil asks the sender for a's kind whether its throttle holds the API
// a needs (the pipeline's Holder); zero when it has no throttle.
func (m *SenderMux) HoldUntil(a *Action) time.Time { return HoldUntilOf(m.pick(a), a) }

// SendLimit asks the sender for a's kind about its API's concurrency (the
// pipeline's Limiter).
func (m *SenderMux) SendLimit(a *Action) (string, int) { return SendLimitOf(m.pick(a), a) }

// Held lists the APIs the default sender's throttle holds (status, health).
func (m *SenderMux) Held() map[string]time.Time {
	if h, ok := m.Default.(interface{ Held() map[string]time.Time }); ok {
		return h.Held()
	}
	return nil
}
