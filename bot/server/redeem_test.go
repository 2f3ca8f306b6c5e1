package server

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/signlink"
)

// redeemFixture: wm_eve (the check-in fixture's member) holds the points
// of a 500-yuan order in the demo scenario (1 point per yuan).
func redeemFixture(t *testing.T) (*fixture, *signlink.Signer) {
	t.Helper()
	f, signer := checkinFixture(t)
	f.order("wm_eve", "O-1", 50000, f.now)
	if m := f.member("wm_eve"); m.Points < 500 {
		t.Fatalf("fixture: %d points", m.Points)
	}
	return f, signer
}

// TestRedeemPageLinks: only a valid link for the catalogue opens it or
// redeems; a forged, expired or other-purpose link appends nothing and
// changes nothing.
func TestRedeemPageLinks(t *testing.T) {
	t.Parallel()
	f, signer := redeemFixture(t)
	good := signer.Sign(engine.LinkPurposeRedeem, "wm_eve", time.Hour)
	expired := signer.Sign(engine.LinkPurposeRedeem, "wm_eve", -time.Minute)
	other, _ := signlink.New([]byte("another-secret-0123456789"), nil)
	forged := other.Sign(engine.LinkPurposeRedeem, "wm_eve", time.Hour)
	address := signer.Sign(engine.LinkPurposeAddress, "wm_eve", time.Hour)
	before := f.member("wm_eve").Points
	seq := f.lastSeq()
	for _, tc := range []struct {
		name, token string
		code        int
	}{
		{"expired", expired, 410},
		{"forged", forged, 403},
		{"other purpose", address, 403},
		{"garbage", "abc", 403},
	} {
		if r := f.get("/redeem?t=" + url.QueryEscape(tc.token)); r.code != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.name, r.code, tc.code)
		}
		r := f.post("/redeem", url.Values{"t": {tc.token}, "item": {"满30减10券"}, "n": {"0123456789abcdef"}})
		if r.code != tc.code {
			t.Errorf("POST %s: %d, want %d", tc.name, r.code, tc.code)
		}
	}
	if f.lastSeq() != seq || f.member("wm_eve").Points != before {
		t.Fatal("a bad link appended an event or moved points")
	}
	page := f.get("/redeem?t=" + url.QueryEscape(good))
	if page.code != 200 || !strings.Contains(page.body, "满30减10券") || !strings.Contains(page.body, "当前 500 积分 · 高级会员") ||
		!strings.Contains(page.body, "新品优先试饮") || !strings.Contains(page.body, "&lt;script&gt;") {
		t.Fatalf("catalogue page %d:\n%s", page.code, page.body)
	}
	if csp := page.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// An unknown item is refused naming the field; nothing is appended.
	if r := f.post("/redeem", url.Values{"t": {good}, "item": {"火箭"}, "n": {"0123456789abcdef"}}); r.code != 400 || !strings.Contains(r.body, "item") {
		t.Fatalf("unknown item: %d %s", r.code, r.body)
	}
	if f.lastSeq() != seq {
		t.Fatal("an unknown item appended an event")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.process(ctx)
	form := url.Values{"t": {good}, "item": {"满30减10券"}, "n": {"0123456789abcdef"}}
	r := f.post("/redeem", form)
	if r.code != 200 || !strings.Contains(r.body, "已用 200 积分兑换「满30减10券」") {
		t.Fatalf("redeem: %d\n%s", r.code, r.body)
	}
	// The same form sent twice (a double tap, a reload) redeems once.
	if r := f.post("/redeem", form); r.code != 200 {
		t.Fatalf("resubmit: %d", r.code)
	}
	if m := f.member("wm_eve"); m.Points != 300 {
		t.Fatalf("%d points after one redemption of 200", m.Points)
	}
}

