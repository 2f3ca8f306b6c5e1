package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/scenarios"
)

// StatusPlanned is the timeline status of a follow-up planned for a later
// slot: its outbox action is queued when the slot begins.
const StatusPlanned = "planned"

// AdminStore is what the console reads beyond bot.Store: a member's
// history (newest first, from her index), a bounded newest-first scan for
// dead letters and the dead-letter retry. storage/bolt and
// storage/postgres implement it; a store without it shows empty sections
// and answers 501 to retries.
type AdminStore interface {
	MemberEvents(ctx context.Context, member string, limit int) ([]bot.Event, error)
	MemberActions(ctx context.Context, member string, limit int) ([]bot.Action, error)
	RecentFailedActions(ctx context.Context, limit, window int) ([]bot.Action, error)
	RetryAction(ctx context.Context, id uint64, due time.Time) (*bot.Action, error)
}

// MemberSection adds one named section to a member's detail (a feature's
// points ledger, coupons, referrals), read in the detail's transaction.
type MemberSection struct {
	Name string
	Read func(tx bot.Tx, m *bot.Member) (any, error)
}

// historyWindow is how far back the console looks for dead letters (the
// newest actions of the outbox).
const historyWindow = 20000

// historyLimit is how many of a member's newest events and actions her
// detail shows.
const historyLimit = 200

// maxScanPage bounds how many members one members page scans (a variable
// so tests can shrink it).
var maxScanPage = 50000

