package server

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

func TestDashboardPageAndAssetsNeedNoToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.AdminToken = "tok"; o.Sandbox = true })
	cases := []struct {
		path, ctype string
	}{
		{"/", "text/html; charset=utf-8"},
		{"/assets/app.js", "text/javascript; charset=utf-8"},
		{"/assets/app.css", "text/css; charset=utf-8"},
	}
	for _, tc := range cases {
		req := f.do("GET", tc.path, nil)
		if req.code != 200 || req.hdr.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: %d %q", tc.path, req.code, req.hdr.Get("Content-Type"))
		}
		csp := req.hdr.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || req.hdr.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: weak headers %v", tc.path, req.hdr)
		}
	}
	for _, p := range []string{"/assets/index.html", "/assets/nothing.js", "/assets/..%2fdashboard.go", "/assets/.hidden"} {
		if r := f.do("GET", p, nil); r.code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, r.code)
		}
	}
	r := f.do("GET", "/", nil)
	if !strings.Contains(r.body, `data-sandbox="true"`) || !strings.Contains(r.body, `data-token-required="true"`) {
		t.Errorf("page flags: %s", r.body)
	}
	// The page carries no data, even with members in the store.
	f.add("wm_secret", "Secret Name", "xhs", "s1", f.now)
	if r := f.do("GET", "/", nil); strings.Contains(r.body, "wm_secret") || strings.Contains(r.body, "Secret Name") {
		t.Errorf("the page leaks data: %s", r.body)
	}
}

func TestDashboardLanguage(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"":                        "zh",
		"zh-CN,zh;q=0.9,en;q=0.8": "zh",
		"en-US,en;q=0.9":          "en",
		"en-GB;q=0.5,zh-TW;q=0.9": "zh",
		"fr-FR,en;q=0.7,zh;q=0.6": "en",
		"de-DE":                   "zh",
		"EN":                      "en",
	}
	for accept, want := range cases {
		if got := preferredLang(accept); got != want {
			t.Errorf("%q: %s, want %s", accept, got, want)
		}
	}
	f := newFixture(t, nil)
	if r := f.do("GET", "/", nil, "Accept-Language", "en-US"); !strings.Contains(r.body, `<html lang="en">`) {
		t.Errorf("english page: %.200s", r.body)
	}
	if r := f.do("GET", "/", nil, "Accept-Language", "zh-CN"); !strings.Contains(r.body, `<html lang="zh-CN">`) {
		t.Errorf("chinese page: %.200s", r.body)
	}
}

