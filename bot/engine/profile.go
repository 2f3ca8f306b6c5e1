package engine

// The profile form (问卷, 用户画像): a member's signed H5 link opens the
// scenario's questionnaire; her submission is a profile.submit event (from
// the page, or an operator's API call) that this file applies: answers on
// the member, choice tags marked (and those of choices she no longer picks
// removed), the birthday stored for level rights and SOP triggers, and the
// form's points given once, on her first submission.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/scenarios"
)

// EventProfileSubmit is a member's (or an operator's) submission of the
// profile form. Data[DataProfileAnswers] is a JSON object: field key →
// list of values.
const EventProfileSubmit bot.EventType = "profile.submit"

// Profile form event data, link and ledger names.
const (
	DataProfileAnswers = "answers"
	// ProfilePurpose is the signed link purpose of a member's form page; its subject is her id.
	ProfilePurpose = "profile"
	// PathProfile is the form page's path (bot/server serves it).
	PathProfile = "/profile"
	// ReasonProfile is the points ledger reason of the form's reward.
	ReasonProfile = "profile"
)

// ProfileDedupeKey identifies one submission: the same answers posted twice
// (a double tap, a browser retry) are one event.
func ProfileDedupeKey(member string, answers map[string][]string) string {
	raw, _ := json.Marshal(answers) // map keys are sorted: stable
	sum := sha256.Sum256(append([]byte(member+"\x00"), raw...))
	return "profile|" + member + "|" + hex.EncodeToString(sum[:12])
}

// profileLink is the member's signed form page, or "" without a form or links.
func (r *run) profileLink(member string) string {
	f := r.sc.ProfileForm
	if f == nil {
		return ""
	}
	return r.link(PathProfile, ProfilePurpose, member, f.LinkTTL)
}

// memberData is the template data of a message to m, with her form link.
func (r *run) memberData(m *bot.Member) scenarios.TemplateData {
	d := r.sc.DataFor(m)
	if m != nil {
		d.ProfileLink = r.profileLink(m.ExternalUserID)
	}
	return d
}

// profileCommand answers the form's keywords in 微信客服 with her link.
func (r *run) profileCommand(ms *memberState, surface, text string) (bool, error) {
	f := r.sc.ProfileForm
	if f == nil || ms == nil || surface != scenarios.SurfaceKf || !f.IsKeyword(text) {
		return false, nil
	}
	if r.e.links == nil {
		r.log.Warn().Msg("profile form asked for but WECOMBOT_PUBLIC_URL / the link secret are not set; no link to send")
		return false, nil
	}
	key := "reply|" + r.ref
	msg := bot.KfMessage{OpenKfID: r.ev.OpenKfID, ExternalUserID: ms.m.ExternalUserID,
		Text: r.render(f.Reply, r.memberData(ms.m)), MsgID: kfMsgID(key)}
	return true, r.enqueue(bot.ActionKfMessage, key, ms.m.ExternalUserID, msg, time.Time{}, time.Time{})
}

// profileSubmit applies a submission. Answers are validated again against
// the form in force (the page checked them against the form it showed): a
// refused one changes nothing.
func (r *run) profileSubmit() error {
	f := r.sc.ProfileForm
	ev := r.ev
	log := r.log.With().Str("member", ev.ExternalUserID).Logger()
	if f == nil {
		log.Warn().Msg("profile form submitted but the scenario has no profile_form; ignored")
		return nil
	}
	ms, err := r.member(ev.ExternalUserID, false)
	if err != nil || ms == nil {
		if ms == nil && err == nil {
			log.Warn().Msg("profile form from an unknown member; ignored")
		}
		return err
	}
	var raw map[string][]string
	if err := json.Unmarshal([]byte(ev.Data[DataProfileAnswers]), &raw); err != nil {
		log.Warn().Err(err).Msg("profile form answers are not a JSON object; ignored")
		return nil
	}
	answers, ferr := f.Answers(raw, r.at)
	if ferr != nil {
		log.Warn().Str("field", ferr.Field).Str("reason", ferr.Reason).Msg("profile form answer refused; nothing changed")
		return checkin.SaveResult(r.tx, ev.DedupeKey, "未能保存："+ferr.Reason)
	}
	m := ms.m
	first := m.Profile == nil
	p := &bot.Profile{Form: f.Title, Answers: answers, CompletedAt: r.at, UpdatedAt: r.at}
	if !first {
		p.CompletedAt = m.Profile.CompletedAt
	}
	m.Profile = p
	for _, fd := range f.Fields {
		if fd.Type == scenarios.FieldBirthday {
			m.Birthday = ""
			if a := p.Answer(fd.Key); a != nil {
				m.Birthday = a.Value
			}
		}
	}
	ms.dirty = true
	add, remove := f.ChoiceTags(answers)
	for _, t := range remove {
		r.removeTag(ms, t)
	}
	for _, t := range add {
		r.addTag(ms, t)
	}
	if first && f.Points > 0 {
		if err := r.addPoints(ms, int64(f.Points), ReasonProfile, ""); err != nil {
			return err
		}
	}
	log.Info().Bool("first", first).Int("answers", len(answers)).Msg("profile form saved")
	text := r.render(f.Done, r.memberData(m))
	if text == "" {
		text = "已保存，感谢填写！"
		if first && f.Points > 0 {
			text += "积分已到账。"
		}
	}
	return checkin.SaveResult(r.tx, ev.DedupeKey, text)
}
