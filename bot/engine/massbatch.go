package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Mass sends as WeCom runs them (WECOM.md §8). Every add_msg_template task
// waits for its staff member to confirm it in the 企业微信 client, so one
// task per member would bury staff in confirmations. Features enqueue one
// mass_send action per customer (or group) as before; enqueue puts each in
// a batch — same chat type, sender and content, due in the same window
// (limits.mass_send_window, default 10 min) — and marks it batched: the
// relay never sends it alone. When the window ends a timer action brings
// the batch back here (massBatchClose), and the batch becomes ONE task
// carrying every customer (up to WeCom's 10,000; a fuller batch overflows
// into the next one). What WeCom did with the task returns as result events
// and is written onto each customer's own action (Tx.SetActionResult):
// waiting for the staff member's confirmation, delivered, over quota, not a
// friend, left out, not confirmed in time.
//
// The task is one outbox action, so the outbox's record-before-send holds:
// a crash mid-send leaves it possibly delivered, never sent twice. Results
// are polled (get_groupmsg_task, get_groupmsg_send_result) on a schedule
// from the task's creation, with remind_groupmsg_send at the scenario's
// remind times, until the staff member confirmed (and an hour more for the
// customers' statuses to settle) or limits.mass_send_confirm_within passed:
// then a task still unsent is stopped (cancel_groupmsg_send), so what the
// timeline calls not confirmed can't go out late.

// Mass-send batching defaults (scenario limits override them).
const (
	DefaultMassSendWindow        = 10 * time.Minute
	DefaultMassSendConfirmWithin = 72 * time.Hour
	// massSettle is how long after the staff member's confirmation the
	// customers still shown unsent are waited for.
	massSettle = time.Hour
)

// DefaultMassSendRemind are the default reminder times after a task's creation.
var DefaultMassSendRemind = []time.Duration{4 * time.Hour, 24 * time.Hour}

// massPolls are the result polls after a task's creation (the remind times
// and the confirmation deadline are added).
var massPolls = []time.Duration{10 * time.Minute, time.Hour, 4 * time.Hour, 24 * time.Hour, 48 * time.Hour}

// Timer names (bot.Timer Data "timer").
const (
	dataTimer      = "timer"
	timerMassBatch = "mass_batch"
)

var (
	bucketMassBatches = bot.BucketMassBatches
	bucketMassMembers = bot.BucketMassMembers
)

// massBatch is one batch: the customers (or groups) of one task.
type massBatch struct {
	ID          string           `json:"id"`
	ChatType    string           `json:"chat_type"`
	Sender      string           `json:"sender"`
	Text        string           `json:"text"`
	Attachments []bot.Attachment `json:"attachments,omitempty"`
	// Due is the window's end: the task is created then.
	Due    time.Time `json:"due"`
	N      int       `json:"n"`
	Closed bool      `json:"closed,omitempty"`
	// MsgID is the task WeCom created at TaskAt; Confirmed is when the
	// staff member sent it (send_time).
	MsgID     string    `json:"msgid,omitempty"`
	TaskAt    time.Time `json:"task_at,omitzero"`
	Confirmed time.Time `json:"confirmed,omitzero"`
	Round     int       `json:"round,omitempty"`
	Reminded  int       `json:"reminded,omitempty"`
	// Outcome is set when the task failed or its outcome is unknown.
	Outcome string `json:"outcome,omitempty"`
	Done    bool   `json:"done,omitempty"`
}

// massMember is one customer (or group) in a batch: her action and what
// became of it so far.
type massMember struct {
	Action uint64 `json:"a"`
	Result string `json:"r,omitempty"`
	// Key is the action's key, for the checks its feature makes when the
	// batch closes (an SOP step of a stopped sequence is dropped).
	Key string `json:"k,omitempty"`
	// Quota is the mass_quota record she was counted under, CapDay the
	// day her contact cap counted it (both given back if she is dropped
	// before the task is created).
	Quota  string `json:"q,omitempty"`
	CapDay string `json:"c,omitempty"`
}

// MassBatch is a batch as the console and tests read it.
type MassBatch struct {
	ID, ChatType, Sender, MsgID string
	Due, TaskAt, Confirmed      time.Time
	Members                     int
	Closed, Done                bool
	Outcome                     string
}

