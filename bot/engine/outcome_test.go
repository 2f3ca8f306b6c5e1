package engine

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// report reads run id's report from its counters and, for the same run
// treated as one stored before counters, from every target's action.
func (h *harness) reports(id string) (counted, fromActions *BroadcastReport) {
	h.t.Helper()
	ctx := context.Background()
	action := func(aid uint64) (*bot.Action, error) { return h.store.Action(ctx, aid) }
	err := h.store.View(ctx, func(tx bot.Tx) (err error) {
		if counted, err = ReportBroadcast(tx, id, action, "", 100); err != nil || counted == nil {
			return fmt.Errorf("report %s: %v", id, err)
		}
		run, err := ReadBroadcastRun(tx, id)
		if err != nil {
			return err
		}
		// The counts as a run from before them would have stored them.
		run.Counted, run.Tasks, run.Confirmed, run.Delivered, run.Results, run.Orders, run.GMVFen = false, 0, 0, 0, nil, 0, 0
		if fromActions, err = reportFromActions(tx, run, action, "", 100); err != nil {
			return err
		}
		return nameCustomers(tx, fromActions.Customers)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return counted, fromActions
}

// sameReport fails unless the counters say what reading every action says.
func sameReport(t *testing.T, what string, counted, fromActions *BroadcastReport) {
	t.Helper()
	counted.Counted = false
	if !reflect.DeepEqual(counted, fromActions) {
		t.Errorf("%s: the counted report differs from the one read from the actions:\ncounted %+v\nactions %+v", what, counted, fromActions)
	}
}

// A broadcast's report is kept from its outcomes as they happen — tasks
// created, WeCom's fail list, staff confirmations, customers dropped, kf
// messages sent, canceled or of unknown outcome, orders within 7 days —
// and says exactly what reading every target's action says, at every
// point, however often a result is replayed.
func TestBroadcastReportCountsMatchActions(t *testing.T) {
	sc := outreachScenario(t, `
broadcasts:
  - {name: 上新, segment: 小红书客户, cron: "0 20 * * 5", text: 本周上新}
  - {name: 客服上新, segment: 小红书客户, via: kf, open_kfid: wkTEST, cron: "0 21 * * 5", text: "{{.Name}}，本周上新"}
`)
	h := newHarness(t, sc)
	h.clock = time.Date(2025, 3, 7, 10, 0, 0, 0, sc.Brand.Zone)
	for i := range 7 {
		h.send(add(fmt.Sprintf("wm%d", i), []string{"zhang", "li"}[i%2], "xhs", ""))
	}
	h.send(add("wm_dy", "zhang", "douyin", "")) // not in the segment
	for _, m := range []string{"wm0", "wm1", "wm2"} {
		h.send(kf(m, "有新品吗"))
	}
	occurrence := time.Date(2025, 3, 7, 20, 0, 0, 0, sc.Brand.Zone)
	h.clock = occurrence
	h.send(bot.BroadcastRunEvent("上新", occurrence, occurrence))
	id := BroadcastRunID("上新", occurrence)
	check := func(what string) *BroadcastReport {
		t.Helper()
		c, a := h.reports(id)
		sameReport(t, what, c, a)
		return c
	}
	if c := check("fanned out"); c.Targeted != 7 || c.Results["batched"] != 7 {
		t.Fatalf("after the fan-out: %+v", c)
	}
	// wm5 deletes li before the window closes: dropped from li's task.
	h.send(&bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: "wm5", StaffID: "li"})
	h.clock = occurrence.Add(15 * time.Minute)
	h.relayDue(map[string]bool{"wm4": true}, nil) // wm4 on the fail list
	if c := check("tasks created"); c.Tasks != 2 || c.Results[bot.MassWaiting] != 5 || c.Results["canceled"] != 1 || c.Confirmed != 1 {
		t.Errorf("after the tasks: %+v", c)
	}
	answer := func(p bot.MassResult) (string, map[string]string) {
		if p.Sender == "li" {
			return "2", map[string]string{"wm1": "1", "wm3": "2"}
		}
		return "2", map[string]string{"wm0": "1", "wm2": "1", "wm6": "0", "wm4": "3"}
	}
	h.advance(10 * time.Minute)
	h.relayDue(nil, answer)
	h.relayDue(nil, answer) // nothing more is due: a replay changes nothing
	// An order within 7 days from a recipient, one from a member it never reached.
	h.send(&bot.Event{Type: bot.EventOrderPaid, ExternalUserID: "wm0", Data: map[string]string{bot.DataOrderID: "O1", bot.DataAmountFen: "3650"}})
	h.send(&bot.Event{Type: bot.EventOrderPaid, ExternalUserID: "wm5", Data: map[string]string{bot.DataOrderID: "O2", bot.DataAmountFen: "1000"}})
	c := check("results read back")
	if c.Delivered != 3 || c.Orders != 1 || c.GMVFen != 3650 || c.Results[bot.MassDelivered] != 3 {
		t.Errorf("after the results: %+v", c)
	}

	// Via kf: the outbox's outcomes return as result events.
	kfAt := occurrence.Add(time.Hour)
	h.clock = kfAt
	h.send(bot.BroadcastRunEvent("客服上新", kfAt, kfAt))
	kid := BroadcastRunID("客服上新", kfAt)
	outcome := func(member, outcome, msg string) {
		t.Helper()
		for _, a := range h.actions(bot.ActionKfMessage) {
			if a.Key != "bc|"+kid+"|"+member {
				continue
			}
			if outcome == "sent" {
				if err := h.store.MarkSent(context.Background(), a.ID, h.clock, "msgid"); err != nil {
					t.Fatal(err)
				}
			} else if err := h.store.MarkFailed(context.Background(), a.ID, h.clock, msg); err != nil {
				t.Fatal(err)
			}
			ev := &bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result|" + a.Key, ExternalUserID: member,
				Data: map[string]string{bot.ResultKind: string(a.Kind), bot.ResultKey: a.Key, bot.ResultAction: strconv.FormatUint(a.ID, 10),
					bot.DataOutcome: outcome, bot.DataError: msg}}
			h.send(ev)
			h.handle(ev) // replayed
			return
		}
		t.Fatalf("no kf action for %s", member)
	}
	outcome("wm0", "sent", "")
	outcome("wm1", "failed", "canceled: she deleted every staff member")
	outcome("wm2", "failed", "kf/send_msg: 95016 session closed")
	id = kid
	c = check("kf outcomes")
	if c.Results["sent"] != 1 || c.Results["canceled"] != 1 || c.Results["failed"] != 1 || c.Delivered != 1 || c.Results["skipped:"+SkipOutsideKf] != 3 {
		t.Errorf("kf report: %+v", c)
	}
}

