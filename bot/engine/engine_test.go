package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

var t0 = time.Date(2025, 3, 3, 7, 30, 0, 0, time.FixedZone("CST", 8*3600))

// harness runs events through the engine on a real (unsynced) bbolt store, like the pipeline.
type harness struct {
	t     *testing.T
	sc    *scenarios.Scenario
	store *bolt.Store
	eng   *Engine
	clock time.Time
	n     int
}

func newHarness(t *testing.T, sc *scenarios.Scenario) *harness {
	h := &harness{t: t, sc: sc, store: newTestStore(t), clock: t0}
	h.eng = New(func() *scenarios.Scenario { return sc }, zerolog.Nop(), func() time.Time { return h.clock })
	return h
}

// send appends ev (At = clock, a fresh dedupe key unless set) and handles it.
func (h *harness) send(ev *bot.Event) *bot.Event {
	h.t.Helper()
	h.n++
	if ev.At.IsZero() {
		ev.At = h.clock
	}
	if ev.DedupeKey == "" {
		ev.DedupeKey = fmt.Sprintf("test|%d", h.n)
	}
	if _, err := h.store.AppendEvent(context.Background(), ev); err != nil {
		h.t.Fatal(err)
	}
	h.handle(ev)
	return ev
}

// handle runs Handle on ev in its own transaction (a replay when repeated).
func (h *harness) handle(ev *bot.Event) {
	h.t.Helper()
	err := h.store.Update(context.Background(), func(tx bot.Tx) error { return h.eng.Handle(context.Background(), tx, ev) })
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) member(id string) *bot.Member {
	h.t.Helper()
	var m *bot.Member
	err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { m, err = tx.Member(id); return err })
	if err != nil {
		h.t.Fatalf("member %s: %v", id, err)
	}
	return m
}

