package engine

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// contactAdd handles add_external_contact and add_half_external_contact: the
// customer added staff member ev.StaffID, through the channel ev.State.
func (r *run) contactAdd() error {
	ev := r.ev
	if ev.ExternalUserID == "" || ev.StaffID == "" {
		r.log.Warn().Msg("contact event without customer or staff id; skipped")
		return nil
	}
	ms, err := r.member(ev.ExternalUserID, true)
	if err != nil {
		return err
	}
	m := ms.m
	if name := ev.Data[bot.DataName]; name != "" && m.Name != name {
		m.Name = name
		ms.dirty = true
	}
	newFollow := r.follow(ms, ev.StaffID, ev.State)
	r.active(ms)
	ch := r.sc.ChannelByState(ev.State)
	if ev.State != "" && ch == nil && !strings.HasPrefix(ev.State, scenarios.ReferralStatePrefix) {
		r.log.Warn().Str("state", ev.State).Msg("unknown channel state; add it under channels to attribute and tag these members")
	}
	// First touch wins: the channel a member first came through stays theirs.
	if m.State == "" && ev.State != "" {
		m.State = ev.State
		if ch != nil {
			m.Channel = ch.Name
		}
		ms.dirty = true
	}
	if m.Lost {
		m.Lost = false
		ms.dirty = true
		r.removeTag(ms, r.sc.Funnel.LostTag)
		r.log.Info().Msg("lost member is back")
	}
	if newFollow && len(m.Follows) == 1 {
		r.tally(m, func(w *WeekStats) { w.Added++ }) // her first staff member: new traffic (流量)
	}
	r.moveTo(ms, bot.StageAware, CauseContactAdd, false)
	if ch != nil {
		for _, t := range ch.Tags {
			r.addTag(ms, t)
		}
	}
	if err := r.applyPendingOrders(ms); err != nil {
		return err
	}
	if newFollow {
		// After the welcome (which can't wait: its code lives 20 s): learn the
		// WeChat name, gender, unionid and the tags staff set by hand.
		if err := r.fetchProfile(m.ExternalUserID, time.Second); err != nil {
			return err
		}
	}
	if !newFollow {
		// The relation already stood (add_half followed by add, or a replay):
		// the welcome went out the first time.
		return nil
	}
	script := r.sc.WelcomeFor(ch)
	if script == nil {
		return nil
	}
	// Render with the state the member will have after this event (stage,
	// channel); levels and tag rules don't show in templates' fields.
	data := r.memberData(m)
	couponText, err := r.welcomeCoupon(ms, script)
	if err != nil {
		return err
	}
	if ev.WelcomeCode != "" {
		msg := bot.WelcomeMessage{
			WelcomeCode: ev.WelcomeCode,
			StaffID:     ev.StaffID,
			Text:        joinText(r.render(script.Text, data), couponText),
			Attachments: r.renderAttachments(script.Attachments, data),
		}
		// Keyed by the code: a code is usable once, so no two sends ever share one.
		if err := r.enqueue(bot.ActionWelcome, "welcome|"+ev.WelcomeCode, m.ExternalUserID, msg, r.now, r.at.Add(WelcomeCodeTTL)); err != nil {
			return err
		}
	} else {
		r.log.Info().Str("staff", ev.StaffID).Msg("no welcome code: the staff member has a welcome message set in the admin console, or WeCom sent none")
		if err := r.deliverCoupon(ms, "coupon|"+r.ref, couponText); err != nil {
			return err
		}
	}
	return r.welcomeFollowUps(ms, script, data)
}

// follow records the follow relation; it reports whether it is new (never
// seen, or re-added after a deletion).
func (r *run) follow(ms *memberState, staffID, state string) bool {
	m := ms.m
	f := m.Follow(staffID)
	if f != nil && f.Active() {
		return false
	}
	if f == nil {
		m.Follows = append(m.Follows, bot.Follow{StaffID: staffID, State: state, AddedAt: r.at})
	} else {
		f.State, f.AddedAt, f.DeletedAt, f.DeletedBy = state, r.at, time.Time{}, ""
	}
	ms.dirty = true
	ms.fullSync[staffID] = true
	return true
}

