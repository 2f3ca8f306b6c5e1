package fakewecom

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WeCom's production rules the fake enforces (WECOM.md §8).
const (
	// MediaLifetime is how long a media/upload media_id stays valid ("仅三天内有效").
	MediaLifetime = 72 * time.Hour
	// KfReplyWindow is how long after the customer's last message kf/send_msg is allowed.
	KfReplyWindow = 48 * time.Hour
	// KfRepliesPerMessage is how many kf/send_msg one customer message allows.
	KfRepliesPerMessage = 5
	// DefaultMassQuota is add_msg_template's per-customer limit per natural
	// month ("每个自然月内仅可针对一个客户/客户群发送4条消息").
	DefaultMassQuota = 4
	// KfEventCodeLifetime is how long an enter_session welcome_code is usable.
	KfEventCodeLifetime = 20 * time.Second
)

// media/upload size limits per type (bytes); every file must be over 5 bytes.
var mediaLimits = map[string]int{"image": 10 << 20, "voice": 2 << 20, "video": 10 << 20, "file": 20 << 20}

// uploadimg's limit: 2 MB, JPG or PNG.
const uploadImgLimit = 2 << 20

// kf session states (kf/service_state/get).
const (
	KfStateNew    = 0 // 未处理: API may reply
	KfStateBot    = 1 // 由智能助手接待: API may reply
	KfStateQueue  = 2 // 待接入池排队中
	KfStatePerson = 3 // 由人工接待
	KfStateEnded  = 4 // 已结束 / 未开始
)

// SetClock makes the fake judge media lifetimes, kf windows, quotas and
// event codes by now (default time.Now); recorded calls carry its time too.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetLatency delays every answer by d (on top of Delay), like a real network.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetAgentID makes message/send refuse another agentid with 301002 (this
// access token may not act for that app), as WeCom does when WECOM_AGENT_ID
// is not the AgentId of WECOM_SECRET's app.
func (s *Server) SetAgentID(agentID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agentID = agentID
}

// DeleteTag removes a tag from the library, as an admin does in the
// console: get_corp_tag_list no longer lists it and mark_tag with its id
// answers 40068.
func (s *Server) DeleteTag(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.groups {
		g.Tags = slices.DeleteFunc(g.Tags, func(t Tag) bool { return t.ID == id })
	}
}

// ---- media ----

// AddMedia makes the fake know a temporary media_id uploaded at uploadedAt
// (for tests that use raw media ids from scenario YAML).
func (s *Server) AddMedia(mediaID string, uploadedAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.media[mediaID] = uploadedAt
}

// Media returns the bytes uploaded under a media_id or uploadimg URL.
func (s *Server) Media(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mediaBytes[id])
}

func (s *Server) uploadLocked(r *http.Request, raw []byte, img bool) map[string]any {
	typ := r.URL.Query().Get("type")
	if img {
		typ = "image"
	}
	limit, known := mediaLimits[typ]
	if !known {
		return errBodyMsg(40004, "invalid media type")
	}
	if img {
		limit = uploadImgLimit
	}
	name, data, err := multipartMedia(r, raw)
	if err != nil {
		return errBodyMsg(41005, "media data missing: "+err.Error())
	}
	if len(data) <= 5 || len(data) > limit {
		return errBodyMsg(40006, fmt.Sprintf("invalid file size %d (5 < size <= %d)", len(data), limit))
	}
	s.seq++
	if img {
		u := fmt.Sprintf("https://wework.qpic.cn/wwpic/fake-%d/0", s.seq)
		s.imageURLs[u] = true
		s.mediaBytes[u] = data
		return ok(map[string]any{"url": u})
	}
	id := fmt.Sprintf("fake-media-%d-%s", s.seq, strings.TrimSuffix(name, ".tmp"))
	id = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, id)
	s.media[id] = s.now()
	s.mediaBytes[id] = data
	// WeCom's example answers created_at as a string.
	return ok(map[string]any{"type": typ, "media_id": id, "created_at": fmt.Sprint(s.now().Unix())})
}

func multipartMedia(r *http.Request, raw []byte) (string, []byte, error) {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return "", nil, err
	}
	mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return "", nil, fmt.Errorf("no form field \"media\": %w", err)
		}
		if part.FormName() != "media" {
			continue
		}
		data, err := io.ReadAll(part)
		return part.FileName(), data, err
	}
}