func (h *harness) actions(kind bot.ActionKind) []bot.Action {
	var out []bot.Action
	all, err := h.store.Actions(context.Background(), 0, 1<<20)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, a := range all {
		if kind == "" || a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

func (h *harness) memberCount() int {
	n := 0
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { n, err = tx.MemberCount(); return err }); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// newTestStore opens an unsynced bbolt store in a temp dir.
func newTestStore(t testing.TB) *bolt.Store {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "engine.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (h *harness) advance(d time.Duration) { h.clock = h.clock.Add(d) }

func add(member, staff, state, code string) *bot.Event {
	return &bot.Event{Type: bot.EventContactAdd, ExternalUserID: member, StaffID: staff, State: state, WelcomeCode: code}
}

func join(member, chat string) *bot.Event {
	return &bot.Event{Type: bot.EventGroupUpdate, ChatID: chat, UpdateDetail: bot.GroupAddMember, MemChangeList: []string{member}}
}

func kf(member, text string) *bot.Event {
	return &bot.Event{Type: bot.EventKfText, ExternalUserID: member, Content: text, OpenKfID: "wkTEST"}
}

func paid(member, id string, fen int64) *bot.Event {
	return &bot.Event{Type: bot.EventOrderPaid, ExternalUserID: member,
		Data: map[string]string{bot.DataOrderID: id, bot.DataAmountFen: strconv.FormatInt(fen, 10)}}
}

func refund(member, id string, fen int64) *bot.Event {
	ev := &bot.Event{Type: bot.EventOrderRefunded, ExternalUserID: member, Data: map[string]string{bot.DataOrderID: id}}
	if fen >= 0 {
		ev.Data[bot.DataAmountFen] = strconv.FormatInt(fen, 10)
	}
	return ev
}

func delFollow(member, staff string) *bot.Event {
	return &bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: member, StaffID: staff}
}

func markTags(t *testing.T, a bot.Action) bot.MarkTag {
	t.Helper()
	var p bot.MarkTag
	if err := a.Decode(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWelcomeOnAddExactlyOnce is the acceptance case: with the
// default scenario, add_external_contact with State and WelcomeCode yields
// exactly one welcome carrying the code and one mark_tag adding the stage-A
// and channel tags, even when the event is handled three times.
func TestWelcomeOnAddExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"replayed in new transactions", "appended three times past the log's dedupe"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, scenarios.LoadDefault())
			ev := add("wmAlice", "chayi01", "xhs", "WELCOME-CODE-1")
			ev.DedupeKey = "evt:event=change_external_contact|change=add_external_contact|time=1740958200|user=chayi01|ext=wmAlice"
			ev.Data = map[string]string{bot.DataName: "小艾"}
			ev.At = t0
			for i := 0; i < 3; i++ {
				if mode == "replayed in new transactions" {
					if i == 0 {
						h.store.AppendEvent(context.Background(), ev)
					}
					h.handle(ev)
					continue
				}
				e := *ev
				e.Seq = uint64(100 + i) // distinct log entries, same WeCom event
				h.handle(&e)
			}
			welcomes := h.actions(bot.ActionWelcome)
			if len(welcomes) != 1 {
				t.Fatalf("want 1 welcome, got %d", len(welcomes))
			}
			var w bot.WelcomeMessage
			if err := welcomes[0].Decode(&w); err != nil {
				t.Fatal(err)
			}
			if w.WelcomeCode != "WELCOME-CODE-1" || w.StaffID != "chayi01" || !strings.HasPrefix(w.Text, "哈喽小艾！看到你是从小红书来的") {
				t.Fatalf("welcome %+v", w)
			}
			if len(w.Attachments) != 2 || w.Attachments[1].Type != "miniprogram" || w.Attachments[1].Media == nil ||
				w.Attachments[1].Media.Name != "cover.png" || w.Attachments[1].Media.SHA256 == "" {
				t.Fatalf("attachments %+v", w.Attachments)
			}
			if !welcomes[0].NotAfter.Equal(t0.Add(20*time.Second)) || welcomes[0].MemberID != "wmAlice" {
				t.Fatalf("welcome not_after %v member %q", welcomes[0].NotAfter, welcomes[0].MemberID)
			}
			tags := h.actions(bot.ActionMarkTag)
			if len(tags) != 1 {
				t.Fatalf("want 1 mark_tag, got %d", len(tags))
			}
			p := markTags(t, tags[0])
			if !slices.Equal(p.Add, []string{"AIPL-认知", "来源-小红书"}) || len(p.Remove) != 0 || p.StaffID != "chayi01" || p.ExternalUserID != "wmAlice" {
				t.Fatalf("mark_tag %+v", p)
			}
			if p.Group != "客户阶段" || p.TagGroups["来源-小红书"] != "来源渠道" {
				t.Fatalf("tag groups %+v", p)
			}
			// Follow-ups of the 小红书 script: +1d and +3d, via the staff member's mass send.
			h.followUps() // planned for their slots
			fus := h.actions(bot.ActionMassSend)
			if len(fus) != 2 || !fus[0].DueAt.Equal(t0.Add(24*time.Hour)) || !fus[1].DueAt.Equal(t0.Add(72*time.Hour)) {
				t.Fatalf("follow-ups %+v", fus)
			}
			m := h.member("wmAlice")
			if m.Stage != bot.StageAware || m.Channel != "小红书" || m.State != "xhs" || len(m.StageHistory) != 1 || m.Name != "小艾" {
				t.Fatalf("member %+v", m)
			}
			if ch := m.StageHistory[0]; ch.Cause != CauseContactAdd || !ch.At.Equal(t0) || ch.From != bot.StageNone {
				t.Fatalf("history %+v", ch)
			}
		})
	}
}

