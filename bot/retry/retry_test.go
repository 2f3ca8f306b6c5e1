package retry_test

import (
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
	if ok, _ := th.Acquire("a"); !ok {
		t.Fatal("a fresh API is held")
	}
	th.Observe("a", true)
	if ok, until := th.Acquire("a"); ok || !until.Equal(now.Add(time.Second)) {
		t.Fatalf("after an overload answer: ok=%v until=%v", ok, until)
	}
	if ok, _ := th.Acquire("b"); !ok {
		t.Fatal("another API is held too")
	}
	th.Observe("a", true) // a call that was already out: no new strike
	if h := th.Hold("a"); !h.Equal(now.Add(time.Second)) {
		t.Fatalf("stale answer extended the hold to %v", h)
	}
	now = now.Add(time.Second)
	if ok, _ := th.Acquire("a"); !ok {
		t.Fatal("no probe after the hold")
	}
	if ok, _ := th.Acquire("a"); ok {
		t.Fatal("a second call while the probe is out")
	}
	if h := th.Hold("a"); h.IsZero() {
		t.Fatal("Hold says open while the probe is out")
	}
	th.Observe("a", true) // the probe failed: hold 2 s
	if ok, until := th.Acquire("a"); ok || !until.Equal(now.Add(2*time.Second)) {
		t.Fatalf("after a failed probe: ok=%v until=%v", ok, until)
	}
	now = now.Add(2 * time.Second)
	if ok, _ := th.Acquire("a"); !ok {
		t.Fatal("no second probe")
	}
	th.Observe("a", false)
	for range 3 {
		if ok, _ := th.Acquire("a"); !ok {
			t.Fatal("still held after a good probe")
		}
	}
	if len(th.Held()) != 0 {
		t.Fatalf("held: %v", th.Held())
	}
	var none *retry.Throttle
	if ok, _ := none.Acquire("x"); !ok || !none.Hold("x").IsZero() {
		t.Fatal("a nil throttle holds")
	}
}
