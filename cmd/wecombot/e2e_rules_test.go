package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// movableClock is the fake WeCom's clock, moved by the test.
type movableClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *movableClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}
func (c *movableClock) jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// mediaScenario writes a scenario whose welcome attaches an image file and
// a PDF beside it.
func mediaScenario(t *testing.T, extra string) (dir string, png []byte) {
	t.Helper()
	dir = t.TempDir()
	png = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{9}, 300)...)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "images"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "images", "menu.png"), png, 0o644))
	must(os.WriteFile(filepath.Join(dir, "price.pdf"), []byte("%PDF-1.4 本季价目表"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "scenario.yaml"), []byte(`brand: {name: 山茶集}
welcome:
  default:
    text: 欢迎来到山茶集
    attachments:
      - image: {file: images/menu.png}
      - file: {file: price.pdf}
`+extra), 0o644))
	return dir, png
}

// A welcome with an image file and a PDF, through run() against the fake
// WeCom: day 1 and day 4 (on WeCom's clock) both succeed. The image is a
// permanent uploadimg pic_url; the PDF's media_id has expired by day 4, so
// WeCom refuses it (40007) and wecombot uploads it again and resends.
func TestWelcomeWithFileAttachmentsDay1AndDay4(t *testing.T) {
	fake := fakewecom.New(t)
	clock := &movableClock{}
	fake.SetClock(clock.now)
	dir, png := mediaScenario(t, "")
	env, c := liveEnv(t, fake, t.TempDir())
	env["WECOMBOT_SCENARIOS"] = dir
	in := startServe(t, env)
	defer in.stop()

	// serve uploads the scenario's media at start, before any welcome needs it.
	eventuallyT(t, "media uploaded at start", 5*time.Second, func() bool {
		return fake.Count(fakewecom.APIMediaUploadImg) == 1 && fake.Count(fakewecom.APIMediaUpload) == 1
	})
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_day1", WelcomeCode: "WC-DAY1"}, 1)
	eventuallyT(t, "day 1 welcome", 5*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 1 })
	day1 := fake.Calls(fakewecom.APISendWelcomeMsg)[0]
	picURL := fmt.Sprint(day1.Field("attachments.0.image.pic_url"))
	if !bytes.Equal(fake.Media(picURL), png) {
		t.Fatalf("day 1 image pic_url %q is not the uploaded menu.png: %s", picURL, day1.RawBody)
	}

	clock.jump(72 * time.Hour)
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_day4", WelcomeCode: "WC-DAY4"}, 1)
	eventuallyT(t, "day 4 welcome delivered", 10*time.Second, func() bool {
		for _, a := range in.actions(t, "welcome") {
			if a.MemberID == "wm_day4" && a.Status == "sent" {
				return true
			}
		}
		return false
	})
	calls := fake.Calls(fakewecom.APISendWelcomeMsg)
	last := calls[len(calls)-1]
	if last.Body["welcome_code"] != "WC-DAY4" || fmt.Sprint(last.Field("attachments.0.image.pic_url")) != picURL {
		t.Errorf("day 4 welcome %s", last.RawBody)
	}
	if n := fake.Count(fakewecom.APIMediaUpload); n != 2 {
		t.Errorf("media/upload calls = %d, want 2 (the PDF again on day 4)", n)
	}
	if n := fake.Count(fakewecom.APIMediaUploadImg); n != 1 {
		t.Errorf("uploadimg calls = %d, want 1 (pic_url is permanent)", n)
	}
}

// check names a raw media_id with a warning (it works, but expires), and a
// missing file is an error naming file:line.
func TestCheckMediaWarningsAndErrors(t *testing.T) {
	dir, _ := mediaScenario(t, `  scripts:
    - name: old
      text: hi
      attachments:
        - video: {media_id: 3a8asd892asd8asd}
`)
	code, out, errOut := runCLI(t, nil, "check", "--scenario", dir)
	if code != 0 || !strings.Contains(out, "warning: "+filepath.Join(dir, "scenario.yaml")+":12: welcome.scripts[0].attachments[0].video.media_id: a media_id from media/upload expires 3 days") {
		t.Fatalf("check exit %d\n%s\n%s", code, out, errOut)
	}
	if err := os.Remove(filepath.Join(dir, "price.pdf")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, nil, "check", "--scenario", dir)
	if code == 0 || !strings.Contains(errOut, filepath.Join(dir, "scenario.yaml")+":7: welcome.default.attachments[1].file.file: cannot read file file") {
		t.Fatalf("missing file: exit %d\n%s", code, errOut)
	}
}

