// Package engine turns one event into member state changes and outbox
// actions, inside the transaction the pipeline (or the simulator) gives it:
// channel attribution, welcome scripts, the AIPL funnel, tags, group
// membership, keyword auto-replies and orders. It never does network I/O;
// everything owed to WeCom is a bot.Action whose Key derives from the event,
// so replaying an event never sends twice.
//
// Facts the engine keeps besides members live in the transaction's
// key-value space (bot.Tx Get/Put), bucket by bucket:
//
//	orders          order_id → orderRecord (paid amount, refunded amount, member)
//	orders_pending  <member>|<order_id> → present, for orders of members not yet known
//	refunds         <order_id>|<refund_id> → present once a refund is applied
//	groups          chat_id → groupRecord (name, owner, created/dismissed)
//	group_members   chat_id ‖ external_userid → present: the group's customers
//	ratelimit       kf|<member> or app|<staff> → recent auto-replies
//
// Check-in campaigns keep their ledger in bot/checkin's buckets (see there).
//
// features.go lists, in one place and in order, what runs for each event
// type and for a message; docs/architecture.md maps every event and feature
// to its file.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
)

// WelcomeCodeTTL is how long a welcome code may be used (send_welcome_msg).
const WelcomeCodeTTL = 20 * time.Second

// KV buckets.
const (
	bucketOrders        = bot.BucketOrders
	bucketOrdersPending = bot.BucketOrdersPending
	bucketRefunds       = bot.BucketRefunds
	bucketRefundsHeld   = bot.BucketRefundsHeld
	bucketGroups        = bot.BucketGroups
	bucketGroupMembers  = bot.BucketGroupMembers
	bucketRateLimit     = bot.BucketRateLimit
)

// present is the value of kv facts whose presence is the fact (a counted
// check-in day, an applied refund); non-empty because some stores treat an
// empty value as absent.
var present = []byte{1}

// Engine applies events. It is safe for concurrent use: each Handle call
// works on its own transaction and takes the scenario once.
type Engine struct {
	scenario func() *scenarios.Scenario
	log      zerolog.Logger
	now      func() time.Time
	// links signs members' personal H5 links; baseURL is the public base
	// they point at (see WithLinks). Nil links: features send no links.
	links   *signlink.Signer
	baseURL string
	// metrics counts coupon issues, stock alerts and referrals (never nil).
	metrics Counters
	// codeRand feeds generated coupon codes (nil: crypto/rand; simulate
	// makes it deterministic).
	codeRand io.Reader
}

// Counters is what the engine counts; bot/metrics implements it for
// Prometheus. The engine owns this interface so it needs no metrics library.
type Counters interface {
	CouponIssued(pool, hook string)
	CouponRedeemed(pool, hook string)
	CouponEmpty(pool string)
	CouponStockAlert(pool string)
	CouponStock(pool string, n int)
	// Referral counts an invite's outcome (counted, pending, void, self, repeat, existing).
	Referral(result string)
	// Redemption counts a catalogue redemption attempt's outcome (ok, no_points, no_stock, limit, …).
	Redemption(item, outcome string)
	// SendSkipped counts a message not attempted because WeCom would refuse it.
	SendSkipped(surface, reason string)
	// SendResult counts what WeCom reported about an accepted message.
	SendResult(surface, result string)
}

// noCounters counts nothing (an engine without WithMetrics).
type noCounters struct{}

func (noCounters) CouponIssued(string, string)   {}
func (noCounters) CouponRedeemed(string, string) {}
func (noCounters) CouponEmpty(string)            {}
func (noCounters) CouponStockAlert(string)       {}
func (noCounters) CouponStock(string, int)       {}
func (noCounters) Referral(string)               {}
func (noCounters) Redemption(string, string)     {}
func (noCounters) SendSkipped(string, string)    {}
func (noCounters) SendResult(string, string)     {}

// WithMetrics records coupon and referral counters into c (nil: none).
func (e *Engine) WithMetrics(c Counters) *Engine {
	if c == nil {
		c = noCounters{}
	}
	e.metrics = c
	return e
}

