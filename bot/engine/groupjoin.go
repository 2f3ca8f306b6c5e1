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

// fetchGroupDetail owes a groupchat/get of group g: on create and owner or
// name changes, and for the customers who just joined (joined: staff
// joining need no read). The caller stores g.
//
// One read per group at a time: while one is owed and unanswered, a join
// or change only marks g to be read once more when it is answered — that
// later read goes out after this event, so it shows this event's joiners
// whether or not the owed one did. A livestream's 700 joins a second into
// 50 groups owe ~50 reads in flight instead of 700 a second against
// groupchat/get's 10,000 a minute, and each result walks the group's
// members once instead of once per joiner.
func (r *run) fetchGroupDetail(g *groupRecord, joined []string) error {
	var customers []string
	for _, id := range joined {
		if isExternalID(id) {
			customers = append(customers, id)
		}
	}
	if joined != nil && len(customers) == 0 {
		return nil
	}
	if g.DetailOwed != "" && r.now.Sub(g.DetailSince) < groupDetailStale {
		g.DetailAgain = true
		return nil
	}
	key := "group_detail|" + r.ref
	if err := r.enqueue(bot.ActionGroupDetail, key, "", bot.GroupDetail{ChatID: g.ChatID, Members: customers}, time.Time{}, time.Time{}); err != nil {
		return err
	}
	g.DetailOwed, g.DetailSince, g.DetailAgain = key, r.now, false
	return nil
}

// groupDetailStale is how long an owed groupchat/get holds back the next:
// past it (an answer that never came back: a store restored from before
// the read, a result lost to an operator's purge) a join owes a read of
// its own again. A read is answered within seconds, or minutes behind
// WeCom's frequency limits.
const groupDetailStale = 15 * time.Minute

// groupDetailAnswered clears the read of g owed under key (its result or
// its failure came back) and owes the next one if joins came meanwhile.
// A result of another read (an older one, one owed before this version)
// leaves g's owed read alone.
func (r *run) groupDetailAnswered(g *groupRecord, key string) error {
	if key == "" || g.DetailOwed != key {
		return nil
	}
	again := g.DetailAgain
	g.DetailOwed, g.DetailSince, g.DetailAgain = "", time.Time{}, false
	if again {
		return r.fetchGroupDetail(g, nil)
	}
	return nil
}

// groupDetailFailed handles a groupchat/get that failed for good or whose
// outcome is unknown: the group's next join or change reads it again.
func (r *run) groupDetailFailed(d map[string]string) error {
	chat := d["chat_id"]
	if chat == "" {
		return nil
	}
	r.log.Warn().Str("chat", chat).Str("error", d[bot.DataError]).Msg("groupchat/get failed; the group is read again on its next change")
	return r.groupLearned(chat, "", "", d[bot.ResultKey])
}

// groupDetailResult learns the names of the group's members wecombot knows
// without one, and attributes the members groupchat/get shows with a join
// code's state: a member without a channel gets the group channel's (first
// touch wins), and every joiner through it gets its tags, once.
func (r *run) groupDetailResult(d map[string]string) error {
	if d[bot.DataOutcome] != "" {
		return r.groupDetailFailed(d)
	}
	chat := d["chat_id"]
	if chat == "" {
		return nil
	}
	var members []bot.SyncGroupMember
	if raw := d[bot.DataGroupMembers]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &members); err != nil {
			r.log.Warn().Err(err).Msg("group detail unreadable; skipped")
			members = nil
		}
	}
	if err := r.groupLearned(chat, d["owner"], d["name"], d[bot.ResultKey]); err != nil {
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
// sends the group's mass-send tasks; callbacks never name a new owner),
// and that the read owed under key is answered.
func (r *run) groupLearned(chat, owner, name, key string) error {
	g, err := r.loadGroup(chat)
	if err != nil {
		return err
	}
	owed := g.DetailOwed
	if err := r.groupDetailAnswered(g, key); err != nil {
		return err
	}
	if (owner == "" || g.Owner == owner) && (name == "" || g.Name == name) && g.DetailOwed == owed {
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
