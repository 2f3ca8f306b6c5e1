package wecomapi

import (
	"strings"
	"testing"

	"github.com/wecombot/wecombot/bot"
)

// Every action kind the engine owes reads as a plain sentence in the
// sandbox log and the outbox view, never "unknown kind".
func TestSummaryNamesEveryKind(t *testing.T) {
	cases := []struct {
		kind    bot.ActionKind
		payload any
		want    string
	}{
		{bot.ActionWelcome, bot.WelcomeMessage{WelcomeCode: "c", Text: "欢迎"}, "欢迎"},
		{bot.ActionMarkTag, bot.MarkTag{StaffID: "s", ExternalUserID: "wm1", Add: []string{"AIPL-认知"}}, "AIPL-认知"},
		{bot.ActionMassSend, bot.MassSend{ChatType: "single", ExternalUserIDs: []string{"wm1"}, Text: "早安"}, "早安"},
		{bot.ActionGroupWelcome, bot.GroupWelcome{Name: "default", Text: "入群欢迎"}, "入群欢迎"},
		{bot.ActionStaffMessage, bot.StaffMessage{ToUsers: []string{"s"}, Text: "请跟进"}, "请跟进"},
		{bot.ActionKfMessage, bot.KfMessage{ExternalUserID: "wm1", Text: "你好"}, "你好"},
		{bot.ActionRobot, bot.RobotMessage{Robot: "运营群", Text: "日报"}, "日报"},
		{bot.ActionContactWay, bot.ContactWay{State: "xhs", Staff: []string{"s"}}, "xhs"},
		{bot.ActionKfSync, bot.KfSync{OpenKfID: "wk1"}, "wk1"},
		{bot.ActionAIReply, bot.AIReply{Surface: bot.AISurfaceKf, Text: "几点开门"}, "几点开门"},
	}
	for _, c := range cases {
		a, err := bot.NewAction(c.kind, "k", c.payload)
		if err != nil {
			t.Fatal(err)
		}
		if got := Summary(a); !strings.Contains(got, c.want) || strings.Contains(got, "unknown") {
			t.Errorf("%s: summary %q lacks %q", c.kind, got, c.want)
		}
	}
}
