package engine

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// SOP sequences (客户SOP / 群SOP): when an SOP's trigger fires for a member
// (added, stage:<s>, tag:<t>, joined_group, silent), every step is queued
// at once with its due time (day N, HH:MM in the brand zone); a stop
// condition (purchase, lost, tag:<t>) seen later marks the enrollment
// stopped, and the outbox's guard cancels the steps still owed. A welcome
// script's follow-ups are the first SOP: started by the welcome, stopped
// when the member is lost.
//
// Bucket sop: "<member>|<sop>" → SOPEnrollment; sop_members:
// "<sop>|<member>" (its member list); sop_stats: "<sop>" → SOPStats.
var (
	bucketSOP        = bot.BucketSOP
	bucketSOPMembers = bot.BucketSOPMembers
	bucketSOPStats   = bot.BucketSOPStats
)

// SOPEnrollment is a member's run through an SOP.
type SOPEnrollment struct {
	SOP     string    `json:"sop"`
	Started time.Time `json:"started_at"`
	// Orders is the member's order count at the start: a purchase since
	// stops a sequence with stop: [purchase].
	Orders int `json:"orders"`
	// Until is when the last step is due.
	Until     time.Time `json:"until"`
	StoppedAt time.Time `json:"stopped_at,omitzero"`
	Stop      string    `json:"stop,omitempty"`
	// Steps is what became of each step's message (queued, batched, sent,
	// delivered, canceled, skipped:<reason>, group_post …), kept current
	// by its outcomes (outcome.go); nil for enrollments from before.
	Steps []string `json:"steps,omitempty"`
}

// SOPStats are an SOP's counts, kept as members enroll, stop and each
// step's message has its outcome (in outreach_counts: ReadSOPStats sums
// them); Paused is the operator's switch (the sop_stats record).
type SOPStats struct {
	Enrolled int `json:"enrolled"`
	// Stopped counts enrollments by the stop condition that ended them.
	Stopped map[string]int `json:"stopped"`
	// Steps[i] counts step i's messages by status.
	Steps []map[string]int `json:"steps"`
	// Paused: no member enrolls and steps falling due are canceled
	// (PausedAt when it was switched off).
	Paused   bool      `json:"paused"`
	PausedAt time.Time `json:"paused_at,omitzero"`
}

// StatusGroupPost is a group step's status: posted into her customer
// groups (one post per group, step and day, shared by the members who
// started it that day, so not followed per member).
const StatusGroupPost = "group_post"

// sopStep counts member's step i message of sop out of status from
// (unless "") and into to.
func (r *run) sopStep(sop, member string, i int, from, to string) error {
	if from != "" {
		if err := r.addCount("sop|"+sop, member, "step:"+strconv.Itoa(i)+":"+from, -1); err != nil {
			return err
		}
	}
	return r.addCount("sop|"+sop, member, "step:"+strconv.Itoa(i)+":"+to, 1)
}

// ReadSOPStats returns the SOP's switch and counts (zero when none yet).
func ReadSOPStats(tx bot.Tx, sop string) (*SOPStats, error) {
	st, err := readSOPSwitch(tx, sop)
	if err != nil {
		return nil, err
	}
	counts, err := ReadCounts(tx, "sop|"+sop)
	if err != nil {
		return nil, err
	}
	for name, n := range counts {
		switch kind, rest, _ := strings.Cut(name, ":"); kind {
		case "enrolled":
			st.Enrolled += int(n)
		case "stopped":
			st.Stopped[rest] += int(n)
		case "step":
			is, status, _ := strings.Cut(rest, ":")
			i, err := strconv.Atoi(is)
			if err != nil || n == 0 {
				continue
			}
			for len(st.Steps) <= i {
				st.Steps = append(st.Steps, map[string]int{})
			}
			if st.Steps[i] == nil {
				st.Steps[i] = map[string]int{}
			}
			st.Steps[i][status] += int(n)
		}
	}
	return st, nil
}

