package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/scenarios"
)

// Broadcasts (群发). A broadcast's occurrence arrives as broadcast.run (the
// scheduler, once per (broadcast, occurrence) by its dedupe key; an API
// broadcast's own time through an outreach_page action due then). The run
// is fanned out one page of members per transaction: each page queues a
// per-member action (mass_send, which the outbox batches into one task per
// staff member; or a 微信客服 message), records each target, and queues an
// outreach_page action for the next page, whose result event brings the
// cursor back. A crash resumes from the committed cursor; action keys make
// every member's message once.
//
// Buckets: broadcasts ("run|<id>" → BroadcastRun, "def|<id>" → an API
// broadcast's request), broadcast_members ("<run>|<member>" →
// BroadcastTarget), broadcast_recv ("<member>|<run>" → when queued, for
// orders within 7 days), broadcast_orders ("<run>|<order>" → BroadcastOrder).
var (
	bucketBroadcasts       = bot.BucketBroadcasts
	bucketBroadcastMembers = bot.BucketBroadcastMembers
	bucketBroadcastRecv    = bot.BucketBroadcastRecv
	bucketBroadcastOrders  = bot.BucketBroadcastOrders
)

// BroadcastPage is how many members one fan-out transaction reads.
var BroadcastPage = 1000

// BroadcastIndexPage is how many of the member index's candidates one
// fan-out transaction reads: nearly all of them are targets, each an
// action and a target record, so fewer than BroadcastPage keep the
// transaction (the store's one writer, which callbacks' appends wait for)
// as short.
var BroadcastIndexPage = 250

// fanOutByIndex lets a fan-out walk its segment's members through the
// member index (off: every member, as before; the benchmark compares).
var fanOutByIndex = true

// OrderWindow is how long after a broadcast a recipient's order counts for it.
const OrderWindow = 7 * 24 * time.Hour

// Broadcast run statuses.
const (
	BroadcastScheduled = "scheduled"
	BroadcastRunning   = "running"
	BroadcastDone      = "done"
	BroadcastCanceled  = "canceled"
)

// Skip reasons of broadcast targets (the report's categories).
const (
	SkipQuota        = "quota"
	SkipNotFriend    = "not_a_friend"
	SkipOutsideKf    = "outside_window"
	SkipContactCap   = "contact_cap"
	SkipOtherRefusal = "refused"
)

