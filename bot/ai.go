package bot

import "context"

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
	// EventAIHandoff: the AI sender gave up on a member (repeated model
	// failures) and asks the engine to hand the conversation to a human.
	EventAIHandoff EventType = "ai.handoff"
)

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
	if s, ok := m.Routes[a.Kind]; ok && s != nil {
		return s.Send(ctx, a)
	}
	return m.Default.Send(ctx, a)
}
