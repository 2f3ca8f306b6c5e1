package engine

import (
	"context"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// result is the event the pipeline appends once action a was sent and
// WeCom returned data.
func result(a bot.Action, data map[string]string) *bot.Event {
	d := map[string]string{bot.ResultKind: string(a.Kind), bot.ResultKey: a.Key}
	for k, v := range data {
		d[k] = v
	}
	return &bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result|" + a.Key, Data: d}
}

func TestGroupWelcomeTemplateIDIsLearntThenEdited(t *testing.T) {
	t.Parallel()
	sc := scenarios.LoadDefault()
	h := newHarness(t, sc)
	h.send(GroupWelcomeSyncEvent(sc.Version, h.clock))
	first := h.actions(bot.ActionGroupWelcome)
	if len(first) != len(sc.GroupWelcomes) {
		t.Fatalf("%d actions for %d templates", len(first), len(sc.GroupWelcomes))
	}
	for i, a := range first {
		var p bot.GroupWelcome
		a.Decode(&p)
		if p.TemplateID != "" {
			t.Fatalf("first sync should add, got template id %q", p.TemplateID)
		}
		h.send(result(a, map[string]string{"template_id": "tpl-" + p.Name, "name": p.Name}))
		_ = i
	}
	// Same scenario again (restart after the dedupe TTL): nothing new.
	h.send(GroupWelcomeSyncEvent(sc.Version, h.clock))
	if n := len(h.actions(bot.ActionGroupWelcome)); n != len(first) {
		t.Fatalf("unchanged templates synced again: %d actions", n)
	}
	// The operator edits the default template's text: one edit, with the learnt id.
	sc2, err := scenarios.LoadBytes("g.yaml", []byte("brand: {name: 测试}\ngroup_welcome:\n  default:\n    text: 新的欢迎语 %NICKNAME%\n"))
	if err != nil {
		t.Fatal(err)
	}
	h.sc = sc2
	h.eng = New(func() *scenarios.Scenario { return sc2 }, h.eng.log, func() time.Time { return h.clock })
	h.send(GroupWelcomeSyncEvent(sc2.Version, h.clock))
	all := h.actions(bot.ActionGroupWelcome)
	if len(all) != len(first)+1 {
		t.Fatalf("want one edit, have %d actions", len(all))
	}
	var p bot.GroupWelcome
	all[len(all)-1].Decode(&p)
	if p.TemplateID != "tpl-default" || p.Text != "新的欢迎语 %NICKNAME%" {
		t.Fatalf("edit %+v", p)
	}
}

func TestContactWayCreate(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("c.yaml", []byte(`brand: {name: 测试}
channels:
  - {state: xhs, name: 小红书, staff: [lisi, zhangsan]}
  - {state: poster, name: 门店海报, skip_verify: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	req := func(data map[string]string) {
		h.send(&bot.Event{Type: bot.EventContactWayCreate, Source: bot.SourceOperator, Data: data})
	}
	req(map[string]string{"state": "xhs"})
	req(map[string]string{"state": "xhs"})                                  // again: no second code
	req(map[string]string{"state": "poster"})                               // no staff anywhere: refused
	req(map[string]string{"state": "a-state-that-is-longer-than-30-chars"}) // too long: refused
	req(map[string]string{"state": "poster", "staff": "wangwu"})
	acts := h.actions(bot.ActionContactWay)
	if len(acts) != 2 {
		t.Fatalf("%d contact way actions, want 2", len(acts))
	}
	var xhs, poster bot.ContactWay
	acts[0].Decode(&xhs)
	acts[1].Decode(&poster)
	if xhs.State != "xhs" || len(xhs.Staff) != 2 || xhs.Staff[0] != "lisi" || xhs.Verify || xhs.Remark != "小红书" {
		t.Fatalf("xhs %+v", xhs)
	}
	if poster.State != "poster" || poster.Staff[0] != "wangwu" || !poster.Verify {
		t.Fatalf("poster %+v", poster)
	}
	h.send(result(acts[0], map[string]string{"state": "xhs", "config_id": "cfg1", "qr_code": "https://qr/xhs.png"}))
	var rec *ContactWayRecord
	var all []ContactWayRecord
	err = h.store.View(context.Background(), func(tx bot.Tx) (err error) {
		if rec, err = ContactWay(tx, "xhs"); err != nil {
			return err
		}
		all, err = ContactWays(tx)
		return err
	})
	if err != nil || rec == nil || rec.ConfigID != "cfg1" || rec.QRCode != "https://qr/xhs.png" || rec.Created.IsZero() {
		t.Fatalf("record %+v %v", rec, err)
	}
	if len(all) != 2 || all[1].State != "xhs" || all[0].ConfigID != "" {
		t.Fatalf("records %+v", all)
	}
}

func TestGuardCancelsFollowUpsOfLostMembers(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("f.yaml", []byte(`brand: {name: 测试}
welcome:
  default:
    text: 你好
    follow_ups:
      - {after: 2h, text: 还在吗}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	h.send(add("wmA", "s1", "", ""))
	h.send(add("wmB", "s1", "", ""))
	h.send(add("wmB", "s2", "", ""))
	h.send(delFollow("wmA", "s1")) // lost
	h.send(delFollow("wmB", "s1")) // still follows s2, but s1's follow-up can't go
	h.followUps()                  // planned before she was lost: queued after, canceled by the guard
	guard := func(member, sender string) string {
		for _, a := range h.actions(bot.ActionMassSend) {
			var p bot.MassSend
			a.Decode(&p)
			if a.MemberID == member && p.Sender == sender {
				if a.Purpose != bot.PurposeFollowUp {
					t.Fatalf("follow-up %s enqueued with purpose %q", a.Key, a.Purpose)
				}
				var reason string
				check := Guard(&a)
				if check == nil {
					t.Fatalf("follow-up %s has no guard check", a.Key)
				}
				if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { reason, err = check(tx); return err }); err != nil {
					t.Fatal(err)
				}
				return reason
			}
		}
		t.Fatalf("no follow-up for %s from %s", member, sender)
		return ""
	}
	for _, a := range h.actions(bot.ActionMarkTag) {
		if Guard(&a) != nil {
			t.Fatalf("%s needs no check before sending, got one", a.Key)
		}
	}
	if r := guard("wmA", "s1"); r == "" {
		t.Error("follow-up to a lost member not canceled")
	}
	if r := guard("wmB", "s1"); r == "" {
		t.Error("follow-up from a deleted staff member not canceled")
	}
	if r := guard("wmB", "s2"); r != "" {
		t.Errorf("follow-up to an active relation canceled: %s", r)
	}
}
