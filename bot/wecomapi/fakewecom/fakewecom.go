// Package fakewecom is an in-process fake of the WeCom (企业微信) API for
// tests: it answers the calls wecombot makes, keeps the state they change
// (tokens, corp tags, used welcome codes, templates), records every call,
// and injects faults (errcodes, HTTP statuses, delays, expired tokens).
//
// Point a wecomapi.Client at it with Config.APIBase = srv.URL().
package fakewecom

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// API names: the request path under /cgi-bin/.
const (
	APIGetToken                 = "gettoken"
	APISendWelcomeMsg           = "externalcontact/send_welcome_msg"
	APIMarkTag                  = "externalcontact/mark_tag"
	APIGetCorpTagList           = "externalcontact/get_corp_tag_list"
	APIAddCorpTag               = "externalcontact/add_corp_tag"
	APIAddMsgTemplate           = "externalcontact/add_msg_template"
	APIGroupWelcomeTemplateAdd  = "externalcontact/group_welcome_template/add"
	APIGroupWelcomeTemplateEdit = "externalcontact/group_welcome_template/edit"
	APIAddContactWay            = "externalcontact/add_contact_way"
	APIGetExternalContact       = "externalcontact/get"
	APIMessageSend              = "message/send"
	APIKfSyncMsg                = "kf/sync_msg"
	APIKfSendMsg                = "kf/send_msg"
	APIWebhookSend              = "webhook/send"
	APIMediaUpload              = "media/upload"
	APIMediaUploadImg           = "media/uploadimg"
	APIKfSendMsgOnEvent         = "kf/send_msg_on_event"
	APIKfServiceStateGet        = "kf/service_state/get"
	APIKfServiceStateTrans      = "kf/service_state/trans"
	APIGetGroupMsgTask          = "externalcontact/get_groupmsg_task"
	APIGetGroupMsgSendResult    = "externalcontact/get_groupmsg_send_result"
	APIRemindGroupMsgSend       = "externalcontact/remind_groupmsg_send"
	APICancelGroupMsgSend       = "externalcontact/cancel_groupmsg_send"
	APIGroupChatGet             = "externalcontact/groupchat/get"
	APIAgentGet                 = "agent/get"
)

// Call is one recorded request.
type Call struct {
	API    string
	Method string
	// Query is the query string without access_token and corpsecret.
	Query url.Values
	// Body is the decoded JSON body (nil for GET or a non-JSON body).
	Body map[string]any
	// RawBody is the body as sent.
	RawBody []byte
	// Token is the access_token the call carried ("" for gettoken and webhooks).
	Token string
	Time  time.Time
}

// TB is the part of testing.TB the server uses; nil is allowed (then Close it yourself).
type TB interface {
	Cleanup(func())
}

// TagGroup is a corp tag group in the fake's tag library.
type TagGroup struct {
	ID   string
	Name string
	Tags []Tag
}

// Tag is a corp tag.
type Tag struct {
	ID   string
	Name string
}

// KfPage is one scripted kf/sync_msg answer.
type KfPage struct {
	Msgs       []map[string]any
	NextCursor string
	HasMore    bool
}

// KfText builds a customer's text message as kf/sync_msg returns it.
func KfText(msgID, openKfID, externalUserID, content string, sendTime time.Time) map[string]any {
	return map[string]any{
		"msgid": msgID, "open_kfid": openKfID, "external_userid": externalUserID,
		"send_time": sendTime.Unix(), "origin": 3, "msgtype": "text",
		"text": map[string]any{"content": content},
	}
}

type fault struct {
	errcode int64
	status  int
}