// mediaErrLocked says why a media_id can't be used now, or nil.
func (s *Server) mediaErrLocked(id string) map[string]any {
	at, known := s.media[id]
	switch {
	case id == "":
		return errBodyMsg(41006, "media_id missing")
	case !known:
		return errBodyMsg(40007, "invalid media_id "+id)
	case s.now().Sub(at) >= MediaLifetime:
		return errBodyMsg(40007, "invalid media_id "+id+": expired (temporary media is valid 3 days)")
	}
	return nil
}

func (s *Server) picURLErrLocked(u string) map[string]any {
	if !s.imageURLs[u] {
		return errBodyMsg(40058, "invalid pic_url "+u+": images must be uploaded with media/uploadimg")
	}
	return nil
}

// checkAttachmentsLocked applies the media rules to welcome / mass-send attachments.
func (s *Server) checkAttachmentsLocked(atts []any) map[string]any {
	for _, a := range atts {
		m, _ := a.(map[string]any)
		typ, _ := m["msgtype"].(string)
		body, _ := m[typ].(map[string]any)
		if e := s.checkAttachmentLocked(typ, body); e != nil {
			return e
		}
	}
	return nil
}

func (s *Server) checkAttachmentLocked(typ string, body map[string]any) map[string]any {
	str := func(k string) string { v, _ := body[k].(string); return v }
	switch typ {
	case "image":
		if u := str("pic_url"); u != "" {
			return s.picURLErrLocked(u)
		}
		return s.mediaErrLocked(str("media_id"))
	case "miniprogram":
		return s.mediaErrLocked(str("pic_media_id"))
	case "video", "file":
		return s.mediaErrLocked(str("media_id"))
	case "link":
		if str("url") == "" || str("title") == "" {
			return errBodyMsg(40058, "link needs title and url")
		}
		return nil
	}
	return errBodyMsg(40058, fmt.Sprintf("invalid attachment msgtype %q", typ))
}

// MaxGroupWelcomeText is the group welcome template's text limit in bytes.
const MaxGroupWelcomeText = 3000

func (s *Server) checkGroupWelcomeLocked(body map[string]any) map[string]any {
	if text, _ := body["text"].(map[string]any); text != nil {
		if c, _ := text["content"].(string); len(c) > MaxGroupWelcomeText {
			return errBodyMsg(40058, fmt.Sprintf("text.content is %d bytes; at most %d", len(c), MaxGroupWelcomeText))
		}
	}
	for _, typ := range []string{"image", "link", "miniprogram", "file", "video"} {
		if part, present := body[typ].(map[string]any); present {
			// The library sends empty objects for unused parts only when set.
			if len(part) == 0 {
				continue
			}
			if e := s.checkAttachmentLocked(typ, part); e != nil {
				return e
			}
		}
	}
	return nil
}

// ---- 微信客服 ----

type kfSession struct {
	state     int
	servicer  string
	lastMsgAt time.Time // the customer's last message
	replies   int       // kf/send_msg since lastMsgAt
}

type kfCode struct {
	session string
	issued  time.Time
	used    bool
}

func kfKey(openKfID, externalUserID string) string { return openKfID + "|" + externalUserID }

func (s *Server) kfSessionLocked(openKfID, externalUserID string) *kfSession {
	k := kfKey(openKfID, externalUserID)
	ss := s.kf[k]
	if ss == nil {
		ss = &kfSession{state: KfStateEnded}
		s.kf[k] = ss
	}
	return ss
}

// CustomerMessage records that a WeChat user wrote to a kf account at at:
// it opens the 48 h window, resets the 5-reply count and, if the session had
// ended, starts a new one (state 0). sync_msg pages served with customer
// messages (origin 3) do the same.
func (s *Server) CustomerMessage(openKfID, externalUserID string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.customerMessageLocked(openKfID, externalUserID, at)
}

func (s *Server) customerMessageLocked(openKfID, externalUserID string, at time.Time) {
	ss := s.kfSessionLocked(openKfID, externalUserID)
	if !at.Before(ss.lastMsgAt) {
		ss.lastMsgAt = at
		ss.replies = 0
	}
	if ss.state == KfStateEnded {
		ss.state = KfStateNew
		ss.servicer = ""
	}
}

