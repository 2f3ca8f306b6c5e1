package scenarios

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// segmentBase declares what segments refer to.
const segmentBase = base + `channels:
  - state: xhs
    name: 小红书
  - state: dy
    name: 抖音
levels:
  - name: 普通
    min_points: 0
  - name: 金卡
    min_points: 500
`

func TestSegmentValidation(t *testing.T) {
	cases := []struct {
		name string
		yaml string // appended to segmentBase; the offending line is marked #<-
		want string
	}{
		{"unknown stage", `
segments:
  - name: s
    stages: [aware, buyer] #<-
`, `segments[0].stages[1]: unknown stage "buyer"`},
		{"unknown channel", `
segments:
  - name: s
    channels: [xhs, wb] #<-
`, `segments[0].channels[1]: unknown channel "wb"`},
		{"unknown tag any", `
segments:
  - name: s
    tags_any: [爱领券] #<-
`, `segments[0].tags_any[0]: tag "爱领券" is not declared`},
		{"unknown tag none", `
segments:
  - name: s
    tags_none: [A, 需人工跟进] #<-
`, `segments[0].tags_none[1]: tag "需人工跟进" is not declared`},
		{"tag both required and excluded", `
segments:
  - name: s
    tags_any: [A]
    tags_none: [A] #<-
`, `segments[0].tags_none[0]: tag "A" is also required`},
		{"bad duration", `
segments:
  - name: s
    added_within: 30 days #<-
`, `segments[0].added_within: want a duration such as 30s, 10m, 2h or 1d, got "30 days"`},
		{"bad money", `
segments:
  - name: s
    min_spend_yuan: lots #<-
`, `segments[0].min_spend_yuan: want an amount in yuan`},
		{"negative silent days", `
segments:
  - name: s
    silent_days: -3 #<-
`, `segments[0].silent_days: must not be negative`},
		{"silent and active contradict", `
segments:
  - name: s
    silent_days: 14
    active_days: 7 #<-
`, `segments[0].active_days: active within 7 days and silent for 14 days`},
		{"unknown level", `
segments:
  - name: s
    levels: [钻石] #<-
`, `segments[0].levels[0]: unknown level "钻石"`},
		{"bad staff", `
segments:
  - name: s
    staff: ["zhang san"] #<-
`, `segments[0].staff[0]: want a staff userid`},
		{"unknown key", `
segments:
  - name: s
    stage: [aware] #<-
`, `segments[0].stage: unknown key "stage" (known keys: active_days, added_within, channels, description, groups, levels, lost, min_orders, min_spend_yuan, name, silent_days, staff, stages, tags_all, tags_any, tags_none)`},
		{"duplicate name", `
segments:
  - name: s
  - name: s #<-
`, `segments[1].name: duplicate segment "s"`},
		{"missing name", `
segments:
  - stages: [aware] #<-
`, `segments[0].name: required`},
		{"silent without days", `
silent: #<-
  tag: A
`, `silent.days: required`},
		{"silent undeclared tag", `
silent:
  days: 14
  tag: 沉默 #<-
`, `silent.tag: tag "沉默" is not declared`},
		{"silent tag is the lost tag", `
funnel:
  lost_tag: 流失
silent:
  days: 14
  tag: 流失 #<-
`, `silent.tag: tag "流失" is funnel.lost_tag`},
		{"silent tag owned by a tag rule", `
tag_rules:
  - {name: r, when: {stage: aware}, add: [A]}
silent:
  days: 14
  tag: A #<-
`, `silent.tag: tag "A" is also added by tag rule "r"`},
		{"audience names an unknown segment", `
coupons:
  - name: 券
    value_yuan: 5
    audience:
      segment: 没有 #<-
`, `coupons[0].audience.segment: unknown segment "没有"`},
		{"negative contact cap", `
limits:
  contact_per_day: -1 #<-
`, `limits.contact_per_day: must not be negative`},
		{"weekly cap under the daily", `
limits:
  contact_per_day: 3
  contact_per_week: 2 #<-
`, `limits.contact_per_week: is less than contact_per_day (3)`},
		{"loss digest time", `
loss_alerts:
  managers: [lisi]
  digest_at: 9am #<-
`, `loss_alerts.digest_at: want a time of day such as 09:00`},
		{"loss alerts to nobody", `
loss_alerts:
  staff: false #<-
`, `loss_alerts.staff: with staff: false list managers`},
		{"loss alerts never sent", `
loss_alerts:
  immediate: false #<-
`, `loss_alerts.immediate: with immediate: false set digest_at`},
		{"loss alert bad manager", `
loss_alerts:
  managers: ["li si"] #<-
`, `loss_alerts.managers[0]: want a staff userid`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantProblemAt(t, segmentBase+tc.yaml, tc.want) })
	}
}

