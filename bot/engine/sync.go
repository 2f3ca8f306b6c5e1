package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Sync of the brand's existing community: the driver (bot/wecomsync) turns
// WeCom's pages into sync.* events and this file applies them. Imported
// members get their follow users, remarks, WeCom tags, channel (from the
// follow user's state) and a stage (aware; interest when in a customer
// group) with cause "imported" — and nothing is sent to them: they are not
// new to the brand, only to wecombot.
//
// Buckets:
//
//	sync       "run|<id>" → SyncRun; "current" → the id of the newest run
//	sync_seen  "<run>|m|<member>" → seenMember; "<run>|g|<chat_id>" → present
//	corp_tags  tag id → corpTag (the corp tag library as of the last sync)
const (
	bucketSync     = bot.BucketSync
	bucketSyncSeen = bot.BucketSyncSeen
	bucketCorpTags = bot.BucketCorpTags
)

// syncFinishing is the phase after the last page: the run's sync.finish is owed.
const syncFinishing = "finishing"

// CauseImported is the stage-change cause of members a sync imported.
const CauseImported = "imported"

// Sync run statuses.
const (
	SyncRunning = "running"
	SyncDone    = "done"
	SyncFailed  = "failed"
)

// SyncRun is one sync's progress and outcome, written by the engine as the
// run's pages are applied; the driver resumes from it after a crash.
type SyncRun struct {
	ID         string    `json:"id"`
	Trigger    string    `json:"trigger,omitempty"`
	Status     string    `json:"status"`
	Phase      string    `json:"phase"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Error      string    `json:"error,omitempty"`

	Staff      []string `json:"staff,omitempty"`
	OutOfRange []string `json:"out_of_range,omitempty"`
	// Batch and Cursor are where the customer pages resume; GroupCursor is
	// the groupchat/list cursor of the next group page.
	Batch       int    `json:"batch"`
	Cursor      string `json:"cursor,omitempty"`
	GroupCursor string `json:"group_cursor,omitempty"`
	// LastPage is the dedupe key of the last page applied.
	LastPage string `json:"last_page,omitempty"`

	Pages     int `json:"pages"`
	Tags      int `json:"tags"`
	Estimate  int `json:"estimate"`
	Relations int `json:"relations"`
	Customers int `json:"customers"`
	New       int `json:"new"`
	Updated   int `json:"updated"`
	Gone      int `json:"gone"`
	// Unfollowed counts relations that disappeared while the customer kept another staff member.
	Unfollowed    int `json:"unfollowed"`
	Groups        int `json:"groups"`
	GroupsNew     int `json:"groups_new"`
	GroupsUpdated int `json:"groups_updated"`
	GroupsGone    int `json:"groups_gone"`
}

// Done reports whether the run finished.
func (s *SyncRun) Done() bool { return s.Status == SyncDone }

// seenMember is what a run learnt of one member so far.
type seenMember struct {
	Staff []string `json:"staff,omitempty"`
	// Outcome is new, updated or same: how the run counted the member.
	Outcome string `json:"outcome"`
}

type corpTag struct {
	Name  string `json:"name"`
	Group string `json:"group,omitempty"`
}

// SyncBatchSize is how many staff one batch/get_by_user call names.
const SyncBatchSize = 100

// SyncBatches splits staff into the batches a run pages through, in order;
// the driver and the engine must agree on them.
func SyncBatches(staff []string) [][]string {
	var out [][]string
	for i := 0; i < len(staff); i += SyncBatchSize {
		out = append(out, staff[i:min(i+SyncBatchSize, len(staff))])
	}
	return out
}

// CurrentSyncRun returns the newest run (nil if none ever started).
func CurrentSyncRun(tx bot.Tx) (*SyncRun, error) {
	id, err := tx.Get(bucketSync, "current")
	if errors.Is(err, bot.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return SyncRunByID(tx, string(id))
}

// SyncRunByID returns one run (nil if unknown).
func SyncRunByID(tx bot.Tx, id string) (*SyncRun, error) {
	raw, err := tx.Get(bucketSync, "run|"+id)
	if errors.Is(err, bot.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var run SyncRun
	if err := json.Unmarshal(raw, &run); err != nil {
		return nil, fmt.Errorf("decode sync run %s: %w", id, err)
	}
	return &run, nil
}

// SyncRuns lists the stored runs, newest first (ids sort by time).
func SyncRuns(tx bot.Tx, limit int) ([]SyncRun, error) {
	var out []SyncRun
	var bad error
	err := tx.Scan(bucketSync, "run|", func(k string, v []byte) bool {
		var run SyncRun
		if err := json.Unmarshal(v, &run); err != nil {
			bad = fmt.Errorf("decode sync run %s: %w", k, err)
			return false
		}
		out = append(out, run)
		return true
	})
	if err == nil {
		err = bad
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

func (r *run) putSyncRun(s *SyncRun) error {
	return r.putJSON(bucketSync, "run|"+s.ID, s)
}

// syncRun loads the event's run; nil (logged) when it is unknown or over.
func (r *run) syncRun() (*SyncRun, error) {
	id := r.ev.Data[bot.DataSyncRun]
	s, err := SyncRunByID(r.tx, id)
	if err != nil || s == nil {
		if err == nil {
			r.log.Warn().Str("run", id).Msg("sync event of an unknown run; skipped")
		}
		return nil, err
	}
	if s.Done() {
		r.log.Info().Str("run", id).Msg("sync event of a finished run; skipped")
		return nil, nil
	}
	return s, nil
}

// syncStart opens a run, or resumes a failed one of the same id.
func (r *run) syncStart() error {
	id := r.ev.Data[bot.DataSyncRun]
	if id == "" {
		return nil
	}
	s, err := SyncRunByID(r.tx, id)
	if err != nil {
		return err
	}
	if s == nil {
		s = &SyncRun{ID: id, Trigger: r.ev.Data[bot.DataSyncTrigger], Phase: bot.SyncPhaseTags, StartedAt: r.at}
		if cur, err := CurrentSyncRun(r.tx); err != nil {
			return err
		} else if cur != nil && !cur.Done() && cur.ID != id {
			cur.Status, cur.Error, cur.FinishedAt = SyncFailed, "superseded by run "+id, r.at
			if err := r.putSyncRun(cur); err != nil {
				return err
			}
		}
	} else if s.Done() {
		return nil
	}
	s.Status, s.Error = SyncRunning, ""
	if err := r.tx.Put(bucketSync, "current", []byte(id)); err != nil {
		return err
	}
	r.log.Info().Str("run", id).Str("phase", s.Phase).Msg("sync started")
	return r.putSyncRun(s)
}

func (r *run) syncFail() error {
	s, err := r.syncRun()
	if err != nil || s == nil {
		return err
	}
	s.Status, s.Error = SyncFailed, r.ev.Data[bot.DataSyncError]
	r.log.Warn().Str("run", s.ID).Str("error", s.Error).Msg("sync stopped; it resumes from here when started again")
	return r.putSyncRun(s)
}

// syncPage applies one page and moves the run's cursor past it.
func (r *run) syncPage() error {
	s, err := r.syncRun()
	if err != nil || s == nil {
		return err
	}
	raw := []byte(r.ev.Data[bot.DataSyncPage])
	decode := func(v any) error {
		if err := json.Unmarshal(raw, v); err != nil {
			r.log.Warn().Err(err).Msg("sync page unreadable; skipped")
			return err
		}
		return nil
	}
	switch phase := r.ev.Data[bot.DataSyncPhase]; phase {
	case bot.SyncPhaseTags:
		var p bot.SyncTags
		if decode(&p) != nil {
			return nil
		}
		if err := r.syncTags(s, p); err != nil {
			return err
		}
		s.Phase = bot.SyncPhaseStaff
	case bot.SyncPhaseStaff:
		var p bot.SyncStaff
		if decode(&p) != nil {
			return nil
		}
		s.Staff, s.OutOfRange, s.Estimate = p.Staff, p.OutOfRange, p.Estimate
		// Groups first: their members are imported at interest directly,
		// so no member's stage tag is written twice (aware, then interest).
		s.Phase, s.Batch, s.Cursor, s.GroupCursor = bot.SyncPhaseGroupList, 0, "", ""
		if len(p.OutOfRange) > 0 {
			r.log.Warn().Strs("staff", p.OutOfRange).Msg("sync: these staff members' customers can't be read (outside the app's 可见范围, visible range); they are not imported")
		}
	case bot.SyncPhaseCustomers:
		var p bot.SyncCustomers
		if decode(&p) != nil {
			return nil
		}
		if p.Batch != s.Batch || p.Cursor != s.Cursor {
			r.log.Info().Int("batch", p.Batch).Msg("sync page out of order (a replay after a crash); skipped")
			return nil
		}
		for _, c := range p.Contacts {
			if err := r.syncContact(s, c); err != nil {
				return err
			}
		}
		s.Relations += len(p.Contacts)
		s.Cursor = p.Next
		if p.Next == "" {
			s.Batch++
			if s.Batch >= len(SyncBatches(s.Staff)) {
				s.Phase = syncFinishing
			}
		}
	case bot.SyncPhaseGroup:
		var p bot.SyncGroup
		if decode(&p) != nil {
			return nil
		}
		if err := r.syncGroup(s, p); err != nil {
			return err
		}
	case bot.SyncPhaseGroupList:
		var p bot.SyncGroupList
		if decode(&p) != nil {
			return nil
		}
		if p.Cursor != s.GroupCursor {
			return nil
		}
		s.GroupCursor = p.Next
		if p.Next == "" {
			s.Phase = bot.SyncPhaseCustomers
			if len(s.Staff) == 0 {
				s.Phase = syncFinishing
			}
		}
	default:
		r.log.Warn().Str("phase", phase).Msg("sync page of an unknown phase; skipped")
		return nil
	}
	s.Pages++
	s.LastPage = r.ev.DedupeKey
	return r.putSyncRun(s)
}

func (r *run) syncTags(s *SyncRun, p bot.SyncTags) error {
	for _, t := range p.Tags {
		if t.ID == "" || t.Name == "" {
			continue
		}
		var cur corpTag
		found, err := r.getJSON(bucketCorpTags, t.ID, &cur)
		if err != nil {
			return err
		}
		if found && cur.Name == t.Name && cur.Group == t.Group {
			continue
		}
		if err := r.putJSON(bucketCorpTags, t.ID, corpTag{Name: t.Name, Group: t.Group}); err != nil {
			return err
		}
	}
	s.Tags = len(p.Tags)
	return nil
}

func (r *run) seen(s *SyncRun, id string) (*seenMember, error) {
	var sm seenMember
	if _, err := r.getJSON(bucketSyncSeen, s.ID+"|m|"+id, &sm); err != nil {
		return nil, err
	}
	return &sm, nil
}

// countSeen records that the run saw the member (through staff, if set)
// and counts it once: new, updated (changed by any of the run's pages) or same.
func (r *run) countSeen(s *SyncRun, ms *memberState, staff string, changed bool) error {
	sm, err := r.seen(s, ms.m.ExternalUserID)
	if err != nil {
		return err
	}
	before := sm.Outcome
	switch {
	case sm.Outcome == "" && ms.isNew:
		sm.Outcome = "new"
		s.New++
	case sm.Outcome == "" && changed:
		sm.Outcome = "updated"
		s.Updated++
	case sm.Outcome == "":
		sm.Outcome = "same"
	case sm.Outcome == "same" && changed:
		sm.Outcome = "updated"
		s.Updated++
	}
	if before == "" {
		s.Customers++
	}
	if staff != "" && !slices.Contains(sm.Staff, staff) {
		sm.Staff = append(sm.Staff, staff)
	} else if before == sm.Outcome {
		return nil
	}
	return r.putJSON(bucketSyncSeen, s.ID+"|m|"+ms.m.ExternalUserID, sm)
}

// syncContact applies one (customer, staff) relation.
func (r *run) syncContact(s *SyncRun, c bot.SyncContact) error {
	if c.ExternalUserID == "" || c.StaffID == "" {
		return nil
	}
	ms, err := r.member(c.ExternalUserID, true)
	if err != nil {
		return err
	}
	m := ms.m
	changed := false
	if c.Name != "" && m.Name != c.Name {
		m.Name, changed = c.Name, true
	}
	added := r.at
	if c.AddedAt > 0 {
		added = time.Unix(c.AddedAt, 0).UTC()
	}
	newRelation := false
	switch f := m.Follow(c.StaffID); {
	case f == nil:
		m.Follows = append(m.Follows, bot.Follow{StaffID: c.StaffID, State: c.State, AddedAt: added, Remark: c.Remark})
		changed, newRelation = true, true
	case !f.Active():
		f.State, f.AddedAt, f.DeletedAt, f.DeletedBy, f.Remark = c.State, added, time.Time{}, "", c.Remark
		changed, newRelation = true, true
	default:
		if f.Remark != c.Remark {
			f.Remark, changed = c.Remark, true
		}
		if c.State != "" && f.State != c.State {
			f.State, changed = c.State, true
		}
	}
	var onRelation []string
	for _, id := range c.TagIDs {
		var t corpTag
		found, err := r.getJSON(bucketCorpTags, id, &t)
		if err != nil || !found {
			if err != nil {
				return err
			}
			continue
		}
		onRelation = append(onRelation, t.Name)
		// Tags WeCom already carries are learnt, not written back; the
		// funnel's own tags (stage, lost, level) are wecombot's to set.
		if !r.managedTag(t.Name) && m.AddTag(t.Name) {
			changed = true
		}
	}
	if m.Lost {
		m.Lost = false
		r.removeTag(ms, r.sc.Funnel.LostTag)
		changed = true
	}
	if r.attribute(ms, c.State) {
		changed = true
	}
	if m.Stage == bot.StageNone && r.moveTo(ms, bot.StageAware, CauseImported, false) {
		changed = true
	}
	if changed {
		ms.dirty = true
	}
	if newRelation && !ms.isNew {
		// A relation new to wecombot of a member it knew (from a group, or
		// before): give it wecombot's tags the relation lacks. A member new in
		// this event gets them through the stage move's write-back.
		if err := r.tagRelation(ms, c.StaffID, onRelation); err != nil {
			return err
		}
	}
	return r.countSeen(s, ms, c.StaffID, changed)
}

// managedTag reports whether name is one the funnel sets: a stage tag, the
// lost tag or a level tag.
func (r *run) managedTag(name string) bool {
	if name == "" {
		return false
	}
	if name == r.sc.Funnel.LostTag {
		return true
	}
	for _, st := range bot.Stages {
		if r.sc.Funnel.StageTag(st) == name {
			return true
		}
	}
	for _, l := range r.sc.Levels {
		if l.Tag == name {
			return true
		}
	}
	return false
}

// tagRelation writes the member's stage, level and channel tags to one
// relation that doesn't carry them yet.
func (r *run) tagRelation(ms *memberState, staff string, has []string) error {
	m := ms.m
	want := []string{r.sc.Funnel.StageTag(m.Stage)}
	if l := r.sc.Level(m.Level); l != nil {
		want = append(want, l.Tag)
	}
	if ch := r.sc.ChannelByState(m.State); ch != nil {
		want = append(want, ch.Tags...)
	}
	var add []string
	for _, t := range want {
		if t != "" && m.HasTag(t) && !slices.Contains(has, t) && !slices.Contains(ms.added, t) {
			add = append(add, t)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return r.markTag("tag|"+r.ref+"|"+staff+"|import", staff, m.ExternalUserID, add, nil)
}

// attribute gives a member without a channel the one state names (first
// touch wins) and the channel's tags; it reports whether anything changed.
func (r *run) attribute(ms *memberState, state string) bool {
	m := ms.m
	if m.State != "" || state == "" {
		return false
	}
	m.State = state
	if ch := r.sc.ChannelByState(state); ch != nil {
		m.Channel = ch.Name
		for _, t := range ch.Tags {
			r.addTag(ms, t)
		}
	}
	ms.dirty = true
	return true
}

// syncGroup applies one customer group's owner and members.
func (r *run) syncGroup(s *SyncRun, p bot.SyncGroup) error {
	if p.ChatID == "" {
		return nil
	}
	seenKey := s.ID + "|g|" + p.ChatID
	if again, err := r.has(bucketSyncSeen, seenKey); err != nil || again {
		return err
	}
	if err := r.tx.Put(bucketSyncSeen, seenKey, present); err != nil {
		return err
	}
	g, err := r.loadGroup(p.ChatID)
	if err != nil {
		return err
	}
	known, err := r.groupMembers(p.ChatID)
	if err != nil {
		return err
	}
	isNew := g.CreatedAt.IsZero() && g.Owner == "" && len(known) == 0
	before, _ := json.Marshal(g)
	membersChanged := false
	if p.Owner != "" {
		g.Owner = p.Owner
	}
	if p.Name != "" {
		g.Name = p.Name
	}
	if g.CreatedAt.IsZero() && p.CreatedAt > 0 {
		g.CreatedAt = time.Unix(p.CreatedAt, 0).UTC()
	}
	g.DismissedAt = time.Time{}
	var current []string
	for _, gm := range p.Members {
		if !gm.Customer() || gm.UserID == "" {
			continue
		}
		current = append(current, gm.UserID)
		if !slices.Contains(known, gm.UserID) {
			if err := r.tx.Put(bucketGroupMembers, groupMemberKey(p.ChatID, gm.UserID), present); err != nil {
				return err
			}
			membersChanged = true
		}
		ms, err := r.member(gm.UserID, true)
		if err != nil {
			return err
		}
		m := ms.m
		changed := false
		if m.Name == "" && gm.Name != "" {
			m.Name, changed = gm.Name, true
		}
		if !m.InGroup(p.ChatID) {
			m.Groups = append(m.Groups, p.ChatID)
			changed = true
		}
		if r.attribute(ms, gm.State) {
			changed = true
		}
		if m.Stage.Rank() < bot.StageInterest.Rank() && r.moveTo(ms, bot.StageInterest, CauseImported, false) {
			changed = true
		}
		if changed {
			ms.dirty = true
		}
		if err := r.countSeen(s, ms, "", changed); err != nil {
			return err
		}
	}
	for _, id := range known {
		if slices.Contains(current, id) {
			continue
		}
		ms, err := r.member(id, false)
		if err != nil {
			return err
		}
		if ms != nil && removeString(&ms.m.Groups, p.ChatID) {
			ms.dirty = true
		}
		if err := r.tx.Delete(bucketGroupMembers, groupMemberKey(p.ChatID, id)); err != nil {
			return err
		}
		membersChanged = true
	}
	after, _ := json.Marshal(g)
	s.Groups++
	switch {
	case isNew:
		s.GroupsNew++
	case membersChanged || string(before) != string(after):
		s.GroupsUpdated++
	default:
		return nil
	}
	return r.putJSON(bucketGroups, g.ChatID, g)
}

// syncFinish closes the run: relations to synced staff that no list showed
// are gone (the customer deleted the staff member, or was deleted), and a
// member with none left is lost; groups no list showed were dismissed.
func (r *run) syncFinish() error {
	s, err := r.syncRun()
	if err != nil || s == nil {
		return err
	}
	synced := map[string]bool{}
	for _, id := range s.Staff {
		synced[id] = true
	}
	type goneRel struct {
		member string
		staff  []string
	}
	var gone []goneRel
	var scanErr error
	err = r.tx.Members("", func(m *bot.Member) bool {
		var stale []string
		for _, f := range m.Follows {
			if f.Active() && synced[f.StaffID] {
				stale = append(stale, f.StaffID)
			}
		}
		if len(stale) == 0 {
			return true
		}
		sm, err := r.seen(s, m.ExternalUserID)
		if err != nil {
			scanErr = err
			return false
		}
		stale = slices.DeleteFunc(stale, func(id string) bool { return slices.Contains(sm.Staff, id) })
		if len(stale) > 0 {
			gone = append(gone, goneRel{m.ExternalUserID, stale})
		}
		return true
	})
	if err == nil {
		err = scanErr
	}
	if err != nil {
		return err
	}
	for _, g := range gone {
		ms, err := r.member(g.member, false)
		if err != nil || ms == nil {
			return err
		}
		for _, staff := range g.staff {
			if f := ms.m.Follow(staff); f != nil {
				f.DeletedAt, f.DeletedBy = r.at, "sync"
			}
		}
		ms.dirty = true
		if !ms.m.HasActiveFollow() && !ms.m.Lost {
			ms.m.Lost = true
			r.addTag(ms, r.sc.Funnel.LostTag)
			s.Gone++
		} else {
			s.Unfollowed += len(g.staff)
		}
	}
	var dismissed []string
	err = r.tx.Scan(bucketGroups, "", func(k string, v []byte) bool {
		var g groupRecord
		if json.Unmarshal(v, &g) != nil || !g.DismissedAt.IsZero() {
			return true
		}
		dismissed = append(dismissed, k)
		return true
	})
	if err != nil {
		return err
	}
	for _, chat := range dismissed {
		if again, err := r.has(bucketSyncSeen, s.ID+"|g|"+chat); err != nil {
			return err
		} else if again {
			continue
		}
		if err := r.dismissGroup(chat); err != nil {
			return err
		}
		s.GroupsGone++
	}
	// The run's notes are no longer needed.
	var keys []string
	if err := r.tx.Scan(bucketSyncSeen, s.ID+"|", func(k string, _ []byte) bool {
		keys = append(keys, k)
		return true
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := r.tx.Delete(bucketSyncSeen, k); err != nil {
			return err
		}
	}
	s.Status, s.Phase, s.FinishedAt = SyncDone, SyncDone, r.at
	s.LastPage = r.ev.DedupeKey
	r.log.Info().Str("run", s.ID).Int("customers", s.Customers).Int("new", s.New).Int("updated", s.Updated).
		Int("gone", s.Gone).Int("groups", s.Groups).Strs("out_of_range", s.OutOfRange).Msg("sync finished")
	return r.putSyncRun(s)
}

// SyncGroupSeen reports whether run already applied group chatID.
func SyncGroupSeen(tx bot.Tx, runID, chatID string) (bool, error) {
	_, err := tx.Get(bucketSyncSeen, runID+"|g|"+chatID)
	if errors.Is(err, bot.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// SyncPageKey is the dedupe key of a run's page: the run, the phase and the
// page's input (cursor, batch or chat id).
func SyncPageKey(runID, phase string, input ...string) string {
	return "sync|" + runID + "|" + phase + "|" + strings.Join(input, "|")
}