// readSOPSwitch reads the sop_stats record (paused).
func readSOPSwitch(tx bot.Tx, sop string) (*SOPStats, error) {
	st := &SOPStats{}
	if _, err := readJSON(tx, bucketSOPStats, sop, st); err != nil {
		return nil, err
	}
	if st.Stopped == nil {
		st.Stopped = map[string]int{}
	}
	if st.Steps == nil {
		st.Steps = []map[string]int{}
	}
	return st, nil
}

// SOPMembers calls fn with the enrollments of sop after member after, in
// member order; false stops.
func SOPMembers(tx bot.Tx, sop, after string, fn func(member string, e *SOPEnrollment) bool) error {
	prefix := sop + "|"
	for {
		// A chunk of member ids at a time (keys only), then their
		// enrollments: no read inside the scan, and a page of a large SOP
		// reads no more than it shows.
		var members []string
		if err := tx.Scan(bucketSOPMembers, prefix, func(k string, _ []byte) bool {
			if m := strings.TrimPrefix(k, prefix); m > after {
				members = append(members, m)
			}
			return len(members) < sopMembersChunk
		}); err != nil {
			return err
		}
		for _, m := range members {
			e, err := ReadSOPEnrollment(tx, m, sop)
			if err != nil {
				return err
			}
			if e != nil && !fn(m, e) {
				return nil
			}
		}
		if len(members) < sopMembersChunk {
			return nil
		}
		after = members[len(members)-1]
	}
}

// sopMembersChunk is how many member ids SOPMembers reads per scan.
var sopMembersChunk = 256

// sopSwitch is sop's operator switch (paused), read once per event.
func (r *run) sopSwitch(sop string) (*SOPStats, error) {
	if st, ok := r.sopStats[sop]; ok {
		return st, nil
	}
	st, err := readSOPSwitch(r.tx, sop)
	if err != nil {
		return nil, err
	}
	if r.sopStats == nil {
		r.sopStats = map[string]*SOPStats{}
	}
	r.sopStats[sop] = st
	return st, nil
}

// sopStepOutcome moves an SOP step's status (key sop|<sop>|<member>|<start>|<i>).
func (r *run) sopStepOutcome(key, status string) (bool, error) {
	parts := sopStepKey(key)
	if parts == nil {
		return false, nil // a group post (shared by its members), or not a step
	}
	i, err := strconv.Atoi(parts[4])
	if err != nil {
		return false, nil
	}
	e, err := ReadSOPEnrollment(r.tx, parts[2], parts[1])
	if err != nil || e == nil || strconv.FormatInt(e.Started.Unix(), 10) != parts[3] || i >= len(e.Steps) || e.Steps[i] == status {
		return false, err // an earlier run's step, or an enrollment from before statuses
	}
	if err := r.sopStep(e.SOP, parts[2], i, e.Steps[i], status); err != nil {
		return false, err
	}
	e.Steps[i] = status
	return true, r.putJSON(bucketSOP, parts[2]+"|"+e.SOP, e)
}

// sopStepKey splits a member's SOP step key sop|<sop>|<member>|<start>|<i>
// (also with |otherwise: the mass send that went instead of a kf step);
// nil for any other key (a group post's, another feature's).
func sopStepKey(key string) []string {
	parts := strings.Split(key, "|")
	if len(parts) == 6 && parts[5] == "otherwise" {
		parts = parts[:5]
	}
	if len(parts) != 5 || parts[0] != "sop" {
		return nil
	}
	return parts
}

// sopState pauses or resumes an SOP (operator event sop.state).
func (r *run) sopState() error {
	name := r.ev.Data[bot.DataSOP]
	if r.sc.SOP(name) == nil {
		r.log.Info().Str("sop", name).Msg("sop.state for an SOP not in the scenario; ignored")
		return nil
	}
	st, err := r.sopSwitch(name)
	if err != nil {
		return err
	}
	paused := r.ev.Data[bot.DataPaused] == "true"
	if st.Paused == paused {
		return nil
	}
	st.Paused, st.PausedAt = paused, time.Time{}
	if paused {
		st.PausedAt = r.at
	}
	r.log.Info().Str("sop", name).Bool("paused", paused).Msg("SOP switched by the operator")
	return r.putJSON(bucketSOPStats, name, st)
}