// Server is the fake. All methods are safe for concurrent use.
//
// It enforces WeCom's production rules (WECOM.md §8) on its own clock
// (SetClock): temporary media ids expire three days after upload, pic_url
// must come from media/uploadimg, a welcome_code is refused 20 s after
// IssueWelcomeCode handed it out and on its second use, kf sends are refused outside the 48 h
// window, beyond 5 per customer message and while the session is not new or
// bot-held, a reused kf msgid is refused, customers over the monthly
// mass-send quota land in fail_list, deleted tags answer 40068 and
// message/send refuses an agentid that is not the app's (301002).
type Server struct {
	srv *httptest.Server

	mu      sync.Mutex
	corpID  string
	secrets map[string]bool // accepted corpsecrets; empty accepts any non-empty one
	tokens  map[string]bool // token → valid
	// tokenEpoch counts ExpireTokens calls: a gettoken received before one
	// and answered after it hands out a token already expired.
	tokenEpoch  int
	tokenSeq    int
	expiresIn   int
	seq         int
	calls       []Call
	faults      map[string][]fault
	delays      map[string]time.Duration
	welcomeUsed map[string]bool
	// welcomeAt: when each welcome_code was handed out (IssueWelcomeCode);
	// send_welcome_msg refuses a code older than WelcomeCodeLifetime.
	welcomeAt      map[string]time.Time
	welcomeExpired int // send_welcome_msg calls refused for an expired code
	groups         []*TagGroup
	templates      map[string]bool
	kfPages        map[string]KfPage
	robotKeys      map[string]bool // empty accepts any non-empty key
	observe        func(Call)
	noRecord       bool

	now     func() time.Time
	latency time.Duration
	agentID string

	media      map[string]time.Time // temporary media_id → uploaded at
	mediaBytes map[string][]byte
	imageURLs  map[string]bool // URLs handed out by media/uploadimg

	kf         map[string]*kfSession // open_kfid|external_userid
	kfMsgIDs   map[string]bool       // msgids already used by kf/send_msg(_on_event)
	serveQR    bool                  // add_contact_way's qr_code is a picture the fake serves (ServeQRCodes)
	kfSeen     map[string]bool       // sync_msg msgids already served
	kfCodes    map[string]kfCode     // event codes (welcome_code) handed out
	servicers  map[string]bool       // empty accepts any userid as 接待人员
	massQuota  int
	massTasks  map[string]*massTask
	massOrder  []string
	notFriends map[string]bool
	profiles   map[string]*Contact
	chats      map[string]*GroupChat
	reminded   []string
	// dir holds customers, groups, join ways and transfers (directory.go).
	dir *directory
}

// WelcomeCodeLifetime is how long WeCom accepts an add event's welcome_code
// (WECOM.md §8: valid 20 s, usable once).
const WelcomeCodeLifetime = 20 * time.Second

// IssueWelcomeCode tells the fake that WeCom hands code out now, on its
// clock (with the add event that carries it): send_welcome_msg then refuses
// it with 41051 when the call arrives more than WelcomeCodeLifetime later,
// as WeCom does. Issuing a known code again changes nothing. A code the
// fake was never told of is taken as issued just before its first use.
func (s *Server) IssueWelcomeCode(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.welcomeAt[code]; !known {
		s.welcomeAt[code] = s.now()
	}
}

// ExpiredWelcomes counts send_welcome_msg calls refused because their code
// was older than WelcomeCodeLifetime.
func (s *Server) ExpiredWelcomes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.welcomeExpired
}

// New starts a fake. With tb, it is closed when the test ends.
func New(tb TB) *Server {
	s := &Server{
		secrets:     map[string]bool{},
		tokens:      map[string]bool{},
		expiresIn:   7200,
		faults:      map[string][]fault{},
		delays:      map[string]time.Duration{},
		welcomeUsed: map[string]bool{},
		welcomeAt:   map[string]time.Time{},
		templates:   map[string]bool{},
		kfPages:     map[string]KfPage{},
		robotKeys:   map[string]bool{},
		now:         time.Now,
		media:       map[string]time.Time{},
		mediaBytes:  map[string][]byte{},
		imageURLs:   map[string]bool{},
		kf:          map[string]*kfSession{},
		kfMsgIDs:    map[string]bool{},
		kfSeen:      map[string]bool{},
		kfCodes:     map[string]kfCode{},
		servicers:   map[string]bool{},
		massQuota:   DefaultMassQuota,
		massTasks:   map[string]*massTask{},
		notFriends:  map[string]bool{},
		profiles:    map[string]*Contact{},
		chats:       map[string]*GroupChat{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	if tb != nil {
		tb.Cleanup(s.Close)
	}
	return s
}

// URL is the API base to configure (like https://qyapi.weixin.qq.com).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// SetCredentials makes gettoken check the corp id and accept only these
// secrets (40013 / 40001 otherwise). By default any corp id and non-empty
// secret get a token.
func (s *Server) SetCredentials(corpID string, secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corpID = corpID
	for _, sec := range secrets {
		s.secrets[sec] = true
	}
}

// SetTokenExpiresIn sets the expires_in gettoken answers (default 7200).
func (s *Server) SetTokenExpiresIn(seconds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expiresIn = seconds
}

// ExpireTokens expires every token handed out so far, and those of
// gettoken calls already received but not yet answered: the next call with
// one of them gets 42001.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenEpoch++
	for t := range s.tokens {
		s.tokens[t] = false
	}
}

// FailNext makes the next n calls to api answer errcode (after the token check).
func (s *Server) FailNext(api string, errcode int64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[api] = append(s.faults[api], fault{errcode: errcode})
	}
}