func (h *harness) sopView(sop string) (st *SOPStats, members map[string]*SOPEnrollment) {
	h.t.Helper()
	members = map[string]*SOPEnrollment{}
	err := h.store.View(context.Background(), func(tx bot.Tx) (err error) {
		if st, err = ReadSOPStats(tx, sop); err != nil {
			return err
		}
		return SOPMembers(tx, sop, "", func(m string, e *SOPEnrollment) bool { members[m] = e; return true })
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return st, members
}

// An SOP counts its enrollments, stops by reason and each step's messages
// by status as they happen (a staff task sent or canceled, a mass send
// batched, in a task, dropped); paused, it enrolls nobody and the steps
// falling due are canceled; resumed, members enroll again.
func TestSOPCountsAndPause(t *testing.T) {
	sc := outreachScenario(t, `
sops:
  - name: 新客
    trigger: added
    steps:
      - {day: 0, via: staff_task, text: "问候{{.Name}}"}
      - {day: 1, at: "10:00", via: mass_send, text: "新客专享"}
    stop: [purchase]
`)
	h := newHarness(t, sc)
	h.clock = time.Date(2025, 3, 3, 9, 0, 0, 0, sc.Brand.Zone)
	for _, m := range []string{"wm1", "wm2", "wm3"} {
		h.send(add(m, "zhang", "xhs", ""))
	}
	delivered := func(member, outcome, msg string) {
		t.Helper()
		for _, a := range h.actions(bot.ActionStaffMessage) {
			if a.MemberID == member {
				ev := &bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result|" + a.Key, ExternalUserID: member,
					Data: map[string]string{bot.ResultKind: string(a.Kind), bot.ResultKey: a.Key, bot.DataOutcome: outcome, bot.DataError: msg}}
				h.send(ev)
				h.handle(ev)
				return
			}
		}
		t.Fatalf("no staff task for %s", member)
	}
	delivered("wm1", "sent", "")
	delivered("wm2", "sent", "")
	delivered("wm3", "failed", "canceled: member lost")
	h.send(&bot.Event{Type: bot.EventOrderPaid, ExternalUserID: "wm2", Data: map[string]string{bot.DataOrderID: "O1", bot.DataAmountFen: "100"}})
	st, members := h.sopView("新客")
	if st.Enrolled != 3 || st.Stopped[scenarios.StopPurchase] != 1 || fmt.Sprint(st.Steps) != "[map[canceled:1 sent:2] map[batched:3]]" || len(members) != 3 {
		t.Fatalf("stats %+v members %d", st, len(members))
	}
	// The window closes: wm2's step is dropped (stopped), wm1's and wm3's go in one task.
	h.clock = time.Date(2025, 3, 4, 10, 15, 0, 0, sc.Brand.Zone)
	h.relayDue(nil, nil)
	st, members = h.sopView("新客")
	if fmt.Sprint(st.Steps[1]) != "map[canceled:1 waiting_confirm:2]" || members["wm2"].Steps[1] != "canceled" || members["wm1"].Steps[1] != bot.MassWaiting {
		t.Errorf("after the task: %+v, wm1 %v, wm2 %v", st.Steps, members["wm1"].Steps, members["wm2"].Steps)
	}

	// Paused: wm4 is not enrolled, and wm5's (enrolled before) next step is canceled when due.
	h.send(add("wm5", "zhang", "xhs", ""))
	pause := func(paused bool) {
		h.send(&bot.Event{Type: bot.EventSOPState, Source: bot.SourceOperator, Data: map[string]string{bot.DataSOP: "新客", bot.DataPaused: strconv.FormatBool(paused)}})
	}
	pause(true)
	h.send(add("wm4", "zhang", "xhs", ""))
	st, members = h.sopView("新客")
	if !st.Paused || st.Enrolled != 4 || members["wm4"] != nil {
		t.Errorf("paused: %+v, wm4 %+v", st, members["wm4"])
	}
	var reason string
	for _, a := range h.actions(bot.ActionStaffMessage) {
		if a.MemberID == "wm5" {
			if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { reason, err = Guard(&a)(tx); return err }); err != nil {
				t.Fatal(err)
			}
		}
	}
	if reason != "SOP 新客 paused" {
		t.Errorf("wm5's step while paused: guard says %q", reason)
	}
	pause(false)
	h.send(add("wm6", "zhang", "xhs", ""))
	if st, members = h.sopView("新客"); st.Paused || st.Enrolled != 5 || members["wm6"] == nil {
		t.Errorf("resumed: %+v", st)
	}
	// The member list reads ids in chunks: every member once, in order, from a cursor on.
	defer func(n int) { sopMembersChunk = n }(sopMembersChunk)
	sopMembersChunk = 2
	var listed []string
	if err := h.store.View(context.Background(), func(tx bot.Tx) error {
		return SOPMembers(tx, "新客", "wm1", func(m string, _ *SOPEnrollment) bool { listed = append(listed, m); return true })
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(listed) != "[wm2 wm3 wm5 wm6]" {
		t.Errorf("members after wm1 in chunks of 2: %v", listed)
	}
}

// A proactive message counted against the member's contact cap that never
// goes out — an SOP step dropped when her sequence stopped, as a batched
// mass send or a kf message the outbox cancels — is given back, so it
// doesn't crowd out a later message that day.
func TestDroppedStepsGiveBackContactCap(t *testing.T) {
	sc := outreachScenario(t, `
limits: {contact_per_day: 1}
sops:
  - name: 新客
    trigger: added
    steps:
      - {day: 1, at: "10:00", via: mass_send, text: 新客专享}
      - {day: 2, at: "12:00", via: kf, open_kfid: wkTEST, text: 午休来一杯}
    stop: [purchase]
`)
	h := newHarness(t, sc)
	h.clock = time.Date(2025, 3, 3, 9, 0, 0, 0, sc.Brand.Zone)
	h.send(add("wm1", "zhang", "xhs", ""))
	capDays := func() string {
		t.Helper()
		var raw []byte
		if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { raw, err = tx.Get(bot.BucketContactCap, "wm1"); return err }); err != nil {
			return "none"
		}
		return string(raw)
	}
	if got := capDays(); got != `{"2025-03-04":1,"2025-03-05":1}` {
		t.Fatalf("contact cap after enrolling: %s", got)
	}
	h.send(&bot.Event{Type: bot.EventOrderPaid, ExternalUserID: "wm1", Data: map[string]string{bot.DataOrderID: "O1", bot.DataAmountFen: "100"}})
	h.clock = time.Date(2025, 3, 4, 10, 15, 0, 0, sc.Brand.Zone)
	h.relayDue(nil, nil) // the batch closes: her step is dropped
	if got := capDays(); got != `{"2025-03-05":1}` {
		t.Errorf("after the dropped mass send: %s", got)
	}
	for _, a := range h.actions(bot.ActionKfMessage) {
		ev := &bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result-failed|" + a.Key, ExternalUserID: "wm1",
			Data: map[string]string{bot.ResultKind: string(a.Kind), bot.ResultKey: a.Key, bot.DataOutcome: "failed",
				bot.DataError: "canceled: SOP 新客 stopped: purchase", bot.DataDue: a.DueAt.UTC().Format(time.RFC3339)}}
		h.send(ev)
		ev.DedupeKey += "|again" // canceled again (an operator's retry): given back once
		h.send(ev)
	}
	if got := capDays(); got != `{}` {
		t.Errorf("after the canceled kf step: %s", got)
	}
}
