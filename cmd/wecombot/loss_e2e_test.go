package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

const lossScenario = `brand:
  name: 山茶集
tags:
  客户阶段: [AIPL-认知, AIPL-兴趣, AIPL-购买, AIPL-忠诚, AIPL-流失]
funnel:
  stages:
    aware: {tag: AIPL-认知}
    interest: {tag: AIPL-兴趣}
    purchase: {tag: AIPL-购买}
    loyal: {tag: AIPL-忠诚}
  lost_tag: AIPL-流失
channels:
  - state: xhs
    name: 小红书
loss_alerts:
  managers: [boss]
`

// A customer deletes her staff member (del_follow_user), through run()
// against the fake WeCom: the staff member and the manager get one app
// message (message/send) with her stage, spend and last activity, and a
// WeCom retry of the callback sends nothing more.
func TestDeletionAlertsStaffEndToEnd(t *testing.T) {
	fake := fakewecom.New(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "scenario.yaml"), []byte(lossScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	env, c := liveEnv(t, fake, t.TempDir())
	env["WECOMBOT_SCENARIOS"] = dir
	in := startServe(t, env)
	defer in.stop()

	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", State: "xhs", ExternalUser: "wm_leaver", WelcomeCode: "WC-LEAVER"}, 1)
	eventuallyT(t, "the add's tags written", 10*time.Second, func() bool { return fake.Count(fakewecom.APIMarkTag) >= 1 })
	in.sendEvent(t, c, callbackEvent{Type: "contact.del_follow", Staff: "zhangsan", ExternalUser: "wm_leaver"}, 3) // WeCom's retries
	eventuallyT(t, "the loss alert sent", 10*time.Second, func() bool { return fake.Count(fakewecom.APIMessageSend) >= 1 })
	in.waitDrained(t)
	calls := fake.Calls(fakewecom.APIMessageSend)
	if len(calls) != 1 {
		t.Fatalf("%d message/send calls, want 1 (the retries are one event)", len(calls))
	}
	body := calls[0].Body
	content, _ := calls[0].Field("text.content").(string)
	if body["touser"] != "zhangsan|boss" {
		t.Errorf("alert to %v, want zhangsan|boss", body["touser"])
	}
	for _, want := range []string{"流失提醒：wm_leaver删除了员工（zhangsan）", "阶段：认知", "消费：0.00 元（0 单）", "最近活跃：", "渠道：小红书", "她已没有任何跟进员工"} {
		if !strings.Contains(content, want) {
			t.Errorf("alert lacks %q:\n%s", want, content)
		}
	}
	if body["agentid"] == nil {
		t.Errorf("message/send without agentid: %s", calls[0].RawBody)
	}
}
