package engine

import (
	"encoding/json"
	"fmt"
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

// broadcastRunFor is run id, read once per event (outcomes change only
// its counts, which live beside it: addCount).
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
	return run, nil
}

// Counts of broadcast runs and SOPs are spread over statShards records by
// member (outreach_counts "<scope>|<shard>"), so outcomes of different
// members don't all rewrite one hot key (PostgreSQL with several nodes);
// an event loads each shard it touches once and writes it at its end
// (flushOutreach); readers sum the shards (ReadCounts).
var bucketOutreachCounts = bot.BucketOutreachCounts

// addCount adds delta to count name of scope ("bc|<run>", "sop|<name>")
// in member by's shard.
func (r *run) addCount(scope, by, name string, delta int64) error {
	if delta == 0 {
		return nil
	}
	key := scope + "|" + statShard(by)
	c, ok := r.counts[key]
	if !ok {
		c = map[string]int64{}
		if _, err := r.getJSON(bucketOutreachCounts, key, &c); err != nil {
			return err
		}
		if r.counts == nil {
			r.counts = map[string]map[string]int64{}
		}
		r.counts[key] = c
		r.countKeys = append(r.countKeys, key)
	}
	if c[name] += delta; c[name] == 0 {
		delete(c, name)
	}
	return nil
}

// ReadCounts sums scope's counts over its shards.
func ReadCounts(tx bot.Tx, scope string) (map[string]int64, error) {
	out := map[string]int64{}
	var bad error
	err := tx.Scan(bucketOutreachCounts, scope+"|", func(k string, v []byte) bool {
		var c map[string]int64
		if bad = json.Unmarshal(v, &c); bad != nil {
			bad = fmt.Errorf("outreach counts %s: %w", k, bad)
			return false
		}
		for name, n := range c {
			out[name] += n
		}
		return true
	})
	if err == nil {
		err = bad
	}
	return out, err
}

// flushOutreach writes the count shards the event changed.
func (r *run) flushOutreach() error {
	for _, key := range r.countKeys {
		if err := r.putJSON(bucketOutreachCounts, key, r.counts[key]); err != nil {
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
	if err := r.countTarget(runID, before, -1); err != nil {
		return false, err
	}
	if err := r.countTarget(runID, t, +1); err != nil {
		return false, err
	}
	return true, r.putJSON(bucketBroadcastMembers, key, t)
}

// broadcastTasks counts the mass-send task just created for batch in the
// runs whose targets it carries (keys of the members going out in it).
func (r *run) broadcastTasks(batch string, keys []string) error {
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
			if err := r.addCount("bc|"+id, batch, "tasks", 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// countTarget adds (sign +1) or removes (-1) target t, in its current
// status, to run's report counts.
func (r *run) countTarget(runID string, t BroadcastTarget, sign int) error {
	scope, by := "bc|"+runID, t.Member
	if by == "" {
		by = t.Chat
	}
	add := func(name string, n int64) error { return r.addCount(scope, by, name, int64(sign)*n) }
	if err := add("r:"+t.Status, 1); err != nil {
		return err
	}
	switch t.Status {
	case "delivered", "over_quota", "not_friend", "left_out":
		if err := add("confirmed", 1); err != nil {
			return err
		}
	}
	if t.Status == "delivered" || (t.Status == "sent" && strings.HasPrefix(t.Staff, "kf:")) {
		if err := add("delivered", 1); err != nil {
			return err
		}
	}
	if reached(t.Status) && t.Member != "" && t.Orders > 0 {
		if err := add("orders", int64(t.Orders)); err != nil {
			return err
		}
		return add("gmv", t.GMVFen)
	}
	return nil
}

// addCounts adds a counted run's summed counts (ReadCounts) to its report
// fields (which hold what it kept itself, if anything).
func (run *BroadcastRun) addCounts(c map[string]int64) {
	if run.Results == nil {
		run.Results = map[string]int{}
	}
	for name, n := range c {
		if status, ok := strings.CutPrefix(name, "r:"); ok && n != 0 {
			run.Results[status] += int(n)
		}
	}
	run.Tasks += int(c["tasks"])
	run.Confirmed += int(c["confirmed"])
	run.Delivered += int(c["delivered"])
	run.Orders += int(c["orders"])
	run.GMVFen += c["gmv"]
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
