package fakewecom

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Directory APIs: the brand's existing customers and customer groups.
const (
	APIGetFollowUserList = "externalcontact/get_follow_user_list"
	APIBatchGetByUser    = "externalcontact/batch/get_by_user"
	APIContactList       = "externalcontact/list"
	APIGroupChatList     = "externalcontact/groupchat/list"
)

// SendAPIs are the calls that put a message in front of a customer, a
// group or staff: a test that imports members asserts none was made.
var SendAPIs = []string{APISendWelcomeMsg, APIAddMsgTemplate, APIMessageSend, APIKfSendMsg, APIWebhookSend}

// DefaultRateLimit is how many calls per minute the fake takes on one API
// before answering 45009: WeCom's documented per-corp, per-API limit
// ("每个企业调用单个cgi/api不可超过1万次/分").
const DefaultRateLimit = 10000

// Customer is an external contact with the staff who have added them.
type Customer struct {
	ExternalUserID string
	Name           string
	UnionID        string
	Follows        []FollowInfo
}

// FollowInfo is one staff member's relation to a customer (follow_info).
type FollowInfo struct {
	StaffID string
	Remark  string
	AddedAt time.Time
	TagIDs  []string
	// State is the contact way's state the customer added through.
	State string
}

// directory is the fake's customer and group data.
type directory struct {
	staff      []string
	outOfRange map[string]bool
	forbidden  map[string]bool
	customers  map[string]*Customer
	// byStaff lists each staff member's relations in the order they were added.
	byStaff map[string][]relation
	// Staff turnover and group QR codes (turnover.go).
	resigned      map[string]time.Time
	refuse        map[string]bool
	transfers     []*transfer
	transferDelay time.Duration
	joinWays      []JoinWay
	// rate counts calls per API in the current minute window.
	rateLimit map[string]int
	rate      map[string]*rateWindow
}

type relation struct {
	customer string
	follow   int // index into Customer.Follows
}

type rateWindow struct {
	start time.Time
	n     int
}

func (s *Server) dirLocked() *directory {
	if s.dir == nil {
		s.dir = &directory{outOfRange: map[string]bool{}, forbidden: map[string]bool{}, customers: map[string]*Customer{},
			byStaff: map[string][]relation{}, rateLimit: map[string]int{}, rate: map[string]*rateWindow{},
			resigned: map[string]time.Time{}, refuse: map[string]bool{}}
	}
	return s.dir
}

// AddStaff makes staff members with the customer contact feature
// (get_follow_user_list lists them).
func (s *Server) AddStaff(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dirLocked()
	for _, id := range ids {
		if !containsString(d.staff, id) {
			d.staff = append(d.staff, id)
		}
	}
}

// SetOutOfRange puts staff outside the app's visible range (可见范围):
// batch/get_by_user naming them answers 60011.
func (s *Server) SetOutOfRange(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.dirLocked().outOfRange[id] = true
	}
}

// Forbid makes api answer 48002 (the app lacks the permission) until
// Allow; it models a permission that was never granted or was revoked.
func (s *Server) Forbid(api string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirLocked().forbidden[api] = true
}

// Allow undoes Forbid.
func (s *Server) Allow(api string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.dirLocked().forbidden, api)
}

// SetRateLimit sets how many calls per minute api takes before 45009
// (default DefaultRateLimit; 0 restores it).
func (s *Server) SetRateLimit(api string, perMinute int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirLocked().rateLimit[api] = perMinute
}

// AddCustomer adds a customer and their staff relations; staff not yet
// known are added too. Adding an existing customer adds the new relations.
func (s *Server) AddCustomer(c Customer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dirLocked()
	cur := d.customers[c.ExternalUserID]
	if cur == nil {
		cur = &Customer{ExternalUserID: c.ExternalUserID, Name: c.Name, UnionID: c.UnionID}
		d.customers[c.ExternalUserID] = cur
	}
	for _, f := range c.Follows {
		if !containsString(d.staff, f.StaffID) {
			d.staff = append(d.staff, f.StaffID)
		}
		f.TagIDs = append([]string(nil), f.TagIDs...)
		cur.Follows = append(cur.Follows, f)
		d.byStaff[f.StaffID] = append(d.byStaff[f.StaffID], relation{customer: c.ExternalUserID, follow: len(cur.Follows) - 1})
	}
}