func TestWelcomeDefaultScriptAndNoCode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, scenarios.LoadDefault())
	h.send(add("wmBob", "chayi02", "unknown_state", "CODE-B"))
	var w bot.WelcomeMessage
	welcomes := h.actions(bot.ActionWelcome)
	if len(welcomes) != 1 || welcomes[0].Decode(&w) != nil || !strings.HasPrefix(w.Text, "茶友你好，欢迎来到山茶集") {
		t.Fatalf("default script for an unknown state: %+v", w)
	}
	if m := h.member("wmBob"); m.Channel != "" || m.State != "unknown_state" {
		t.Fatalf("member %+v", m)
	}
	// Without a welcome code (welcome set in the admin console) nothing is sent,
	// but the member is still tagged.
	h.send(add("wmCarol", "chayi02", "website", ""))
	if len(h.actions(bot.ActionWelcome)) != 1 {
		t.Fatal("no code, no welcome")
	}
	p := markTags(t, h.actions(bot.ActionMarkTag)[1])
	if !slices.Equal(p.Add, []string{"AIPL-认知", "来源-官网"}) {
		t.Fatalf("tags %+v", p)
	}
}

// funnelScenario is a small scenario with the given funnel settings.
func funnelScenario(t *testing.T, funnel string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadBytes("funnel.yaml", []byte(`brand: {name: 测试}
tags:
  阶段: [A, I, P, L, 流失]
  渠道: [小红书]
  偏好: [打卡党, 种草, 沉默]
funnel:
  stages:
    aware: {tag: A}
    interest: {tag: I}
    purchase: {tag: P}
    loyal: {tag: L}
  lost_tag: 流失
`+funnel+`
channels:
  - {state: xhs, name: 小红书, tags: [小红书]}
keywords:
  rules:
    - {name: 你好, keywords: [你好], reply: 你好呀}
campaigns:
  - {name: 打卡, days: 30, windows: ["00:00-24:00"], keywords: [打卡], messages: {checked_in: "第{{.CheckIns}}天"}}
tag_rules:
  - {name: 打卡党, when: {check_ins: 2}, add: [打卡党]}
  - {name: 种草, when: {channel: 小红书, stage: interest}, add: [种草]}
`))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestFunnelRules(t *testing.T) {
	t.Parallel()
	const m = "wmM"
	cases := []struct {
		name   string
		funnel string
		events []*bot.Event
		stage  bot.Stage
		causes []string
		lost   bool
		check  func(t *testing.T, h *harness, mem *bot.Member)
	}{
		{name: "contact add → aware", events: []*bot.Event{add(m, "s1", "", "")},
			stage: bot.StageAware, causes: []string{"contact_add"}},
		{name: "join group → interest", events: []*bot.Event{add(m, "s1", "", ""), join(m, "wrG")},
			stage: bot.StageInterest, causes: []string{"contact_add", "join_group"},
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if !mem.InGroup("wrG") {
					t.Error("member should be in the group")
				}
			}},
		{name: "kf chat → interest", events: []*bot.Event{add(m, "s1", "", ""), kf(m, "随便问问")},
			stage: bot.StageInterest, causes: []string{"contact_add", "kf_chat"}},
		{name: "check-in → interest (only check_in configured)", funnel: "  interest_on: [check_in]\n",
			events: []*bot.Event{add(m, "s1", "", ""), kf(m, "随便问问"), join(m, "wrG"), kf(m, "打卡")},
			stage:  bot.StageInterest, causes: []string{"contact_add", "check_in"},
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if mem.CheckIns != 1 {
					t.Errorf("check-ins %d", mem.CheckIns)
				}
			}},
		{name: "interest_on empty: nothing moves to interest", funnel: "  interest_on: []\n",
			events: []*bot.Event{add(m, "s1", "", ""), kf(m, "打卡"), join(m, "wrG")},
			stage:  bot.StageAware, causes: []string{"contact_add"}},
		{name: "first paid order → purchase, skipping interest", events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 3900)},
			stage: bot.StagePurchase, causes: []string{"contact_add", "first_order"}},
		{name: "loyal by spend (default 2000 yuan)", events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 150000), paid(m, "o2", 50000)},
			stage: bot.StageLoyal, causes: []string{"contact_add", "first_order", "loyal_spend"},
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if mem.SpendFen != 200000 || mem.Orders != 2 {
					t.Errorf("spend %d orders %d", mem.SpendFen, mem.Orders)
				}
			}},
		{name: "spend just below threshold stays purchase", events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 199999)},
			stage: bot.StagePurchase, causes: []string{"contact_add", "first_order"}},
		{name: "loyal by order count", funnel: "  loyal_orders: 3\n",
			events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 100), paid(m, "o2", 100), paid(m, "o3", 100)},
			stage:  bot.StageLoyal, causes: []string{"contact_add", "first_order", "loyal_orders"}},
		{name: "spend rule off", funnel: "  loyal_spend_yuan: 0\n",
			events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 99999900)},
			stage:  bot.StagePurchase, causes: []string{"contact_add", "first_order"}},
		{name: "duplicate order webhook counts once", funnel: "  loyal_orders: 2\n",
			events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 100), paid(m, "o1", 100)},
			stage:  bot.StagePurchase, causes: []string{"contact_add", "first_order"},
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if mem.Orders != 1 || mem.SpendFen != 100 {
					t.Errorf("orders %d spend %d", mem.Orders, mem.SpendFen)
				}
			}},
		{name: "no backward move: purchase member joins a group", events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 100), join(m, "wrG"), kf(m, "你好")},
			stage: bot.StagePurchase, causes: []string{"contact_add", "first_order"}},
		{name: "no backward move: re-adding staff keeps the stage", events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 100), add(m, "s2", "", "")},
			stage: bot.StagePurchase, causes: []string{"contact_add", "first_order"}},
		{name: "refund reverses spend but not the stage", funnel: "  loyal_spend_yuan: 100\n",
			events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 6000), paid(m, "o2", 6000), refund(m, "o2", -1)},
			stage:  bot.StageLoyal, causes: []string{"contact_add", "first_order", "loyal_spend"},
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if mem.SpendFen != 6000 || mem.Orders != 1 {
					t.Errorf("after full refund of o2: spend %d orders %d", mem.SpendFen, mem.Orders)
				}
			}},
		{name: "partial refund keeps the order counted", events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 6000), refund(m, "o1", 1000)},
			stage: bot.StagePurchase, causes: []string{"contact_add", "first_order"},
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if mem.SpendFen != 5000 || mem.Orders != 1 {
					t.Errorf("spend %d orders %d", mem.SpendFen, mem.Orders)
				}
			}},
		{name: "refund with allow_backward: loyal → purchase", funnel: "  loyal_spend_yuan: 100\n  allow_backward: true\n",
			events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 6000), paid(m, "o2", 6000), refund(m, "o2", -1)},
			stage:  bot.StagePurchase, causes: []string{"contact_add", "first_order", "loyal_spend", "refund"}},
		{name: "refund of the only order with allow_backward: back to interest", funnel: "  allow_backward: true\n",
			events: []*bot.Event{add(m, "s1", "", ""), join(m, "wrG"), paid(m, "o1", 6000), refund(m, "o1", -1)},
			stage:  bot.StageInterest, causes: []string{"contact_add", "join_group", "first_order", "refund"}},
		{name: "refund replayed applies once", events: []*bot.Event{add(m, "s1", "", ""), paid(m, "o1", 6000),
			{Type: bot.EventOrderRefunded, ExternalUserID: m, DedupeKey: "r1", Data: map[string]string{bot.DataOrderID: "o1", bot.DataAmountFen: "1000"}},
			{Type: bot.EventOrderRefunded, ExternalUserID: m, DedupeKey: "r1", Data: map[string]string{bot.DataOrderID: "o1", bot.DataAmountFen: "1000"}}},
			stage: bot.StagePurchase, causes: []string{"contact_add", "first_order"},
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if mem.SpendFen != 5000 {
					t.Errorf("spend %d", mem.SpendFen)
				}
			}},
		{name: "order before the member is known applies on add", events: []*bot.Event{paid(m, "o1", 3900), add(m, "s1", "", "")},
			stage: bot.StagePurchase, causes: []string{"contact_add", "first_order"}},
		{name: "lost when the customer deletes the only staff member", events: []*bot.Event{add(m, "s1", "", ""), join(m, "wrG"), delFollow(m, "s1")},
			stage: bot.StageInterest, causes: []string{"contact_add", "join_group"}, lost: true,
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				p := markTags(t, h.actions(bot.ActionMarkTag)[len(h.actions(bot.ActionMarkTag))-1])
				if !slices.Equal(p.Add, []string{"流失"}) || p.StaffID != "s1" || len(p.Remove) != 0 {
					t.Errorf("lost tag action %+v", p)
				}
				if f := mem.Follow("s1"); f.Active() || f.DeletedBy != "customer" {
					t.Errorf("follow %+v", f)
				}
			}},
		{name: "not lost while another staff member remains", events: []*bot.Event{add(m, "s1", "", ""), add(m, "s2", "", ""), delFollow(m, "s1")},
			stage: bot.StageAware, causes: []string{"contact_add"}},
		{name: "staff deleting the customer: lost, no tag written", events: []*bot.Event{add(m, "s1", "", ""),
			{Type: bot.EventContactDel, ExternalUserID: m, StaffID: "s1"}},
			stage: bot.StageAware, causes: []string{"contact_add"}, lost: true,
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if n := len(h.actions(bot.ActionMarkTag)); n != 1 {
					t.Errorf("want only the add's mark_tag, got %d", n)
				}
			}},
		{name: "lost member comes back", events: []*bot.Event{add(m, "s1", "", ""), delFollow(m, "s1"), add(m, "s1", "", "")},
			stage: bot.StageAware, causes: []string{"contact_add"},
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if mem.HasTag("流失") {
					t.Error("lost tag should go")
				}
				p := markTags(t, h.actions(bot.ActionMarkTag)[2])
				if !slices.Equal(p.Add, []string{"A"}) {
					t.Errorf("the renewed relation gets every tag: %+v", p)
				}
			}},
		{name: "tag rules: channel+stage and check-in count", events: []*bot.Event{add(m, "s1", "xhs", ""), kf(m, "打卡"),
			{Type: bot.EventKfText, ExternalUserID: m, Content: "打卡", At: t0.Add(24 * time.Hour)}},
			stage: bot.StageInterest, causes: []string{"contact_add", "kf_chat"},
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if !mem.HasTag("种草") || !mem.HasTag("打卡党") || mem.CheckIns != 2 {
					t.Errorf("tags %v check-ins %d", mem.Tags, mem.CheckIns)
				}
			}},
		{name: "check-ins count once per day", events: []*bot.Event{add(m, "s1", "", ""), kf(m, "打卡"), kf(m, "打卡")},
			stage: bot.StageInterest, causes: []string{"contact_add", "kf_chat"},
			check: func(t *testing.T, h *harness, mem *bot.Member) {
				if mem.CheckIns != 1 || mem.HasTag("打卡党") {
					t.Errorf("check-ins %d tags %v", mem.CheckIns, mem.Tags)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, funnelScenario(t, tc.funnel))
			for _, ev := range tc.events {
				h.advance(time.Minute)
				h.send(ev)
			}
			mem := h.member(m)
			if mem.Stage != tc.stage {
				t.Errorf("stage %q, want %q", mem.Stage, tc.stage)
			}
			var causes []string
			for i, ch := range mem.StageHistory {
				causes = append(causes, ch.Cause)
				if i > 0 && ch.From != mem.StageHistory[i-1].To {
					t.Errorf("history not chained: %+v", mem.StageHistory)
				}
			}
			if !slices.Equal(causes, tc.causes) {
				t.Errorf("causes %v, want %v", causes, tc.causes)
			}
			if mem.Lost != tc.lost {
				t.Errorf("lost %v, want %v", mem.Lost, tc.lost)
			}
			// The stage tag on the member is exactly the current stage's.
			for _, s := range bot.Stages {
				if tag := h.sc.Funnel.StageTag(s); mem.HasTag(tag) != (s == mem.Stage) {
					t.Errorf("stage %s tag %s present=%v (tags %v)", mem.Stage, tag, mem.HasTag(tag), mem.Tags)
				}
			}
			if tc.check != nil {
				tc.check(t, h, mem)
			}
		})
	}
}

