package engine

// Referral (fission, 老带新): each member can ask in 微信客服 for a personal
// "contact me" code whose state is "r:<short id>"; WeCom creates it through
// an outbox action (add_contact_way) whose result comes back as an
// action.result event. A customer who adds staff through that code is the
// member's invitee: counted once, never for themselves, only when new to the
// brand, and only after they stayed `referral.hold` (an invitee who deletes
// the staff member earlier is void). Rewards (points, coupon, tag, text)
// are given once each as counted invites reach their thresholds.
//
// Holds settle in the after hook of whatever event comes next once they are
// due (a seek in an ordered bucket), so no timer is needed; in a silent
// system the credit waits for the next event.
//
// KV buckets:
//
//	referral_states    <state> → referrer member id
//	referral_members   <member> → referrerRecord (state, counts, rewards given)
//	referral_invitees  <invitee> → inviteRecord (referrer, status)
//	referral_due       <due, RFC 3339 UTC>|<invitee> → present: holds to settle
//	referral_seq       "n" → the last short id handed out

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

const (
	bucketReferralStates   = bot.BucketReferralStates
	bucketReferralMembers  = bot.BucketReferralMembers
	bucketReferralInvitees = bot.BucketReferralInvitees
	bucketReferralDue      = bot.BucketReferralDue
	bucketReferralSeq      = bot.BucketReferralSeq
)

// Invitee statuses.
const (
	InvitePending = "pending" // inside the hold
	InviteCounted = "counted"
	InviteVoid    = "void"     // deleted the staff member within the hold
	InviteKnown   = "existing" // was already a member: not an acquisition
)

// maxSettlePerEvent bounds the holds one event settles, so a backlog never
// makes one transaction large.
const maxSettlePerEvent = 50

// ReferrerRecord is a member's invite code and results.
type ReferrerRecord struct {
	State   string `json:"state"`
	Counted int    `json:"counted"`
	Pending int    `json:"pending"`
	Void    int    `json:"void"`
	// Rewarded lists the thresholds (invites) already rewarded.
	Rewarded []int `json:"rewarded,omitempty"`
	// Posters counts the 任务宝 posters sent her, PosterAt the first;
	// PosterOwed is set while she waits for one until WeCom makes her code.
	Posters    int       `json:"posters,omitempty"`
	PosterAt   time.Time `json:"poster_at,omitzero"`
	PosterOwed bool      `json:"poster_owed,omitempty"`
}

// InviteRecord is one invitee.
type InviteRecord struct {
	Referrer string    `json:"referrer"`
	Status   string    `json:"status"`
	At       time.Time `json:"at"`
	DueAt    time.Time `json:"due_at,omitzero"`
	Settled  time.Time `json:"settled_at,omitzero"`
}

// referralCommand answers the referral keywords in 微信客服 with the member's
// invite code, asking WeCom for one the first time.
func (r *run) referralCommand(ms *memberState, surface, text string) (bool, error) {
	ref := r.sc.Referral
	if ref == nil || ms == nil || surface != scenarios.SurfaceKf || !ref.IsKeyword(text) {
		return false, nil
	}
	m := ms.m
	rec, qr, ask, err := r.inviteCode(ref, ms)
	if err != nil || (qr == "" && ask == nil) {
		return true, err
	}
	data := r.sc.DataFor(m)
	reply := r.render(ref.Pending, data)
	if reply == "" {
		reply = "你的专属邀请码正在生成，马上发给你～"
	}
	if qr != "" {
		reply = r.inviteText(ref, data, qr, rec)
	}
	if err := r.kfReply(ms, reply, r.ev.OpenKfID, false); err != nil {
		return true, err
	}
	return true, r.askInviteCode(m, ask)
}

// askInviteCode asks WeCom for her invite code (nil ask: nothing to ask).
// Keyed by member: asking again before WeCom answers doesn't make a second code.
func (r *run) askInviteCode(m *bot.Member, ask *bot.ContactWay) error {
	if ask == nil {
		return nil
	}
	return r.enqueue(bot.ActionContactWay, "invite|"+m.ExternalUserID, m.ExternalUserID, *ask, time.Time{}, time.Time{})
}

