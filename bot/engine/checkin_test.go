package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
)

var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return loc
}()

const checkinYAML = `brand: {name: 测试, zone: Asia/Shanghai}
tags:
  阶段: [A, I, P, L]
  偏好: [打卡达人, 满勤]
  会员: [等级-高级]
  渠道: [小红书]
funnel:
  stages: {aware: {tag: A}, interest: {tag: I}, purchase: {tag: P}, loyal: {tag: L}}
  interest_on: [check_in]
channels:
  - {state: xhs, name: 小红书, tags: [小红书]}
levels:
  - {name: 普通, min_points: 0}
  - {name: 高级, min_points: 100, tag: 等级-高级}
coupons:
  - {name: 满勤券, value_yuan: 10, valid_days: 7, generate: {prefix: D, length: 6, count: 10}}
campaigns:
  - name: 早安
    start: 2025-03-03
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
    makeup: {max: 1, within_days: 1, cost_points: 5}
    points: 10
    streak_bonus: [{days: 3, points: 20}]
    milestones:
      - {day: 3, points: 30, tag: 打卡达人, text: "MS3"}
      - {day: 7, certificate: true, coupon: 满勤券, tag: 满勤, stage: loyal, text: "MS7 {{.Link}}"}
    messages:
      checked_in: "OK{{.Day}} streak={{.Streak}} points={{.Points}} level={{.Level}} rank={{.Rank}}"
      already: ALREADY
      outside_window: WINDOW
      closed: CLOSED
      not_in_audience: AUDIENCE
      made_up: "MADEUP{{.Day}}"
      no_makeup: NOMAKEUP
    certificate: {title: 早安证书, text: "{{.Name}} 坚持了 7 天"}
  - name: 熬夜
    days: 3
    windows: ["00:00-01:00", "23:00-24:00"]
    keywords: [熬夜]
    audience: {channels: [小红书]}
    points: 1
    messages: {checked_in: "NIGHT{{.Day}} streak={{.Streak}}", not_in_audience: AUDIENCE, already: ALREADY}
`

func checkinScenario(t testing.TB) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadBytes("checkin.yaml", []byte(checkinYAML))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// at parses a Shanghai wall-clock time in March 2025 ("03-04 07:00").
func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", "2025-"+s+func() string {
		if strings.Count(s, ":") == 1 {
			return ":00"
		}
		return ""
	}(), shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

// lastReply is the text of the last kf message to member.
func (h *harness) lastReply(member string) string {
	h.t.Helper()
	acts := h.actions(bot.ActionKfMessage)
	for i := len(acts) - 1; i >= 0; i-- {
		if acts[i].MemberID == member {
			var p bot.KfMessage
			if err := acts[i].Decode(&p); err != nil {
				h.t.Fatal(err)
			}
			return p.Text
		}
	}
	return ""
}

