package storagetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// BenchAttemptAndOutcome measures the outbox's part of deliveries on s —
// the durable attempt record before each send and the outcome after it
// (BeginAttempt + MarkSent) — from 16 concurrent senders (2 cores × 8),
// on welcome actions with the demo's rendered text and a link, enqueued
// batch to a transaction beforehand.
func BenchAttemptAndOutcome(b *testing.B, s bot.Store, batch int) {
	ctx := context.Background()
	text := strings.Repeat("欢迎加入！新人专享券已发放，点击领取，满 99 减 20。", 4)
	now := time.Now()
	ids := make(chan uint64, b.N)
	for lo := 0; lo < b.N; lo += batch {
		err := s.Update(ctx, func(tx bot.Tx) error {
			for j := lo; j < min(lo+batch, b.N); j++ {
				a, _ := bot.NewAction(bot.ActionWelcome, fmt.Sprint("w", j), bot.WelcomeMessage{WelcomeCode: fmt.Sprint("WC-", j), Text: text,
					Attachments: []bot.Attachment{{Type: "link", Title: "新人券", URL: "https://shop.example.com/coupon?c=NEW20&m=wm123"}}})
				a.MemberID, a.NotAfter = fmt.Sprint("wm_bench_", j), now.Add(20*time.Second)
				if _, err := tx.Enqueue(a); err != nil {
					return err
				}
				ids <- a.ID
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	close(ids)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := <-ids
			if err := s.BeginAttempt(ctx, id, now); err != nil {
				b.Error(err)
				return
			}
			if err := s.MarkSent(ctx, id, now, "msgid"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