// KfSessionState is the session's state and servicer (KfStateEnded for none).
func (s *Server) KfSessionState(openKfID, externalUserID string) (state int, servicer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.kfSessionLocked(openKfID, externalUserID)
	return ss.state, ss.servicer
}

// SetKfSessionState moves a session as a person in the client would (e.g.
// the servicer ends it: KfStateEnded).
func (s *Server) SetKfSessionState(openKfID, externalUserID string, state int, servicer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.kfSessionLocked(openKfID, externalUserID)
	ss.state, ss.servicer = state, servicer
}

// SetServicers makes kf/service_state/trans accept only these userids as
// 接待人员 (95014 otherwise); by default any non-empty userid is accepted.
func (s *Server) SetServicers(userIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range userIDs {
		s.servicers[id] = true
	}
}

// KfEnterSession builds the enter_session event kf/sync_msg returns when a
// user opens a kf chat (copied from the official example); a non-empty
// welcomeCode is then usable once, for 20 s, with kf/send_msg_on_event.
func KfEnterSession(msgID, openKfID, externalUserID, scene, sceneParam, welcomeCode string, at time.Time) map[string]any {
	ev := map[string]any{"event_type": "enter_session", "open_kfid": openKfID, "external_userid": externalUserID,
		"scene": scene, "scene_param": sceneParam}
	if welcomeCode != "" {
		ev["welcome_code"] = welcomeCode
	}
	return map[string]any{"msgid": msgID, "send_time": at.Unix(), "origin": 4, "msgtype": "event", "event": ev}
}

// KfSessionStatusChange builds a session_status_change event (change_type
// 1 taken from the queue, 2 transferred, 3 ended, 4 reopened).
func KfSessionStatusChange(msgID, openKfID, externalUserID string, changeType int, newServicer string, at time.Time) map[string]any {
	ev := map[string]any{"event_type": "session_status_change", "open_kfid": openKfID, "external_userid": externalUserID,
		"change_type": changeType, "new_servicer_userid": newServicer}
	return map[string]any{"msgid": msgID, "send_time": at.Unix(), "origin": 4, "msgtype": "event", "event": ev}
}

// KfMsgSendFail builds a msg_send_fail event (fail_type 4: past 48 h, 6: over 5, 10: refused by the user, ...).
func KfMsgSendFail(msgID, openKfID, externalUserID, failMsgID string, failType int, at time.Time) map[string]any {
	ev := map[string]any{"event_type": "msg_send_fail", "open_kfid": openKfID, "external_userid": externalUserID,
		"fail_msgid": failMsgID, "fail_type": failType}
	return map[string]any{"msgid": msgID, "send_time": at.Unix(), "origin": 4, "msgtype": "event", "event": ev}
}

// learnKfLocked applies what a served sync_msg page tells WeCom's own state:
// customers' messages open windows, enter_session hands out welcome codes,
// and status changes move sessions.
func (s *Server) learnKfLocked(msgs []map[string]any) {
	for _, m := range msgs {
		origin := fmt.Sprint(m["origin"])
		if id, _ := m["msgid"].(string); id != "" {
			if s.kfSeen[id] {
				continue // a page served again (same cursor) is not a new message
			}
			s.kfSeen[id] = true
		}
		if origin == "3" {
			kfid, _ := m["open_kfid"].(string)
			ext, _ := m["external_userid"].(string)
			s.customerMessageLocked(kfid, ext, unixOf(m["send_time"]))
			continue
		}
		ev, _ := m["event"].(map[string]any)
		if origin != "4" || ev == nil {
			continue
		}
		kfid, _ := ev["open_kfid"].(string)
		ext, _ := ev["external_userid"].(string)
		switch ev["event_type"] {
		case "enter_session":
			if code, _ := ev["welcome_code"].(string); code != "" {
				s.kfCodes[code] = kfCode{session: kfKey(kfid, ext), issued: unixOf(m["send_time"])}
			}
		case "session_status_change":
			ss := s.kfSessionLocked(kfid, ext)
			switch fmt.Sprint(ev["change_type"]) {
			case "1", "2":
				ss.state, ss.servicer = KfStatePerson, fmt.Sprint(ev["new_servicer_userid"])
			case "3":
				ss.state, ss.servicer = KfStateEnded, ""
			case "4":
				ss.state, ss.servicer = KfStateNew, ""
			}
		}
	}
}