// contactEdit: staff edited a customer's remark or tags. Nothing to act on,
// except learning of a customer who was a contact before wecombot ran.
func (r *run) contactEdit() error {
	ev := r.ev
	if ev.ExternalUserID == "" || ev.StaffID == "" {
		return nil
	}
	ms, err := r.member(ev.ExternalUserID, true)
	if err != nil {
		return err
	}
	// Staff edited the customer (remark, tags set by hand): read them.
	if err := r.fetchProfile(ev.ExternalUserID, 0); err != nil {
		return err
	}
	if !ms.isNew {
		return nil
	}
	r.follow(ms, ev.StaffID, "")
	// Tags of a relation wecombot didn't create aren't known: don't full-sync.
	delete(ms.fullSync, ev.StaffID)
	r.moveTo(ms, bot.StageAware, CauseContactEdit, false)
	return nil
}

// contactDeleted: the customer deleted the staff member (by "customer",
// del_follow_user) or the staff member deleted the customer (by "staff",
// del_external_contact). With no relation left the member is lost; the
// stage and its history are kept.
func (r *run) contactDeleted(by string) error {
	ev := r.ev
	if ev.ExternalUserID == "" {
		return nil
	}
	ms, err := r.member(ev.ExternalUserID, false)
	if err != nil {
		return err
	}
	if ms == nil {
		r.log.Info().Msg("deletion of a contact wecombot never saw; nothing to do")
		return nil
	}
	m := ms.m
	f := m.Follow(ev.StaffID)
	if f == nil || !f.Active() {
		return nil // replay, or a relation we never saw
	}
	f.DeletedAt, f.DeletedBy = r.at, by
	ms.dirty = true
	reason := LossDeletedStaff
	if by == "staff" {
		reason = LossDeletedByStaff
	}
	if m.HasActiveFollow() || m.Lost {
		return r.loss(ms, reason, ev.StaffID) // loss.go
	}
	m.Lost = true
	r.log.Info().Str("by", by).Msg("member lost: no staff relation left")
	r.tally(m, func(w *WeekStats) { w.Lost++ })
	if by == "customer" {
		// The staff member still has the customer (one-sided), so the tag can be written.
		ms.alsoTag = append(ms.alsoTag, ev.StaffID)
	}
	r.addTag(ms, r.sc.Funnel.LostTag)
	return r.loss(ms, reason, ev.StaffID)
}

// isExternalID reports whether a group member id is a customer's
// external_userid (wm…/wo…) rather than a staff userid.
func isExternalID(id string) bool {
	return strings.HasPrefix(id, "wm") || strings.HasPrefix(id, "wo")
}

// fetchProfile owes an externalcontact/get for the member (after delay);
// the answer returns as an action result (profileLearned).
func (r *run) fetchProfile(externalUserID string, delay time.Duration) error {
	return r.enqueue(bot.ActionContactProfile, "profile|"+r.ref, externalUserID,
		bot.ContactProfile{ExternalUserID: externalUserID}, r.now.Add(delay), time.Time{})
}

// profileLearned stores what externalcontact/get said: the WeChat name
// (replacing the default), gender, unionid (orders can then name the member
// by unionid), each relation's state, and corp tags staff set by hand —
// learnt, not written back (they are on the customer already).
func (r *run) profileLearned(raw string) error {
	var p bot.ContactProfileData
	if err := json.Unmarshal([]byte(raw), &p); err != nil || p.ExternalUserID == "" {
		r.log.Warn().Msg("contact profile result unreadable; ignored")
		return nil
	}
	ms, err := r.member(p.ExternalUserID, false)
	if err != nil || ms == nil {
		return err
	}
	m := ms.m
	set := func(dst *string, v string) {
		if v != "" && *dst != v {
			*dst, ms.dirty = v, true
		}
	}
	set(&m.Name, p.Name)
	set(&m.UnionID, p.UnionID)
	if p.Gender != 0 && m.Gender != p.Gender {
		m.Gender, ms.dirty = p.Gender, true
	}
	if p.UnionID != "" {
		if err := r.tx.Put(bucketUnionIDs, p.UnionID, []byte(m.ExternalUserID)); err != nil {
			return err
		}
	}
	for _, f := range p.Follows {
		if m.State == "" && f.State != "" {
			m.State, ms.dirty = f.State, true
			if ch := r.sc.ChannelByState(f.State); ch != nil {
				m.Channel = ch.Name
			}
		}
		for _, t := range f.Tags {
			if !slices.Contains(m.Tags, t) {
				m.Tags, ms.dirty = append(m.Tags, t), true
			}
		}
	}
	return nil
}
