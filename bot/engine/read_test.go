package engine

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
)

// TestScanCheckInDaysOncePerMemberDay: a member in two campaigns on one day
// counts once, in member then day order.
func TestScanCheckInDaysOncePerMemberDay(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	ctx := context.Background()
	err := st.Update(ctx, func(tx bot.Tx) error {
		for _, k := range []string{"wm1|2026-11-20|早安打卡", "wm1|2026-11-20|夜读打卡", "wm1|2026-11-21|早安打卡", "wm2|2026-11-20|夜读打卡"} {
			if err := tx.Put(checkin.BucketMemberDays, k, present); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = st.View(ctx, func(tx bot.Tx) error {
		return ScanCheckInDays(tx, func(member, day string) bool {
			got = append(got, fmt.Sprint(member, " ", day))
			return true
		})
	})
	if want := []string{"wm1 2026-11-20", "wm1 2026-11-21", "wm2 2026-11-20"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v (%v), want %v", got, err, want)
	}
}
