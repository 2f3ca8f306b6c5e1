package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// change_external_tag (a tag edited or deleted in the admin console) owes a
// reload of the tag library, once per callback.
func TestTagChangeRefreshesTheLibrary(t *testing.T) {
	h := newHarness(t, scenarios.LoadDefault())
	ev := h.send(&bot.Event{Type: bot.EventTagChange, ChangeType: "delete", TagID: "etXXXXXXXXX", TagType: "tag"})
	h.handle(ev) // a replay
	got := h.actions(bot.ActionTagRefresh)
	if len(got) != 1 {
		t.Fatalf("tag_refresh actions = %d, want 1", len(got))
	}
	var p bot.TagRefresh
	if err := got[0].Decode(&p); err != nil || p.ChangeType != "delete" || p.ID != "etXXXXXXXXX" {
		t.Errorf("payload %+v, %v", p, err)
	}
}

func kfEvent(typ bot.EventType, member string, data map[string]string) *bot.Event {
	return &bot.Event{Type: typ, ExternalUserID: member, OpenKfID: "wkTEST", Data: data}
}

func kfActions(h *harness, member string) (sent, skipped []bot.Action) {
	for _, a := range h.actions(bot.ActionKfMessage) {
		if a.MemberID != member && !strings.Contains(string(a.Payload), member) {
			continue
		}
		if a.Status == bot.ActionSkipped {
			skipped = append(skipped, a)
		} else {
			sent = append(sent, a)
		}
	}
	return sent, skipped
}

// The 微信客服 session: greeting once on enter_session, the customer asks
// for a person (transfer to the first handoff staff, then the bot is silent),
// the person ends the session, the customer writes again and the bot answers.
func TestKfSessionGreetingHandoffAndReturn(t *testing.T) {
	sc := scenarios.LoadDefault()
	cp := *sc
	ai := *sc.AI
	ai.HandoffStaff = []string{"lisi"}
	cp.AI = &ai
	h := newHarness(t, &cp)
	enter := kfEvent(bot.EventKfEnter, "wm_k", map[string]string{"scene": "xhs", "welcome_code": "WELCOME-K"})
	h.send(enter)
	h.handle(enter)                                                                            // a replay greets no twice
	h.send(kfEvent(bot.EventKfEnter, "wm_k", map[string]string{"welcome_code": "WELCOME-K2"})) // re-opened: greeted already
	greets := h.actions(bot.ActionKfEventMessage)
	if len(greets) != 1 {
		t.Fatalf("greetings = %d, want 1", len(greets))
	}
	var g bot.KfEventMessage
	_ = greets[0].Decode(&g)
	if g.Code != "WELCOME-K" || !strings.Contains(g.Text, "茶饮顾问小山") || !greets[0].NotAfter.Equal(t0.Add(20*time.Second)) {
		t.Errorf("greeting %+v not_after %v", g, greets[0].NotAfter)
	}
	if m := h.member("wm_k"); m.Channel != "小红书" {
		t.Errorf("channel from scene: %q", m.Channel)
	}

	h.send(kf("wm_k", "人工"))
	trans := h.actions(bot.ActionKfTransfer)
	if len(trans) != 1 {
		t.Fatalf("transfers = %d", len(trans))
	}
	var tr bot.KfTransfer
	_ = trans[0].Decode(&tr)
	if tr.State != 3 || tr.Servicer != "lisi" || !trans[0].DueAt.After(t0) {
		t.Errorf("transfer %+v due %v", tr, trans[0].DueAt)
	}
	// WeCom moved it: the result comes back as an event.
	h.send(&bot.Event{Type: bot.EventActionResult, Data: map[string]string{bot.ResultKind: string(bot.ActionKfTransfer),
		"open_kfid": "wkTEST", "external_user_id": "wm_k", "state": "3", "servicer": "lisi"}})
	before := len(h.actions(bot.ActionKfMessage)) + len(h.actions(bot.ActionAIReply))
	h.send(kf("wm_k", "营业时间是多久"))
	if after := len(h.actions(bot.ActionKfMessage)) + len(h.actions(bot.ActionAIReply)); after != before {
		t.Fatalf("the bot answered while a person holds the session (%d → %d actions)", before, after)
	}
	// The person ends the session; the customer writes again.
	h.send(kfEvent(bot.EventKfSession, "wm_k", map[string]string{"change_type": "3"}))
	h.send(kf("wm_k", "营业时间是多久"))
	if after := len(h.actions(bot.ActionKfMessage)) + len(h.actions(bot.ActionAIReply)); after == before {
		t.Fatal("the bot stayed silent after the session ended and the customer wrote again")
	}
}