// memberRow is a member in a list: the fields an operator scans.
type memberRow struct {
	ExternalUserID string    `json:"external_user_id"`
	Name           string    `json:"name,omitempty"`
	Stage          bot.Stage `json:"stage,omitempty"`
	StageName      string    `json:"stage_name,omitempty"`
	Channel        string    `json:"channel,omitempty"`
	State          string    `json:"state,omitempty"`
	Staff          string    `json:"staff,omitempty"`
	Level          string    `json:"level,omitempty"`
	Points         int64     `json:"points"`
	CheckIns       int       `json:"check_ins"`
	Orders         int       `json:"orders"`
	SpendFen       int64     `json:"spend_fen"`
	Tags           []string  `json:"tags,omitempty"`
	Lost           bool      `json:"lost,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func (s *Server) memberRow(m *bot.Member) memberRow {
	return memberRow{ExternalUserID: m.ExternalUserID, Name: m.Name, Stage: m.Stage, StageName: s.stageName(m.Stage),
		Channel: m.Channel, State: m.State, Staff: m.PrimaryStaff(), Level: m.Level, Points: m.Points,
		CheckIns: m.CheckIns, Orders: m.Orders, SpendFen: m.SpendFen, Tags: m.Tags, Lost: m.Lost,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

// memberFilter is a members query's filters; the zero value matches everyone.
type memberFilter struct {
	stage                         bot.Stage
	tag, channel, staff, level, q string
	// rawQ is q as typed (ids are case-sensitive: their prefix is sought as is).
	rawQ    string
	lost    *bool
	noStage bool
}

func parseMemberFilter(q *query) memberFilter {
	var f memberFilter
	stages := make([]string, 0, len(bot.Stages)+1)
	for _, st := range bot.Stages {
		stages = append(stages, string(st))
	}
	stages = append(stages, "none")
	switch st := q.oneOf("stage", stages...); st {
	case "none":
		f.noStage = true
	default:
		f.stage = bot.Stage(st)
	}
	f.tag = q.str("tag", 128)
	f.channel = q.str("channel", 128)
	f.staff = q.str("staff", 128)
	f.level = q.str("level", 128)
	f.rawQ = strings.TrimSpace(q.str("q", 128))
	f.q = strings.ToLower(f.rawQ)
	f.lost = q.boolean("lost")
	return f
}

func (f memberFilter) match(m *bot.Member) bool {
	switch {
	case f.noStage && m.Stage != bot.StageNone,
		f.stage != "" && m.Stage != f.stage,
		f.tag != "" && !m.HasTag(f.tag),
		f.channel != "" && m.Channel != f.channel && m.State != f.channel,
		f.level != "" && m.Level != f.level,
		f.lost != nil && m.Lost != *f.lost:
		return false
	}
	if f.staff != "" {
		found := false
		for _, fl := range m.Follows {
			if fl.StaffID == f.staff && fl.Active() {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if f.q != "" && !strings.HasPrefix(strings.ToLower(m.ExternalUserID), f.q) && !strings.Contains(strings.ToLower(m.Name), f.q) {
		return false
	}
	return true
}

// terms are the filter's conditions the member index answers, each a
// conjunct of one term (bot.MemberTerms).
func (f memberFilter) terms() [][]string {
	var out [][]string
	add := func(term string) { out = append(out, []string{term}) }
	switch {
	case f.noStage:
		add(bot.IndexKey(bot.TermStage, ""))
	case f.stage != "":
		add(bot.IndexKey(bot.TermStage, string(f.stage)))
	}
	if f.tag != "" {
		add(bot.IndexKey(bot.TermTag, f.tag))
	}
	if f.channel != "" {
		add(bot.IndexKey(bot.TermChannel, f.channel)) // the channel's name or raw state
	}
	if f.staff != "" {
		add(bot.IndexKey(bot.TermStaff, f.staff))
	}
	if f.level != "" {
		add(bot.IndexKey(bot.TermLevel, f.level))
	}
	if f.lost != nil && *f.lost {
		add(bot.TermLost)
	}
	return out
}

// visitIndexed calls visit for the members holding any of terms, in
// external_userid order after the given id, until visit returns false;
// done reports that the terms' members ran out first. Ids are read in
// batches, then their members: reading each member inside the term scan
// would interleave two cursors (and, on PostgreSQL, two queries).
func visitIndexed(tx bot.Tx, terms []string, after string, visit func(*bot.Member) bool) (done bool, err error) {
	const batch = 512
	for {
		ids, more, err := bot.UnionMembers(tx, terms, after, batch)
		if err != nil {
			return false, err
		}
		for i, id := range ids {
			m, err := tx.Member(id)
			if errors.Is(err, bot.ErrNotFound) {
				continue
			}
			if err != nil {
				return false, err
			}
			if !visit(m) {
				return i == len(ids)-1 && !more, nil
			}
		}
		if !more {
			return true, nil
		}
		after = ids[len(ids)-1]
	}
}

// maxSearchCandidates bounds the members a name search reads through the
// bitmaps; a broader search walks the members instead (its matches are
// then dense enough that a page fills fast).
var maxSearchCandidates = 5000

// searchBits answers a name search (q) from the member bitmaps: the
// members holding every pair of characters of q (bot.QueryGrams) and the
// filter's other terms, plus those whose id starts with q, read and
// checked, in external_userid order after cursor. ok is false when the
// store keeps no bitmaps or the candidates are too many.
func (s *Server) searchBits(tx bot.Tx, f memberFilter, cursor string, limit int) (rows []memberRow, scanned int, next string, ok bool, err error) {
	mb, is := tx.(bot.MemberBits)
	grams := bot.QueryGrams(f.q)
	if !is || grams == nil {
		return nil, 0, "", false, nil
	}
	and := func(terms []string) (*roaring.Bitmap, error) {
		var out *roaring.Bitmap
		for _, term := range terms {
			b, err := mb.TermBits(term)
			if err != nil {
				return nil, err
			}
			if out == nil {
				out = b
			} else {
				out.And(b)
			}
		}
		return out, nil
	}
	cand, err := and(grams)
	if err != nil {
		return nil, 0, "", false, err
	}
	long, err := mb.TermBits(bot.BitGramLong)
	if err != nil {
		return nil, 0, "", false, err
	}
	cand.Or(long)
	var others []string
	for _, conj := range f.terms() {
		others = append(others, conj...)
	}
	if len(others) > 0 {
		rest, err := and(others)
		if err != nil {
			return nil, 0, "", false, err
		}
		cand.And(rest)
	}
	if maxSearchCandidates < 0 || cand.GetCardinality() > uint64(maxSearchCandidates) {
		return nil, 0, "", false, nil
	}
	var found []*bot.Member
	if err := mb.MembersByNum(cand, func(_ uint32, m *bot.Member) bool {
		scanned++
		if m.ExternalUserID > cursor && f.match(m) {
			found = append(found, m)
		}
		return true
	}); err != nil {
		return nil, 0, "", false, err
	}
	// Ids starting with q (as typed), from the members' own order.
	byID := 0
	from := max(cursor, f.rawQ)
	if m, err := tx.Member(f.rawQ); err == nil && f.rawQ > cursor && f.match(m) {
		found = append(found, m)
	}
	if err := tx.Members(from, func(m *bot.Member) bool {
		if !strings.HasPrefix(m.ExternalUserID, f.rawQ) {
			return false
		}
		if byID++; byID > maxSearchCandidates {
			return false
		}
		if f.match(m) {
			found = append(found, m)
		}
		return true
	}); err != nil {
		return nil, 0, "", false, err
	}
	if byID > maxSearchCandidates {
		return nil, 0, "", false, nil
	}
	scanned += byID
	sort.Slice(found, func(i, j int) bool { return found[i].ExternalUserID < found[j].ExternalUserID })
	found = slices.CompactFunc(found, func(a, b *bot.Member) bool { return a.ExternalUserID == b.ExternalUserID })
	if len(found) > limit {
		found, next = found[:limit], found[limit-1].ExternalUserID
	}
	rows = make([]memberRow, 0, len(found))
	for _, m := range found {
		rows = append(rows, s.memberRow(m))
	}
	return rows, scanned, next, true, nil
}

// apiMembers answers GET /api/v1/members: filtered, cursor-paginated in
// external_userid order. A name search (q: part of her name, or the start
// of her external_userid) reads only the members the member bitmaps leave
// (searchBits). When a filter names something the member index holds
// (stage, tag, channel, staff, level, lost), the page walks the members
// of its rarest such term instead of every member, and checks the rest of
// the filter on each; a filter whose term nobody holds answers at once. A
// page reads at most maxScanPage members; when the filter is rare among
// them the page may come back short with a next_cursor to go on.
func (s *Server) apiMembers(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "stage", "tag", "channel", "staff", "level", "q", "lost", "limit", "cursor")
	f := parseMemberFilter(q)
	limit := q.int("limit", 50, 1, 500)
	cursor := q.str("cursor", 256)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	rows := []memberRow{}
	total, scanned, last, done, next := 0, 0, "", false, ""
	searched := false
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		var err error
		if total, err = tx.MemberCount(); err != nil {
			return err
		}
		if f.q != "" {
			var found []memberRow
			if found, scanned, next, searched, err = s.searchBits(tx, f, cursor, limit); err != nil || searched {
				rows = append(rows, found...)
				return err
			}
		}
		visit := func(m *bot.Member) bool {
			scanned++
			last = m.ExternalUserID
			if f.match(m) {
				rows = append(rows, s.memberRow(m))
			}
			return len(rows) < limit && scanned < maxScanPage
		}
		terms, none, err := bot.RarestUnion(tx, f.terms())
		switch {
		case err != nil:
			return err
		case none:
			done = true
			return nil
		case terms == nil:
			return tx.Members(cursor, visit)
		}
		done, err = visitIndexed(tx, terms, cursor, visit)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body := map[string]any{"members": rows, "total": total, "scanned": scanned}
	switch {
	case searched:
		if next != "" {
			body["next_cursor"] = next
		}
	case !done && (len(rows) == limit || scanned >= maxScanPage):
		body["next_cursor"] = last
	}
	writeJSON(w, http.StatusOK, body)
}

// timelineItem is one entry of a member's profile timeline.
type timelineItem struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"` // stage, event, action
	// Type is the event type, action kind, or "stage".
	Type string `json:"type"`
	Text string `json:"text"`
	// Status is an action's outbox status.
	Status string `json:"status,omitempty"`
	// Result and ResultDetail say what WeCom did with a batched mass send
	// (bot.MassWaiting, bot.MassDelivered, ...: waiting for the staff
	// member's confirmation, delivered, not confirmed, over quota, not a
	// friend), and the skip or failure reason of an action not sent.
	Result       string `json:"result,omitempty"`
	ResultDetail string `json:"result_detail,omitempty"`
	Seq          uint64 `json:"seq,omitempty"`
	// What the console shows in words (Text is the same as one line):
	// Fields of an event (staff, state, channel, chat, update, content,
	// order, amount, source); From, To and Cause of a stage change; the corp
	// tags an action adds and removes; the action's outbox id.
	Fields      map[string]string `json:"fields,omitempty"`
	From        bot.Stage         `json:"from,omitempty"`
	To          bot.Stage         `json:"to,omitempty"`
	Cause       string            `json:"cause,omitempty"`
	TagsAdded   []string          `json:"tags_added,omitempty"`
	TagsRemoved []string          `json:"tags_removed,omitempty"`
	ActionID    uint64            `json:"action_id,omitempty"`
}