// FailHTTP makes the next n calls to api answer the HTTP status.
func (s *Server) FailHTTP(api string, status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[api] = append(s.faults[api], fault{status: status})
	}
}

// Delay makes every call to api wait d before answering (0 removes it).
func (s *Server) Delay(api string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays[api] = d
}

// AddTagGroup seeds the tag library with a group and tags (ids are generated).
func (s *Server) AddTagGroup(name string, tags ...string) TagGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groupLocked("", name)
	for _, t := range tags {
		s.seq++
		g.Tags = append(g.Tags, Tag{ID: fmt.Sprintf("et-tag-%d", s.seq), Name: t})
	}
	return cloneGroup(g)
}

// TagGroups returns the tag library.
func (s *Server) TagGroups() []TagGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TagGroup, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, cloneGroup(g))
	}
	return out
}

// TagID returns the id of the tag name in group ("" if none).
func (s *Server) TagID(group, name string) string {
	for _, g := range s.TagGroups() {
		if g.Name != group {
			continue
		}
		for _, t := range g.Tags {
			if t.Name == name {
				return t.ID
			}
		}
	}
	return ""
}

// AddExternalContact makes externalcontact/get know a customer by name
// (SetContact gives a full profile).
func (s *Server) AddExternalContact(externalUserID, name string) {
	s.SetContact(Contact{ExternalUserID: externalUserID, Name: name, Type: 1})
}

// ScriptKf sets the kf/sync_msg answer for a (callback token, cursor) pair;
// unscripted pairs answer no messages and the same cursor.
func (s *Server) ScriptKf(token, cursor string, page KfPage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kfPages[token+"\x00"+cursor] = page
}

// SetRobotKeys makes webhook/send accept only these keys (93000 otherwise).
func (s *Server) SetRobotKeys(keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.robotKeys[k] = true
	}
}

// Observe calls fn with every call as it arrives (outside the fake's lock),
// for load tests that time deliveries; with record false the fake stops
// keeping calls in memory (Calls and Count then see none).
func (s *Server) Observe(fn func(Call), record bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observe, s.noRecord = fn, !record
}

// Calls returns the recorded calls to api ("" for all), oldest first.
func (s *Server) Calls(api string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if api == "" || c.API == api {
			out = append(out, c)
		}
	}
	return out
}

// Count is the number of recorded calls to api ("" for all).
func (s *Server) Count(api string) int { return len(s.Calls(api)) }

