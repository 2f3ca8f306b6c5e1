package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// Group channels: a scenario channel with `group:` is a 加入群聊 QR code
// (groupchat/add_join_way) whose state WeCom reports, per member, in
// groupchat/get. The code is created through the outbox like a contact me
// code (results.go stores its config_id and qr_code); a join through a QR
// code (change_external_chat JoinScene 3) owes a groupchat/get whose result
// attributes the new members to the channel and tags them.

// JoinSceneQRCode is change_external_chat's JoinScene for a join through a
// group QR code.
const JoinSceneQRCode = 3

// bucketGroupJoins: "<state>\x1f<member>" → present, once per member and code,
// so a re-delivered detail counts and tags a join once.
const bucketGroupJoins = bot.BucketGroupJoins

// groupJoinWayCreate asks WeCom for the channel's group QR code.
func (r *run) groupJoinWayCreate(ch *scenarios.Channel, remark string) error {
	if remark == "" {
		remark = ch.Name
	}
	jw := bot.GroupJoinWay{State: ch.State, ChatIDs: ch.Group.ChatIDs, Remark: truncate(remark, MaxStateLen),
		AutoCreate: ch.Group.AutoCreate, RoomBaseName: ch.Group.RoomBaseName, RoomBaseID: ch.Group.RoomBaseID}
	rec, err := ContactWay(r.tx, ch.State)
	if err != nil {
		return err
	}
	if rec == nil || rec.ConfigID == "" {
		rec = &ContactWayRecord{State: ch.State, Remark: jw.Remark, ChatIDs: jw.ChatIDs, Requested: r.now}
		if err := r.putJSON(bucketContactWays, ch.State, rec); err != nil {
			return err
		}
	}
	// Keyed by the groups: asking again for the same code is a no-op.
	key := "group_join_way|" + ch.State + "|" + shortHash(strings.Join(jw.ChatIDs, ","))
	return r.enqueue(bot.ActionGroupJoinWay, key, "", jw, time.Time{}, time.Time{})
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// fetchGroupDetail owes a groupchat/get: on create and owner or name
// changes, and for the customers who just joined (joined: staff joining
// need no read).
func (r *run) fetchGroupDetail(chatID string, joined []string) error {
	var customers []string
	for _, id := range joined {
		if isExternalID(id) {
			customers = append(customers, id)
		}
	}
	if joined != nil && len(customers) == 0 {
		return nil
	}
	return r.enqueue(bot.ActionGroupDetail, "group_detail|"+r.ref, "", bot.GroupDetail{ChatID: chatID, Members: customers}, time.Time{}, time.Time{})
}

// groupDetailResult learns the names of the group's members wecombot knows
// without one, and attributes the members groupchat/get shows with a join
// code's state: a member without a channel gets the group channel's (first
// touch wins), and every joiner through it gets its tags, once.
func (r *run) groupDetailResult(d map[string]string) error {
	var members []bot.SyncGroupMember
	if err := json.Unmarshal([]byte(d[bot.DataGroupMembers]), &members); err != nil {
		r.log.Warn().Err(err).Msg("group detail unreadable; skipped")
		return nil
	}
	chat := d["chat_id"]
	if err := r.groupLearned(chat, d["owner"], d["name"]); err != nil {
		return err
	}
	for _, gm := range members {
		if !gm.Customer() {
			continue
		}
		ms, err := r.member(gm.UserID, false)
		if err != nil {
			return err
		}
		if ms == nil || !ms.m.InGroup(chat) {
			continue // left again, or never recorded
		}
		if ms.m.Name == "" && gm.Name != "" {
			ms.m.Name, ms.dirty = gm.Name, true
		}
		if gm.State == "" {
			continue
		}
		key := gm.State + "\x1f" + gm.UserID
		if done, err := r.has(bucketGroupJoins, key); err != nil || done {
			return err
		}
		if err := r.tx.Put(bucketGroupJoins, key, present); err != nil {
			return err
		}
		r.attribute(ms, gm.State)
		ch := r.sc.ChannelByState(gm.State)
		if ch == nil {
			r.log.Warn().Str("state", gm.State).Str("member", gm.UserID).Msg("joined through a group QR code whose state no channel names; add it under channels to attribute and tag")
			continue
		}
		for _, t := range ch.Tags {
			r.addTag(ms, t)
		}
		r.log.Info().Str("member", gm.UserID).Str("channel", ch.Name).Str("chat", chat).Msg("joined through a group QR code")
	}
	return nil
}

// groupLearned stores the owner and name groupchat/get reported (the owner
// sends the group's mass-send tasks; callbacks never name a new owner).
func (r *run) groupLearned(chat, owner, name string) error {
	if chat == "" || (owner == "" && name == "") {
		return nil
	}
	g, err := r.loadGroup(chat)
	if err != nil {
		return err
	}
	if (owner == "" || g.Owner == owner) && (name == "" || g.Name == name) {
		return nil
	}
	if owner != "" {
		g.Owner = owner
	}
	if name != "" {
		g.Name = name
	}
	return r.putJSON(bucketGroups, chat, g)
}

// GroupJoins counts the members who joined through each group QR code (by state).
func GroupJoins(tx bot.Tx) (map[string]int, error) {
	out := map[string]int{}
	err := tx.Scan(bucketGroupJoins, "", func(k string, _ []byte) bool {
		state, _, _ := strings.Cut(k, "\x1f")
		out[state]++
		return true
	})
	return out, err
}

// shortHash is a short, stable digest for action keys.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}
