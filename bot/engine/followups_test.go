package engine

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// followUps plays the relay for the follow-up timers, whenever they are
// due: each planned slot's timer returns its data and the result event is
// handled (the slot's follow-ups are queued as at the slot's start).
// Tests about what an add owes call it after the adds.
func (h *harness) followUps() {
	h.t.Helper()
	ctx := context.Background()
	for {
		due, err := h.store.DueActions(ctx, h.clock.AddDate(1, 0, 0), 1<<16)
		if err != nil {
			h.t.Fatal(err)
		}
		var timers []bot.Action
		for _, a := range due {
			if a.Kind == bot.ActionTimer && strings.HasPrefix(a.Key, "followups|") {
				timers = append(timers, a)
			}
		}
		if len(timers) == 0 {
			return
		}
		for _, a := range timers {
			var p bot.Timer
			if err := a.Decode(&p); err != nil {
				h.t.Fatal(err)
			}
			if err := h.store.MarkSent(ctx, a.ID, h.clock, "test"); err != nil {
				h.t.Fatal(err)
			}
			p.Data[bot.ResultKind], p.Data[bot.ResultKey] = string(a.Kind), a.Key
			h.send(&bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result|" + a.Key, Data: p.Data})
		}
	}
}

// planned are the follow-ups planned and not yet queued, by key.
func (h *harness) planned() map[string]string {
	h.t.Helper()
	out := map[string]string{}
	err := h.store.View(context.Background(), func(tx bot.Tx) error {
		return tx.Scan(bot.BucketFollowUps, "", func(k string, v []byte) bool {
			if k != keyDrained {
				out[k] = string(v)
			}
			return true
		})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func followUpScenario(t *testing.T, followUps string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadBytes("fu.yaml", []byte("brand: {name: 测试}\nwelcome:\n  default:\n    text: 你好\n    follow_ups:\n"+followUps))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// A follow-up due in a later slot is one planned record and its slot's
// timer, written in the add's transaction (so a restart keeps it); the
// timer queues its action (same key, purpose, due time) when the slot
// begins, once however often the timer's result comes back. A step due in
// the slot under way is queued at once, as before.
func TestFollowUpsPlannedForTheirSlot(t *testing.T) {
	sc := followUpScenario(t, "      - {after: 2m, text: 马上}\n      - {after: 1d, via: mass_send, text: 明天见}\n")
	path := filepath.Join(t.TempDir(), "e.db")
	open := func() *bolt.Store {
		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	h := newHarness(t, sc)
	h.store = open()
	ev := h.send(add("wmA", "s1", "", "WC-1"))
	h.handle(ev) // a replay plans nothing twice
	texts := func() map[string]bot.Action {
		out := map[string]bot.Action{}
		for _, a := range h.actions(bot.ActionMassSend) {
			var p bot.MassSend
			if err := a.Decode(&p); err != nil {
				t.Fatal(err)
			}
			out[p.Text] = a
		}
		return out
	}
	if got := texts(); len(got) != 1 || got["马上"].Key != "followup|test|1|0" {
		t.Fatalf("queued at the add: %v, want only the step due in this slot", got)
	}
	slot := t0.Add(24 * time.Hour).Truncate(followUpSlot)
	if k := slotKey(slot); k != "001741044600" {
		t.Fatalf("slot key %q, want Unix seconds in 12 digits", k)
	}
	plans := h.planned()
	if _, ok := plans[slotKey(slot)+"|followup|test|1|1"]; !ok || len(plans) != 1 {
		t.Fatalf("planned %v", plans)
	}
	var timers []bot.Action
	for _, a := range h.actions(bot.ActionTimer) {
		if strings.HasPrefix(a.Key, "followups|") {
			timers = append(timers, a)
		}
	}
	if err := h.store.View(context.Background(), func(tx bot.Tx) error {
		mine, err := PlannedFollowUps(tx, sc, ev)
		if err == nil && (len(mine) != 1 || mine[0].Key != "followup|test|1|1" || !mine[0].Due.Equal(t0.Add(24*time.Hour))) {
			t.Errorf("her planned follow-ups: %+v", mine)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(timers) != 1 || !timers[0].DueAt.Equal(slot) || timers[0].Status != bot.ActionPending {
		t.Fatalf("follow-up timers %+v, want one due at %v", timers, slot)
	}

	// A restart keeps the plan and its timer.
	h.store.Close()
	h.store = open()
	t.Cleanup(func() { h.store.Close() })
	if len(h.planned()) != 1 {
		t.Fatal("the plan did not survive a restart")
	}
	h.followUps()
	a, ok := texts()["明天见"]
	if !ok || a.Key != "followup|test|1|1" || a.Purpose != bot.PurposeFollowUp || a.MemberID != "wmA" ||
		!a.DueAt.Equal(t0.Add(24*time.Hour)) || a.Status != bot.ActionBatched {
		t.Fatalf("the planned follow-up as queued: %+v (ok %v)", a, ok)
	}
	if len(h.planned()) != 0 {
		t.Fatalf("plans left: %v", h.planned())
	}
	if err := h.store.View(context.Background(), func(tx bot.Tx) error {
		left, err := PlannedFollowUps(tx, sc, ev)
		if err == nil && len(left) != 0 {
			t.Errorf("her planned follow-ups after the slot: %+v", left)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The timer's result again (WeCom-side retry, replay): nothing twice.
	h.send(&bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "again",
		Data: map[string]string{bot.ResultKind: string(bot.ActionTimer), dataTimer: timerFollowUps, dataSlot: slotKey(slot)}})
	if n := len(h.actions(bot.ActionMassSend)); n != 2 {
		t.Fatalf("%d mass sends after the timer came back twice, want 2", n)
	}
}

// A slot's plans are queued followUpChunk per transaction (the next page's
// timer follows at once); a plan whose script step is gone from the
// scenario in force by then is dropped, and a slot's timer also takes the
// plans of earlier slots.
func TestFollowUpsPagedAndScenarioInForce(t *testing.T) {
	defer func(n int) { followUpChunk = n }(followUpChunk)
	followUpChunk = 2
	two := followUpScenario(t, "      - {after: 1d, text: 第一}\n      - {after: 2d, text: 第二}\n")
	cur := two
	h := newHarness(t, two)
	h.eng = New(func() *scenarios.Scenario { return cur }, zerolog.Nop(), func() time.Time { return h.clock })
	for _, m := range []string{"wm1", "wm2", "wm3", "wm4", "wm5"} {
		h.send(add(m, "s1", "", "WC-"+m))
	}
	if n := len(h.planned()); n != 10 || len(h.actions(bot.ActionMassSend)) != 0 {
		t.Fatalf("%d planned, %d queued; want 10 and 0", n, len(h.actions(bot.ActionMassSend)))
	}
	// Day 2's step left the scenario before its slot.
	cur = followUpScenario(t, "      - {after: 1d, text: 第一}\n")
	h.followUps()
	byMember := map[string]int{}
	for _, a := range h.actions(bot.ActionMassSend) {
		byMember[a.MemberID]++
	}
	if len(byMember) != 5 || len(h.planned()) != 0 {
		t.Fatalf("queued %v, planned %v: want each member's day-1 step once, nothing left", byMember, h.planned())
	}
	for m, n := range byMember {
		if n != 1 {
			t.Errorf("%s: %d follow-ups, want 1", m, n)
		}
	}
	pages := 0
	for _, a := range h.actions(bot.ActionTimer) {
		if strings.HasPrefix(a.Key, "followups|") && strings.Count(a.Key, "|") == 2 {
			pages++
		}
	}
	if pages < 2 {
		t.Errorf("%d page timers, want the slots' plans in pages of %d", pages, followUpChunk)
	}
}

// A step due in a slot whose timer has already run (the add handled on a
// node whose clock is behind the one that ran it, or after the clock was
// set back) is queued at once, exactly once: it is not planned for a timer
// that will never come again. A step due in a later slot is still planned.
func TestFollowUpDueInADrainedSlotQueuedAtOnce(t *testing.T) {
	sc := followUpScenario(t, "      - {after: 1d, text: 明天见}\n      - {after: 2d, text: 后天见}\n")
	h := newHarness(t, sc)
	h.send(add("wmA", "s1", "", "WC-A"))
	slot := t0.Add(24 * time.Hour).Truncate(followUpSlot)
	// Day 1's slot begins on the node with the right clock: its timer runs
	// (and day 2's: the relay here plays every timer at once).
	h.clock = slot.Add(time.Minute)
	h.followUps()
	if n := len(h.actions(bot.ActionMassSend)); n != 2 || len(h.planned()) != 0 {
		t.Fatalf("%d queued, planned %v after the timers ran; want 2 and none", n, h.planned())
	}
	// A node whose clock is a day behind handles an add made then.
	h.clock = t0.Add(2 * time.Minute)
	evB := h.send(add("wmB", "s1", "", "WC-B"))
	h.followUps()
	h.handle(evB) // a replay queues nothing twice
	h.followUps()
	byKey := map[string]bot.Action{}
	for _, a := range h.actions(bot.ActionMassSend) {
		if a.MemberID == "wmB" {
			if _, dup := byKey[a.Key]; dup {
				t.Fatalf("%s queued twice", a.Key)
			}
			byKey[a.Key] = a
		}
	}
	ref := eventRef(evB)
	for i, due := range []time.Time{evB.At.Add(24 * time.Hour), evB.At.Add(48 * time.Hour)} {
		a, ok := byKey["followup|"+ref+"|"+strconv.Itoa(i)]
		if !ok || !a.DueAt.Equal(due) || a.Status != bot.ActionBatched {
			t.Fatalf("step %d of the add after its slot's timer ran: %+v (queued %v); want it queued, due %v", i, a, ok, due)
		}
	}
	if len(byKey) != 2 || len(h.planned()) != 0 {
		t.Fatalf("wmB's follow-ups %v, planned %v: want her 2 steps queued, nothing left waiting", byKey, h.planned())
	}
	// A step due in a slot not yet drained is still planned for it.
	h.clock = t0.Add(3 * time.Minute)
	h.send(&bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wmC", StaffID: "s1", WelcomeCode: "WC-C", At: t0.Add(3 * 24 * time.Hour)})
	if n := len(h.planned()); n != 2 {
		t.Fatalf("planned %v, want wmC's 2 steps (their slots' timers have not run)", h.planned())
	}
}
