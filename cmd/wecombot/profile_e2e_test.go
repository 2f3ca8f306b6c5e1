package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

var profileLinkRe = regexp.MustCompile(`https?://[^\s"]+/profile\?t=[A-Za-z0-9_.\-]+`)

// postForm posts an H5 form to the instance.
func (in *instance) postForm(t *testing.T, path string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(in.base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestProfileFormEndToEnd runs the demo scenario's profile form through
// run() and the fake WeCom: a member added through a channel asks 微信客服
// for 完善资料 and gets her signed link; a forged link and a refused answer
// (an unknown choice, text over max_chars) change nothing and name the
// field; her submission stores the answers and birthday, marks the choice
// tags in WeCom and gives 50 points, once, also across a restart; the page
// is checked and shot in headless chromium at 390 px.
func TestProfileFormEndToEnd(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	in := startServe(t, env)
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_alice", State: "xhs", WelcomeCode: "WELCOME-ALICE"}, 1)
	eventuallyT(t, "welcome and tags", 5*time.Second, func() bool { return fake.Count(fakewecom.APIMarkTag) == 1 })

	fake.ScriptKf("kf-token-1", "", fakewecom.KfPage{Msgs: []map[string]any{
		fakewecom.KfText("kfmsg-1", "wk_shop", "wm_alice", "我想完善资料", time.Now())}, NextCursor: "cur-1"})
	in.sendEvent(t, c, callbackEvent{Type: "kf", OpenKfID: "wk_shop", MsgID: "1"}, 1)
	eventuallyT(t, "the form link in 微信客服", 5*time.Second, func() bool { return fake.Count(fakewecom.APIKfSendMsg) == 1 })
	text := fmt.Sprint(fake.Calls(fakewecom.APIKfSendMsg)[0].Body["text"])
	link := profileLinkRe.FindString(text)
	if link == "" {
		t.Fatalf("kf reply has no profile link: %s", text)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	token := u.Query().Get("t")
	if code, body := in.get(t, "/profile?t="+url.QueryEscape(token)); code != 200 || !strings.Contains(body, "完善资料领 50 积分") {
		t.Fatalf("form page: %d %s", code, body)
	}

	good := url.Values{"t": {token}, "f.birthday": {"1994-10-02"}, "f.city": {"上海"}, "f.gender": {"female"},
		"f.taste": {"tea", "fruit"}, "f.note": {"希望多开门店"}}
	edited := func(k string, v ...string) url.Values {
		out := url.Values{}
		for key, vs := range good {
			out[key] = vs
		}
		out[k] = v
		return out
	}
	forged := token[:len(token)-2] + "xx"
	if strings.HasSuffix(token, "xx") {
		forged = token[:len(token)-2] + "yy"
	}
	events := func() int {
		_, body := in.get(t, "/api/v1/events?limit=500")
		return strings.Count(body, `"type":"profile.submit"`)
	}
	for _, tc := range []struct {
		name string
		form url.Values
		code int
		want string
	}{
		{"forged link", edited("t", forged), 403, "链接无效"},
		{"unknown choice", edited("f.gender", "robot"), 400, "请检查「性别」"},
		{"oversized text", edited("f.city", strings.Repeat("长", 21)), 400, "请检查「所在城市」：最多 20 个字"},
	} {
		if code, body := in.postForm(t, "/profile", tc.form); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d, want %d with %q: %s", tc.name, code, tc.code, tc.want, body)
		}
	}
	if n := events(); n != 0 {
		t.Fatalf("refused submissions appended %d profile events", n)
	}
	if code, body := in.get(t, "/api/v1/members/wm_alice"); code != 200 || !strings.Contains(body, `"profile":{"answers":null}`) {
		t.Fatalf("member before: %d %s", code, body)
	}

	tagCalls := fake.Count(fakewecom.APIMarkTag)
	if code, body := in.postForm(t, "/profile", good); code != 200 || !strings.Contains(body, "感谢填写！你现在有 50 积分") {
		t.Fatalf("submit: %d %s", code, body)
	}
	eventuallyT(t, "the choice tags marked in WeCom", 5*time.Second, func() bool { return fake.Count(fakewecom.APIMarkTag) > tagCalls })
	marks := fake.Calls(fakewecom.APIMarkTag)
	added := fmt.Sprint(marks[len(marks)-1].Body["add_tag"])
	for _, name := range []string{"性别-女", "偏好-纯茶", "偏好-果茶"} {
		if id := fake.TagID("用户画像", name); id == "" || !strings.Contains(added, id) {
			t.Errorf("mark_tag add_tag %s lacks %s (id %q)", added, name, id)
		}
	}
	member := func() map[string]any {
		_, body := in.get(t, "/api/v1/members/wm_alice")
		var d map[string]any
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := member()
	m := d["member"].(map[string]any)
	if m["birthday"] != "1994-10-02" || m["points"] != float64(50) {
		t.Fatalf("member after the form: %v", m)
	}
	if prof := fmt.Sprint(d["profile"]); !strings.Contains(prof, "纯茶、果茶") || !strings.Contains(prof, "上海") {
		t.Errorf("member detail's profile: %s", prof)
	}
	if _, csv := in.get(t, "/api/v1/export/members.csv"); !strings.Contains(csv, "1994-10-02") || !strings.Contains(csv, "纯茶、果茶") {
		t.Errorf("export lacks the answers: %s", csv)
	}

	// Restart, then a changed answer: points stay 50, the tags follow.
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	in = startServe(t, env)
	in.waitDrained(t)
	if code, body := in.postForm(t, "/profile", edited("f.taste", "milk")); code != 200 || !strings.Contains(body, "你现在有 50 积分") {
		t.Fatalf("update: %d %s", code, body)
	}
	if m := member()["member"].(map[string]any); m["points"] != float64(50) || !strings.Contains(fmt.Sprint(m["tags"]), "偏好-奶茶") || strings.Contains(fmt.Sprint(m["tags"]), "偏好-纯茶") {
		t.Errorf("after the update: %v", m)
	}

	chromium := findChromium()
	if chromium == "" {
		t.Skip("chromium not found: the page's browser check needs it (.ci/run installs it)")
	}
	ctx := newBrowser(t, chromium)
	dir := shotsDir(t)
	var overflow bool
	var checked int
	var message string
	// Start the browser on ctx itself: a step's context only bounds its step.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatal(err)
	}
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		step, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := chromedp.Run(step, actions...); err != nil {
			t.Fatalf("browser, %s: %v", what, err)
		}
	}
	run("open the form",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(in.base+"/profile?t="+url.QueryEscape(token)),
		chromedp.WaitVisible(`button[type=submit]`),
		chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth`, &overflow),
		chromedp.Evaluate(`document.querySelectorAll('input:checked').length`, &checked),
		screenshotTo(t, dir, "profile-form-390"))
	// Pick a choice the page never offered: the server refuses it, naming the field.
	var picked bool
	run("pick an unknown choice",
		chromedp.Evaluate(`(() => { const r = document.querySelector('input[name="f.gender"]'); r.value = 'robot'; r.checked = true; return true; })()`, &picked))
	run("submit", chromedp.Click(`button[type=submit]`, chromedp.ByQuery))
	run("the refusal",
		chromedp.WaitVisible(`.msg.err`, chromedp.ByQuery),
		chromedp.Text(`.msg.err`, &message, chromedp.ByQuery),
		screenshotTo(t, dir, "profile-form-refused-390"))
	if overflow {
		t.Error("the form is wider than a 390 px phone")
	}
	if checked != 2 { // her stored answers: 女, 奶茶
		t.Errorf("checked inputs = %d, want her 2 stored choices", checked)
	}
	if !strings.Contains(message, "性别") {
		t.Errorf("refusal message %q does not name the field", message)
	}
}