func TestStageTagSwapOnMove(t *testing.T) {
	t.Parallel()
	h := newHarness(t, funnelScenario(t, ""))
	h.send(add("wmM", "s1", "", ""))
	h.send(join("wmM", "wrG"))
	tags := h.actions(bot.ActionMarkTag)
	if len(tags) != 2 {
		t.Fatalf("mark_tag actions %d", len(tags))
	}
	if p := markTags(t, tags[1]); !slices.Equal(p.Add, []string{"I"}) || !slices.Equal(p.Remove, []string{"A"}) {
		t.Fatalf("move should add the new stage tag and remove the old: %+v", p)
	}
}

func TestKeywordReplyAndRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, scenarios.LoadDefault())
	h.send(add("wmA", "chayi01", "xhs", ""))
	replies := func() []string {
		var out []string
		for _, a := range h.actions(bot.ActionKfMessage) {
			var p bot.KfMessage
			a.Decode(&p)
			out = append(out, p.Text)
		}
		return out
	}
	h.send(kf("wmA", "拿铁多少钱？"))
	if r := replies(); len(r) != 1 || !strings.HasPrefix(r[0], "招牌山茶拿铁") {
		t.Fatalf("replies %q", r)
	}
	var p bot.KfMessage
	h.actions(bot.ActionKfMessage)[0].Decode(&p)
	if p.OpenKfID != "wkTEST" || p.ExternalUserID != "wmA" || len(p.MsgID) != 32 {
		t.Fatalf("kf message %+v", p)
	}
	if m := h.member("wmA"); !m.HasTag("关注价格") || m.Stage != bot.StageInterest {
		t.Fatalf("tags %v stage %s", m.Tags, m.Stage)
	}
	// A replay of the same message neither replies twice nor counts twice.
	last := h.send(kf("wmA", "门店在哪"))
	h.handle(last)
	h.handle(last)
	if r := replies(); len(r) != 2 {
		t.Fatalf("replay doubled the reply: %q", r)
	}
	h.advance(time.Minute)
	h.send(kf("wmA", "我的积分"))
	h.advance(time.Minute)
	h.send(kf("wmA", "领券")) // 4th within 10 minutes: limited
	if r := replies(); len(r) != 3 {
		t.Fatalf("rate limit: %d replies %q", len(r), r)
	}
	if m := h.member("wmA"); !m.HasTag("爱领券") {
		t.Error("a rate-limited message still tags the member")
	}
	h.advance(10 * time.Minute)
	h.send(kf("wmA", "领券"))
	if r := replies(); len(r) != 4 {
		t.Fatalf("after the window: %d replies", len(r))
	}
	// No keyword: no reply (left to the AI pipeline).
	h.advance(time.Hour)
	h.send(kf("wmA", "今天天气真好"))
	if len(replies()) != 4 {
		t.Fatal("no rule matched, no reply")
	}
}

