package server

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
)

// TestPosterPage: her signed link shows her poster once her code exists;
// an expired link, another feature's link, a member without a code yet and
// an unknown member get a page saying so, and the renderer is never asked.
func TestPosterPage(t *testing.T) {
	t.Parallel()
	f, signer := checkinFixture(t)
	var rendered []bot.PosterRef
	f.s.o.Posters = func(_ context.Context, p bot.PosterRef) ([]byte, error) {
		rendered = append(rendered, p)
		return []byte("\x89PNG\r\n\x1a\nposter"), nil
	}
	link := func(purpose, member string, ttl time.Duration) string {
		return url.QueryEscape(signer.Sign(purpose, member, ttl))
	}
	for _, tc := range []struct {
		name, path string
		code       int
		want       string
	}{
		{"expired", "/poster?t=" + link(engine.PosterPurpose, "wm_eve", -time.Minute), 410, "已经过期"},
		{"a profile link", "/poster.png?t=" + link(engine.ProfilePurpose, "wm_eve", time.Hour), 403, "链接无效"},
		{"no code yet", "/poster?t=" + link(engine.PosterPurpose, "wm_eve", time.Hour), 404, "还没生成"},
		{"unknown member", "/poster.png?t=" + link(engine.PosterPurpose, "wm_nobody", time.Hour), 404, "没有找到"},
	} {
		if r := f.get(tc.path); r.code != tc.code || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d, want %d with %q: %s", tc.name, r.code, tc.code, tc.want, r.body)
		}
	}
	if len(rendered) != 0 {
		t.Fatalf("rendered %v for refused links", rendered)
	}

	// She asks for her poster in 微信客服 and WeCom makes her code.
	f.kf("wm_eve", "海报", f.now)
	var way bot.Action
	all, err := f.st.Actions(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.Kind == bot.ActionContactWay {
			way = a
		}
	}
	var cw bot.ContactWay
	if err := way.Decode(&cw); err != nil || cw.State == "" {
		t.Fatalf("contact way action %+v: %v", way, err)
	}
	f.feed(bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result|" + way.Key, ExternalUserID: "wm_eve",
		Data: map[string]string{bot.ResultKind: string(way.Kind), bot.ResultKey: way.Key, "state": cw.State, "config_id": "cw-1", "qr_code": "https://wework.example/qr/cw-1"}})
	token := link(engine.PosterPurpose, "wm_eve", time.Hour)
	if r := f.get("/poster?t=" + token); r.code != 200 || !strings.Contains(r.body, `src="/poster.png?t=`) {
		t.Fatalf("poster page: %d %s", r.code, r.body)
	}
	if r := f.get("/poster.png?t=" + token); r.code != 200 || r.hdr.Get("Content-Type") != "image/png" {
		t.Fatalf("poster.png: %d %s", r.code, r.hdr)
	}
	if len(rendered) != 1 || rendered[0].QRCode != "https://wework.example/qr/cw-1" || rendered[0].Member != "wm_eve" {
		t.Errorf("rendered %+v", rendered)
	}
	r := f.get("/api/v1/posters")
	funnel, _ := r.json["funnel"].(map[string]any)
	if r.code != 200 || r.json["enabled"] != true || funnel["posters"] != float64(1) || funnel["posters_sent"] != float64(1) {
		t.Errorf("funnel: %d %s", r.code, r.body)
	}
}
