package scenarios

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// base is the smallest valid scenario; cases append to it.
const base = `brand:
  name: 测试茶
tags:
  阶段: [A, I, P, L, 流失]
  渠道: [来源-小红书]
`

// markedLine returns the 1-based line of doc that carries the "#<-" marker.
func markedLine(t *testing.T, doc string) int {
	t.Helper()
	for i, l := range strings.Split(doc, "\n") {
		if strings.Contains(l, "#<-") {
			return i + 1
		}
	}
	t.Fatalf("no #<- marker in:\n%s", doc)
	return 0
}

// wantProblemAt loads doc and requires a problem at its #<- line containing want.
func wantProblemAt(t *testing.T, doc, want string) {
	t.Helper()
	_, err := LoadBytes("base.yaml", []byte(doc))
	var ve ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a ValidationError, got %v", err)
	}
	prefix := fmt.Sprintf("base.yaml:%d: ", markedLine(t, doc))
	for _, p := range ve {
		if msg := p.Error(); strings.HasPrefix(msg, prefix) && strings.Contains(msg, want) {
			return
		}
	}
	t.Errorf("want a problem %q… containing %q; got:\n%v", prefix, want, err)
}

func TestValidationErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string // appended to base; the offending line is marked #<-
		want string // substring of the problem at the marked line
	}{
		{"unknown top-level key", `chanels: [] #<-`, `chanels: unknown key "chanels"`},
		{"unknown nested key", `
channels:
  - state: xhs
    name: 小红书
    sate: oops #<-
`, `channels[0].sate: unknown key "sate" (known keys: group, name, skip_verify, staff, state, tags, welcome)`},
		{"group channel with six groups", `
channels:
  - state: grp_xhs
    name: 小红书群
    group:
      chat_ids: [wr1, wr2, wr3, wr4, wr5, wr6] #<-
`, `channels[0].group.chat_ids: list 1-5 customer group chat ids`},
		{"group channel auto_create without a base name", `
channels:
  - state: grp_xhs
    name: 小红书群
    group: #<-
      chat_ids: [wr1]
      auto_create: true
`, `channels[0].group.room_base_name: required`},
		{"group channel with staff", `
channels:
  - state: grp_xhs
    name: 小红书群
    staff: [zhangsan] #<-
    group:
      chat_ids: [wr1]
`, `channels[0].staff: a group channel leads to groups, not staff`},
		{"group channel state too long", `
channels:
  - state: grp_0123456789012345678901234567890 #<-
    name: 小红书群
    group:
      chat_ids: [wr1]
`, `channels[0].state: "grp_0123456789012345678901234567890" is 35 characters; WeCom allows at most 30`},
		{"wrong type number", `
funnel:
  loyal_orders: five #<-
`, `funnel.loyal_orders: want a whole number, got "five"`},
		{"wrong type list", `
channels:
  - state: xhs
    name: 小红书
    tags: 来源-小红书 #<-
`, `channels[0].tags: want a list, got "来源-小红书"`},
		{"wrong type mapping", `
funnel: [1, 2] #<-
`, `funnel: want a mapping (key: value), got a list`},
		{"wrong type bool", `
funnel:
  allow_backward: sometimes #<-
`, `want true or false`},
		{"duplicate key", `
channels:
  - state: xhs
    name: 小红书
    name: 抖音 #<-
`, `channels[0].name: defined twice (first at line 9)`},
		{"dangling welcome script", `
channels:
  - state: xhs
    name: 小红书
    welcome: nosuch #<-
`, `unknown welcome script "nosuch"`},
		{"dangling tag on channel", `
channels:
  - state: xhs
    name: 小红书
    tags: [来源-小红书, 来源-抖音] #<-
`, `channels[0].tags[1]: tag "来源-抖音" is not declared`},
		{"dangling stage tag", `
funnel:
  stages:
    aware: {name: 认知, tag: AIPL-认知} #<-
`, `funnel.stages.aware.tag: tag "AIPL-认知" is not declared`},
		{"dangling lost tag", `
funnel:
  lost_tag: 已流失 #<-
`, `funnel.lost_tag: tag "已流失" is not declared`},
		{"dangling tag in tag rule", `
tag_rules:
  - name: r
    when: {stage: interest}
    add: [不存在] #<-
`, `tag_rules[0].add[0]: tag "不存在" is not declared`},
		{"dangling coupon pool in welcome", `
welcome:
  default:
    text: hi
    coupon: 新人券 #<-
`, `welcome.default.coupon: unknown coupon pool "新人券"`},
		{"dangling coupon pool in milestone", `
campaigns:
  - name: c
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
    milestones:
      - day: 7
        coupon: 满勤券 #<-
`, `campaigns[0].milestones[0].coupon: unknown coupon pool "满勤券"`},
		{"dangling keyword rule in tag rule", `
tag_rules:
  - name: r
    when:
      keyword: 价格 #<-
    add: [A]
`, `tag_rules[0].when.keyword: unknown keyword rule "价格"`},
		{"dangling channel in tag rule", `
tag_rules:
  - name: r
    when:
      channel: 抖音 #<-
    add: [A]
`, `unknown channel "抖音"`},
		{"dangling level in tag rule", `
tag_rules:
  - name: r
    when:
      level: 钻石 #<-
    add: [A]
`, `unknown level "钻石"`},
		{"template parse error", `
welcome:
  default:
    text: "你好{{.Name" #<-
`, `welcome.default.text: bad template`},
		{"template unknown field", `
welcome:
  default:
    text: "你好{{.Nmae}}" #<-
`, `welcome.default.text: bad template: `},
		{"template in keyword reply", `
keywords:
  rules:
    - name: k
      keywords: [价格]
      reply: "{{if .Points}}" #<-
`, `keywords.rules[0].reply: bad template`},
		{"bad regex", `
keywords:
  rules:
    - name: k
      regex: "订单(" #<-
      reply: ok
`, `keywords.rules[0].regex: bad regular expression: missing closing )`},
		{"empty keyword", `
keywords:
  rules:
    - name: k
      keywords: [""] #<-
      reply: ok
`, `keywords.rules[0].keywords[0]: empty keyword`},
		{"unknown signal", `
keywords:
  rules:
    - name: k
      keywords: [a]
      signal: purchase #<-
`, `unknown signal "purchase"`},
		{"duplicate keyword rule name", `
keywords:
  rules:
    - name: k
      keywords: [a]
      reply: a
    - name: k #<-
      keywords: [b]
      reply: b
`, `duplicate keyword rule "k"`},
		{"duplicate channel state", `
channels:
  - state: xhs
    name: 小红书
  - state: xhs #<-
    name: 小红书2
`, `channels[1].state: duplicate channel state "xhs" (first at base.yaml:8)`},
		{"state too long", `
channels:
  - state: this_state_is_much_longer_than_30 #<-
    name: 小红书
`, `is 33 characters; WeCom allows at most 30`},
		{"channel without state", `
channels:
  - name: 小红书 #<-
`, `channels[0].state: required`},
		{"bad cron", `
campaigns:
  - name: c
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
    reminders:
      - cron: "61 6 * * *" #<-
        text: 早安
`, `campaigns[0].reminders[0].cron: bad cron spec "61 6 * * *"`},
		{"cron @every", `
campaigns:
  - name: c
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
    reminders:
      - cron: "@every 2h" #<-
        text: 早安
`, `campaigns[0].reminders[0].cron: "@every 2h" is not allowed: @every runs relative to when wecombot starts`},
		{"overlapping windows", `
campaigns:
  - name: c
    days: 7
    windows:
      - "06:00-09:00"
      - "08:30-10:00" #<-
    keywords: [打卡]
`, `campaigns[0].windows[1]: window 08:30-10:00 overlaps 06:00-09:00`},
		{"empty make-up keyword", `
campaigns:
  - name: c
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
    makeup: {keywords: [""], max: 1, within_days: 1} #<-
`, `campaigns[0].makeup.keywords[0]: empty keyword`},
		{"campaign name with a bar", `
campaigns:
  - name: a|b #<-
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
`, `campaigns[0].name: must not contain |`},
		{"window ends before it starts", `
campaigns:
  - name: c
    days: 7
    windows: ["09:00-06:00"] #<-
    keywords: [打卡]
`, `must start before it ends`},
		{"campaign end before start", `
campaigns:
  - name: c
    start: 2025-03-07
    end: 2025-03-01 #<-
    windows: ["06:00-09:00"]
    keywords: [打卡]
`, `campaigns[0].end: is before start (2025-03-07)`},
		{"campaign end and days", `
campaigns:
  - name: c
    start: 2025-03-01
    end: 2025-03-07
    days: 7 #<-
    windows: ["06:00-09:00"]
    keywords: [打卡]
`, `give either end or days`},
		{"milestone after last day", `
campaigns:
  - name: c
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
    milestones:
      - day: 8 #<-
        points: 5
`, `day 8 is after the campaign's last day (7)`},
		{"campaigns share keyword at the same time", `
campaigns:
  - name: a
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
  - name: b
    days: 7
    windows: ["07:00-08:00"]
    keywords: [打卡] #<-
`, `keyword "打卡" is also used by campaign "a"`},
		{"bad zone", `
campaigns:
  - name: c
    days: 7
    zone: Mars/Olympus #<-
    windows: ["06:00-09:00"]
    keywords: [打卡]
`, `unknown time zone "Mars/Olympus"`},
		{"bad duration", `
keywords:
  rate_limit:
    max: 3
    per: 10 #<-
`, `keywords.rate_limit.per: want a duration`},
		{"unknown stage", `
tag_rules:
  - name: r
    when:
      stage: curious #<-
    add: [A]
`, `unknown stage "curious"`},
		{"unknown interest signal", `
funnel:
  interest_on:
    - join_group
    - like #<-
`, `funnel.interest_on[1]: unknown signal "like"`},
		{"attachment with two kinds", `
welcome:
  default:
    text: hi
    attachments:
      - link: {title: t, url: "https://example.com"} #<-
        image: {media_id: m}
`, `exactly one of link, image, miniprogram, video or file`},
		{"link without url", `
welcome:
  default:
    text: hi
    attachments:
      - link: {title: t} #<-
`, `welcome.default.attachments[0].link.url: required`},
		{"too many group welcome attachments", `
group_welcome:
  default:
    text: hi
    attachments: #<-
      - link: {title: t, url: "https://example.com/1"}
      - link: {title: t, url: "https://example.com/2"}
`, `at most 1 attachments are allowed here`},
		{"kf follow-up without account", `
welcome:
  default:
    text: hi
    follow_ups:
      - after: 1d #<-
        via: kf
        text: hello
`, `open_kfid: required`},
		{"follow-up without after", `
welcome:
  default:
    text: hi
    follow_ups:
      - text: hello #<-
`, `welcome.default.follow_ups[0].after: required`},
		{"welcome script named default", `
welcome:
  scripts:
    - name: default #<-
      text: hi
`, `reserved for welcome.default`},
		{"tag declared twice", `  其他: [A] #<-
`, `tags.其他[0]: tag "A" is declared twice`},
		{"level points clash", `
levels:
  - {name: 普通, min_points: 0}
  - {name: 高级, min_points: 0} #<-
`, `another level starts at 0 points too`},
		{"tag rule without condition", `
tag_rules:
  - name: r #<-
    add: [A]
`, `tag_rules[0].when: required: at least one condition`},
		{"coupon both validity kinds", `
coupons:
  - name: c
    valid_days: 7 #<-
    valid_from: 2025-03-01
`, `give either valid_days or valid_from/valid_until`},
		{"coupon money", `
coupons:
  - name: c
    value_yuan: 1.234 #<-
`, `at most two decimals`},
		{"lost tag is a stage tag", `
funnel:
  stages:
    aware: {tag: A}
  lost_tag: A #<-
`, `is also a stage tag`},
		{"ai handoff tag", `
ai:
  persona: 小山
  handoff_tag: 人工 #<-
`, `ai.handoff_tag: tag "人工" is not declared`},
		{"yaml syntax", `
channels:
  - state: "xhs #<-
`, `YAML syntax`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := base + tc.yaml
			_, err := LoadBytes("base.yaml", []byte(doc))
			var ve ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			line := markedLine(t, doc)
			prefix := fmt.Sprintf("base.yaml:%d: ", line)
			for _, p := range ve {
				if msg := p.Error(); strings.HasPrefix(msg, prefix) && strings.Contains(msg, tc.want) {
					return
				}
			}
			if tc.name == "yaml syntax" {
				// The parser reports where it noticed the problem, which may be the next line.
				for _, p := range ve {
					if strings.Contains(p.Error(), tc.want) && (p.Line == line || p.Line == line+1) {
						return
					}
				}
			}
			t.Errorf("want a problem %q… containing %q; got:\n%v", prefix, tc.want, err)
		})
	}
}

