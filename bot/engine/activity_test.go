package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/sweep"
	"github.com/wecombot/wecombot/scenarios"
)

// silentScenario is funnelScenario with silent: 14 days, tagged 沉默.
func silentScenario(t *testing.T) *scenarios.Scenario {
	return funnelScenario(t, "silent: {days: 14, tag: 沉默}")
}

// sweepNow runs the hourly sweep at the harness clock and handles what it finds.
func (h *harness) sweepNow() int {
	h.t.Helper()
	var found []*bot.Event
	n, err := sweep.Silent(context.Background(), h.store, h.sc, h.clock, func(ev *bot.Event) error { found = append(found, ev); return nil })
	if err != nil {
		h.t.Fatal(err)
	}
	for _, ev := range found {
		h.send(ev)
	}
	return n
}

func TestSilentMembersAndComingBack(t *testing.T) {
	sc := silentScenario(t)
	h := newHarness(t, sc)
	day := 24 * time.Hour
	h.send(add("wm_quiet", "zhangsan", "xhs", ""))
	h.send(add("wm_busy", "zhangsan", "xhs", ""))
	added := h.clock

	// Activity moves the last activity: kf, orders, groups.
	h.advance(3 * day)
	h.send(kf("wm_quiet", "在吗"))
	if got := h.member("wm_quiet").LastActiveAt; !got.Equal(h.clock) {
		t.Errorf("kf message: last active %v, want %v", got, h.clock)
	}
	for i := 0; i < 3; i++ {
		h.advance(5 * day)
		h.send(paid("wm_busy", "o"+string(rune('1'+i)), 3000))
	}
	// 13 days after her message: not yet.
	h.clock = added.Add(3*day + 13*day)
	if n := h.sweepNow(); n != 0 {
		t.Fatalf("13 days after her last message the sweep found %d silent", n)
	}
	h.advance(day + time.Hour)
	if n := h.sweepNow(); n != 1 {
		t.Fatalf("14 days after: %d silent, want 1 (wm_quiet only; wm_busy ordered)", n)
	}
	q := h.member("wm_quiet")
	if !q.IsSilent() || !q.HasTag("沉默") || h.member("wm_busy").IsSilent() {
		t.Fatalf("wm_quiet silent %v tags %v; wm_busy silent %v", q.IsSilent(), q.Tags, h.member("wm_busy").IsSilent())
	}
	tags := h.actions(bot.ActionMarkTag)
	last := tags[len(tags)-1]
	var mt bot.MarkTag
	if err := last.Decode(&mt); err != nil || mt.ExternalUserID != "wm_quiet" || !slices.Equal(mt.Add, []string{"沉默"}) || mt.TagGroups["沉默"] != "偏好" {
		t.Errorf("silent tag not written to WeCom: %+v %v", mt, err)
	}
	// The next sweep, and a replayed event, find nothing more.
	h.advance(time.Hour)
	if n := h.sweepNow(); n != 0 {
		t.Errorf("a second sweep found %d", n)
	}
	h.send(sweep.SilentEvent(q, h.clock))
	if got := len(h.actions(bot.ActionMarkTag)); got != len(tags) {
		t.Errorf("a repeated member.silent wrote tags again (%d → %d)", len(tags), got)
	}

	// A stale member.silent (she wrote since the sweep looked) changes nothing.
	stale := sweep.SilentEvent(h.member("wm_busy"), h.clock.Add(-30*day))
	h.send(stale)
	if h.member("wm_busy").IsSilent() {
		t.Error("a stale member.silent marked an active member")
	}

	// She comes back: tag removed, counted.
	h.advance(2 * day)
	h.send(kf("wm_quiet", "回来了"))
	q = h.member("wm_quiet")
	if q.IsSilent() || q.HasTag("沉默") {
		t.Errorf("after her message: silent %v tags %v", q.IsSilent(), q.Tags)
	}
	tags = h.actions(bot.ActionMarkTag)
	if err := tags[len(tags)-1].Decode(&mt); err != nil || !slices.Contains(mt.Remove, "沉默") {
		t.Errorf("the silent tag's removal not written: %+v", mt)
	}

	// The weekly counters saw it all, by channel.
	var weeks []ChannelWeek
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { weeks, err = Weekly(tx, "2000-01-01", "2100-01-01"); return err }); err != nil {
		t.Fatal(err)
	}
	var total WeekStats
	for _, w := range weeks {
		if w.Channel != "小红书" {
			t.Errorf("counter for channel %q", w.Channel)
		}
		total.Add(w.WeekStats)
	}
	want := WeekStats{Added: 2, Buyers: 1, RepeatBuyers: 1, Orders: 3, GMVFen: 9000, WentSilent: 1, CameBack: 1}
	if total.Added != want.Added || total.Buyers != want.Buyers || total.RepeatBuyers != want.RepeatBuyers || total.Orders != want.Orders ||
		total.GMVFen != want.GMVFen || total.WentSilent != want.WentSilent || total.CameBack != want.CameBack {
		t.Errorf("weekly totals %+v, want %+v", total, want)
	}
	if total.Entered[bot.StageAware] != 2 || total.Entered[bot.StagePurchase] != 1 || total.Entered[bot.StageInterest] != 1 {
		t.Errorf("stage entries %v", total.Entered)
	}
	if wentWeek := WeekOf(added.Add(17*day+time.Hour), sc.Brand.Zone); !slices.ContainsFunc(weeks, func(w ChannelWeek) bool { return w.Week == wentWeek && w.WentSilent == 1 }) {
		t.Errorf("went silent not counted in the week of %s: %+v", wentWeek, weeks)
	}
}

// A lost member is never marked silent; nor is anyone without a silent section.
func TestSilentSkipsLostMembers(t *testing.T) {
	sc := silentScenario(t)
	h := newHarness(t, sc)
	h.send(add("wm_gone", "zhangsan", "xhs", ""))
	h.send(&bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: "wm_gone", StaffID: "zhangsan"})
	h.advance(30 * 24 * time.Hour)
	if n := h.sweepNow(); n != 0 {
		t.Errorf("the sweep found %d lost members silent", n)
	}
	h.send(sweep.SilentEvent(h.member("wm_gone"), h.clock))
	if h.member("wm_gone").IsSilent() {
		t.Error("member.silent marked a lost member")
	}
}
