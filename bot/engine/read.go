package engine

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wecombot/wecombot/bot"
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

// CheckInDays returns the days (2006-01-02, in the brand's zone) on which
// member's check-in counted, oldest first.
func CheckInDays(tx bot.Tx, member string) ([]string, error) {
	var days []string
	err := tx.Scan(bucketCheckinDays, member+"|", func(k string, _ []byte) bool {
		days = append(days, strings.TrimPrefix(k, member+"|"))
		return true
	})
	return days, err
}

// ScanCheckInDays calls fn for every counted check-in day of every member;
// returning false stops.
func ScanCheckInDays(tx bot.Tx, fn func(member, day string) bool) error {
	return tx.Scan(bucketCheckinDays, "", func(k string, _ []byte) bool {
		i := strings.LastIndexByte(k, '|')
		if i < 0 {
			return true
		}
		return fn(k[:i], k[i+1:])
	})
}