func TestValidationReportsAllProblems(t *testing.T) {
	doc := base + `
chanels: []
channels:
  - state: xhs
    name: 小红书
    welcome: nosuch
    tags: [nosuch]
keywords:
  rules:
    - name: k
      regex: "("
      reply: "{{.Nope}}"
`
	_, err := LoadBytes("all.yaml", []byte(doc))
	var ve ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want ValidationError, got %v", err)
	}
	if len(ve) != 5 {
		t.Fatalf("want 5 problems, got %d:\n%v", len(ve), err)
	}
	for i := 1; i < len(ve); i++ {
		if ve[i].Line < ve[i-1].Line {
			t.Errorf("problems not sorted by line:\n%v", err)
		}
	}
	if !strings.Contains(err.Error(), "\n") {
		t.Errorf("Error() should put one problem per line")
	}
	// No Go type names leak into operator-facing messages.
	for _, banned := range []string{"scenarios.", "reflect", "*yaml", "[]string", "int64"} {
		if strings.Contains(err.Error(), banned) {
			t.Errorf("message mentions %q:\n%v", banned, err)
		}
	}
}

// TestYAMLSyntaxErrorLine: a wrong indent deep inside a block is reported at
// its own line (the YAML parser names the block's first line), and a file
// that doesn't parse is the only problem reported — not the references the
// other files make to what it declares.
func TestYAMLSyntaxErrorLine(t *testing.T) {
	cases := []struct {
		name, file string
		line       int
		edit       func(string) string
		wantLine   int
	}{
		// "      - cron" indented one space less, inside campaigns[0].reminders
		{"under-indented list item at line 32", "30-campaigns.yaml", 32, func(l string) string { return l[1:] }, 32},
		// "  default_member_name:" indented two more, inside brand:
		{"over-indented key at line 8", "00-brand.yaml", 8, func(l string) string { return "  " + l }, 8},
		{"over-indented key in channels", "10-channels.yaml", 8, func(l string) string { return "  " + l }, 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range DefaultFiles() {
				if name == tc.file {
					lines := strings.Split(string(data), "\n")
					lines[tc.line-1] = tc.edit(lines[tc.line-1])
					data = []byte(strings.Join(lines, "\n"))
				}
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(dir)
			var ve ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			if len(ve) != 1 {
				t.Fatalf("want only the syntax error, got %d problems:\n%v", len(ve), err)
			}
			want := fmt.Sprintf("%s:%d: YAML syntax:", filepath.Join(dir, tc.file), tc.wantLine)
			if !strings.HasPrefix(ve[0].Error(), want) || !strings.Contains(ve[0].Error(), "indentation") {
				t.Fatalf("got %v, want %s… naming the indentation", ve[0], want)
			}
		})
	}
}

