package engine

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

func outreachScenario(t *testing.T, extra string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadBytes("s.yaml", []byte(`
brand: {name: 山茶集, zone: Asia/Shanghai}
tags:
  阶段: [认知, 兴趣, 购买, 忠诚, 流失]
  跟进: [需人工跟进]
funnel:
  tag_group: 阶段
  stages: {aware: {name: 认知, tag: 认知}, interest: {name: 兴趣, tag: 兴趣}, purchase: {name: 购买, tag: 购买}, loyal: {name: 忠诚, tag: 忠诚}}
  interest_on: [kf_chat, join_group]
  lost_tag: 流失
channels:
  - {state: xhs, name: 小红书}
  - {state: douyin, name: 抖音}
segments:
  - {name: 小红书客户, channels: [xhs]}
`+extra))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// pages fires every owed timer (the broadcast's pages) as the pipeline would
// (its result event, deduplicated by "result|key"), twice each, as a
// crash between appending the result and marking the action sent would.
func (h *harness) pages() int {
	h.t.Helper()
	n := 0
	for done := map[string]bool{}; ; {
		var next *bot.Action
		for _, a := range h.actions(bot.ActionTimer) {
			if !done[a.Key] && strings.HasPrefix(a.Key, "bcpage|") {
				next = &a
				break
			}
		}
		if next == nil {
			return n
		}
		done[next.Key] = true
		var timer bot.Timer
		if err := next.Decode(&timer); err != nil {
			h.t.Fatal(err)
		}
		d := timer.Data
		d[bot.ResultKind], d[bot.ResultKey], d[bot.ResultAction] = string(next.Kind), next.Key, strconv.FormatUint(next.ID, 10)
		ev := &bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result|" + next.Key, Data: d}
		h.send(ev)
		h.handle(ev) // the replay after a crash
		n++
	}
}

// A broadcast's occurrence fans out over pages of members, one transaction
// each: exactly the segment's members get one mass send each, from their
// own staff member, however often a page or the occurrence is replayed.
func TestBroadcastFanOutInPagesOnce(t *testing.T) {
	defer func(n, i int) { BroadcastPage, BroadcastIndexPage = n, i }(BroadcastPage, BroadcastIndexPage)
	BroadcastPage, BroadcastIndexPage = 8, 4
	sc := outreachScenario(t, `
broadcasts:
  - {name: 上新, segment: 小红书客户, cron: "0 20 * * 5", text: "{{.Name}}，本周上新"}
`)
	h := newHarness(t, sc)
	want := map[string]string{}
	for i := range 25 {
		id, staff, state := fmt.Sprintf("wm%02d", i), []string{"zhang", "li"}[i%2], "douyin"
		if i%5 != 0 {
			state = "xhs"
			want[id] = staff
		}
		h.send(add(id, staff, state, ""))
	}
	occurrence := time.Date(2025, 3, 7, 20, 0, 0, 0, sc.Brand.Zone)
	run := bot.BroadcastRunEvent("上新", occurrence, occurrence)
	h.send(run)
	h.handle(run) // the occurrence again (past the log's dedupe): nothing more
	// The pages walk the member index's 20 小红书 members, not all 25 (the
	// last page finds none after the 20th).
	if pages := h.pages(); pages != 5 {
		t.Errorf("%d page actions after the first page, want 5 (20 members of the channel, 4 a page)", pages)
	}
	got := map[string]string{}
	for _, a := range h.actions(bot.ActionMassSend) {
		var p bot.MassSend
		if err := a.Decode(&p); err != nil || len(p.ExternalUserIDs) != 1 {
			t.Fatalf("mass send %s: %v %+v", a.Key, err, p)
		}
		if _, dup := got[p.ExternalUserIDs[0]]; dup {
			t.Errorf("%s got the broadcast twice", p.ExternalUserIDs[0])
		}
		got[p.ExternalUserIDs[0]] = p.Sender
		if a.Purpose != bot.PurposeOutreach || !strings.HasSuffix(p.Text, "，本周上新") {
			t.Errorf("action %+v text %q", a, p.Text)
		}
	}
	if fmt.Sprint(sortedMap(got)) != fmt.Sprint(sortedMap(want)) {
		t.Errorf("sent to %v\nwant %v", sortedMap(got), sortedMap(want))
	}
	var rep *BroadcastReport
	err := h.store.View(context.Background(), func(tx bot.Tx) (err error) {
		rep, err = ReportBroadcast(tx, BroadcastRunID("上新", occurrence), func(id uint64) (*bot.Action, error) {
			return h.store.Action(context.Background(), id)
		}, "", 5)
		return err
	})
	if err != nil || rep == nil {
		t.Fatalf("report: %v", err)
	}
	if rep.Status != BroadcastDone || rep.Targeted != 20 || rep.Queued != 20 || rep.Pages != 6 || rep.PerStaff["zhang"]+rep.PerStaff["li"] != 20 ||
		rep.Results["batched"] != 20 || len(rep.Customers) != 5 || rep.NextCursor != rep.Customers[4].Member {
		t.Errorf("report %+v", rep)
	}
}

func sortedMap(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// date:birthday: the day's scan enrolls the members whose birthday it is,
// page by page, once however often the day's event or a page is replayed;
// steps count from the birthday's midnight.
func TestSOPBirthdayScan(t *testing.T) {
	defer func(n int) { BroadcastPage = n }(BroadcastPage)
	BroadcastPage = 3
	sc := outreachScenario(t, `
sops:
  - name: 生日
    trigger: date:birthday
    steps:
      - {day: 0, at: "10:00", via: mass_send, text: "{{.Name}}，生日快乐"}
`)
	h := newHarness(t, sc)
	for i := range 10 {
		h.send(add(fmt.Sprintf("wm%02d", i), "zhang", "xhs", ""))
	}
	for _, id := range []string{"wm02", "wm07"} {
		if err := h.store.Update(context.Background(), func(tx bot.Tx) error {
			m, err := tx.Member(id)
			if err != nil {
				return err
			}
			m.Birthday = "1995-03-04"
			return tx.PutMember(m)
		}); err != nil {
			t.Fatal(err)
		}
	}
	day := time.Date(2025, 3, 4, 0, 0, 0, 0, sc.Brand.Zone)
	ev := bot.SOPDateEvent("生日", day, day)
	h.send(ev)
	h.handle(ev)
	h.pages()
	var got []string
	for _, a := range h.actions(bot.ActionMassSend) {
		if a.Purpose == bot.PurposeOutreach {
			got = append(got, a.MemberID)
			if want := day.Add(10 * time.Hour); !a.DueAt.Equal(want) {
				t.Errorf("%s due %v, want %v", a.MemberID, a.DueAt, want)
			}
		}
	}
	if fmt.Sprint(got) != "[wm02 wm07]" {
		t.Errorf("birthday steps for %v, want [wm02 wm07]", got)
	}
}
