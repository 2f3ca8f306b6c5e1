package engine

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// Stage-change causes, as stored in bot.StageChange.Cause.
const (
	CauseContactAdd  = "contact_add"
	CauseContactEdit = "contact_edit"
	CauseFirstOrder  = "first_order"
	CauseLoyalSpend  = "loyal_spend"
	CauseLoyalOrders = "loyal_orders"
	CauseRefund      = "refund"
)

// moveTo moves the member to stage `to`. Moves go forward only, unless
// backward is set (refunds, with funnel.allow_backward). The stage tag is
// swapped and the change recorded with time, cause and event.
func (r *run) moveTo(ms *memberState, to bot.Stage, cause string, backward bool) bool {
	m := ms.m
	from := m.Stage
	if to == from || !to.Valid() {
		return false
	}
	if to.Rank() < from.Rank() && !(backward && r.sc.Funnel.AllowBackward) {
		return false
	}
	m.Stage = to
	m.StageHistory = append(m.StageHistory, bot.StageChange{From: from, To: to, At: r.at, Cause: cause, EventSeq: r.ev.Seq})
	ms.dirty = true
	r.tally(m, func(w *WeekStats) {
		if w.Entered == nil {
			w.Entered = map[bot.Stage]int{}
		}
		w.Entered[to]++
	})
	r.removeTag(ms, r.sc.Funnel.StageTag(from))
	r.addTag(ms, r.sc.Funnel.StageTag(to))
	l := r.log.Info()
	if m.ExternalUserID != r.ev.ExternalUserID { // group events name several members
		l = l.Str("member", m.ExternalUserID)
	}
	l.Str("from", string(from)).Str("to", string(to)).Str("cause", cause).Msg("stage change")
	return true
}

// signal applies a funnel signal: the signals listed in funnel.interest_on
// move the member to Interest. Check-in days are counted by the campaign
// ledger (checkin.go), which fires check_in on a successful check-in.
func (r *run) signal(ms *memberState, sig scenarios.Signal) error {
	if sig == "" {
		return nil
	}
	r.active(ms)
	if r.sc.Funnel.InterestOn[sig] {
		r.moveTo(ms, bot.StageInterest, string(sig), false)
	}
	return nil
}

// orderRecord is what the engine remembers about an order.
type orderRecord struct {
	Member      string `json:"member"`
	AmountFen   int64  `json:"amount_fen"`
	RefundedFen int64  `json:"refunded_fen,omitempty"`
	// Counted is set once the order is applied to the member (not pending).
	Counted bool `json:"counted"`
	// Voided is set when the order was refunded in full and no longer counts.
	Voided bool   `json:"voided,omitempty"`
	PaidAt string `json:"paid_at,omitempty"`
	// Points the order earned (points.per_yuan) on PointsBaseFen, its net
	// amount when credited; PointsRefundFen is what refunds returned since
	// and PointsBack the points they took back (economy.go).
	Points          int64 `json:"points,omitempty"`
	PointsBaseFen   int64 `json:"points_base_fen,omitempty"`
	PointsRefundFen int64 `json:"points_refund_fen,omitempty"`
	PointsBack      int64 `json:"points_back,omitempty"`
}

func (r *run) orderData() (id string, amount int64, hasAmount bool, ok bool) {
	id = r.ev.Data[bot.DataOrderID]
	raw, hasAmount := r.ev.Data[bot.DataAmountFen]
	if hasAmount {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || v < 0 {
			r.log.Warn().Str("amount_fen", raw).Msg("order event with a bad amount_fen; skipped")
			return "", 0, false, false
		}
		amount = v
	}
	if id == "" || r.ev.ExternalUserID == "" {
		r.log.Warn().Msg("order event without order_id or member; skipped")
		return "", 0, false, false
	}
	return id, amount, hasAmount, true
}

