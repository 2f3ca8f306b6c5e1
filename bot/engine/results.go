package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wecombot/wecombot/bot"
)

// Buckets for what WeCom created for us.
const (
	// group_welcome_tpl: template name → template_id (from the add's result).
	bucketGroupWelcomeTpl = bot.BucketGroupWelcomeTpl
	// contact_ways: state → ContactWayRecord.
	bucketContactWays = bot.BucketContactWays
)

// ContactWayRecord is a "contact me" code wecombot created.
type ContactWayRecord struct {
	State  string   `json:"state"`
	Staff  []string `json:"staff,omitempty"`
	Remark string   `json:"remark,omitempty"`
	// ChatIDs are set for a group QR code (加入群聊): the groups it leads to.
	ChatIDs   []string  `json:"chat_ids,omitempty"`
	ConfigID  string    `json:"config_id,omitempty"`
	QRCode    string    `json:"qr_code,omitempty"`
	Requested time.Time `json:"requested_at"`
	Created   time.Time `json:"created_at,omitzero"`
}

// ContactWay returns the contact way stored for state (nil if none yet).
// The admin API and CLI read it after asking for one.
func ContactWay(tx bot.Tx, state string) (*ContactWayRecord, error) {
	var rec ContactWayRecord
	if found, err := readJSON(tx, bucketContactWays, state, &rec); err != nil || !found {
		return nil, err
	}
	return &rec, nil
}

// ContactWays lists stored contact ways by state.
func ContactWays(tx bot.Tx) ([]ContactWayRecord, error) {
	var out []ContactWayRecord
	var bad error
	err := tx.Scan(bucketContactWays, "", func(k string, v []byte) bool {
		var rec ContactWayRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			bad = fmt.Errorf("decode contact way %s: %w", k, err)
			return false
		}
		out = append(out, rec)
		return true
	})
	if err == nil {
		err = bad
	}
	return out, err
}

// MaxStateLen is WeCom's limit on a contact way's state.
const MaxStateLen = 30

// contactWayCreate asks WeCom for a "contact me" code (operator request:
// Data state, staff, remark). A known channel's staff and verify setting
// apply when the request names no staff. Asking again for the same state
// and staff is a no-op.
func (r *run) contactWayCreate() error {
	d := r.ev.Data
	state := strings.TrimSpace(d["state"])
	if state == "" || utf8.RuneCountInString(state) > MaxStateLen {
		r.log.Warn().Str("state", state).Msg("contact way: state must be 1-30 characters")
		return nil
	}
	var staff []string
	for _, s := range strings.Split(d["staff"], ",") {
		if s = strings.TrimSpace(s); s != "" {
			staff = append(staff, s)
		}
	}
	cw := bot.ContactWay{State: state, Remark: d["remark"]}
	if ch := r.sc.ChannelByState(state); ch != nil && ch.Group != nil {
		return r.groupJoinWayCreate(ch, d["remark"])
	} else if ch != nil {
		if len(staff) == 0 {
			staff = ch.Staff
		}
		cw.Verify = !ch.SkipVerify
		if cw.Remark == "" {
			cw.Remark = ch.Name
		}
	}
	if len(staff) == 0 {
		r.log.Warn().Str("state", state).Msg("contact way: no staff given and the channel names none")
		return nil
	}
	sort.Strings(staff)
	cw.Staff = staff
	if utf8.RuneCountInString(cw.Remark) > MaxStateLen {
		cw.Remark = string([]rune(cw.Remark)[:MaxStateLen])
	}
	rec, err := ContactWay(r.tx, state)
	if err != nil {
		return err
	}
	if rec == nil || rec.ConfigID == "" {
		rec = &ContactWayRecord{State: state, Staff: staff, Remark: cw.Remark, Requested: r.now}
		if err := r.putJSON(bucketContactWays, state, rec); err != nil {
			return err
		}
	}
	key := "contact_way|" + state + "|" + shortHash(strings.Join(staff, ","))
	return r.enqueue(bot.ActionContactWay, key, "", cw, time.Time{}, time.Time{})
}

