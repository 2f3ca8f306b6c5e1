package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// Follow-ups planned for their slot. A welcome script's follow-ups are due
// hours or days after the add; queuing each as its outbox action at once
// (with its mass-send batch entry, quota, contact-cap count and indexes)
// made them most of an add's write work, in the burst where adds arrive
// fastest. A step due in a later slot (followUpSlot) is instead one small
// planned record, and one timer per slot brings the slot's plans back to
// the engine when it begins: each then goes through exactly what an add
// did before (sendStep: contact cap, mass-send quota and batch, kf budget),
// with the scenario and the member as they are then — as SOP tools run a
// task on its schedule. Nothing is lost: the plan is written in the add's
// transaction, the timer is an outbox action, and a plan becomes its
// action (same key followup|<event>|<step>, so never twice) in the
// transaction that deletes it. The outbox guard's and a batch's checks
// (lost member, deleted sender, contact cap) apply to the action as before.
//
// A plan is never written for a slot whose timer has run: the first
// timer event of a slot records the slot as drained ("drained" → its slot
// key), and a step due in a drained slot (an add handled on a node whose
// clock is behind the one that ran the timer, or after the clock was set
// back) is queued at once, as a step due in the slot under way is. The
// planning transaction reads that record and the timer's writes it after
// scanning the plans, so on PostgreSQL (SERIALIZABLE) the two cannot both
// miss each other: one is re-run. Without it such a plan waited for a
// later slot's timer, or forever when none came.
//
//	followups  <slot start, unix seconds, 12 digits>|followup|<ref>|<step> → plannedFollowUp
//	followups  drained → the latest slot key whose timer has run
const (
	bucketFollowUps = bot.BucketFollowUps
	timerFollowUps  = "followups"
	// dataSlot and dataPage are a follow-up timer's slot (unix seconds) and page.
	dataSlot = "slot"
	dataPage = "page"
	// keyDrained sorts after every slot key: a slot's scan never meets it.
	keyDrained   = "drained"
	localDrained = "followups\x00drained"
)

// followUpSlot is the planning granularity: a step due in a slot that has
// not begun yet is planned; its action is queued at the slot's start
// (before it is due: a mass send then joins its window's batch as before).
const followUpSlot = 10 * time.Minute

// followUpChunk bounds the plans one timer event turns into actions (a
// slot after a livestream can hold many thousands): the rest follow in the
// next page's transaction.
var followUpChunk = 500

// plannedFollowUp is step Step of welcome script Script owed to Member by
// Staff, due at Due.
type plannedFollowUp struct {
	Member string    `json:"m"`
	Script string    `json:"s"`
	Step   int       `json:"i"`
	Staff  string    `json:"st,omitempty"`
	Due    time.Time `json:"d"`
}

// slotKey is slot's key field: Unix seconds, zero-padded to 12 digits (so
// keys sort by time).
func slotKey(slot time.Time) string {
	s := strconv.FormatInt(slot.Unix(), 10)
	if len(s) < 12 {
		s = "000000000000"[len(s):] + s
	}
	return s
}

// planFollowUp plans the follow-up with action key key for its slot when
// that slot begins after now; false: it is due soon, queue it now.
func (r *run) planFollowUp(key string, p plannedFollowUp) (bool, error) {
	slot := p.Due.Truncate(followUpSlot)
	if !slot.After(r.now) {
		return false, nil
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return false, err
	}
	sk := slotKey(slot)
	drained, err := r.followUpsDrained()
	if err != nil || sk <= drained {
		return false, err // its slot's timer has run: queue it now
	}
	if err := r.tx.Put(bucketFollowUps, sk+"|"+key, raw); err != nil {
		return false, fmt.Errorf("plan follow-up %s: %w", key, err)
	}
	return true, r.followUpTimer(sk, slot, 0)
}

// followUpsDrained is the latest slot whose timer has run ("" for none),
// read once per transaction when the store keeps transaction-local state.
func (r *run) followUpsDrained() (string, error) {
	var local map[string]any
	if l := bot.LocalOf(r.tx); l != nil {
		local = l.Local()
		if v, ok := local[localDrained].(string); ok {
			return v, nil
		}
	}
	v, err := r.tx.Get(bucketFollowUps, keyDrained)
	if errors.Is(err, bot.ErrNotFound) {
		v, err = nil, nil
	}
	if err != nil {
		return "", fmt.Errorf("read drained follow-up slot: %w", err)
	}
	if local != nil {
		local[localDrained] = string(v)
	}
	return string(v), nil
}

