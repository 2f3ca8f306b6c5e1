package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

func TestDefaultScenario(t *testing.T) {
	sc := LoadDefault()
	if sc.Source != EmbeddedSource || len(sc.Files) < 6 || sc.Version == "" {
		t.Fatalf("source %q files %v version %q", sc.Source, sc.Files, sc.Version)
	}
	if sc.Brand.Name != "山茶集" || sc.Brand.Zone.String() != "Asia/Shanghai" {
		t.Fatalf("brand %+v", sc.Brand)
	}
	for _, state := range []string{"xhs", "douyin", "store_poster", "website"} {
		ch := sc.ChannelByState(state)
		if ch == nil || len(ch.Tags) == 0 || len(ch.Staff) == 0 {
			t.Fatalf("channel %s: %+v", state, ch)
		}
		if sc.WelcomeFor(ch) == nil {
			t.Fatalf("channel %s has no welcome", state)
		}
	}
	if sc.WelcomeFor(sc.ChannelByState("website")) != sc.DefaultWelcome {
		t.Error("官网 should get the default script")
	}
	if sc.WelcomeFor(nil) != sc.DefaultWelcome || sc.DefaultWelcome.Coupon.Name != "新人券" {
		t.Error("unknown states get the default script with the 新人券")
	}
	if got := sc.Funnel.StageTag(bot.StageAware); got != "AIPL-认知" {
		t.Errorf("aware tag %q", got)
	}
	if sc.Funnel.LoyalSpendFen != 2000*100 || sc.Funnel.LoyalOrders != 5 || sc.Funnel.LostTag != "AIPL-流失" || sc.Funnel.AllowBackward {
		t.Errorf("funnel %+v", sc.Funnel)
	}
	camp := sc.Campaign("早安打卡")
	if camp == nil || camp.Days != 7 || !camp.Rolling() || len(camp.Milestones) != 2 || camp.Milestones[1].Coupon == nil || !camp.Milestones[1].Certificate {
		t.Fatalf("campaign %+v", camp)
	}
	if camp.Windows[0].String() != "06:00-09:00" {
		t.Errorf("window %v", camp.Windows[0])
	}
	// Cron specs are parsed in the campaign's zone: the 05:55 opening comes at 05:55 Shanghai time.
	from := time.Date(2025, 3, 3, 0, 0, 0, 0, camp.Zone)
	if next := camp.Reminders[0].Schedule.Next(from); next.Hour() != 5 || next.Minute() != 55 {
		t.Errorf("reminder next %v", next)
	}
	if sc.Coupon("新人券") == nil || sc.Coupon("新人券").PerMember != 1 {
		t.Error("新人券 pool")
	}
	if l := sc.LevelFor(0); l == nil || l.Name != "普通" {
		t.Errorf("level for 0: %v", l)
	}
	if l := sc.LevelFor(350); l.Name != "高级" || sc.LevelFor(5000).Name != "尊享" {
		t.Errorf("levels %v", l)
	}
	if sc.AI == nil || len(sc.AI.FAQ) < 10 || sc.AI.Persona == "" {
		t.Errorf("ai %+v", sc.AI)
	}
	for text, want := range map[string]string{
		"我要转人工":          "人工",
		"早安打卡":           "", // the 早安打卡 campaign answers it, not a keyword rule
		"有新人券吗":          "领券",
		"拿铁多少钱":          "价格",
		"最近的门店在哪":        "门店",
		"我的积分":           "积分",
		"订单号：ABCD123456": "订单查询",
		"今天天气不错":         "",
	} {
		r := sc.Match(SurfaceKf, text)
		got := ""
		if r != nil {
			got = r.Name
		}
		if got != want {
			t.Errorf("Match(%q) = %q, want %q", text, got, want)
		}
	}
	if r := sc.Match(SurfaceApp, "帮助"); r == nil || r.Name != "员工帮助" {
		t.Errorf("app rule: %v", r)
	}
	if r := sc.Match(SurfaceApp, "价格"); r != nil {
		t.Errorf("kf-only rule matched on app: %v", r.Name)
	}
	if len(DefaultFiles()) != len(sc.Files) {
		t.Error("DefaultFiles")
	}
}

func TestTemplateRenderFallsBack(t *testing.T) {
	sc, err := LoadBytes("t.yaml", []byte(base+`
welcome:
  default:
    text: "你好{{slice .Name 0 6}}"
`))
	if err != nil {
		t.Fatal(err)
	}
	text := sc.DefaultWelcome.Text
	got, err := text.Render(TemplateData{Name: "李小梅同学"})
	if err != nil || got != "你好李小" {
		t.Fatalf("render = %q, %v", got, err)
	}
	got, err = text.Render(TemplateData{Name: "李"})
	if err == nil || got != "你好{{slice .Name 0 6}}" {
		t.Fatalf("want plain-text fallback and an error, got %q, %v", got, err)
	}
	if !strings.Contains(err.Error(), "t.yaml:9") {
		t.Errorf("error should say where the template is: %v", err)
	}
	var nilT *Template
	if s, err := nilT.Render(TemplateData{}); s != "" || err != nil {
		t.Error("nil template renders empty")
	}
}

func TestDataFor(t *testing.T) {
	sc := LoadDefault()
	d := sc.DataFor(&bot.Member{Channel: "小红书", Stage: bot.StageInterest, Points: 40, Level: "普通",
		Follows: []bot.Follow{{StaffID: "chayi01", AddedAt: time.Unix(1, 0)}}})
	if d.Name != "茶友" || d.StageName != "兴趣" || d.Brand != "山茶集" || d.Staff != "chayi01" || d.Points != 40 {
		t.Fatalf("%+v", d)
	}
	out, err := sc.Script("xiaohongshu").Text.Render(d)
	if err != nil || !strings.HasPrefix(out, "哈喽茶友！") {
		t.Fatalf("%q %v", out, err)
	}
}

func TestMatcherAgreesWithNaive(t *testing.T) {
	doc := base + `
keywords:
  rules:
    - {name: r0, keywords: [abc, Hello], reply: "0"}
    - {name: r1, regex: '^\d{3}$', reply: "1"}
    - {name: r2, keywords: [bc, 你好], reply: "2"}
    - {name: r3, keywords: [c], reply: "3"}
    - {name: r4, regex: 'z+', reply: "4"}
    - {name: r5, keywords: [abcd, 好], reply: "5"}
`
	sc, err := LoadBytes("m.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	naive := func(text string) string {
		lower := strings.ToLower(text)
		for _, r := range sc.Keywords.Rules {
			for _, kw := range r.Keywords {
				if strings.Contains(lower, strings.ToLower(kw)) {
					return r.Name
				}
			}
			if r.Regex != nil && r.Regex.MatchString(text) {
				return r.Name
			}
		}
		return ""
	}
	for _, text := range []string{"", "abc", "xxABCxx", "HELLO there", "123", "1234", "xbcx", "你好呀", "好", "ccc", "zz", "abcd",
		"zzz abc", "b", "ab", "qqq", "x你y好", "aabcd", "dcba", "123abc"} {
		got := ""
		if r := sc.Match(SurfaceKf, text); r != nil {
			got = r.Name
		}
		if want := naive(text); got != want {
			t.Errorf("Match(%q) = %q, naive %q", text, got, want)
		}
	}
}
