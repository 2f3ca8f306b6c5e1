package fakewecom

import (
	"sort"
	"strconv"
	"time"
)

// Staff turnover APIs (在职继承 / 离职继承) and group QR codes (加入群聊).
const (
	APITransferCustomer         = "externalcontact/transfer_customer"
	APITransferResult           = "externalcontact/transfer_result"
	APIResignedTransferCustomer = "externalcontact/resigned/transfer_customer"
	APIResignedTransferResult   = "externalcontact/resigned/transfer_result"
	APIGroupChatOnJobTransfer   = "externalcontact/groupchat/onjob_transfer"
	APIGroupChatTransfer        = "externalcontact/groupchat/transfer"
	APIGetUnassignedList        = "externalcontact/get_unassigned_list"
	APIAddJoinWay               = "externalcontact/groupchat/add_join_way"
	APIGetJoinWay               = "externalcontact/groupchat/get_join_way"
)

// Transfer statuses (transfer_result).
const (
	TransferDone      = 1 // 接替完毕
	TransferWaiting   = 2 // 等待接替
	TransferRefused   = 3 // 客户拒绝
	TransferOverLimit = 4 // 接替成员客户达到上限
)

// codeNoRelation is WeCom's answer for a customer the handover staff member doesn't have.
const codeNoRelation = 84061

type transfer struct {
	from, to string
	customer string
	resigned bool
	status   int
	at       time.Time // when it completes
	takenAt  time.Time
}

// JoinWay is a group QR code the fake created.
type JoinWay struct {
	ConfigID     string
	State        string
	ChatIDs      []string
	AutoCreate   bool
	RoomBaseName string
	RoomBaseID   int
	QRCode       string
}

// SetResigned marks staff as departed: get_follow_user_list stops listing
// them and their customers become unassigned (get_unassigned_list) until
// resigned/transfer_customer moves them.
func (s *Server) SetResigned(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dirLocked()
	for _, id := range ids {
		d.resigned[id] = time.Now()
		for i, st := range d.staff {
			if st == id {
				d.staff = append(d.staff[:i:i], d.staff[i+1:]...)
				break
			}
		}
	}
}

// SetTransferDelay makes transfers complete after d (WeCom takes 24 h; the
// default 0 completes them at the first transfer_result).
func (s *Server) SetTransferDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirLocked().transferDelay = d
}

// RefuseTransfer makes the customer refuse being transferred (status 3,
// and the takeover staff member's transfer_fail callback in real WeCom).
func (s *Server) RefuseTransfer(externalUserID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirLocked().refuse[externalUserID] = true
}

// JoinWays returns the group QR codes created so far.
func (s *Server) JoinWays() []JoinWay {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]JoinWay(nil), s.dirLocked().joinWays...)
}

// hasRelationLocked reports whether staff has the customer.
func (d *directory) hasRelationLocked(staff, customer string) bool {
	for _, rel := range d.byStaff[staff] {
		if rel.customer == customer {
			return true
		}
	}
	return false
}

