package engine

import (
	"context"
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