// TestDashboardScriptNeverWritesHTML is the static half of the XSS test (the
// browser test is the live half): the console script builds every node from
// text and never parses strings as HTML, and the page has no inline script.
func TestDashboardScriptNeverWritesHTML(t *testing.T) {
	t.Parallel()
	js, err := fs.ReadFile(dashboardFS, "dashboard/app.js")
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile(`(?m)//.*$`).ReplaceAllString(string(js), "")
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "DOMParser", "createContextualFragment"} {
		if strings.Contains(code, sink) {
			t.Errorf("app.js uses %s: member text could become markup", sink)
		}
	}
	page, _ := fs.ReadFile(dashboardFS, "dashboard/index.html")
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]+</script>|\son[a-z]+=`).Match(page) {
		t.Errorf("index.html has inline script, which the CSP forbids")
	}
}

// TestMemberTimelineInOrderAndInWords: events that WeCom stamps with the
// same second keep their causal order (newest first: an event's actions,
// then the stage change it made, then the event, and the earlier event
// below), and the timeline carries what the console words: event fields
// (channel name of the state, group change), stage from/to/cause, the
// tags an action adds; the detail names the stages and the brand zone.
func TestMemberTimelineInOrderAndInWords(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	at := f.now // the same second for both events (and the engine's clock)
	f.add("wm_tl", "时间线", "xhs", "zhangsan", at)
	f.feed(bot.Event{Type: bot.EventGroupUpdate, ChatID: "wrTea", UpdateDetail: bot.GroupAddMember, ExternalUserID: "wm_tl",
		MemChangeList: []string{"wm_tl"}, MemChangeCnt: 1, JoinScene: 1, At: at})
	r := f.get("/api/v1/members/wm_tl")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	type item struct {
		Kind, Type, Cause, From, To string
		Seq, ActionID               uint64 `json:"-"`
		Fields                      map[string]string
		TagsAdded                   []string `json:"tags_added"`
	}
	var body struct {
		Timeline []struct {
			item
			Seq      uint64    `json:"seq"`
			ActionID uint64    `json:"action_id"`
			At       time.Time `json:"at"`
		} `json:"timeline"`
		StageNames map[string]string `json:"stage_names"`
		Zone       string            `json:"zone"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, it := range body.Timeline {
		order = append(order, fmt.Sprintf("%d:%s:%s@%s", it.Seq, it.Kind, it.Type, it.At.Format("15:04:05")))
	}
	// Newest first. Reading bottom-up: contact.add → its stage → its
	// actions (welcome, tags); group.update → its stage → its actions.
	rank := map[string]int{"event": 0, "stage": 1, "action": 2}
	for i := 1; i < len(body.Timeline); i++ {
		a, b := body.Timeline[i-1], body.Timeline[i]
		if a.At.Before(b.At) || a.At.Equal(b.At) && (a.Seq < b.Seq || a.Seq == b.Seq && (rank[a.Kind] < rank[b.Kind] || a.Kind == b.Kind && a.ActionID < b.ActionID)) {
			t.Errorf("timeline out of order at %d: %v", i, order)
			break
		}
	}
	if n := len(body.Timeline); n < 6 || body.Timeline[n-1].Type != "contact.add" || body.Timeline[0].Kind != "action" {
		t.Errorf("timeline %v", order)
	}
	var sawAdd, sawGroup, sawStage, sawTags bool
	for _, it := range body.Timeline {
		switch {
		case it.Type == "contact.add":
			sawAdd = it.Fields["state"] == "xhs" && it.Fields["channel"] == "小红书" && it.Fields["staff"] == "zhangsan"
		case it.Type == "group.update":
			sawGroup = it.Fields["update"] == "add_member" && it.Fields["chat"] == "wrTea"
		case it.Kind == "stage" && it.Cause == "join_group":
			sawStage = it.From == "aware" && it.To == "interest"
		case it.Type == "mark_tag" && len(it.TagsAdded) > 0:
			sawTags = true
		}
	}
	if !sawAdd || !sawGroup || !sawStage || !sawTags {
		t.Errorf("words: add %v group %v stage %v tags %v\n%s", sawAdd, sawGroup, sawStage, sawTags, r.body)
	}
	if body.StageNames["aware"] != "认知" || body.StageNames["loyal"] != "忠诚" || body.Zone != "Asia/Shanghai" {
		t.Errorf("stage names %v zone %q", body.StageNames, body.Zone)
	}
}

// TestDashboardWordsInBothLanguages: every t('key') the console uses has a
// 中文 and an English text, and the two tables have the same keys (a key
// missing from one language would show the key itself).
func TestDashboardWordsInBothLanguages(t *testing.T) {
	js, err := fs.ReadFile(dashboardFS, "dashboard/app.js")
	if err != nil {
		t.Fatal(err)
	}
	src := string(js)
	start, end := strings.Index(src, "const I18N = {"), strings.Index(src, "const LABELS = {")
	if start < 0 || end < start {
		t.Fatal("no I18N table in app.js")
	}
	zh, en, ok := strings.Cut(src[start:end], "\n    en: {")
	if !ok {
		t.Fatal("no en table")
	}
	keyRe := regexp.MustCompile(`(?:[{,]\s*|\n\s*)([a-zA-Z_]+): '`)
	keys := func(s string) map[string]bool {
		out := map[string]bool{}
		for _, m := range keyRe.FindAllStringSubmatch(s, -1) {
			out[m[1]] = true
		}
		return out
	}
	zhKeys, enKeys := keys(zh), keys(en)
	if len(zhKeys) < 100 {
		t.Fatalf("read only %d keys", len(zhKeys))
	}
	for k := range zhKeys {
		if !enKeys[k] {
			t.Errorf("%s has no English", k)
		}
	}
	for k := range enKeys {
		if !zhKeys[k] {
			t.Errorf("%s has no 中文", k)
		}
	}
	for _, m := range regexp.MustCompile(`\bt\('([a-zA-Z_]+)'\)`).FindAllStringSubmatch(src, -1) {
		if !zhKeys[m[1]] || !enKeys[m[1]] {
			t.Errorf("t('%s') is in neither or one language only", m[1])
		}
	}
}
