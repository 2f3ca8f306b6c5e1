package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