// The example segment, with its tags declared, loads and matches.
func TestSegmentMatch(t *testing.T) {
	sc, err := LoadBytes("s.yaml", []byte(strings.Replace(segmentBase, "渠道: [来源-小红书]", "渠道: [来源-小红书]\n  偏好: [爱领券, 需人工跟进]", 1)+`
segments:
  - name: 小红书新客
    description: 周五上新
    stages: [aware, interest]
    channels: [xhs]
    tags_any: [爱领券]
    tags_none: [需人工跟进]
    staff: [zhangsan]
    silent_days: 14
    added_within: 30d
    min_spend_yuan: 100
  - name: 金卡
    levels: [金卡]
    tags_all: [爱领券, A]
    groups: [any]
    active_days: 7
    min_orders: 2
  - name: 流失
    lost: true
    channels: [抖音]
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	// fit is in 小红书新客; each case breaks one rule.
	fit := func() *bot.Member {
		return &bot.Member{ExternalUserID: "wm1", Stage: bot.StageInterest, Channel: "小红书", State: "xhs",
			Tags: []string{"爱领券"}, SpendFen: 10000, CreatedAt: now.Add(-20 * day),
			Follows:      []bot.Follow{{StaffID: "lisi", AddedAt: now.Add(-25 * day)}, {StaffID: "zhangsan", AddedAt: now.Add(-20 * day)}},
			LastActiveAt: now.Add(-15 * day)}
	}
	seg := sc.Segment("小红书新客")
	if seg == nil || seg.Description != "周五上新" || seg.Line == 0 {
		t.Fatalf("segment not compiled with its position: %+v", seg)
	}
	cases := []struct {
		name  string
		edit  func(m *bot.Member)
		match bool
	}{
		{"fits", func(*bot.Member) {}, true},
		{"other stage", func(m *bot.Member) { m.Stage = bot.StagePurchase }, false},
		{"other channel", func(m *bot.Member) { m.Channel, m.State = "抖音", "dy" }, false},
		{"lacks the tag", func(m *bot.Member) { m.Tags = nil }, false},
		{"carries the excluded tag", func(m *bot.Member) { m.Tags = append(m.Tags, "需人工跟进") }, false},
		{"deleted zhangsan", func(m *bot.Member) { m.Follows[1].DeletedAt = now }, false},
		{"active 13 days ago", func(m *bot.Member) { m.LastActiveAt = now.Add(-13 * day) }, false},
		{"never active, added 20 days ago", func(m *bot.Member) { m.LastActiveAt = time.Time{} }, true},
		{"added 31 days ago", func(m *bot.Member) { m.Follows[0].AddedAt = now.Add(-31 * day) }, false},
		{"spent 99.99", func(m *bot.Member) { m.SpendFen = 9999 }, false},
		{"lost", func(m *bot.Member) { m.Lost = true }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := fit()
			tc.edit(m)
			if got := seg.Match(m, now); got != tc.match {
				t.Errorf("Match = %v, want %v", got, tc.match)
			}
		})
	}
	if r := seg.Rules(); fmt.Sprint(r.Stages, r.Channels, r.TagsAny, r.TagsNone, r.Staff) != "[aware interest] [小红书] [爱领券] [需人工跟进] [zhangsan]" {
		t.Errorf("rules for an index: %+v", r)
	}
	if s := seg.Sender(fit()); s != "zhangsan" {
		t.Errorf("Sender = %q, want zhangsan (the staff rule's, though lisi is older)", s)
	}

	gold := sc.Segment("金卡")
	m := &bot.Member{Level: "金卡", Tags: []string{"A", "爱领券"}, Groups: []string{"wr1"}, Orders: 2, LastActiveAt: now.Add(-6 * day),
		Follows: []bot.Follow{{StaffID: "lisi", AddedAt: now.Add(-90 * day)}}}
	if !gold.Match(m, now) || gold.Sender(m) != "lisi" {
		t.Errorf("金卡 should match with lisi as sender: %v %q", gold.Match(m, now), gold.Sender(m))
	}
	for name, edit := range map[string]func(*bot.Member){
		"other level":       func(m *bot.Member) { m.Level = "普通" },
		"lacks one of all":  func(m *bot.Member) { m.Tags = []string{"A"} },
		"in no group":       func(m *bot.Member) { m.Groups = nil },
		"inactive 7 days":   func(m *bot.Member) { m.LastActiveAt = now.Add(-7 * day) },
		"one order too few": func(m *bot.Member) { m.Orders = 1 },
	} {
		c := *m
		c.Tags = append([]string(nil), m.Tags...)
		edit(&c)
		if gold.Match(&c, now) {
			t.Errorf("金卡 matched with %s", name)
		}
	}
	lost := sc.Segment("流失")
	if !lost.Match(&bot.Member{Lost: true, Channel: "抖音"}, now) || lost.Match(&bot.Member{Channel: "抖音"}, now) {
		t.Error("lost: true should select lost members only")
	}
}

// CompileSegment checks an ad-hoc filter the way a YAML segment is
// checked, naming the field.
func TestCompileSegmentAdHoc(t *testing.T) {
	sc, err := LoadBytes("s.yaml", []byte(segmentBase))
	if err != nil {
		t.Fatal(err)
	}
	var f SegmentFilter
	if err := json.Unmarshal([]byte(`{"stages":["aware"],"channels":["小红书"],"added_within":"7d","min_spend_yuan":"9.9"}`), &f); err != nil {
		t.Fatal(err)
	}
	seg, err := sc.CompileSegment(f)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m := &bot.Member{Stage: bot.StageAware, Channel: "小红书", SpendFen: 990, CreatedAt: now.Add(-time.Hour)}
	if !seg.Match(m, now) {
		t.Error("ad-hoc segment should match")
	}
	out, _ := json.Marshal(seg.Filter)
	if !strings.Contains(string(out), `"added_within":"7d"`) || !strings.Contains(string(out), `"min_spend_yuan":9.9`) {
		t.Errorf("filter round trip: %s", out)
	}
	_, err = sc.CompileSegment(SegmentFilter{TagsAny: []string{"A", "nope"}})
	var ve ValidationError
	if !errors.As(err, &ve) || ve[0].Field != "tags_any[1]" || !strings.Contains(ve[0].Msg, `"nope" is not declared`) {
		t.Errorf("want a problem at tags_any[1], got %v", err)
	}
	if err := json.Unmarshal([]byte(`{"added_within":"soon"}`), &f); err == nil {
		t.Error("a bad duration should not decode")
	}
}

// A coupon pool's and a campaign's audience may name a segment; the
// reference resolves though segments compile after them, and its clock
// rules read the time IncludesAt is given.
func TestAudienceSegment(t *testing.T) {
	sc, err := LoadBytes("s.yaml", []byte(segmentBase+`
segments:
  - name: 新客
    added_within: 7d
coupons:
  - name: 新客券
    value_yuan: 5
    audience: {segment: 新客, stages: [aware]}
campaigns:
  - name: 打卡
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
    audience: {segment: 新客}
`))
	if err != nil {
		t.Fatal(err)
	}
	pool, camp := sc.Coupon("新客券"), sc.Campaign("打卡")
	if pool.Audience.Segment() != sc.Segment("新客") || camp.Audience.Segment() != sc.Segment("新客") || pool.Audience.Empty() {
		t.Fatalf("segment not resolved: %v %v", pool.Audience.Segment(), camp.Audience.Segment())
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := &bot.Member{Stage: bot.StageAware, CreatedAt: now.Add(-3 * 24 * time.Hour)}
	if !pool.Audience.IncludesAt(m, now) || pool.Audience.IncludesAt(m, now.Add(5*24*time.Hour)) {
		t.Error("the segment's added_within should hold at now and not 8 days after she was added")
	}
	m.Stage = bot.StageInterest
	if pool.Audience.IncludesAt(m, now) {
		t.Error("the audience's own stage list still applies")
	}
}