func (r *run) orderPaid() error {
	id, amount, hasAmount, ok := r.orderData()
	if !ok {
		return nil
	}
	if !hasAmount {
		r.log.Warn().Str("order", id).Msg("order.paid without amount_fen; skipped")
		return nil
	}
	var rec orderRecord
	found, err := r.getJSON(bucketOrders, id, &rec)
	if err != nil || found {
		return err // a replay or a duplicate webhook: already applied
	}
	rec = orderRecord{Member: r.ev.ExternalUserID, AmountFen: amount, PaidAt: r.at.Format("2006-01-02T15:04:05Z07:00")}
	if err := r.applyHeldRefunds(id, &rec); err != nil {
		return err
	}
	ms, err := r.member(r.ev.ExternalUserID, false)
	if err != nil {
		return err
	}
	if ms == nil {
		// The member hasn't added a staff member yet: keep the order and
		// apply it when they do.
		r.log.Info().Str("order", id).Msg("order for an unknown member kept pending")
		if err := r.tx.Put(bucketOrdersPending, r.ev.ExternalUserID+"|"+id, present); err != nil {
			return fmt.Errorf("record pending order: %w", err)
		}
		return r.putJSON(bucketOrders, id, rec)
	}
	rec.Counted = true
	if err := r.creditOrder(ms, id, &rec); err != nil {
		return err
	}
	if err := r.putJSON(bucketOrders, id, rec); err != nil {
		return err
	}
	if net := rec.AmountFen - rec.RefundedFen; !rec.Voided && net > 0 {
		r.countOrder(ms, net)
	}
	return nil
}

// heldRefund is a refund that arrived before its paid order.
type heldRefund struct {
	AmountFen int64 `json:"amount_fen"`
	// Rest: the refund named no amount (the rest of the order).
	Rest bool `json:"rest,omitempty"`
}

// applyHeldRefunds applies the refunds that arrived before order id was
// paid to its new record, in refund-id order, and forgets them.
func (r *run) applyHeldRefunds(id string, rec *orderRecord) error {
	type held struct {
		key string
		h   heldRefund
	}
	var all []held
	var decodeErr error
	if err := r.tx.Scan(bucketRefundsHeld, id+"|", func(k string, v []byte) bool {
		var h heldRefund
		if decodeErr = json.Unmarshal(v, &h); decodeErr != nil {
			return false
		}
		all = append(all, held{k, h})
		return true
	}); err != nil {
		return fmt.Errorf("scan held refunds: %w", err)
	}
	if decodeErr != nil {
		return fmt.Errorf("decode held refund: %w", decodeErr)
	}
	for _, x := range all {
		left := rec.AmountFen - rec.RefundedFen
		amount := x.h.AmountFen
		if x.h.Rest || amount > left {
			amount = left
		}
		rec.RefundedFen += amount
		if rec.RefundedFen >= rec.AmountFen {
			rec.Voided = true
		}
		if err := r.tx.Delete(bucketRefundsHeld, x.key); err != nil {
			return fmt.Errorf("clear held refund: %w", err)
		}
		r.log.Info().Str("order", id).Int64("refunded_fen", amount).Msg("refund that arrived before its order applied")
	}
	return nil
}

// countOrder adds a paid order to the member and applies Purchase / Loyal.
func (r *run) countOrder(ms *memberState, amount int64) {
	ms.m.Orders++
	r.active(ms)
	r.tally(ms.m, func(w *WeekStats) {
		w.Orders++
		w.GMVFen += amount
		switch ms.m.Orders {
		case 1:
			w.Buyers++
		case 2:
			w.RepeatBuyers++
		}
	})
	// Saturating: amounts are bounded on the way in (bot.MaxAmountFen), and
	// even a long run of maximal orders can't wrap spend negative.
	ms.m.SpendFen = bot.AddFen(ms.m.SpendFen, amount)
	ms.dirty = true
	r.moveTo(ms, bot.StagePurchase, CauseFirstOrder, false)
	r.checkLoyal(ms)
}

func (r *run) checkLoyal(ms *memberState) {
	f := r.sc.Funnel
	switch {
	case f.LoyalSpendFen > 0 && ms.m.SpendFen >= f.LoyalSpendFen:
		r.moveTo(ms, bot.StageLoyal, CauseLoyalSpend, false)
	case f.LoyalOrders > 0 && ms.m.Orders >= f.LoyalOrders:
		r.moveTo(ms, bot.StageLoyal, CauseLoyalOrders, false)
	}
}

