package engine

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
)

func posterScenario(t *testing.T) *scenarios.Scenario {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "bg.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, image.NewRGBA(image.Rect(0, 0, 400, 600))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, []byte(`brand: {name: 测试, zone: Asia/Shanghai}
tags:
  偏好: [达人]
channels:
  - {state: xhs, name: 小红书}
referral:
  keywords: [邀请]
  channel: 推荐
  hold: 24h
  pending: 生成中
  code_ready: 你的邀请码
  rewards:
    - {invites: 1, points: 50, text: 第一位好友}
    - {invites: 2, tag: 达人}
  poster:
    keywords: [海报]
    text: "{{.Name}}的海报，分享给好友"
    background: {file: bg.png}
    name: {x: 200, y: 100, size: 40, align: center}
    qr: {x: 100, y: 300, size: 200}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := scenarios.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

type kfSent struct {
	text  string
	image *bot.Attachment
}

func kfSends(h *harness) []kfSent {
	var out []kfSent
	for _, a := range h.actions(bot.ActionKfMessage) {
		var p bot.KfMessage
		if err := a.Decode(&p); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, kfSent{p.Text, p.Image})
	}
	return out
}

func (h *harness) posterFunnel() PosterFunnel {
	h.t.Helper()
	var f PosterFunnel
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { f, err = BuildPosterFunnel(tx); return err }); err != nil {
		h.t.Fatal(err)
	}
	return f
}

// TestPosterInvites: 「海报」 asks WeCom for her code once and sends the
// poster (a picture naming her and her code's QR, then its text) when the
// code is ready; asking again sends it at once; friends who scan it are
// credited, held and rewarded as the referral does; the funnel counts it.
func TestPosterInvites(t *testing.T) {
	t.Parallel()
	h := newHarness(t, posterScenario(t))
	alice := add("wmA", "s1", "xhs", "")
	alice.Data = map[string]string{bot.DataName: "小艾"}
	h.send(alice)
	ask := h.send(kf("wmA", "我要海报"))
	h.handle(ask)
	ways := h.actions(bot.ActionContactWay)
	if len(ways) != 1 {
		t.Fatalf("contact_way actions = %d, want 1", len(ways))
	}
	if sends := kfSends(h); len(sends) != 1 || sends[0].text != "生成中" {
		t.Fatalf("before the code: %+v", sends)
	}
	if rec := h.referrer("wmA"); !rec.PosterOwed || rec.Posters != 0 {
		t.Fatalf("record while the code is made: %+v", rec)
	}
	h.send(contactWayResult(ways[0]))
	sends := kfSends(h)
	if len(sends) != 3 {
		t.Fatalf("after the code: %+v", sends)
	}
	img := sends[1].image
	if img == nil || img.Type != "image" || img.Media == nil || img.Media.Poster == nil || img.Media.Source != "poster:wmA" ||
		img.Media.Poster.Name != "小艾" || img.Media.Poster.QRCode != "https://wework.example/qr/r:1" {
		t.Fatalf("poster picture = %+v", img)
	}
	if sends[2].text != "小艾的海报，分享给好友" {
		t.Errorf("poster text = %q", sends[2].text)
	}
	h.send(kf("wmA", "再发一次海报"))
	if n := len(h.actions(bot.ActionContactWay)); n != 1 {
		t.Fatalf("asked WeCom %d times", n)
	}
	if sends := kfSends(h); len(sends) != 5 || sends[3].image == nil {
		t.Fatalf("second poster: %+v", sends)
	}

	// Friends scan the poster: one stays, one leaves within the hold, one more stays.
	h.send(add("wmB", "s1", "r:1", ""))
	h.send(add("wmC", "s1", "r:1", ""))
	h.advance(time.Hour)
	h.send(delFollow("wmC", "s1"))
	h.send(add("wmD", "s1", "r:1", ""))
	if f := h.posterFunnel(); f != (PosterFunnel{Posters: 1, PostersSent: 2, Invitees: 3, Held: 2, Void: 1}) {
		t.Fatalf("funnel in the hold: %+v", f)
	}
	h.advance(25 * time.Hour)
	h.send(kf("wmZ", "你好"))
	m := h.member("wmA")
	if m.Points != 50 || !m.HasTag("达人") {
		t.Fatalf("rewards: points %d tags %v", m.Points, m.Tags)
	}
	if f := h.posterFunnel(); f != (PosterFunnel{Posters: 1, PostersSent: 2, Invitees: 3, Counted: 2, Void: 1, Rewards: 2}) {
		t.Fatalf("funnel after the hold: %+v", f)
	}
}

// TestPosterAfterKfWindow: her code comes back after her 微信客服 window
// closed, so the poster can't go out as a kf picture; her staff member's
// mass send carries her signed poster page instead.
func TestPosterAfterKfWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, posterScenario(t))
	signer, err := signlink.New([]byte("0123456789abcdef0123"), func() time.Time { return h.clock })
	if err != nil {
		t.Fatal(err)
	}
	h.eng.WithLinks(signer, "https://bot.example/")
	h.send(add("wmA", "s1", "xhs", ""))
	h.send(kf("wmA", "海报"))
	ways := h.actions(bot.ActionContactWay)
	h.advance(KfReplyWindow + time.Hour)
	h.send(contactWayResult(ways[0]))
	if sends := kfSends(h); len(sends) != 1 {
		t.Fatalf("kf sends after the window: %+v", sends)
	}
	var text string
	for _, a := range h.actions(bot.ActionMassSend) {
		var p bot.MassSend
		_ = a.Decode(&p)
		if strings.Contains(p.Text, "/poster?t=") {
			text = p.Text
		}
	}
	_, token, ok := strings.Cut(text, "https://bot.example/poster?t=")
	if !ok {
		t.Fatalf("no poster link by mass send: %q", text)
	}
	if subject, _, err := signer.Verify(PosterPurpose, token); err != nil || subject != "wmA" {
		t.Errorf("poster link: %q %v", subject, err)
	}
	if rec := h.referrer("wmA"); rec.PosterOwed {
		t.Errorf("poster still owed: %+v", rec)
	}
}
