package engine

import (
	"testing"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// The contact cap across proactive messages: 1 a day and 2 in 7 days. The
// welcome is not proactive (she just added the staff) and replies never
// count; follow-ups over the cap are skipped with the reason and use no
// mass-send quota.
func TestContactCap(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("cap.yaml", []byte(`brand: {name: 测试}
limits: {contact_per_day: 1, contact_per_week: 2, mass_send_per_month: 3}
keywords:
  rules:
    - {name: hi, keywords: [你好], reply: 你好呀}
welcome:
  default:
    text: 欢迎
    follow_ups:
      - {after: 1h, text: 一小时后}
      - {after: 2h, text: 两小时后}
      - {after: 26h, text: 第二天}
      - {after: 50h, text: 第三天}
      - {after: 8d, text: 一周后}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	h.send(add("wmA", "s1", "", "WC-A"))
	h.send(kf("wmA", "你好")) // a reply: never counted, never capped
	h.followUps()
	got := map[string]string{}
	for _, a := range h.actions(bot.ActionMassSend) {
		var p bot.MassSend
		if err := a.Decode(&p); err != nil {
			t.Fatal(err)
		}
		got[p.Text] = string(a.Status) + ": " + a.LastError
	}
	want := map[string]string{
		"一小时后": "batched: ",
		"两小时后": "skipped: skipped: contact cap: 1 proactive messages per member per day (limits.contact_per_day), 1 already due on 2025-03-03",
		"第二天":  "batched: ",
		"第三天":  "skipped: skipped: contact cap: 2 proactive messages per member in 7 days (limits.contact_per_week), 2 already due in the 7 days to 2025-03-05",
		// 8 days on the 7-day window holds none; it is the month's 3rd
		// mass send of 3 allowed — the skipped ones used no quota.
		"一周后": "batched: ",
	}
	for text, w := range want {
		if got[text] != w {
			t.Errorf("%s: %q, want %q…", text, got[text], w)
		}
	}
	if len(h.actions(bot.ActionWelcome)) != 1 || len(h.actions(bot.ActionKfMessage)) != 1 {
		t.Errorf("the welcome and the reply are not proactive: %d welcomes, %d replies", len(h.actions(bot.ActionWelcome)), len(h.actions(bot.ActionKfMessage)))
	}
}