func TestHandoffNotifiesStaff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, scenarios.LoadDefault())
	h.send(&bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wmA", StaffID: "chayi01", State: "douyin", Data: map[string]string{bot.DataName: "阿明"}})
	h.send(kf("wmA", "转人工"))
	msgs := h.actions(bot.ActionStaffMessage)
	if len(msgs) != 1 {
		t.Fatalf("staff messages %d", len(msgs))
	}
	var p bot.StaffMessage
	msgs[0].Decode(&p)
	if !slices.Equal(p.ToUsers, []string{"chayi01"}) || p.Text != "客户阿明（来自抖音，阶段：兴趣）请求人工服务，请尽快在企业微信回复。" {
		t.Fatalf("%+v", p)
	}
}

func TestAppTextReply(t *testing.T) {
	t.Parallel()
	h := newHarness(t, scenarios.LoadDefault())
	h.send(&bot.Event{Type: bot.EventAppText, StaffID: "chayi01", Content: "help"})
	h.send(&bot.Event{Type: bot.EventAppText, StaffID: "chayi01", Content: "价格"}) // kf-only rule
	msgs := h.actions(bot.ActionStaffMessage)
	if len(msgs) != 1 {
		t.Fatalf("staff messages %d", len(msgs))
	}
	var p bot.StaffMessage
	msgs[0].Decode(&p)
	if !slices.Equal(p.ToUsers, []string{"chayi01"}) || !strings.HasPrefix(p.Text, "wecombot 在线") {
		t.Fatalf("%+v", p)
	}
}