// timelineRank orders what one event caused, oldest first: the event, the
// stage change it made, then its actions.
var timelineRank = map[string]int{"event": 0, "stage": 1, "action": 2}

// sortTimeline puts the newest first; what happened at the same moment is
// ordered by event sequence and, within one event, the event before its
// stage change before its actions (in outbox order), newest first too.
func sortTimeline(items []timelineItem) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := &items[i], &items[j]
		if !a.At.Equal(b.At) {
			return a.At.After(b.At)
		}
		if a.Seq != b.Seq && a.Seq != 0 && b.Seq != 0 {
			return a.Seq > b.Seq
		}
		if ra, rb := timelineRank[a.Kind], timelineRank[b.Kind]; ra != rb {
			return ra > rb
		}
		return a.ActionID > b.ActionID
	})
}

// conversationLine is one message between the member and the bot.
type conversationLine struct {
	At   time.Time `json:"at"`
	From string    `json:"from"` // member or bot
	Text string    `json:"text"`
	// Status is the outbox status of the bot's message; Result what WeCom
	// did with a batched mass send.
	Status string `json:"status,omitempty"`
	Result string `json:"result,omitempty"`
}

// apiMember answers GET /api/v1/members/{external_userid}: the member with
// stage history, tags, follows, check-in days, a timeline of recent events
// and actions, the recent conversation, and feature sections.
func (s *Server) apiMember(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("external_userid")
	q := newQuery(r)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	var m *bot.Member
	var days []string
	sections := map[string]any{}
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		var err error
		if m, err = tx.Member(id); err != nil {
			return fmt.Errorf("member %q: %w", id, err)
		}
		if days, err = engine.CheckInDays(tx, id); err != nil {
			return err
		}
		for _, sec := range s.o.MemberSections {
			v, err := sec.Read(tx, m)
			if err != nil {
				return fmt.Errorf("%s: %w", sec.Name, err)
			}
			sections[sec.Name] = v
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	timeline := []timelineItem{}
	conversation := []conversationLine{}
	for _, c := range m.StageHistory {
		timeline = append(timeline, timelineItem{At: c.At, Kind: "stage", Type: "stage",
			Text: fmt.Sprintf("%s → %s (%s)", s.stageName(c.From), s.stageName(c.To), c.Cause), Seq: c.EventSeq,
			From: c.From, To: c.To, Cause: c.Cause})
	}
	for _, tr := range m.Transfers {
		timeline = append(timeline, transferItem(tr))
	}
	if as, ok := s.o.Store.(AdminStore); ok {
		evs, err := as.MemberEvents(r.Context(), id, historyLimit)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		eventAt := map[uint64]time.Time{}
		for _, ev := range evs {
			eventAt[ev.Seq] = ev.At
			fields := s.eventFields(&ev)
			timeline = append(timeline, timelineItem{At: ev.At, Kind: "event", Type: string(ev.Type), Text: eventText(fields), Seq: ev.Seq,
				Fields: fields})
			if (ev.Type == bot.EventKfText || ev.Type == bot.EventAppText) && ev.Content != "" {
				conversation = append(conversation, conversationLine{At: ev.At, From: "member", Text: ev.Content})
			}
		}
		planned, err := s.plannedFollowUps(r.Context(), evs)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		timeline = append(timeline, s.plannedItems(m, planned)...)
		acts, err := as.MemberActions(r.Context(), id, historyLimit)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, a := range acts {
			text := actionText(&a)
			// An action happens when its event did, or later when it is a
			// scheduled follow-up (the engine may have run behind).
			at := a.CreatedAt
			if t, ok := eventAt[a.EventSeq]; ok {
				at = t
			}
			if a.DueAt.After(at) {
				at = a.DueAt
			}
			item := timelineItem{At: at, Kind: "action", Type: string(a.Kind), Text: text, Status: a.Status, Seq: a.EventSeq, ActionID: a.ID,
				Result: a.Result}
			switch {
			case a.Result != "":
				item.ResultDetail = a.Detail
			case a.Status == bot.ActionSkipped || a.Status == bot.ActionFailed:
				item.ResultDetail = a.LastError
			}
			if a.Kind == bot.ActionMarkTag {
				var p bot.MarkTag
				if a.Decode(&p) == nil {
					item.TagsAdded, item.TagsRemoved = p.Add, p.Remove
				}
			}
			timeline = append(timeline, item)
			if a.Kind == bot.ActionKfMessage || a.Kind == bot.ActionWelcome || a.Kind == bot.ActionMassSend {
				conversation = append(conversation, conversationLine{At: at, From: "bot", Text: text, Status: a.Status, Result: a.Result})
			}
		}
	}
	sortTimeline(timeline)
	sort.SliceStable(conversation, func(i, j int) bool { return conversation[i].At.Before(conversation[j].At) })
	if days == nil {
		days = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"member":        m,
		"summary":       s.memberRow(m),
		"check_in_days": days,
		"timeline":      timeline,
		"conversation":  conversation,
		"sections":      sections,
		"profile":       s.profileDetail(m),
		"stage_names":   s.stageNames(),
		"zone":          s.brandZone().String(),
	})
}