// WithLinks sets the signer and public base URL (WECOMBOT_PUBLIC_URL) for
// members' personal H5 links (check-in, coupon claim, invite).
func (e *Engine) WithLinks(s *signlink.Signer, baseURL string) *Engine {
	e.links, e.baseURL = s, strings.TrimRight(baseURL, "/")
	return e
}

// link returns the public URL path?t=<signed token> for purpose and
// subject, valid for ttl, or "" when links aren't configured.
func (r *run) link(path, purpose, subject string, ttl time.Duration) string {
	if r.e.links == nil {
		return ""
	}
	return r.e.baseURL + path + "?t=" + r.e.links.Sign(purpose, subject, ttl)
}

var _ bot.Handler = (*Engine)(nil)

// New returns an engine reading the scenario in force from current (pass
// holder.Current for hot reload) with time from now (time.Now in production,
// a fake clock in simulate and tests).
func New(current func() *scenarios.Scenario, log zerolog.Logger, now func() time.Time) *Engine {
	if now == nil {
		now = time.Now
	}
	return &Engine{scenario: current, log: log.With().Str("component", "engine").Logger(), now: now, metrics: noCounters{}}
}

// Handle applies ev inside tx. It returns an error only when the store
// fails (the caller retries the whole transaction); events it can't act on
// (unknown member, malformed data) are logged and skipped.
func (e *Engine) Handle(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
	sc := e.scenario()
	if sc == nil {
		return errors.New("engine: no scenario loaded")
	}
	r := &run{
		e: e, sc: sc, tx: tx, ev: ev, now: e.now(), ref: eventRef(ev),
		members: map[string]*memberState{},
	}
	lc := e.log.With().Uint64("seq", ev.Seq).Str("type", string(ev.Type))
	if ev.ExternalUserID != "" {
		lc = lc.Str("member", ev.ExternalUserID)
	}
	r.log = lc.Logger()
	r.at = ev.At
	if r.at.IsZero() {
		r.at = r.now
	}
	if err := r.dispatch(); err != nil {
		return err
	}
	if err := r.afterEvent(); err != nil {
		return err
	}
	return r.finish()
}

