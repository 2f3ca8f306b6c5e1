package main

import (
	"context"
	"encoding/json"
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
	// A busy community around them: more customers on the other channels.
	busyChannels := []string{"douyin", "store_poster", "website"}
	busyJourneys := [][]string{{"add"}, {"add", "join_group"}, {"add", "check_in"}, {"add", "join_group", "order"}}
	const busy = 16
	for i := 0; i < busy; i++ {
		in.simulateMember(t, token, fmt.Sprintf("wm_busy%02d", i), fmt.Sprintf("茶友%02d", i), busyChannels[i%3], busyJourneys[i%4]...)
	}
	_, funnel, raw := in.adminCall(t, "GET", "/api/v1/funnel?fresh=true", token, nil)
	want := map[string]string{}
	for _, s := range funnel["stages"].([]any) {
		sm := s.(map[string]any)
		want[sm["stage"].(string)] = strconv.Itoa(int(sm["reached"].(float64)))
	}
	if want["aware"] != strconv.Itoa(5+busy) || want["interest"] != strconv.Itoa(4+busy*3/4) || want["purchase"] != strconv.Itoa(2+busy/4) {
		t.Fatalf("seeded funnel is not what the test expects: %s", raw)
	}

	dir := shotsDir(t)

	ctx := newBrowser(t, chromium)

	var dialogs atomic.Int32
	chromedp.ListenTarget(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
		}
	})

	shot := func(name string) chromedp.Action { return screenshotTo(t, dir, name) }
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
			chromedp.Evaluate(fmt.Sprintf(`document.querySelector('#funnel-chart .funnel-count[data-stage="%s"]').textContent`, stage), &chart),
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
	if err := chromedp.Run(ctx, chromedp.Text("#kpi-members", &members, chromedp.ByQuery)); err != nil || members != strconv.Itoa(5+busy) {
		t.Errorf("member count shown %q (%v)", members, err)
	}
	// The GMV decomposition shows the API's numbers.
	_, money, _ := in.adminCall(t, "GET", "/api/v1/metrics?weeks=12", token, nil)
	dec := money["decomposition"].(map[string]any)
	var gmvShown, trafficShown string
	err = chromedp.Run(ctx, chromedp.Text("#gmv-total .v", &gmvShown, chromedp.ByQuery), chromedp.Text("#gmv-traffic .v", &trafficShown, chromedp.ByQuery))
	if want := fmt.Sprintf("¥%.2f", dec["gmv_fen"].(float64)/100); err != nil || gmvShown != want || trafficShown != strconv.Itoa(5+busy) || dec["gmv_fen"].(float64) == 0 {
		t.Errorf("GMV decomposition shows %q from %q new customers, want %s from %d (%v)", gmvShown, trafficShown, want, 5+busy, err)
	}

	// Member search: the XSS name is found, shown as text, and never runs.
	var names []string
	var gen string
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#members"),
		ready("#member-q"),
		chromedp.SendKeys("#member-q", "onerror", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('#view').dataset.ready || ''`, &gen),
		chromedp.Click("#member-search-go", chromedp.ByQuery),
	)
	if err == nil {
		// The search re-routes to #members?q=…: wait for that view, not the unfiltered list before it.
		err = chromedp.Run(ctx,
			chromedp.Poll(fmt.Sprintf(`location.hash.includes('q=onerror') && document.querySelector('#view').dataset.ready !== %q`, gen), nil, chromedp.WithPollingTimeout(10*time.Second)),
			chromedp.WaitVisible(`#member-results tr.member-row a[href="#member/wm_evil"]`, chromedp.ByQuery),
			chromedp.Evaluate(`[...document.querySelectorAll('#member-results .member-name')].map(a => a.textContent)`, &names),
			shot("02-member-search"),
		)
	}
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

	// The segment builder: its count follows the rules as they change.
	var total, xhsTotal, silentTotal, split string
	var sample []string
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#segments"),
		ready("#segment-form"),
		chromedp.Poll(`(document.querySelector('#segment-count') || {}).dataset?.total || ''`, &total, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Click(`#segment-form input[name="channels"][value="xhs"]`, chromedp.ByQuery),
		chromedp.Poll(`(() => { const c = document.querySelector('#segment-count'); return c.dataset.total === '2' && c.textContent === '2' ? c.dataset.total : false })()`, &xhsTotal, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Evaluate(`[...document.querySelectorAll('#segment-sample .member-name')].map(a => a.textContent)`, &sample),
		chromedp.Text("#segment-split", &split, chromedp.ByQuery),
		shot("02b-segment-builder"),
		chromedp.SendKeys(`#segment-form input[name="silent_days"]`, "14", chromedp.ByQuery),
		chromedp.Poll(`document.querySelector('#segment-count').dataset.total === '0' ? '0' : false`, &silentTotal, chromedp.WithPollingTimeout(10*time.Second)),
	)
	if err != nil {
		var shown string
		_ = chromedp.Run(ctx, chromedp.Evaluate(`(document.querySelector('#view') || document.body).innerText.slice(0, 2000)`, &shown))
		t.Fatalf("segment builder: %v\npage:\n%s", err, shown)
	}
	if total != strconv.Itoa(5+busy) || len(sample) != 2 || sample[0] != "小艾 Alice" || !strings.Contains(split, "2") {
		t.Errorf("segment builder: everyone %q (want %d), xhs sample %q, split %q", total, 5+busy, sample, split)
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
	// 群发: a preview (dry run) shows the count the API answers, sending it
	// opens its report, which shows the run's targets.
	var previewCount, segment, reportTargeted string
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#broadcasts"),
		ready("#bc-form"),
		chromedp.Value("#bc-segment", &segment, chromedp.ByQuery),
		chromedp.SetValue("#bc-text", "{{.Name}}，本周上新：桂花乌龙", chromedp.ByQuery),
		chromedp.Click("#bc-preview-btn", chromedp.ByQuery),
		chromedp.WaitVisible("#bc-count", chromedp.ByQuery),
		chromedp.Text("#bc-count", &previewCount, chromedp.ByQuery),
		shot("12-broadcast-preview"),
	)
	if err != nil {
		t.Fatalf("broadcast preview: %v", err)
	}
	dryBody, _ := json.Marshal(map[string]any{"segment": segment, "text": "x", "dry_run": true})
	code, dry, _ := in.adminCall(t, "POST", "/api/v1/broadcasts", token, dryBody)
	if want := fmt.Sprint(dry["preview"].(map[string]any)["targeted"]); code != 200 || previewCount != want {
		t.Errorf("broadcast preview shows %q for segment %q, the API %d %v", previewCount, segment, code, dry)
	}
	var created string
	err = chromedp.Run(ctx,
		chromedp.Click("#bc-send-btn", chromedp.ByQuery),
		chromedp.WaitVisible("#bc-created", chromedp.ByQuery),
		chromedp.Text("#bc-created", &created, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("broadcast send: %v", err)
	}
	// The run fans out in the pipeline; its report page then shows the
	// preview's count as targeted.
	eventuallyT(t, "the broadcast ran", 10*time.Second, func() bool {
		code, rep, _ := in.adminCall(t, "GET", "/api/v1/broadcasts/"+created, token, nil)
		return code == 200 && rep["status"] == "done"
	})
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#broadcast/"+created),
		ready("#bc-targeted"),
		chromedp.Text("#bc-targeted", &reportTargeted, chromedp.ByQuery),
		shot("13-broadcast-report"),
	)
	if err != nil || reportTargeted != previewCount {
		t.Errorf("broadcast report shows %q targeted, the preview %q (%v)", reportTargeted, previewCount, err)
	}

	// SOP: the demo's re-activation SOP is listed with its steps; its
	// pause button pauses it (the engine applies the operator's event: the
	// API says paused, the page shows it) and resume undoes it.
	const sopName = "沉默唤醒"
	var stepRows int
	var sopState string
	err = chromedp.Run(ctx,
		chromedp.Navigate(in.base+"/#sops"),
		ready(`section[data-sop="`+sopName+`"]`),
		chromedp.Evaluate(`document.querySelectorAll('section[data-sop="`+sopName+`"] tbody tr').length`, &stepRows),
		chromedp.Click(`button[data-sop-switch="`+sopName+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`span.badge.bad[data-sop-state="`+sopName+`"]`, chromedp.ByQuery),
		chromedp.Text(`span[data-sop-state="`+sopName+`"]`, &sopState, chromedp.ByQuery),
		shot("14-sops-paused"),
	)
	if err != nil || stepRows != 2 {
		t.Fatalf("SOP page: %v (%d step rows, want 2)", err, stepRows)
	}
	code, sops, _ := in.adminCall(t, "GET", "/api/v1/sops", token, nil)
	paused := false
	for _, x := range sops["sops"].([]any) {
		if x.(map[string]any)["name"] == sopName {
			paused = x.(map[string]any)["paused"] == true
		}
	}
	if code != 200 || !paused || sopState == "" {
		t.Errorf("after pause on the page: API %d paused=%v, page badge %q", code, paused, sopState)
	}
	err = chromedp.Run(ctx,
		chromedp.Click(`button[data-sop-switch="`+sopName+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`span.badge.ok[data-sop-state="`+sopName+`"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Errorf("resume on the SOP page: %v", err)
	}

	// The language toggle: 中文 (the browser asks for zh-CN) → English → 中文, kept across loads.
	var langs, navs []string
	for i := 0; i < 3; i++ {
		var l, nav string
		acts := []chromedp.Action{chromedp.Navigate(in.base + "/#overview"), ready("#funnel-table")}
		if i > 0 {
			acts = append(acts, chromedp.Click("#lang-toggle", chromedp.ByQuery), ready("#funnel-table"),
				chromedp.Navigate("about:blank"), chromedp.Navigate(in.base+"/#overview"), ready("#funnel-table"))
		}
		acts = append(acts, chromedp.Evaluate(`document.documentElement.lang`, &l), chromedp.Text(`nav.tabs a[data-route="members"]`, &nav, chromedp.ByQuery))
		if err := chromedp.Run(ctx, acts...); err != nil {
			t.Fatalf("language toggle: %v", err)
		}
		langs, navs = append(langs, l), append(navs, nav)
	}
	if strings.Join(langs, " ") != "zh-CN en zh-CN" || strings.Join(navs, " ") != "客户 Customers 客户" {
		t.Errorf("language toggle: %v %v", langs, navs)
	}

	// Every page at 1400 px and 390 px, in 中文 and English, checked and shot.
	consoleMatrix(t, ctx, in.base, dir, "busy", true)
	t.Logf("screenshots in %s", dir)
}

// shotsDir is where screenshots go: -screenshots, or a temp dir.
func shotsDir(t *testing.T) string {
	dir := *screenshotDir
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
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
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute) // the matrix is ~60 page loads; a loaded CI machine under -race is slow
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
	t.Parallel()
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
	// The empty store, every page, both sizes and languages.
	consoleMatrix(t, ctx, in.base, shotsDir(t), "empty", false)
}

// consoleChecks runs in the page and returns what looks wrong on the view
// shown: raw codes where words belong, clipped or squeezed text, content
// wider than the screen. lang is the page's language.
const consoleChecks = `(lang) => {
  const bad = [];
  const view = document.querySelector('#view');
  // What the operator reads, minus data that legitimately looks like code
  // (customer and staff ids, channel states, chat ids, WeCom API names).
  // (select options are file and channel names: data too.)
  const clone = view.cloneNode(true);
  for (const el of clone.querySelectorAll('select, textarea, pre')) el.remove();
  document.body.append(clone);
  const shown = clone.innerText;
  clone.remove();
  const text = shown.replace(/\b(wm|wr|wk)[A-Za-z0-9_]+/g, '').replace(/\b(sandbox_staff|store_poster|sandbox|wecombot)\b/gi, (w) => /^(sandbox|wecombot)$/.test(w) ? w : '');
  for (const raw of ['mark_tag', 'kf_message', 'mass_send', 'group.update', 'contact.add', 'kf.text', 'order.paid', 'detail=', 'source=', 'stage:', '["', 'send_retries', 'welcome_scripts', 'last_processed_seq']) {
    if (text.includes(raw)) bad.push('raw code on the page: ' + raw);
  }
  if (lang === 'zh') {
    for (const w of ['aware', 'interest', 'purchase', 'loyal', 'issued', 'welcome', 'embedded', 'processed', 'sandbox', 'pending', 'Check-in', 'Members']) {
      if (new RegExp('\\b' + w + '\\b').test(text)) bad.push('English on the 中文 page: ' + w);
    }
    const badge = document.querySelector('#sandbox-badge');
    if (badge && badge.textContent !== '沙盒') bad.push('sandbox badge: ' + badge.textContent);
  }
  // No page scrolls sideways (wide tables scroll inside their card).
  if (document.documentElement.scrollWidth > window.innerWidth + 1) bad.push('page wider than the screen: ' + document.documentElement.scrollWidth);
  // Every tab of the nav is on screen (no hidden sideways scroll).
  for (const a of document.querySelectorAll('nav.tabs a')) {
    const r = a.getBoundingClientRect();
    if (r.width === 0 || r.left < 0 || r.right > window.innerWidth + 1) bad.push('nav tab off screen: ' + a.textContent);
  }
  // Chart text stays inside its chart.
  for (const g of view.querySelectorAll('svg')) {
    const box = g.getBoundingClientRect();
    for (const tx of g.querySelectorAll('text')) {
      const r = tx.getBoundingClientRect();
      if (r.width && (r.left < box.left - 1 || r.right > box.right + 1)) bad.push('chart label cut off: ' + tx.textContent);
    }
  }
  // Chart text at least 9.5 px as shown.
  for (const g of view.querySelectorAll('svg[viewBox]')) {
    const w = g.viewBox.baseVal.width, shown = g.getBoundingClientRect().width;
    const t = g.querySelector('text');
    if (t && shown > 0 && Number(t.getAttribute('font-size')) * shown / w < 9.5) bad.push('chart text too small: ' + (g.id || 'svg') + ' ' + (Number(t.getAttribute('font-size')) * shown / w).toFixed(1) + 'px');
  }
  for (const el of view.querySelectorAll('.f-bar, .funnel-count')) {
    if (parseFloat(getComputedStyle(el).fontSize) < 12) bad.push('funnel text too small: ' + el.textContent);
  }
  // No text spills out of its box (a funnel bar, a chip, a button, a badge).
  for (const el of view.querySelectorAll('.f-bar, .chip, button, .badge, .stage, .kpi .v')) {
    if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0) bad.push('text spills out of its box: ' + el.textContent);
  }
  // A single word (a code, a hook, an id) never breaks inside a cell.
  for (const td of view.querySelectorAll('td, th')) {
    const s = td.textContent.trim();
    if (!/^[\x21-\x7e]{2,40}$/.test(s) || td.children.length > 1) continue;
    const lines = new Set();
    const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      const range = document.createRange();
      range.selectNodeContents(n);
      for (const r of range.getClientRects()) if (r.width > 0) lines.add(Math.round(r.top));
    }
    if (lines.size > 1) bad.push('word broken in a cell: ' + s);
  }
  // Names are never squeezed to a character per line.
  for (const el of view.querySelectorAll('td.pool-name, .member-name, th')) {
    const fs = parseFloat(getComputedStyle(el).fontSize);
    const len = [...el.textContent.trim()].length;
    if (el.getClientRects().length === 0) continue; // not shown (a stacked table's head on a phone)
    if (len >= 3 && el.getBoundingClientRect().width < 2.2 * fs && getComputedStyle(el).display !== 'none') bad.push('squeezed: ' + el.textContent);
  }
  // A table never spills out of its card.
  for (const tb of view.querySelectorAll('table')) {
    const box = tb.closest('.card');
    if (!box) continue;
    if (tb.getBoundingClientRect().right > box.getBoundingClientRect().right + 1) bad.push('table wider than its card: ' + (tb.id || tb.closest('.card').querySelector('h2') && tb.closest('.card').querySelector('h2').textContent));
  }
  return bad;
}`

// consoleMatrix opens every page at 1400 px and at 390 px (phone), in 中文
// and in English, takes a screenshot of each, and fails on what
// consoleChecks finds; on a busy store it also checks the member page
// opened directly (a fresh page load) and the footer's brand-zone time.
func consoleMatrix(t *testing.T, ctx context.Context, base, dir, store string, busy bool) {
	t.Helper()
	pages := []struct{ hash, sel string }{
		{"#overview", "#funnel-table"}, {"#members", "#member-search"}, {"#segments", "#segment-form"}, {"#campaigns", "#checkin-chart"},
		{"#coupons", "main h1"}, {"#scenarios", "#scenario-yaml"}, {"#operations", "#ops-lag"}, {"#sandbox", "#sim-add"},
		{"#broadcasts", "#bc-form"}, {"#sops", "section.sop"}, {"#economy", "#points-issued-chart"},
	}
	if busy {
		pages = append(pages, struct{ hash, sel string }{"#member/wm_alice", "#member-profile"})
	}
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	for _, size := range []struct {
		name string
		w, h int64
		opts []chromedp.EmulateViewportOption
	}{{"1400", 1400, 900, nil}, {"390", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateScale(2), chromedp.EmulateMobile}}} {
		for _, lang := range []string{"zh", "en"} {
			err := chromedp.Run(ctx, chromedp.EmulateViewport(size.w, size.h, size.opts...),
				chromedp.Evaluate(fmt.Sprintf(`localStorage.setItem('wecombot.lang', %q)`, lang), nil))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pages {
				name := fmt.Sprintf("%s-%s-%s-%s", store, size.name, lang, strings.NewReplacer("#", "", "/", "-").Replace(p.hash))
				var bad []string
				var htmlLang string
				// A fresh load for every page: what an operator opening a link sees.
				err := chromedp.Run(ctx,
					chromedp.Navigate("about:blank"),
					chromedp.Navigate(base+"/"+p.hash),
					chromedp.WaitVisible(p.sel, chromedp.ByQuery),
					chromedp.WaitVisible(`#view[data-ready]`, chromedp.ByQuery),
					chromedp.Evaluate(`document.documentElement.lang`, &htmlLang),
					chromedp.Evaluate(`(`+consoleChecks+`)(`+strconv.Quote(lang)+`)`, &bad),
					screenshotTo(t, dir, name),
				)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if want := map[string]string{"zh": "zh-CN", "en": "en"}[lang]; htmlLang != want {
					t.Errorf("%s: page language %q, want %q", name, htmlLang, want)
				}
				for _, b := range bad {
					t.Errorf("%s: %s", name, b)
				}
				switch p.hash {
				case "#overview":
					var asOf, computed, group string
					err := chromedp.Run(ctx, chromedp.Text("#as-of", &asOf, chromedp.ByQuery),
						chromedp.Evaluate(`document.querySelector('#as-of').dataset.at`, &computed), // the API's computed_at the page showed
						chromedp.Evaluate(`(document.querySelector('#channel-table th.group') || {}).textContent || ''`, &group))
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					// The footer's time is Shanghai's, whatever the browser's zone (UTC here).
					at, _ := time.Parse(time.RFC3339Nano, computed)
					if want := at.In(shanghai).Format("2006-01-02 15:04"); !strings.Contains(asOf, want) || !strings.Contains(asOf, "Asia/Shanghai") {
						t.Errorf("%s: footer %q, want %s (Asia/Shanghai) for %s", name, asOf, want, computed)
					}
					if lang == "zh" && group != "当前所在阶段（人）" || lang == "en" && group != "In each stage now" {
						if busy && size.name == "1400" {
							t.Errorf("%s: the channel table does not say its counts are current: %q", name, group)
						}
					}
				case "#campaigns":
					if !busy {
						var note string
						if err := chromedp.Run(ctx, chromedp.Evaluate(`(document.querySelector('#checkin-chart .no-data') || {}).textContent || ''`, &note)); err != nil || note != map[string]string{"zh": "暂无数据", "en": "No data yet"}[lang] {
							t.Errorf("%s: the empty daily chart says %q (%v)", name, note, err)
						}
					}
				case "#member/wm_alice":
					var stage, history, checkin, coupons, timeline string
					err := chromedp.Run(ctx,
						chromedp.Text("#member-profile .stage", &stage, chromedp.ByQuery),
						chromedp.Text("#stage-history", &history, chromedp.ByQuery),
						chromedp.Text("#member-checkin", &checkin, chromedp.ByQuery),
						chromedp.Text("#member-coupons", &coupons, chromedp.ByQuery),
						chromedp.Text("#timeline", &timeline, chromedp.ByQuery))
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					want := map[string][]string{
						"zh": {"购买", "认知 → 兴趣", "补卡", "券码", "发放场景", "欢迎语", "进入「购买」阶段", "未使用", "发送欢迎语", "打企业客户标签", "客户群变更", "入群", "渠道：小红书 (xhs)", "来源：运营操作"},
						"en": {"Purchase", "Aware → Interest", "Make-ups", "Code", "welcome message", "reached Purchase", "unused", "Welcome message", "Corp tags", "Customer group changed", "joined", "channel: 小红书 (xhs)", "source: operator"},
					}[lang]
					all := strings.Join([]string{stage, history, checkin, coupons, timeline}, "\n")
					for _, w := range want {
						if !strings.Contains(all, w) {
							t.Errorf("%s: the member page lacks %q", name, w)
						}
					}
					if !strings.Contains(checkin, time.Now().In(shanghai).Format("2006-01-02")) && !strings.Contains(checkin, time.Now().In(shanghai).Add(-24*time.Hour).Format("2006-01-02")) {
						t.Errorf("%s: check-in days are not dates: %q", name, checkin)
					}
				}
			}
		}
	}
}

// screenshotTo saves a full-page screenshot as dir/name.png.
func screenshotTo(t *testing.T, dir, name string) chromedp.Action {
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