// ReadMassBatch returns the batch (nil if unknown).
func ReadMassBatch(tx bot.Tx, id string) (*MassBatch, error) {
	var b massBatch
	if found, err := readJSON(tx, bucketMassBatches, id, &b); err != nil || !found {
		return nil, err
	}
	return &MassBatch{ID: b.ID, ChatType: b.ChatType, Sender: b.Sender, MsgID: b.MsgID, Due: b.Due, TaskAt: b.TaskAt,
		Confirmed: b.Confirmed, Members: b.N, Closed: b.Closed, Done: b.Done, Outcome: b.Outcome}, nil
}

func (r *run) massWindow() time.Duration {
	if w := r.sc.Limits.MassSendWindow; w > 0 {
		return w
	}
	if r.sc.Limits.MassSendWindowSet {
		return 0
	}
	return DefaultMassSendWindow
}

func (r *run) massConfirmWithin() time.Duration {
	if d := r.sc.Limits.MassSendConfirmWithin; d > 0 {
		return d
	}
	return DefaultMassSendConfirmWithin
}

func (r *run) massRemind() []time.Duration {
	if r.sc.Limits.MassSendRemindSet {
		return r.sc.Limits.MassSendRemind
	}
	return DefaultMassSendRemind
}

// massSchedule is when results are polled after the task's creation, and
// which polls remind the staff member first; the last is the deadline.
func (r *run) massSchedule() (polls []time.Duration, remind map[time.Duration]bool) {
	deadline := r.massConfirmWithin()
	remind = map[time.Duration]bool{}
	for _, d := range append(slices.Clone(massPolls), r.massRemind()...) {
		if d > 0 && d < deadline && !slices.Contains(polls, d) {
			polls = append(polls, d)
		}
	}
	for _, d := range r.massRemind() {
		if d > 0 && d < deadline {
			remind[d] = true
		}
	}
	slices.Sort(polls)
	return append(polls, deadline), remind
}

// massTarget is the one customer or group of a per-member mass send ("" if
// it names several or none: such a send goes out as it is).
func massTarget(p bot.MassSend) string {
	switch {
	case p.Batch != "" || len(p.ExternalUserIDs)+len(p.ChatIDs) != 1:
		return ""
	case len(p.ExternalUserIDs) == 1:
		return p.ExternalUserIDs[0]
	}
	return p.ChatIDs[0]
}

// massBatchFor finds the open batch a mass send due at due joins (a new
// one if none): same chat type, sender and content, same window.
func (r *run) massBatchFor(p bot.MassSend, due time.Time) (*massBatch, error) {
	if p.ChatType == "" {
		p.ChatType = "single"
	}
	// A send owed already (the engine ran behind) still joins its window's
	// batch while that is open; a closed one overflows into a new batch.
	end := due
	if w := r.massWindow(); w > 0 {
		end = due.Truncate(w).Add(w)
	}
	content, err := json.Marshal(struct {
		Text        string           `json:"t"`
		Attachments []bot.Attachment `json:"a"`
	}{p.Text, p.Attachments})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(content)
	base := fmt.Sprintf("%s|%s|%s|%d", p.ChatType, p.Sender, hex.EncodeToString(sum[:8]), end.UnixMilli())
	limit := bot.MaxMassCustomers
	if p.ChatType == "group" {
		limit = bot.MaxMassGroups
	}
	for gen := 1; ; gen++ {
		id := base
		if gen > 1 {
			id += "#" + strconv.Itoa(gen)
		}
		b, err := r.loadMassBatch(id)
		if err != nil {
			return nil, err
		}
		if b == nil {
			return &massBatch{ID: id, ChatType: p.ChatType, Sender: p.Sender, Text: p.Text, Attachments: p.Attachments, Due: end}, nil
		}
		if !b.Closed && b.N < limit {
			return b, nil
		}
	}
}

func massMemberKey(batch, target string) string { return batch + "|" + target }

// massJoin records the batched action a of target in b; the batch's first
// member sets the timer that closes it.
func (r *run) massJoin(b *massBatch, target, quota, capDay string, a *bot.Action) error {
	b.N++
	if err := r.putJSON(bucketMassMembers, massMemberKey(b.ID, target), massMember{Action: a.ID, Key: a.Key, Quota: quota, CapDay: capDay}); err != nil {
		return err
	}
	if b.N == 1 {
		t := bot.Timer{Data: map[string]string{dataTimer: timerMassBatch, bot.DataBatch: b.ID}}
		if err := r.enqueue(bot.ActionTimer, "massbatch|"+b.ID, "", t, b.Due, time.Time{}); err != nil {
			return err
		}
	}
	return r.saveMassBatch(b)
}

