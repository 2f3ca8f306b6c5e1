package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ActionKind names an outbound operation; a Sender knows how to deliver each.
type ActionKind string

// Action kinds.
const (
	// ActionWelcome: externalcontact/send_welcome_msg with a one-time welcome code.
	ActionWelcome ActionKind = "welcome"
	// ActionMarkTag: externalcontact/mark_tag, tags given by name (resolved, created if missing).
	ActionMarkTag ActionKind = "mark_tag"
	// ActionMassSend: externalcontact/add_msg_template (staff confirm it in the client).
	ActionMassSend ActionKind = "mass_send"
	// ActionGroupWelcome: externalcontact/group_welcome_template add/edit.
	ActionGroupWelcome ActionKind = "group_welcome"
	// ActionStaffMessage: message/send to internal staff.
	ActionStaffMessage ActionKind = "staff_message"
	// ActionKfMessage: kf/send_msg to a WeChat user in 微信客服.
	ActionKfMessage ActionKind = "kf_message"
	// ActionRobot: a group robot webhook message.
	ActionRobot ActionKind = "robot"
	// ActionContactWay: externalcontact/add_contact_way, a "contact me" QR
	// code whose state comes back on add_external_contact (channels,
	// personal invite codes). Its result (config_id, qr_code) returns to the
	// engine as an EventActionResult.
	ActionContactWay ActionKind = "contact_way"
	// ActionTagRefresh: reload the corp tag library (get_corp_tag_list)
	// after change_external_tag said tags changed in the admin console.
	ActionTagRefresh ActionKind = "tag_refresh"
	// ActionKfEventMessage: kf/send_msg_on_event with an event's code (the
	// enter_session welcome_code: once, within 20 s).
	ActionKfEventMessage ActionKind = "kf_event_message"
	// ActionKfTransfer: kf/service_state/trans (hand the session to a person).
	ActionKfTransfer ActionKind = "kf_transfer"
	// ActionTimer: nothing goes out. When it is due, the pipeline appends
	// its payload's Data as an EventActionResult, so the engine continues
	// work at a later time (a mass-send batch's window closes).
	ActionTimer ActionKind = "timer"
	// ActionMassResult: read a mass-send task's results back from WeCom
	// (get_groupmsg_task, get_groupmsg_send_result; remind_groupmsg_send
	// first when the payload asks). Its result carries one page of
	// per-customer statuses.
	ActionMassResult ActionKind = "mass_result"
	// ActionContactProfile: externalcontact/get; the profile (name, gender,
	// unionid, each follow user's tags and state) returns as an action result.
	ActionContactProfile ActionKind = "contact_profile"
)

// ActionPurpose says why the engine owes an action, for the checks the
// outbox makes before delivering it. Most actions need none ("").
type ActionPurpose string

// Action purposes.
const (
	// PurposeFollowUp: a scheduled follow-up to a new contact; the outbox
	// cancels it if the member has since deleted the staff member.
	PurposeFollowUp ActionPurpose = "followup"
)

// Action statuses in the outbox.
const (
	ActionPending = "pending"
	ActionSent    = "sent"
	ActionFailed  = "failed"
	// ActionUnknown: an attempt went out whose answer never came back (a
	// crash mid-send, a timeout), for a kind that must not be sent twice
	// (staff messages, robot messages, mass sends): it may or may not have
	// been delivered, and is not resent on its own. The console shows it;
	// an operator who checked can retry it (POST /api/v1/outbox/{id}/retry).
	ActionUnknown = "possibly_delivered"
	// ActionSkipped is an action never attempted because WeCom would refuse
	// it (outside the 微信客服 window, over its message budget, a person
	// holds the session); LastError says why.
	ActionSkipped = "skipped"
	// ActionBatched is a per-customer mass send the engine put in a batch
	// (bot/engine massbatch.go): it is never sent alone; its batch's one
	// add_msg_template task carries it, and what WeCom did with it (Result)
	// is written back onto it (Tx.SetActionResult) as results arrive.
	ActionBatched = "batched"
)