// Reset forgets the recorded calls (state and faults stay).
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// errmsgs are WeCom-like messages for the codes tests use. Real errmsgs end
// with a "more info" link naming the code; the fake copies that.
var errmsgs = map[int64]string{
	-1:     "system busy",
	40001:  "invalid credential",
	40013:  "invalid corpid",
	40014:  "invalid access_token",
	40068:  "invalid tagid",
	40071:  "UserTag Name Already Exist",
	40096:  "invalid external userid",
	41051:  "externaluser has started chatting",
	41096:  "welcome msg is being distributed",
	40007:  "invalid media_id",
	40006:  "invalid file size",
	40058:  "invalid Parameter",
	95001:  "send msg count limit",
	95002:  "send msg time limit",
	95016:  "not allow this service state transition",
	95018:  "send msg session status invalid",
	42001:  "access_token expired",
	45009:  "api freq out of limit",
	45033:  "api concurrent out of limit",
	48002:  "api forbidden",
	48003:  "suite_id not in api scope",
	60011:  "no privilege to access/modify contact/party/agent",
	60020:  "not allow to access from your ip",
	93000:  "invalid webhook url",
	95000:  "invalid open_kfid",
	301002: "no privilege to access/modify contact/party/agent",
}

func errBody(code int64) map[string]any { return errBodyMsg(code, "") }

// errBodyMsg is errBody with a specific message (the fake's reason).
func errBodyMsg(code int64, msg string) map[string]any {
	if msg == "" {
		msg = errmsgs[code]
	}
	if msg == "" {
		msg = "fake error"
	}
	return map[string]any{
		"errcode": code,
		"errmsg":  fmt.Sprintf("%s, hint: [fake], from ip: 203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/query?e=%d", msg, code),
	}
}

