package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// The broadcast acceptance path, through run() against the fake
// WeCom: 30 members over two channels and two staff members; a YAML
// broadcast to one channel's segment due a few seconds ahead becomes one
// mass-send task per staff member carrying exactly that staff member's
// members of the segment; the report shows the per-customer results the
// fake returns; a restart after the send sends nothing more.
func TestBroadcastEndToEnd(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	data := t.TempDir()
	env, c := liveEnv(t, fake, data)
	dir := t.TempDir()
	zone := time.FixedZone("CST", 8*3600)
	at := time.Now().Add(6 * time.Second).In(zone)
	scenario := fmt.Sprintf(`brand: {name: 山茶集, default_member_name: 茶友, zone: Asia/Shanghai}
tags:
  来源渠道: [来源-小红书, 来源-抖音]
channels:
  - {state: xhs, name: 小红书, tags: [来源-小红书]}
  - {state: douyin, name: 抖音, tags: [来源-抖音]}
welcome:
  default: {text: 欢迎}
limits:
  mass_send_window: 2s
  mass_send_remind: [1s]
  mass_send_confirm_within: 6s
segments:
  - {name: 小红书客户, channels: [xhs]}
broadcasts:
  - name: 周五上新
    segment: 小红书客户
    at: "%s"
    text: "{{.Name}}，本周上新：桂花乌龙"
`, at.Format("2006-01-02 15:04:05"))
	if err := os.WriteFile(filepath.Join(dir, "scenario.yaml"), []byte(scenario), 0o644); err != nil {
		t.Fatal(err)
	}
	env["WECOMBOT_SCENARIOS"] = dir
	in := startServe(t, env)

	want := map[string][]string{} // staff → the segment's members
	for i := range 30 {
		staff, state := []string{"zhangsan", "lisi"}[i%2], []string{"xhs", "douyin"}[i/15]
		id := fmt.Sprintf("wm_bc_%02d", i)
		if state == "xhs" {
			want[staff] = append(want[staff], id)
		}
		in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: staff, State: state, ExternalUser: id, WelcomeCode: "WC-BC-" + id}, 1)
	}
	eventuallyT(t, "30 welcomes", 10*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 30 })
	fake.NotFriend("wm_bc_03") // she deleted lisi in the client: WeCom's fail_list says so

	// Due in a few seconds: one task per staff member, with exactly her members.
	eventuallyT(t, "one mass-send task per staff member", 30*time.Second, func() bool { return fake.Count(fakewecom.APIAddMsgTemplate) >= 2 })
	got := map[string][]string{}
	for _, call := range fake.Calls(fakewecom.APIAddMsgTemplate) {
		sender := fmt.Sprint(call.Body["sender"])
		var ids []string
		for _, v := range call.Body["external_userid"].([]any) {
			ids = append(ids, v.(string))
		}
		if len(got[sender]) > 0 {
			t.Errorf("a second task for %s: %s", sender, call.RawBody)
		}
		got[sender] = append(got[sender], ids...)
	}
	for staff := range want {
		sort.Strings(want[staff])
		sort.Strings(got[staff])
		if !slices.Equal(got[staff], want[staff]) {
			t.Errorf("%s's task carries %v, want %v", staff, got[staff], want[staff])
		}
	}
	if len(got) != 2 {
		t.Errorf("tasks for %d staff members, want 2", len(got))
	}
	// Both staff members confirm their task in the client.
	for _, id := range fake.MassTasks() {
		fake.ConfirmMassSend(id)
	}
	runID := engine.BroadcastRunID("周五上新", at.Truncate(time.Second))
	var rep engine.BroadcastReport
	eventuallyT(t, "the per-customer results read back", 30*time.Second, func() bool {
		code, body := in.get(t, "/api/v1/broadcasts/"+runID)
		if code != http.StatusOK {
			return false
		}
		rep = engine.BroadcastReport{}
		return json.Unmarshal([]byte(body), &rep) == nil && rep.Results["delivered"] == 14 && rep.Results["not_friend"] == 1
	})
	if rep.Targeted != 15 || rep.Tasks != 2 || rep.Confirmed != 15 || rep.Delivered != 14 || len(rep.Customers) != 15 {
		t.Errorf("report: targeted %d tasks %d confirmed %d delivered %d customers %d; %+v", rep.Targeted, rep.Tasks, rep.Confirmed, rep.Delivered, len(rep.Customers), rep.Results)
	}
	for _, cu := range rep.Customers {
		if wantStatus := map[bool]string{true: "not_friend", false: "delivered"}[cu.Member == "wm_bc_03"]; cu.Status != wantStatus {
			t.Errorf("%s: %s, want %s", cu.Member, cu.Status, wantStatus)
		}
	}

	// A restart after the send sends nothing more.
	in.waitDrained(t)
	tasks := fake.Count(fakewecom.APIAddMsgTemplate)
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	again := startServe(t, env)
	again.waitDrained(t)
	if n := fake.Count(fakewecom.APIAddMsgTemplate); n != tasks {
		t.Errorf("the restart sent %d more mass-send tasks", n-tasks)
	}
}