// massMembers lists a batch's members in key order.
func (r *run) massMembers(batch string) (targets []string, members []massMember, err error) {
	var bad error
	prefix := batch + "|"
	err = r.tx.Scan(bucketMassMembers, prefix, func(k string, v []byte) bool {
		var m massMember
		if bad = json.Unmarshal(v, &m); bad != nil {
			return false
		}
		targets = append(targets, strings.TrimPrefix(k, prefix))
		members = append(members, m)
		return true
	})
	if err == nil {
		err = bad
	}
	return targets, members, err
}

// setMassResult writes a member's result onto her action and her batch record.
func (r *run) setMassResult(b *massBatch, target string, m *massMember, status, result, detail string) error {
	if m.Result == result {
		return nil
	}
	m.Result = result
	if result != bot.MassWaiting && result != bot.MassTaskUnknown {
		r.e.metrics.SendResult("mass_send", result)
	}
	if err := r.tx.SetActionResult(m.Action, bot.ActionResult{Status: status, Result: result, Detail: detail, At: r.at}); err != nil {
		return fmt.Errorf("write the mass-send result onto action %d: %w", m.Action, err)
	}
	why := "" // the action keeps a reason (LastError) only when it failed
	if status == bot.ActionFailed {
		why = detail
	}
	if _, err := r.outreachOutcome(m.Key, result, why); err != nil {
		return err
	}
	return r.putJSON(bucketMassMembers, massMemberKey(b.ID, target), m)
}

// loadMassBatch returns the batch (nil if unknown): the transaction's copy
// (a hot record, engine.go), which the caller saves (saveMassBatch) or
// leaves unchanged.
func (r *run) loadMassBatch(id string) (*massBatch, error) {
	return loadHot[massBatch](r, bucketMassBatches, id)
}

func (r *run) saveMassBatch(b *massBatch) error { return saveHot(r, bucketMassBatches, b.ID, b) }

// massBatchClose: the window ended. Members who can no longer get it (she
// deleted the sender, the group was dismissed) are dropped; the rest go
// into one task.
func (r *run) massBatchClose(id string) error {
	b, err := r.loadMassBatch(id)
	if err != nil || b == nil || b.Closed {
		return err
	}
	b.Closed = true
	targets, members, err := r.massMembers(id)
	if err != nil {
		return err
	}
	var send []string
	for i, t := range targets {
		reason, err := r.massStillApplies(b, t)
		if err == nil && reason == "" {
			reason, err = sopStopped(r.tx, &bot.Action{Key: members[i].Key})
		}
		if err != nil {
			return err
		}
		if reason != "" {
			if err := r.setMassResult(b, t, &members[i], bot.ActionFailed, bot.MassCanceled, "canceled: "+reason); err != nil {
				return err
			}
			if members[i].Quota != "" {
				if err := r.massQuotaRelease(members[i].Quota); err != nil {
					return err
				}
			}
			if b.ChatType != "group" {
				if err := r.releaseContact(t, members[i].CapDay); err != nil {
					return err
				}
			}
			continue
		}
		send = append(send, t)
	}
	if len(send) == 0 {
		b.Done = true
		return r.saveMassBatch(b)
	}
	p := bot.MassSend{ChatType: b.ChatType, Sender: b.Sender, Text: b.Text, Attachments: b.Attachments, Batch: id}
	if b.ChatType == "group" {
		p.ChatIDs = send
	} else {
		p.ExternalUserIDs = send
	}
	r.log.Info().Str("batch", id).Str("sender", b.Sender).Int("customers", len(send)).Msg("mass-send batch closed: one task for its staff member to confirm")
	if err := r.enqueue(bot.ActionMassSend, "masstask|"+id, "", p, time.Time{}, time.Time{}); err != nil {
		return err
	}
	return r.saveMassBatch(b)
}

// massStillApplies says why target can no longer get b's message ("" if she can).
func (r *run) massStillApplies(b *massBatch, target string) (string, error) {
	if b.ChatType == "group" {
		var g groupRecord
		found, err := r.getJSON(bucketGroups, target, &g)
		if err != nil || !found {
			return "", err
		}
		if !g.DismissedAt.IsZero() {
			return "the group was dismissed", nil
		}
		return "", nil
	}
	return memberReachable(r.tx, target, b.Sender)
}

