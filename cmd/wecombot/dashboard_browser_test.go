package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// screenshotDir keeps the browser test's screenshots:
//
//	go test ./cmd/wecombot -run TestDashboardInBrowser -args -screenshots=testdata/screenshots
var screenshotDir = flag.String("screenshots", "", "directory for the dashboard browser test's screenshots (default: a temp dir)")

// findChromium returns Debian's chromium (or another Chrome) or "".
func findChromium() string {
	if p := os.Getenv("WECOMBOT_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// digits keeps only the digits of a number as shown ("1,234" → "1234").
func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// xssName is a member name that would run script if the page ever put
// member text into HTML.
const xssName = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`

// TestDashboardInBrowser starts the real server through run() on seeded
// sandbox data, opens the console in headless chromium, enters the admin
// token, checks the funnel shown equals GET /api/v1/funnel, searches for a
// member (whose name is an XSS payload that must show as text and never
// run), opens the profile, and saves screenshots of every page.
func TestDashboardInBrowser(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("chromium not found (/usr/bin/chromium): install it with `apt-get install -y chromium` (.ci/run does) to run the dashboard browser test")
	}
	const token = "browser-test-token"
	in := startServe(t, map[string]string{"WECOMBOT_DATA_DIR": t.TempDir(), "WECOMBOT_ADMIN_TOKEN": token, "WECOMBOT_LOG_LEVEL": "warn"})

	// Seed a community through the sandbox simulator: the real pipeline and engine.
	in.simulateMember(t, token, "wm_alice", "小艾 Alice", "xhs", "add", "join_group", "check_in", "order")
	in.simulateMember(t, token, "wm_bob", "大伟", "douyin", "add", "check_in")
	in.simulateMember(t, token, "wm_carol", "Carol", "store_poster", "add")
	in.simulateMember(t, token, "wm_dan", "阿丹", "xhs", "add", "order")
	in.simulateMember(t, token, "wm_evil", xssName, "website", "add", "check_in")
	_, funnel, raw := in.adminCall(t, "GET", "/api/v1/funnel?fresh=true", token, nil)
	want := map[string]string{}
	for _, s := range funnel["stages"].([]any) {
		sm := s.(map[string]any)
		want[sm["stage"].(string)] = strconv.Itoa(int(sm["reached"].(float64)))
	}
	if want["aware"] != "5" || want["interest"] != "4" || want["purchase"] != "2" {
		t.Fatalf("seeded funnel is not what the test expects: %s", raw)
	}

	dir := *screenshotDir
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx := newBrowser(t, chromium)

	var dialogs atomic.Int32
	chromedp.ListenTarget(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
		}
	})

	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var buf []byte
			if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
				return err
			}
			path := filepath.Join(dir, name+".png")
			t.Logf("screenshot %s", path)
			return os.WriteFile(path, buf, 0o644)
		})
	}
	// ready waits until the router has rendered the view (not the loading state).
	ready := func(sel string) chromedp.Action {
		return chromedp.WaitVisible(sel, chromedp.ByQuery)
	}

	// The token dialog, then the overview.
	err := chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#overview"),
		chromedp.WaitVisible("#token-input", chromedp.ByQuery),
		shot("00-token"),
		chromedp.SendKeys("#token-input", token, chromedp.ByQuery),
		chromedp.Click(`#token-dialog button[type="submit"]`, chromedp.ByQuery),
		ready("#funnel-table"),
		ready("#trend-chart"),
		shot("01-overview"),
	)
	if err != nil {
		t.Fatalf("overview: %v\nserver log:\n%s", err, in.logs)
	}

	// The funnel numbers shown (table and chart) equal the API's.
	for _, stage := range []string{"aware", "interest", "purchase", "loyal"} {
		var cell, chart string
		err := chromedp.Run(ctx,
			chromedp.Text(fmt.Sprintf(`#funnel-table td.funnel-reached[data-stage="%s"]`, stage), &cell, chromedp.ByQuery),
			// SVG text has no innerText: read textContent.
			chromedp.Evaluate(fmt.Sprintf(`document.querySelector('#funnel-chart text.funnel-count[data-stage="%s"]').textContent`, stage), &chart),
		)
		if err != nil {
			t.Fatal(err)
		}
		// Numbers are shown with thousands separators (1,234); compare the digits.
		if digits(cell) != want[stage] || digits(chart) != want[stage] {
			t.Errorf("%s: page shows table %q chart %q, API says %s", stage, cell, chart, want[stage])
		}
	}
	// The funnel by channel: 小红书 has alice (purchase) and dan (purchase).
	var xhsAware, xhsPurchase, hash string
	err = chromedp.Run(ctx,
		// Choosing a channel re-routes to #overview?channel=….
		chromedp.Evaluate(`(() => { const s = document.querySelector('#funnel-channel'); s.value = '小红书'; s.dispatchEvent(new Event('change')); return location.hash })()`, &hash),
		chromedp.WaitReady(`#funnel-channel option[value="小红书"][selected]`, chromedp.ByQuery), // options have no box: ready, not visible
		chromedp.WaitVisible("#funnel-table", chromedp.ByQuery),
		chromedp.Text(`#funnel-table td.funnel-reached[data-stage="aware"]`, &xhsAware, chromedp.ByQuery),
		chromedp.Text(`#funnel-table td.funnel-reached[data-stage="purchase"]`, &xhsPurchase, chromedp.ByQuery),
		shot("01b-overview-channel"),
		chromedp.Navigate(in.base+"/#overview"),
		chromedp.WaitVisible(`#funnel-channel`, chromedp.ByQuery),
	)
	if err != nil || xhsAware != "2" || xhsPurchase != "2" {
		t.Errorf("funnel for 小红书 (%s): aware %q purchase %q (%v)", hash, xhsAware, xhsPurchase, err)
	}
	var members string
	if err := chromedp.Run(ctx, chromedp.Text("#kpi-members", &members, chromedp.ByQuery)); err != nil || members != "5" {
		t.Errorf("member count shown %q (%v)", members, err)
	}

	// Member search: the XSS name is found, shown as text, and never runs.
	var names []string
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#members"),
		ready("#member-q"),
		chromedp.SendKeys("#member-q", "onerror", chromedp.ByQuery),
		chromedp.Click("#member-search-go", chromedp.ByQuery),
		chromedp.WaitVisible(`#member-results tr.member-row a[href="#member/wm_evil"]`, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll('#member-results .member-name')].map(a => a.textContent)`, &names),
		shot("02-member-search"),
	)
	if err != nil {
		t.Fatalf("member search: %v", err)
	}
	if len(names) != 1 || names[0] != xssName {
		t.Errorf("search for onerror shows %q, want only the literal name", names)
	}
	var byName []string
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#members?q="+"%E5%B0%8F%E8%89%BE"), // 小艾
		chromedp.WaitVisible(`#member-results a[href="#member/wm_alice"]`, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll('#member-results .member-name')].map(a => a.textContent)`, &byName),
	)
	if err != nil || len(byName) != 1 || byName[0] != "小艾 Alice" {
		t.Errorf("search by Chinese name: %q %v", byName, err)
	}

	// The profile of the XSS member: name as text, and no script ran anywhere.
	var profileName string
	var xss any
	var imgs int
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#member/wm_evil"),
		ready("#member-profile"),
		chromedp.Text("#profile-name", &profileName, chromedp.ByQuery),
		chromedp.Evaluate(`window.__xss`, &xss),
		chromedp.Evaluate(`document.querySelectorAll('main img, main script').length`, &imgs),
		shot("03-member-profile-xss"),
		chromedp.Navigate(in.base+"/#member/wm_alice"),
		ready("#conversation"),
		shot("04-member-profile"),
	)
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	if profileName != xssName || xss != nil || imgs != 0 || dialogs.Load() != 0 {
		t.Errorf("XSS: profile name %q, window.__xss=%v, injected elements %d, dialogs %d", profileName, xss, imgs, dialogs.Load())
	}

	// Every other page renders (screenshots to look at), in both languages, and on a phone.
	pages := []struct{ hash, sel, name string }{
		{"#campaigns", "#checkin-chart", "05-campaigns"},
		{"#coupons", "main h1", "06-coupons"},
		{"#scenarios", "#scenario-yaml", "07-scenarios"},
		{"#operations", "#ops-lag", "08-operations"},
		{"#sandbox", "#sim-add", "09-sandbox"},
	}
	for _, p := range pages {
		if err := chromedp.Run(ctx, chromedp.Navigate(in.base+"/"+p.hash), ready(p.sel), shot(p.name)); err != nil {
			t.Fatalf("%s: %v", p.hash, err)
		}
	}
	// Scenario validation in the page: a broken edit shows file:line problems;
	// the simulate box answers with the engine's transcript.
	var transcript string
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#scenarios"),
		ready("#scenario-yaml"),
		chromedp.SetValue("#scenario-yaml", "brand:\n  name: x\n  colour: red\n", chromedp.ByQuery),
		chromedp.Click("#validate-btn", chromedp.ByQuery),
		chromedp.WaitVisible("#problems li", chromedp.ByQuery),
		shot("10-scenario-problems"),
		chromedp.Click("#simulate-btn", chromedp.ByQuery),
		chromedp.WaitVisible("#simulate-output pre", chromedp.ByQuery),
		chromedp.Text("#simulate-output pre", &transcript, chromedp.ByQuery),
	)
	if err == nil && !strings.Contains(transcript, "wm_try") {
		t.Errorf("simulate transcript: %q", transcript)
	}
	if err != nil {
		t.Fatalf("validate in page: %v", err)
	}
	// The sandbox panel drives a new member's journey from the page.
	var stage string
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#sandbox"),
		ready("#sim-journey"),
		chromedp.SetValue("#sim-member", "wm_from_page", chromedp.ByQuery),
		chromedp.Click("#sim-journey", chromedp.ByQuery),
		chromedp.WaitVisible(`#sim-log li:nth-child(4)`, chromedp.ByQuery),
		chromedp.WaitVisible(`#sim-profile #member-profile`, chromedp.ByQuery),
		chromedp.Sleep(400*time.Millisecond), // the last profile refresh
		chromedp.Text(`#sim-profile #member-profile .stage`, &stage, chromedp.ByQuery),
		shot("11-sandbox-journey"),
	)
	if err != nil {
		t.Fatalf("sandbox journey: %v", err)
	}
	if code, m, _ := in.adminCall(t, "GET", "/api/v1/members/wm_from_page", token, nil); code != 200 || m["member"].(map[string]any)["stage"] != "purchase" {
		t.Errorf("journey from the page: %d %v (page shows %q)", code, m, stage)
	}
	// English and a phone-sized viewport.
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#overview"),
		ready("#lang-toggle"),
		chromedp.Click("#lang-toggle", chromedp.ByQuery),
		ready("#funnel-table"),
		shot("12-overview-en"),
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Click("#lang-toggle", chromedp.ByQuery),
		ready("#funnel-table"),
		shot("13-overview-phone"),
		chromedp.Navigate(in.base+"/#member/wm_alice"),
		ready("#member-profile"),
		shot("14-profile-phone"),
	)
	if err != nil {
		t.Fatalf("english/phone: %v", err)
	}
	// No page scrolls sideways on a phone (wide tables scroll inside their card).
	for _, hash := range []string{"#overview", "#member/wm_alice", "#members", "#campaigns", "#operations", "#scenarios", "#sandbox"} {
		var overflow bool
		err := chromedp.Run(ctx, chromedp.Navigate(in.base+"/"+hash), chromedp.WaitVisible(`#view > div:not(.loading)`, chromedp.ByQuery),
			chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow))
		if err != nil || overflow {
			t.Errorf("%s on a phone scrolls sideways (%v)", hash, err)
		}
	}
	t.Logf("screenshots in %s", dir)
}

