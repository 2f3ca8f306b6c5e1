package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/scenarios"
)

const massYAML = `brand: {name: 测试, zone: Asia/Shanghai}
channels:
  - {state: a, name: A, welcome: s, staff: [zhangsan, lisi]}
welcome:
  default: {text: 你好}
  scripts:
    - name: s
      text: 你好
      follow_ups:
        - {after: 1d, via: mass_send, text: 新品上市，回复「菜单」看看}
limits:
  mass_send_per_month: 2
`

func massScenario(t *testing.T, extra string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadBytes("mass.yaml", []byte(massYAML+extra))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// relayDue plays the outbox relay for the engine alone: every action due by
// the clock is "delivered" — a timer returns its data, a task gets a msgid
// (fail lists customers in its fail_list), a result poll answers with
// answer's statuses — and its result event is handled.
func (h *harness) relayDue(fail map[string]bool, answer func(p bot.MassResult) (task string, statuses map[string]string)) (tasks []bot.MassSend, polls []bot.MassResult) {
	h.t.Helper()
	ctx := context.Background()
	for {
		work := h.massDue(h.clock)
		if len(work) == 0 {
			return tasks, polls
		}
		for _, a := range work {
			data := map[string]string{}
			switch a.Kind {
			case bot.ActionTimer:
				var p bot.Timer
				_ = a.Decode(&p)
				data = p.Data
			case bot.ActionMassSend:
				var p bot.MassSend
				_ = a.Decode(&p)
				tasks = append(tasks, p)
				var failed []string
				for _, id := range append(p.ExternalUserIDs, p.ChatIDs...) {
					if fail[id] {
						failed = append(failed, id)
					}
				}
				data = map[string]string{bot.DataBatch: p.Batch, bot.DataMsgID: "msg-" + strconv.Itoa(len(tasks)), bot.DataFailList: strings.Join(failed, ",")}
			case bot.ActionMassResult:
				var p bot.MassResult
				_ = a.Decode(&p)
				polls = append(polls, p)
				task, st := answer(p)
				var pairs []string
				for id, s := range st {
					pairs = append(pairs, id+":"+s)
				}
				sort.Strings(pairs)
				data = map[string]string{bot.DataBatch: p.Batch, bot.DataMsgID: p.MsgID, bot.DataRound: strconv.Itoa(p.Round),
					bot.DataTaskStatus: task, bot.DataSendResults: strings.Join(pairs, ",")}
				if p.Remind {
					data[bot.DataReminded] = "1"
				}
				if p.Stop && task != "2" {
					data[bot.DataStopped] = "1"
				}
			}
			if err := h.store.MarkSent(ctx, a.ID, h.clock, "test"); err != nil {
				h.t.Fatal(err)
			}
			data[bot.ResultKind], data[bot.ResultKey] = string(a.Kind), a.Key
			h.send(&bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result|" + a.Key, Data: data})
		}
	}
}

// massDue are the due timers, tasks and polls.
func (h *harness) massDue(by time.Time) []bot.Action {
	h.t.Helper()
	due, err := h.store.DueActions(context.Background(), by, 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []bot.Action
	for _, a := range due {
		if a.Kind == bot.ActionTimer || a.Kind == bot.ActionMassSend || a.Kind == bot.ActionMassResult {
			out = append(out, a)
		}
	}
	return out
}

// massActions are the per-member mass sends by member.
func (h *harness) massActions() map[string]bot.Action {
	out := map[string]bot.Action{}
	for _, a := range h.actions(bot.ActionMassSend) {
		if a.MemberID != "" {
			out[a.MemberID] = a
		}
	}
	return out
}

// Follow-ups with the same text from the same staff member, due within one
// window, become ONE add_msg_template task; another staff member's are
// another task. Results read back land on each member's own action.
func TestMassSendBatchedIntoOneTaskPerStaff(t *testing.T) {
	h := newHarness(t, massScenario(t, ""))
	m := metrics.New()
	h.eng.WithMetrics(m)
	h.clock = time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai)
	// Three customers of zhangsan and two of lisi, a few minutes apart.
	for i, who := range []struct{ m, staff string }{{"wm1", "zhangsan"}, {"wm2", "lisi"}, {"wm3", "zhangsan"}, {"wm4", "zhangsan"}, {"wm5", "lisi"}} {
		h.send(add(who.m, who.staff, "a", "WC-"+strconv.Itoa(i)))
		h.advance(2 * time.Minute)
	}
	h.followUps() // planned for the next day's slot: queued when it begins
	acts := h.massActions()
	for m, a := range acts {
		if a.Status != bot.ActionBatched {
			t.Errorf("%s: status %s, want batched (never sent alone)", m, a.Status)
		}
	}
	if due := h.massDue(h.clock.Add(48 * time.Hour)); len(due) != 2 || due[0].Kind != bot.ActionTimer || due[1].Kind != bot.ActionTimer {
		t.Errorf("due mass-send work: %+v, want the 2 batch timers only", due)
	}
	// A day later the window closes: one task per staff member.
	h.clock = time.Date(2025, 3, 4, 10, 10, 0, 0, shanghai)
	tasks, _ := h.relayDue(map[string]bool{"wm4": true}, nil)
	if len(tasks) != 2 {
		t.Fatalf("tasks: %+v, want 2 (one per staff member)", tasks)
	}
	got := map[string]string{}
	for _, p := range tasks {
		got[p.Sender] = strings.Join(p.ExternalUserIDs, ",")
		if p.ChatType != "single" || p.Text != "新品上市，回复「菜单」看看" {
			t.Errorf("task %+v", p)
		}
	}
	if got["zhangsan"] != "wm1,wm3,wm4" || got["lisi"] != "wm2,wm5" {
		t.Errorf("task customers %v", got)
	}
	_ = h.store.View(context.Background(), func(tx bot.Tx) error {
		b, err := ReadMassBatch(tx, tasks[0].Batch)
		if err != nil || b == nil || b.MsgID == "" || !b.Closed || b.Members != len(tasks[0].ExternalUserIDs) {
			t.Errorf("batch %+v %v: want closed with its task's msgid and members", b, err)
		}
		return nil
	})
	acts = h.massActions()
	if a := acts["wm1"]; a.Status != bot.ActionSent || a.Result != bot.MassWaiting || !strings.Contains(a.Detail, "waiting for zhangsan to confirm") {
		t.Errorf("wm1 after the task: %s %s %q", a.Status, a.Result, a.Detail)
	}
	if a := acts["wm4"]; a.Result != bot.MassOverQuota {
		t.Errorf("wm4 on the fail_list: %s %q", a.Result, a.Detail)
	}
	// The first poll: zhangsan has not confirmed; lisi has (wm5 not a friend).
	answer := func(p bot.MassResult) (string, map[string]string) {
		if p.Sender == "lisi" {
			return "2", map[string]string{"wm2": "1", "wm5": "2"}
		}
		return "0", map[string]string{"wm1": "0", "wm3": "0", "wm4": "3"}
	}
	h.advance(10 * time.Minute)
	if _, polls := h.relayDue(nil, answer); len(polls) != 2 {
		t.Fatalf("first polls: %+v", polls)
	}
	acts = h.massActions()
	for m, want := range map[string]string{"wm1": bot.MassWaiting, "wm2": bot.MassDelivered, "wm4": bot.MassOverQuota, "wm5": bot.MassNotFriend} {
		if acts[m].Result != want {
			t.Errorf("%s: %s (%q), want %s", m, acts[m].Result, acts[m].Detail, want)
		}
	}
	// zhangsan is reminded at 4 h and 24 h and never confirms: after 72 h
	// her customers' messages count as not confirmed.
	var reminded int
	for range 10 {
		h.advance(12 * time.Hour)
		_, polls := h.relayDue(nil, answer)
		for _, p := range polls {
			if p.Remind {
				reminded++
			}
		}
	}
	if reminded != 2 {
		t.Errorf("reminders: %d, want 2 (4 h and 24 h)", reminded)
	}
	acts = h.massActions()
	if a := acts["wm1"]; a.Result != bot.MassNotConfirmed || !strings.Contains(a.Detail, "did not confirm") || !strings.Contains(a.Detail, "stopped") {
		t.Errorf("wm1 after 72 h: %s %q", a.Result, a.Detail)
	}
	if a := acts["wm2"]; a.Result != bot.MassDelivered {
		t.Errorf("wm2 stays delivered: %s", a.Result)
	}
	// Each member's final result counted once: wm2 delivered, wm4 over
	// quota, wm5 not a friend, wm1 and wm3 not confirmed.
	if n := metricSum(t, m, "wecombot_send_results_total"); n != 5 {
		t.Errorf("wecombot_send_results_total = %v, want 5", n)
	}
	if due := h.massDue(h.clock.Add(30 * 24 * time.Hour)); len(due) != 0 {
		t.Errorf("still due after both batches concluded: %+v", due)
	}
}

// Only sends with the same content share a task; the same member twice in
// one batch is skipped; the monthly quota still skips (with its reason);
// a member who deleted the staff member before the window closed is
// canceled, not sent; a window of 0s groups only sends due together.
func TestMassSendBatchRules(t *testing.T) {
	h := newHarness(t, massScenario(t, "  mass_send_window: 0s\n"))
	h.clock = time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai)
	due := h.clock.Add(time.Hour)
	enqueue := func(key, member, text string) {
		t.Helper()
		err := h.store.Update(context.Background(), func(tx bot.Tx) error {
			r := &run{e: h.eng, sc: h.sc, tx: tx, ev: &bot.Event{Seq: 1}, now: h.clock, at: h.clock, log: h.eng.log, members: map[string]*memberState{}}
			return r.enqueue(bot.ActionMassSend, key, member, bot.MassSend{ChatType: "single", Sender: "zhangsan", ExternalUserIDs: []string{member}, Text: text}, due, time.Time{})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	h.send(add("wm1", "zhangsan", "", ""))
	h.send(add("wm2", "zhangsan", "", ""))
	enqueue("k1", "wm1", "周末活动")
	enqueue("k2", "wm2", "周末活动")
	enqueue("k3", "wm1", "周末活动") // the same message again: already in the task
	enqueue("k4", "wm1", "另一条")
	enqueue("k5", "wm1", "第三条") // wm1's third this month: over the scenario's 2
	status := map[string]bot.Action{}
	for _, a := range h.actions(bot.ActionMassSend) {
		status[a.Key] = a
	}
	for key, want := range map[string]string{"k1": bot.ActionBatched, "k2": bot.ActionBatched, "k3": bot.ActionSkipped, "k4": bot.ActionBatched, "k5": bot.ActionSkipped} {
		if status[key].Status != want {
			t.Errorf("%s: %s %q, want %s", key, status[key].Status, status[key].LastError, want)
		}
	}
	if !strings.Contains(status["k3"].LastError, "already goes to her") || !strings.Contains(status["k5"].LastError, "quota") {
		t.Errorf("skip reasons: %q, %q", status["k3"].LastError, status["k5"].LastError)
	}
	if !status["k1"].DueAt.Equal(due) {
		t.Errorf("with a 0s window the task goes at the due time: %s", status["k1"].DueAt)
	}
	h.send(&bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: "wm2", StaffID: "zhangsan"})
	h.clock = due
	tasks, _ := h.relayDue(nil, func(bot.MassResult) (string, map[string]string) { return "0", nil })
	if len(tasks) != 2 {
		t.Fatalf("tasks %+v: want one per content", tasks)
	}
	for _, p := range tasks {
		if strings.Join(p.ExternalUserIDs, ",") != "wm1" {
			t.Errorf("task %q to %v: wm2 deleted zhangsan and must be dropped", p.Text, p.ExternalUserIDs)
		}
	}
	a := h.massActions()
	for _, x := range h.actions(bot.ActionMassSend) {
		if x.Key == "k2" {
			a["wm2"] = x
		}
	}
	if a["wm2"].Status != bot.ActionFailed || a["wm2"].Result != bot.MassCanceled {
		t.Errorf("wm2: %s %s %q, want failed/canceled", a["wm2"].Status, a["wm2"].Result, a["wm2"].Detail)
	}
	// wm2's send never reached WeCom: her month's quota is given back
	// (wm1's two stand: both went out in tasks).
	quota := map[string]string{}
	if err := h.store.View(context.Background(), func(tx bot.Tx) error {
		return tx.Scan(bucketMassQuota, "", func(k string, v []byte) bool { quota[k] = string(v); return true })
	}); err != nil {
		t.Fatal(err)
	}
	if len(quota) != 1 || quota["wm1|2025-03"] != "2" {
		t.Errorf("mass_quota %v, want only wm1|2025-03 = 2", quota)
	}
}

// A task that fails for good fails its members' actions with the reason;
// one whose outcome is unknown leaves them batched, saying so; a replayed
// task result changes nothing.
func TestMassSendTaskOutcomes(t *testing.T) {
	for _, outcome := range []string{"failed", "unknown"} {
		t.Run(outcome, func(t *testing.T) {
			h := newHarness(t, massScenario(t, ""))
			h.clock = time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai)
			h.send(add("wm1", "zhangsan", "a", "WC-1"))
			h.followUps()
			h.clock = h.clock.Add(25 * time.Hour)
			// Close the batch (the timer), but the task itself fails.
			ctx := context.Background()
			due, _ := h.store.DueActions(ctx, h.clock, 10)
			var timer bot.Timer
			for _, a := range due {
				if a.Kind == bot.ActionTimer {
					_ = a.Decode(&timer)
					_ = h.store.MarkSent(ctx, a.ID, h.clock, "")
					timer.Data[bot.ResultKind], timer.Data[bot.ResultKey] = string(a.Kind), a.Key
					h.send(&bot.Event{Type: bot.EventActionResult, DedupeKey: "result|" + a.Key, Data: timer.Data})
				}
			}
			var task bot.Action
			for _, a := range h.actions(bot.ActionMassSend) {
				if strings.HasPrefix(a.Key, "masstask|") {
					task = a
				}
			}
			if task.ID == 0 {
				t.Fatal("no task after the window closed")
			}
			ev := &bot.Event{Type: bot.EventActionResult, DedupeKey: fmt.Sprintf("result-%s|%s", outcome, task.Key), Data: map[string]string{
				bot.ResultKind: string(bot.ActionMassSend), bot.ResultKey: task.Key, bot.ResultAction: strconv.FormatUint(task.ID, 10),
				bot.DataOutcome: outcome, bot.DataError: "errcode 41048"}}
			h.send(ev)
			h.handle(ev)
			a := h.massActions()["wm1"]
			want := map[string][2]string{"failed": {bot.ActionFailed, bot.MassTaskFailed}, "unknown": {bot.ActionBatched, bot.MassTaskUnknown}}[outcome]
			if a.Status != want[0] || a.Result != want[1] || !strings.Contains(a.Detail, "41048") {
				t.Errorf("member action %s %s %q, want %v", a.Status, a.Result, a.Detail, want)
			}
		})
	}
}

// A campaign post to groups owes one mass send per group (each group's
// monthly quota counts) and the batcher makes one task per owner carrying
// all of her groups.
func TestGroupPostOneTaskPerOwner(t *testing.T) {
	sc, err := scenarios.LoadBytes("t.yaml", []byte(`brand: {name: 测试, zone: Asia/Shanghai}
campaigns:
  - name: 早安
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
    reminders:
      - {cron: "55 5 * * *", kind: open, to: groups, text: 开始啦}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	h.clock = at("03-02 10:00")
	for chat, owner := range map[string]string{"wrA1": "owner1", "wrA2": "owner1", "wrB1": "owner2"} {
		h.send(&bot.Event{Type: bot.EventGroupCreate, ChatID: chat, StaffID: owner})
	}
	for _, tk := range checkin.Ticks(sc, h.clock, at("03-03 06:00")) {
		h.clock = tk.Slot
		h.send(tk.Event(tk.Slot))
	}
	per := 0
	for _, a := range h.actions(bot.ActionMassSend) {
		if a.Status == bot.ActionBatched {
			per++
		}
	}
	if per != 3 {
		t.Fatalf("batched group sends %d, want one per group", per)
	}
	h.clock = at("03-03 06:10")
	tasks, _ := h.relayDue(nil, func(bot.MassResult) (string, map[string]string) { return "0", nil })
	got := map[string]string{}
	for _, p := range tasks {
		sort.Strings(p.ChatIDs)
		got[p.Sender] = p.ChatType + ":" + strings.Join(p.ChatIDs, ",")
	}
	if len(tasks) != 2 || got["owner1"] != "group:wrA1,wrA2" || got["owner2"] != "group:wrB1" {
		t.Errorf("tasks %v: want one per owner", got)
	}
}

// sendInOneTx appends evs and handles them all in one transaction, as the
// pipeline applies a worker's queued events (an error rolls all back).
func (h *harness) sendInOneTx(evs ...*bot.Event) error {
	h.t.Helper()
	for _, ev := range evs {
		h.n++
		ev.At, ev.DedupeKey = h.clock, fmt.Sprintf("test|%d", h.n)
		if _, err := h.store.AppendEvent(context.Background(), ev); err != nil {
			h.t.Fatal(err)
		}
	}
	return h.store.Update(context.Background(), func(tx bot.Tx) error {
		for _, ev := range evs {
			if err := h.eng.Handle(context.Background(), tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// hotDump is what the hot records (mass-send batches, weekly counters) and
// the batches' members hold.
func (h *harness) hotDump() string {
	h.t.Helper()
	var b strings.Builder
	_ = h.store.View(context.Background(), func(tx bot.Tx) error {
		for _, bucket := range []string{bucketMassBatches, bucketMassMembers, bot.BucketWeekly, bucketCouponPools, bucketCouponIssues} {
			_ = tx.Scan(bucket, "", func(k string, v []byte) bool {
				if bucket == bucketCouponIssues {
					v = nil // the codes are random
				}
				fmt.Fprintf(&b, "%s %s %s\n", bucket, k, v)
				return true
			})
		}
		return nil
	})
	return b.String()
}

// Several events in one transaction decode a mass-send batch, the week's
// counters and a coupon pool's state once and store them once before the
// commit (hot records): the result is what one transaction per event
// leaves, and a transaction that fails leaves none of it.
func TestHotRecordsAcrossEventsOfOneTransaction(t *testing.T) {
	mass, err := scenarios.LoadBytes("mass.yaml", []byte(massYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, state string
		sc          *scenarios.Scenario
		want        []string
	}{
		{"mass sends", "a", mass, []string{`"n":5`, `"added":5`}},
		{"demo: welcome coupons, follow-ups", "xhs", scenarios.LoadDefault(), []string{`"n":5`, `"added":5`, `"issued":5`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			events := func() []*bot.Event {
				var evs []*bot.Event
				for i := range 5 {
					evs = append(evs, add(fmt.Sprintf("wm%d", i), "zhangsan", c.state, fmt.Sprintf("WC%d", i)))
				}
				return evs
			}
			one := newHarness(t, c.sc)
			for _, ev := range events() {
				one.send(ev)
			}
			batched := newHarness(t, c.sc)
			if err := batched.sendInOneTx(events()...); err != nil {
				t.Fatal(err)
			}
			// The follow-ups, planned for their slot, join their batches
			// then: five in the slot timer's one transaction.
			one.followUps()
			batched.followUps()
			want, got := one.hotDump(), batched.hotDump()
			if got != want {
				t.Errorf("one transaction for five adds stored\n%s\none per add\n%s", got, want)
			}
			for _, w := range c.want {
				if !strings.Contains(want, w) {
					t.Errorf("want %s in\n%s", w, want)
				}
			}
			// A failing event takes the transaction's copies with it.
			failing := newHarness(t, c.sc)
			boom := errors.New("boom")
			err = failing.store.Update(context.Background(), func(tx bot.Tx) error {
				for _, ev := range events() {
					failing.n++
					ev.At, ev.DedupeKey = failing.clock, fmt.Sprintf("test|%d", failing.n)
					if err := failing.eng.Handle(context.Background(), tx, ev); err != nil {
						return err
					}
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("err %v", err)
			}
			if d := failing.hotDump(); d != "" {
				t.Errorf("a rolled-back transaction stored\n%s", d)
			}
		})
	}
}