func (h *harness) progress(campaign, member string) *checkin.Progress {
	h.t.Helper()
	var p *checkin.Progress
	err := h.store.View(context.Background(), func(tx bot.Tx) (err error) {
		p, err = checkin.LoadProgress(tx, campaign, member)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

type checkinStep struct {
	at, text string
	// want is a prefix of the reply; "" expects no reply to this step.
	want string
}

func TestCheckinRules(t *testing.T) {
	t.Parallel()
	const m = "wmC"
	cases := []struct {
		name   string
		state  string
		steps  []checkinStep
		days   int
		streak int // on the last step's day
		points int64
		level  string
		check  func(t *testing.T, h *harness, mem *bot.Member)
	}{
		{name: "window: start inclusive, end exclusive", steps: []checkinStep{
			{"03-03 05:59:59", "打卡", "WINDOW"},
			{"03-03 06:00", "打卡", "OK1 streak=1 points=10"},
			{"03-04 08:59:59", "早安打卡", "OK2 streak=2 points=20"},
			{"03-05 09:00", "打卡", "WINDOW"},
		}, days: 2, streak: 2, points: 20, level: "普通"},
		{name: "twice a day: second is refused, nothing changes", steps: []checkinStep{
			{"03-03 07:00", "打卡", "OK1"},
			{"03-03 07:01", "打卡", "ALREADY"},
			{"03-03 08:30", "我要打卡", "ALREADY"},
		}, days: 1, streak: 1, points: 10},
		{name: "before start and after end", steps: []checkinStep{
			{"03-02 07:00", "打卡", "WINDOW"},
			{"03-09 07:00", "打卡", "OK1"},
			{"03-10 07:00", "打卡", "CLOSED"},
		}, days: 1, points: 10},
		{name: "streak break: milestone counts days, bonus needs the streak", steps: []checkinStep{
			{"03-03 07:00", "打卡", "OK1"},
			{"03-04 07:00", "打卡", "OK2 streak=2"},
			{"03-06 07:00", "打卡", "OK3 streak=1 points=60"}, // 3×10 + milestone 30, no streak bonus
		}, days: 3, streak: 1, points: 60, check: func(t *testing.T, h *harness, mem *bot.Member) {
			if !mem.HasTag("打卡达人") {
				t.Errorf("milestone tag missing: %v", mem.Tags)
			}
			if r := h.lastReply(m); !strings.Contains(r, "MS3") || strings.Contains(r, "连续打卡 3 天") {
				t.Errorf("reply %q", r)
			}
		}},
		{name: "make-up fills yesterday, joins the streak, costs points, once", steps: []checkinStep{
			{"03-03 07:00", "打卡", "OK1"},
			{"03-04 07:00", "打卡", "OK2"},
			{"03-06 07:00", "打卡", "OK3 streak=1 points=60"},
			{"03-06 12:00", "补卡", "MADEUP4"}, // day 3 (03-05) made up: 60-5+20 streak bonus
			{"03-07 07:00", "打卡", "OK5 streak=5 points=85"},
			{"03-09 07:00", "补卡", "NOMAKEUP"}, // 03-08 missed, but the one make-up is used
		}, days: 5, points: 85, check: func(t *testing.T, h *harness, mem *bot.Member) {
			p := h.progress("早安", m)
			if len(p.Makeups) != 1 || p.Makeups[0].String() != "2025-03-05" || p.LongestStreak() != 5 {
				t.Errorf("progress %+v", p)
			}
		}},
		{name: "make-up only within_days back and only for a missed day", steps: []checkinStep{
			{"03-03 07:00", "补卡", "NOMAKEUP"}, // nothing yet
			{"03-03 07:01", "打卡", "OK1"},
			{"03-04 10:00", "补卡", "NOMAKEUP"}, // yesterday is checked in
			{"03-06 07:00", "补卡", "MADEUP2"},  // 03-05; 03-04 is beyond within_days
			{"03-06 07:01", "补卡", "NOMAKEUP"}, // max 1
		}, days: 2, points: 5},
		{name: "seven days: milestones, level-up, certificate, coupon hook, funnel", steps: []checkinStep{
			{"03-03 07:00", "打卡", "OK1"},
			{"03-04 07:00", "打卡", "OK2"},
			{"03-05 07:00", "打卡", "OK3 streak=3 points=80"},
			{"03-06 07:00", "打卡", "OK4 streak=4 points=90 level=普通"},
			{"03-07 07:00", "打卡", "OK5 streak=5 points=100 level=高级"},
			{"03-08 07:00", "打卡", "OK6"},
			{"03-09 07:00", "打卡", "OK7 streak=7 points=120 level=高级 rank=1"},
		}, days: 7, streak: 7, points: 120, level: "高级", check: func(t *testing.T, h *harness, mem *bot.Member) {
			r := h.lastReply(m)
			// The milestone's coupon is the coupon feature's real issue: one
			// 满勤券 code held for the day-7 hook, told in the reply.
			codes := memberCoupons(t, h, m)
			if len(codes) != 1 || codes[0].Pool != "满勤券" || codes[0].Hook != "milestone:早安:7" {
				t.Fatalf("member's coupons %+v, want one 满勤券 for milestone:早安:7", codes)
			}
			if !strings.Contains(r, "MS7 https://bot.example/checkin/cert?t=") || !strings.Contains(r, "🎁「满勤券」已发放") ||
				!strings.Contains(r, "券码："+codes[0].Code) {
				t.Errorf("day 7 reply %q", r)
			}
			ups := 0
			for _, a := range h.actions(bot.ActionKfMessage) {
				var p bot.KfMessage
				_ = a.Decode(&p)
				if strings.Contains(p.Text, "升级为「高级」会员") {
					ups++
				}
			}
			if ups != 1 {
				t.Errorf("%d level-up announcements, want 1", ups)
			}
			if !mem.HasTag("等级-高级") || !mem.HasTag("满勤") || mem.Stage != bot.StageLoyal {
				t.Errorf("tags %v stage %s", mem.Tags, mem.Stage)
			}
			if p := h.progress("早安", m); !p.Certificate || p.Score != 120 {
				t.Errorf("progress %+v", p)
			}
			var entries []checkin.Entry
			_ = h.store.View(context.Background(), func(tx bot.Tx) (err error) {
				entries, err = checkin.PointsHistory(tx, m, 0, 100)
				return err
			})
			// 7 check-ins, 1 streak bonus, 1 milestone with points.
			if len(entries) != 9 || entries[len(entries)-1].Balance != 120 {
				t.Errorf("ledger %+v", entries)
			}
		}},
		{name: "midnight in Asia/Shanghai splits days (not UTC)", state: "xhs", steps: []checkinStep{
			// 23:30 and 00:30 Shanghai are both 15:30/16:30 UTC on 03-03.
			{"03-03 23:30", "熬夜", "NIGHT1 streak=1"},
			{"03-03 23:59:59", "熬夜", "ALREADY"},
			{"03-04 00:00", "熬夜", "NIGHT2 streak=2"},
			{"03-04 00:59", "熬夜", "ALREADY"},
		}, days: 0, points: 2},
		{name: "not in the audience", steps: []checkinStep{
			{"03-03 23:30", "熬夜", "AUDIENCE"},
		}, points: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, checkinScenario(t))
			signer, _ := signlink.New([]byte("0123456789abcdef0123"), func() time.Time { return h.clock })
			h.eng.WithLinks(signer, "https://bot.example/")
			h.clock = at("03-01 10:00")
			h.send(add(m, "s1", tc.state, ""))
			for i, st := range tc.steps {
				h.clock = at(st.at)
				before := len(h.actions(bot.ActionKfMessage))
				h.send(kf(m, st.text))
				got := ""
				if acts := h.actions(bot.ActionKfMessage); len(acts) > before {
					got = h.lastReply(m)
				}
				if !strings.HasPrefix(got, st.want) || (st.want == "" && got != "") {
					t.Errorf("step %d (%s %q): reply %q, want prefix %q", i+1, st.at, st.text, got, st.want)
				}
			}
			mem := h.member(m)
			if mem.Points != tc.points {
				t.Errorf("points %d, want %d", mem.Points, tc.points)
			}
			if tc.level != "" && mem.Level != tc.level {
				t.Errorf("level %q, want %q", mem.Level, tc.level)
			}
			if tc.days > 0 {
				p := h.progress("早安", m)
				if p.Count() != tc.days {
					t.Errorf("days %d, want %d", p.Count(), tc.days)
				}
				if tc.streak > 0 {
					last := checkin.DayOf(at(tc.steps[len(tc.steps)-1].at), shanghai)
					if s := p.Streak(last); s != tc.streak {
						t.Errorf("streak %d, want %d", s, tc.streak)
					}
				}
				if mem.CheckIns != tc.days {
					t.Errorf("member check-ins %d, want %d", mem.CheckIns, tc.days)
				}
			}
			if tc.check != nil {
				tc.check(t, h, mem)
			}
		})
	}
}

// TestCheckinConcurrent fires the same member's check-in 100 times in
// parallel, each in its own transaction (as 100 taps or retried messages
// handled by different workers would be): one day, one set of points, one
// leaderboard entry.
func TestCheckinConcurrent(t *testing.T) {
	t.Parallel()
	const m = "wmRace"
	h := newHarness(t, checkinScenario(t))
	h.clock = at("03-01 10:00")
	h.send(add(m, "s1", "", ""))
	h.clock = at("03-03 07:00")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := kf(m, "打卡")
			ev.At, ev.DedupeKey, ev.MsgID = h.clock, fmt.Sprintf("race|%d", i), fmt.Sprintf("msg%d", i)
			if _, err := h.store.AppendEvent(ctx, ev); err != nil {
				errs <- err
				return
			}
			errs <- h.store.Update(ctx, func(tx bot.Tx) error { return h.eng.Handle(ctx, tx, ev) })
		}()
	}
	// The same H5 tap, appended 100 times in parallel: the log keeps one.
	tap := &bot.Event{Type: checkin.EventCheckIn, ExternalUserID: m, At: h.clock,
		DedupeKey: checkin.TapDedupeKey(m, "早安", checkin.DayOf(h.clock, shanghai)), Data: map[string]string{checkin.DataCampaign: "早安"}}
	var appended sync.Map
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := *tap
			dup, err := h.store.AppendEvent(ctx, &ev)
			if err != nil {
				errs <- err
				return
			}
			if !dup {
				appended.Store(ev.Seq, true)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	appended.Range(func(_, _ any) bool { n++; return true })
	if n != 1 {
		t.Errorf("the log kept %d copies of the tap, want 1", n)
	}
	p := h.progress("早安", m)
	mem := h.member(m)
	if p.Count() != 1 || p.Score != 10 || mem.Points != 10 || mem.CheckIns != 1 {
		t.Errorf("progress %+v, member points %d check-ins %d", p, mem.Points, mem.CheckIns)
	}
	ok, already := 0, 0
	for _, a := range h.actions(bot.ActionKfMessage) {
		var msg bot.KfMessage
		_ = a.Decode(&msg)
		switch {
		case strings.HasPrefix(msg.Text, "OK1"):
			ok++
		case msg.Text == "ALREADY":
			already++
		}
	}
	// keywords.rate_limit (default) caps the "already" replies; exactly one success.
	if ok != 1 {
		t.Errorf("%d success replies, want 1 (%d already)", ok, already)
	}
	_ = h.store.View(ctx, func(tx bot.Tx) error {
		top, err := checkin.Top(tx, "早安", 10)
		if err != nil || len(top) != 1 || top[0].Score != 10 {
			t.Errorf("leaderboard %+v %v", top, err)
		}
		parts, perDay, err := checkin.Participation(tx, "早安")
		if err != nil || parts != 1 || len(perDay) != 1 || perDay[0].CheckIns != 1 {
			t.Errorf("participation %d %+v %v", parts, perDay, err)
		}
		return nil
	})
}