func unixOf(v any) time.Time {
	switch n := v.(type) {
	case int64:
		return time.Unix(n, 0)
	case int:
		return time.Unix(int64(n), 0)
	case float64:
		return time.Unix(int64(n), 0)
	}
	return time.Time{}
}

// MaxKfText is kf/send_msg's text limit in bytes.
const MaxKfText = 2048

func (s *Server) kfSendLocked(body map[string]any) map[string]any {
	str := func(k string) string { v, _ := body[k].(string); return v }
	kfid, ext := str("open_kfid"), str("touser")
	if kfid == "" || ext == "" {
		return errBodyMsg(40058, "open_kfid and touser are required")
	}
	id := str("msgid")
	if id != "" && s.kfMsgIDs[id] {
		// WeCom refuses the resend although the first send was delivered.
		return errBodyMsg(CodeKfDuplicateMsgID, "duplicate msgid "+id)
	}
	if text, _ := body["text"].(map[string]any); text != nil {
		if c, _ := text["content"].(string); len(c) > MaxKfText {
			return errBodyMsg(40058, fmt.Sprintf("text.content is %d bytes; at most %d", len(c), MaxKfText))
		}
	}
	if str("msgtype") == "image" {
		// A picture needs temporary media from media/upload, valid 3 days.
		img, _ := body["image"].(map[string]any)
		id, _ := img["media_id"].(string)
		if e := s.mediaErrLocked(id); e != nil {
			return e
		}
	}
	ss := s.kfSessionLocked(kfid, ext)
	switch {
	case ss.lastMsgAt.IsZero() || s.now().Sub(ss.lastMsgAt) > KfReplyWindow:
		return errBody(95002)
	case ss.state != KfStateNew && ss.state != KfStateBot:
		return errBody(95018)
	case ss.replies >= KfRepliesPerMessage:
		return errBody(95001)
	}
	ss.replies++
	if id == "" {
		s.seq++
		id = fmt.Sprintf("kf-msg-%d", s.seq)
	}
	s.kfMsgIDs[id] = true
	return ok(map[string]any{"msgid": id})
}

// CodeKfDuplicateMsgID is what the fake answers to a kf send reusing a
// msgid. WeCom documents that a reused msgid is refused but not the code; the
// fake uses 40058 (invalid parameter), which is what a malformed msgid gets.
const CodeKfDuplicateMsgID = 40058

func (s *Server) kfSendOnEventLocked(body map[string]any) map[string]any {
	code, _ := body["code"].(string)
	c, known := s.kfCodes[code]
	switch {
	case !known:
		return errBodyMsg(40058, "invalid code")
	case c.used:
		return errBodyMsg(40058, "code already used")
	case s.now().Sub(c.issued) > KfEventCodeLifetime:
		return errBodyMsg(40058, "code expired (valid 20 s)")
	}
	if id, _ := body["msgid"].(string); id != "" && s.kfMsgIDs[id] {
		return errBodyMsg(CodeKfDuplicateMsgID, "duplicate msgid "+id)
	}
	c.used = true
	s.kfCodes[code] = c
	s.seq++
	id, _ := body["msgid"].(string)
	if id == "" {
		id = fmt.Sprintf("kf-event-msg-%d", s.seq)
	}
	s.kfMsgIDs[id] = true
	return ok(map[string]any{"msgid": id})
}

func (s *Server) kfStateGetLocked(body map[string]any) map[string]any {
	kfid, _ := body["open_kfid"].(string)
	ext, _ := body["external_userid"].(string)
	ss := s.kfSessionLocked(kfid, ext)
	out := map[string]any{"service_state": ss.state}
	if ss.state == KfStatePerson {
		out["servicer_userid"] = ss.servicer
	}
	return ok(out)
}

// allowedTrans is WeCom's session state machine (分配客服会话, 概述).
var allowedTrans = map[int][]int{
	KfStateNew:    {KfStateBot, KfStateQueue, KfStatePerson, KfStateEnded},
	KfStateBot:    {KfStateQueue, KfStatePerson, KfStateEnded},
	KfStateQueue:  {KfStatePerson, KfStateEnded},
	KfStatePerson: {KfStatePerson, KfStateEnded},
}

