package ai

import (
	"sync"
	"time"
)

// Breaker is a circuit breaker for the model: after Threshold failures in a
// row it opens for Cooldown (every reply uses the offline answer or the
// fallback at once, instead of waiting out timeouts), then lets one call
// through (half-open); a success closes it.
type Breaker struct {
	Threshold int
	Cooldown  time.Duration
	Now       func() time.Time

	mu       sync.Mutex
	failures int
	openedAt time.Time
	probing  bool
}

// NewBreaker returns a breaker opening after threshold failures for cooldown.
func NewBreaker(threshold int, cooldown time.Duration, now func() time.Time) *Breaker {
	if now == nil {
		now = time.Now
	}
	return &Breaker{Threshold: threshold, Cooldown: cooldown, Now: now}
}

// Allow reports whether a call may go to the model now.
func (b *Breaker) Allow() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.Threshold {
		return true
	}
	if b.Now().Sub(b.openedAt) < b.Cooldown || b.probing {
		return false
	}
	b.probing = true
	return true
}

// Record reports a call's outcome.
func (b *Breaker) Record(ok bool) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if ok {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= b.Threshold {
		b.openedAt = b.Now()
	}
}

// State is "closed", "open" or "half-open", for status and metrics.
func (b *Breaker) State() string {
	if b == nil {
		return "closed"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.failures < b.Threshold:
		return "closed"
	case b.Now().Sub(b.openedAt) < b.Cooldown:
		return "open"
	}
	return "half-open"
}