func TestTemplateRuntimeFailureFallsBack(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("t.yaml", []byte(`brand: {name: 测试}
welcome:
  default:
    text: "你好{{slice .Name 0 6}}，欢迎"
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	ev := add("wmA", "s1", "", "CODE")
	ev.Data = map[string]string{bot.DataName: "李"}
	h.send(ev)
	var w bot.WelcomeMessage
	if err := h.actions(bot.ActionWelcome)[0].Decode(&w); err != nil {
		t.Fatal(err)
	}
	if w.Text != "你好{{slice .Name 0 6}}，欢迎" {
		t.Fatalf("want the plain text, got %q", w.Text)
	}
}

func TestGroupEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, funnelScenario(t, ""))
	h.send(&bot.Event{Type: bot.EventGroupCreate, ChatID: "wrG", StaffID: "owner"})
	h.send(add("wmA", "s1", "", ""))
	// Staff ids in the list are ignored; unknown customers become members.
	h.send(&bot.Event{Type: bot.EventGroupUpdate, ChatID: "wrG", UpdateDetail: bot.GroupAddMember, MemChangeList: []string{"wmA", "staffX", "wmNew"}})
	if a, n := h.member("wmA"), h.member("wmNew"); !a.InGroup("wrG") || !n.InGroup("wrG") || n.Stage != bot.StageInterest || a.Stage != bot.StageInterest {
		t.Fatalf("join: %+v %+v", a, n)
	}
	if h.memberCount() != 2 {
		t.Fatal("staff must not become a member")
	}
	groupMembers := func(chat string) []string {
		t.Helper()
		var ids []string
		if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { ids, err = GroupMembers(tx, chat); return err }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := groupMembers("wrG"); !slices.Equal(got, []string{"wmA", "wmNew"}) {
		t.Fatalf("group members after the join: %v", got)
	}
	h.send(&bot.Event{Type: bot.EventGroupUpdate, ChatID: "wrG", UpdateDetail: bot.GroupDelMember, MemChangeList: []string{"wmA"}})
	if h.member("wmA").InGroup("wrG") || !slices.Equal(groupMembers("wrG"), []string{"wmNew"}) {
		t.Fatalf("leave: %v", groupMembers("wrG"))
	}
	h.send(&bot.Event{Type: bot.EventGroupDismiss, ChatID: "wrG"})
	if h.member("wmNew").InGroup("wrG") || len(groupMembers("wrG")) != 0 {
		t.Fatal("dismiss should empty the group")
	}
	// A record written when members were a list in it: its members move
	// to group_members when the group is next loaded.
	if err := h.store.Update(context.Background(), func(tx bot.Tx) error {
		return tx.Put(bot.BucketGroups, "wrOld", []byte(`{"chat_id":"wrOld","owner":"owner","members":["wmA","wmNew"]}`))
	}); err != nil {
		t.Fatal(err)
	}
	h.send(&bot.Event{Type: bot.EventGroupUpdate, ChatID: "wrOld", UpdateDetail: bot.GroupDelMember, MemChangeList: []string{"wmA"}})
	if got := groupMembers("wrOld"); !slices.Equal(got, []string{"wmNew"}) {
		t.Fatalf("legacy record's members: %v", got)
	}
	// wmNew never added a staff member: its tags wait for the relation.
	for _, a := range h.actions(bot.ActionMarkTag) {
		if a.MemberID == "wmNew" {
			t.Fatal("no relation, no mark_tag")
		}
	}
	h.send(add("wmNew", "s1", "", ""))
	last := h.actions(bot.ActionMarkTag)
	if p := markTags(t, last[len(last)-1]); p.ExternalUserID != "wmNew" || !slices.Equal(p.Add, []string{"I"}) {
		t.Fatalf("tags on first relation: %+v", p)
	}
}

func TestGroupWelcomeSync(t *testing.T) {
	t.Parallel()
	h := newHarness(t, scenarios.LoadDefault())
	h.send(&bot.Event{Type: bot.EventGroupWelcomeSync, Source: bot.SourceOperator})
	h.send(&bot.Event{Type: bot.EventGroupWelcomeSync, Source: bot.SourceOperator})
	acts := h.actions(bot.ActionGroupWelcome)
	if len(acts) != 2 {
		t.Fatalf("want one action per template, once: %d", len(acts))
	}
	var p bot.GroupWelcome
	acts[0].Decode(&p)
	if p.Name != "default" || !strings.Contains(p.Text, "%NICKNAME%") || len(p.Attachments) != 1 {
		t.Fatalf("%+v", p)
	}
}

func TestFollowUpViaKf(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("f.yaml", []byte(`brand: {name: 测试}
welcome:
  default:
    text: 你好
    follow_ups:
      - {after: 2h, via: kf, open_kfid: wkX, text: "{{.Name}}，还在吗"}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	h.send(add("wmA", "s1", "", ""))
	h.followUps()
	acts := h.actions(bot.ActionKfMessage)
	if len(acts) != 1 || !acts[0].DueAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("%+v", acts)
	}
	var p bot.KfMessage
	acts[0].Decode(&p)
	if p.OpenKfID != "wkX" || p.Text != "，还在吗" {
		t.Fatalf("%+v", p)
	}
}

func TestIgnoresBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, funnelScenario(t, ""))
	for _, ev := range []*bot.Event{
		{Type: bot.EventContactAdd},
		{Type: bot.EventOrderPaid, ExternalUserID: "wmA", Data: map[string]string{bot.DataOrderID: "o1", bot.DataAmountFen: "abc"}},
		{Type: bot.EventOrderPaid, ExternalUserID: "wmA", Data: map[string]string{bot.DataAmountFen: "100"}},
		{Type: bot.EventOrderRefunded, ExternalUserID: "wmA", Data: map[string]string{bot.DataOrderID: "never"}},
		{Type: bot.EventContactDelFollow, ExternalUserID: "wmNobody", StaffID: "s1"},
		{Type: bot.EventContactTransferFail, ExternalUserID: "wmA", StaffID: "s1", FailReason: "customer_refused"},
		{Type: bot.EventKfNotify}, {Type: bot.EventUnknown},
	} {
		h.send(ev)
	}
	if h.memberCount() != 0 || len(h.actions("")) != 0 {
		t.Fatalf("bad input changed state: %d members %d actions", h.memberCount(), len(h.actions("")))
	}
}