// inviteCode returns the member's referrer record (holds settled first, so
// its counts are current) and her code's picture URL, or, while she has no
// code yet, what to ask WeCom for (add_contact_way, see askInviteCode),
// handing out her state the first time. Both are empty when no staff member
// can be put on the code (logged).
func (r *run) inviteCode(ref *scenarios.Referral, ms *memberState) (rec ReferrerRecord, qr string, ask *bot.ContactWay, err error) {
	m := ms.m
	if err := r.settleDue(ref); err != nil {
		return rec, "", nil, err
	}
	if _, err := r.getJSON(bucketReferralMembers, m.ExternalUserID, &rec); err != nil {
		return rec, "", nil, err
	}
	if rec.State == "" {
		state, err := r.newReferralState()
		if err != nil {
			return rec, "", nil, err
		}
		rec.State = state
		if err := r.tx.Put(bucketReferralStates, state, []byte(m.ExternalUserID)); err != nil {
			return rec, "", nil, fmt.Errorf("record invite state: %w", err)
		}
		if err := r.putJSON(bucketReferralMembers, m.ExternalUserID, rec); err != nil {
			return rec, "", nil, err
		}
	}
	way, err := ContactWay(r.tx, rec.State)
	if err != nil {
		return rec, "", nil, err
	}
	if way != nil && way.QRCode != "" {
		return rec, way.QRCode, nil, nil
	}
	staff := ref.Staff
	if s := m.PrimaryStaff(); s != "" {
		staff = []string{s}
	}
	if len(staff) == 0 {
		r.log.Warn().Msg("no staff member for the invite code: the member follows nobody and referral.staff is empty")
		return rec, "", nil, nil
	}
	remark := "邀请-" + m.ExternalUserID
	if n := []rune(remark); len(n) > MaxStateLen {
		remark = string(n[:MaxStateLen])
	}
	return rec, "", &bot.ContactWay{State: rec.State, Staff: staff, Remark: remark}, nil
}

func (r *run) inviteText(ref *scenarios.Referral, data scenarios.TemplateData, qr string, rec ReferrerRecord) string {
	text := r.render(ref.CodeReady, data)
	if text == "" {
		text = "这是你的专属邀请码，好友扫码添加我们即可～"
	}
	text += "\n" + qr
	if rec.Counted+rec.Pending > 0 {
		text += fmt.Sprintf("\n已成功邀请 %d 位好友", rec.Counted)
		if rec.Pending > 0 {
			text += fmt.Sprintf("，%d 位确认中", rec.Pending)
		}
	}
	return text
}

// newReferralState hands out "r:" + the next short id (base 36).
func (r *run) newReferralState() (string, error) {
	n := uint64(0)
	raw, err := r.tx.Get(bucketReferralSeq, "n")
	switch {
	case err == nil:
		if n, err = strconv.ParseUint(string(raw), 10, 64); err != nil {
			return "", fmt.Errorf("referral sequence: %w", err)
		}
	case !errors.Is(err, bot.ErrNotFound):
		return "", err
	}
	n++
	if err := r.tx.Put(bucketReferralSeq, "n", []byte(strconv.FormatUint(n, 10))); err != nil {
		return "", err
	}
	return scenarios.ReferralStatePrefix + strconv.FormatUint(n, 36), nil
}