// One budget per kf customer: nothing to a customer who never wrote, at most
// 5 per customer message, nothing 48 h after it — recorded as skipped.
func TestKfSendBudget(t *testing.T) {
	h := newHarness(t, funnelScenario(t, ""))
	var s KfSession
	if got := kfRefusal(s, false, t0); !strings.Contains(got, "never wrote") {
		t.Errorf("never wrote: %q", got)
	}
	s = KfSession{LastCustomerAt: t0, State: kfStateNew}
	if got := kfRefusal(s, true, t0.Add(48*time.Hour+time.Minute)); !strings.Contains(got, "48 h") {
		t.Errorf("after 48 h: %q", got)
	}
	s.Sent = 5
	if got := kfRefusal(s, true, t0.Add(time.Hour)); !strings.Contains(got, "5 messages") {
		t.Errorf("6th: %q", got)
	}
	s.Sent, s.State, s.Servicer = 0, kfStatePerson, "lisi"
	if got := kfRefusal(s, true, t0); !strings.Contains(got, "lisi") {
		t.Errorf("person: %q", got)
	}

	// Through the engine: six keyword replies to one message budget → the sixth is skipped.
	h.send(kf("wm_b", "你好"))
	for range 5 {
		h.advance(11 * time.Minute) // past the auto-reply rate limit (3 per 10 min)
		h.send(&bot.Event{Type: bot.EventKfText, Source: bot.SourceAI, ExternalUserID: "wm_b", OpenKfID: "wkTEST", Content: "你好"})
	}
	sent, skipped := kfActions(h, "wm_b")
	if len(sent) != 5 || len(skipped) != 1 || !strings.Contains(skipped[0].LastError, "skipped: 5 messages") {
		t.Fatalf("sent %d skipped %d (%v)", len(sent), len(skipped), skipped)
	}
	// 49 h later a reply is outside the window.
	h.advance(49 * time.Hour)
	h.send(&bot.Event{Type: bot.EventKfText, Source: bot.SourceAI, ExternalUserID: "wm_b", OpenKfID: "wkTEST", Content: "你好"})
	_, skipped = kfActions(h, "wm_b")
	if len(skipped) != 2 || !strings.Contains(skipped[1].LastError, "48 h") {
		t.Fatalf("after 49 h: %v", skipped)
	}
	// A skipped action is never handed to a sender.
	due, err := h.store.DueActions(context.Background(), h.clock.Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range due {
		if a.Status == bot.ActionSkipped {
			t.Fatalf("skipped action %d is due", a.ID)
		}
	}
}

// On add, after the welcome, the engine asks for the customer's profile;
// the answer (externalcontact/get) teaches it the WeChat name, gender,
// unionid and the corp tags staff set by hand.
func TestProfileLearnedAfterAdd(t *testing.T) {
	h := newHarness(t, scenarios.LoadDefault())
	h.send(add("wm_p", "chayi01", "xhs", "wc-p"))
	profiles := h.actions(bot.ActionContactProfile)
	if len(profiles) != 1 || !profiles[0].DueAt.After(t0) {
		t.Fatalf("profile fetches %d", len(profiles))
	}
	raw := `{"external_user_id":"wm_p","name":"李四","gender":2,"unionid":"ozynqsulJFCZ2z1aYeS8h-nuasdAAA",` +
		`"follows":[{"staff_id":"chayi01","state":"xhs","tags":["宝妈"]}]}`
	h.send(&bot.Event{Type: bot.EventActionResult, Data: map[string]string{bot.ResultKind: string(bot.ActionContactProfile),
		"external_user_id": "wm_p", "profile": raw}})
	m := h.member("wm_p")
	if m.Name != "李四" || m.Gender != 2 || m.UnionID == "" || !slices.Contains(m.Tags, "宝妈") {
		t.Fatalf("member %+v", m)
	}
	// Learnt tags are not written back: they are on the customer already.
	for _, a := range h.actions(bot.ActionMarkTag) {
		if strings.Contains(string(a.Payload), "宝妈") {
			t.Errorf("learnt tag written back: %s", a.Payload)
		}
	}
	h.send(&bot.Event{Type: bot.EventContactEdit, ExternalUserID: "wm_p", StaffID: "chayi01"})
	if n := len(h.actions(bot.ActionContactProfile)); n != 2 {
		t.Errorf("edit: profile fetches %d, want 2", n)
	}
}

// A group create, a join and an owner or name change are read back with
// groupchat/get (issue 16's group detail); its result teaches the owner
// (who sends the group's mass-send tasks) and the name.
func TestGroupProfileLearned(t *testing.T) {
	h := newHarness(t, scenarios.LoadDefault())
	const chat = "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"
	h.send(add("wm_g", "chayi01", "xhs", "wc-g"))
	members := `[{"userid":"wm_g","type":2,"join_scene":3,"state":"qr-1","name":"小G"},{"userid":"chayi01","type":1}]`
	for i, ev := range []*bot.Event{
		{Type: bot.EventGroupCreate, ChatID: chat, StaffID: "chayi01"},
		join("wm_g", chat),
		{Type: bot.EventGroupUpdate, ChatID: chat, UpdateDetail: bot.GroupChangeOwner},
		{Type: bot.EventGroupUpdate, ChatID: chat, UpdateDetail: "change_notice"},
	} {
		h.send(ev)
		reads := h.actions(bot.ActionGroupDetail)
		if want := min(i+1, 3); len(reads) != want {
			t.Fatalf("after %s %s: groupchat/get actions %d, want %d (create, join, change_owner; not change_notice)", ev.Type, ev.UpdateDetail, len(reads), want)
		}
		h.answerGroupDetail(reads[len(reads)-1], map[string]string{"owner": "ZhuShengBen", "name": "销售客服群", bot.DataGroupMembers: members})
	}
	if m := h.member("wm_g"); !m.InGroup(chat) {
		t.Errorf("member groups %v", m.Groups)
	}
	var g groupRecord
	var inGroup []string
	err := h.store.View(context.Background(), func(tx bot.Tx) error {
		raw, err := tx.Get(bucketGroups, chat)
		if err != nil {
			return err
		}
		if inGroup, err = GroupMembers(tx, chat); err != nil {
			return err
		}
		return json.Unmarshal(raw, &g)
	})
	if err != nil || g.Owner != "ZhuShengBen" || g.Name != "销售客服群" || !slices.Equal(inGroup, []string{"wm_g"}) {
		t.Fatalf("group %+v, members %v, %v", g, inGroup, err)
	}
}

// WeCom's msg_send_fail names only the msgid: it lands on the kf action
// that sent it, which fails with the reason (the timeline says so); one
// for a message that isn't ours changes nothing.
func TestKfSendFailOntoTheAction(t *testing.T) {
	h := newHarness(t, scenarios.LoadDefault())
	h.send(kf("wm_f", "门店几点开门"))
	replies := h.actions(bot.ActionKfMessage)
	if len(replies) != 1 {
		t.Fatalf("replies %d", len(replies))
	}
	var p bot.KfMessage
	_ = replies[0].Decode(&p)
	if err := h.store.MarkSent(context.Background(), replies[0].ID, h.clock, "msgid="+p.MsgID); err != nil {
		t.Fatal(err)
	}
	h.send(kfEvent(bot.EventKfSendFail, "wm_f", map[string]string{"fail_msgid": "not-ours", "fail_type": "4"}))
	h.send(kfEvent(bot.EventKfSendFail, "wm_f", map[string]string{"fail_msgid": p.MsgID, "fail_type": "10"}))
	a, err := h.store.Action(context.Background(), replies[0].ID)
	if err != nil || a.Status != bot.ActionFailed || a.Result != bot.KfUndelivered || !strings.Contains(a.Detail, "refused by the customer") {
		t.Fatalf("action after msg_send_fail: %+v %v", a, err)
	}
}

// A kf follow-up with otherwise: mass_send goes as the staff member's
// mass-send task when 微信客服 may not reach the member then (the kf message
// is recorded skipped with its reason); within the budget it goes by kf.
func TestKfFollowUpReroutedToMassSend(t *testing.T) {
	sc, err := scenarios.LoadBytes("reroute.yaml", []byte(`brand: {name: 测试}
welcome:
  default:
    text: 你好
    follow_ups:
      - {after: 2h, via: kf, open_kfid: wkTEST, otherwise: mass_send, text: 新品到店啦}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	h.send(kf("wm_wrote", "你好")) // wrote to 微信客服 just before adding the staff member
	h.send(add("wm_wrote", "zhangsan", "", "WC-1"))
	h.send(add("wm_silent", "zhangsan", "", "WC-2"))
	h.followUps()
	status := map[string]string{}
	for _, a := range h.actions("") {
		if strings.HasPrefix(a.Key, "followup|") {
			status[a.MemberID+" "+string(a.Kind)] = a.Status
		}
	}
	want := map[string]string{
		"wm_wrote kf_message":  bot.ActionPending,
		"wm_silent kf_message": bot.ActionSkipped,
		"wm_silent mass_send":  bot.ActionBatched,
	}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("%s: %q, want %q (all: %v)", k, status[k], v, status)
		}
	}
	if _, ok := status["wm_wrote mass_send"]; ok {
		t.Errorf("a member inside the kf budget also got the mass send: %v", status)
	}
	for _, bad := range []string{"{after: 1h, via: mass_send, otherwise: mass_send, text: x}", "{after: 1h, via: kf, open_kfid: wk, otherwise: robot, text: x}"} {
		_, err := scenarios.LoadBytes("bad.yaml", []byte("brand: {name: 测试}\nwelcome:\n  default:\n    text: 你好\n    follow_ups:\n      - "+bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), "otherwise") {
			t.Errorf("%s: %v, want an error naming otherwise", bad, err)
		}
	}
}

// answerGroupDetail feeds back the result of groupchat/get action a, as the
// outbox does (data holds owner, name and members, or an outcome).
func (h *harness) answerGroupDetail(a bot.Action, data map[string]string) {
	h.t.Helper()
	var p bot.GroupDetail
	if err := a.Decode(&p); err != nil {
		h.t.Fatal(err)
	}
	d := map[string]string{bot.ResultKind: string(bot.ActionGroupDetail), bot.ResultKey: a.Key, "chat_id": p.ChatID}
	for k, v := range data {
		d[k] = v
	}
	h.send(&bot.Event{Type: bot.EventActionResult, DedupeKey: "result|" + a.Key + "|" + data[bot.DataOutcome], Data: d})
}

// A group is read by one groupchat/get at a time: joins while a read is
// owed and unanswered owe one more read once it is answered (which goes out
// after them, so it shows them), not one each; a failed read, or one owed
// longer than groupDetailStale, lets the next change read again. Against
// WeCom's 10,000 calls a minute, a livestream's joins into 50 groups owe
// ~50 reads in flight instead of one per joiner.
func TestGroupDetailOneReadPerGroupAtATime(t *testing.T) {
	h := newHarness(t, scenarios.LoadDefault())
	const chat, other = "wrLive01", "wrLive02"
	reads := func() []bot.Action { return h.actions(bot.ActionGroupDetail) }
	for i := range 5 {
		h.send(join(fmt.Sprintf("wm_j%d", i), chat))
	}
	h.send(join("wm_o", other))
	if got := reads(); len(got) != 2 {
		t.Fatalf("5 joins into one group and 1 into another owe %d reads, want 2", len(got))
	}
	first := reads()[0]
	var p bot.GroupDetail
	if err := first.Decode(&p); err != nil || p.ChatID != chat || !slices.Equal(p.Members, []string{"wm_j0"}) {
		t.Fatalf("first read %+v %v", p, err)
	}
	// Its answer owes the one more read the four later joins need.
	h.answerGroupDetail(first, map[string]string{bot.DataGroupMembers: `[{"userid":"wm_j0","type":2}]`})
	got := reads()
	if len(got) != 3 {
		t.Fatalf("after the answer: %d reads, want 3", len(got))
	}
	again := got[2]
	if err := again.Decode(&p); err != nil || p.ChatID != chat {
		t.Fatalf("read again %+v %v", p, err)
	}
	// A replayed answer of the first read changes nothing; the second's
	// answer, with no join since, owes nothing more.
	h.answerGroupDetail(first, map[string]string{bot.DataGroupMembers: `[]`})
	h.answerGroupDetail(again, map[string]string{bot.DataGroupMembers: `[]`})
	if n := len(reads()); n != 3 {
		t.Fatalf("answers with no join since owe %d reads, want 3", n)
	}
	// Answered: the next join reads at once.
	h.send(join("wm_j5", chat))
	got = reads()
	if len(got) != 4 {
		t.Fatalf("a join into an answered group: %d reads, want 4", len(got))
	}
	// A read that failed for good (its outcome fed back) frees the group.
	h.answerGroupDetail(got[3], map[string]string{bot.DataOutcome: "failed", bot.DataError: "errcode 45033"})
	h.send(join("wm_j6", chat))
	if n := len(reads()); n != 5 {
		t.Fatalf("a join after a failed read: %d reads, want 5", n)
	}
	// One never answered holds the group for groupDetailStale only.
	h.send(join("wm_j7", chat))
	if n := len(reads()); n != 5 {
		t.Fatalf("a join while a read is owed: %d reads, want 5", n)
	}
	h.advance(groupDetailStale + time.Minute)
	h.send(join("wm_j8", chat))
	if n := len(reads()); n != 6 {
		t.Fatalf("a join after an owed read went stale: %d reads, want 6", n)
	}
}