func TestContactEditLearnsExistingContact(t *testing.T) {
	t.Parallel()
	h := newHarness(t, funnelScenario(t, ""))
	h.send(&bot.Event{Type: bot.EventContactEdit, ExternalUserID: "wmOld", StaffID: "s1"})
	m := h.member("wmOld")
	if m.Stage != bot.StageAware || m.StageHistory[0].Cause != CauseContactEdit || !m.Follow("s1").Active() {
		t.Fatalf("%+v", m)
	}
	// Tags of that existing relation are unknown: only the change is written.
	if p := markTags(t, h.actions(bot.ActionMarkTag)[0]); !slices.Equal(p.Add, []string{"A"}) {
		t.Fatalf("%+v", p)
	}
}

func TestHotSwappedScenarioIsUsedPerEvent(t *testing.T) {
	t.Parallel()
	a, b := funnelScenario(t, ""), funnelScenario(t, "  interest_on: []\n")
	cur := a
	h := newHarness(t, a)
	h.eng = New(func() *scenarios.Scenario { return cur }, zerolog.Nop(), func() time.Time { return h.clock })
	h.send(add("wmA", "s1", "", ""))
	cur = b
	h.send(join("wmA", "wrG"))
	if h.member("wmA").Stage != bot.StageAware {
		t.Fatal("the reloaded scenario should apply to the next event")
	}
}