// plannedFollowUps are the follow-ups her adds among evs planned that
// wait for their slot.
func (s *Server) plannedFollowUps(ctx context.Context, evs []bot.Event) ([]engine.PlannedFollowUp, error) {
	if s.o.Scenario == nil {
		return nil, nil
	}
	sc := s.o.Scenario()
	var adds []*bot.Event
	for i := range evs {
		if evs[i].Type == bot.EventContactAdd {
			adds = append(adds, &evs[i])
		}
	}
	if sc == nil || len(adds) == 0 {
		return nil, nil
	}
	var out []engine.PlannedFollowUp
	err := s.o.Store.View(ctx, func(tx bot.Tx) error {
		out = out[:0]
		for _, ev := range adds {
			p, err := engine.PlannedFollowUps(tx, sc, ev)
			if err != nil {
				return err
			}
			out = append(out, p...)
		}
		return nil
	})
	return out, err
}

// plannedItems are her follow-ups planned for a later slot, as the actions
// they will be (status planned, no outbox id yet): what she gets next.
func (s *Server) plannedItems(m *bot.Member, planned []engine.PlannedFollowUp) []timelineItem {
	var sc *scenarios.Scenario
	if s.o.Scenario != nil {
		sc = s.o.Scenario()
	}
	out := make([]timelineItem, 0, len(planned))
	for _, p := range planned {
		item := timelineItem{At: p.Due, Kind: "action", Type: string(bot.ActionMassSend), Status: StatusPlanned,
			Fields: map[string]string{"key": p.Key, "script": p.Script}}
		if p.Staff != "" {
			item.Fields["staff"] = p.Staff
		}
		if sc != nil {
			if script := sc.Script(p.Script); script != nil && script.FollowUps != nil && p.Step < len(script.FollowUps.Steps) {
				st := script.FollowUps.Steps[p.Step]
				if st.Via == scenarios.ViaKf {
					item.Type = string(bot.ActionKfMessage)
				}
				if st.Text != nil {
					if text, err := st.Text.Render(sc.DataFor(m)); err == nil {
						item.Text = text
					}
				}
			}
		}
		out = append(out, item)
	}
	return out
}