// ReadSOPEnrollment returns the member's enrollment in sop (nil if none).
func ReadSOPEnrollment(tx bot.Tx, member, sop string) (*SOPEnrollment, error) {
	var e SOPEnrollment
	if found, err := readJSON(tx, bucketSOP, member+"|"+sop, &e); err != nil || !found {
		return nil, err
	}
	return &e, nil
}

// sopAfter stops the sequences of touched members that hit a stop
// condition, then starts those whose trigger this event fired.
func (r *run) sopAfter() error {
	if len(r.sc.SOPs) == 0 {
		return nil
	}
	for _, ms := range r.order {
		if err := r.sopStops(ms); err != nil {
			return err
		}
		for _, sop := range r.sc.SOPs {
			chat, fired := r.sopFired(ms, sop.Trigger)
			if !fired || (sop.Segment != nil && !sop.Segment.Match(ms.m, r.at)) {
				continue
			}
			if st, err := r.sopSwitch(sop.Name); err != nil || st.Paused {
				if err != nil {
					return err
				}
				continue
			}
			if err := r.startSOP(ms, sop, chat); err != nil {
				return err
			}
		}
	}
	return nil
}

// sopFired reports whether the event fired trigger t for ms, and the
// customer group it concerns (joined_group).
func (r *run) sopFired(ms *memberState, t scenarios.Trigger) (chat string, fired bool) {
	ev, m := r.ev, ms.m
	switch t.Kind {
	case scenarios.TriggerAdded:
		return "", (ev.Type == bot.EventContactAdd || ev.Type == bot.EventContactAddHalf) && ev.ExternalUserID == m.ExternalUserID && len(ms.fullSync) > 0
	case scenarios.TriggerStage:
		for _, ch := range m.StageHistory {
			if ch.EventSeq == ev.Seq && ch.At.Equal(r.at) && ch.To == t.Stage {
				return "", true
			}
		}
	case scenarios.TriggerTag:
		return "", containsString(ms.added, t.Tag)
	case scenarios.TriggerSilent:
		// The silent rule (silent: days, activity.go) marked her silent in this event.
		return "", ms.wentSilent
	case scenarios.TriggerJoinedGroup:
		if ev.Type == bot.EventGroupUpdate && ev.UpdateDetail == bot.GroupAddMember && containsString(ev.MemChangeList, m.ExternalUserID) {
			return ev.ChatID, true
		}
	}
	return "", false
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// sopStops marks stopped the member's running sequences whose stop
// condition now holds.
func (r *run) sopStops(ms *memberState) error {
	id := ms.m.ExternalUserID
	var running []SOPEnrollment
	var bad error
	err := r.tx.Scan(bucketSOP, id+"|", func(_ string, v []byte) bool {
		var e SOPEnrollment
		if bad = json.Unmarshal(v, &e); bad != nil {
			return false
		}
		if e.StoppedAt.IsZero() && !r.at.After(e.Until) {
			running = append(running, e)
		}
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return fmt.Errorf("read SOP enrollments of %s: %w", id, err)
	}
	for _, e := range running {
		sop := r.sc.SOP(e.SOP)
		if sop == nil {
			continue
		}
		reason := sop.Stops(ms.m, e.Started, ms.m.Orders-e.Orders)
		if reason == "" {
			continue
		}
		e.StoppedAt, e.Stop = r.at, reason
		if err := r.putJSON(bucketSOP, id+"|"+e.SOP, e); err != nil {
			return err
		}
		if err := r.addCount("sop|"+e.SOP, id, "stopped:"+reason, 1); err != nil {
			return err
		}
		r.log.Info().Str("sop", e.SOP).Str("stop", reason).Msg("SOP stopped: its remaining steps are cancelled")
	}
	return nil
}

// startSOP enrolls the member in sop (unless a run of it is still going)
// and queues its steps.
func (r *run) startSOP(ms *memberState, sop *scenarios.SOP, chat string) error {
	return r.startSOPAt(ms, sop, chat, r.at)
}

// startSOPAt is startSOP with the trigger's time (a date trigger: the day's start).
func (r *run) startSOPAt(ms *memberState, sop *scenarios.SOP, chat string, at time.Time) error {
	id := ms.m.ExternalUserID
	prev, err := ReadSOPEnrollment(r.tx, id, sop.Name)
	if err != nil {
		return err
	}
	if prev != nil && prev.StoppedAt.IsZero() && !at.After(prev.Until) {
		return nil // still in it (or a replay of the event that started it)
	}
	e := SOPEnrollment{SOP: sop.Name, Started: at, Orders: ms.m.Orders, Until: at}
	staff := ms.m.PrimaryStaff()
	if sop.Segment != nil {
		staff = sop.Segment.Sender(ms.m)
	}
	data := r.sc.DataFor(ms.m)
	if err := r.addCount("sop|"+sop.Name, id, "enrolled", 1); err != nil {
		return err
	}
	for i, st := range sop.Steps {
		due := st.Due(at, r.sc.Brand.Zone)
		if due.After(e.Until) {
			e.Until = due
		}
		key := "sop|" + sop.Name + "|" + id + "|" + strconv.FormatInt(at.Unix(), 10) + "|" + strconv.Itoa(i)
		status, err := r.sendStep(ms, sop, i, st, key, bot.PurposeOutreach, staff, chat, due, data)
		if err != nil {
			return err
		}
		e.Steps = append(e.Steps, status)
		if err := r.sopStep(sop.Name, id, i, "", status); err != nil {
			return err
		}
	}
	r.log.Info().Str("sop", sop.Name).Int("steps", len(sop.Steps)).Msg("SOP started")
	if err := r.tx.Put(bucketSOPMembers, sop.Name+"|"+id, present); err != nil {
		return err
	}
	return r.putJSON(bucketSOP, id+"|"+sop.Name, e)
}

// sendStep queues step i of sop for ms, due then, as the step's via says:
// a staff task to staff, a mass send from staff, a 微信客服 message, or a
// post into the member's customer groups (chat when the trigger names one).
// It returns the message's status as queued (queued, batched,
// skipped:<reason>, group_post).
func (r *run) sendStep(ms *memberState, sop *scenarios.SOP, i int, st *scenarios.SOPStep, key string, purpose bot.ActionPurpose,
	staff, chat string, due time.Time, data scenarios.TemplateData) (string, error) {
	queued := func(a *bot.Action, _ string, err error) (string, error) {
		if err != nil {
			return "", err
		}
		return targetStatus(BroadcastTarget{}, a), nil
	}
	const noStaff = "skipped:" + SkipNotFriend
	m := ms.m
	if purpose == bot.PurposeOutreach && (st.Via == scenarios.ViaMassSend || st.Via == scenarios.ViaGroup) {
		// One text for every customer of a task (see broadcastTo): the
		// members due together batch into one task per staff member.
		data = r.sc.DataFor(nil)
	}
	text := r.render(st.Text, data)
	switch st.Via {
	case scenarios.ViaStaffTask:
		if staff == "" {
			r.log.Info().Str("sop", sop.Name).Int("step", i).Msg("SOP staff task skipped: the member follows no staff member")
			return noStaff, nil
		}
		msg := bot.StaffMessage{ToUsers: []string{staff}, Text: r.staffTaskText(sop, st, m, data, text)}
		return queued(r.enqueueAs(purpose, false, bot.ActionStaffMessage, key, m.ExternalUserID, msg, due, time.Time{}))
	case scenarios.ViaKf:
		msg := bot.KfMessage{OpenKfID: st.OpenKfID, ExternalUserID: m.ExternalUserID, Text: text, MsgID: kfMsgID(key)}
		if st.Otherwise == scenarios.ViaMassSend {
			s, found, err := ReadKfSession(r.tx, st.OpenKfID, m.ExternalUserID)
			if err != nil {
				return "", err
			}
			if reason := kfRefusal(s, found, due); reason != "" {
				// Rerouted: the kf message is recorded skipped (with its
				// reason), the mass-send task goes instead.
				r.log.Info().Str("member", m.ExternalUserID).Str("reason", reason).Msg("kf follow-up rerouted to a mass-send task (otherwise: mass_send)")
				if err := r.enqueueProactive(purpose, bot.ActionKfMessage, key, m.ExternalUserID, msg, due, time.Time{}); err != nil {
					return "", err
				}
				mass := bot.MassSend{ChatType: "single", Sender: staff, ExternalUserIDs: []string{m.ExternalUserID}, Text: text}
				return queued(r.enqueueOwed(purpose, bot.ActionMassSend, key+"|otherwise", m.ExternalUserID, mass, due, time.Time{}))
			}
		}
		return queued(r.enqueueOwed(purpose, bot.ActionKfMessage, key, m.ExternalUserID, msg, due, time.Time{}))
	case scenarios.ViaGroup:
		chats := m.Groups
		if chat != "" {
			chats = []string{chat}
		}
		day := due.In(r.sc.Brand.Zone).Format("2006-01-02")
		status := "skipped:no_group"
		for _, c := range chats {
			g, err := r.loadGroup(c)
			if err != nil {
				return "", err
			}
			if g.Owner == "" || !g.DismissedAt.IsZero() {
				continue
			}
			// One post per group, step and day however many members started it.
			p := bot.MassSend{ChatType: "group", Sender: g.Owner, ChatIDs: []string{c}, Text: text,
				Attachments: r.renderAttachments(st.Attachments, data)}
			gkey := "sop|" + sop.Name + "|group|" + c + "|" + strconv.Itoa(i) + "|" + day
			if err := r.enqueuePurpose(purpose, bot.ActionMassSend, gkey, "", p, due, time.Time{}); err != nil {
				return "", err
			}
			status = StatusGroupPost
		}
		return status, nil
	default:
		if staff == "" {
			r.log.Info().Str("sop", sop.Name).Int("step", i).Msg("SOP mass send skipped: the member follows no staff member")
			return noStaff, nil
		}
		msg := bot.MassSend{ChatType: "single", Sender: staff, ExternalUserIDs: []string{m.ExternalUserID},
			Text: text, Attachments: r.renderAttachments(st.Attachments, data)}
		return queued(r.enqueueOwed(purpose, bot.ActionMassSend, key, m.ExternalUserID, msg, due, time.Time{}))
	}
}

// staffTaskText is a staff task's app message: what to send to whom, and
// a link to the member in the console.
func (r *run) staffTaskText(sop *scenarios.SOP, st *scenarios.SOPStep, m *bot.Member, data scenarios.TemplateData, text string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "【SOP %s · 第%d天】请发给客户 %s：\n%s", sop.Name, st.Day, data.Name, text)
	if r.e.baseURL != "" {
		fmt.Fprintf(&b, "\n客户详情：%s/#member/%s", r.e.baseURL, url.PathEscape(m.ExternalUserID))
	}
	return b.String()
}

// welcomeFollowUps queues the welcome script's follow-up sequence (its
// first SOP) for a member the welcome just went to; keys and purpose are
// the follow-ups' own, so actions queued before SOPs existed stay valid.
// A step due in a later slot is planned instead (followups.go): its action
// is queued when the slot begins.
func (r *run) welcomeFollowUps(ms *memberState, script *scenarios.Script, data scenarios.TemplateData) error {
	sop := script.FollowUps
	if sop == nil {
		return nil
	}
	for i, st := range sop.Steps {
		key := fmt.Sprintf("followup|%s|%d", r.ref, i)
		due := st.Due(r.at, r.sc.Brand.Zone)
		if planned, err := r.planFollowUp(key, plannedFollowUp{Member: ms.m.ExternalUserID, Script: script.Name, Step: i, Staff: r.ev.StaffID, Due: due}); planned || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if _, err := r.sendStep(ms, sop, i, st, key, bot.PurposeFollowUp, r.ev.StaffID, "", due, data); err != nil {
			return err
		}
	}
	return nil
}

// sopStopped is the outbox guard's check for an SOP step (key
// "sop|<sop>|<member>|<start>|<i>"): why it must not go out, or "".
func sopStopped(tx bot.Tx, a *bot.Action) (string, error) {
	parts := sopStepKey(a.Key)
	if parts == nil {
		return "", nil
	}
	e, err := ReadSOPEnrollment(tx, parts[2], parts[1])
	if err != nil || e == nil {
		return "", err
	}
	if strconv.FormatInt(e.Started.Unix(), 10) != parts[3] {
		return "", nil
	}
	if !e.StoppedAt.IsZero() {
		return "SOP " + e.SOP + " stopped: " + e.Stop, nil
	}
	st, err := readSOPSwitch(tx, e.SOP)
	if err != nil {
		return "", err
	}
	if st.Paused {
		return "SOP " + e.SOP + " paused", nil
	}
	return "", nil
}

// outreachKfGuard is the full 微信客服 budget check for an outreach kf
// message due later than it was queued (enqueueOwed leaves it to here).
func outreachKfGuard(tx bot.Tx, a *bot.Action) (string, error) {
	var p bot.KfMessage
	if err := a.Decode(&p); err != nil {
		return "", nil
	}
	s, found, err := ReadKfSession(tx, p.OpenKfID, p.ExternalUserID)
	if err != nil {
		return "", err
	}
	return kfRefusal(s, found, a.DueAt), nil
}

// sourceSOP marks the run of a date-triggered SOP's daily scan (it shares
// the broadcasts' paged fan-out and records; the broadcast list leaves it out).
const sourceSOP = "sop"

// sopDateEvent starts the day's scan of a date-triggered SOP (date:birthday):
// every member whose date falls on the day is enrolled, one page of members
// per transaction.
func (r *run) sopDateEvent() error {
	name, day := r.ev.Data[bot.DataSOP], r.ev.Data[bot.DataDay]
	sop := r.sc.SOP(name)
	if sop == nil || sop.Trigger.Kind != scenarios.TriggerDate {
		r.log.Info().Str("sop", name).Msg("date-triggered SOP no longer in the scenario; skipped")
		return nil
	}
	id := "s" + shortHash(name+"|"+day)
	if prev, err := ReadBroadcastRun(r.tx, id); err != nil || prev != nil {
		return err
	}
	run := &BroadcastRun{ID: id, Name: name, Source: sourceSOP, Via: sop.Trigger.Kind + ":" + sop.Trigger.Field,
		Occurrence: r.at, Status: BroadcastRunning, CreatedAt: r.at, StartedAt: r.at, Cursor: ""}
	return r.sopDatePage(run)
}

// sopDatePage enrolls the page's members whose date is the run's day.
func (r *run) sopDatePage(run *BroadcastRun) error {
	sop := r.sc.SOP(run.Name)
	if sop == nil {
		run.Status, run.FinishedAt, run.Error = BroadcastCanceled, r.at, "no longer in the scenario in force"
		return r.putJSON(bucketBroadcasts, "run|"+run.ID, run)
	}
	day := run.Occurrence.In(r.sc.Brand.Zone)
	return r.memberPage(run, sop.Segment, func(m *bot.Member) error {
		if m.Lost || !m.BirthdayOn(day) || (sop.Segment != nil && !sop.Segment.Match(m, r.at)) {
			return nil
		}
		run.Targeted++
		// Not tracked as touched by the event: the scan changes nothing of hers
		// but her enrollment.
		return r.startSOPAt(&memberState{m: m, fullSync: map[string]bool{}}, sop, "", run.Occurrence)
	})
}