// followUpTimer queues the timer for page page of slot sk, due at (once
// per transaction when the store keeps transaction-local state).
func (r *run) followUpTimer(sk string, at time.Time, page int) error {
	key := "followups|" + sk
	if page > 0 {
		key += "|" + strconv.Itoa(page)
	}
	var local map[string]any
	if l := bot.LocalOf(r.tx); l != nil {
		if local = l.Local(); local["timer\x00"+key] != nil {
			return nil
		}
	}
	t := bot.Timer{Data: map[string]string{dataTimer: timerFollowUps, dataSlot: sk, dataPage: strconv.Itoa(page)}}
	if err := r.enqueue(bot.ActionTimer, key, "", t, at, time.Time{}); err != nil {
		return err
	}
	if local != nil {
		local["timer\x00"+key] = true
	}
	return nil
}

// followUpsDue queues the actions of the plans of the timer's slot (and of
// any earlier slot: a plan written after its slot's timer ran, on a node
// whose clock was behind), followUpChunk at a time.
func (r *run) followUpsDue(d map[string]string) error {
	sk := d[dataSlot]
	page, _ := strconv.Atoi(d[dataPage])
	type plan struct {
		key string
		p   plannedFollowUp
	}
	var plans []plan
	var bad error
	end := sk + "|\xff"
	err := r.tx.Scan(bucketFollowUps, "", func(k string, v []byte) bool {
		if k > end {
			return false
		}
		var p plannedFollowUp
		if err := json.Unmarshal(v, &p); err != nil {
			bad = fmt.Errorf("decode planned follow-up %s: %w", k, err)
			return false
		}
		plans = append(plans, plan{k, p})
		return len(plans) < followUpChunk
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return err
	}
	// From now on a step due in this slot or an earlier one is queued at once.
	drained, err := r.followUpsDrained()
	if err != nil {
		return err
	}
	if len(sk) == 12 && sk > drained {
		if err := r.tx.Put(bucketFollowUps, keyDrained, []byte(sk)); err != nil {
			return fmt.Errorf("record drained follow-up slot: %w", err)
		}
		if l := bot.LocalOf(r.tx); l != nil {
			l.Local()[localDrained] = sk
		}
	}
	for _, pl := range plans {
		if err := r.tx.Delete(bucketFollowUps, pl.key); err != nil {
			return err
		}
		if err := r.materializeFollowUp(pl.key[len(sk)+1:], pl.p); err != nil {
			return err
		}
	}
	if len(plans) == followUpChunk {
		return r.followUpTimer(sk, r.now, page+1)
	}
	return nil
}

// materializeFollowUp queues planned follow-up p as action key.
func (r *run) materializeFollowUp(key string, p plannedFollowUp) error {
	script := r.sc.Script(p.Script)
	if script == nil || script.FollowUps == nil || p.Step >= len(script.FollowUps.Steps) {
		r.log.Info().Str("key", key).Str("script", p.Script).Msg("planned follow-up no longer in the scenario in force; dropped")
		return nil
	}
	m, err := r.tx.Member(p.Member)
	if errors.Is(err, bot.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load member %s: %w", p.Member, err)
	}
	// Not tracked as touched by the event: a follow-up changes nothing of hers.
	ms := &memberState{m: m, fullSync: map[string]bool{}}
	sop := script.FollowUps
	_, err = r.sendStep(ms, sop, p.Step, sop.Steps[p.Step], key, bot.PurposeFollowUp, p.Staff, "", p.Due, r.memberData(m))
	return err
}

// PlannedFollowUp is a follow-up step planned for a member and not yet
// queued as its action (the console's member detail lists them).
type PlannedFollowUp struct {
	Key    string
	Script string
	Step   int
	Staff  string
	Due    time.Time
}

// PlannedFollowUps returns the follow-ups contact.add event ev planned
// that are still waiting for their slot, soonest first: the plans' keys
// follow from the event (its ref, its time, the welcome script of its
// channel), so reading them costs a lookup per step and the add writes
// nothing more. A plan made under a step timing changed since is not
// found (its slot was another); it is still queued at its slot.
func PlannedFollowUps(tx bot.Tx, sc *scenarios.Scenario, ev *bot.Event) ([]PlannedFollowUp, error) {
	if ev.Type != bot.EventContactAdd || sc == nil {
		return nil, nil
	}
	script := sc.WelcomeFor(sc.ChannelByState(ev.State))
	if script == nil || script.FollowUps == nil {
		return nil, nil
	}
	ref := eventRef(ev)
	var out []PlannedFollowUp
	for i, st := range script.FollowUps.Steps {
		key := "followup|" + ref + "|" + strconv.Itoa(i)
		raw, err := tx.Get(bucketFollowUps, slotKey(st.Due(ev.At, sc.Brand.Zone).Truncate(followUpSlot))+"|"+key)
		if errors.Is(err, bot.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var p plannedFollowUp
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("decode planned follow-up %s: %w", key, err)
		}
		out = append(out, PlannedFollowUp{Key: key, Script: p.Script, Step: p.Step, Staff: p.Staff, Due: p.Due})
	}
	return out, nil
}