func (s *Server) kfStateTransLocked(body map[string]any) map[string]any {
	kfid, _ := body["open_kfid"].(string)
	ext, _ := body["external_userid"].(string)
	servicer, _ := body["servicer_userid"].(string)
	to := int(toFloat(body["service_state"]))
	ss := s.kfSessionLocked(kfid, ext)
	if !slices.Contains(allowedTrans[ss.state], to) {
		return errBodyMsg(95016, fmt.Sprintf("not allow service state transition %d -> %d", ss.state, to))
	}
	if to == KfStatePerson && (servicer == "" || (len(s.servicers) > 0 && !s.servicers[servicer])) {
		return errBodyMsg(95014, "invalid servicer_userid "+servicer+" (must be a 接待人员 currently receiving)")
	}
	ss.state = to
	ss.servicer = ""
	if to == KfStatePerson {
		ss.servicer = servicer
	}
	out := map[string]any{}
	if to == KfStateQueue || to == KfStateEnded {
		s.seq++
		out["msg_code"] = fmt.Sprintf("MSG_CODE_%d", s.seq)
	}
	return ok(out)
}

// jsonString renders a JSON scalar (numbers without exponent) as text.
func jsonString(v any) string {
	if f, isNum := v.(float64); isNum {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func toFloat(v any) float64 {
	f, _ := v.(float64)
	return f
}

// ---- mass send (add_msg_template) ----

type massTask struct {
	msgID     string
	sender    string
	chatType  string
	customers []string
	failed    map[string]int // external_userid → send_result status (2 not a friend, 3 over quota)
	confirmed bool
	// canceled: stopped with cancel_groupmsg_send before the staff member
	// confirmed it; it can no longer be sent.
	canceled bool
	sentAt   time.Time
	created  time.Time
}

// SetMassQuota sets the per-customer add_msg_template limit per natural month (default 4).
func (s *Server) SetMassQuota(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.massQuota = n
}

// NotFriend marks a customer as no longer a friend of any staff member:
// mass sends list them in fail_list (send_result status 2).
func (s *Server) NotFriend(externalUserID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notFriends[externalUserID] = true
}

// ConfirmMassSend makes the task's staff member confirm it in the client
// (every add_msg_template task waits for that): the customers not in
// fail_list receive it. It returns false for an unknown msgid.
func (s *Server) ConfirmMassSend(msgID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.massTasks[msgID]
	if t == nil || t.canceled {
		return false
	}
	t.confirmed, t.sentAt = true, s.now()
	return true
}

// Canceled returns the msgids stopped with cancel_groupmsg_send.
func (s *Server) Canceled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range s.massOrder {
		if s.massTasks[id].canceled {
			out = append(out, id)
		}
	}
	return out
}

// MassTasks returns the msgids of the tasks created so far, oldest first.
func (s *Server) MassTasks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.massOrder)
}

// Reminded returns the msgids remind_groupmsg_send was called for.
func (s *Server) Reminded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reminded)
}

// massCountLocked counts the tasks this natural month (on the fake's clock) that reached ext.
func (s *Server) massCountLocked(chatType, ext string, now time.Time) int {
	n := 0
	y, m, _ := now.Date()
	for _, id := range s.massOrder {
		t := s.massTasks[id]
		ty, tm, _ := t.created.Date()
		if ty != y || tm != m || t.chatType != chatType {
			continue
		}
		if slices.Contains(t.customers, ext) && t.failed[ext] == 0 {
			n++
		}
	}
	return n
}

// MaxMassCustomers is add_msg_template's limit on external_userid per request.
const MaxMassCustomers = 10000

