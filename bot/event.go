// Package bot holds wecombot's domain: the events that come in, the members
// they are about, the actions that go out, and the interfaces the domain needs
// from storage and from senders. It imports neither HTTP, nor bbolt, nor WeCom;
// adapters (bot/wecom, bot/server, storage/bolt) import it.
package bot

import (
	"hash/fnv"
	"time"
)

// EventType is the normalized kind of an inbound event, independent of the
// transport it came on.
type EventType string

// Event types. WeCom callback events map onto these in bot/wecom; other
// sources (shop webhook, cron, operator, simulator) append them directly.
const (
	// EventContactAdd: a customer added a staff member (add_external_contact).
	EventContactAdd EventType = "contact.add"
	// EventContactAddHalf: added but not yet accepted (add_half_external_contact).
	EventContactAddHalf EventType = "contact.add_half"
	// EventContactEdit: staff edited the contact's remark/tags (edit_external_contact).
	EventContactEdit EventType = "contact.edit"
	// EventContactDel: staff deleted the customer (del_external_contact).
	EventContactDel EventType = "contact.del"
	// EventContactDelFollow: the customer deleted the staff member (del_follow_user).
	EventContactDelFollow EventType = "contact.del_follow"
	// EventContactTransferFail: a customer transfer between staff failed (transfer_fail).
	EventContactTransferFail EventType = "contact.transfer_fail"

	// EventGroupCreate / Update / Dismiss: customer group (客户群) changes (change_external_chat).
	EventGroupCreate  EventType = "group.create"
	EventGroupUpdate  EventType = "group.update"
	EventGroupDismiss EventType = "group.dismiss"

	// EventTagChange: a corp tag or tag group changed in the admin console (change_external_tag).
	EventTagChange EventType = "tag.change"

	// EventAppText: an internal staff member sent text to the self-built app.
	EventAppText EventType = "app.text"
	// EventAppEnter: a staff member opened the app (enter_agent).
	EventAppEnter EventType = "app.enter"
	// EventAppClick: a staff member tapped an app menu item (click).
	EventAppClick EventType = "app.click"

	// EventKfNotify: 微信客服 says there are messages to pull with kf/sync_msg (kf_msg_or_event).
	EventKfNotify EventType = "kf.notify"
	// EventKfText: one text message from a WeChat user in 微信客服, pulled by sync_msg.
	EventKfText EventType = "kf.text"
	// EventKfEnter: a WeChat user opened a 微信客服 chat (enter_session);
	// Data: scene, scene_param, welcome_code (usable once, 20 s).
	EventKfEnter EventType = "kf.enter"
	// EventKfSendFail: WeCom could not deliver a kf message (msg_send_fail);
	// Data: fail_msgid, fail_type.
	EventKfSendFail EventType = "kf.send_fail"
	// EventKfSession: the kf session changed hands (session_status_change);
	// Data: change_type (1 taken from the queue, 2 transferred, 3 ended, 4
	// reopened), new_servicer, old_servicer.
	EventKfSession EventType = "kf.session"

	// EventUnknown: a well-formed callback of a kind wecombot does not act on; kept for audit.
	EventUnknown EventType = "unknown"
)

// Sources of events.
const (
	SourceWeCom    = "wecom"
	SourceKf       = "kf"
	SourceShop     = "shop"
	SourceCron     = "cron"
	SourceOperator = "operator"
	SourceSim      = "sim"
	SourceSystem   = "system"
)

// Group update details (UpdateDetail on change_external_chat/update).
const (
	GroupAddMember    = "add_member"
	GroupDelMember    = "del_member"
	GroupChangeOwner  = "change_owner"
	GroupChangeName   = "change_name"
	GroupChangeNotice = "change_notice"
)

// Event is one input to the engine, as stored in the durable event log.
// Only the fields that matter to its Type are set.
type Event struct {
	// Seq is the event's position in the log, assigned on append.
	Seq uint64 `json:"seq,omitempty"`
	// Type is the normalized event kind.
	Type EventType `json:"type"`
	// Source says where the event came from (SourceWeCom, SourceShop, ...).
	Source string `json:"source"`
	// DedupeKey identifies retries of the same event; empty means never deduplicated.
	DedupeKey string `json:"dedupe_key,omitempty"`
	// At is when the event happened (WeCom's CreateTime), ReceivedAt when we stored it.
	At         time.Time `json:"at"`
	ReceivedAt time.Time `json:"received_at"`

	// WeComEvent and ChangeType are the raw WeCom names (Event, ChangeType), kept for audit.
	WeComEvent string `json:"wecom_event,omitempty"`
	ChangeType string `json:"change_type,omitempty"`

	// StaffID is the internal member (UserID) involved; for app messages the sender.
	StaffID string `json:"staff_id,omitempty"`
	// ExternalUserID is the customer (external_userid); for kf, the WeChat user's external_userid.
	ExternalUserID string `json:"external_user_id,omitempty"`
	// State is the "contact me" (联系我) code's state: the channel.
	State string `json:"state,omitempty"`
	// WelcomeCode may be used once, within 20 s, for send_welcome_msg.
	WelcomeCode string `json:"welcome_code,omitempty"`
	// Source of a deletion (del_external_contact Source), failure reason for transfer_fail.
	FailReason string `json:"fail_reason,omitempty"`

	// Customer group fields (change_external_chat).
	ChatID        string   `json:"chat_id,omitempty"`
	UpdateDetail  string   `json:"update_detail,omitempty"`
	JoinScene     int      `json:"join_scene,omitempty"`
	QuitScene     int      `json:"quit_scene,omitempty"`
	MemChangeCnt  int      `json:"mem_change_cnt,omitempty"`
	MemChangeList []string `json:"mem_change_list,omitempty"`
	LastMemVer    string   `json:"last_mem_ver,omitempty"`
	CurMemVer     string   `json:"cur_mem_ver,omitempty"`

	// Tag change fields (change_external_tag): Id, TagType (tag|tag_group), StrategyId.
	TagID      string `json:"tag_id,omitempty"`
	TagType    string `json:"tag_type,omitempty"`
	StrategyID string `json:"strategy_id,omitempty"`

	// Message fields: text Content and its MsgId (app text, kf text).
	Content string `json:"content,omitempty"`
	MsgID   string `json:"msg_id,omitempty"`
	// AgentID is the app that received the callback.
	AgentID string `json:"agent_id,omitempty"`
	// EventKey is a menu click's key.
	EventKey string `json:"event_key,omitempty"`

	// KfToken (for sync_msg) and OpenKfID identify a 微信客服 account and pull.
	KfToken  string `json:"kf_token,omitempty"`
	OpenKfID string `json:"open_kfid,omitempty"`

	// Data carries source-specific fields (orders, operator actions, ticks).
	Data map[string]string `json:"data,omitempty"`

	// Raw is the decrypted payload as received, for audit and replay.
	Raw string `json:"raw,omitempty"`
}

// MemberID returns the member (customer) the event is about, or "".
func (e *Event) MemberID() string { return e.ExternalUserID }

// ShardKey is what orders the event against others: its member, else its
// customer group, else nothing (events with an empty key need no order).
// Events with the same key are applied one at a time, in sequence order,
// by one worker (and, with several nodes, by one node).
func (e *Event) ShardKey() string {
	if e.ExternalUserID != "" {
		return e.ExternalUserID
	}
	return e.ChatID
}

// ShardHash spreads shard keys over workers and partitions (FNV-1a).
func ShardHash(key string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return h.Sum32()
}

// Clock returns the current time; inject a fake one in tests and simulate.
type Clock func() time.Time