// Per-customer results of a batched mass send (Action.Result), as WeCom
// reports them (get_groupmsg_send_result) or as the engine concluded.
const (
	// MassWaiting: in a task that waits for the staff member to confirm it
	// in the 企业微信 client.
	MassWaiting = "waiting_confirm"
	// MassDelivered: the staff member confirmed; she received it (status 1).
	MassDelivered = "delivered"
	// MassNotConfirmed: the staff member did not confirm the task in time.
	MassNotConfirmed = "not_confirmed"
	// MassOverQuota: WeCom refused her: she already had her mass messages
	// of the natural month (status 3, or fail_list).
	MassOverQuota = "over_quota"
	// MassNotFriend: she is no longer the staff member's contact (status 2).
	MassNotFriend = "not_friend"
	// MassLeftOut: the staff member confirmed the task without her.
	MassLeftOut = "left_out"
	// MassCanceled: dropped before the task was created (she deleted the
	// staff member since it was queued).
	MassCanceled = "canceled"
	// MassTaskFailed: the task itself failed; MassTaskUnknown: its outcome
	// is unknown (a crash mid-send; an operator checks and may retry it).
	MassTaskFailed  = "task_failed"
	MassTaskUnknown = "task_unknown"
	// KfUndelivered: a 微信客服 message WeCom accepted but then reported
	// undelivered (msg_send_fail).
	KfUndelivered = "undelivered"
)

// ErrOutcomeUnknown is wrapped by a Sender's error when the request may have
// reached WeCom although no answer came back (a timeout, a connection cut
// after the request was written): the action is possibly delivered.
var ErrOutcomeUnknown = errors.New("outcome unknown: the request may have been delivered")

// ResendSafe reports whether an action of kind k may be sent again after an
// attempt whose outcome is unknown without reaching anyone twice: tags are
// idempotent; a welcome code is usable once (WeCom refuses the repeat with
// 41051, which then means delivered); a kf message carries its msgid (WeCom
// refuses a reused one); kf pulls and AI replies record their progress;
// contact ways and group welcome templates create configuration, not
// messages. Staff messages, robot messages and mass sends have no such
// guard: they become ActionUnknown instead.
func (k ActionKind) ResendSafe() bool {
	switch k {
	case ActionStaffMessage, ActionRobot, ActionMassSend:
		return false
	}
	return true
}

// ReadOnly reports whether an action of kind k only reads from WeCom
// (externalcontact/get, groupchat/get, get_corp_tag_list, transfer_result,
// kf/sync_msg from the stored cursor): it reaches no one and creates
// nothing, so reading again after a crash mid-call is harmless. The outbox
// records no attempt before such a call, only its outcome. (mass_result is
// not one: it may remind the staff member first.)
func (k ActionKind) ReadOnly() bool {
	switch k {
	case ActionContactProfile, ActionGroupDetail, ActionTagRefresh, ActionTransferPoll, ActionKfSync:
		return true
	}
	return false
}

