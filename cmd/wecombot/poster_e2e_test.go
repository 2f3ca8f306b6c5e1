package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/poster/postertest"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// decodePosterQR reads the QR code on a poster PNG and returns its size.
func decodePosterQR(t *testing.T, raw []byte) (string, image.Point) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("poster is not a PNG: %v", err)
	}
	text, err := postertest.DecodeQR(img)
	if err != nil {
		t.Fatalf("the poster: %v", err)
	}
	return text, img.Bounds().Size()
}

// TestPosterEndToEnd runs the demo's 任务宝 poster through run() and the fake
// WeCom: 「海报」 in 微信客服 asks WeCom for her contact-me code, and once it is
// made her poster goes out as a kf picture uploaded with media/upload — a
// 750×1334 PNG whose QR decodes to her code — with its text; her signed
// poster page serves the same picture; a friend who adds through her code
// shows in the console's poster funnel.
func TestPosterEndToEnd(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	fake.ServeQRCodes()
	env, c := liveEnv(t, fake, t.TempDir())
	const secret = "poster-e2e-link-secret-0123456789"
	env["WECOMBOT_LINK_SECRET"] = secret
	in := startServe(t, env)
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_alice", State: "xhs", WelcomeCode: "WELCOME-ALICE"}, 1)
	eventuallyT(t, "welcome", 5*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 1 })

	fake.ScriptKf("kf-token-1", "", fakewecom.KfPage{Msgs: []map[string]any{
		fakewecom.KfText("kfmsg-1", "wk_shop", "wm_alice", "我要海报", time.Now())}, NextCursor: "cur-1"})
	in.sendEvent(t, c, callbackEvent{Type: "kf", OpenKfID: "wk_shop", MsgID: "1"}, 1)
	eventuallyT(t, "the poster picture in 微信客服", 30*time.Second, func() bool { return fake.Count(fakewecom.APIKfSendMsg) >= 3 })
	if n := fake.Count(fakewecom.APIAddContactWay); n != 1 {
		t.Fatalf("add_contact_way calls = %d, want 1", n)
	}
	var picture map[string]any
	var texts []string
	for _, call := range fake.Calls(fakewecom.APIKfSendMsg) {
		switch call.Body["msgtype"] {
		case "image":
			picture = call.Body
		case "text":
			texts = append(texts, fmt.Sprint(call.Body["text"]))
		}
	}
	if picture == nil {
		t.Fatalf("no kf picture sent; texts %q", texts)
	}
	if len(texts) != 2 || !strings.Contains(texts[0], "正在生成") || !strings.Contains(texts[1], "专属邀请海报") {
		t.Errorf("kf texts = %q", texts)
	}
	mediaID := fmt.Sprint(picture["image"].(map[string]any)["media_id"])
	raw := fake.Media(mediaID)
	if len(raw) == 0 {
		t.Fatalf("media %s was not uploaded", mediaID)
	}
	// Her code: the picture WeCom made for the contact way wecombot asked for.
	_, channels := in.get(t, "/api/v1/channels")
	m := regexp.MustCompile(`/qr/(cw-\d+)\.png`).FindStringSubmatch(channels)
	if m == nil {
		t.Fatalf("her contact way's qr_code is not stored: %s", channels)
	}
	want := fakewecom.ContactMeURL(m[1])
	got, size := decodePosterQR(t, raw)
	if size != image.Pt(750, 1334) || got != want {
		t.Fatalf("poster %v decodes to %q, want 750x1334 and %q", size, got, want)
	}

	signer, err := signlink.New([]byte(secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	token := url.QueryEscape(signer.Sign(engine.PosterPurpose, "wm_alice", time.Hour))
	if code, body := in.get(t, "/poster?t="+token); code != 200 || !strings.Contains(body, "/poster.png?t=") {
		t.Fatalf("poster page: %d %s", code, body)
	}
	code, body := in.get(t, "/poster.png?t="+token)
	if code != 200 {
		t.Fatalf("poster.png: %d %s", code, body)
	}
	if got, _ := decodePosterQR(t, []byte(body)); got != want {
		t.Errorf("poster page's picture decodes to %q, want %q", got, want)
	}
	forged := url.QueryEscape(signer.Sign(engine.ProfilePurpose, "wm_alice", time.Hour))
	if code, _ := in.get(t, "/poster.png?t="+forged); code != 403 {
		t.Errorf("a profile link opened the poster: %d", code)
	}

	// A friend adds staff through her code: the funnel shows her poster and the invitee, held.
	state := fmt.Sprint(fake.Calls(fakewecom.APIAddContactWay)[0].Body["state"])
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_bob", State: state, WelcomeCode: "WELCOME-BOB"}, 1)
	eventuallyT(t, "the invitee in the poster funnel", 5*time.Second, func() bool {
		_, body := in.get(t, "/api/v1/posters")
		var out struct {
			Funnel engine.PosterFunnel `json:"funnel"`
		}
		_ = json.Unmarshal([]byte(body), &out)
		return out.Funnel == engine.PosterFunnel{Posters: 1, PostersSent: 1, Invitees: 1, Held: 1}
	})
}