// massTaskResult: the task was created (msgid, fail_list), failed, or its
// outcome is unknown.
func (r *run) massTaskResult(d map[string]string) error {
	id := d[bot.DataBatch]
	if rest, ok := strings.CutPrefix(d[bot.ResultKey], "masstask|"); id == "" && ok {
		id = rest
	}
	b, err := r.loadMassBatch(id)
	if err != nil || b == nil || b.MsgID != "" {
		return err // not a batch's task, or a replayed result
	}
	targets, members, err := r.massMembers(id)
	if err != nil {
		return err
	}
	waiting := func(m massMember) bool {
		return m.Result == "" || m.Result == bot.MassTaskUnknown || m.Result == bot.MassTaskFailed
	}
	switch d[bot.DataOutcome] {
	case "failed", "unknown":
		status, result := bot.ActionFailed, bot.MassTaskFailed
		detail := "the mass-send task failed: " + d[bot.DataError]
		if d[bot.DataOutcome] == "unknown" {
			status, result = bot.ActionBatched, bot.MassTaskUnknown
			detail = "the mass-send task's outcome is unknown (" + d[bot.DataError] + "): check 企业微信's 群发助手, then retry or drop outbox action " + d[bot.ResultAction]
		}
		b.Outcome = result
		for i, t := range targets {
			if waiting(members[i]) {
				if err := r.setMassResult(b, t, &members[i], status, result, detail); err != nil {
					return err
				}
			}
		}
		return r.saveMassBatch(b)
	}
	b.MsgID, b.TaskAt, b.Outcome = d[bot.DataMsgID], r.at, ""
	failed := map[string]bool{}
	for _, f := range strings.Split(d[bot.DataFailList], ",") {
		failed[f] = f != ""
	}
	n := 0
	for _, m := range members {
		if waiting(m) {
			n++
		}
	}
	var inTask []string
	for i, t := range targets {
		if !waiting(members[i]) {
			continue
		}
		inTask = append(inTask, members[i].Key)
		status, result := bot.ActionSent, bot.MassWaiting
		detail := fmt.Sprintf("in mass-send task %s (%d %s): waiting for %s to confirm it in 企业微信", b.MsgID, n, b.noun(), b.Sender)
		if failed[t] {
			result, detail = r.massFailKind(b, t), "not delivered: WeCom put her on the task's fail_list"
		}
		if err := r.setMassResult(b, t, &members[i], status, result, detail); err != nil {
			return err
		}
	}
	if err := r.broadcastTasks(id, inTask); err != nil {
		return err
	}
	r.log.Info().Str("batch", id).Str("msgid", b.MsgID).Int("fail_list", len(failed)).Msg("mass-send task created; waiting for the staff member's confirmation")
	if err := r.massPoll(b, 0, ""); err != nil {
		return err
	}
	return r.saveMassBatch(b)
}

func (b *massBatch) noun() string {
	if b.ChatType == "group" {
		return "groups"
	}
	return "customers"
}

// massFailKind guesses why WeCom refused a customer at creation: not a
// friend when we know she isn't, else over quota (the poll reads WeCom's
// own status).
func (r *run) massFailKind(b *massBatch, target string) string {
	if b.ChatType != "group" {
		if m, err := r.tx.Member(target); err == nil {
			if f := m.Follow(b.Sender); m.Lost || (f != nil && !f.Active()) {
				return bot.MassNotFriend
			}
		}
	}
	return bot.MassOverQuota
}

// massPoll enqueues poll round (cursor: the next page of the same round).
func (r *run) massPoll(b *massBatch, round int, cursor string) error {
	polls, remind := r.massSchedule()
	if round >= len(polls) && cursor == "" && b.Confirmed.IsZero() {
		return nil
	}
	p := bot.MassResult{Batch: b.ID, MsgID: b.MsgID, Sender: b.Sender, Round: round, Cursor: cursor}
	due := r.now
	switch {
	case cursor != "":
	case !b.Confirmed.IsZero():
		due = b.Confirmed.Add(massSettle)
	default:
		due = b.TaskAt.Add(polls[round])
		p.Remind = remind[polls[round]]
		p.Stop = round == len(polls)-1 // the deadline: stop a task still unsent
	}
	key := fmt.Sprintf("massres|%s|%d", b.ID, round)
	if cursor != "" {
		sum := sha256.Sum256([]byte(cursor))
		key += "|" + hex.EncodeToString(sum[:6])
	}
	return r.enqueue(bot.ActionMassResult, key, "", p, due, time.Time{})
}