// BroadcastRun is one run of a broadcast (an occurrence), as the engine
// fans it out.
type BroadcastRun struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Source     string    `json:"source"` // yaml or api
	Via        string    `json:"via"`
	Segment    string    `json:"segment,omitempty"`
	Occurrence time.Time `json:"occurrence"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Error      string    `json:"error,omitempty"`
	// Cursor is the last member a committed page read.
	Cursor string `json:"cursor,omitempty"`
	Pages  int    `json:"pages"`
	// Targeted members (or groups, via group) matched; Queued got an
	// action; Skipped by reason (quota, not_a_friend, outside_window, …).
	Targeted int            `json:"targeted"`
	Queued   int            `json:"queued"`
	Skipped  map[string]int `json:"skipped,omitempty"`
	// PerStaff counts targets per sending staff member (group owner).
	PerStaff map[string]int `json:"per_staff,omitempty"`
	// Counted: the run keeps its report's counts below, moved by every
	// outcome as it happens (outcome.go), so a report reads no actions;
	// runs stored before these counts existed report from their targets'
	// actions instead.
	Counted bool `json:"counted,omitempty"`
	// Tasks are the mass-send tasks created (one per staff member and
	// batch window once batched); Confirmed counts customers whose task the
	// staff member sent; Delivered those WeCom says received it.
	Tasks     int `json:"tasks"`
	Confirmed int `json:"confirmed"`
	Delivered int `json:"delivered"`
	// Results counts customers by status (queued, waiting_confirm,
	// delivered, over_quota, not_friend, not_confirmed, canceled,
	// skipped:<reason>, …).
	Results map[string]int `json:"results"`
	// Orders and GMVFen: orders recipients paid within 7 days.
	Orders int   `json:"orders"`
	GMVFen int64 `json:"gmv_fen"`
}

// BroadcastTarget is one member (or group) a run reached for.
type BroadcastTarget struct {
	Member string `json:"member,omitempty"`
	Chat   string `json:"chat,omitempty"`
	Staff  string `json:"staff,omitempty"`
	// ActionID is the queued action (0 when skipped before queueing);
	// Batch the mass-send batch (one task) it joined.
	ActionID uint64 `json:"action_id,omitempty"`
	Batch    string `json:"batch,omitempty"`
	Skip     string `json:"skip,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Status is what became of her message (targetStatus, kept current by
	// its outcomes in a counted run) and Detail why, when it didn't reach her.
	Status string `json:"status,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Orders and GMVFen are what she paid within OrderWindow of it.
	Orders int   `json:"orders,omitempty"`
	GMVFen int64 `json:"gmv_fen,omitempty"`
}

// BroadcastOrder is an order a recipient paid within OrderWindow.
type BroadcastOrder struct {
	Member    string    `json:"member"`
	OrderID   string    `json:"order_id"`
	AmountFen int64     `json:"amount_fen"`
	At        time.Time `json:"at"`
}

// BroadcastRunID is the run id of a YAML broadcast's occurrence.
func BroadcastRunID(name string, occurrence time.Time) string {
	return "b" + shortHash(name+"|"+strconv.FormatInt(occurrence.Unix(), 10))
}

// ReadBroadcastRun returns the run (nil if unknown).
func ReadBroadcastRun(tx bot.Tx, id string) (*BroadcastRun, error) {
	var run BroadcastRun
	if found, err := readJSON(tx, bucketBroadcasts, "run|"+id, &run); err != nil || !found {
		return nil, err
	}
	return &run, nil
}

// BroadcastRuns lists every run, newest occurrence first.
func BroadcastRuns(tx bot.Tx) ([]BroadcastRun, error) {
	var out []BroadcastRun
	var bad error
	err := tx.Scan(bucketBroadcasts, "run|", func(k string, v []byte) bool {
		var run BroadcastRun
		if bad = json.Unmarshal(v, &run); bad != nil {
			bad = fmt.Errorf("decode broadcast %s: %w", k, bad)
			return false
		}
		out = append(out, run)
		return true
	})
	if err == nil {
		err = bad
	}
	out = slices.DeleteFunc(out, func(r BroadcastRun) bool { return r.Source == sourceSOP })
	for i := range out {
		if out[i].Counted && err == nil {
			var c map[string]int64
			if c, err = ReadCounts(tx, "bc|"+out[i].ID); err == nil {
				out[i].addCounts(c)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Occurrence.After(out[j].Occurrence) })
	return out, err
}

// BroadcastTargets calls fn for each target of run id after member after,
// in member order; returning false stops.
func BroadcastTargets(tx bot.Tx, id, after string, fn func(BroadcastTarget) bool) error {
	var bad error
	err := tx.Scan(bucketBroadcastMembers, id+"|", func(k string, v []byte) bool {
		if after != "" && strings.TrimPrefix(k, id+"|") <= after {
			return true
		}
		var t BroadcastTarget
		if bad = json.Unmarshal(v, &t); bad != nil {
			return false
		}
		return fn(t)
	})
	if err == nil {
		err = bad
	}
	return err
}

// BroadcastOrders lists the orders recipients of run id paid within OrderWindow.
func BroadcastOrders(tx bot.Tx, id string) ([]BroadcastOrder, error) {
	var out []BroadcastOrder
	var bad error
	err := tx.Scan(bucketBroadcastOrders, id+"|", func(_ string, v []byte) bool {
		var o BroadcastOrder
		if bad = json.Unmarshal(v, &o); bad != nil {
			return false
		}
		out = append(out, o)
		return true
	})
	if err == nil {
		err = bad
	}
	return out, err
}

// BroadcastCreateEvent is the operator event of an API broadcast.
func BroadcastCreateEvent(id string, req scenarios.BroadcastRequest, at time.Time) (*bot.Event, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return &bot.Event{Type: bot.EventBroadcastCreate, Source: bot.SourceOperator, DedupeKey: "broadcast.create|" + id,
		At: at, ReceivedAt: at, Data: map[string]string{bot.DataBroadcastID: id, bot.DataBroadcastSpec: string(raw)}}, nil
}

// broadcastCreate stores an API broadcast and starts it, now or (through
// an outreach_page action due then) at its time.
func (r *run) broadcastCreate() error {
	id := r.ev.Data[bot.DataBroadcastID]
	var req scenarios.BroadcastRequest
	if err := json.Unmarshal([]byte(r.ev.Data[bot.DataBroadcastSpec]), &req); err != nil || id == "" {
		r.log.Warn().Msg("broadcast.create without id or spec; ignored")
		return nil
	}
	if prev, err := ReadBroadcastRun(r.tx, id); err != nil || prev != nil {
		return err
	}
	b, err := r.sc.CompileBroadcast(req, r.at.Add(-time.Minute))
	if err != nil {
		r.log.Warn().Err(err).Str("broadcast", id).Msg("API broadcast no longer valid for the scenario in force; not sent")
		return nil
	}
	if err := r.putJSON(bucketBroadcasts, "def|"+id, req); err != nil {
		return err
	}
	run := &BroadcastRun{ID: id, Name: req.Name, Source: "api", Via: b.Via, Segment: req.Segment, Occurrence: r.at,
		Status: BroadcastScheduled, CreatedAt: r.at, Counted: true}
	if !b.At.IsZero() {
		run.Occurrence = b.At
	}
	if run.Occurrence.After(r.at) {
		if err := r.putJSON(bucketBroadcasts, "run|"+id, run); err != nil {
			return err
		}
		return r.outreachTimer("bcstart|"+id, id, startCursor, run.Occurrence)
	}
	return r.broadcastStart(run, b)
}

// timerOutreachPage names the timer (bot.Timer) that brings a run's next
// page (or a scheduled API broadcast's start) back to the engine.
const timerOutreachPage = "outreach_page"

// outreachTimer queues the timer for run's page at cursor, due then (zero: now).
func (r *run) outreachTimer(key, run, cursor string, due time.Time) error {
	t := bot.Timer{Data: map[string]string{dataTimer: timerOutreachPage, bot.DataRun: run, bot.DataCursor: cursor}}
	return r.enqueue(bot.ActionTimer, key, "", t, due, time.Time{})
}

// startCursor marks the page action that starts a scheduled run.
const startCursor = "\x00start"

// broadcastRunEvent starts a YAML broadcast's occurrence.
func (r *run) broadcastRunEvent() error {
	name := r.ev.Data[bot.DataBroadcast]
	occ, err := strconv.ParseInt(r.ev.Data[bot.DataOccurrence], 10, 64)
	if name == "" || err != nil {
		r.log.Warn().Msg("broadcast.run without broadcast or occurrence; ignored")
		return nil
	}
	occurrence := time.Unix(occ, 0)
	id := BroadcastRunID(name, occurrence)
	if prev, err := ReadBroadcastRun(r.tx, id); err != nil || prev != nil {
		return err // once per occurrence, even past the log's dedupe TTL
	}
	b := r.sc.Broadcast(name)
	if b == nil {
		r.log.Info().Str("broadcast", name).Msg("broadcast no longer in the scenario (reloaded); not sent")
		return nil
	}
	run := &BroadcastRun{ID: id, Name: name, Source: "yaml", Via: b.Via, Occurrence: occurrence, CreatedAt: r.at, Counted: true}
	if b.Segment != nil {
		run.Segment = b.Segment.Name
	}
	return r.broadcastStart(run, b)
}

// broadcastStart runs the first page.
func (r *run) broadcastStart(run *BroadcastRun, b *scenarios.Broadcast) error {
	run.Status, run.StartedAt = BroadcastRunning, r.at
	r.log.Info().Str("broadcast", run.Name).Str("run", run.ID).Str("via", run.Via).Msg("broadcast started")
	if b.Via == scenarios.ViaGroup {
		return r.broadcastGroups(run, b)
	}
	return r.broadcastPage(run, b)
}

// broadcastFor is the compiled broadcast of a run: the scenario's (YAML),
// or its stored request compiled against the scenario in force (API).
func (r *run) broadcastFor(run *BroadcastRun) (*scenarios.Broadcast, error) {
	if run.Source != "api" {
		return r.sc.Broadcast(run.Name), nil
	}
	var req scenarios.BroadcastRequest
	if found, err := r.getJSON(bucketBroadcasts, "def|"+run.ID, &req); err != nil || !found {
		return nil, err
	}
	req.At = "" // its time came
	b, err := r.sc.CompileBroadcast(req, r.at)
	if err != nil {
		r.log.Warn().Err(err).Str("run", run.ID).Msg("API broadcast no longer valid for the scenario in force")
		return nil, nil
	}
	return b, nil
}

// outreachPageResult continues a run at the cursor the page action carried.
func (r *run) outreachPageResult(d map[string]string) error {
	run, err := ReadBroadcastRun(r.tx, d[bot.DataRun])
	if err != nil || run == nil {
		return err
	}
	if run.Source == sourceSOP {
		if run.Status != BroadcastRunning || d[bot.DataCursor] != run.Cursor {
			return nil // a replayed page
		}
		return r.sopDatePage(run)
	}
	b, err := r.broadcastFor(run)
	if err != nil {
		return err
	}
	start := d[bot.DataCursor] == startCursor
	switch {
	case start && run.Status != BroadcastScheduled, !start && (run.Status != BroadcastRunning || d[bot.DataCursor] != run.Cursor):
		return nil // a replayed page
	case b == nil:
		run.Status, run.FinishedAt, run.Error = BroadcastCanceled, r.at, "no longer in the scenario in force"
		return r.putJSON(bucketBroadcasts, "run|"+run.ID, run)
	case start:
		return r.broadcastStart(run, b)
	}
	return r.broadcastPage(run, b)
}

// broadcastPage reaches the next BroadcastPage members after the run's
// cursor, then queues the next page or finishes the run.
func (r *run) broadcastPage(run *BroadcastRun, b *scenarios.Broadcast) error {
	return r.memberPage(run, b.Segment, func(m *bot.Member) error { return r.broadcastTo(run, b, m) })
}

// memberPage calls each for the next BroadcastPage members after the run's
// cursor (one transaction), then queues the next page or finishes the run:
// the fan-out of broadcasts and of date-triggered SOPs. With a segment
// whose rules the member index holds (stages, channels, tags, staff,
// levels, lost) the pages walk only the members of its rarest one
// (bot.RarestUnion: the segment's own count reads the same),
// BroadcastIndexPage at a time, in the same external_userid order; each
// still decides on every member it is given.
func (r *run) memberPage(run *BroadcastRun, seg *scenarios.Segment, each func(*bot.Member) error) error {
	var page []*bot.Member
	var terms []string
	none := false
	if seg != nil && fanOutByIndex {
		var err error
		if terms, none, err = bot.RarestUnion(r.tx, seg.IndexTerms()); err != nil {
			return fmt.Errorf("broadcast %s: read the member index: %w", run.ID, err)
		}
	}
	more := false
	switch {
	case none:
	case terms != nil:
		ids, idsMore, err := bot.UnionMembers(r.tx, terms, run.Cursor, BroadcastIndexPage)
		if err != nil {
			return fmt.Errorf("broadcast %s: read the member index: %w", run.ID, err)
		}
		for _, id := range ids {
			m, err := r.tx.Member(id)
			if errors.Is(err, bot.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("broadcast %s: read member %s: %w", run.ID, id, err)
			}
			page = append(page, m)
		}
		if more = idsMore; len(ids) > 0 {
			run.Cursor = ids[len(ids)-1]
		}
	default:
		if err := r.tx.Members(run.Cursor, func(m *bot.Member) bool {
			page = append(page, m)
			return len(page) < BroadcastPage
		}); err != nil {
			return fmt.Errorf("broadcast %s: read members: %w", run.ID, err)
		}
		if more = len(page) == BroadcastPage; len(page) > 0 {
			run.Cursor = page[len(page)-1].ExternalUserID
		}
	}
	for _, m := range page {
		if err := each(m); err != nil {
			return err
		}
	}
	run.Pages++
	if !more {
		run.Status, run.FinishedAt = BroadcastDone, r.at
		r.log.Info().Str("run", run.ID).Int("targeted", run.Targeted).Int("queued", run.Queued).Msg("broadcast fanned out")
	} else if err := r.outreachTimer("bcpage|"+run.ID+"|"+run.Cursor, run.ID, run.Cursor, time.Time{}); err != nil {
		return err
	}
	return r.putJSON(bucketBroadcasts, "run|"+run.ID, run)
}

// targetOf decides whether m is a target of b at now and who reaches her:
// the staff member (mass send) or the 微信客服 account (kf), or why she
// can't be reached (Skip). The fan-out and the API's dry run share it.
func targetOf(tx bot.Tx, b *scenarios.Broadcast, m *bot.Member, now time.Time) (t BroadcastTarget, ok bool, err error) {
	if b.Segment == nil || !b.Segment.Match(m, now) {
		return t, false, nil
	}
	t.Member = m.ExternalUserID
	if b.Via != scenarios.ViaKf {
		if t.Staff = b.Segment.Sender(m); t.Staff == "" {
			t.Skip, t.Reason = SkipNotFriend, "she follows none of the segment's staff"
		}
		return t, true, nil
	}
	open := b.OpenKfID
	if open == "" {
		k, err := checkin.LoadKf(tx, m.ExternalUserID)
		if err != nil {
			return t, false, err
		}
		if k != nil {
			open = k.OpenKfID
		}
	}
	if open == "" {
		t.Skip, t.Reason = SkipOutsideKf, "she never wrote to 微信客服"
		return t, true, nil
	}
	t.Staff = "kf:" + open
	s, found, err := ReadKfSession(tx, open, m.ExternalUserID)
	if err != nil {
		return t, false, err
	}
	if reason := kfRefusal(s, found, now); reason != "" {
		t.Skip, t.Reason = SkipOutsideKf, reason
	}
	return t, true, nil
}

// broadcastTo queues the broadcast for m if she is in its segment.
func (r *run) broadcastTo(run *BroadcastRun, b *scenarios.Broadcast, m *bot.Member) error {
	t, ok, err := targetOf(r.tx, b, m, r.at)
	if err != nil || !ok {
		return err
	}
	run.Targeted++
	if t.Skip == "" {
		// A mass-send task carries one text for all its customers (WeCom
		// can't personalise it): rendered for no one in particular, so the
		// outbox batches the members into one task per staff member. 微信客服
		// messages are her own.
		data := r.sc.DataFor(nil)
		if b.Via == scenarios.ViaKf {
			data = r.sc.DataFor(m)
		}
		text := r.render(b.Text, data)
		key := "bc|" + run.ID + "|" + m.ExternalUserID
		var a *bot.Action
		var batch string
		if b.Via == scenarios.ViaKf {
			msg := bot.KfMessage{OpenKfID: strings.TrimPrefix(t.Staff, "kf:"), ExternalUserID: m.ExternalUserID, Text: text, MsgID: kfMsgID(key)}
			a, batch, err = r.enqueueOwed(bot.PurposeOutreach, bot.ActionKfMessage, key, m.ExternalUserID, msg, time.Time{}, time.Time{})
		} else {
			msg := bot.MassSend{ChatType: "single", Sender: t.Staff, ExternalUserIDs: []string{m.ExternalUserID},
				Text: text, Attachments: r.renderAttachments(b.Attachments, data)}
			a, batch, err = r.enqueueOwed(bot.PurposeOutreach, bot.ActionMassSend, key, m.ExternalUserID, msg, time.Time{}, time.Time{})
		}
		if err != nil {
			return err
		}
		t.queued(a, batch)
	}
	return r.recordTarget(run, t, m.ExternalUserID)
}

// BroadcastPreview is a dry run: who a broadcast would reach now.
type BroadcastPreview struct {
	Targeted int `json:"targeted"`
	// PerStaff counts the reachable targets per sending staff member
	// ("kf:<open_kfid>" for via kf, the owner for via group).
	PerStaff map[string]int `json:"per_staff"`
	// Skipped counts targets that can't be reached, by reason.
	Skipped map[string]int `json:"skipped"`
	// Sample lists up to 20 reachable targets.
	Sample []BroadcastTarget `json:"sample"`
}

// NewBroadcastPreview starts an empty preview.
func NewBroadcastPreview() *BroadcastPreview {
	return &BroadcastPreview{PerStaff: map[string]int{}, Skipped: map[string]int{}, Sample: []BroadcastTarget{}}
}

func (p *BroadcastPreview) note(t BroadcastTarget) {
	p.Targeted++
	if t.Skip != "" {
		p.Skipped[t.Skip]++
		return
	}
	p.PerStaff[t.Staff]++
	if len(p.Sample) < 20 {
		p.Sample = append(p.Sample, t)
	}
}

// PreviewMembers adds members (already in b's segment, read in pages by
// bot/segments) to a dry run: the same decision as the fan-out (targetOf),
// nothing sent.
func PreviewMembers(tx bot.Tx, b *scenarios.Broadcast, members []*bot.Member, now time.Time, p *BroadcastPreview) error {
	for _, m := range members {
		t, ok, err := targetOf(tx, b, m, now)
		if err != nil {
			return err
		}
		if ok {
			p.note(t)
		}
	}
	return nil
}

// PreviewGroups adds a via-group broadcast's groups to a dry run.
func PreviewGroups(tx bot.Tx, b *scenarios.Broadcast, p *BroadcastPreview) error {
	groups, err := pickedGroups(tx, b.Groups)
	for _, g := range groups {
		t := BroadcastTarget{Chat: g.ChatID, Staff: g.Owner}
		if g.Owner == "" {
			t.Skip = SkipOtherRefusal
		}
		p.note(t)
	}
	return err
}

// queued notes the target's action, and why it was skipped when WeCom
// would refuse it (quota, the kf window, the contact cap).
func (t *BroadcastTarget) queued(a *bot.Action, batch string) {
	t.ActionID, t.Batch = a.ID, batch
	if a.Status == bot.ActionSkipped {
		t.Reason = strings.TrimPrefix(a.LastError, "skipped: ")
		t.Skip = skipCategory(t.Reason)
	}
	t.Status = targetStatus(*t, a)
}

// recordTarget stores a target and counts it.
func (r *run) recordTarget(run *BroadcastRun, t BroadcastTarget, key string) error {
	if run.Counted {
		if t.Status == "" {
			t.Status = targetStatus(t, nil) // skipped before anything was queued
		}
		if err := r.countTarget(run.ID, t, +1); err != nil {
			return err
		}
	}
	if run.PerStaff == nil {
		run.PerStaff = map[string]int{}
	}
	if t.Staff != "" {
		run.PerStaff[t.Staff]++
	}
	if t.Skip != "" {
		if run.Skipped == nil {
			run.Skipped = map[string]int{}
		}
		run.Skipped[t.Skip]++
	} else {
		run.Queued++
		if t.Member != "" {
			if err := r.tx.Put(bucketBroadcastRecv, t.Member+"|"+run.ID, []byte(r.at.UTC().Format(time.RFC3339))); err != nil {
				return err
			}
		}
	}
	return r.putJSON(bucketBroadcastMembers, run.ID+"|"+key, t)
}

// skipCategory maps an action's skip reason to the report's category.
func skipCategory(reason string) string {
	switch {
	case strings.Contains(reason, "quota"):
		return SkipQuota
	case strings.Contains(reason, "cap"):
		return SkipContactCap
	case strings.Contains(reason, "微信客服"), strings.Contains(reason, "48 h"):
		return SkipOutsideKf
	case strings.Contains(reason, "follow"):
		return SkipNotFriend
	}
	return SkipOtherRefusal
}

// broadcastGroups posts a via-group broadcast into the customer groups it
// picks: one mass-send (chat_type group) per group, from its owner.
func (r *run) broadcastGroups(run *BroadcastRun, b *scenarios.Broadcast) error {
	groups, err := pickedGroups(r.tx, b.Groups)
	if err != nil {
		return fmt.Errorf("broadcast %s: list groups: %w", run.ID, err)
	}
	data := r.sc.DataFor(nil)
	for _, g := range groups {
		run.Targeted++
		t := BroadcastTarget{Chat: g.ChatID, Staff: g.Owner}
		if g.Owner == "" {
			t.Skip, t.Reason = SkipOtherRefusal, "the group's owner is unknown"
		} else {
			p := bot.MassSend{ChatType: "group", Sender: g.Owner, ChatIDs: []string{g.ChatID}, Text: r.render(b.Text, data),
				Attachments: r.renderAttachments(b.Attachments, data)}
			a, batch, err := r.enqueueOwed(bot.PurposeOutreach, bot.ActionMassSend, "bc|"+run.ID+"|group|"+g.ChatID, "", p, time.Time{}, time.Time{})
			if err != nil {
				return err
			}
			t.queued(a, batch)
		}
		if err := r.recordTarget(run, t, "group|"+g.ChatID); err != nil {
			return err
		}
	}
	run.Pages++
	run.Status, run.FinishedAt = BroadcastDone, r.at
	return r.putJSON(bucketBroadcasts, "run|"+run.ID, run)
}

// pickedGroups lists the customer groups (not dismissed) p selects, in
// chat id order (tags: some known member of the group carries one).
func pickedGroups(tx bot.Tx, p scenarios.GroupPick) ([]groupRecord, error) {
	var all []groupRecord
	var bad error
	err := tx.Scan(bucketGroups, "", func(_ string, v []byte) bool {
		var g groupRecord
		if bad = json.Unmarshal(v, &g); bad != nil {
			return false
		}
		if g.DismissedAt.IsZero() {
			all = append(all, g)
		}
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	var out []groupRecord
	for _, g := range all {
		if len(p.Owners) > 0 && !containsString(p.Owners, g.Owner) ||
			len(p.ChatIDs) > 0 && !containsString(p.ChatIDs, g.ChatID) ||
			len(p.Names) > 0 && !anyOf(p.Names, func(n string) bool { return n != "" && strings.Contains(g.Name, n) }) {
			continue
		}
		if len(p.Tags) > 0 {
			tagged, err := anyMemberTagged(tx, g.Members, p.Tags)
			if err != nil {
				return nil, err
			}
			if !tagged {
				continue
			}
		}
		out = append(out, g)
	}
	return out, nil
}

func anyMemberTagged(tx bot.Tx, members, tags []string) (bool, error) {
	for _, id := range members {
		m, err := tx.Member(id)
		if errors.Is(err, bot.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if anyOf(tags, m.HasTag) {
			return true, nil
		}
	}
	return false, nil
}

func anyOf(list []string, f func(string) bool) bool {
	for _, s := range list {
		if f(s) {
			return true
		}
	}
	return false
}

// broadcastAfter credits a paid order to the broadcasts its member was
// sent within OrderWindow before it.
func (r *run) broadcastAfter() error {
	if r.ev.Type != bot.EventOrderPaid || r.ev.ExternalUserID == "" {
		return nil
	}
	orderID := r.ev.Data[bot.DataOrderID]
	amount, _ := strconv.ParseInt(r.ev.Data[bot.DataAmountFen], 10, 64)
	member := r.ev.ExternalUserID
	type recv struct {
		run string
		at  time.Time
	}
	var runs []recv
	if err := r.tx.Scan(bucketBroadcastRecv, member+"|", func(k string, v []byte) bool {
		at, err := time.Parse(time.RFC3339, string(v))
		if err == nil && !r.at.Before(at) && r.at.Sub(at) <= OrderWindow {
			runs = append(runs, recv{strings.TrimPrefix(k, member+"|"), at})
		}
		return true
	}); err != nil {
		return fmt.Errorf("read broadcasts sent to %s: %w", member, err)
	}
	for _, rc := range runs {
		key := rc.run + "|" + orderID
		if seen, err := r.has(bucketBroadcastOrders, key); err != nil || seen {
			return err // a replayed order counts once
		}
		o := BroadcastOrder{Member: member, OrderID: orderID, AmountFen: amount, At: r.at}
		if err := r.putJSON(bucketBroadcastOrders, key, o); err != nil {
			return err
		}
		if err := r.broadcastOrder(rc.run, member, amount); err != nil {
			return err
		}
	}
	return nil
}

// broadcastOrder adds an order of member's to her target in a counted
// run, and to the run's orders while her message counts as reaching her
// (a later outcome moves them with her status).
func (r *run) broadcastOrder(runID, member string, amount int64) error {
	_, err := r.moveTarget(runID, member, func(t *BroadcastTarget) bool {
		t.Orders++
		t.GMVFen += amount
		return true
	})
	return err
}

// BroadcastReport is what a run did: its counts, what became of each
// customer's message (from the outbox: the per-customer results WeCom
// reported), and the orders its recipients paid within OrderWindow.
type BroadcastReport struct {
	BroadcastRun
	// Customers is one page of per-customer results (after the request's
	// cursor); NextCursor continues it.
	Customers  []BroadcastResult `json:"customers"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// BroadcastResult is what became of one target.
