package server

import (
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestDashboardPageAndAssetsNeedNoToken(t *testing.T) {
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