// TestGiftAddressAndShipping: the gift's address form refuses bad fields
// naming them, stores a good address through the engine; the API marks the
// gift shipped once (409 before an address and after shipping) and the
// economy report counts it.
func TestGiftAddressAndShipping(t *testing.T) {
	t.Parallel()
	f, signer := redeemFixture(t)
	f.order("wm_eve", "O-2", 20000, f.now) // 200 yuan × 1.5 (高级 since the first order): 800 points, short of 尊享
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.process(ctx)
	good := signer.Sign(engine.LinkPurposeRedeem, "wm_eve", time.Hour)
	if r := f.post("/redeem", url.Values{"t": {good}, "item": {"山茶帆布袋"}, "n": {"aaaaaaaaaaaaaaaa"}}); r.code != 200 || !strings.Contains(r.body, "收货地址") {
		t.Fatalf("gift: %d %s", r.code, r.body)
	}
	var red engine.Redemption
	if err := f.st.View(ctx, func(tx bot.Tx) error {
		reds, err := engine.MemberRedemptions(tx, "wm_eve")
		if err == nil && len(reds) == 1 {
			red = reds[0]
		}
		return err
	}); err != nil || red.Status != engine.RedeemAwaitingAddress {
		t.Fatalf("redemption %+v %v", red, err)
	}
	ship := func(body string) response {
		return f.do("POST", "/api/v1/redemptions/"+red.ID+"/shipped", strings.NewReader(body), "Content-Type", "application/json")
	}
	if r := ship(`{"carrier":"顺丰","tracking":"SF1"}`); r.code != 409 || !strings.Contains(r.body, "no shipping address yet") {
		t.Fatalf("ship before address: %d %s", r.code, r.body)
	}
	link := signer.Sign(engine.LinkPurposeAddress, red.ID, time.Hour)
	if r := f.get("/redeem/address?t=" + url.QueryEscape(link)); r.code != 200 || !strings.Contains(r.body, "山茶帆布袋") {
		t.Fatalf("address page %d", r.code)
	}
	seq := f.lastSeq()
	for _, tc := range []struct{ name, phone, addr, field string }{
		{"", "13800000000", "上海市徐汇区漕溪北路 1 号", "name"},
		{"小夏", "call me", "上海市徐汇区漕溪北路 1 号", "phone"},
		{"小夏", "13800000000", "上海", "address"},
		{"小夏", "13800000000", strings.Repeat("长", 201), "address"},
	} {
		r := f.post("/redeem/address", url.Values{"t": {link}, "name": {tc.name}, "phone": {tc.phone}, "address": {tc.addr}})
		if r.code != 400 || !strings.Contains(r.body, "（"+tc.field+"）") {
			t.Errorf("bad %s: %d %s", tc.field, r.code, r.body)
		}
	}
	if f.lastSeq() != seq {
		t.Fatal("a refused address appended an event")
	}
	other, _ := signlink.New([]byte("another-secret-0123456789"), nil)
	if r := f.post("/redeem/address", url.Values{"t": {other.Sign(engine.LinkPurposeAddress, red.ID, time.Hour)}, "name": {"x"}, "phone": {"13800000000"}, "address": {"上海市徐汇区 1 号"}}); r.code != 403 {
		t.Fatalf("forged address link: %d", r.code)
	}
	r := f.post("/redeem/address", url.Values{"t": {link}, "name": {"小夏"}, "phone": {"138 0000 0000"}, "address": {"上海市徐汇区漕溪北路 1 号"}})
	if r.code != 200 || !strings.Contains(r.body, "收货地址已保存") {
		t.Fatalf("address: %d %s", r.code, r.body)
	}
	if r := f.get("/api/v1/redemptions?status=to_ship"); r.code != 200 || !strings.Contains(r.body, red.ID) {
		t.Fatalf("to ship: %d %s", r.code, r.body)
	}
	if r := ship(`{"carrier":"顺丰","tracking":"SF1","request_id":"op-1"}`); r.code != 200 || r.json["status"] != engine.RedeemShipped {
		t.Fatalf("ship: %d %s", r.code, r.body)
	}
	if r := ship(`{"carrier":"顺丰","tracking":"SF1","request_id":"op-2"}`); r.code != 409 || !strings.Contains(r.body, "already shipped") {
		t.Fatalf("ship twice: %d %s", r.code, r.body)
	}
	if r := ship(`{"tracking":""}`); r.code != 400 || !strings.Contains(r.body, "tracking") {
		t.Fatalf("no tracking: %d %s", r.code, r.body)
	}
	if r := f.do("POST", "/api/v1/redemptions/R999999/shipped", strings.NewReader(`{"tracking":"SF"}`)); r.code != 404 {
		t.Fatalf("unknown redemption: %d", r.code)
	}
	eco := f.get("/api/v1/economy")
	if eco.code != 200 {
		t.Fatalf("economy %d %s", eco.code, eco.body)
	}
	totals := eco.json["totals"].(map[string]any)
	weeks := eco.json["weeks"].([]any)
	if totals["outstanding"].(float64) != 0 || len(weeks) != 1 || weeks[0].(map[string]any)["redeemed"].(float64) != 800 ||
		weeks[0].(map[string]any)["issued"].(float64) != 800 {
		t.Fatalf("economy %s", eco.body)
	}
	if top := eco.json["top_items"].([]any); top[0].(map[string]any)["item"] != "山茶帆布袋" {
		t.Fatalf("top items %v", top)
	}
	if r := f.get("/api/v1/economy?weeks=0"); r.code != 400 || !strings.Contains(r.body, "weeks") {
		t.Fatalf("weeks=0: %d", r.code)
	}
}