// Action is one owed outbound operation, stored in the outbox until delivered.
type Action struct {
	// ID is the outbox sequence, assigned on enqueue.
	ID uint64 `json:"id,omitempty"`
	// Key makes enqueueing idempotent: a second action with the same key is dropped.
	Key  string     `json:"key"`
	Kind ActionKind `json:"kind"`
	// Purpose says why it is owed, when the outbox checks that before sending.
	Purpose ActionPurpose `json:"purpose,omitempty"`
	// MemberID is the customer the action is for, when there is one.
	MemberID string `json:"member_id,omitempty"`
	// EventSeq is the event that caused the action.
	EventSeq uint64 `json:"event_seq,omitempty"`
	// DueAt is the earliest time to send; zero means now.
	DueAt time.Time `json:"due_at"`
	// NotAfter, when set, is the last moment sending makes sense (a welcome code's 20 s).
	NotAfter  time.Time `json:"not_after,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	SentAt    time.Time `json:"sent_at,omitzero"`
	// Detail is what the sender reported on delivery (a msgid, a template
	// id), or what became of a batched mass send.
	Detail string `json:"detail,omitempty"`
	// Result and ResultAt are what WeCom did with a batched mass send
	// (MassWaiting, MassDelivered, ...) and when the engine learnt it.
	Result   string    `json:"result,omitempty"`
	ResultAt time.Time `json:"result_at,omitzero"`
	// AttemptAt is set (durably, by Outbox.BeginAttempt) before each send and
	// cleared when its outcome is recorded: found set on a pending action
	// nobody is sending, it is an attempt whose outcome is unknown (the
	// process died mid-send).
	AttemptAt time.Time `json:"attempt_at,omitzero"`
	// PossiblyDelivered is set once any attempt's outcome was unknown; a
	// Sender then reads WeCom's refusal of a repeat (a used welcome code, a
	// reused kf msgid) as delivered.
	PossiblyDelivered bool `json:"possibly_delivered,omitempty"`
	// Payload is the kind's message (WelcomeMessage, MarkTag, ...), as JSON.
	Payload json.RawMessage `json:"payload"`
}

// NewAction builds an action with payload encoded as JSON.
func NewAction(kind ActionKind, key string, payload any) (*Action, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", kind, err)
	}
	return &Action{Kind: kind, Key: key, Payload: raw, Status: ActionPending}, nil
}

// RecordSent, RecordRetry and RecordFailed apply a delivery outcome to the
// action's fields: the one definition every outbox backend stores.
func (a *Action) RecordSent(at time.Time, detail string) {
	a.Status, a.SentAt, a.Attempts, a.LastError = ActionSent, at, a.Attempts+1, ""
	a.Detail = detail
	a.AttemptAt = time.Time{}
}

// RecordRetry: a failed attempt, to be tried again at next.
func (a *Action) RecordRetry(next time.Time, errMsg string) {
	a.AttemptAt = time.Time{}
	a.Attempts++
	a.LastError = errMsg
	a.DueAt = next
}

// RecordAttempt: an attempt starts at at. An attempt still open from before
// (never answered: the process died) makes the action possibly delivered.
func (a *Action) RecordAttempt(at time.Time) {
	if !a.AttemptAt.IsZero() {
		a.PossiblyDelivered = true
	}
	a.AttemptAt = at
}

// RecordUnknown: an attempt's outcome is unknown. With next set the action
// stays pending, due then (a resend-safe kind); with next zero it becomes
// ActionUnknown.
func (a *Action) RecordUnknown(next time.Time, errMsg string) {
	a.Attempts++
	a.LastError = errMsg
	a.PossiblyDelivered = true
	a.AttemptAt = time.Time{}
	if next.IsZero() {
		a.Status = ActionUnknown
		return
	}
	a.DueAt = next
}

// RecordFailed: the action is given up on (dead letter).
func (a *Action) RecordFailed(errMsg string) {
	a.AttemptAt = time.Time{}
	a.Status, a.Attempts, a.LastError = ActionFailed, a.Attempts+1, errMsg
}

// Decode unmarshals the payload into v.
func (a *Action) Decode(v any) error {
	if err := json.Unmarshal(a.Payload, v); err != nil {
		return fmt.Errorf("decode %s payload of action %d: %w", a.Kind, a.ID, err)
	}
	return nil
}

// Attachment is a message attachment (welcome message, mass send, kf).
type Attachment struct {
	// Type is image, link, miniprogram, video or file.
	Type string `json:"type"`
	// Link fields.
	Title  string `json:"title,omitempty"`
	URL    string `json:"url,omitempty"`
	PicURL string `json:"pic_url,omitempty"`
	Desc   string `json:"desc,omitempty"`
	// MediaID for image/video/file (uploaded media) or the mini-program's cover.
	MediaID string `json:"media_id,omitempty"`
	// Mini-program fields.
	AppID string `json:"appid,omitempty"`
	Page  string `json:"page,omitempty"`
	// Media, when set, names the file or URL the scenario attaches; the
	// media library (bot/media) uploads it and fills MediaID or PicURL
	// before the action reaches WeCom.
	Media *MediaRef `json:"media,omitempty"`
}

// MediaRef is media a scenario names by file or URL instead of a media_id.
type MediaRef struct {
	// Source is the file as the scenario resolved it (a path, or
	// "embedded:…" inside the binary) or an https URL.
	Source string `json:"source"`
	// Name is the file name WeCom shows (files) and uploads under.
	Name string `json:"name"`
	// Kind is the WeCom media type: image, video or file.
	Kind string `json:"kind"`
	// Permanent asks for media/uploadimg (a permanent pic_url) instead of a
	// media/upload media_id that expires after 3 days; used for images
	// attached as pictures (JPG/PNG up to 2 MB).
	Permanent bool `json:"permanent,omitempty"`
	// SHA256 is the content's hash when the scenario was loaded (files).
	SHA256 string `json:"sha256,omitempty"`
	// URL reports whether Source is a URL to fetch.
	URL bool `json:"url,omitempty"`
	// Poster, when set, is a member's 任务宝 poster: the media library
	// renders it (Source names it: "poster:<member>") instead of reading a file.
	Poster *PosterRef `json:"poster,omitempty"`
}

// PosterRef is what a member's poster shows besides the scenario's
// background and layout: her name and her contact-me code's picture URL
// (qr_code from add_contact_way).
type PosterRef struct {
	Member string `json:"member"`
	Name   string `json:"name"`
	QRCode string `json:"qr_code"`
}

// WelcomeMessage is the payload of ActionWelcome.
type WelcomeMessage struct {
	WelcomeCode string       `json:"welcome_code"`
	StaffID     string       `json:"staff_id,omitempty"`
	Text        string       `json:"text"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// MarkTag is the payload of ActionMarkTag: tags by corp tag name.
type MarkTag struct {
	StaffID        string   `json:"staff_id"`
	ExternalUserID string   `json:"external_user_id"`
	Add            []string `json:"add,omitempty"`
	Remove         []string `json:"remove,omitempty"`
	// Group is the corp tag group new tags are created in when TagGroups
	// does not name one.
	Group string `json:"group,omitempty"`
	// TagGroups maps tag name → the corp tag group (标签组) the scenario
	// declares it in; missing tags are created there.
	TagGroups map[string]string `json:"tag_groups,omitempty"`
}

// MergeMarkTags folds mark_tag payloads of one relation (staff, member),
// oldest first, into the one call that leaves the customer's tags as the
// calls in turn would: a tag added then removed is removed, and the other
// way round; TagGroups are united (later wins), Group is the last one set.
func MergeMarkTags(ps []MarkTag) MarkTag {
	if len(ps) == 0 {
		return MarkTag{}
	}
	out := MarkTag{StaffID: ps[0].StaffID, ExternalUserID: ps[0].ExternalUserID}
	put := func(list *[]string, t string) {
		if !slices.Contains(*list, t) {
			*list = append(*list, t)
		}
	}
	drop := func(list *[]string, t string) {
		*list = slices.DeleteFunc(*list, func(x string) bool { return x == t })
	}
	for _, p := range ps {
		for _, t := range p.Add {
			drop(&out.Remove, t)
			put(&out.Add, t)
		}
		for _, t := range p.Remove {
			drop(&out.Add, t)
			put(&out.Remove, t)
		}
		if p.Group != "" {
			out.Group = p.Group
		}
		for t, g := range p.TagGroups {
			if out.TagGroups == nil {
				out.TagGroups = map[string]string{}
			}
			out.TagGroups[t] = g
		}
	}
	return out
}

// MassSend is the payload of ActionMassSend (add_msg_template).
type MassSend struct {
	// ChatType is "single" (to customers) or "group" (to customer groups).
	ChatType        string       `json:"chat_type"`
	Sender          string       `json:"sender,omitempty"`
	ExternalUserIDs []string     `json:"external_user_ids,omitempty"`
	ChatIDs         []string     `json:"chat_ids,omitempty"`
	Text            string       `json:"text"`
	Attachments     []Attachment `json:"attachments,omitempty"`
	// Batch is set on a batch's task (the engine built it from the batched
	// per-customer mass sends): its results return to that batch.
	Batch string `json:"batch,omitempty"`
}

// MassResult is the payload of ActionMassResult.
type MassResult struct {
	Batch  string `json:"batch"`
	MsgID  string `json:"msgid"`
	Sender string `json:"sender"`
	// Cursor pages get_groupmsg_send_result; Round counts the polls.
	Cursor string `json:"cursor,omitempty"`
	Round  int    `json:"round"`
	// Remind asks WeCom to remind the staff member first (remind_groupmsg_send).
	Remind bool `json:"remind,omitempty"`
	// Stop (the confirmation deadline's poll) stops a task still not sent
	// (cancel_groupmsg_send), so a late confirmation can't send a stale
	// message the timeline already calls not confirmed.
	Stop bool `json:"stop,omitempty"`
}

// Timer is the payload of ActionTimer: Data comes back in its result event.
type Timer struct {
	Data map[string]string `json:"data"`
}

// Data keys of a mass-send task's and poll's results.
const (
	// DataBatch names the batch; DataMsgID the task WeCom created.
	DataBatch = "batch"
	DataMsgID = "msgid"
	// DataFailList is add_msg_template's fail_list (comma-separated).
	DataFailList = "fail_list"
	// DataTaskStatus is the staff member's task status (0 not sent, 2 sent)
	// and DataSendTime when it was sent (unix seconds).
	DataTaskStatus = "task_status"
	DataSendTime   = "send_time"
	// DataSendResults is one page of get_groupmsg_send_result:
	// "external_userid-or-chat_id:status" joined by commas.
	DataSendResults = "send_results"
	DataNextCursor  = "next_cursor"
	DataRound       = "round"
	// DataReminded is "1" when remind_groupmsg_send went out, else its
	// error; DataStopped likewise for cancel_groupmsg_send.
	DataReminded = "reminded"
	DataStopped  = "stopped"
	// DataOutcome is "failed" or "unknown" on the result event the pipeline
	// appends when a mass send failed for good or its outcome is unknown
	// (DataError says why).
	DataOutcome = "outcome"
	DataError   = "error"
	// DataDue is when the action was due (RFC 3339), on the outcome of an
	// outreach kf message or staff task.
	DataDue = "due"
)

// MaxMassCustomers and MaxMassGroups are add_msg_template's limits on
// external_userid and chat_id_list per task.
const (
	MaxMassCustomers = 10000
	MaxMassGroups    = 2000
)

// GroupWelcome is the payload of ActionGroupWelcome: the join greeting template.
type GroupWelcome struct {
	// TemplateID, when set, edits that template; otherwise one is added.
	TemplateID  string       `json:"template_id,omitempty"`
	Name        string       `json:"name"`
	Text        string       `json:"text"`
	Attachments []Attachment `json:"attachments,omitempty"`
	// Notify tells WeCom whether to notify the group owners when the
	// template is added (nil: WeCom's default, notify).
	Notify *bool `json:"notify,omitempty"`
}

// StaffMessage is the payload of ActionStaffMessage (message/send to staff).
type StaffMessage struct {
	ToUsers []string `json:"to_users"`
	Text    string   `json:"text"`
}

// KfMessage is the payload of ActionKfMessage (kf/send_msg).
type KfMessage struct {
	OpenKfID       string `json:"open_kfid"`
	ExternalUserID string `json:"external_user_id"`
	Text           string `json:"text,omitempty"`
	// Image, when set, makes the message a picture (msgtype image) instead
	// of Text; the media library resolves its Media to a media_id.
	Image *Attachment `json:"image,omitempty"`
	// MsgID lets WeCom drop a resend of the same message.
	MsgID string `json:"msg_id,omitempty"`
}

// RobotMessage is the payload of ActionRobot (group robot webhook).
type RobotMessage struct {
	// Robot is the webhook key's name in config, not the key itself.
	Robot    string `json:"robot"`
	Text     string `json:"text,omitempty"`
	Markdown string `json:"markdown,omitempty"`
}

// ContactWay is the payload of ActionContactWay.
type ContactWay struct {
	// State (≤ 30 chars) names the channel or the referrer.
	State string `json:"state"`
	// Staff receive the customers who scan it (one: single, more: multi-person code).
	Staff []string `json:"staff"`
	// Remark is shown in the admin console (≤ 30 chars).
	Remark string `json:"remark,omitempty"`
	// Verify asks staff to approve each add (WeCom's skip_verify=false).
	Verify bool `json:"verify,omitempty"`
}

// KfEventMessage is the payload of ActionKfEventMessage.
type KfEventMessage struct {
	OpenKfID       string `json:"open_kfid"`
	ExternalUserID string `json:"external_user_id"`
	Code           string `json:"code"`
	Text           string `json:"text"`
	MsgID          string `json:"msg_id,omitempty"`
}

// KfTransfer is the payload of ActionKfTransfer.
type KfTransfer struct {
	OpenKfID       string `json:"open_kfid"`
	ExternalUserID string `json:"external_user_id"`
	// State is the target service_state: 2 the queue, 3 a person (Servicer).
	State    int    `json:"state"`
	Servicer string `json:"servicer,omitempty"`
}

// ContactProfile is the payload of ActionContactProfile.
type ContactProfile struct {
	ExternalUserID string `json:"external_user_id"`
}

// ContactProfileData is what externalcontact/get tells about a customer (the
// "profile" key of the action result, as JSON).
type ContactProfileData struct {
	ExternalUserID string                 `json:"external_user_id"`
	Name           string                 `json:"name,omitempty"`
	Gender         int                    `json:"gender,omitempty"` // 1 male, 2 female
	UnionID        string                 `json:"unionid,omitempty"`
	Follows        []ContactProfileFollow `json:"follows,omitempty"`
}

// ContactProfileFollow is one staff member's view of the customer.
type ContactProfileFollow struct {
	StaffID string   `json:"staff_id"`
	State   string   `json:"state,omitempty"`
	Remark  string   `json:"remark,omitempty"`
	Tags    []string `json:"tags,omitempty"` // corp tag names (type 1)
}

// TagRefresh is the payload of ActionTagRefresh.
type TagRefresh struct {
	// ID and Type name what changed (a tag or tag_group id), for the record.
	ID   string `json:"id,omitempty"`
	Type string `json:"type,omitempty"`
	// ChangeType is create, update, delete or shuffle.
	ChangeType string `json:"change_type,omitempty"`
}

// SendResult is what a Sender learned from a successful delivery.
type SendResult struct {
	// Detail is a short, secret-free note for the outbox record (e.g. a msgid).
	Detail string
	// Inferred is set when delivery was inferred, not seen: WeCom refused
	// the repeat of a possibly delivered action (41051 for a welcome code).
	Inferred bool
	// Data, when set, is what WeCom created (a template_id, a contact way's
	// config_id and qr_code): the pipeline appends it to the event log as an
	// EventActionResult so the engine can store it.
	Data map[string]string
}

// Data keys of EventActionResult, besides the sender's own.
const (
	ResultKind   = "action_kind"
	ResultKey    = "action_key"
	ResultAction = "action_id"
)

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, a *Action) (SendResult, bool, error)

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, a *Action) (SendResult, bool, error) { return f(ctx, a) }

// Sender delivers one outbox action. retry=true asks the outbox to try again
// later (rate limits, system busy, network); retry=false with an error is final.
type Sender interface {
	Send(ctx context.Context, a *Action) (res SendResult, retry bool, err error)
}

// HoldUntilOf asks s whether its throttle holds the API a needs
// (senders with a throttle implement HoldUntil, as the WeCom client does);
// zero when s has none. Wrapping senders pass it through with this.
func HoldUntilOf(s Sender, a *Action) time.Time {
	if h, ok := s.(interface{ HoldUntil(*Action) time.Time }); ok {
		return h.HoldUntil(a)
	}
	return time.Time{}
}

// SendLimitOf asks s which API a's send needs and how many calls to it may
// be out at once now (senders with adaptive per-API concurrency implement
// SendLimit, as the WeCom client does); "", 0 when s does not say.
// Wrapping senders pass it through with this.
func SendLimitOf(s Sender, a *Action) (api string, n int) {
	if l, ok := s.(interface {
		SendLimit(*Action) (string, int)
	}); ok {
		return l.SendLimit(a)
	}
	return "", 0
}
