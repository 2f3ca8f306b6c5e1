package retry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/retry"
)

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{-3, 500 * time.Millisecond, time.Second},
		{0, 500 * time.Millisecond, time.Second},
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{9, 128 * time.Second, 256 * time.Second},
		{10, 150 * time.Second, 5 * time.Minute},
		{64, 150 * time.Second, 5 * time.Minute},
		{1 << 30, 150 * time.Second, 5 * time.Minute},
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := retry.Default.Backoff(tc.attempt)
			if d < tc.min || d > tc.max {
				t.Fatalf("Backoff(%d) = %v, want in [%v, %v]", tc.attempt, d, tc.min, tc.max)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("Backoff(%d) is barely jittered: %d distinct values", tc.attempt, len(seen))
		}
	}
	// The floor holds even for a policy whose base is below it.
	p := retry.Policy{Base: time.Millisecond, Cap: time.Second, Floor: 100 * time.Millisecond}
	if d := p.Backoff(1); d != 100*time.Millisecond {
		t.Errorf("floor: %v", d)
	}
}

// TestNextSpreadsRetriesInsideTheDeadline: a welcome code's 20 s window gets
// a handful of tries spread over it, never two closer than the floor, none
// after the deadline, and the last ones inside the window rather than the
// window's first seconds.
func TestNextSpreadsRetriesInsideTheDeadline(t *testing.T) {
	t.Parallel()
	for _, jitter := range []func(time.Duration) time.Duration{
		func(time.Duration) time.Duration { return 0 },   // always the shortest wait
		func(n time.Duration) time.Duration { return n }, // always the longest
	} {
		p := retry.Default
		p.Rand = jitter
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		deadline := start.Add(20 * time.Second)
		now := start
		tries := []time.Time{now}
		for attempt := 1; ; attempt++ {
			next, ok := p.Next(attempt, now, deadline)
			if !ok {
				break
			}
			if next.Sub(now) < p.Floor {
				t.Fatalf("retry %d after %v: below the floor %v", attempt, next.Sub(now), p.Floor)
			}
			if !next.Before(deadline) {
				t.Fatalf("retry %d at %v, past the deadline", attempt, next.Sub(start))
			}
			now = next
			tries = append(tries, now)
		}
		if len(tries) < 4 || len(tries) > 12 {
			t.Errorf("%d tries in 20 s: %v", len(tries), tries)
		}
		if last := tries[len(tries)-1].Sub(start); last < 10*time.Second {
			t.Errorf("the last try at %v: retries bunched at the start of the window", last)
		}
	}
	// Without a deadline it is the plain backoff.
	now := time.Now()
	if next, ok := retry.Default.Next(3, now, time.Time{}); !ok || next.Sub(now) < 2*time.Second {
		t.Errorf("no deadline: %v %v", next.Sub(now), ok)
	}
}

// TestThrottleHoldsAnAPIAndProbes: an overload answer holds the API (other
// APIs stay open); after the hold one probe goes out while the rest wait; a
// failed probe holds longer; a good one opens the API; answers from calls
// already out when it was held don't extend the hold.
func TestThrottleHoldsAnAPIAndProbes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := retry.Policy{Base: time.Second, Cap: 10 * time.Second, Floor: 100 * time.Millisecond, Rand: func(n time.Duration) time.Duration { return n }}
	th := retry.NewThrottle(p, clock)
	ctx := context.Background()
	acquire := func(api string) (*retry.Call, time.Time) {
		t.Helper()
		c, until, err := th.Begin(ctx, api)
		if err != nil {
			t.Fatal(err)
		}
		return c, until
	}
	first, _ := acquire("a")
	stale, _ := acquire("a")
	if first == nil || stale == nil {
		t.Fatal("a fresh API is held")
	}
	first.End(true)
	if c, until := acquire("a"); c != nil || !until.Equal(now.Add(time.Second)) {
		t.Fatalf("after an overload answer: call=%v until=%v", c, until)
	}
	if c, _ := acquire("b"); c == nil {
		t.Fatal("another API is held too")
	}
	stale.End(true) // a call that was already out: no new strike
	if h := th.Hold("a"); !h.Equal(now.Add(time.Second)) {
		t.Fatalf("stale answer extended the hold to %v", h)
	}
	now = now.Add(time.Second)
	probe, _ := acquire("a")
	if probe == nil {
		t.Fatal("no probe after the hold")
	}
	if c, _ := acquire("a"); c != nil {
		t.Fatal("a second call while the probe is out")
	}
	if h := th.Hold("a"); h.IsZero() {
		t.Fatal("Hold says open while the probe is out")
	}
	probe.End(true) // the probe failed: hold 2 s
	if c, until := acquire("a"); c != nil || !until.Equal(now.Add(2*time.Second)) {
		t.Fatalf("after a failed probe: call=%v until=%v", c, until)
	}
	now = now.Add(2 * time.Second)
	probe, _ = acquire("a")
	if probe == nil {
		t.Fatal("no second probe")
	}
	probe.End(false)
	for range 3 {
		c, _ := acquire("a")
		if c == nil {
			t.Fatal("still held after a good probe")
		}
		c.End(false)
	}
	if len(th.Held()) != 0 {
		t.Fatalf("held: %v", th.Held())
	}
	var none *retry.Throttle
	if c, _, _ := none.Begin(ctx, "x"); c == nil || !none.Hold("x").IsZero() {
		t.Fatal("a nil throttle holds")
	}
}

