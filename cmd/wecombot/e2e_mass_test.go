package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// Mass sends through run() against the fake WeCom: five customers added to
// two staff members at the same moment get one follow-up each with the
// same text; the batcher makes ONE add_msg_template task per staff member
// carrying all of her customers. zhangsan confirms hers in the client, lisi
// never does (she is reminded; at the deadline her task is stopped and her
// customers count as not confirmed);
// a customer no longer zhangsan's friend lands in fail_list. Each result is
// read back from WeCom (get_groupmsg_task, get_groupmsg_send_result) and
// written onto the customer's own action. The profile read after each
// welcome (externalcontact/get) teaches a customer's WeChat name and the
// tags staff set by hand.
func TestMassSendBatchesEndToEnd(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "scenario.yaml"), []byte(`brand: {name: 山茶集}
welcome:
  default:
    text: 欢迎来到山茶集
    follow_ups:
      - {after: 3s, via: mass_send, text: 本周新品：桂花乌龙，回复「菜单」看看}
limits:
  mass_send_window: 0s
  mass_send_remind: [1s]
  mass_send_confirm_within: 4s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	env, c := liveEnv(t, fake, t.TempDir())
	env["WECOMBOT_SCENARIOS"] = dir
	in := startServe(t, env)
	defer in.stop()

	fake.NotFriend("wm_z3")
	// The profile read after the welcome (externalcontact/get) teaches the name.
	fake.SetContact(fakewecom.Contact{ExternalUserID: "wm_z1", Name: "张一", Type: 1, Gender: 2, UnionID: "ozUnion_z1",
		FollowUsers: []fakewecom.FollowUser{{UserID: "zhangsan", Tags: []fakewecom.FollowTag{{GroupName: "人群", TagName: "宝妈", TagID: "etMom", Type: 1}}}}})
	at := time.Now().Truncate(time.Second)
	staffOf := map[string]string{"wm_z1": "zhangsan", "wm_l1": "lisi", "wm_z2": "zhangsan", "wm_l2": "lisi", "wm_z3": "zhangsan"}
	for _, m := range []string{"wm_z1", "wm_l1", "wm_z2", "wm_l2", "wm_z3"} {
		in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: staffOf[m], ExternalUser: m, WelcomeCode: "WC-" + m, At: at}, 1)
	}
	eventuallyT(t, "two tasks", 15*time.Second, func() bool { return fake.Count(fakewecom.APIAddMsgTemplate) >= 2 })
	tasks := map[string][]string{}
	msgids := map[string]string{}
	for i, call := range fake.Calls(fakewecom.APIAddMsgTemplate) {
		sender, _ := call.Body["sender"].(string)
		var ids []string
		for _, v := range call.Body["external_userid"].([]any) {
			ids = append(ids, v.(string))
		}
		slices.Sort(ids)
		tasks[sender] = ids
		msgids[sender] = fake.MassTasks()[i]
		if call.Body["chat_type"] != "single" || !strings.Contains(string(call.RawBody), "桂花乌龙") {
			t.Errorf("task %s", call.RawBody)
		}
	}
	if len(tasks) != 2 || strings.Join(tasks["zhangsan"], ",") != "wm_z1,wm_z2,wm_z3" || strings.Join(tasks["lisi"], ",") != "wm_l1,wm_l2" {
		t.Fatalf("tasks %v: want one per staff member with all of her customers", tasks)
	}
	fake.ConfirmMassSend(msgids["zhangsan"])

	want := map[string]string{"wm_z1": bot.MassDelivered, "wm_z2": bot.MassDelivered, "wm_z3": bot.MassNotFriend,
		"wm_l1": bot.MassNotConfirmed, "wm_l2": bot.MassNotConfirmed}
	var got map[string]string
	eventuallyT(t, "results on every member's action", 20*time.Second, func() bool {
		got = map[string]string{}
		for _, a := range in.actions(t, bot.ActionMassSend) {
			if a.MemberID != "" {
				got[a.MemberID] = a.Result
			}
		}
		for m, r := range want {
			if got[m] != r {
				return false
			}
		}
		return true
	})
	if r := fake.Reminded(); !slices.Contains(r, msgids["lisi"]) || slices.Contains(r, msgids["zhangsan"]) {
		t.Errorf("reminded %v: want lisi's unconfirmed task (%s) only", r, msgids["lisi"])
	}
	// At the deadline lisi's task was stopped: confirming it late sends nothing.
	if c := fake.Canceled(); len(c) != 1 || c[0] != msgids["lisi"] || fake.ConfirmMassSend(msgids["lisi"]) {
		t.Errorf("stopped tasks %v: want lisi's (%s), no longer confirmable", c, msgids["lisi"])
	}
	if n := fake.Count(fakewecom.APIAddMsgTemplate); n != 2 {
		t.Errorf("add_msg_template calls = %d, want 2", n)
	}
	code, body := in.get(t, "/api/v1/members/wm_z1")
	if code != 200 || !strings.Contains(body, `"name":"张一"`) || !strings.Contains(body, "宝妈") || !strings.Contains(body, `"unionid":"ozUnion_z1"`) {
		t.Errorf("profile not learnt: %d %.400s", code, body)
	}
	// The member's timeline says it in words.
	code, body = in.get(t, "/api/v1/members/wm_l1")
	if code != 200 || !strings.Contains(body, `"result":"not_confirmed"`) || !strings.Contains(body, "lisi did not confirm") {
		t.Errorf("timeline of wm_l1: %d %.600s", code, body)
	}
}
