package media_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/media"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/storage/bolt"
)

type env struct {
	fake   *fakewecom.Server
	client *wecomapi.Client
	lib    *media.Library
	sender *media.Sender
	clock  *fakewecom.Clock
	dir    string
}

// setup wires the library to the project's fake WeCom, which enforces the
// 3-day media lifetime and uploadimg-only pic_url on the same fake clock.
func setup(t *testing.T) *env {
	t.Helper()
	c := fakewecom.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	fake := fakewecom.New(t)
	fake.SetClock(c.Now)
	client, err := wecomapi.New(wecomapi.Config{CorpID: "ww", Secret: "s", APIBase: fake.URL(), Logger: zerolog.Nop(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	store, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	lib := &media.Library{Store: store, Uploader: client, Open: os.ReadFile, Fetch: client.Fetch, Now: c.Now, Log: zerolog.Nop()}
	return &env{fake: fake, client: client, lib: lib, clock: c, dir: t.TempDir(),
		sender: &media.Sender{Next: client, Lib: lib, Classify: wecomapi.Classify}}
}

func (e *env) file(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var png = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{3}, 200)...)

func welcome(t *testing.T, code string, atts ...bot.Attachment) *bot.Action {
	t.Helper()
	a, err := bot.NewAction(bot.ActionWelcome, "k-"+code, bot.WelcomeMessage{WelcomeCode: code, Text: "欢迎", Attachments: atts})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A welcome with an image file (a permanent uploadimg pic_url) and a
// mini-program whose cover is temporary media succeeds on day 1 and on day
// 4: the cover is uploaded again before WeCom's 3 days run out, the image is not.
func TestWelcomeWithFilesOnDay1AndDay4(t *testing.T) {
	e := setup(t)
	menu := e.file(t, "menu.png", png)
	img := bot.Attachment{Type: "image", Media: &bot.MediaRef{Source: menu, Name: "menu.png", Kind: "image", Permanent: true}}
	mini := bot.Attachment{Type: "miniprogram", Title: "点单", AppID: "wx1", Page: "pages/i",
		Media: &bot.MediaRef{Source: menu, Name: "menu.png", Kind: "image"}}
	ctx := context.Background()
	res, _, err := e.sender.Send(ctx, welcome(t, "wc-day1", img, mini))
	if err != nil {
		t.Fatalf("day 1: %v", err)
	}
	if !strings.Contains(res.Detail, "uploaded menu.png with media/uploadimg") || !strings.Contains(res.Detail, "with media/upload (first upload)") {
		t.Errorf("day 1 detail %q", res.Detail)
	}
	if e.fake.Count(fakewecom.APIMediaUploadImg) != 1 || e.fake.Count(fakewecom.APIMediaUpload) != 1 {
		t.Fatalf("uploads day 1: img %d, media %d", e.fake.Count(fakewecom.APIMediaUploadImg), e.fake.Count(fakewecom.APIMediaUpload))
	}
	// Day 2: nothing to upload.
	e.clock.Add(24 * time.Hour)
	if res, _, err = e.sender.Send(ctx, welcome(t, "wc-day2", img, mini)); err != nil || strings.Contains(res.Detail, "uploaded") {
		t.Fatalf("day 2: %v, detail %q", err, res.Detail)
	}
	// Day 4: the cover's media_id would have expired; it is renewed first.
	e.clock.Add(48 * time.Hour)
	res, _, err = e.sender.Send(ctx, welcome(t, "wc-day4", img, mini))
	if err != nil {
		t.Fatalf("day 4: %v", err)
	}
	if !strings.Contains(res.Detail, "renewing") || e.fake.Count(fakewecom.APIMediaUpload) != 2 || e.fake.Count(fakewecom.APIMediaUploadImg) != 1 {
		t.Errorf("day 4 detail %q, uploads media %d img %d", res.Detail, e.fake.Count(fakewecom.APIMediaUpload), e.fake.Count(fakewecom.APIMediaUploadImg))
	}
	sent := e.fake.Calls(fakewecom.APISendWelcomeMsg)
	if len(sent) != 3 {
		t.Fatalf("welcomes sent %d", len(sent))
	}
	if !bytes.Equal(e.fake.Media(fmt.Sprint(sent[2].Field("attachments.1.miniprogram.pic_media_id"))), png) {
		t.Error("day 4 cover is not the file's content")
	}
}

// Without the library the same welcome fails on day 4 with WeCom's final
// error: the proof that the fake enforces the lifetime.
func TestRawMediaIDExpiresOnDay4(t *testing.T) {
	e := setup(t)
	id, err := e.client.UploadMedia(context.Background(), "image", "menu.png", png)
	if err != nil {
		t.Fatal(err)
	}
	mini := bot.Attachment{Type: "miniprogram", Title: "点单", AppID: "wx1", Page: "pages/i", MediaID: id}
	e.clock.Add(72 * time.Hour)
	_, retry, err := e.client.Send(context.Background(), welcome(t, "wc", mini))
	if err == nil || retry || !strings.Contains(err.Error(), "40007") {
		t.Fatalf("expired media_id: retry %v err %v, want final 40007", retry, err)
	}
}

func TestChangedFileIsUploadedAgain(t *testing.T) {
	e := setup(t)
	p := e.file(t, "price.pdf", []byte("%PDF-1.4 v1 prices"))
	ref := bot.MediaRef{Source: p, Name: "price.pdf", Kind: "file"}
	ctx := context.Background()
	notes, err := e.lib.Keep(ctx, []bot.MediaRef{ref, ref})
	if err != nil || len(notes) != 1 {
		t.Fatalf("first keep: %v %v", notes, err)
	}
	if notes, _ = e.lib.Keep(ctx, []bot.MediaRef{ref}); len(notes) != 0 {
		t.Errorf("unchanged file uploaded again: %v", notes)
	}
	e.file(t, "price.pdf", []byte("%PDF-1.4 v2 new prices"))
	notes, err = e.lib.Keep(ctx, []bot.MediaRef{ref})
	if err != nil || len(notes) != 1 || !strings.Contains(notes[0], "content changed") {
		t.Fatalf("changed file: %v %v", notes, err)
	}
	out, _, err := e.lib.Resolve(ctx, bot.Attachment{Type: "file", Media: &ref})
	if err != nil || !bytes.Equal(e.fake.Media(out.MediaID), []byte("%PDF-1.4 v2 new prices")) || out.Media != nil {
		t.Errorf("resolved %+v, %v", out, err)
	}
}

func TestMissingFileIsFinal(t *testing.T) {
	e := setup(t)
	att := bot.Attachment{Type: "file", Media: &bot.MediaRef{Source: filepath.Join(e.dir, "gone.pdf"), Name: "gone.pdf", Kind: "file"}}
	_, retry, err := e.sender.Send(context.Background(), welcome(t, "wc", att))
	if err == nil || retry || !strings.Contains(err.Error(), "gone.pdf") {
		t.Fatalf("missing file: retry %v, err %v", retry, err)
	}
	if e.fake.Count(fakewecom.APISendWelcomeMsg) != 0 {
		t.Error("welcome sent without its attachment")
	}
}

// A 任务宝 poster in 微信客服: the library renders it at send time, uploads
// it as temporary media (kf/send_msg needs a media_id; the fake refuses a
// picture without a valid one) and uploads again only when the picture changed.
func TestKfPosterRenderedAndUploaded(t *testing.T) {
	e := setup(t)
	renders := 0
	name := "小艾"
	e.lib.Render = func(_ context.Context, ref *bot.MediaRef) ([]byte, error) {
		renders++
		return append(append([]byte(nil), png...), []byte(ref.Poster.QRCode+name)...), nil
	}
	e.fake.CustomerMessage("wk1", "wm1", e.clock.Now())
	poster := func(key string) *bot.Action {
		att := bot.Attachment{Type: "image", Media: &bot.MediaRef{Source: "poster:wm1", Name: "poster.png", Kind: "image",
			Poster: &bot.PosterRef{Member: "wm1", Name: name, QRCode: "https://wework.example/qr/cw-1"}}}
		a, err := bot.NewAction(bot.ActionKfMessage, key, bot.KfMessage{OpenKfID: "wk1", ExternalUserID: "wm1", Image: &att, MsgID: key})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ctx := context.Background()
	for i, key := range []string{"p1", "p2"} {
		if _, _, err := e.sender.Send(ctx, poster(key)); err != nil {
			t.Fatalf("poster %d: %v", i+1, err)
		}
	}
	if renders != 2 || e.fake.Count(fakewecom.APIMediaUpload) != 1 {
		t.Fatalf("renders %d, uploads %d: want a render per send and one upload of unchanged bytes", renders, e.fake.Count(fakewecom.APIMediaUpload))
	}
	sent := e.fake.Calls(fakewecom.APIKfSendMsg)
	if len(sent) != 2 || sent[0].Body["msgtype"] != "image" {
		t.Fatalf("kf sends %v", sent)
	}
	id := fmt.Sprint(sent[1].Field("image.media_id"))
	if got := e.fake.Media(id); !bytes.HasSuffix(got, []byte("小艾")) {
		t.Errorf("uploaded picture %q", got)
	}
	name = "小艾 Alice" // she changed her name: the picture changes, uploaded again
	if _, _, err := e.sender.Send(ctx, poster("p3")); err != nil || e.fake.Count(fakewecom.APIMediaUpload) != 2 {
		t.Fatalf("after a name change: %v, uploads %d", err, e.fake.Count(fakewecom.APIMediaUpload))
	}
	// Without the library the picture has no media_id: the client refuses to send it.
	if _, retry, err := e.client.Send(ctx, poster("p4")); err == nil || retry {
		t.Errorf("unresolved picture sent: retry %v err %v", retry, err)
	}
}