// TestThrottleConcurrencyAdaptsToLatency: an API in demand starts at
// Limits.Initial calls at once; each round trip of answers doubles the
// limit (slow start) up to Max, so 100 ms calls are not capped at
// Initial/100 ms; an overload answer halves it (once per round trip) and
// growth is then one per round trip; Begin waits for a slot while the limit
// is reached and takes one when a call ends; a round trip far above the
// fastest seen shrinks the limit.
func TestThrottleConcurrencyAdaptsToLatency(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	th := retry.NewThrottle(retry.DefaultThrottle, clock).WithLimits(retry.Limits{Initial: 4, Max: 64, PerMinute: -1, PerHour: -1})
	ctx := context.Background()
	// round sends as many calls as the limit allows, 100 ms each.
	round := func(overloaded bool) int {
		n := th.Limit("api")
		calls := make([]*retry.Call, 0, n)
		for range n {
			c, until, err := th.Begin(ctx, "api")
			if err != nil || c == nil {
				t.Fatalf("begin %d of %d: %v %v", len(calls), n, until, err)
			}
			calls = append(calls, c)
		}
		advance(100 * time.Millisecond)
		for i, c := range calls {
			c.End(overloaded && i == 0)
		}
		return th.Limit("api")
	}
	if got := th.Limit("api"); got != 4 {
		t.Fatalf("initial limit %d, want 4", got)
	}
	var seen []int
	for range 5 {
		seen = append(seen, round(false))
	}
	if want := []int{8, 16, 32, 64, 64}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("limits after each round %v, want %v (doubling to Max)", seen, want)
	}
	if got := round(true); got != 32 {
		t.Fatalf("after an overload answer in a round: limit %d, want 32", got)
	}
	advance(2 * time.Minute) // the hold passes; the next call probes
	c, _, _ := th.Begin(ctx, "api")
	c.End(false)
	before := th.Limit("api")
	round(false)
	round(false)
	if got := round(false); got < before+2 || got > before+3 {
		t.Fatalf("after the cut, three rounds took the limit from %d to %d, want about one more per round (additive increase)", before, got)
	}

	// At the limit, Begin waits until a call ends.
	th2 := retry.NewThrottle(retry.DefaultThrottle, clock).WithLimits(retry.Limits{Initial: 1, Max: 1})
	first, _, _ := th2.Begin(ctx, "api")
	got := make(chan *retry.Call)
	go func() {
		c, _, err := th2.Begin(ctx, "api")
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	select {
	case <-got:
		t.Fatal("a second call went out beside the first with limit 1")
	case <-time.After(20 * time.Millisecond):
	}
	first.End(false)
	select {
	case c := <-got:
		if c == nil {
			t.Fatal("no call after the slot freed")
		}
		c.End(false)
	case <-time.After(5 * time.Second):
		t.Fatal("Begin never took the freed slot")
	}
	cctx, cancel := context.WithCancel(ctx)
	hold, _, _ := th2.Begin(ctx, "api")
	cancel()
	if _, _, err := th2.Begin(cctx, "api"); err == nil {
		t.Fatal("Begin on a full API ignored its context")
	}
	hold.End(false)

	// Latency far above the fastest round trip shrinks a grown limit, but
	// never below Initial: a stalled machine looks the same as a queueing
	// service, and only WeCom's overload answers go lower.
	th3 := retry.NewThrottle(retry.DefaultThrottle, clock).WithLimits(retry.Limits{Initial: 4, Max: 64, PerMinute: -1, PerHour: -1})
	roundOf := func(th *retry.Throttle, rtt time.Duration, overloaded bool) int {
		n := th.Limit("api")
		calls := make([]*retry.Call, 0, n)
		for range n {
			c, _, err := th.Begin(ctx, "api")
			if err != nil || c == nil {
				t.Fatalf("begin %d of %d: %v", len(calls), n, err)
			}
			calls = append(calls, c)
		}
		advance(rtt)
		for i, c := range calls {
			c.End(overloaded && i == 0)
		}
		advance(time.Second) // the next round is another round trip
		return th.Limit("api")
	}
	roundOf(th3, 50*time.Millisecond, false)
	if got := roundOf(th3, 50*time.Millisecond, false); got != 16 {
		t.Fatalf("limit %d after two 50 ms rounds from 4, want 16", got)
	}
	if got := roundOf(th3, 2*time.Second, false); got != 8 {
		t.Fatalf("limit %d after a 2 s round trip on a 50 ms API, want it halved to 8", got)
	}
	for range 3 {
		roundOf(th3, 2*time.Second, false)
	}
	if got := th3.Limit("api"); got != 4 {
		t.Fatalf("limit %d after slow round trips only, want Initial 4 (no lower)", got)
	}
	advance(time.Minute)
	if got := roundOf(th3, 50*time.Millisecond, true); got != 2 {
		t.Fatalf("limit %d after an overload answer at 4, want 2 (overload goes below Initial)", got)
	}
	advance(2 * time.Minute) // the hold passes
	if got := roundOf(th3, 2*time.Second, false); got != 2 {
		t.Fatalf("limit %d: a slow round trip raised an overload-cut limit of 2", got)
	}
}