// inviteCodeReady sends the member their new invite code when WeCom
// returns it.
func (r *run) inviteCodeReady(data map[string]string) error {
	state := data["state"]
	ref := r.sc.Referral
	if ref == nil || !strings.HasPrefix(state, scenarios.ReferralStatePrefix) || data["qr_code"] == "" {
		return nil
	}
	raw, err := r.tx.Get(bucketReferralStates, state)
	if errors.Is(err, bot.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	ms, err := r.member(string(raw), false)
	if err != nil || ms == nil {
		return err
	}
	var rec ReferrerRecord
	if _, err := r.getJSON(bucketReferralMembers, ms.m.ExternalUserID, &rec); err != nil {
		return err
	}
	if rec.PosterOwed {
		return r.posterReady(ms, &rec, data["qr_code"])
	}
	return r.deliverCoupon(ms, "invite_ready|"+state, r.inviteText(ref, r.sc.DataFor(ms.m), data["qr_code"], rec))
}

// referralAfter credits invitees on adds, voids holds on deletions and
// settles the holds that are due.
func (r *run) referralAfter() error {
	ref := r.sc.Referral
	if ref == nil {
		return nil
	}
	ev := r.ev
	switch ev.Type {
	case bot.EventContactAdd, bot.EventContactAddHalf:
		if strings.HasPrefix(ev.State, scenarios.ReferralStatePrefix) && ev.ExternalUserID != "" {
			if err := r.creditInvite(ref); err != nil {
				return err
			}
		}
	case bot.EventContactDelFollow, bot.EventContactDel:
		if err := r.voidInvite(); err != nil {
			return err
		}
	}
	return r.settleDue(ref)
}

func (r *run) creditInvite(ref *scenarios.Referral) error {
	ev := r.ev
	invitee := ev.ExternalUserID
	ms, err := r.member(invitee, false)
	if err != nil || ms == nil {
		return err
	}
	raw, err := r.tx.Get(bucketReferralStates, ev.State)
	if errors.Is(err, bot.ErrNotFound) {
		r.log.Warn().Str("state", ev.State).Msg("add through an invite code wecombot doesn't know; not credited")
		return nil
	} else if err != nil {
		return err
	}
	referrer := string(raw)
	// Attribute the invitee to the referral channel (first touch only).
	if ms.m.State == ev.State && ms.m.Channel == "" && ref.Channel != "" {
		ms.m.Channel = ref.Channel
		ms.dirty = true
		for _, t := range ref.Tags {
			r.addTag(ms, t)
		}
	}
	log := r.log.With().Str("referrer", referrer).Str("invitee", invitee).Logger()
	if referrer == invitee {
		log.Info().Msg("member added staff through their own invite code; not counted")
		r.e.metrics.Referral("self")
		return nil
	}
	var inv InviteRecord
	found, err := r.getJSON(bucketReferralInvitees, invitee, &inv)
	if err != nil {
		return err
	}
	if found {
		if inv.Referrer != referrer || !inv.At.Equal(r.at) {
			log.Info().Str("first_referrer", inv.Referrer).Msg("invitee already counted once; not counted again")
			r.e.metrics.Referral("repeat")
		}
		return nil
	}
	if !ms.isNew {
		log.Info().Msg("invitee was already a member; not counted as an invite")
		r.e.metrics.Referral("existing")
		return r.putJSON(bucketReferralInvitees, invitee, InviteRecord{Referrer: referrer, Status: InviteKnown, At: r.at})
	}
	due := r.at.Add(ref.Hold)
	inv = InviteRecord{Referrer: referrer, Status: InvitePending, At: r.at, DueAt: due}
	if err := r.putJSON(bucketReferralInvitees, invitee, inv); err != nil {
		return err
	}
	if err := r.tx.Put(bucketReferralDue, dueKey(due, invitee), present); err != nil {
		return fmt.Errorf("schedule invite hold: %w", err)
	}
	var rec ReferrerRecord
	if _, err := r.getJSON(bucketReferralMembers, referrer, &rec); err != nil {
		return err
	}
	rec.Pending++
	log.Info().Time("counts_at", due).Msg("invitee added staff; counted once they stay through the hold")
	r.e.metrics.Referral("pending")
	return r.putJSON(bucketReferralMembers, referrer, rec)
}

func dueKey(due time.Time, invitee string) string {
	return due.UTC().Format("2006-01-02T15:04:05Z") + "|" + invitee
}

// voidInvite: an invitee who leaves every staff member inside the hold
// doesn't count.
func (r *run) voidInvite() error {
	invitee := r.ev.ExternalUserID
	if invitee == "" {
		return nil
	}
	var inv InviteRecord
	found, err := r.getJSON(bucketReferralInvitees, invitee, &inv)
	if err != nil || !found || inv.Status != InvitePending {
		return err
	}
	ms, err := r.member(invitee, false)
	if err != nil || ms == nil || ms.m.HasActiveFollow() {
		return err
	}
	if !r.at.Before(inv.DueAt) {
		return nil // the hold is over: settleDue counts it
	}
	inv.Status, inv.Settled = InviteVoid, r.at
	if err := r.putJSON(bucketReferralInvitees, invitee, inv); err != nil {
		return err
	}
	if err := r.tx.Delete(bucketReferralDue, dueKey(inv.DueAt, invitee)); err != nil {
		return err
	}
	var rec ReferrerRecord
	if _, err := r.getJSON(bucketReferralMembers, inv.Referrer, &rec); err != nil {
		return err
	}
	rec.Pending = max(rec.Pending-1, 0)
	rec.Void++
	r.log.Info().Str("referrer", inv.Referrer).Str("invitee", invitee).Msg("invitee left within the hold; invite not counted")
	r.e.metrics.Referral("void")
	return r.putJSON(bucketReferralMembers, inv.Referrer, rec)
}

// settleDue counts the invitees whose hold ended by this event's time.
func (r *run) settleDue(ref *scenarios.Referral) error {
	now := dueKey(r.at, "")
	var due []string
	if err := r.tx.Scan(bucketReferralDue, "", func(k string, _ []byte) bool {
		at, _, _ := strings.Cut(k, "|")
		if at+"|" > now || len(due) >= maxSettlePerEvent {
			return false
		}
		due = append(due, k)
		return true
	}); err != nil {
		return fmt.Errorf("scan invite holds: %w", err)
	}
	for _, k := range due {
		if err := r.tx.Delete(bucketReferralDue, k); err != nil {
			return err
		}
		_, invitee, _ := strings.Cut(k, "|")
		var inv InviteRecord
		found, err := r.getJSON(bucketReferralInvitees, invitee, &inv)
		if err != nil {
			return err
		}
		if !found || inv.Status != InvitePending {
			continue
		}
		// A deletion inside the hold voids it; check the relation now too,
		// in case the deletion came while the invitee had another staff member.
		if m, err := r.member(invitee, false); err != nil {
			return err
		} else if m != nil && !m.m.HasActiveFollow() {
			if last := lastDeletion(m.m); !last.IsZero() && last.Before(inv.DueAt) {
				inv.Status = InviteVoid
			}
		}
		if inv.Status != InviteVoid {
			inv.Status = InviteCounted
		}
		inv.Settled = r.at
		if err := r.putJSON(bucketReferralInvitees, invitee, inv); err != nil {
			return err
		}
		if err := r.creditReferrer(ref, inv); err != nil {
			return err
		}
	}
	return nil
}

func lastDeletion(m *bot.Member) time.Time {
	var last time.Time
	for _, f := range m.Follows {
		if f.DeletedAt.After(last) {
			last = f.DeletedAt
		}
	}
	return last
}

// creditReferrer applies a settled invite to the referrer and gives the
// rewards whose thresholds are now reached, each once.
func (r *run) creditReferrer(ref *scenarios.Referral, inv InviteRecord) error {
	var rec ReferrerRecord
	if _, err := r.getJSON(bucketReferralMembers, inv.Referrer, &rec); err != nil {
		return err
	}
	rec.Pending = max(rec.Pending-1, 0)
	if inv.Status == InviteVoid {
		rec.Void++
		r.e.metrics.Referral("void")
		return r.putJSON(bucketReferralMembers, inv.Referrer, rec)
	}
	rec.Counted++
	r.e.metrics.Referral("counted")
	ms, err := r.member(inv.Referrer, false)
	if err != nil {
		return err
	}
	if ms != nil {
		r.tally(ms.m, func(w *WeekStats) { w.Invited++ }) // the K-factor's numerator, by the referrer's channel
	}
	r.log.Info().Str("referrer", inv.Referrer).Int("invites", rec.Counted).Msg("invite counted")
	var texts []string
	for _, rw := range ref.Rewards {
		if rw.Invites > rec.Counted || slices.Contains(rec.Rewarded, rw.Invites) || ms == nil {
			continue
		}
		rec.Rewarded = append(rec.Rewarded, rw.Invites)
		if err := r.addPoints(ms, int64(rw.Points), fmt.Sprintf("referral:%d", rw.Invites), ""); err != nil {
			return err
		}
		r.addTag(ms, rw.Tag)
		data := r.sc.DataFor(ms.m)
		if t := r.render(rw.Text, data); t != "" {
			texts = append(texts, t)
		}
		if rw.Coupon != nil {
			res, err := r.issue(ms, rw.Coupon, fmt.Sprintf("referral:%d", rw.Invites))
			if err != nil {
				return err
			}
			if res.text != "" {
				texts = append(texts, res.text)
			}
		}
	}
	if err := r.putJSON(bucketReferralMembers, inv.Referrer, rec); err != nil {
		return err
	}
	if ms != nil && len(texts) > 0 {
		return r.deliverCoupon(ms, fmt.Sprintf("referral|%s|%d", inv.Referrer, rec.Counted), joinText(texts...))
	}
	return nil
}

// Referral returns a member's invite record (nil if they never asked for a
// code), for the dashboard.
func Referral(tx bot.Tx, member string) (*ReferrerRecord, error) {
	raw, err := tx.Get(bucketReferralMembers, member)
	if errors.Is(err, bot.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec ReferrerRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// ReferralLeader is one row of the invite leaderboard.
type ReferralLeader struct {
	Member string `json:"external_user_id"`
	ReferrerRecord
}

// ReferralLeaders returns the members with the most counted invites (then
// pending), at most limit, for the dashboard.
func ReferralLeaders(tx bot.Tx, limit int) ([]ReferralLeader, error) {
	var out []ReferralLeader
	var bad error
	err := tx.Scan(bucketReferralMembers, "", func(k string, v []byte) bool {
		var rec ReferrerRecord
		if bad = json.Unmarshal(v, &rec); bad != nil {
			return false
		}
		if rec.Counted+rec.Pending > 0 {
			out = append(out, ReferralLeader{Member: k, ReferrerRecord: rec})
		}
		return true
	})
	if err = errors.Join(err, bad); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b ReferralLeader) int {
		if a.Counted != b.Counted {
			return b.Counted - a.Counted
		}
		return b.Pending - a.Pending
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
