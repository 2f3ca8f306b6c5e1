package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Staff transfer (在职继承 / 离职继承). The operator's request names the
// staff member handing over and the one taking over; the engine picks the
// customers (all of the handover's, unless listed) and groups, keeps a
// record, and owes WeCom the transfer calls in batches of 100. WeCom
// completes a customer's move within 24 h (or the customer refuses), so the
// results are polled; a done move closes the handover's follow record and
// opens the takeover's. Stage, history, points and coupons stay with the
// member: only the follow records change.
//
//	transfers  id → TransferRecord

const bucketTransfers = bot.BucketTransfers

// transferBatch is how many customers or groups one WeCom transfer call takes.
const transferBatch = 100

// TransferPollDelays are the waits before each transfer_result poll; the
// last repeats until MaxTransferPolls.
var TransferPollDelays = []time.Duration{5 * time.Second, time.Minute, 10 * time.Minute, time.Hour, 6 * time.Hour}

// MaxTransferPolls bounds the polls of one transfer (about a week).
const MaxTransferPolls = 32

// TransferRecord is one operator transfer and where it stands.
type TransferRecord struct {
	ID        string    `json:"id"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Resigned  bool      `json:"resigned,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Customers maps each customer to its status (bot.Transfer* statuses).
	Customers map[string]string `json:"customers"`
	// Failures maps customers and groups that failed to why.
	Failures     map[string]string `json:"failures,omitempty"`
	Groups       []string          `json:"groups,omitempty"`
	GroupsMoved  int               `json:"groups_moved"`
	GroupsFailed int               `json:"groups_failed"`
	Polls        int               `json:"polls"`
}

// Counts tallies the customers by status.
func (t *TransferRecord) Counts() map[string]int {
	out := map[string]int{}
	for _, st := range t.Customers {
		out[st]++
	}
	return out
}

// Open reports whether customers still wait for WeCom.
func (t *TransferRecord) Open() bool {
	for _, st := range t.Customers {
		if st == bot.TransferRequested || st == bot.TransferWaiting {
			return true
		}
	}
	return false
}

