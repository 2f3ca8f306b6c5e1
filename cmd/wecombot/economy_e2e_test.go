package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// TestKfRedemptionEndToEnd runs the real server against the fake WeCom with
// the demo scenario: a signed shop order earns the member 300 points (and
// 高级), she asks 「兑换」 in 微信客服 and gets what she can afford, then
// 「兑换 1」 redeems a 满30减10券 — one kf/send_msg with a fresh code, 200
// points debited, stock counted — although WeCom delivers the callback
// three times and the next pull repeats the message; after a restart the
// repeated message redeems nothing more.
func TestKfRedemptionEndToEnd(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	const secret = "shop-economy-secret"
	env["WECOMBOT_SHOP_SECRET"] = secret
	in := startServe(t, env)

	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "chayi01", ExternalUser: "wm_eco", State: "xhs", WelcomeCode: "WC-ECO"}, 1)
	eventuallyT(t, "welcome sent", 5*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 1 })
	order := `{"event":"order.paid","order_id":"ECO-1","external_userid":"wm_eco","amount_fen":30000}`
	if code, body := in.postOrder(t, order, time.Now().Unix(), secret); code != 200 {
		t.Fatalf("order: %d %s", code, body)
	}
	type member struct {
		Member struct {
			Points int64  `json:"points"`
			Level  string `json:"level"`
		} `json:"member"`
		Sections map[string]json.RawMessage `json:"sections"`
	}
	memberNow := func() member {
		code, body := in.get(t, "/api/v1/members/wm_eco")
		if code != 200 {
			t.Fatalf("member: %d %s", code, body)
		}
		var m member
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	eventuallyT(t, "order points", 5*time.Second, func() bool { return memberNow().Member.Points == 300 })
	if m := memberNow(); m.Member.Level != "高级" {
		t.Fatalf("level %q at 300 points", m.Member.Level)
	}

	now := time.Now()
	ask := fakewecom.KfText("kfmsg-eco-1", "wk_shop", "wm_eco", "兑换", now)
	redeem := fakewecom.KfText("kfmsg-eco-2", "wk_shop", "wm_eco", "兑换 1", now)
	fake.ScriptKf("kf-token-eco-1", "", fakewecom.KfPage{Msgs: []map[string]any{ask}, NextCursor: "cur-1"})
	fake.ScriptKf("kf-token-eco-2", "cur-1", fakewecom.KfPage{Msgs: []map[string]any{ask, redeem}, NextCursor: "cur-2"})
	texts := func() []string {
		var out []string
		for _, call := range fake.Calls(fakewecom.APIKfSendMsg) {
			if text, _ := call.Body["text"].(map[string]any); call.Body["touser"] == "wm_eco" && text != nil {
				out = append(out, fmt.Sprint(text["content"]))
			}
		}
		return out
	}
	in.sendEvent(t, c, callbackEvent{Type: "kf", OpenKfID: "wk_shop", MsgID: "eco-1"}, 3)
	eventuallyT(t, "the list", 5*time.Second, func() bool { return len(texts()) >= 1 })
	list := texts()[0]
	if !strings.Contains(list, "你现在有 300 积分") || !strings.Contains(list, "1. 满30减10券 · 200 积分") || !strings.Contains(list, "2. 山茶帆布袋 · 800 积分（还差 500）") {
		t.Fatalf("list %q", list)
	}
	in.sendEvent(t, c, callbackEvent{Type: "kf", OpenKfID: "wk_shop", MsgID: "eco-2"}, 3)
	eventuallyT(t, "the redemption", 5*time.Second, func() bool { return len(texts()) >= 2 })
	in.waitDrained(t)
	got := texts()
	if len(got) != 2 || !strings.HasPrefix(got[1], "✅ 已用 200 积分兑换「满30减10券」，剩余 100 积分。") {
		t.Fatalf("kf texts %q", got)
	}
	code := regexp.MustCompile(`PTS-[0-9A-Z]{8}`).FindString(got[1])
	if code == "" {
		t.Fatalf("no coupon code in %q", got[1])
	}
	check := func() {
		t.Helper()
		m := memberNow()
		var reds []struct {
			Item, Coupon, Status string
			Cost                 int64
		}
		_ = json.Unmarshal(m.Sections["redemptions"], &reds)
		if m.Member.Points != 100 || len(reds) != 1 || reds[0].Coupon != code || reds[0].Cost != 200 || reds[0].Status != "done" {
			t.Fatalf("after the redemption: %d points, redemptions %+v", m.Member.Points, reds)
		}
		status, body := in.get(t, "/api/v1/economy")
		var eco struct {
			Weeks []struct {
				Issued, Redeemed int64
			}
			Items []struct {
				Item     string
				Redeemed int
				Left     int
			}
		}
		if err := json.Unmarshal([]byte(body), &eco); status != 200 || err != nil {
			t.Fatalf("economy: %d %v", status, err)
		}
		if len(eco.Weeks) != 1 || eco.Weeks[0].Issued != 300 || eco.Weeks[0].Redeemed != 200 || eco.Items[0].Redeemed != 1 || eco.Items[0].Left != 499 {
			t.Fatalf("economy %s", body)
		}
	}
	check()

	// Restart: WeCom's next page repeats the message; nothing is redeemed or sent again.
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	fake.ScriptKf("kf-token-eco-3", "cur-2", fakewecom.KfPage{Msgs: []map[string]any{redeem}, NextCursor: "cur-3"})
	in = startServe(t, env)
	in.sendEvent(t, c, callbackEvent{Type: "kf", OpenKfID: "wk_shop", MsgID: "eco-3"}, 1)
	eventuallyT(t, "third pull", 5*time.Second, func() bool { return fake.Count(fakewecom.APIKfSyncMsg) >= 3 })
	in.waitDrained(t)
	if got := texts(); len(got) != 2 {
		t.Fatalf("after restart: %d kf texts %q", len(got), got)
	}
	check()
}