const kfRulesScenario = `brand: {name: 山茶集}
tags:
  跟进: [需人工跟进]
kf:
  greeting: "你好，我是山茶集的小山🍵"
keywords:
  rules:
    - {name: 人工, keywords: [人工], on: [kf], reply: 好的，马上为你转人工, tags: [需人工跟进]}
    - {name: 营业, keywords: [营业], on: [kf], reply: 每天 07:00-22:00 营业}
ai:
  persona: 你是山茶集的小山。
  handoff_words: [人工]
  handoff_tag: 需人工跟进
  handoff_staff: [lisi]
`

// A 微信客服 conversation through run() against the fake WeCom, which
// enforces the session rules: the customer opens the chat (the greeting goes
// once with send_msg_on_event), asks for a person (the session is moved to
// lisi; the bot is then silent — WeCom would refuse it with 95018), the
// person ends the session, and the bot answers the customer's next message.
func TestKfSessionEndToEnd(t *testing.T) {
	fake := fakewecom.New(t)
	fake.SetServicers("lisi")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "scenario.yaml"), []byte(kfRulesScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	env, c := liveEnv(t, fake, t.TempDir())
	env["WECOMBOT_SCENARIOS"] = dir
	in := startServe(t, env)
	defer in.stop()
	now := time.Now()
	pull := func(n int, msgs ...map[string]any) {
		t.Helper()
		cursor := ""
		if n > 1 {
			cursor = fmt.Sprintf("c%d", n-1)
		}
		// The callback's Token is "kf-token-<MsgID>" (callbackEvent).
		fake.ScriptKf(fmt.Sprintf("kf-token-%d", n), cursor, fakewecom.KfPage{Msgs: msgs, NextCursor: fmt.Sprintf("c%d", n)})
		in.sendEvent(t, c, callbackEvent{Type: "kf", OpenKfID: "wk_shop", MsgID: fmt.Sprint(n)}, 1)
	}
	sends := func() []fakewecom.Call { return fake.Calls(fakewecom.APIKfSendMsg) }

	// 1. The customer opens the chat: one greeting, with the event's code.
	enter := fakewecom.KfEnterSession("e1", "wk_shop", "wm_k", "", "", "WELCOME-K", now)
	pull(1, enter, enter)
	eventuallyT(t, "greeting", 5*time.Second, func() bool { return fake.Count(fakewecom.APIKfSendMsgOnEvent) == 1 })
	greet := fake.Calls(fakewecom.APIKfSendMsgOnEvent)[0]
	if greet.Body["code"] != "WELCOME-K" || !strings.Contains(fmt.Sprint(greet.Field("text.content")), "小山") {
		t.Fatalf("greeting %s", greet.RawBody)
	}

	// 2. The customer asks for a person: the reply, then the session moves to lisi.
	pull(2, fakewecom.KfText("t1", "wk_shop", "wm_k", "人工", now))
	eventuallyT(t, "session with lisi", 5*time.Second, func() bool {
		state, servicer := fake.KfSessionState("wk_shop", "wm_k")
		return state == fakewecom.KfStatePerson && servicer == "lisi"
	})
	if n := len(sends()); n != 1 || !strings.Contains(fmt.Sprint(sends()[0].Field("text.content")), "转人工") {
		t.Fatalf("kf sends before the transfer: %d", n)
	}
	trans := fake.Calls(fakewecom.APIKfServiceStateTrans)[0]
	if trans.Body["service_state"] != 3.0 || trans.Body["servicer_userid"] != "lisi" {
		t.Fatalf("transfer %s", trans.RawBody)
	}
	// WeCom reports the change too (session_status_change, change_type 2).
	change := fakewecom.KfSessionStatusChange("s1", "wk_shop", "wm_k", 2, "lisi", now)

	// 3. While lisi holds the session the bot says nothing.
	pull(3, change, fakewecom.KfText("t2", "wk_shop", "wm_k", "营业时间？", now))
	eventuallyT(t, "t2 handled", 5*time.Second, func() bool { return processed(t, in, "kfmsg:t2") })
	if n := len(sends()); n != 1 {
		t.Fatalf("the bot sent %d kf messages while a person held the session", n)
	}

	// 4. lisi ends the session; the customer writes again and the bot answers.
	fake.SetKfSessionState("wk_shop", "wm_k", fakewecom.KfStateEnded, "")
	pull(4, fakewecom.KfSessionStatusChange("s2", "wk_shop", "wm_k", 3, "", now),
		fakewecom.KfText("t3", "wk_shop", "wm_k", "营业时间？", now))
	eventuallyT(t, "the bot answers again", 5*time.Second, func() bool { return len(sends()) == 2 })
	if got := fmt.Sprint(sends()[1].Field("text.content")); !strings.Contains(got, "07:00-22:00") {
		t.Fatalf("answer after the session ended: %q", got)
	}
	if n := fake.Count(fakewecom.APIKfSendMsgOnEvent); n != 1 {
		t.Errorf("greetings = %d, want 1", n)
	}
}

