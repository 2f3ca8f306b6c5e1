package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// groupRecord is what the engine knows of a customer group (客户群).
type groupRecord struct {
	ChatID      string    `json:"chat_id"`
	Name        string    `json:"name,omitempty"`
	Owner       string    `json:"owner,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	DismissedAt time.Time `json:"dismissed_at,omitzero"`
	// Members is where records written before group_members held the
	// group's customers; loadGroup moves them there.
	Members []string `json:"members,omitempty"`
	// DetailOwed is the key of the groupchat/get owed and not answered
	// yet (since DetailSince); DetailAgain, that the group changed since
	// and is read once more when it is answered (fetchGroupDetail).
	DetailOwed  string    `json:"detail_owed,omitempty"`
	DetailSince time.Time `json:"detail_since,omitzero"`
	DetailAgain bool      `json:"detail_again,omitempty"`
}

// A group's customers are keys in group_members (chat_id ‖ external_userid),
// not a list in the record: a join or leave writes one key instead of
// re-encoding every member of a 500-member group.

func groupMemberKey(chatID, id string) string { return chatID + bot.IndexSep + id }

// loadGroup reads the group's record, moving a list of members an older
// record holds to group_members.
func (r *run) loadGroup(chatID string) (*groupRecord, error) {
	g := &groupRecord{ChatID: chatID}
	if _, err := r.getJSON(bucketGroups, chatID, g); err != nil {
		return nil, err
	}
	if len(g.Members) > 0 {
		for _, id := range g.Members {
			if err := r.tx.Put(bucketGroupMembers, groupMemberKey(chatID, id), present); err != nil {
				return nil, err
			}
		}
		g.Members = nil
		if err := r.putJSON(bucketGroups, chatID, g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// groupMembers returns the customers known to be in group chatID, in id order.
func (r *run) groupMembers(chatID string) ([]string, error) {
	return GroupMembers(r.tx, chatID)
}

// GroupMembers returns the customers known to be in group chatID, in
// external_userid order.
func GroupMembers(tx bot.Tx, chatID string) ([]string, error) {
	var out []string
	prefix := groupMemberKey(chatID, "")
	err := tx.Scan(bucketGroupMembers, prefix, func(k string, _ []byte) bool {
		out = append(out, k[len(prefix):])
		return true
	})
	return out, err
}

func (r *run) groupCreate() error {
	if r.ev.ChatID == "" {
		return nil
	}
	g, err := r.loadGroup(r.ev.ChatID)
	if err != nil {
		return err
	}
	if g.CreatedAt.IsZero() {
		g.CreatedAt = r.at
	}
	if r.ev.StaffID != "" {
		g.Owner = r.ev.StaffID
	}
	// The callback names neither the owner nor the name: groupchat/get does.
	if err := r.fetchGroupDetail(g, nil); err != nil {
		return err
	}
	return r.putJSON(bucketGroups, g.ChatID, g)
}

// groupUpdate handles members joining (join_group signal) and leaving.
func (r *run) groupUpdate() error {
	ev := r.ev
	if ev.ChatID == "" {
		return nil
	}
	switch ev.UpdateDetail {
	case bot.GroupChangeOwner, bot.GroupChangeName:
		// Read back (groupchat/get): the owner changes only there, and the
		// owner sends the group's mass-send tasks.
		g, err := r.loadGroup(ev.ChatID)
		if err != nil {
			return err
		}
		if err := r.fetchGroupDetail(g, nil); err != nil {
			return err
		}
		return r.putJSON(bucketGroups, g.ChatID, g)
	case bot.GroupAddMember, bot.GroupDelMember:
	default:
		return nil
	}
	g, err := r.loadGroup(ev.ChatID)
	if err != nil {
		return err
	}
	joined := ev.UpdateDetail == bot.GroupAddMember
	for _, id := range ev.MemChangeList {
		ms, err := r.member(id, joined && isExternalID(id))
		if err != nil {
			return err
		}
		if ms == nil {
			continue // staff, or an unknown customer leaving
		}
		m := ms.m
		if joined {
			if !m.InGroup(ev.ChatID) {
				m.Groups = append(m.Groups, ev.ChatID)
				ms.dirty = true
			}
			if err := r.tx.Put(bucketGroupMembers, groupMemberKey(ev.ChatID, id), present); err != nil {
				return err
			}
			if err := r.signal(ms, scenarios.SignalJoinGroup); err != nil {
				return err
			}
			continue
		}
		if removeString(&m.Groups, ev.ChatID) {
			ms.dirty = true
			if len(m.Groups) == 0 && !m.Lost {
				// Her last customer group: a loss to alert (loss.go).
				r.tally(m, func(w *WeekStats) { w.LeftGroups++ })
				if err := r.loss(ms, LossLeftGroups, m.PrimaryStaff()); err != nil {
					return err
				}
			}
		}
		if err := r.tx.Delete(bucketGroupMembers, groupMemberKey(ev.ChatID, id)); err != nil {
			return err
		}
	}
	if joined {
		// The callback doesn't say which group QR code (JoinScene 3) nor
		// the joiners' names: groupchat/get does.
		if err := r.fetchGroupDetail(g, ev.MemChangeList); err != nil {
			return err
		}
	}
	return r.putJSON(bucketGroups, g.ChatID, g)
}

func (r *run) groupDismiss() error {
	if r.ev.ChatID == "" {
		return nil
	}
	return r.dismissGroup(r.ev.ChatID)
}

// dismissGroup takes the group from its members and marks it dismissed.
func (r *run) dismissGroup(chatID string) error {
	g, err := r.loadGroup(chatID)
	if err != nil {
		return err
	}
	ids, err := r.groupMembers(chatID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		ms, err := r.member(id, false)
		if err != nil {
			return err
		}
		if ms != nil && removeString(&ms.m.Groups, g.ChatID) {
			ms.dirty = true
		}
		if err := r.tx.Delete(bucketGroupMembers, groupMemberKey(chatID, id)); err != nil {
			return err
		}
	}
	g.DismissedAt = r.at
	return r.putJSON(bucketGroups, g.ChatID, g)
}

// groupWelcomeSync pushes the scenario's group welcome templates. Each
// action is keyed by the template's content, so syncing again changes
// nothing unless the template changed.
func (r *run) groupWelcomeSync() error {
	data := r.sc.DataFor(nil)
	for _, t := range r.sc.GroupWelcomes {
		notify := t.Notify
		msg := bot.GroupWelcome{Name: t.Name, Text: r.render(t.Text, data), Notify: &notify,
			Attachments: r.renderAttachments(t.Attachments, data)}
		// The key hashes the content only: the template id learnt from the
		// first add (or set in YAML) turns later syncs into edits.
		raw, err := json.Marshal(msg)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		key := "group_welcome|" + t.Name + "|" + hex.EncodeToString(sum[:8])
		msg.TemplateID = t.TemplateID
		if msg.TemplateID == "" {
			id, err := r.tx.Get(bucketGroupWelcomeTpl, t.Name)
			if err != nil && !errors.Is(err, bot.ErrNotFound) {
				return err
			}
			msg.TemplateID = string(id)
		}
		if err := r.enqueue(bot.ActionGroupWelcome, key, "", msg, time.Time{}, time.Time{}); err != nil {
			return err
		}
	}
	return nil
}

// GroupWelcomeSyncEvent is the event that pushes sc's group welcome
// templates; its dedupe key is the scenario version, so serve appends it at
// start and after each reload and only a changed scenario syncs again.
func GroupWelcomeSyncEvent(version string, now time.Time) *bot.Event {
	return &bot.Event{Type: bot.EventGroupWelcomeSync, Source: bot.SourceSystem, At: now,
		DedupeKey: "group_welcome_sync|" + version}
}