// stageNames are the scenario's names of the stages (for pages that show a
// member without having loaded the funnel).
func (s *Server) stageNames() map[bot.Stage]string {
	out := make(map[bot.Stage]string, len(bot.Stages))
	for _, st := range bot.Stages {
		out[st] = s.stageName(st)
	}
	return out
}

// eventFields are an event's details by name, for the console to word.
func (s *Server) eventFields(ev *bot.Event) map[string]string {
	out := map[string]string{}
	add := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	add("staff", ev.StaffID)
	add("state", ev.State)
	if ev.State != "" && s.o.Scenario != nil {
		if sc := s.o.Scenario(); sc != nil {
			if ch := sc.ChannelByState(ev.State); ch != nil {
				add("channel", ch.Name)
			}
		}
	}
	add("chat", ev.ChatID)
	add("update", ev.UpdateDetail)
	add("content", ev.Content)
	add("key", ev.EventKey)
	if id := ev.Data[bot.DataOrderID]; id != "" {
		add("order", id)
		if fen, err := strconv.ParseInt(ev.Data[bot.DataAmountFen], 10, 64); err == nil {
			add("amount", yuan(fen))
		}
	}
	if ev.Source != "" && ev.Source != bot.SourceWeCom {
		add("source", ev.Source)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// eventText is a one-line description of an event for the timeline, from
// its fields: k=v pairs and the quoted content.
func eventText(fields map[string]string) string {
	var parts []string
	for _, k := range []string{"staff", "state", "chat", "update", "content", "order", "amount", "source"} {
		v, ok := fields[k]
		switch {
		case !ok:
		case k == "content":
			parts = append(parts, strconv.Quote(v))
		case k == "update":
			parts = append(parts, "detail="+v)
		default:
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// actionText is what an action says, for the timeline and conversation.
func actionText(a *bot.Action) string {
	switch a.Kind {
	case bot.ActionWelcome:
		var p bot.WelcomeMessage
		if a.Decode(&p) == nil {
			return p.Text
		}
	case bot.ActionKfMessage:
		var p bot.KfMessage
		if a.Decode(&p) == nil {
			return p.Text
		}
	case bot.ActionMassSend:
		var p bot.MassSend
		if a.Decode(&p) == nil {
			return p.Text
		}
	case bot.ActionMarkTag:
		var p bot.MarkTag
		if a.Decode(&p) == nil {
			s := ""
			if len(p.Add) > 0 {
				s = "+" + strings.Join(p.Add, " +")
			}
			if len(p.Remove) > 0 {
				s = strings.TrimSpace(s + " -" + strings.Join(p.Remove, " -"))
			}
			return s
		}
	case bot.ActionStaffMessage:
		var p bot.StaffMessage
		if a.Decode(&p) == nil {
			return p.Text
		}
	}
	return string(a.Kind)
}

func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// csvSafe defuses spreadsheet formulas in member-supplied text (CSV
// injection): a cell starting with = + - @ or a tab is prefixed with '.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