// RemoveFollow removes a relation, as when the customer deletes the staff member.
func (s *Server) RemoveFollow(externalUserID, staffID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dirLocked()
	list := d.byStaff[staffID]
	for i, rel := range list {
		if rel.customer == externalUserID {
			d.byStaff[staffID] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	s.reindexLocked(externalUserID)
}

// reindexLocked drops follows no staff list refers to and renumbers the rest.
func (s *Server) reindexLocked(externalUserID string) {
	d := s.dirLocked()
	c := d.customers[externalUserID]
	if c == nil {
		return
	}
	var keep []FollowInfo
	for _, f := range c.Follows {
		for _, rel := range d.byStaff[f.StaffID] {
			if rel.customer == externalUserID {
				keep = append(keep, f)
				break
			}
		}
	}
	c.Follows = keep
	for staff, list := range d.byStaff {
		for i, rel := range list {
			if rel.customer != externalUserID {
				continue
			}
			for j, f := range keep {
				if f.StaffID == staff {
					list[i].follow = j
				}
			}
		}
	}
}

// SetFollow changes a relation's remark and tags (the staff edited them).
func (s *Server) SetFollow(externalUserID, staffID, remark string, tagIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.dirLocked().customers[externalUserID]
	if c == nil {
		return
	}
	for i := range c.Follows {
		if c.Follows[i].StaffID == staffID {
			c.Follows[i].Remark = remark
			c.Follows[i].TagIDs = append([]string(nil), tagIDs...)
		}
	}
}

// markTagLocked applies a mark_tag to the relation, so a later
// batch/get_by_user shows the tags like WeCom does.
func (s *Server) markTagLocked(staffID, externalUserID string, body map[string]any) {
	c := s.dirLocked().customers[externalUserID]
	if c == nil {
		return
	}
	for i := range c.Follows {
		f := &c.Follows[i]
		if f.StaffID != staffID {
			continue
		}
		add, _ := body["add_tag"].([]any)
		remove, _ := body["remove_tag"].([]any)
		for _, v := range add {
			if id, _ := v.(string); id != "" && !containsString(f.TagIDs, id) {
				f.TagIDs = append(f.TagIDs, id)
			}
		}
		for _, v := range remove {
			id, _ := v.(string)
			for j, have := range f.TagIDs {
				if have == id {
					f.TagIDs = append(f.TagIDs[:j:j], f.TagIDs[j+1:]...)
					break
				}
			}
		}
	}
}

// Customers returns every customer with at least one relation.
func (s *Server) Customers() []Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Customer
	for _, c := range s.dirLocked().customers {
		if len(c.Follows) > 0 {
			cp := *c
			cp.Follows = append([]FollowInfo(nil), c.Follows...)
			out = append(out, cp)
		}
	}
	return out
}

// AddGroupMember adds a member to a group (a join).
func (s *Server) AddGroupMember(chatID string, m GroupMember) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.chats[chatID]; g != nil {
		g.Members = append(g.Members, m)
	}
}

// GroupChats returns the groups not dismissed, by chat id.
func (s *Server) GroupChats() []GroupChat {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []GroupChat
	for _, id := range s.liveChatsLocked() {
		g := s.chats[id]
		cp := *g
		cp.Members = append([]GroupMember(nil), g.Members...)
		out = append(out, cp)
	}
	return out
}

