package checkin

import (
	"fmt"
	"strings"

	"github.com/wecombot/wecombot/scenarios"
)

// defaultTexts answer an attempt when the campaign's messages leave one out.
var defaultTexts = map[Outcome]string{
	CheckedIn:         "{{.Campaign}}第 {{.Day}} 天打卡成功！",
	MadeUp:            "补卡成功，连续记录保住啦！",
	Already:           "今天已经打过卡啦，明天见～",
	OutsideWindow:     "现在不在打卡时间内哦，请在打卡时段再来～",
	NotStarted:        "{{.Campaign}}还没开始，开始时会通知你～",
	Closed:            "{{.Campaign}}已经结束啦，下期见～",
	NotInAudience:     "这期{{.Campaign}}暂时没有对你开放哦～",
	MakeupUnavailable: "现在没有可以补的打卡日哦～",
}

// Reply renders the campaign's message for outcome with data, falling back
// to a built-in text; a template failing for this member yields its plain
// text and the error, for the caller to log.
func Reply(c *scenarios.Campaign, o Outcome, data scenarios.TemplateData) (string, error) {
	m := c.Messages
	var t *scenarios.Template
	switch o {
	case CheckedIn:
		t = m.CheckedIn
	case MadeUp:
		t = m.MadeUp
	case Already:
		t = m.Already
	case OutsideWindow, NotStarted:
		t = m.OutsideWindow
	case Closed:
		t = m.Closed
	case NotInAudience:
		t = m.NotInAudience
	case MakeupUnavailable:
		t = m.NoMakeup
	}
	if t.Source() != "" && !(o == NotStarted && c.Rolling()) {
		return t.Render(data)
	}
	return renderDefault(defaultTexts[o], data), nil
}

func renderDefault(src string, d scenarios.TemplateData) string {
	return strings.NewReplacer("{{.Campaign}}", d.Campaign, "{{.Day}}", fmt.Sprint(d.Day)).Replace(src)
}

// BoardText formats a leaderboard for a chat message: one line per member,
// "1. 小艾 70 分（7 天）". names maps member ids to display names.
func BoardText(top []Standing, names map[string]string, days map[string]int) string {
	if len(top) == 0 {
		return "（还没有人打卡）"
	}
	var b strings.Builder
	for i, s := range top {
		if i > 0 {
			b.WriteByte('\n')
		}
		name := names[s.Member]
		if name == "" {
			name = s.Member
		}
		fmt.Fprintf(&b, "%d. %s %d 分", s.Rank, name, s.Score)
		if d, ok := days[s.Member]; ok {
			fmt.Fprintf(&b, "（%d 天）", d)
		}
	}
	return b.String()
}
