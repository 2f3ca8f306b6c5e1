package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// TestMonthlyJobReadsLevelMembersPaced: the month's coupon job reaches the
// members at a level with a monthly coupon through the index (two
// continuations of 50 cover 60 such members among 240), and other events
// continue it at most once per economyPace, however many arrive.
func TestMonthlyJobReadsLevelMembersPaced(t *testing.T) {
	t.Parallel()
	h := newHarness(t, economyScenario(t, ""))
	h.clock = time.Date(2025, 4, 1, 10, 30, 0, 0, h.sc.Brand.Zone)
	const members = 240
	id := func(i int) string { return fmt.Sprintf("wm%03d", i) }
	for i := range members {
		h.send(add(id(i), "s1", "", ""))
	}
	atLevel := func(i int) bool { return i%4 == 0 } // 60 of 240, spread through the id order
	for i := range members {
		if atLevel(i) {
			h.send(paid(id(i), "O"+id(i), 10000)) // 100 points: 高级, whose monthly coupon is 月券
		}
	}
	// What the day's first tick at 10:00 opens (a member id as cursor: an
	// older build's, which starts over).
	h.inRun(func(r *run) error {
		return r.tx.Put(bucketEconomyJobs, "pending|monthly|2025-04", []byte(id(100)))
	})
	given := func() (level, other int) {
		t.Helper()
		if err := h.store.View(context.Background(), func(tx bot.Tx) error {
			for i := range members {
				cs, err := MemberCoupons(tx, id(i))
				if err != nil {
					return err
				}
				for _, c := range cs {
					if c.Pool != "月券" {
						continue
					}
					if atLevel(i) {
						level++
					} else {
						other++
					}
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return level, other
	}
	jobState := func() (pending, done bool) {
		t.Helper()
		h.inRun(func(r *run) (err error) {
			if pending, err = r.has(bucketEconomyJobs, "pending|monthly|2025-04"); err != nil {
				return err
			}
			done, err = r.has(bucketEconomyJobs, "done|monthly|2025-04")
			return err
		})
		return pending, done
	}

	h.send(kf(id(1), "hi")) // continues: 50 members
	if l, o := given(); l != economyAfterBudget || o != 0 {
		t.Fatalf("after one continuation: %d level members and %d others got the monthly coupon, want %d and 0", l, o, economyAfterBudget)
	}
	for range 5 { // the same instant: paced, no more work
		h.send(kf(id(1), "hi"))
	}
	if l, _ := given(); l != economyAfterBudget {
		t.Fatalf("events inside one pace continued the job: %d coupons", l)
	}
	h.advance(economyPace / 2)
	h.send(kf(id(1), "hi"))
	if l, _ := given(); l != economyAfterBudget {
		t.Fatalf("an event half a pace later continued the job: %d coupons", l)
	}
	h.advance(economyPace / 2)
	h.send(kf(id(1), "hi")) // a pace after the first: the other 10, and the job ends
	if l, o := given(); l != 60 || o != 0 {
		t.Fatalf("after two continuations: %d level members and %d others got it, want 60 and 0", l, o)
	}
	if pending, done := jobState(); pending || !done {
		t.Fatalf("job pending %v done %v after it reached every level member", pending, done)
	}
	h.advance(time.Hour)
	h.send(kf(id(1), "hi"))
	if l, _ := given(); l != 60 {
		t.Fatalf("the done job gave again: %d", l)
	}
}