func ok(extra map[string]any) map[string]any {
	out := map[string]any{"errcode": 0, "errmsg": "ok"}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.serveQRPicture(w, r) {
		return
	}
	api, found := strings.CutPrefix(r.URL.Path, "/cgi-bin/")
	if !found {
		http.NotFound(w, r)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	q := r.URL.Query()
	token := q.Get("access_token")
	q.Del("access_token")
	q.Del("corpsecret")
	s.mu.Lock()
	now := s.now()
	s.mu.Unlock()
	call := Call{API: api, Method: r.Method, Query: q, RawBody: raw, Time: now}
	if api != APIGetToken && api != APIWebhookSend {
		call.Token = token
	}
	if len(raw) > 0 {
		var body map[string]any
		if json.Unmarshal(raw, &body) == nil {
			call.Body = body
		}
	}

	s.mu.Lock()
	if !s.noRecord {
		s.calls = append(s.calls, call)
	}
	delay, observe, epoch := s.delays[api]+s.latency, s.observe, s.tokenEpoch
	s.mu.Unlock()
	if observe != nil {
		observe(call)
	}

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	s.mu.Lock()
	status, answer := s.answerLocked(api, r, token, call)
	if tok, issued := answer["access_token"].(string); issued && epoch != s.tokenEpoch {
		s.tokens[tok] = false // received before an ExpireTokens: expired with the others
	}
	s.mu.Unlock()
	if status != http.StatusOK {
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(answer)
}

func (s *Server) answerLocked(api string, r *http.Request, token string, call Call) (int, map[string]any) {
	if api == APIGetToken {
		if f, ok := s.nextFaultLocked(api); ok {
			return f.status, errBody(f.errcode)
		}
		return http.StatusOK, s.getTokenLocked(r.URL.Query())
	}
	if api != APIWebhookSend {
		switch valid, known := s.tokens[token]; {
		case token == "":
			return http.StatusOK, map[string]any{"errcode": 41001, "errmsg": "access_token missing"}
		case !known:
			return http.StatusOK, errBody(40014)
		case !valid:
			return http.StatusOK, errBody(42001)
		}
	}
	if f, ok := s.nextFaultLocked(api); ok {
		return f.status, errBody(f.errcode)
	}
	body := call.Body
	str := func(k string) string { v, _ := body[k].(string); return v }
	switch api {
	case APISendWelcomeMsg:
		code := str("welcome_code")
		if code == "" || s.welcomeUsed[code] {
			return http.StatusOK, errBody(41051)
		}
		if at, issued := s.welcomeAt[code]; issued && call.Time.Sub(at) > WelcomeCodeLifetime {
			s.welcomeExpired++
			return http.StatusOK, errBodyMsg(41051, "welcome_code expired")
		}
		atts, _ := body["attachments"].([]any)
		if len(atts) > 9 {
			return http.StatusOK, errBodyMsg(40058, "attachments exceed the limit of 9")
		}
		if e := s.checkAttachmentsLocked(atts); e != nil {
			return http.StatusOK, e
		}
		s.welcomeUsed[code] = true
		delete(s.welcomeAt, code) // used: welcomeUsed refuses it from now on
		return http.StatusOK, ok(nil)
	case APIMarkTag:
		for _, key := range []string{"add_tag", "remove_tag"} {
			ids, _ := body[key].([]any)
			for _, id := range ids {
				if idStr, _ := id.(string); !s.tagExistsLocked(idStr) {
					return http.StatusOK, errBody(40068)
				}
			}
		}
		s.markTagLocked(str("userid"), str("external_userid"), body)
		return http.StatusOK, ok(nil)
	case APIGetCorpTagList:
		return http.StatusOK, ok(map[string]any{"tag_group": s.tagListLocked()})
	case APIAddCorpTag:
		return http.StatusOK, s.addCorpTagLocked(body)
	case APIAddMsgTemplate:
		return http.StatusOK, s.addMsgTemplateLocked(body)
	case APIGroupWelcomeTemplateAdd:
		if e := s.checkGroupWelcomeLocked(body); e != nil {
			return http.StatusOK, e
		}
		s.seq++
		id := fmt.Sprintf("tpl-%d", s.seq)
		s.templates[id] = true
		return http.StatusOK, ok(map[string]any{"template_id": id})
	case APIGroupWelcomeTemplateEdit:
		if !s.templates[str("template_id")] {
			return http.StatusOK, map[string]any{"errcode": 41003, "errmsg": "invalid template_id [errcode 41003]"}
		}
		if e := s.checkGroupWelcomeLocked(body); e != nil {
			return http.StatusOK, e
		}
		return http.StatusOK, ok(nil)
	case APIAddContactWay:
		s.seq++
		id := fmt.Sprintf("cw-%d", s.seq)
		return http.StatusOK, ok(map[string]any{"config_id": id, "qr_code": s.qrCodeURLLocked(id)})
	case APIGetExternalContact:
		return http.StatusOK, s.getContactLocked(r.URL.Query().Get("external_userid"))
	case APIGroupChatGet:
		return http.StatusOK, s.getGroupChatLocked(body)
	case APIMessageSend:
		if s.agentID != "" && jsonString(body["agentid"]) != s.agentID {
			return http.StatusOK, errBody(301002)
		}
		s.seq++
		return http.StatusOK, ok(map[string]any{"msgid": fmt.Sprintf("app-msg-%d", s.seq), "invaliduser": ""})
	case APIAgentGet:
		id := r.URL.Query().Get("agentid")
		if s.agentID != "" && id != s.agentID {
			return http.StatusOK, errBody(301002)
		}
		return http.StatusOK, ok(map[string]any{"agentid": id, "name": "wecombot", "close": 0})
	case APIMediaUpload:
		return http.StatusOK, s.uploadLocked(r, call.RawBody, false)
	case APIMediaUploadImg:
		return http.StatusOK, s.uploadLocked(r, call.RawBody, true)
	case APIKfSendMsgOnEvent:
		return http.StatusOK, s.kfSendOnEventLocked(body)
	case APIKfServiceStateGet:
		return http.StatusOK, s.kfStateGetLocked(body)
	case APIKfServiceStateTrans:
		return http.StatusOK, s.kfStateTransLocked(body)
	case APIGetGroupMsgTask:
		return http.StatusOK, s.groupMsgTaskLocked(body)
	case APIGetGroupMsgSendResult:
		return http.StatusOK, s.groupMsgSendResultLocked(body)
	case APIRemindGroupMsgSend:
		return http.StatusOK, s.remindLocked(body)
	case APICancelGroupMsgSend:
		return http.StatusOK, s.cancelLocked(body)
	case APIKfSyncMsg:
		page, scripted := s.kfPages[str("token")+"\x00"+str("cursor")]
		if !scripted {
			page = KfPage{NextCursor: str("cursor")}
		}
		hasMore := 0
		if page.HasMore {
			hasMore = 1
		}
		msgs := page.Msgs
		if msgs == nil {
			msgs = []map[string]any{}
		}
		s.learnKfLocked(msgs)
		return http.StatusOK, ok(map[string]any{"next_cursor": page.NextCursor, "has_more": hasMore, "msg_list": msgs})
	case APIKfSendMsg:
		return http.StatusOK, s.kfSendLocked(body)
	case APIWebhookSend:
		key := r.URL.Query().Get("key")
		if key == "" || (len(s.robotKeys) > 0 && !s.robotKeys[key]) {
			return http.StatusOK, errBody(93000)
		}
		return http.StatusOK, ok(nil)
	}
	if status, answer, handled := s.answerDirectoryLocked(api, r, body); handled {
		return status, answer
	}
	return http.StatusNotFound, nil
}

func (s *Server) nextFaultLocked(api string) (fault, bool) {
	q := s.faults[api]
	if len(q) == 0 {
		return fault{}, false
	}
	f := q[0]
	s.faults[api] = q[1:]
	if f.status == 0 {
		f.status = http.StatusOK
	}
	return f, true
}

func (s *Server) getTokenLocked(q url.Values) map[string]any {
	secret := q.Get("corpsecret")
	if s.corpID != "" && q.Get("corpid") != s.corpID {
		return errBody(40013)
	}
	if secret == "" || (len(s.secrets) > 0 && !s.secrets[secret]) {
		return errBody(40001)
	}
	s.tokenSeq++
	token := fmt.Sprintf("fake-token-%d", s.tokenSeq)
	s.tokens[token] = true
	return ok(map[string]any{"access_token": token, "expires_in": s.expiresIn})
}

func (s *Server) groupLocked(id, name string) *TagGroup {
	for _, g := range s.groups {
		if (id != "" && g.ID == id) || (id == "" && g.Name == name) {
			return g
		}
	}
	if id != "" {
		return nil
	}
	s.seq++
	g := &TagGroup{ID: fmt.Sprintf("et-group-%d", s.seq), Name: name}
	s.groups = append(s.groups, g)
	return g
}

func (s *Server) tagExistsLocked(id string) bool {
	for _, g := range s.groups {
		for _, t := range g.Tags {
			if t.ID == id {
				return true
			}
		}
	}
	return false
}

func tagGroupJSON(g *TagGroup, tags []Tag) map[string]any {
	list := make([]map[string]any, 0, len(tags))
	for i, t := range tags {
		list = append(list, map[string]any{"id": t.ID, "name": t.Name, "create_time": 1700000000, "order": i})
	}
	return map[string]any{"group_id": g.ID, "group_name": g.Name, "create_time": 1700000000, "order": 0, "tag": list}
}

func (s *Server) tagListLocked() []map[string]any {
	out := make([]map[string]any, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, tagGroupJSON(g, g.Tags))
	}
	return out
}

func (s *Server) addCorpTagLocked(body map[string]any) map[string]any {
	groupID, _ := body["group_id"].(string)
	groupName, _ := body["group_name"].(string)
	if groupID == "" && groupName == "" {
		return map[string]any{"errcode": 40058, "errmsg": "group_id or group_name required [errcode 40058]"}
	}
	g := s.groupLocked(groupID, groupName)
	if g == nil {
		return errBody(40068)
	}
	items, _ := body["tag"].([]any)
	var names []string
	for _, it := range items {
		m, _ := it.(map[string]any)
		name, _ := m["name"].(string)
		if name == "" {
			continue
		}
		if slices.Contains(names, name) || slices.ContainsFunc(g.Tags, func(t Tag) bool { return t.Name == name }) {
			return errBody(40071)
		}
		names = append(names, name)
	}
	var created []Tag
	for _, name := range names {
		s.seq++
		t := Tag{ID: fmt.Sprintf("et-tag-%d", s.seq), Name: name}
		g.Tags = append(g.Tags, t)
		created = append(created, t)
	}
	return ok(map[string]any{"tag_group": tagGroupJSON(g, created)})
}

func cloneGroup(g *TagGroup) TagGroup {
	return TagGroup{ID: g.ID, Name: g.Name, Tags: slices.Clone(g.Tags)}
}
