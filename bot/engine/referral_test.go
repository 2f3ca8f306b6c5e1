package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

func referralScenario(t *testing.T) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadBytes("ref.yaml", []byte(`brand: {name: 测试, zone: Asia/Shanghai}
tags:
  渠道: [好友推荐]
  偏好: [达人]
channels:
  - {state: xhs, name: 小红书}
coupons:
  - {name: 邀请券, generate: {prefix: INV-, length: 8}}
referral:
  keywords: [邀请]
  channel: 推荐
  tags: [好友推荐]
  hold: 24h
  pending: 生成中
  code_ready: 你的邀请码
  rewards:
    - {invites: 1, points: 50, text: 第一位好友}
    - {invites: 2, coupon: 邀请券, tag: 达人}
`))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func (h *harness) referrer(id string) ReferrerRecord {
	h.t.Helper()
	var rec *ReferrerRecord
	err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { rec, err = Referral(tx, id); return err })
	if err != nil || rec == nil {
		h.t.Fatalf("referral record of %s: %v %v", id, rec, err)
	}
	return *rec
}

// contactWayResult is what the pipeline appends once WeCom made the code.
func contactWayResult(a bot.Action) *bot.Event {
	var cw bot.ContactWay
	_ = a.Decode(&cw)
	return &bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result|" + a.Key, ExternalUserID: a.MemberID,
		Data: map[string]string{bot.ResultKind: string(a.Kind), bot.ResultKey: a.Key, "state": cw.State,
			"config_id": "cfg-" + cw.State, "qr_code": "https://wework.example/qr/" + cw.State}}
}

// TestReferralCodeAndCredit walks a referrer through the programme: the
// invite code is asked for once (an outbox action) and sent when WeCom
// returns it; invitees count after the hold; self-invites, repeat invitees,
// existing members and invitees who leave within the hold don't; rewards
// are given once at each threshold.
func TestReferralCodeAndCredit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, referralScenario(t))
	h.send(add("wmA", "s1", "xhs", ""))
	ask := h.send(kf("wmA", "我要邀请好友"))
	h.handle(ask) // replay
	ways := h.actions(bot.ActionContactWay)
	if len(ways) != 1 {
		t.Fatalf("contact_way actions = %d, want 1", len(ways))
	}
	var cw bot.ContactWay
	_ = ways[0].Decode(&cw)
	if cw.State != "r:1" || len(cw.Staff) != 1 || cw.Staff[0] != "s1" || len([]rune(cw.State)) > 30 {
		t.Fatalf("contact way = %+v", cw)
	}
	if texts := kfTexts(h); len(texts) != 1 || texts[0] != "生成中" {
		t.Fatalf("first reply = %q", texts)
	}
	h.send(contactWayResult(ways[0]))
	texts := kfTexts(h)
	if len(texts) != 2 || !strings.Contains(texts[1], "你的邀请码\nhttps://wework.example/qr/r:1") {
		t.Fatalf("code delivery = %q", texts)
	}
	// Asking again answers from the store.
	h.send(kf("wmA", "邀请"))
	if n := len(h.actions(bot.ActionContactWay)); n != 1 {
		t.Fatalf("asked WeCom %d times", n)
	}

	// An existing member (known before) adds through the code: not an invite.
	h.send(add("wmOld", "s2", "", ""))
	h.advance(time.Hour)
	h.send(add("wmOld", "s1", "r:1", ""))
	// The referrer adds another staff member through their own code.
	h.send(add("wmA", "s2", "r:1", ""))
	// A new friend: pending until the hold ends.
	h.send(add("wmB", "s1", "r:1", ""))
	if m := h.member("wmB"); m.Channel != "推荐" || !m.HasTag("好友推荐") {
		t.Errorf("invitee attribution: channel %q tags %v", m.Channel, m.Tags)
	}
	// A friend who leaves within the hold.
	h.send(add("wmC", "s1", "r:1", ""))
	h.advance(2 * time.Hour)
	h.send(delFollow("wmC", "s1"))
	if rec := h.referrer("wmA"); rec.Pending != 1 || rec.Counted != 0 || rec.Void != 1 {
		t.Fatalf("during the hold: %+v", rec)
	}
	// 24 h later any event settles the hold.
	h.advance(23 * time.Hour)
	h.send(kf("wmZ", "你好"))
	rec := h.referrer("wmA")
	if rec.Counted != 1 || rec.Pending != 0 || rec.Void != 1 {
		t.Fatalf("after the hold: %+v", rec)
	}
	if m := h.member("wmA"); m.Points != 50 {
		t.Errorf("points = %d, want 50", m.Points)
	}
	if texts := kfTexts(h); !strings.Contains(texts[len(texts)-1], "第一位好友") {
		t.Errorf("reward text not delivered: %q", texts[len(texts)-1])
	}
	// wmB deletes and re-adds through the code: counted once only. wmC
	// comes back: void stays void.
	h.send(delFollow("wmB", "s1"))
	h.send(add("wmB", "s1", "r:1", ""))
	h.send(add("wmC", "s1", "r:1", ""))
	h.advance(25 * time.Hour)
	h.send(kf("wmZ", "你好"))
	if rec := h.referrer("wmA"); rec.Counted != 1 {
		t.Fatalf("repeat invitee counted again: %+v", rec)
	}
	// A second real friend reaches the coupon threshold, once.
	h.send(add("wmD", "s1", "r:1", ""))
	h.advance(24 * time.Hour)
	ev := h.send(kf("wmZ", "你好"))
	h.handle(ev)
	rec = h.referrer("wmA")
	if rec.Counted != 2 || len(rec.Rewarded) != 2 {
		t.Fatalf("after the second friend: %+v", rec)
	}
	codes := memberCoupons(t, h, "wmA")
	if len(codes) != 1 || codes[0].Hook != "referral:2" || !strings.HasPrefix(codes[0].Code, "INV-") {
		t.Fatalf("reward coupon = %+v", codes)
	}
	if m := h.member("wmA"); !m.HasTag("达人") || m.Points != 50 {
		t.Errorf("reward tag/points: %v %d", m.Tags, m.Points)
	}
	var leaders []ReferralLeader
	_ = h.store.View(context.Background(), func(tx bot.Tx) (err error) { leaders, err = ReferralLeaders(tx, 10); return err })
	if len(leaders) != 1 || leaders[0].Member != "wmA" || leaders[0].Counted != 2 {
		t.Errorf("leaders = %+v", leaders)
	}
}

// TestReferralUnknownStateIsNotCredited: a forged or foreign r: state
// credits nobody and still makes the member.
func TestReferralUnknownStateIsNotCredited(t *testing.T) {
	t.Parallel()
	h := newHarness(t, referralScenario(t))
	h.send(add("wmX", "s1", "r:zz", ""))
	if m := h.member("wmX"); m.Stage != bot.StageAware {
		t.Fatalf("member = %+v", m)
	}
	var n int
	_ = h.store.View(context.Background(), func(tx bot.Tx) error {
		return tx.Scan(bucketReferralInvitees, "", func(string, []byte) bool { n++; return true })
	})
	if n != 0 {
		t.Errorf("recorded %d invitees for an unknown code", n)
	}
}