// Transfers lists the transfer records, newest first.
func Transfers(tx bot.Tx, limit int) ([]TransferRecord, error) {
	var out []TransferRecord
	var bad error
	err := tx.Scan(bucketTransfers, "", func(k string, v []byte) bool {
		var t TransferRecord
		if err := json.Unmarshal(v, &t); err != nil {
			bad = fmt.Errorf("decode transfer %s: %w", k, err)
			return false
		}
		out = append(out, t)
		return true
	})
	if err == nil {
		err = bad
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// TransferByID returns one transfer record (nil if unknown).
func TransferByID(tx bot.Tx, id string) (*TransferRecord, error) {
	raw, err := tx.Get(bucketTransfers, id)
	if errors.Is(err, bot.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var t TransferRecord
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("decode transfer %s: %w", id, err)
	}
	if t.Customers == nil {
		t.Customers = map[string]string{}
	}
	if t.Failures == nil {
		t.Failures = map[string]string{}
	}
	return &t, nil
}

func (r *run) loadTransfer(id string) (*TransferRecord, error) {
	t, err := TransferByID(r.tx, id)
	if err != nil {
		return nil, fmt.Errorf("transfer %s: %w", id, err)
	}
	return t, nil
}

// transferRequest starts an operator's transfer.
func (r *run) transferRequest() error {
	d := r.ev.Data
	id, from, to := d[bot.DataTransfer], strings.TrimSpace(d["from"]), strings.TrimSpace(d["to"])
	if id == "" || from == "" || to == "" || from == to {
		r.log.Warn().Str("from", from).Str("to", to).Msg("transfer needs an id and two different staff members; skipped")
		return nil
	}
	if t, err := r.loadTransfer(id); err != nil || t != nil {
		return err // a replay
	}
	t := &TransferRecord{ID: id, From: from, To: to, Resigned: d["resigned"] == "1", CreatedAt: r.at, Customers: map[string]string{}, Failures: map[string]string{}}
	var ids []string
	if list := strings.TrimSpace(d["customers"]); list != "" {
		for _, c := range strings.Split(list, ",") {
			if c = strings.TrimSpace(c); c != "" {
				ids = append(ids, c)
			}
		}
	} else {
		err := r.tx.Members("", func(m *bot.Member) bool {
			if f := m.Follow(from); f != nil && f.Active() {
				ids = append(ids, m.ExternalUserID)
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	var send []string
	for _, c := range ids {
		ms, err := r.member(c, false)
		if err != nil {
			return err
		}
		if ms == nil {
			t.Customers[c], t.Failures[c] = bot.TransferFailed, "not a member wecombot knows"
			continue
		}
		if f := ms.m.Follow(from); f == nil || !f.Active() {
			t.Customers[c], t.Failures[c] = bot.TransferFailed, "not a customer of "+from
			continue
		}
		t.Customers[c] = bot.TransferRequested
		ms.m.Transfers = append(ms.m.Transfers, bot.Transfer{ID: id, From: from, To: to, Resigned: t.Resigned, Status: bot.TransferRequested, At: r.at})
		ms.dirty = true
		send = append(send, c)
	}
	for i := 0; i < len(send); i += transferBatch {
		p := bot.TransferCustomers{Transfer: id, From: from, To: to, Resigned: t.Resigned, Customers: send[i:min(i+transferBatch, len(send))]}
		if !t.Resigned {
			p.Message = d["message"]
		}
		if err := r.enqueue(bot.ActionTransferCustomers, fmt.Sprintf("transfer|%s|c|%d", id, i/transferBatch), "", p, time.Time{}, time.Time{}); err != nil {
			return err
		}
	}
	if d["groups"] == "1" {
		err := r.tx.Scan(bucketGroups, "", func(k string, v []byte) bool {
			var g groupRecord
			if json.Unmarshal(v, &g) == nil && g.Owner == from && g.DismissedAt.IsZero() {
				t.Groups = append(t.Groups, k)
			}
			return true
		})
		if err != nil {
			return err
		}
		for i := 0; i < len(t.Groups); i += transferBatch {
			p := bot.TransferGroups{Transfer: id, To: to, Resigned: t.Resigned, ChatIDs: t.Groups[i:min(i+transferBatch, len(t.Groups))]}
			if err := r.enqueue(bot.ActionTransferGroups, fmt.Sprintf("transfer|%s|g|%d", id, i/transferBatch), "", p, time.Time{}, time.Time{}); err != nil {
				return err
			}
		}
	}
	r.log.Info().Str("transfer", id).Str("from", from).Str("to", to).Bool("resigned", t.Resigned).
		Int("customers", len(send)).Int("groups", len(t.Groups)).Msg("staff transfer requested")
	return r.putJSON(bucketTransfers, id, t)
}

// setMemberTransfer updates the member's record of transfer id.
func (r *run) setMemberTransfer(ms *memberState, id, status, reason string) {
	for i := len(ms.m.Transfers) - 1; i >= 0; i-- {
		tr := &ms.m.Transfers[i]
		if tr.ID != id {
			continue
		}
		if tr.Status != status || tr.Reason != reason {
			tr.Status, tr.Reason = status, reason
			if status == bot.TransferDone {
				tr.DoneAt = r.at
			}
			ms.dirty = true
		}
		return
	}
}

// transferOutcome is the result of a transfer_customer call (errcodes) or
// of a poll (statuses).
func (r *run) transferOutcome(kind bot.ActionKind, d map[string]string) error {
	t, err := r.loadTransfer(d[bot.DataTransfer])
	if err != nil || t == nil {
		return err
	}
	var outs []bot.TransferOutcome
	if err := json.Unmarshal([]byte(d[bot.DataTransferOutcomes]), &outs); err != nil {
		r.log.Warn().Err(err).Msg("transfer result unreadable; skipped")
		return nil
	}
	for _, o := range outs {
		cur, mine := t.Customers[o.ExternalUserID]
		if !mine || cur == bot.TransferDone || cur == bot.TransferFailed {
			continue
		}
		status, reason := bot.TransferWaiting, ""
		switch {
		case kind == bot.ActionTransferCustomers && o.ErrCode != 0:
			status, reason = bot.TransferFailed, transferErrText(o.ErrCode)
		case kind == bot.ActionTransferPoll:
			switch o.Status {
			case 1:
				status = bot.TransferDone
			case 2:
			case 3:
				status, reason = bot.TransferFailed, "the customer refused (客户拒绝)"
			case 4:
				status, reason = bot.TransferFailed, t.To+" has reached the customer limit (接替成员客户达到上限)"
			default:
				status, reason = bot.TransferFailed, "WeCom has no record of the transfer (无接替记录)"
			}
		}
		ms, err := r.member(o.ExternalUserID, false)
		if err != nil {
			return err
		}
		t.Customers[o.ExternalUserID] = status
		if reason != "" {
			t.Failures[o.ExternalUserID] = reason
			r.log.Warn().Str("transfer", t.ID).Str("member", o.ExternalUserID).Str("reason", reason).Msg("customer transfer failed; the customer stays with " + t.From)
		}
		if ms == nil {
			continue
		}
		r.setMemberTransfer(ms, t.ID, status, reason)
		if status == bot.TransferDone {
			at := r.at
			if o.TakeoverTime > 0 {
				at = time.Unix(o.TakeoverTime, 0).UTC()
			}
			r.moveFollow(ms, t.From, t.To, at)
		}
	}
	if kind == bot.ActionTransferPoll {
		t.Polls++
	}
	if t.Open() && t.Polls < MaxTransferPolls {
		delay := TransferPollDelays[min(t.Polls, len(TransferPollDelays)-1)]
		p := bot.TransferPoll{Transfer: t.ID, From: t.From, To: t.To, Resigned: t.Resigned, Poll: t.Polls + 1}
		for c, st := range t.Customers {
			if st == bot.TransferRequested || st == bot.TransferWaiting {
				p.Open = append(p.Open, c)
			}
		}
		if len(p.Open) > 1000 {
			p.Open = nil
		}
		sort.Strings(p.Open)
		if err := r.enqueue(bot.ActionTransferPoll, "transfer|"+t.ID+"|poll|"+strconv.Itoa(p.Poll), "", p, r.now.Add(delay), time.Time{}); err != nil {
			return err
		}
	}
	return r.putJSON(bucketTransfers, t.ID, t)
}

func transferErrText(code int64) string {
	switch code {
	case 84061:
		return "no relation between the customer and the handover staff member (84061)"
	case 40096:
		return "invalid external_userid (40096)"
	}
	return "WeCom refused it: errcode " + strconv.FormatInt(code, 10)
}

// moveFollow closes from's follow record and opens to's, keeping the
// channel state and remark.
func (r *run) moveFollow(ms *memberState, from, to string, at time.Time) {
	m := ms.m
	state, remark := "", ""
	if f := m.Follow(from); f != nil {
		state, remark = f.State, f.Remark
		if f.Active() {
			f.DeletedAt, f.DeletedBy = at, "transfer"
		}
	}
	if f := m.Follow(to); f == nil {
		m.Follows = append(m.Follows, bot.Follow{StaffID: to, State: state, AddedAt: at, Remark: remark})
	} else if !f.Active() {
		f.State, f.AddedAt, f.DeletedAt, f.DeletedBy, f.Remark = state, at, time.Time{}, "", remark
	}
	ms.dirty = true
	// The new relation carries none of wecombot's tags yet.
	ms.fullSync[to] = true
	r.log.Info().Str("from", from).Str("to", to).Msg("customer transferred")
}

// transferGroupsResult records the groups that got their new owner.
func (r *run) transferGroupsResult(d map[string]string) error {
	t, err := r.loadTransfer(d[bot.DataTransfer])
	if err != nil || t == nil {
		return err
	}
	failed := map[string]string{}
	_ = json.Unmarshal([]byte(d["failed"]), &failed)
	for _, chat := range strings.Split(d["chat_ids"], ",") {
		if chat == "" {
			continue
		}
		if why, bad := failed[chat]; bad {
			t.GroupsFailed++
			t.Failures[chat] = why
			continue
		}
		g, err := r.loadGroup(chat)
		if err != nil {
			return err
		}
		g.Owner = d["to"]
		if err := r.putJSON(bucketGroups, chat, g); err != nil {
			return err
		}
		t.GroupsMoved++
	}
	return r.putJSON(bucketTransfers, t.ID, t)
}

// transferFail handles WeCom's transfer_fail callback: the customer
// refused, or the takeover staff member (UserID) is over the limit.
func (r *run) transferFail() error {
	ev := r.ev
	r.log.Warn().Str("staff", ev.StaffID).Str("member", ev.ExternalUserID).Str("reason", ev.FailReason).
		Msg("customer transfer failed; the customer stays with the current staff member")
	if ev.ExternalUserID == "" {
		return nil
	}
	ms, err := r.member(ev.ExternalUserID, false)
	if err != nil || ms == nil {
		return err
	}
	reason := "transfer failed (" + ev.FailReason + ")"
	switch ev.FailReason {
	case "customer_refused":
		reason = "the customer refused (客户拒绝)"
	case "customer_limit_exceed":
		reason = ev.StaffID + " has reached the customer limit (接替成员客户达到上限)"
	}
	for i := len(ms.m.Transfers) - 1; i >= 0; i-- {
		tr := ms.m.Transfers[i]
		if tr.To != ev.StaffID || tr.Status == bot.TransferDone || tr.Status == bot.TransferFailed {
			continue
		}
		r.setMemberTransfer(ms, tr.ID, bot.TransferFailed, reason)
		t, err := r.loadTransfer(tr.ID)
		if err != nil || t == nil {
			return err
		}
		t.Customers[ev.ExternalUserID], t.Failures[ev.ExternalUserID] = bot.TransferFailed, reason
		return r.putJSON(bucketTransfers, t.ID, t)
	}
	return nil
}
