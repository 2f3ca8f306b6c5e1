// Package retry is wecombot's one retry policy: how long to wait before
// trying again, for every outbox action kind, every WeCom API call and the
// event workers' storage retries, and a per-API throttle that holds back a
// whole API while WeCom says it is overloaded.
//
// Policy.Delay is jittered exponential backoff with a floor, aware of
// deadlines: an action that must go out by a deadline (a welcome code's
// 20 s) spreads its retries inside the time left instead of giving up early
// or hammering WeCom, and never waits less than the floor.
package retry

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Policy is jittered exponential backoff: the wait before retry number n
// (1-based) is uniformly random in [ceil/2, ceil], ceil = Base × 2^(n-1)
// capped at Cap, and never below Floor. Half the ceiling is kept so a busy
// service is never hammered with near-zero waits; the other half is jitter,
// so workers that failed together don't retry together.
type Policy struct {
	Base  time.Duration
	Cap   time.Duration
	Floor time.Duration
	// Rand returns a uniformly random duration in [0, n]; nil uses math/rand/v2.
	// Tests inject a fixed one.
	Rand func(n time.Duration) time.Duration
}

// Default is the policy for outbound calls (WeCom, the model): 1 s × 2^n up
// to 5 min, never less than 500 ms.
var Default = Policy{Base: time.Second, Cap: 5 * time.Minute, Floor: 500 * time.Millisecond}

// Storage is the policy for the event workers and the outbox when the store
// refuses writes (disk full, read-only): a local disk is cheap to ask
// again, so retries start at 100 ms and stay within 5 s, which is how soon
// work resumes after the disk is repaired.
var Storage = Policy{Base: 100 * time.Millisecond, Cap: 5 * time.Second, Floor: 50 * time.Millisecond}

// Scaled returns p with every duration multiplied by f (tests run the real
// policy's shape at a fraction of its time).
func (p Policy) Scaled(f float64) Policy {
	s := func(d time.Duration) time.Duration { return time.Duration(float64(d) * f) }
	p.Base, p.Cap, p.Floor = s(p.Base), s(p.Cap), s(p.Floor)
	return p
}

func (p Policy) rand(n time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	if p.Rand != nil {
		return p.Rand(n)
	}
	return rand.N(n + 1)
}

// Backoff is the wait before retry number attempt (values below 1 count as 1).
func (p Policy) Backoff(attempt int) time.Duration {
	attempt = max(attempt, 1)
	ceil := p.Cap
	if attempt-1 < 30 { // 2^30 × Base is far past any cap; avoids shift overflow
		ceil = min(p.Base<<(attempt-1), p.Cap)
	}
	return max(ceil/2+p.rand(ceil/2), p.Floor)
}

// Next is when to try again after failed attempt number attempt at now, for
// work that must be done by deadline (zero: none). ok=false means there is
// no time for another try before the deadline: give up.
//
// With a deadline the wait is the backoff, but at most half the time left,
// so the tries left are spread inside the window (a welcome code's 20 s
// gets tries at about 0, 1, 3, 6, 10, 15 s, not twelve tries in the first
// two seconds nor one try after the window closed) — and never less than
// the floor.
func (p Policy) Next(attempt int, now, deadline time.Time) (next time.Time, ok bool) {
	wait := p.Backoff(attempt)
	if deadline.IsZero() {
		return now.Add(wait), true
	}
	left := deadline.Sub(now)
	if half := left / 2; wait > half {
		wait = half
	}
	wait = max(wait, p.Floor)
	if wait >= left {
		return time.Time{}, false
	}
	return now.Add(wait), true
}

// Throttle holds back whole APIs while the service answers that it is
// overloaded or down (WeCom's 45009/45033 frequency limits, -1 system busy,
// HTTP 5xx, timeouts): after such an answer no call to that API goes out
// until a backoff has passed; then exactly one call probes, and the API
// opens again only when a probe succeeds. A 60 s outage therefore costs a
// handful of calls per API instead of every owed action's retries.
//
// It is one component with a narrow interface (Hold, Acquire, Observe) so
// per-API adaptive concurrency can be layered on it later.
type Throttle struct {
	policy Policy
	now    func() time.Time

	mu    sync.Mutex
	gates map[string]*gate
}

type gate struct {
	strikes int       // consecutive overload answers
	openAt  time.Time // no call before this
	probe   bool      // a probe call is out
}

// NewThrottle builds a throttle whose hold after n consecutive overload
// answers is policy.Backoff(n); now nil is time.Now.
func NewThrottle(policy Policy, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{policy: policy, now: now, gates: map[string]*gate{}}
}

// DefaultThrottle holds an API 1 s after the first overload answer,
// doubling to 10 s: under a long outage an API sees a probe every ~10 s.
var DefaultThrottle = Policy{Base: time.Second, Cap: 10 * time.Second, Floor: 500 * time.Millisecond}

// Hold returns until when api is held (zero when calls may go out). An API
// whose probe is out counts as held.
func (t *Throttle) Hold(api string) time.Time {
	if t == nil {
		return time.Time{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.gates[api]
	if g == nil || g.strikes == 0 {
		return time.Time{}
	}
	now := t.now()
	if g.probe || now.Before(g.openAt) {
		if g.openAt.After(now) {
			return g.openAt
		}
		return now.Add(t.policy.Floor)
	}
	return time.Time{}
}

// Acquire asks to call api now. It returns true when the API is open, or
// when it is held but its backoff has passed and no probe is out (the
// caller's call is the probe); else false and until when it is held. Every
// granted call must be followed by Observe.
func (t *Throttle) Acquire(api string) (ok bool, until time.Time) {
	if t == nil {
		return true, time.Time{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.gates[api]
	if g == nil || g.strikes == 0 {
		return true, time.Time{}
	}
	now := t.now()
	if g.probe || now.Before(g.openAt) {
		until = g.openAt
		if !until.After(now) {
			until = now.Add(t.policy.Floor)
		}
		return false, until
	}
	g.probe = true
	return true, time.Time{}
}

// Observe records the outcome of a call to api: overloaded=true holds the
// API for the next backoff; false (any other answer, success or a
// request-specific error) opens it.
func (t *Throttle) Observe(api string, overloaded bool) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.gates[api]
	if !overloaded {
		if g != nil {
			delete(t.gates, api)
		}
		return
	}
	now := t.now()
	if g == nil {
		g = &gate{}
		t.gates[api] = g
	}
	if !g.probe && now.Before(g.openAt) {
		// A call that was already out when the API was held: it says
		// nothing new, and must not push the hold further.
		return
	}
	g.strikes++
	g.probe = false
	g.openAt = now.Add(t.policy.Backoff(g.strikes))
}

// Held lists the APIs held now, for status pages and metrics.
func (t *Throttle) Held() map[string]time.Time {
	out := map[string]time.Time{}
	if t == nil {
		return out
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for api, g := range t.gates {
		if g.strikes > 0 {
			out[api] = g.openAt
		}
	}
	return out
}