func TestMissingBrand(t *testing.T) {
	_, err := LoadBytes("nobrand.yaml", []byte("tags:\n  a: [b]\n"))
	if err == nil || !strings.Contains(err.Error(), "nobrand.yaml:1: brand.name: required") {
		t.Fatalf("got %v", err)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDirectoryDuplicatesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.yaml": base + `
channels:
  - state: xhs
    name: 小红书
keywords:
  rules:
    - name: 价格
      keywords: [价格]
      reply: 16 元
`,
		"b.yml": `brand:
  name: again
tags:
  阶段: [X]
channels:
  - state: xhs
    name: 小红书
keywords:
  rules:
    - name: 价格
      keywords: [多少钱]
      reply: 16 元
`,
		"notes.txt": "ignored: not yaml",
		".#a.yaml":  "ignored: hidden editor lock",
	})
	_, err := Load(dir)
	var ve ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want ValidationError, got %v", err)
	}
	b := filepath.Join(dir, "b.yml")
	a := filepath.Join(dir, "a.yaml")
	for _, want := range []string{
		b + ":1: brand: already defined at " + a + ":1",
		b + ":4: tags.阶段: tag group \"阶段\" is already declared at " + a + ":4",
		b + ":6: channels[0].state: duplicate channel state \"xhs\" (first at " + a + ":8)",
		b + ":7: channels[0].name: duplicate channel name \"小红书\" (first at " + a + ":9)",
		b + ":10: keywords.rules[0].name: duplicate keyword rule \"价格\" (first at " + a + ":12)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestDirectoryMerge(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"00-brand.yaml": base + `
funnel:
  stages:
    aware: {name: 认知, tag: A}
`,
		"10-channels.yaml": `
tags:
  偏好: [爱领券]
channels:
  - state: xhs
    name: 小红书
    tags: [来源-小红书]
    welcome: xhs
welcome:
  default:
    text: 默认欢迎
  scripts:
    - name: xhs
      text: "{{.Name}}，小红书的朋友你好"
      coupon: 新人券
`,
		"20-more.yaml": `
welcome:
  scripts:
    - name: douyin
      text: 抖音来的朋友
keywords:
  rules:
    - name: 领券
      keywords: [领券]
      tags: [爱领券]
      reply: 券来了
coupons:
  - name: 新人券
    value_yuan: 10
`,
	})
	sc, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Files) != 3 || sc.Source != dir {
		t.Fatalf("files %v source %q", sc.Files, sc.Source)
	}
	ch := sc.ChannelByState("xhs")
	if ch == nil || ch.Welcome == nil || ch.Welcome.Name != "xhs" || ch.Welcome.Coupon == nil || ch.Welcome.Coupon.ValueFen != 1000 {
		t.Fatalf("channel not resolved across files: %+v", ch)
	}
	if sc.Script("douyin") == nil || sc.Script("default") != sc.DefaultWelcome {
		t.Fatal("scripts from several files should merge")
	}
	if r := sc.Match(SurfaceKf, "我想领券"); r == nil || r.Name != "领券" {
		t.Fatalf("keyword rule from a later file: %v", r)
	}
	if sc.TagGroupOf("爱领券") != "偏好" || sc.Funnel.StageTag("aware") != "A" || sc.Funnel.TagGroup != "阶段" {
		t.Fatal("tag catalog should merge")
	}
}

func TestEmptyDirectory(t *testing.T) {
	_, err := Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no *.yaml or *.yml files") {
		t.Fatalf("got %v", err)
	}
	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "cannot read scenario") {
		t.Fatalf("got %v", err)
	}
}
