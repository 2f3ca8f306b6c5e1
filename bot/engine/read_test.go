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
	want := []string{"wm1 2026-11-20", "wm1 2026-11-21", "wm2 2026-11-20"}
	// Whole, and in pages of every size: a page ending inside a day's
	// campaigns does not report the day again.
	for _, limit := range []int{0, 1, 2, 3} {
		var got []string
		after, pages := "", 0
		for more := true; more; pages++ {
			err = st.View(ctx, func(tx bot.Tx) error {
				var err error
				after, more, err = ScanCheckInDays(tx, after, limit, func(member, day string) bool {
					got = append(got, fmt.Sprint(member, " ", day))
					return true
				})
				return err
			})
			if err != nil || pages > 10 {
				t.Fatal(err, pages)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: got %v, want %v", limit, got, want)
		}
	}
}