// newBrowser starts headless chromium with a fresh profile for one test.
func newBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("lang", "zh-CN"),
		chromedp.Flag("accept-lang", "zh-CN,zh"),
		chromedp.UserDataDir(profileDir(t)),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	// chromedp v0.14 logs CDP events newer chromium sends that it doesn't know; not errors of ours.
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if !strings.HasPrefix(format, "unhandled") {
			t.Logf("chromedp: "+format, args...)
		}
	}))
	t.Cleanup(cancelCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

// profileDir is chromium's user-data-dir. Not t.TempDir: chromium's helper
// processes may still write there for a moment after the browser exits,
// and TempDir's cleanup fails the test when the directory isn't empty.
func profileDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "wecombot-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 20; i++ {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("left chromium profile %s behind", dir)
	})
	return dir
}

// TestDashboardOnLoopbackWithoutToken: with no WECOMBOT_ADMIN_TOKEN, the
// console on this machine asks for nothing and shows the sandbox hint on an
// empty community.
func TestDashboardOnLoopbackWithoutToken(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("chromium not found (/usr/bin/chromium): install it with `apt-get install -y chromium` (.ci/run does) to run the dashboard browser test")
	}
	in := startServe(t, map[string]string{"WECOMBOT_DATA_DIR": t.TempDir(), "WECOMBOT_LOG_LEVEL": "warn"})
	ctx := newBrowser(t, chromium)
	var dialogs int
	err := chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/"),
		chromedp.WaitVisible("#funnel-table", chromedp.ByQuery),
		chromedp.WaitVisible("#sandbox-hint a", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('#token-dialog').length`, &dialogs),
		chromedp.Click("#sandbox-hint a", chromedp.ByQuery),
		chromedp.WaitVisible("#sim-add", chromedp.ByQuery),
	)
	if err != nil || dialogs != 0 {
		t.Fatalf("loopback console: %v (token dialogs: %d)", err, dialogs)
	}
}