type BroadcastResult struct {
	Member string `json:"member,omitempty"`
	// Name is the member's name (as the page shows her).
	Name     string `json:"name,omitempty"`
	Chat     string `json:"chat,omitempty"`
	Staff    string `json:"staff,omitempty"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	ActionID uint64 `json:"action_id,omitempty"`
}

// reached reports whether a status means the message went out to her (or
// may have).
func reached(status string) bool {
	switch status {
	case "delivered", "sent", "possibly_delivered":
		return true
	}
	return false
}

// ReportBroadcast builds run id's report: a counted run's counts as kept,
// and up to limit targets after cursor with their status (the page's
// targets only). A run from before the counts read every target's action
// (action: Outbox.Action).
func ReportBroadcast(tx bot.Tx, id string, action func(uint64) (*bot.Action, error), after string, limit int) (*BroadcastReport, error) {
	run, err := ReadBroadcastRun(tx, id)
	if err != nil || run == nil {
		return nil, err
	}
	if !run.Counted {
		rep, err := reportFromActions(tx, run, action, after, limit)
		if err != nil {
			return nil, err
		}
		return rep, nameCustomers(tx, rep.Customers)
	}
	rep := &BroadcastReport{BroadcastRun: *run, Customers: []BroadcastResult{}}
	counts, err := ReadCounts(tx, "bc|"+id)
	if err != nil {
		return nil, err
	}
	rep.addCounts(counts)
	err = BroadcastTargets(tx, id, after, func(t BroadcastTarget) bool {
		if len(rep.Customers) == limit {
			rep.NextCursor = targetKey(rep.Customers[limit-1])
			return false
		}
		reason := t.Reason
		if reason == "" {
			reason = t.Detail
		}
		rep.Customers = append(rep.Customers, BroadcastResult{Member: t.Member, Chat: t.Chat, Staff: t.Staff, ActionID: t.ActionID, Status: t.Status, Reason: reason})
		return true
	})
	if err != nil {
		return nil, err
	}
	return rep, nameCustomers(tx, rep.Customers)
}

// nameCustomers fills in the page's members' names.
func nameCustomers(tx bot.Tx, page []BroadcastResult) error {
	for i := range page {
		if page[i].Member == "" {
			continue
		}
		m, err := tx.Member(page[i].Member)
		switch {
		case err == nil:
			page[i].Name = m.Name
		case !errors.Is(err, bot.ErrNotFound):
			return err
		}
	}
	return nil
}

// targetKey is a result's place in the run's targets (the report's cursor).
func targetKey(res BroadcastResult) string {
	if res.Member == "" {
		return "group|" + res.Chat
	}
	return res.Member
}

// reportFromActions is the report of a run stored before runs kept their
// counts: every target's action is read (O(targets)).
func reportFromActions(tx bot.Tx, run *BroadcastRun, action func(uint64) (*bot.Action, error), after string, limit int) (*BroadcastReport, error) {
	id := run.ID
	rep := &BroadcastReport{BroadcastRun: *run, Customers: []BroadcastResult{}}
	rep.Results = map[string]int{}
	tasks := map[string]bool{}
	recipients := map[string]bool{}
	more := false
	var loadErr error
	err := BroadcastTargets(tx, id, "", func(t BroadcastTarget) bool {
		res := BroadcastResult{Member: t.Member, Chat: t.Chat, Staff: t.Staff, ActionID: t.ActionID, Reason: t.Reason}
		var a *bot.Action
		if t.Skip == "" && t.ActionID != 0 {
			if a, loadErr = action(t.ActionID); loadErr != nil && !errors.Is(loadErr, bot.ErrNotFound) {
				return false
			}
			loadErr = nil
		}
		res.Status = targetStatus(t, a)
		if a != nil && res.Reason == "" && a.LastError != "" && !reached(res.Status) {
			res.Reason = strings.TrimPrefix(strings.TrimPrefix(a.LastError, "canceled: "), "skipped: ")
		}
		rep.Results[res.Status]++
		switch res.Status {
		case "delivered", "over_quota", "not_friend", "left_out":
			rep.Confirmed++
		}
		if res.Status == "delivered" || (res.Status == "sent" && a != nil && a.Kind == bot.ActionKfMessage) {
			rep.Delivered++
		}
		if task := taskOf(t, a, res.Status); task != "" {
			tasks[t.Staff+"|"+task] = true
		}
		if reached(res.Status) && t.Member != "" {
			recipients[t.Member] = true
		}
		switch key := targetKey(res); {
		case key <= after:
		case len(rep.Customers) < limit:
			rep.Customers = append(rep.Customers, res)
		default:
			more = true
		}
		return true
	})
	if err == nil {
		err = loadErr
	}
	if err != nil {
		return nil, err
	}
	if more && len(rep.Customers) > 0 {
		rep.NextCursor = targetKey(rep.Customers[len(rep.Customers)-1])
	}
	rep.Tasks = len(tasks)
	orders, err := BroadcastOrders(tx, id)
	if err != nil {
		return nil, err
	}
	for _, o := range orders {
		if recipients[o.Member] {
			rep.Orders++
			rep.GMVFen += o.AmountFen
		}
	}
	return rep, nil
}

// taskOf names the mass-send task a target's message went out in ("" when
// none was created for her: queued, batched, canceled, skipped, kf).
func taskOf(t BroadcastTarget, a *bot.Action, status string) string {
	if a == nil || a.Kind != bot.ActionMassSend {
		return ""
	}
	switch status {
	case "queued", bot.ActionBatched, bot.MassCanceled, "failed", bot.MassTaskFailed:
		return ""
	}
	if strings.HasPrefix(status, "skipped:") {
		return ""
	}
	if t.Batch != "" {
		return t.Batch
	}
	return strconv.FormatUint(a.ID, 10) // sent alone: its own task
}

// massResult is what WeCom reported for a batched mass send's customer
// ("" before any result).
func massResult(a *bot.Action) string { return a.Result }

// targetStatus is what became of a target's message.
func targetStatus(t BroadcastTarget, a *bot.Action) string {
	switch {
	case t.Skip != "":
		return "skipped:" + t.Skip
	case a == nil:
		return "unknown"
	case massResult(a) != "":
		return massResult(a)
	}
	switch a.Status {
	case bot.ActionPending:
		return "queued"
	case bot.ActionSkipped:
		return "skipped:" + skipCategory(a.LastError)
	case bot.ActionFailed:
		if strings.HasPrefix(a.LastError, "canceled: ") {
			return "canceled"
		}
		return "failed"
	}
	return a.Status // sent, possibly_delivered, batched
}