// massPollResult applies one page of a poll: the task's status and the
// customers' statuses; at a round's last page it plans the next round or
// concludes.
func (r *run) massPollResult(d map[string]string) error {
	b, err := r.loadMassBatch(d[bot.DataBatch])
	if err != nil || b == nil || b.Done || b.MsgID == "" {
		return err
	}
	round, _ := strconv.Atoi(d[bot.DataRound])
	if d[bot.DataOutcome] != "" {
		// The poll itself failed for good: try the next round.
		r.log.Warn().Str("batch", b.ID).Str("error", d[bot.DataError]).Msg("mass-send results could not be read; polling again later")
		return r.massRoundDone(b, round, false)
	}
	if d[bot.DataReminded] == "1" {
		b.Reminded++
	}
	if d[bot.DataTaskStatus] == "2" && b.Confirmed.IsZero() {
		b.Confirmed = r.at
		if sec, err := strconv.ParseInt(d[bot.DataSendTime], 10, 64); err == nil && sec > 0 {
			b.Confirmed = time.Unix(sec, 0).UTC()
		}
	}
	settled := !b.Confirmed.IsZero() && !r.now.Before(b.Confirmed.Add(massSettle))
	for _, pair := range strings.Split(d[bot.DataSendResults], ",") {
		t, st, ok := strings.Cut(pair, ":")
		if !ok {
			continue
		}
		var m massMember
		found, err := r.getJSON(bucketMassMembers, massMemberKey(b.ID, t), &m)
		if err != nil {
			return err
		}
		if !found || m.Result == bot.MassCanceled {
			continue
		}
		var result, detail string
		switch st {
		case "1":
			result, detail = bot.MassDelivered, fmt.Sprintf("delivered: %s sent mass-send task %s", b.Sender, b.MsgID)
		case "2":
			result, detail = bot.MassNotFriend, fmt.Sprintf("not delivered: not %s's contact (WeCom status 2)", b.Sender)
		case "3":
			result, detail = bot.MassOverQuota, "not delivered: she already received this natural month's mass messages (WeCom status 3)"
		default:
			if !settled {
				continue
			}
			result, detail = bot.MassLeftOut, fmt.Sprintf("not sent: %s confirmed task %s without her", b.Sender, b.MsgID)
		}
		if err := r.setMassResult(b, t, &m, bot.ActionSent, result, detail); err != nil {
			return err
		}
	}
	if next := d[bot.DataNextCursor]; next != "" {
		if err := r.massPoll(b, round, next); err != nil {
			return err
		}
		return r.saveMassBatch(b)
	}
	return r.massRoundDone(b, round, d[bot.DataStopped] == "1")
}

// massRoundDone plans what follows a finished poll round (stopped: this
// round stopped the unsent task).
func (r *run) massRoundDone(b *massBatch, round int, stopped bool) error {
	polls, _ := r.massSchedule()
	b.Round = round
	switch {
	case !b.Confirmed.IsZero() && !r.now.Before(b.Confirmed.Add(massSettle)):
		b.Done = true
		if err := r.massConclude(b, bot.MassLeftOut, fmt.Sprintf("not sent: %s confirmed task %s without her", b.Sender, b.MsgID)); err != nil {
			return err
		}
	case !b.Confirmed.IsZero():
		if err := r.massPoll(b, round+1, ""); err != nil {
			return err
		}
	case round+1 < len(polls):
		if err := r.massPoll(b, round+1, ""); err != nil {
			return err
		}
	default:
		b.Done = true
		within := r.massConfirmWithin()
		r.log.Warn().Str("batch", b.ID).Str("sender", b.Sender).Dur("within", within).Msg("mass-send task not confirmed in time")
		short := strings.TrimSuffix(strings.TrimSuffix(within.String(), "0s"), "0m")
		detail := fmt.Sprintf("not delivered: %s did not confirm task %s within %s", b.Sender, b.MsgID, short)
		if stopped {
			detail += "; the task was stopped (cancel_groupmsg_send), so a late confirmation sends nothing"
		}
		if err := r.massConclude(b, bot.MassNotConfirmed, detail); err != nil {
			return err
		}
	}
	return r.saveMassBatch(b)
}

// massConclude gives every member still waiting the final result.
func (r *run) massConclude(b *massBatch, result, detail string) error {
	targets, members, err := r.massMembers(b.ID)
	if err != nil {
		return err
	}
	for i, t := range targets {
		if members[i].Result == bot.MassWaiting {
			if err := r.setMassResult(b, t, &members[i], bot.ActionSent, result, detail); err != nil {
				return err
			}
		}
	}
	return nil
}