// liveChatsLocked lists the ids of the groups not dismissed, in order.
func (s *Server) liveChatsLocked() []string {
	var ids []string
	for id, g := range s.chats {
		if !g.Dismissed {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// SendCount is how many calls reached the APIs in SendAPIs.
func (s *Server) SendCount() int {
	n := 0
	for _, api := range SendAPIs {
		n += s.Count(api)
	}
	return n
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func invalidParam(what string) map[string]any {
	return map[string]any{"errcode": 40058, "errmsg": what + ", more info at https://open.work.weixin.qq.com/devtool/query?e=40058"}
}

// limitLocked enforces the per-API rate and permissions for the
// directory's APIs; it returns an answer when the call is refused.
func (d *directory) limitLocked(api string, now time.Time) map[string]any {
	if d.forbidden[api] {
		return errBody(48002)
	}
	limit := d.rateLimit[api]
	if limit <= 0 {
		limit = DefaultRateLimit
	}
	w := d.rate[api]
	if w == nil || now.Sub(w.start) >= time.Minute {
		w = &rateWindow{start: now}
		d.rate[api] = w
	}
	w.n++
	if w.n > limit {
		return errBody(45009)
	}
	return nil
}

// cursor encodes an offset tied to the request it continues, so a cursor
// used with other parameters is refused like WeCom refuses it.
func cursor(scope string, offset int) string {
	h := fnv.New32a()
	h.Write([]byte(scope))
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%08x:%d", h.Sum32(), offset)))
}

func parseCursor(scope, c string) (int, bool) {
	if c == "" {
		return 0, true
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	hash, off, ok := strings.Cut(string(raw), ":")
	h := fnv.New32a()
	h.Write([]byte(scope))
	if !ok || hash != fmt.Sprintf("%08x", h.Sum32()) {
		return 0, false
	}
	n, err := strconv.Atoi(off)
	return n, err == nil && n >= 0
}

func intField(body map[string]any, k string) (int, bool) {
	v, ok := body[k].(float64)
	return int(v), ok
}

// answerDirectoryLocked answers the directory APIs (handled=false for others).
func (s *Server) answerDirectoryLocked(api string, r *http.Request, body map[string]any) (status int, answer map[string]any, handled bool) {
	switch api {
	case APIGetFollowUserList, APIBatchGetByUser, APIContactList, APIGroupChatList:
	default:
		if answer, handled := s.answerTurnoverLocked(api, body); handled {
			return http.StatusOK, answer, true
		}
		return 0, nil, false
	}
	d := s.dirLocked()
	if refused := d.limitLocked(api, time.Now()); refused != nil {
		return http.StatusOK, refused, true
	}
	switch api {
	case APIGetFollowUserList:
		return http.StatusOK, ok(map[string]any{"follow_user": append([]string{}, d.staff...)}), true
	case APIContactList:
		staff := r.URL.Query().Get("userid")
		if d.outOfRange[staff] {
			return http.StatusOK, errBody(60011), true
		}
		ids := []string{}
		for _, rel := range d.byStaff[staff] {
			ids = append(ids, rel.customer)
		}
		return http.StatusOK, ok(map[string]any{"external_userid": ids}), true
	case APIBatchGetByUser:
		return http.StatusOK, s.batchGetByUserLocked(body), true
	case APIGroupChatList:
		return http.StatusOK, s.groupChatListLocked(body), true
	}
	return 0, nil, false
}

func (s *Server) batchGetByUserLocked(body map[string]any) map[string]any {
	d := s.dirLocked()
	raw, _ := body["userid_list"].([]any)
	var staff []string
	for _, v := range raw {
		if id, _ := v.(string); id != "" {
			staff = append(staff, id)
		}
	}
	if len(staff) == 0 || len(staff) > 100 {
		return invalidParam("userid_list must name 1-100 userids")
	}
	for _, id := range staff {
		if d.outOfRange[id] {
			return errBody(60011)
		}
	}
	limit, has := intField(body, "limit")
	if !has || limit == 0 {
		limit = 50
	}
	if limit < 0 || limit > 100 {
		return invalidParam("limit must be 1-100")
	}
	scope := "batch|" + strings.Join(staff, ",")
	cur, _ := body["cursor"].(string)
	offset, valid := parseCursor(scope, cur)
	if !valid {
		return invalidParam("invalid cursor")
	}
	list := []map[string]any{}
	pos := 0
	next := ""
	for _, id := range staff {
		rels := d.byStaff[id]
		if pos+len(rels) <= offset {
			pos += len(rels)
			continue
		}
		for _, rel := range rels[max(offset-pos, 0):] {
			if len(list) == limit {
				next = cursor(scope, offset+len(list))
				break
			}
			c := d.customers[rel.customer]
			f := c.Follows[rel.follow]
			tags := append([]string{}, f.TagIDs...)
			list = append(list, map[string]any{
				"external_contact": map[string]any{"external_userid": c.ExternalUserID, "name": c.Name, "type": 1, "unionid": c.UnionID},
				"follow_info": map[string]any{"userid": f.StaffID, "remark": f.Remark, "createtime": f.AddedAt.Unix(),
					"tag_id": tags, "state": f.State, "add_way": 1},
			})
		}
		pos += len(rels)
		if next != "" {
			break
		}
	}
	return ok(map[string]any{"external_contact_list": list, "next_cursor": next})
}

func (s *Server) groupChatListLocked(body map[string]any) map[string]any {
	limit, has := intField(body, "limit")
	if !has || limit < 1 || limit > 1000 {
		return invalidParam("limit is required, 1-1000")
	}
	cur, _ := body["cursor"].(string)
	offset, valid := parseCursor("groups", cur)
	if !valid {
		return invalidParam("invalid cursor")
	}
	live := s.liveChatsLocked()
	list := []map[string]any{}
	next := ""
	for i := offset; i < len(live); i++ {
		if len(list) == limit {
			next = cursor("groups", i)
			break
		}
		list = append(list, map[string]any{"chat_id": live[i], "status": 0})
	}
	return ok(map[string]any{"group_chat_list": list, "next_cursor": next})
}