func strList(body map[string]any, k string) []string {
	raw, _ := body[k].([]any)
	var out []string
	for _, v := range raw {
		if s, _ := v.(string); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (s *Server) answerTurnoverLocked(api string, body map[string]any) (map[string]any, bool) {
	d := s.dirLocked()
	str := func(k string) string { v, _ := body[k].(string); return v }
	switch api {
	case APITransferCustomer, APIResignedTransferCustomer:
		resigned := api == APIResignedTransferCustomer
		from, to := str("handover_userid"), str("takeover_userid")
		ids := strList(body, "external_userid")
		if from == "" || to == "" || from == to {
			return invalidParam("handover_userid and takeover_userid must name two staff members"), true
		}
		if len(ids) == 0 || len(ids) > 100 {
			return invalidParam("external_userid must list 1-100 customers"), true
		}
		if msg := str("transfer_success_msg"); len([]rune(msg)) > 200 {
			return invalidParam("transfer_success_msg is longer than 200 characters"), true
		}
		_, gone := d.resigned[from]
		if resigned != gone {
			if resigned {
				return map[string]any{"errcode": 40098, "errmsg": "handover user is not resigned, more info at https://open.work.weixin.qq.com/devtool/query?e=40098"}, true
			}
			return map[string]any{"errcode": 40097, "errmsg": "handover user has resigned: use resigned/transfer_customer, more info at https://open.work.weixin.qq.com/devtool/query?e=40097"}, true
		}
		if d.outOfRange[to] {
			return errBody(60011), true
		}
		var out []map[string]any
		for _, id := range ids {
			code := 0
			if !d.hasRelationLocked(from, id) {
				code = codeNoRelation
			}
			out = append(out, map[string]any{"external_userid": id, "errcode": code})
			if code == 0 {
				d.transfers = append(d.transfers, &transfer{from: from, to: to, customer: id, resigned: resigned,
					status: TransferWaiting, at: time.Now().Add(d.transferDelay)})
			}
		}
		return ok(map[string]any{"customer": out}), true
	case APITransferResult, APIResignedTransferResult:
		resigned := api == APIResignedTransferResult
		from, to := str("handover_userid"), str("takeover_userid")
		scope := "transfer|" + from + "|" + to
		offset, valid := parseCursor(scope, str("cursor"))
		if !valid {
			return invalidParam("invalid cursor"), true
		}
		var mine []*transfer
		for _, t := range d.transfers {
			if t.from == from && t.to == to && t.resigned == resigned {
				s.settleLocked(t)
				mine = append(mine, t)
			}
		}
		list := []map[string]any{}
		next := ""
		for i := offset; i < len(mine); i++ {
			if len(list) == 100 {
				next = cursor(scope, i)
				break
			}
			item := map[string]any{"external_userid": mine[i].customer, "status": mine[i].status}
			if !mine[i].takenAt.IsZero() {
				item["takeover_time"] = mine[i].takenAt.Unix()
			}
			list = append(list, item)
		}
		return ok(map[string]any{"customer": list, "next_cursor": next}), true
	case APIGroupChatOnJobTransfer, APIGroupChatTransfer:
		resigned := api == APIGroupChatTransfer
		ids := strList(body, "chat_id_list")
		owner := str("new_owner")
		if len(ids) == 0 || len(ids) > 100 || owner == "" {
			return invalidParam("chat_id_list must list 1-100 groups and new_owner a staff member"), true
		}
		failed := []map[string]any{}
		for _, id := range ids {
			g := s.chats[id]
			_, ownerGone := d.resigned[g.ownerOr()]
			switch {
			case g == nil || g.Dismissed:
				failed = append(failed, map[string]any{"chat_id": id, "errcode": 40050, "errmsg": "chat not found"})
			case resigned && !ownerGone:
				failed = append(failed, map[string]any{"chat_id": id, "errcode": 90500, "errmsg": "the group owner has not resigned"})
			case !resigned && ownerGone:
				failed = append(failed, map[string]any{"chat_id": id, "errcode": 90501, "errmsg": "the group owner has resigned: use groupchat/transfer"})
			default:
				g.Owner = owner
			}
		}
		return ok(map[string]any{"failed_chat_list": failed}), true
	case APIGetUnassignedList:
		size, _ := intField(body, "page_size")
		if size <= 0 {
			size = 1000
		}
		if size > 1000 {
			return invalidParam("page_size must be 1-1000"), true
		}
		offset, valid := parseCursor("unassigned", str("cursor"))
		if !valid {
			return invalidParam("invalid cursor"), true
		}
		var all []map[string]any
		departed := make([]string, 0, len(d.resigned))
		for staff := range d.resigned {
			departed = append(departed, staff)
		}
		sort.Strings(departed)
		for _, staff := range departed {
			for _, rel := range d.byStaff[staff] {
				all = append(all, map[string]any{"handover_userid": staff, "external_userid": rel.customer,
					"dimission_time": d.resigned[staff].Unix()})
			}
		}
		end := min(offset+size, len(all))
		page := []map[string]any{}
		if offset < len(all) {
			page = all[offset:end]
		}
		next, last := "", end >= len(all)
		if !last {
			next = cursor("unassigned", end)
		}
		return ok(map[string]any{"info": page, "is_last": last, "next_cursor": next}), true
	case APIAddJoinWay:
		chats := strList(body, "chat_id_list")
		if scene, _ := intField(body, "scene"); scene != 1 && scene != 2 {
			return invalidParam("scene must be 1 or 2"), true
		}
		if len(chats) == 0 || len(chats) > 5 {
			return invalidParam("chat_id_list must list 1-5 groups"), true
		}
		if len([]rune(str("state"))) > 30 {
			return invalidParam("state is longer than 30 characters"), true
		}
		for _, id := range chats {
			if g := s.chats[id]; g == nil || g.Dismissed {
				return map[string]any{"errcode": 40050, "errmsg": "invalid chat_id " + id + ", more info at https://open.work.weixin.qq.com/devtool/query?e=40050"}, true
			}
		}
		auto, _ := intField(body, "auto_create_room")
		base, _ := intField(body, "room_base_id")
		if auto == 1 && str("room_base_name") == "" {
			return invalidParam("room_base_name is required with auto_create_room"), true
		}
		s.seq++
		jw := JoinWay{ConfigID: "jw-" + strconv.Itoa(s.seq), State: str("state"), ChatIDs: chats, AutoCreate: auto == 1,
			RoomBaseName: str("room_base_name"), RoomBaseID: base}
		jw.QRCode = "https://wework.example/join/" + jw.ConfigID
		d.joinWays = append(d.joinWays, jw)
		return ok(map[string]any{"config_id": jw.ConfigID}), true
	case APIGetJoinWay:
		id := str("config_id")
		for _, jw := range d.joinWays {
			if jw.ConfigID == id {
				auto := 0
				if jw.AutoCreate {
					auto = 1
				}
				return ok(map[string]any{"join_way": map[string]any{"config_id": jw.ConfigID, "scene": 2, "state": jw.State,
					"chat_id_list": jw.ChatIDs, "auto_create_room": auto, "room_base_name": jw.RoomBaseName,
					"room_base_id": jw.RoomBaseID, "qr_code": jw.QRCode}}), true
			}
		}
		return invalidParam("invalid config_id"), true
	}
	return nil, false
}

func (g *GroupChat) ownerOr() string {
	if g == nil {
		return ""
	}
	return g.Owner
}

// settleLocked completes a waiting transfer whose time has come: the
// relation moves from the handover to the takeover staff member.
func (s *Server) settleLocked(t *transfer) {
	d := s.dirLocked()
	if t.status != TransferWaiting || time.Now().Before(t.at) {
		return
	}
	if d.refuse[t.customer] {
		t.status = TransferRefused
		return
	}
	t.status, t.takenAt = TransferDone, time.Now()
	c := d.customers[t.customer]
	if c == nil {
		return
	}
	for i := range c.Follows {
		if c.Follows[i].StaffID != t.from {
			continue
		}
		list := d.byStaff[t.from]
		for j, rel := range list {
			if rel.customer == t.customer {
				d.byStaff[t.from] = append(list[:j:j], list[j+1:]...)
				break
			}
		}
		c.Follows[i].StaffID, c.Follows[i].AddedAt = t.to, t.takenAt
		d.byStaff[t.to] = append(d.byStaff[t.to], relation{customer: t.customer, follow: i})
		if !containsString(d.staff, t.to) {
			d.staff = append(d.staff, t.to)
		}
		return
	}
}