// processed reports whether the event with dedupe key has been handled.
func processed(t *testing.T, in *instance, dedupeKey string) bool {
	t.Helper()
	code, body := in.get(t, "/api/v1/events?limit=1000")
	if code != http.StatusOK {
		t.Fatalf("events: %d %s", code, body)
	}
	var out struct {
		Events []bot.Event `json:"events"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	last := num(in.status(t), "pipeline", "last_processed_seq")
	for _, ev := range out.Events {
		if ev.DedupeKey == dedupeKey {
			return float64(ev.Seq) <= last
		}
	}
	return false
}

// A welcome that reaches WeCom more than 20 s after its add is refused
// (41051, the code expired) and wecombot takes that as final: the action
// fails with WeCom's reason, it is not sent again, and the member's tags
// still reach WeCom.
func TestWelcomeRefusedOnceItsCodeExpired(t *testing.T) {
	fake := fakewecom.New(t)
	clock := &movableClock{}
	fake.SetClock(clock.now)
	env, c := liveEnv(t, fake, t.TempDir())
	in := startServe(t, env)
	defer in.stop()

	fake.FailNext(fakewecom.APISendWelcomeMsg, -1, 1) // system busy: not processed, retried
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_late", State: "xhs", WelcomeCode: "WC-LATE"}, 1)
	eventuallyT(t, "first (busy) welcome attempt", 5*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 1 })
	clock.jump(fakewecom.WelcomeCodeLifetime + time.Second) // WeCom's clock passes the code's 20 s before the retry
	var welcome bot.Action
	eventuallyT(t, "welcome failed on the expired code", 15*time.Second, func() bool {
		for _, a := range in.actions(t, bot.ActionWelcome) {
			if a.MemberID == "wm_late" && a.Status == bot.ActionFailed {
				welcome = a
				return true
			}
		}
		return false
	})
	if !strings.Contains(welcome.LastError, "41051") {
		t.Errorf("failed welcome's error %q does not name WeCom's 41051", welcome.LastError)
	}
	if n := fake.ExpiredWelcomes(); n != 1 {
		t.Errorf("fake refused %d expired welcomes, want 1", n)
	}
	eventuallyT(t, "the member's tags written", 5*time.Second, func() bool { return fake.Count(fakewecom.APIMarkTag) >= 1 })
	in.waitDrained(t)
	if n := fake.Count(fakewecom.APISendWelcomeMsg); n != 2 {
		t.Errorf("send_welcome_msg called %d times, want 2 (busy, then the refused retry; never again)", n)
	}
}
