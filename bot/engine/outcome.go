package engine

import (
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Outreach outcomes. What became of each broadcast target and SOP step
// is counted as it happens, so a report reads a few counters instead of
// every target's action: a batched mass send's customer result (task
// created, delivered, over quota, dropped … — setMassResult), and the
// outcome of an outreach message the outbox delivers itself (a 微信客服
// message or a staff task: the pipeline feeds every outcome back as a
// result event). Each target or step keeps its current status, so a
// replayed or repeated result changes nothing and a later one moves the
// counts from the old status to the new.

// outreachOutcome records that the outreach message with action key
// (bc|<run>|<target>, sop|<sop>|<member>|<start>|<step>) is now status;
// moved is false when it already was (a replayed or repeated result) or
// is not followed.
func (r *run) outreachOutcome(key, status, detail string) (moved bool, err error) {
	switch {
	case strings.HasPrefix(key, "bc|"):
		run, target, ok := strings.Cut(strings.TrimPrefix(key, "bc|"), "|")
		if ok {
			return r.broadcastOutcome(run, target, status, detail)
		}
	case strings.HasPrefix(key, "sop|"):
		return r.sopStepOutcome(key, status)
	}
	return false, nil
}

// deliveredOutcome is the result event of an outreach kf message or staff
// task (pipeline reportsDelivery): sent, failed, canceled by the guard,
// or possibly delivered.
func (r *run) deliveredOutcome(d map[string]string) error {
	status := d[bot.DataOutcome]
	switch status {
	case "sent":
	case "unknown":
		status = bot.ActionUnknown
	default:
		status = "failed"
		if strings.HasPrefix(d[bot.DataError], "canceled: ") {
			status = "canceled"
		}
	}
	moved, err := r.outreachOutcome(d[bot.ResultKey], status, d[bot.DataError])
	if err != nil || !moved || status != "canceled" || bot.ActionKind(d[bot.ResultKind]) != bot.ActionKfMessage {
		return err
	}
	// A proactive kf message counted against her contact cap on its due
	// day never went out: give it back (once: only when it became canceled).
	if due, err := time.Parse(time.RFC3339, d[bot.DataDue]); err == nil {
		return r.releaseContact(r.ev.ExternalUserID, r.capDay(due))
	}
	return nil
}

// broadcastRunFor is run id as this event changes it: loaded once, written
// at the end of the event (flushOutreach) however many of its targets the
// event moved.
func (r *run) broadcastRunFor(id string) (*BroadcastRun, error) {
	if run, ok := r.bcRuns[id]; ok {
		return run, nil
	}
	run, err := ReadBroadcastRun(r.tx, id)
	if err != nil || run == nil {
		return nil, err
	}
	if r.bcRuns == nil {
		r.bcRuns = map[string]*BroadcastRun{}
	}
	r.bcRuns[id] = run
	r.bcRunOrder = append(r.bcRunOrder, id)
	return run, nil
}

// flushOutreach writes the broadcast runs and SOP counters the event changed.
func (r *run) flushOutreach() error {
	for _, id := range r.bcRunOrder {
		if err := r.putJSON(bucketBroadcasts, "run|"+id, r.bcRuns[id]); err != nil {
			return err
		}
	}
	for _, name := range r.sopStatsOrder {
		if err := r.putJSON(bucketSOPStats, name, r.sopStats[name]); err != nil {
			return err
		}
	}
	return nil
}

// broadcastOutcome moves a target of a counted run to status.
func (r *run) broadcastOutcome(runID, target, status, detail string) (bool, error) {
	return r.moveTarget(runID, target, func(t *BroadcastTarget) bool {
		if t.Status == status {
			return false
		}
		t.Status, t.Detail = status, ""
		if !reached(status) {
			t.Detail = strings.TrimPrefix(strings.TrimPrefix(detail, "canceled: "), "skipped: ")
		}
		return true
	})
}

// moveTarget applies change to a target of a counted run (nothing for a
// run from before counts, or an unknown target): its counts leave the run
// as they were and come back as they are (change false: nothing changed).
func (r *run) moveTarget(runID, target string, change func(*BroadcastTarget) bool) (bool, error) {
	run, err := r.broadcastRunFor(runID)
	if err != nil || run == nil || !run.Counted {
		return false, err
	}
	var t BroadcastTarget
	key := runID + "|" + target
	if found, err := r.getJSON(bucketBroadcastMembers, key, &t); err != nil || !found {
		return false, err
	}
	before := t
	if !change(&t) {
		return false, nil
	}
	run.count(before, -1)
	run.count(t, +1)
	return true, r.putJSON(bucketBroadcastMembers, key, t)
}

// broadcastTasks counts the mass-send task just created for batch in the
// runs whose targets it carries (keys of the members going out in it).
func (r *run) broadcastTasks(keys []string) error {
	seen := map[string]bool{}
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, "bc|")
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, "|")
		if seen[id] {
			continue
		}
		seen[id] = true
		run, err := r.broadcastRunFor(id)
		if err != nil {
			return err
		}
		if run != nil && run.Counted {
			run.Tasks++
		}
	}
	return nil
}

// count adds (sign +1) or removes (-1) target t, in its current status,
// from the run's report counts.
func (run *BroadcastRun) count(t BroadcastTarget, sign int) {
	if run.Results == nil {
		run.Results = map[string]int{}
	}
	if run.Results[t.Status] += sign; run.Results[t.Status] == 0 {
		delete(run.Results, t.Status)
	}
	switch t.Status {
	case "delivered", "over_quota", "not_friend", "left_out":
		run.Confirmed += sign
	}
	if t.Status == "delivered" || (t.Status == "sent" && strings.HasPrefix(t.Staff, "kf:")) {
		run.Delivered += sign
	}
	if reached(t.Status) && t.Member != "" {
		run.Orders += sign * t.Orders
		run.GMVFen += int64(sign) * t.GMVFen
	}
}

// kfMsgIDEntry is the kf_msgids value: the action id and key ("id key";
// entries written before the key was kept hold the id alone).
func kfMsgIDEntry(a *bot.Action) []byte {
	return []byte(strconv.FormatUint(a.ID, 10) + " " + a.Key)
}

func parseKfMsgIDEntry(raw []byte) (id uint64, key string) {
	s, key, _ := strings.Cut(string(raw), " ")
	id, _ = strconv.ParseUint(s, 10, 64)
	return id, key
}
