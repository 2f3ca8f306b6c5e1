package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/couponcode"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// BenchmarkCouponGrant measures issuing: one operator grant handled in its
// own store transaction (take a code, imported or generated; check the
// member's limit; record the issue; queue the delivery), each to a
// different member. The event log append is left out (it is the same for
// every event; see the storage benchmarks). With fsync the store syncs like
// production; parallel runs 8 goroutines contending for the one writer.
func BenchmarkCouponGrant(b *testing.B) {
	for _, c := range []struct {
		name     string
		sync     bool
		generate bool
		parallel bool
	}{
		{"imported/nosync", false, false, false},
		{"generated/nosync", false, true, false},
		{"imported/fsync", true, false, false},
		{"imported/fsync/parallel8", true, false, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			pool := "\n  - {name: 券}\n"
			if c.generate {
				pool = "\n  - {name: 券, generate: {prefix: B-, length: 10}}\n"
			}
			sc := couponScenario(b, pool)
			st, err := bolt.Open(filepath.Join(b.TempDir(), "b.db"), bolt.Options{NoSync: !c.sync})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			eng := New(func() *scenarios.Scenario { return sc }, zerolog.Nop(), nil)
			ctx := context.Background()
			if !c.generate {
				codes := make([]string, b.N)
				for i := range codes {
					codes[i] = fmt.Sprintf("C%09d", i)
				}
				if err := st.Update(ctx, func(tx bot.Tx) error { _, err := ImportCoupons(tx, sc, "券", codes, t0); return err }); err != nil {
					b.Fatal(err)
				}
			}
			if err := st.Update(ctx, func(tx bot.Tx) error {
				for i := range b.N {
					if err := tx.PutMember(&bot.Member{ExternalUserID: fmt.Sprintf("wm%09d", i), Follows: []bot.Follow{{StaffID: "s1", AddedAt: t0}}}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			grant := func(i int) error {
				ev := &bot.Event{Seq: uint64(i + 1), Type: EventCouponGrant, ExternalUserID: fmt.Sprintf("wm%09d", i), DedupeKey: fmt.Sprintf("g|%d", i), At: t0,
					Data: map[string]string{DataPool: "券"}}
				return st.Update(ctx, func(tx bot.Tx) error { return eng.Handle(ctx, tx, ev) })
			}
			b.ResetTimer()
			if !c.parallel {
				for i := range b.N {
					if err := grant(i); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				var wg sync.WaitGroup
				next := make(chan int)
				for range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range next {
							if err := grant(i); err != nil {
								b.Error(err)
							}
						}
					}()
				}
				for i := range b.N {
					next <- i
				}
				close(next)
				wg.Wait()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
		})
	}
}

// BenchmarkCouponReport reads every code of a 100,000-code pool, as the
// dashboard's coupon report does.
func BenchmarkCouponReport(b *testing.B) {
	sc := couponScenario(b, "\n  - {name: 券, generate: {prefix: R-, length: 10}}\n")
	st, err := bolt.Open(filepath.Join(b.TempDir(), "r.db"), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.Update(ctx, func(tx bot.Tx) error {
		_, err := GenerateCoupons(tx, sc, "券", 100000, couponcode.NewSeededReader("bench"), t0)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := st.View(ctx, func(tx bot.Tx) error { _, err := BuildCouponReport(tx, sc, t0); return err }); err != nil {
			b.Fatal(err)
		}
	}
}
