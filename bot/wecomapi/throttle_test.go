package wecomapi_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/retry"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// TestThrottleHoldsTheAPIAfterOverload: one 45009 answer holds
// send_welcome_msg — the next send is refused locally (a *HeldError,
// retryable, nothing reaches WeCom) and HoldUntil tells the outbox so —
// while mark_tag stays open; after the hold one probe goes out and, when it
// succeeds, the API is open again.
func TestThrottleHoldsTheAPIAfterOverload(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *wecomapi.Config) {
		c.Throttle = retry.Policy{Base: 300 * time.Millisecond, Cap: time.Second, Floor: 300 * time.Millisecond}
	})
	ctx := context.Background()
	if err := e.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	e.fake.FailNext(fakewecom.APISendWelcomeMsg, 45009, 1)
	if _, retry, err := e.client.Send(ctx, welcome(t, "wc-1")); !retry || err == nil {
		t.Fatalf("45009: retry %v err %v", retry, err)
	}
	calls := e.fake.Count(fakewecom.APISendWelcomeMsg)
	_, retryable, err := e.client.Send(ctx, welcome(t, "wc-2"))
	var held *wecomapi.HeldError
	if !retryable || !errors.As(err, &held) {
		t.Fatalf("send while held: retry %v err %v, want a retryable HeldError", retryable, err)
	}
	if n := e.fake.Count(fakewecom.APISendWelcomeMsg); n != calls {
		t.Fatalf("a held call reached WeCom (%d → %d calls)", calls, n)
	}
	if until := e.client.HoldUntil(welcome(t, "wc-2")); !until.After(time.Now()) {
		t.Fatalf("HoldUntil(welcome) = %v, want a time ahead", until)
	}
	tag := action(t, bot.ActionMarkTag, bot.MarkTag{StaffID: "s1", ExternalUserID: "wm1", Add: []string{"A"}})
	if until := e.client.HoldUntil(tag); !until.IsZero() {
		t.Fatalf("mark_tag held too: %v", until)
	}
	if _, _, err := e.client.Send(ctx, tag); err != nil {
		t.Fatalf("mark_tag while welcome is held: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !e.client.HoldUntil(welcome(t, "wc-2")).IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("the hold never ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := e.client.Send(ctx, welcome(t, "wc-2")); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if _, _, err := e.client.Send(ctx, welcome(t, "wc-3")); err != nil {
		t.Fatalf("after a good probe: %v", err)
	}
	if len(e.client.Held()) != 0 {
		t.Fatalf("still held: %v", e.client.Held())
	}
}

// TestLostAnswerIsOutcomeUnknownAndResolvedPerKind: a welcome whose answer
// times out is "outcome unknown" (bot.ErrOutcomeUnknown); sent again as
// possibly delivered, WeCom's 41051 for the used code means delivered
// (Inferred). A 41051 without an earlier unknown attempt stays a final error.
func TestLostAnswerIsOutcomeUnknownAndResolvedPerKind(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *wecomapi.Config) { c.Timeout = 200 * time.Millisecond })
	ctx := context.Background()
	if err := e.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	e.fake.Delay(fakewecom.APISendWelcomeMsg, 400*time.Millisecond) // WeCom takes the code, the answer is lost
	a := welcome(t, "wc-lost")
	_, retryable, err := e.client.Send(ctx, a)
	if !retryable || !errors.Is(err, bot.ErrOutcomeUnknown) {
		t.Fatalf("timed-out welcome: retry %v err %v, want outcome unknown", retryable, err)
	}
	e.fake.Delay(fakewecom.APISendWelcomeMsg, 0)
	// An attempt that WeCom took but whose answer was lost, then the resend.
	if _, _, err := e.client.Send(ctx, welcome(t, "wc-taken")); err != nil {
		t.Fatal(err)
	}
	resend := welcome(t, "wc-taken")
	resend.PossiblyDelivered = true
	res, _, err := e.client.Send(ctx, resend)
	if err != nil || !res.Inferred {
		t.Fatalf("resend of a possibly delivered welcome: %+v %v, want inferred delivery", res, err)
	}
	// A used code without an unknown attempt before is a plain 41051.
	if _, _, err := e.client.Send(ctx, welcome(t, "wc-taken")); err == nil {
		t.Fatal("41051 for a code used by someone else read as delivered")
	}
	// A read API's lost answer is not "possibly delivered".
	e.fake.Delay(fakewecom.APIKfSyncMsg, 400*time.Millisecond)
	if _, _, _, err := e.client.KfSyncMsg(ctx, "t", "wk1", ""); err == nil || errors.Is(err, bot.ErrOutcomeUnknown) {
		t.Fatalf("kf/sync_msg timeout: %v", err)
	}
}

// TestSendConcurrencyFollowsLatency: against a WeCom answering after 50 ms,
// 60 senders' welcomes raise send_welcome_msg's concurrency (SendLimit)
// from its initial 8 — a fixed 8 would cap the API at 160 calls/s — and
// never past Limits.Max; every send succeeds once.
func TestSendConcurrencyFollowsLatency(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *wecomapi.Config) { c.Limits = retry.Limits{Max: 40} })
	e.fake.SetLatency(50 * time.Millisecond)
	ctx := context.Background()
	if api, n := e.client.SendLimit(welcome(t, "x")); api != fakewecom.APISendWelcomeMsg || n != retry.DefaultLimits.Initial {
		t.Fatalf("SendLimit before any call = %s %d, want %s %d", api, n, fakewecom.APISendWelcomeMsg, retry.DefaultLimits.Initial)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := 0 // the highest limit seen: a loaded test machine's stalls may cut it again later
	errs := make(chan error, 300)
	for w := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				if _, _, err := e.client.Send(ctx, welcome(t, fmt.Sprintf("wc-%d-%d", w, i))); err != nil {
					errs <- err
				}
				_, n := e.client.SendLimit(welcome(t, "x"))
				mu.Lock()
				peak = max(peak, n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.fake.Count(fakewecom.APISendWelcomeMsg); n != 300 {
		t.Fatalf("%d send_welcome_msg calls, want 300", n)
	}
	if peak <= retry.DefaultLimits.Initial || peak > 40 {
		t.Fatalf("highest SendLimit with 60 senders at 50 ms = %d, want above %d and at most Max 40", peak, retry.DefaultLimits.Initial)
	}
}