// actionResult stores what a sent action created in WeCom.
func (r *run) actionResult() error {
	d := r.ev.Data
	kind := bot.ActionKind(d[bot.ResultKind])
	switch kind {
	case bot.ActionGroupWelcome:
		if d["name"] != "" && d["template_id"] != "" {
			if err := r.tx.Put(bucketGroupWelcomeTpl, d["name"], []byte(d["template_id"])); err != nil {
				return fmt.Errorf("store group welcome template id: %w", err)
			}
			r.log.Info().Str("template", d["name"]).Str("template_id", d["template_id"]).Msg("group welcome template stored")
		}
	case bot.ActionGroupDetail:
		return r.groupDetailResult(d)
	case bot.ActionTransferCustomers, bot.ActionTransferPoll:
		return r.transferOutcome(kind, d)
	case bot.ActionTransferGroups:
		return r.transferGroupsResult(d)
	case bot.ActionKfTransfer:
		return r.kfTransferDone(d)
	case bot.ActionMassSend:
		return r.massTaskResult(d)
	case bot.ActionKfMessage, bot.ActionStaffMessage:
		return r.deliveredOutcome(d) // outcome.go
	case bot.ActionMassResult:
		return r.massPollResult(d)
	case bot.ActionTimer:
		switch d[dataTimer] {
		case timerMassBatch:
			return r.massBatchClose(d[bot.DataBatch])
		case timerOutreachPage:
			return r.outreachPageResult(d) // broadcast.go
		case timerFollowUps:
			return r.followUpsDue(d) // followups.go
		}
	case bot.ActionContactProfile:
		return r.profileLearned(d["profile"])
	case bot.ActionContactWay, bot.ActionGroupJoinWay:
		rec, err := ContactWay(r.tx, d["state"])
		if err != nil {
			return err
		}
		if rec == nil {
			rec = &ContactWayRecord{State: d["state"], Requested: r.at}
		}
		rec.ConfigID, rec.QRCode, rec.Created = d["config_id"], d["qr_code"], r.at
		if d["staff"] != "" {
			rec.Staff = strings.Split(d["staff"], ",")
		}
		if err := r.putJSON(bucketContactWays, d["state"], rec); err != nil {
			return err
		}
		r.log.Info().Str("state", rec.State).Str("config_id", rec.ConfigID).Str("kind", string(kind)).Msg("contact me / group QR code created")
		// A member's personal invite code is a contact way too (referral.go).
		return r.inviteCodeReady(d)
	}
	return nil
}

// Guard is asked by the outbox right before it delivers an action: for
// follow-ups it returns a check whose non-empty reason cancels the action —
// the member has since deleted the staff member (or every staff member).
// Other actions need no check (nil).
func Guard(a *bot.Action) func(tx bot.Tx) (reason string, err error) {
	owed := a.Purpose == bot.PurposeFollowUp || a.Purpose == bot.PurposeOutreach
	if a.Kind == bot.ActionKfMessage {
		// A person may have taken the 微信客服 session since it was queued.
		return func(tx bot.Tx) (string, error) {
			check := kfGuard
			if a.Purpose == bot.PurposeOutreach {
				check = outreachKfGuard
			}
			if reason, err := check(tx, a); reason != "" || err != nil {
				return reason, err
			}
			if owed && a.MemberID != "" {
				return stillOwed(tx, a)
			}
			return "", nil
		}
	}
	if !owed || a.MemberID == "" {
		return nil
	}
	return func(tx bot.Tx) (string, error) { return stillOwed(tx, a) }
}

// stillOwed returns why a follow-up, broadcast or SOP step must not go out
// any more, or "".
func stillOwed(tx bot.Tx, a *bot.Action) (string, error) {
	if reason, err := followUpStillApplies(tx, a); reason != "" || err != nil {
		return reason, err
	}
	return sopStopped(tx, a)
}

// followUpStillApplies returns why follow-up a must not go out, or "".
func followUpStillApplies(tx bot.Tx, a *bot.Action) (reason string, err error) {
	sender := ""
	if a.Kind == bot.ActionMassSend {
		var p bot.MassSend
		if err := a.Decode(&p); err == nil {
			sender = p.Sender
		}
	}
	return memberReachable(tx, a.MemberID, sender)
}

// memberReachable returns why a message to the member (from sender, when
// set) can no longer reach her, or "".
func memberReachable(tx bot.Tx, memberID, sender string) (reason string, err error) {
	m, err := tx.Member(memberID)
	if err != nil {
		if errors.Is(err, bot.ErrNotFound) {
			return "member unknown", nil
		}
		return "", err
	}
	if m.Lost {
		return "member lost (deleted every staff member)", nil
	}
	if sender != "" {
		if f := m.Follow(sender); f == nil || !f.Active() {
			return "member no longer follows " + sender, nil
		}
	}
	return "", nil
}