// TestThrottleBudget: an API gets at most PerMinute calls in any minute
// and PerHour in any hour (WeCom's 10,000/min and 150,000/h per API); a
// spent budget holds the API (Hold, Held, Begin's until) until the oldest
// calls leave the window, and other APIs are not affected.
func TestThrottleBudget(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	th := retry.NewThrottle(retry.DefaultThrottle, clock).WithLimits(retry.Limits{Max: 100, PerMinute: 10, PerHour: 25})
	ctx := context.Background()
	call := func(api string) bool {
		c, _, err := th.Begin(ctx, api)
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			c.End(false)
		}
		return c != nil
	}
	for i := range 10 {
		if !call("a") {
			t.Fatalf("call %d of a budget of 10/min refused", i+1)
		}
		now = now.Add(time.Second)
	}
	if call("a") {
		t.Fatal("an 11th call inside a minute went out")
	}
	until := th.Hold("a")
	if want := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC); !until.Equal(want) {
		t.Fatalf("held until %v, want %v (when the first call leaves the minute)", until, want)
	}
	if _, ok := th.Held()["a"]; !ok {
		t.Fatal("Held does not list the API whose budget is spent")
	}
	if !call("b") {
		t.Fatal("another API is held by a's budget")
	}
	now = until
	if !call("a") {
		t.Fatal("the minute freed a call but it was refused")
	}
	// The hour: 25 calls; 11 made so far.
	for range 14 {
		now = now.Add(10 * time.Second)
		if !call("a") {
			t.Fatalf("refused at %v inside the hourly budget", now)
		}
	}
	now = now.Add(10 * time.Minute)
	if call("a") {
		t.Fatal("a 26th call inside an hour went out")
	}
	if h := th.Hold("a"); !h.Equal(time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)) {
		t.Fatalf("hour budget held until %v, want 01:00 (when the first minute's calls leave the hour)", h)
	}
}
