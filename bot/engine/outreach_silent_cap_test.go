package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// An SOP with trigger: silent starts when the silent rule marks her silent
// (member.silent from the hourly sweep), with or without a silent tag.
func TestSOPStartsWhenMemberGoesSilent(t *testing.T) {
	sc := outreachScenario(t, `
silent: {days: 14}
sops:
  - name: 唤醒
    trigger: silent
    steps:
      - {day: 0, via: staff_task, text: "问候{{.Name}}"}
`)
	h := newHarness(t, sc)
	h.send(add("wm_quiet", "zhang", "xhs", ""))
	if n := len(h.actions(bot.ActionStaffMessage)); n != 0 {
		t.Fatalf("%d staff tasks before she went silent", n)
	}
	h.advance(15 * 24 * time.Hour)
	if n := h.sweepNow(); n != 1 {
		t.Fatalf("sweep found %d silent, want 1", n)
	}
	tasks := h.actions(bot.ActionStaffMessage)
	if len(tasks) != 1 || !strings.HasPrefix(tasks[0].Key, "sop|") {
		t.Fatalf("staff tasks after she went silent: %+v", tasks)
	}
	var e *SOPEnrollment
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { e, err = ReadSOPEnrollment(tx, "wm_quiet", "唤醒"); return err }); err != nil || e == nil {
		t.Fatalf("not enrolled: %v", err)
	}
	// Another sweep (she is already silent) starts nothing more.
	h.advance(time.Hour)
	h.sweepNow()
	if n := len(h.actions(bot.ActionStaffMessage)); n != 1 {
		t.Errorf("%d staff tasks after a second sweep, want 1", n)
	}
}

// Broadcasts are proactive: a member over limits.contact_per_day is
// skipped with contact_cap (and the report counts it).
func TestBroadcastRespectsContactCap(t *testing.T) {
	sc := outreachScenario(t, `
limits: {contact_per_day: 1}
broadcasts:
  - {name: 上新, segment: 小红书客户, cron: "0 20 * * 5", text: "本周上新"}
  - {name: 再发, segment: 小红书客户, cron: "0 21 * * 5", text: "再提醒一次"}
`)
	h := newHarness(t, sc)
	h.send(add("wm1", "zhang", "xhs", ""))
	h.send(add("wm2", "li", "xhs", ""))
	first := time.Date(2025, 3, 7, 20, 0, 0, 0, sc.Brand.Zone)
	second := first.Add(time.Hour)
	h.send(bot.BroadcastRunEvent("上新", first, first))
	h.pages()
	h.send(bot.BroadcastRunEvent("再发", second, second))
	h.pages()
	report := func(name string, at time.Time) *BroadcastReport {
		var rep *BroadcastReport
		err := h.store.View(context.Background(), func(tx bot.Tx) (err error) {
			rep, err = ReportBroadcast(tx, BroadcastRunID(name, at), func(id uint64) (*bot.Action, error) {
				return h.store.Action(context.Background(), id)
			}, "", 5)
			return err
		})
		if err != nil || rep == nil {
			t.Fatalf("report %s: %v", name, err)
		}
		return rep
	}
	if r := report("上新", first); r.Targeted != 2 || r.Queued != 2 || len(r.Skipped) != 0 {
		t.Errorf("first broadcast: %+v", r)
	}
	if r := report("再发", second); r.Targeted != 2 || r.Queued != 0 || r.Skipped[SkipContactCap] != 2 {
		t.Errorf("second broadcast the same day: targeted %d queued %d skipped %v, want both skipped for contact_cap", r.Targeted, r.Queued, r.Skipped)
	}
}