// BenchmarkEngineCheckin is the whole engine path of a 微信客服 check-in (new
// member, kf_chat signal, campaign command, ledger, points, leaderboard,
// reply action), one transaction per event on an unsynced bbolt store.
func BenchmarkEngineCheckin(b *testing.B) {
	sc, err := scenarios.LoadBytes("checkin.yaml", []byte(checkinYAML))
	if err != nil {
		b.Fatal(err)
	}
	st := newTestStore(b)
	clock := at("03-03 07:00")
	eng := New(func() *scenarios.Scenario { return sc }, zerolog.Nop(), func() time.Time { return clock })
	ctx := context.Background()
	n := 0
	for b.Loop() {
		n++
		ev := &bot.Event{Type: bot.EventKfText, ExternalUserID: fmt.Sprintf("wm%08d", n), Content: "打卡", OpenKfID: "wk",
			At: clock, Seq: uint64(n), DedupeKey: fmt.Sprintf("b|%d", n)}
		if err := st.Update(ctx, func(tx bot.Tx) error { return eng.Handle(ctx, tx, ev) }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkins/s")
}

// TestCampaignTicks: reminders become outbox actions once per slot, only on
// the campaign's days; close posts the final leaderboard and ends it.
func TestCampaignTicks(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("t.yaml", []byte(`brand: {name: 测试, zone: Asia/Shanghai}
campaigns:
  - name: 早安
    start: 2025-03-03
    end: 2025-03-04
    windows: ["06:00-09:00"]
    keywords: [打卡]
    points: 10
    reminders:
      - {cron: "55 5 * * *", kind: open, to: groups, text: 开始啦}
      - {cron: "30 8 * * *", to: members, text: "{{.Name}}还没打卡 {{.Link}}"}
      - {cron: "5 9 * * *", kind: summary, to: robot, robot: ops, top: 2}
      - {cron: "0 10 5 3 *", kind: close, to: robot, robot: ops, text: 结束}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	h.clock = at("03-02 10:00")
	h.send(&bot.Event{Type: bot.EventGroupCreate, ChatID: "wrG", StaffID: "owner1"})
	for _, m := range []string{"wmA", "wmB", "wmC"} {
		h.send(add(m, "s1", "", ""))
	}
	h.send(kf("wmC", "你好")) // a kf contact who never checks in
	tick := func(at time.Time) {
		for _, tk := range checkin.Ticks(sc, h.clock, at) {
			h.clock = tk.Slot
			h.send(tk.Event(tk.Slot))
			h.handle(tk.Event(tk.Slot)) // a replay: nothing more
		}
		h.clock = at
	}
	tick(at("03-03 07:00"))
	h.send(kf("wmA", "打卡"))
	h.send(kf("wmB", "打卡"))
	tick(at("03-04 07:00"))
	h.send(kf("wmA", "打卡"))
	tick(at("03-06 12:00"))
	h.clock = at("03-06 07:00")
	h.send(kf("wmA", "打卡"))

	if n := len(h.actions(bot.ActionMassSend)); n != 2 { // 03-03 and 03-04 only, not 03-02, 03-05
		t.Errorf("%d open mass-sends, want 2", n)
	}
	var remindTo []string
	for _, a := range h.actions(bot.ActionKfMessage) {
		var p bot.KfMessage
		_ = a.Decode(&p)
		if strings.Contains(p.Text, "还没打卡") {
			remindTo = append(remindTo, a.MemberID)
		}
	}
	if fmt.Sprint(remindTo) != "[wmB]" { // 03-04: B hadn't checked in; C never participated
		t.Errorf("reminded %v", remindTo)
	}
	var posts []string
	for _, a := range h.actions(bot.ActionRobot) {
		var p bot.RobotMessage
		_ = a.Decode(&p)
		posts = append(posts, p.Text)
	}
	// Summaries on 03-03, 03-04 and the morning after (03-05), then close.
	if len(posts) != 4 || !strings.Contains(posts[1], "1. wmA 20 分（2 天）\n2. wmB 10 分（1 天）") ||
		!strings.HasPrefix(posts[3], "结束\n🏁 早安 已结束，共 2 人参与") {
		t.Errorf("robot posts %q", posts)
	}
	if r := h.lastReply("wmA"); r != "早安已经结束啦，下期见～" {
		t.Errorf("after close: %q", r)
	}
}

// TestStaffCheckin: staff check in from the app and by @-mentioning the AI
// bot in an internal group; they join the leaderboard as staff:<userid>.
func TestStaffCheckin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, checkinScenario(t))
	app := func(staff, text string) string {
		h.send(&bot.Event{Type: bot.EventAppText, StaffID: staff, Content: text})
		return lastStaffMessage(h)
	}
	h.clock = at("03-03 07:00")
	if r := app("zhangsan", "打卡"); !strings.HasPrefix(r, "OK1 streak=1 points=10") {
		t.Errorf("app check-in: %q", r)
	}
	if r := app("zhangsan", "打卡"); r != "ALREADY" {
		t.Errorf("twice: %q", r)
	}
	if r := app("zhangsan", "补卡"); r != "NOMAKEUP" {
		t.Errorf("make-up: %q", r)
	}
	h.clock = at("03-03 23:30")
	if r := app("zhangsan", "熬夜"); r != "AUDIENCE" { // a campaign with an audience is for members
		t.Errorf("audience: %q", r)
	}
	h.clock = at("03-04 07:00")
	h.send(&bot.Event{Type: bot.EventAIBotText, StaffID: "lisi", ChatID: "wrInternal", Content: "@小山 打卡",
		Data: map[string]string{"stream_id": "s1", "response_url": "https://example.invalid/r"}})
	acts := h.actions(bot.ActionAIReply)
	if len(acts) != 1 {
		t.Fatalf("%d ai replies", len(acts))
	}
	var p bot.AIReply
	_ = acts[0].Decode(&p)
	if p.StreamID != "s1" || !strings.HasPrefix(p.Answer, "OK1 streak=1 points=10 level= rank=1") {
		t.Errorf("aibot reply %+v", p)
	}
	_ = h.store.View(context.Background(), func(tx bot.Tx) error {
		top, _ := checkin.Top(tx, "早安", 10)
		if fmt.Sprint(top) != "[{1 staff:lisi 10} {1 staff:zhangsan 10}]" {
			t.Errorf("leaderboard %v", top)
		}
		return nil
	})
	if h.memberCount() != 0 {
		t.Error("staff became members")
	}
}

// TestCheckinRewardTextsFromScenario: the reward lines of a check-in reply
// are the scenario's messages.streak_bonus / level_up templates, for a
// member and for staff alike (one reward rule, one set of texts), and the
// staff member's campaign score equals the member's for the same days.
func TestCheckinRewardTextsFromScenario(t *testing.T) {
	t.Parallel()
	yaml := strings.Replace(checkinYAML, "      not_in_audience: AUDIENCE\n",
		"      not_in_audience: AUDIENCE\n      streak_bonus: \"BONUS {{.Streak}}d +{{.Bonus}}\"\n      level_up: \"LEVEL {{.Level}} at {{.LevelMin}}\"\n", 1)
	if yaml == checkinYAML {
		t.Fatal("scenario messages not found to extend")
	}
	sc, err := scenarios.LoadBytes("checkin.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	const m = "wmTexts"
	h.clock = at("03-01 10:00")
	h.send(add(m, "s1", "xhs", ""))
	staffReply := func() string { return lastStaffMessage(h) }
	var memberDay3, staffDay3, memberDay5 string
	for i, day := range []string{"03-03", "03-04", "03-05", "03-06", "03-07"} {
		h.clock = at(day + " 07:00")
		h.send(kf(m, "打卡"))
		h.send(&bot.Event{Type: bot.EventAppText, StaffID: "zhangsan", Content: "打卡"})
		switch i {
		case 2:
			memberDay3, staffDay3 = h.lastReply(m), staffReply()
		case 4:
			memberDay5 = h.lastReply(m)
		}
	}
	for who, r := range map[string]string{"member": memberDay3, "staff": staffDay3} {
		if !strings.Contains(r, "\nBONUS 3d +20") || strings.Contains(r, "🔥") {
			t.Errorf("%s day-3 reply %q: want the scenario's streak_bonus line", who, r)
		}
	}
	if !strings.Contains(memberDay5, "\nLEVEL 高级 at 100") || strings.Contains(memberDay5, "🎉") {
		t.Errorf("member day-5 reply %q: want the scenario's level_up line", memberDay5)
	}
	if strings.Contains(staffReply(), "LEVEL") {
		t.Errorf("staff have no level: %q", staffReply())
	}
	mp, sp := h.progress("早安", m), h.progress("早安", StaffParticipant("zhangsan"))
	if mp.Score != sp.Score || mp.Count() != sp.Count() || !slices.Equal(mp.Bonuses, sp.Bonuses) || !slices.Equal(mp.Milestones, sp.Milestones) {
		t.Errorf("member progress %+v, staff progress %+v: the same days earn the same campaign reward", mp, sp)
	}
}

// lastStaffMessage is the text of the last staff_message enqueued ("" if none).
func lastStaffMessage(h *harness) string {
	acts := h.actions(bot.ActionStaffMessage)
	if len(acts) == 0 {
		return ""
	}
	var p bot.StaffMessage
	_ = acts[len(acts)-1].Decode(&p)
	return p.Text
}