func (s *Server) addMsgTemplateLocked(body map[string]any) map[string]any {
	chatType, _ := body["chat_type"].(string)
	if chatType == "" {
		chatType = "single"
	}
	sender, _ := body["sender"].(string)
	var customers []string
	raw, _ := body["external_userid"].([]any)
	for _, v := range raw {
		if id, _ := v.(string); id != "" {
			customers = append(customers, id)
		}
	}
	if chatType == "group" {
		// Groups: chat_id_list (the owner's groups); the quota counts per group.
		customers = nil
		ids, _ := body["chat_id_list"].([]any)
		for _, v := range ids {
			if id, _ := v.(string); id != "" {
				customers = append(customers, id)
			}
		}
	}
	if len(customers) > MaxMassCustomers {
		return errBodyMsg(40058, fmt.Sprintf("external_userid has %d entries; at most %d", len(customers), MaxMassCustomers))
	}
	if chatType == "group" && sender == "" {
		return errBodyMsg(40058, "sender is required for chat_type group")
	}
	text, _ := body["text"].(map[string]any)
	atts, _ := body["attachments"].([]any)
	if content, _ := text["content"].(string); content == "" && len(atts) == 0 {
		return errBodyMsg(40058, "text or attachments required")
	}
	if len(atts) > 9 {
		return errBodyMsg(40058, "attachments exceed the limit of 9")
	}
	if e := s.checkAttachmentsLocked(atts); e != nil {
		return e
	}
	now := s.now()
	t := &massTask{sender: sender, chatType: chatType, customers: customers, failed: map[string]int{}, created: now}
	failList := []string{}
	for _, ext := range customers {
		switch {
		case s.notFriends[ext]:
			t.failed[ext] = 2
		case s.massCountLocked(chatType, ext, now) >= s.massQuota:
			t.failed[ext] = 3
		default:
			continue
		}
		failList = append(failList, ext)
	}
	s.seq++
	t.msgID = fmt.Sprintf("msgGCAAAXtWyujaWJHDDGi0mAC%d", s.seq)
	s.massTasks[t.msgID] = t
	s.massOrder = append(s.massOrder, t.msgID)
	return ok(map[string]any{"msgid": t.msgID, "fail_list": failList})
}

func (s *Server) groupMsgTaskLocked(body map[string]any) map[string]any {
	id, _ := body["msgid"].(string)
	t := s.massTasks[id]
	if t == nil {
		return errBodyMsg(40058, "invalid msgid")
	}
	status, sendTime := 0, int64(0)
	if t.confirmed {
		status, sendTime = 2, t.sentAt.Unix()
	}
	return ok(map[string]any{"next_cursor": "", "task_list": []any{
		map[string]any{"userid": t.sender, "status": status, "send_time": sendTime},
	}})
}

func (s *Server) groupMsgSendResultLocked(body map[string]any) map[string]any {
	id, _ := body["msgid"].(string)
	t := s.massTasks[id]
	if t == nil {
		return errBodyMsg(40058, "invalid msgid")
	}
	// Paged like WeCom: limit (at most 1000, default 500) and an opaque cursor.
	limit := int(toFloat(body["limit"]))
	if limit <= 0 || limit > 1000 {
		limit = 500
	}
	from := 0
	if c, _ := body["cursor"].(string); c != "" {
		if _, err := fmt.Sscanf(c, "page-%d", &from); err != nil {
			return errBodyMsg(40058, "invalid cursor")
		}
	}
	list := []any{}
	for _, ext := range t.customers[min(from, len(t.customers)):min(from+limit, len(t.customers))] {
		status, sendTime := 0, int64(0)
		switch {
		case t.failed[ext] != 0:
			status = t.failed[ext]
		case t.confirmed:
			status, sendTime = 1, t.sentAt.Unix()
		}
		row := map[string]any{"external_userid": ext, "chat_id": "", "userid": t.sender, "status": status, "send_time": sendTime}
		if t.chatType == "group" {
			row["external_userid"], row["chat_id"] = "", ext
		}
		list = append(list, row)
	}
	next := ""
	if from+limit < len(t.customers) {
		next = fmt.Sprintf("page-%d", from+limit)
	}
	return ok(map[string]any{"next_cursor": next, "send_list": list})
}

func (s *Server) remindLocked(body map[string]any) map[string]any {
	t, refused := s.unsentTaskLocked(body)
	if refused != nil {
		return refused
	}
	s.reminded = append(s.reminded, t.msgID)
	return ok(nil)
}

// cancelLocked stops a task the staff member has not sent (停止企业群发: it
// cannot take back what was sent).
func (s *Server) cancelLocked(body map[string]any) map[string]any {
	t, refused := s.unsentTaskLocked(body)
	if refused != nil {
		return refused
	}
	t.canceled = true
	return ok(nil)
}

// unsentTaskLocked is the body's msgid task, or WeCom's refusal: unknown
// (40058), already sent (41063).
func (s *Server) unsentTaskLocked(body map[string]any) (*massTask, map[string]any) {
	id, _ := body["msgid"].(string)
	t := s.massTasks[id]
	switch {
	case t == nil:
		return nil, errBodyMsg(40058, "invalid msgid")
	case t.confirmed:
		return nil, errBodyMsg(41063, "the task was already sent")
	}
	return t, nil
}

