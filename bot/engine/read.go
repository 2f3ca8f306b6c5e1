package engine

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
)

// Read functions for the operator console and exports. They read the facts
// the engine keeps in the transaction's key-value space, so callers outside
// the engine never depend on bucket names or record layouts.

// Order is a paid order as the engine recorded it.
type Order struct {
	ID          string `json:"order_id"`
	Member      string `json:"member"`
	AmountFen   int64  `json:"amount_fen"`
	RefundedFen int64  `json:"refunded_fen"`
	// Counted is false while the order waits for its member to add a staff member.
	Counted bool `json:"counted"`
	// Voided is set when the order was refunded in full.
	Voided bool   `json:"voided"`
	PaidAt string `json:"paid_at"`
}

// ScanOrders calls fn for every recorded order in order-id order; returning
// false stops.
func ScanOrders(tx bot.Tx, fn func(Order) bool) error {
	var decodeErr error
	err := tx.Scan(bucketOrders, "", func(k string, v []byte) bool {
		var rec orderRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			decodeErr = fmt.Errorf("decode order %s: %w", k, err)
			return false
		}
		return fn(Order{ID: k, Member: rec.Member, AmountFen: rec.AmountFen, RefundedFen: rec.RefundedFen,
			Counted: rec.Counted, Voided: rec.Voided, PaidAt: rec.PaidAt})
	})
	if err != nil {
		return err
	}
	return decodeErr
}

// CheckInDays returns the days (2006-01-02, in the campaigns' zones) on
// which member checked in to any campaign, oldest first.
func CheckInDays(tx bot.Tx, member string) ([]string, error) {
	return checkin.MemberDays(tx, member)
}

// ScanCheckInDays calls fn once for every day a member checked in to any
// campaign, grouped by member with days in order, reading at most limit
// keys after the key after (0: no limit): it returns the last key read
// (where the next call goes on — a day it already reported is not
// reported again) and whether keys may follow.
func ScanCheckInDays(tx bot.Tx, after string, limit int, fn func(member, day string) bool) (last string, more bool, err error) {
	prevMember, prevDay, _ := strings.Cut(after, "|")
	prevDay, _, _ = strings.Cut(prevDay, "|")
	last, n := after, 0
	err = tx.ScanAfter(checkin.BucketMemberDays, "", after, func(k string, _ []byte) bool {
		if limit > 0 && n == limit {
			more = true
			return false
		}
		n++
		last = k
		parts := strings.SplitN(k, "|", 3)
		if len(parts) < 2 || (parts[0] == prevMember && parts[1] == prevDay) {
			return true
		}
		prevMember, prevDay = parts[0], parts[1]
		if !fn(parts[0], parts[1]) {
			more = true
			return false
		}
		return true
	})
	return last, more, err
}