// eventRef identifies the event inside action keys: its dedupe key (the same
// across WeCom retries, even if one slipped past the log's dedupe), else its
// log position. Long keys are hashed.
func eventRef(ev *bot.Event) string {
	k := ev.DedupeKey
	if k == "" {
		return fmt.Sprintf("seq:%d", ev.Seq)
	}
	if len(k) <= 96 {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "h:" + hex.EncodeToString(sum[:12])
}

// run is the state of one Handle call.
type run struct {
	e   *Engine
	sc  *scenarios.Scenario
	tx  bot.Tx
	ev  *bot.Event
	now time.Time
	// at is when the event happened (ev.At, else now).
	at  time.Time
	ref string
	log zerolog.Logger

	members map[string]*memberState
	order   []*memberState
	// weekly are the event's counts for the weekly counters (weekly.go),
	// by key in first-touched order.
	weekly     map[string]*WeekStats
	weeklyKeys []string
	// bcRuns and sopStats are broadcast runs and SOP switches the event
	// read; counts the broadcast and SOP count shards it changed, by key in
	// first-touched order (outcome.go), written at the end.
	bcRuns    map[string]*BroadcastRun
	sopStats  map[string]*SOPStats
	counts    map[string]map[string]int64
	countKeys []string
}

// memberState is a member touched by the event, with the tag changes to
// write back at the end.
type memberState struct {
	m     *bot.Member
	isNew bool
	dirty bool
	// added / removed are tag changes made during this event, in order.
	added, removed []string
	// fullSync are staff whose follow relation is new: they get every tag.
	fullSync map[string]bool
	// alsoTag are staff to tag although their follow is no longer active
	// (the customer deleted them: the relation stands one-sided).
	alsoTag []string
	// matched is the keyword rule the event's message matched.
	matched *scenarios.KeywordRule
	// levelAtLoad and birthdayAtLoad are the member's level and birthday
	// before the event (rights.go gives a new level's rights, indexes a new
	// birthday); levelAnnounced is set when a reply already announced the
	// new level (a check-in's), rightsDone once its rights were given.
	levelAtLoad, birthdayAtLoad string
	levelAnnounced, rightsDone  bool
	// notes are the economy's texts for the member from this event, sent
	// as one message in finish (economy.go note).
	notes       []string
	notesKfOnly bool
	// wentSilent / cameBack: the silent rule marked her silent in this
	// event, or her activity ended her silence (SOP triggers read them).
	wentSilent, cameBack bool
}

// member loads (or, with create, makes) a member and tracks it.
func (r *run) member(id string, create bool) (*memberState, error) {
	if ms, ok := r.members[id]; ok {
		return ms, nil
	}
	m, err := r.tx.Member(id)
	isNew := false
	switch {
	case errors.Is(err, bot.ErrNotFound):
		if !create {
			return nil, nil
		}
		m = &bot.Member{ExternalUserID: id, CreatedAt: r.at}
		isNew = true
	case err != nil:
		return nil, fmt.Errorf("load member %s: %w", id, err)
	}
	ms := &memberState{m: m, isNew: isNew, dirty: isNew, fullSync: map[string]bool{}, levelAtLoad: m.Level, birthdayAtLoad: m.Birthday}
	r.members[id] = ms
	r.order = append(r.order, ms)
	return ms, nil
}

func (r *run) addTag(ms *memberState, tag string) {
	if tag == "" || !ms.m.AddTag(tag) {
		return
	}
	ms.dirty = true
	if !removeString(&ms.removed, tag) {
		ms.added = append(ms.added, tag)
	}
}

func (r *run) removeTag(ms *memberState, tag string) {
	if tag == "" || !ms.m.RemoveTag(tag) {
		return
	}
	ms.dirty = true
	if !removeString(&ms.added, tag) {
		ms.removed = append(ms.removed, tag)
	}
}

func removeString(list *[]string, s string) bool {
	for i, v := range *list {
		if v == s {
			*list = append((*list)[:i], (*list)[i+1:]...)
			return true
		}
	}
	return false
}

// enqueue adds an action; a duplicate key (a replay) is not an error.
func (r *run) enqueue(kind bot.ActionKind, key, memberID string, payload any, due, notAfter time.Time) error {
	return r.enqueuePurpose("", kind, key, memberID, payload, due, notAfter)
}

// enqueuePurpose is enqueue for an action with a purpose the outbox checks
// before delivering it (bot.PurposeFollowUp).
func (r *run) enqueuePurpose(purpose bot.ActionPurpose, kind bot.ActionKind, key, memberID string, payload any, due, notAfter time.Time) error {
	_, _, err := r.enqueueAs(purpose, false, kind, key, memberID, payload, due, notAfter)
	return err
}

// enqueueProactive is enqueuePurpose for a message the member didn't ask
// for (a follow-up, a reminder, a coupon delivery, a broadcast, an SOP
// step): it counts against her contact cap (limits.contact_per_day /
// contact_per_week, cap.go) and is skipped with the reason over it.
func (r *run) enqueueProactive(purpose bot.ActionPurpose, kind bot.ActionKind, key, memberID string, payload any, due, notAfter time.Time) error {
	_, _, err := r.enqueueAs(purpose, true, kind, key, memberID, payload, due, notAfter)
	return err
}

// enqueueOwed is enqueueProactive returning the action as enqueued (its ID,
// and Status skipped with LastError when WeCom would refuse it or her
// contact cap is reached) and the mass-send batch it joined ("" for none).
func (r *run) enqueueOwed(purpose bot.ActionPurpose, kind bot.ActionKind, key, memberID string, payload any, due, notAfter time.Time) (*bot.Action, string, error) {
	return r.enqueueAs(purpose, true, kind, key, memberID, payload, due, notAfter)
}

func (r *run) enqueueAs(purpose bot.ActionPurpose, proactive bool, kind bot.ActionKind, key, memberID string, payload any, due, notAfter time.Time) (*bot.Action, string, error) {
	// Texts are cut to their surface's limit here, where they are rendered,
	// so the outbox, the timeline and simulate show what WeCom will show.
	payload = bot.FitSurface(payload)
	a, err := bot.NewAction(kind, key, payload)
	if err != nil {
		return nil, "", err
	}
	a.Purpose = purpose
	when := due
	if when.IsZero() {
		when = r.now
	}
	if proactive && memberID != "" {
		// Checked first, so a message over the cap uses no WeCom quota.
		reason, err := r.contactCapReason(memberID, when)
		if err != nil {
			return nil, "", err
		}
		if reason != "" {
			a.Status, a.LastError = bot.ActionSkipped, "skipped: "+reason
			surface := string(kind)
			if kind == bot.ActionKfMessage {
				surface = "kf"
			}
			r.e.metrics.SendSkipped(surface, "contact_cap")
			r.log.Info().Str("key", key).Str("reason", reason).Msg("proactive message skipped: the member's contact cap is reached")
			r.stamp(a, memberID, due, notAfter)
			return a, "", r.enqueueAction(a)
		}
	}
	// A mass send to one customer (or group) joins a batch: one task per
	// staff member, content and window (massbatch.go).
	var batch *massBatch
	target, quotaKey := "", ""
	if p, isMass := payload.(bot.MassSend); isMass {
		target = massTarget(p)
	}
	if target != "" {
		p := payload.(bot.MassSend)
		b, err := r.massBatchFor(p, when)
		if err != nil {
			return nil, "", err
		}
		inBatch, err := r.has(bucketMassMembers, massMemberKey(b.ID, target))
		if err != nil {
			return nil, "", err
		}
		quotaTarget := target
		if len(p.ChatIDs) == 1 {
			quotaTarget = "group|" + target
		}
		reason := ""
		switch {
		case inBatch:
			reason = "the same message already goes to her in this mass-send task"
		default:
			if reason, err = r.massQuota(quotaTarget, when); err != nil {
				return nil, "", err
			}
			if reason == "" {
				quotaKey = r.massQuotaKey(quotaTarget, when)
			}
			if reason != "" {
				r.e.metrics.SendSkipped("mass_send", "over_quota")
			}
		}
		if reason != "" {
			a.Status, a.LastError = bot.ActionSkipped, "skipped: "+reason
			r.log.Info().Str("key", key).Str("reason", reason).Msg("mass-send skipped")
		} else {
			a.Status, batch = bot.ActionBatched, b
		}
	}
	// An outreach step due later is checked against the kf budget when it
	// is delivered (the guard), not now: she may write again before then.
	if p, isKf := payload.(bot.KfMessage); isKf && (purpose != bot.PurposeOutreach || !due.After(r.now.Add(time.Minute))) {
		reason, err := r.kfBudget(p, when)
		if err != nil {
			return nil, "", err
		}
		if reason != "" {
			// Not attempted: WeCom would refuse it. Recorded (the member's
			// timeline shows it) and counted.
			a.Status, a.LastError = bot.ActionSkipped, "skipped: "+reason
			r.e.metrics.SendSkipped("kf", kfSkipReason(reason))
			r.log.Info().Str("key", key).Str("reason", reason).Msg("kf message skipped: outside WeCom's send budget")
		}
	}
	r.stamp(a, memberID, due, notAfter)
	var dup bool
	batchID := ""
	if batch == nil {
		if dup, err = r.enqueueActionDup(a); err != nil {
			return a, "", err
		}
		if err := r.indexKfMsgID(a, payload); err != nil {
			return a, "", err
		}
	} else {
		batchID = batch.ID
		// DueAt stays when it was owed; the batch's timer goes at the window's end.
		if dup, err = r.tx.Enqueue(a); err != nil {
			return a, batchID, err
		}
		if !dup {
			capDay := "" // counted below
			if proactive && memberID != "" {
				capDay = r.capDay(when)
			}
			if err := r.massJoin(batch, target, quotaKey, capDay, a); err != nil {
				return a, batchID, err
			}
		}
	}
	if dup || !proactive || memberID == "" || a.Status == bot.ActionSkipped {
		return a, batchID, nil // a replay counts once; a skipped message not at all
	}
	return a, batchID, r.countContact(memberID, when) // cap.go
}

// stamp fills a built action's member, event, creation and due times.
func (r *run) stamp(a *bot.Action, memberID string, due, notAfter time.Time) {
	a.MemberID = memberID
	a.EventSeq = r.ev.Seq
	a.CreatedAt = r.now
	a.DueAt = due
	if a.DueAt.IsZero() {
		a.DueAt = r.now
	}
	a.NotAfter = notAfter
}

// enqueueAction adds a built action; a duplicate key (a replay) is not an error.
func (r *run) enqueueAction(a *bot.Action) error {
	_, err := r.enqueueActionDup(a)
	return err
}

// enqueueActionDup is enqueueAction reporting a replay.
func (r *run) enqueueActionDup(a *bot.Action) (dup bool, err error) {
	dup, err = r.tx.Enqueue(a)
	if err != nil {
		return false, fmt.Errorf("enqueue %s %s: %w", a.Kind, a.Key, err)
	}
	if dup {
		r.log.Debug().Str("key", a.Key).Msg("action already enqueued (replay)")
	}
	return dup, nil
}

// render renders t for the member; a runtime failure falls back to the plain
// text and is logged.
func (r *run) render(t *scenarios.Template, data scenarios.TemplateData) string {
	s, err := t.Render(data)
	if err != nil {
		r.log.Warn().Err(err).Msg("template failed; sent its plain text")
	}
	return s
}

func (r *run) renderAttachments(as []*scenarios.Attachment, data scenarios.TemplateData) []bot.Attachment {
	out, err := scenarios.RenderAttachments(as, data)
	if err != nil {
		r.log.Warn().Err(err).Msg("attachment template failed; sent its plain text")
	}
	return out
}

// finish applies levels and tag rules to every touched member, writes tags
// back (one mark_tag per staff relation) and stores the members.
func (r *run) finish() error {
	// Level rights may touch more members' coupons but never add members.
	for _, ms := range r.order {
		r.applyLevel(ms)
		if err := r.levelRights(ms); err != nil {
			return err
		}
		if err := r.flushNotes(ms); err != nil {
			return err
		}
		if err := r.indexBirthday(ms); err != nil {
			return err
		}
		r.applyTagRules(ms)
		if err := r.writeTags(ms); err != nil {
			return err
		}
		if !ms.dirty {
			continue
		}
		ms.m.UpdatedAt = r.now
		if err := r.tx.PutMember(ms.m); err != nil {
			return fmt.Errorf("store member %s: %w", ms.m.ExternalUserID, err)
		}
	}
	if err := r.flushOutreach(); err != nil {
		return err
	}
	return r.flushWeekly()
}

func (r *run) applyLevel(ms *memberState) {
	if len(r.sc.Levels) == 0 {
		return
	}
	name, tag := "", ""
	if l := r.sc.LevelFor(ms.m.LevelPoints()); l != nil {
		name, tag = l.Name, l.Tag
	}
	if name == ms.m.Level {
		return
	}
	if old := r.sc.Level(ms.m.Level); old != nil && old.Tag != tag {
		r.removeTag(ms, old.Tag)
	}
	ms.m.Level = name
	ms.dirty = true
	r.addTag(ms, tag)
}

func (r *run) applyTagRules(ms *memberState) {
	for _, rule := range r.sc.TagRules {
		if !rule.Applies(ms.m, ms.matched) {
			continue
		}
		for _, t := range rule.Add {
			r.addTag(ms, t)
		}
		for _, t := range rule.Remove {
			r.removeTag(ms, t)
		}
	}
}

func (r *run) writeTags(ms *memberState) error {
	m := ms.m
	var staff []string
	seen := map[string]bool{}
	for _, f := range m.Follows {
		if f.Active() && !seen[f.StaffID] {
			staff = append(staff, f.StaffID)
			seen[f.StaffID] = true
		}
	}
	for _, s := range ms.alsoTag {
		if !seen[s] {
			staff = append(staff, s)
			seen[s] = true
		}
	}
	for _, s := range staff {
		add, remove := ms.added, ms.removed
		if ms.fullSync[s] {
			// A new relation carries no tags yet: give it all of them.
			add, remove = append([]string(nil), m.Tags...), nil
		}
		if len(add) == 0 && len(remove) == 0 {
			continue
		}
		if err := r.markTag("tag|"+r.ref+"|"+s, s, m.ExternalUserID, add, remove); err != nil {
			return err
		}
	}
	return nil
}

// markTag enqueues one mark_tag for the relation (staff, member).
func (r *run) markTag(key, staff, member string, add, remove []string) error {
	p := bot.MarkTag{StaffID: staff, ExternalUserID: member, Add: add, Remove: remove,
		Group: r.tagGroup(add, remove), TagGroups: map[string]string{}}
	for _, t := range append(append([]string(nil), add...), remove...) {
		if g := r.sc.TagGroupOf(t); g != "" {
			p.TagGroups[t] = g
		}
	}
	return r.enqueue(bot.ActionMarkTag, key, member, p, time.Time{}, time.Time{})
}

// tagGroup picks MarkTag.Group: the funnel's group when a stage tag is
// involved, else the group of the first tag.
func (r *run) tagGroup(add, remove []string) string {
	for _, t := range append(append([]string(nil), add...), remove...) {
		for _, s := range bot.Stages {
			if r.sc.Funnel.StageTag(s) == t && r.sc.Funnel.TagGroup != "" {
				return r.sc.Funnel.TagGroup
			}
		}
	}
	for _, t := range add {
		if g := r.sc.TagGroupOf(t); g != "" {
			return g
		}
	}
	return r.sc.Funnel.TagGroup
}

// getJSON reads a kv record; found is false when missing.
func (r *run) getJSON(bucket, key string, v any) (found bool, err error) {
	return readJSON(r.tx, bucket, key, v)
}

// readJSON reads a kv record in tx (the read models' path); found is false
// when missing.
func readJSON(tx bot.Tx, bucket, key string, v any) (found bool, err error) {
	raw, err := tx.Get(bucket, key)
	if errors.Is(err, bot.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s/%s: %w", bucket, key, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return true, nil
}

func (r *run) putJSON(bucket, key string, v any) error { return putJSON(r.tx, bucket, key, v) }

// putJSON writes a kv record in tx.
func putJSON(tx bot.Tx, bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := tx.Put(bucket, key, raw); err != nil {
		return fmt.Errorf("write %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Hot records: records most events of a batch change (a mass-send batch
// every follow-up joins, the week's counters), decoded once per write
// transaction and stored once before it commits (bot.TxLocal), instead of
// decoded and re-encoded on every event. Every engine read of such a
// record goes through loadHot and every write through saveHot; a caller
// that changes the copy loadHot returns saves it or fails the event (and
// with it the transaction and its copies). Without a TxLocal (PostgreSQL)
// each event reads and writes the record itself.

// hotKey names record bucket/key in the transaction's scratch space.
func hotKey(bucket, key string) string { return "hot\x00" + bucket + "\x00" + key }

// loadHot returns the transaction's copy of record bucket/key (nil when
// there is none).
func loadHot[T any](r *run, bucket, key string) (*T, error) { return loadHotTx[T](r.tx, bucket, key) }

// saveHot stores v as record bucket/key: v becomes the transaction's copy,
// written once before the commit.
func saveHot[T any](r *run, bucket, key string, v *T) error { return saveHotTx(r.tx, bucket, key, v) }

// loadHotTx is loadHot in tx.
func loadHotTx[T any](tx bot.Tx, bucket, key string) (*T, error) {
	l := bot.LocalOf(tx)
	if l != nil {
		if v, ok := l.Local()[hotKey(bucket, key)]; ok {
			return v.(*T), nil
		}
	}
	v := new(T)
	found, err := readJSON(tx, bucket, key, v)
	if err != nil || !found {
		return nil, err
	}
	if l != nil {
		l.Local()[hotKey(bucket, key)] = v
	}
	return v, nil
}

// saveHotTx is saveHot in tx.
func saveHotTx[T any](tx bot.Tx, bucket, key string, v *T) error {
	l := bot.LocalOf(tx)
	if l == nil {
		return putJSON(tx, bucket, key, v)
	}
	local, hk := l.Local(), hotKey(bucket, key)
	_, known := local[hk+"\x00saved"]
	local[hk] = v
	if !known {
		local[hk+"\x00saved"] = true
		l.BeforeCommit(func() error { return putJSON(tx, bucket, key, local[hk]) })
	}
	return nil
}

func (r *run) has(bucket, key string) (bool, error) {
	_, err := r.tx.Get(bucket, key)
	if errors.Is(err, bot.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s/%s: %w", bucket, key, err)
	}
	return true, nil
}