// ---- profiles ----

// Contact is a customer as externalcontact/get returns it.
type Contact struct {
	ExternalUserID string
	Name           string
	Type           int // 1 WeChat user, 2 WeCom user
	Gender         int // 0 unknown, 1 male, 2 female
	UnionID        string
	FollowUsers    []FollowUser
}

// FollowUser is one staff member who added the customer.
type FollowUser struct {
	UserID     string
	Remark     string
	State      string
	CreateTime time.Time
	Tags       []FollowTag
}

// FollowTag is a tag the staff member's customer carries.
type FollowTag struct {
	GroupName string
	TagName   string
	TagID     string
	Type      int // 1 corp tag, 2 personal tag, 3 rule-group tag
}

// SetContact makes externalcontact/get answer this profile.
func (s *Server) SetContact(c Contact) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cc := c
	cc.FollowUsers = slices.Clone(c.FollowUsers)
	s.profiles[c.ExternalUserID] = &cc
}

func (s *Server) getContactLocked(id string) map[string]any {
	c := s.profiles[id]
	if c == nil {
		return errBody(40096)
	}
	contact := map[string]any{"external_userid": c.ExternalUserID, "name": c.Name, "type": c.Type, "gender": c.Gender,
		"avatar": "http://p.qlogo.cn/bizmail/IcsdgagqefergqerhewSdage/0"}
	if c.UnionID != "" {
		contact["unionid"] = c.UnionID
	}
	follow := []any{}
	for _, f := range c.FollowUsers {
		tags := []any{}
		for _, t := range f.Tags {
			tags = append(tags, map[string]any{"group_name": t.GroupName, "tag_name": t.TagName, "tag_id": t.TagID, "type": t.Type})
		}
		follow = append(follow, map[string]any{"userid": f.UserID, "remark": f.Remark, "description": "", "createtime": f.CreateTime.Unix(),
			"tags": tags, "state": f.State, "add_way": 1, "oper_userid": f.UserID})
	}
	return ok(map[string]any{"external_contact": contact, "follow_user": follow})
}

// GroupChat is a customer group as groupchat/get returns it.
type GroupChat struct {
	ChatID  string
	Name    string
	Owner   string
	Notice  string
	Created time.Time
	Members []GroupMember
	// Dismissed groups are not listed (groupchat/list) nor answered (groupchat/get).
	Dismissed bool
}

// GroupMember is one member of a customer group.
type GroupMember struct {
	UserID    string
	Type      int // 1 staff, 2 external contact
	UnionID   string
	JoinTime  time.Time
	JoinScene int // 1 invited directly, 2 invited by link, 3 via QR code
	Invitor   string
	Name      string
	State     string // the join code's state
}

// SetGroupChat makes groupchat/get answer this group.
func (s *Server) SetGroupChat(g GroupChat) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gg := g
	gg.Members = slices.Clone(g.Members)
	s.chats[g.ChatID] = &gg
}

func (s *Server) getGroupChatLocked(body map[string]any) map[string]any {
	id, _ := body["chat_id"].(string)
	g := s.chats[id]
	if g == nil || g.Dismissed {
		return errBodyMsg(40050, "invalid chat_id "+id)
	}
	members := []any{}
	for _, m := range g.Members {
		mm := map[string]any{"userid": m.UserID, "type": m.Type, "join_time": m.JoinTime.Unix(), "join_scene": m.JoinScene,
			"group_nickname": "", "name": m.Name}
		if m.Invitor != "" {
			mm["invitor"] = map[string]any{"userid": m.Invitor}
		}
		if m.UnionID != "" {
			mm["unionid"] = m.UnionID
		}
		if m.State != "" {
			mm["state"] = m.State
		}
		members = append(members, mm)
	}
	return ok(map[string]any{"group_chat": map[string]any{"chat_id": g.ChatID, "name": g.Name, "owner": g.Owner,
		"create_time": g.Created.Unix(), "notice": g.Notice, "member_list": members, "admin_list": []any{}}})
}

// Clock is a settable clock for tests that move WeCom's time (SetClock(c.Now)).
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Field reads a dotted path ("attachments.0.image.pic_url") from the call's JSON body.
func (c Call) Field(path string) any {
	var v any = c.Body
	for _, part := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[part]
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}
