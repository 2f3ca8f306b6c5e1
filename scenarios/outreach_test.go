package scenarios

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const outreachBase = `
tags:
  渠道: [来源-小红书]
  跟进: [需人工跟进]
channels:
  - {state: xhs, name: 小红书}
segments:
  - {name: 小红书客户, channels: [xhs]}
`

// Every broadcast and SOP mistake is a problem at file:line, and nothing
// of the scenario loads (so nothing is half-sent).
func TestOutreachProblems(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown segment", `
broadcasts:
  - {name: 上新, segment: 没有这个, cron: "0 20 * * 5", text: hi}
`, "s.yaml:12: broadcasts[0].segment: unknown segment \"没有这个\""},
		{"bad cron", `
broadcasts:
  - {name: 上新, segment: 小红书客户, cron: "0 25 * * 5", text: hi}
`, "s.yaml:12: broadcasts[0].cron: bad cron spec \"0 25 * * 5\""},
		{"every", `
broadcasts:
  - {name: 上新, segment: 小红书客户, cron: "@every 1h", text: hi}
`, "@every runs relative to when wecombot starts"},
		{"empty text", `
broadcasts:
  - name: 上新
    segment: 小红书客户
    cron: "0 20 * * 5"
    text: "  "
`, "s.yaml:15: broadcasts[0].text: required: the message to send"},
		{"no time", `
broadcasts:
  - {name: 上新, segment: 小红书客户, text: hi}
`, "broadcasts[0].at: required: when to send"},
		{"bad at", `
broadcasts:
  - {name: 上新, segment: 小红书客户, at: "12/04 20:00", text: hi}
`, "broadcasts[0].at: want a time in the brand zone"},
		{"attachment that can't be uploaded", `
broadcasts:
  - name: 上新
    segment: 小红书客户
    cron: "0 20 * * 5"
    text: hi
    attachments:
      - image: {file: images/nope.png}
`, "s.yaml:17: broadcasts[0].attachments[0].image.file: cannot read image file"},
		{"unknown via", `
broadcasts:
  - {name: 上新, segment: 小红书客户, cron: "0 20 * * 5", via: sms, text: hi}
`, "broadcasts[0].via: unknown \"sms\""},
		{"group with segment", `
broadcasts:
  - {name: 上新, segment: 小红书客户, cron: "0 20 * * 5", via: group, text: hi}
`, "pick them under groups"},
		{"sop trigger", `
sops:
  - {name: 七日, trigger: "stage:vip", steps: [{day: 1, text: hi}]}
`, "sops[0].trigger: unknown stage \"vip\""},
		{"sop stop", `
sops:
  - {name: 七日, trigger: added, stop: [refund], steps: [{day: 1, text: hi}]}
`, "sops[0].stop[0]: unknown stop condition \"refund\""},
		{"sop stop tag", `
sops:
  - {name: 七日, trigger: added, stop: ["tag:不存在"], steps: [{day: 1, text: hi}]}
`, "tag \"不存在\" is not declared"},
		{"sop step day", `
sops:
  - name: 七日
    trigger: added
    steps:
      - {at: "10:00", text: hi}
`, "s.yaml:15: sops[0].steps[0].day: required"},
		{"sop step clock", `
sops:
  - {name: 七日, trigger: added, steps: [{day: 1, at: "25:00", text: hi}]}
`, "want a time of day HH:MM"},
		{"sop kf account", `
sops:
  - {name: 七日, trigger: added, steps: [{day: 1, via: kf, text: hi}]}
`, "open_kfid: required"},
		{"sop unknown segment", `
sops:
  - {name: 七日, trigger: joined_group, segment: 无, steps: [{day: 0, via: group, text: hi}]}
`, "unknown segment \"无\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeScenario(t, outreachBase+tc.yaml, nil))
			var ve ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// A one-off broadcast in the past loads (it may have run) but is listed
// in PastSchedules, which check reports as an error at file:line.
func TestPastBroadcastTime(t *testing.T) {
	sc, err := Load(writeScenario(t, outreachBase+`
broadcasts:
  - {name: 去年, segment: 小红书客户, at: "2020-01-01 20:00", text: hi}
  - {name: 以后, segment: 小红书客户, at: "2099-01-01 20:00", text: hi}
`, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.PastSchedules) != 1 || sc.PastSchedules[0].Line != 12 || !strings.Contains(sc.PastSchedules[0].Error(), "broadcasts[0].at: 2020-01-01 20:00 is in the past") {
		t.Fatalf("past schedules %v", sc.PastSchedules)
	}
	later := sc.Broadcast("以后")
	want := time.Date(2099, 1, 1, 20, 0, 0, 0, sc.Brand.Zone)
	if !later.At.Equal(want) || !later.Schedule.Next(want.Add(-time.Second)).Equal(want) || !later.Schedule.Next(want).IsZero() {
		t.Fatalf("one-off schedule: at %v", later.At)
	}
}

// Steps fall on day N at HH:MM in the brand zone; without a clock N×24 h
// after the trigger; a day-0 time already passed means now.
func TestSOPStepDue(t *testing.T) {
	zone := time.FixedZone("CST", 8*3600)
	start := time.Date(2026, 12, 1, 21, 30, 0, 0, zone)
	for _, tc := range []struct {
		step SOPStep
		want time.Time
	}{
		{SOPStep{Day: 1, Clock: 10 * time.Hour, HasClock: true}, time.Date(2026, 12, 2, 10, 0, 0, 0, zone)},
		{SOPStep{Day: 3}, start.Add(72 * time.Hour)},
		{SOPStep{Day: 0}, start},
		{SOPStep{Day: 0, Clock: 9 * time.Hour, HasClock: true}, start},
		{SOPStep{Day: 0, Clock: 22 * time.Hour, HasClock: true}, time.Date(2026, 12, 1, 22, 0, 0, 0, zone)},
		{SOPStep{After: 36 * time.Hour}, start.Add(36 * time.Hour)},
	} {
		if got := tc.step.Due(start.UTC(), zone); !got.Equal(tc.want) {
			t.Errorf("%+v: due %v, want %v", tc.step, got, tc.want)
		}
	}
}

// An API broadcast is checked with the YAML rules; problems name the
// request's fields.
func TestCompileBroadcastRequest(t *testing.T) {
	sc, err := Load(writeScenario(t, outreachBase, nil))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if b, err := sc.CompileBroadcast(BroadcastRequest{Name: "x", Filter: &SegmentFilter{Channels: []string{"xhs"}}, Text: "hi"}, now); err != nil || b.Segment == nil || b.Via != ViaMassSend {
		t.Fatalf("inline filter: %v", err)
	}
	for _, tc := range []struct {
		req  BroadcastRequest
		want string
	}{
		{BroadcastRequest{Text: "hi"}, "segment: required"},
		{BroadcastRequest{Segment: "小红书客户"}, "text: required"},
		{BroadcastRequest{Segment: "小红书客户", Text: "hi", At: "2020-01-01 10:00"}, "at: 2020-01-01 10:00 is in the past"},
		{BroadcastRequest{Filter: &SegmentFilter{Channels: []string{"nope"}}, Text: "hi"}, "channels[0]: unknown channel"},
		{BroadcastRequest{Segment: "小红书客户", Text: "{{.Nope", Via: "kf"}, "text"},
	} {
		_, err := sc.CompileBroadcast(tc.req, now)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.req, err, tc.want)
		}
	}
}

// What loads but can never happen is a warning at file:line: an SOP on
// members going silent without a silent section, a birthday trigger or
// birthday coupon without a profile form field asking for it.
func TestDanglingTriggerWarnings(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"silent without silent section", `
sops:
  - {name: 唤醒, trigger: silent, steps: [{day: 0, text: hi}]}
`, []string{"s.yaml:12: sops[0].trigger: never fires: no silent section marks members silent"}},
		{"silent with silent section", `
silent: {days: 14}
sops:
  - {name: 唤醒, trigger: silent, steps: [{day: 0, text: hi}]}
`, nil},
		{"birthday without a form field", `
levels:
  - {name: 普通, min_points: 0, birthday_coupon: 生日券}
coupons:
  - {name: 生日券, value_yuan: 10, valid_days: 7}
sops:
  - {name: 生日, trigger: "date:birthday", steps: [{day: 0, text: hi}]}
`, []string{"s.yaml:12: levels[0].birthday_coupon: never given: a member's birthday comes from the profile form", "s.yaml:16: sops[0].trigger: never fires: a member's birthday comes from the profile form"}},
		{"birthday with a form field", `
profile_form:
  title: 完善资料
  fields:
    - {key: bd, label: 生日, type: birthday}
sops:
  - {name: 生日, trigger: "date:birthday", steps: [{day: 0, text: hi}]}
`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := Load(writeScenario(t, outreachBase+tc.yaml, nil))
			if err != nil {
				t.Fatal(err)
			}
			if len(sc.Warnings) != len(tc.want) {
				t.Fatalf("warnings %v, want %d", sc.Warnings, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(sc.Warnings[i].Error(), w) {
					t.Errorf("warning %d = %v, want %q", i, sc.Warnings[i], w)
				}
			}
		})
	}
}