// applyPendingOrders counts orders paid before the member was known.
func (r *run) applyPendingOrders(ms *memberState) error {
	id := ms.m.ExternalUserID
	var keys []string
	if err := r.tx.Scan(bucketOrdersPending, id+"|", func(k string, _ []byte) bool {
		keys = append(keys, k)
		return true
	}); err != nil {
		return fmt.Errorf("scan pending orders: %w", err)
	}
	for _, k := range keys {
		orderID := k[len(id)+1:]
		var rec orderRecord
		found, err := r.getJSON(bucketOrders, orderID, &rec)
		if err != nil {
			return err
		}
		if err := r.tx.Delete(bucketOrdersPending, k); err != nil {
			return fmt.Errorf("clear pending order: %w", err)
		}
		if !found || rec.Counted {
			continue
		}
		rec.Counted = true
		net := rec.AmountFen - rec.RefundedFen
		if rec.Voided || net <= 0 {
			if err := r.putJSON(bucketOrders, orderID, rec); err != nil {
				return err
			}
			continue
		}
		if err := r.creditOrder(ms, orderID, &rec); err != nil {
			return err
		}
		if err := r.putJSON(bucketOrders, orderID, rec); err != nil {
			return err
		}
		r.countOrder(ms, net)
	}
	return nil
}

func (r *run) orderRefunded() error {
	id, amount, hasAmount, ok := r.orderData()
	if !ok {
		return nil
	}
	refundID := r.ev.Data[bot.DataRefundID]
	if refundID == "" {
		refundID = r.ref
	}
	refundKey := id + "|" + refundID
	done, err := r.has(bucketRefunds, refundKey)
	if err != nil || done {
		return err
	}
	var rec orderRecord
	found, err := r.getJSON(bucketOrders, id, &rec)
	if err != nil {
		return err
	}
	if err := r.tx.Put(bucketRefunds, refundKey, present); err != nil {
		return fmt.Errorf("record refund: %w", err)
	}
	if !found {
		// The shop's notifications can arrive out of order: hold the refund
		// and apply it when the paid order arrives.
		r.log.Info().Str("order", id).Msg("refund before its paid order: held until the order arrives")
		raw, err := json.Marshal(heldRefund{AmountFen: amount, Rest: !hasAmount})
		if err != nil {
			return err
		}
		if err := r.tx.Put(bucketRefundsHeld, refundKey, raw); err != nil {
			return fmt.Errorf("hold refund: %w", err)
		}
		return nil
	}
	left := rec.AmountFen - rec.RefundedFen
	if !hasAmount || amount > left {
		amount = left
	}
	rec.RefundedFen += amount
	voids := !rec.Voided && rec.RefundedFen >= rec.AmountFen
	if voids {
		rec.Voided = true
	}
	if !rec.Counted {
		// Pending: the net amount is applied when the member appears.
		return r.putJSON(bucketOrders, id, rec)
	}
	ms, err := r.member(rec.Member, false)
	if err != nil {
		return err
	}
	if ms != nil {
		if err := r.clawOrder(ms, id, &rec, amount); err != nil {
			return err
		}
	}
	if err := r.putJSON(bucketOrders, id, rec); err != nil {
		return err
	}
	if ms == nil {
		return nil
	}
	m := ms.m
	m.SpendFen -= amount
	r.tally(m, func(w *WeekStats) { w.RefundFen += amount })
	if m.SpendFen < 0 {
		m.SpendFen = 0
	}
	if voids && m.Orders > 0 {
		m.Orders--
	}
	ms.dirty = true
	if r.sc.Funnel.AllowBackward {
		r.moveTo(ms, r.stageFromOrders(m), CauseRefund, true)
	}
	return nil
}

// stageFromOrders is the stage the order counters alone justify, never
// below the member's pre-order stage (Interest or Aware).
func (r *run) stageFromOrders(m *bot.Member) bot.Stage {
	f := r.sc.Funnel
	switch {
	case f.LoyalSpendFen > 0 && m.SpendFen >= f.LoyalSpendFen, f.LoyalOrders > 0 && m.Orders >= f.LoyalOrders:
		return bot.StageLoyal
	case m.Orders > 0:
		return bot.StagePurchase
	}
	// Before the first order the member was at Interest or Aware; take the
	// highest pre-purchase stage the history shows.
	best := bot.StageAware
	for _, ch := range m.StageHistory {
		if ch.To == bot.StageInterest {
			best = bot.StageInterest
		}
	}
	if m.Stage.Rank() < best.Rank() {
		return m.Stage
	}
	return best
}
