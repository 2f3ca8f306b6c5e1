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
	"context"
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

// Throttle is the one gate every call to an API passes (WeCom's per-API
// rules), with three parts:
//
//   - hold: while the service answers that it is overloaded or down
//     (WeCom's 45009/45033 frequency limits, -1 system busy, HTTP 5xx,
//     timeouts) no call to that API goes out until a backoff has passed;
//     then exactly one call probes, and the API opens again only when a
//     probe succeeds. A 60 s outage costs a handful of calls per API
//     instead of every owed action's retries.
//   - budget: at most Limits.PerMinute calls in any minute and
//     Limits.PerHour in any hour per API (WeCom's documented frequency
//     limits, 10,000/min and 150,000/h per API per corp); a spent budget
//     holds the API like an overload until the window frees.
//   - concurrency: how many calls to an API are out at once adapts to its
//     latency (AIMD with slow start, as TCP does): calls taken while the
//     API is in demand raise the limit (doubling per round trip at first,
//     then by one per round trip), an overload answer halves it and a round
//     trip far above the fastest seen shrinks it. By Little's law the
//     limit a rate needs is rate × latency: 300 calls/s at 100 ms need 30
//     at once, where a fixed 8 would cap the API at 80/s.
//
// Begin waits for a slot and asks the hold and the budget; every call it
// grants must be ended with End.
type Throttle struct {
	policy Policy
	limits Limits
	now    func() time.Time

	mu    sync.Mutex
	gates map[string]*gate
}

// Limits bound a Throttle's per-API concurrency and call budget.
type Limits struct {
	// Initial, Min and Max bound the adaptive concurrency per API
	// (defaults 8, 1, 128).
	Initial, Min, Max int
	// PerMinute and PerHour cap calls per API in any minute / hour
	// (defaults 10,000 and 150,000: WeCom's limits; negative: no cap).
	PerMinute, PerHour int
}

// DefaultLimits are WeCom's per-API frequency limits and the concurrency
// bounds wecombot starts from.
var DefaultLimits = Limits{Initial: 8, Min: 1, Max: 128, PerMinute: 10000, PerHour: 150000}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.Initial <= 0 {
		l.Initial = d.Initial
	}
	if l.Min <= 0 {
		l.Min = d.Min
	}
	if l.Max <= 0 {
		l.Max = d.Max
	}
	l.Max = max(l.Max, l.Min)
	l.Initial = min(max(l.Initial, l.Min), l.Max)
	if l.PerMinute == 0 {
		l.PerMinute = d.PerMinute
	}
	if l.PerHour == 0 {
		l.PerHour = d.PerHour
	}
	return l
}

type gate struct {
	strikes int       // consecutive overload answers
	openAt  time.Time // no call before this
	probe   bool      // a probe call is out

	limit    float64 // adaptive concurrency
	ssthresh float64 // slow start below it (0: not yet left)
	inflight int
	minRTT   time.Duration
	lastCut  time.Time     // the limit is cut at most once per round trip
	busyAt   time.Time     // last time at least half the slots were taken
	free     chan struct{} // closed (and replaced) when a slot frees

	minute window // calls per second over the last 60 s
	hour   window // calls per minute over the last 60 min
}

// window counts calls in 60 slots of width unit (a ring keyed by slot number).
type window struct {
	unit  time.Duration
	count [60]int32
	slot  [60]int64
}

func (w *window) add(now time.Time) {
	n := now.UnixNano() / int64(w.unit)
	i := n % 60
	if w.slot[i] != n {
		w.slot[i], w.count[i] = n, 0
	}
	w.count[i]++
}

// used is the calls in the 60 slots up to now; freeAt when the oldest of
// them leaves the window.
func (w *window) used(now time.Time) (n int, freeAt time.Time) {
	cur := now.UnixNano() / int64(w.unit)
	oldest := cur + 1
	for i := range w.slot {
		if s := w.slot[i]; s > cur-60 && s <= cur && w.count[i] > 0 {
			n += int(w.count[i])
			oldest = min(oldest, s)
		}
	}
	return n, time.Unix(0, (oldest+60)*int64(w.unit))
}

// NewThrottle builds a throttle whose hold after n consecutive overload
// answers is policy.Backoff(n), with DefaultLimits; now nil is time.Now.
func NewThrottle(policy Policy, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{policy: policy, limits: DefaultLimits, now: now, gates: map[string]*gate{}}
}

// WithLimits sets the concurrency bounds and budgets (zero fields take
// DefaultLimits'); call it before the throttle is used.
func (t *Throttle) WithLimits(l Limits) *Throttle {
	t.limits = l.withDefaults()
	return t
}

// DefaultThrottle holds an API 1 s after the first overload answer,
// doubling to 10 s: under a long outage an API sees a probe every ~10 s.
var DefaultThrottle = Policy{Base: time.Second, Cap: 10 * time.Second, Floor: 500 * time.Millisecond}

func (t *Throttle) gateLocked(api string) *gate {
	g := t.gates[api]
	if g == nil {
		g = &gate{limit: float64(t.limits.Initial), free: make(chan struct{}),
			minute: window{unit: time.Second}, hour: window{unit: time.Minute}}
		t.gates[api] = g
	}
	return g
}

// heldLocked is until when g refuses calls (zero: open): an overload hold
// (a probe out counts as held), else a spent budget.
func (t *Throttle) heldLocked(g *gate, now time.Time) time.Time {
	if g.strikes > 0 && (g.probe || now.Before(g.openAt)) {
		if g.openAt.After(now) {
			return g.openAt
		}
		return now.Add(t.policy.Floor)
	}
	var until time.Time
	if t.limits.PerMinute > 0 {
		if n, at := g.minute.used(now); n >= t.limits.PerMinute {
			until = at
		}
	}
	if t.limits.PerHour > 0 {
		if n, at := g.hour.used(now); n >= t.limits.PerHour && at.After(until) {
			until = at
		}
	}
	return until
}

// Hold returns until when api is held (zero when calls may go out).
func (t *Throttle) Hold(api string) time.Time {
	if t == nil {
		return time.Time{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.gates[api]
	if g == nil {
		return time.Time{}
	}
	return t.heldLocked(g, t.now())
}

// Limit is api's concurrency limit now: how many calls to it may be out
// at once (the outbox sends at most this many actions needing it).
func (t *Throttle) Limit(api string) int {
	if t == nil {
		return DefaultLimits.Initial
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if g := t.gates[api]; g != nil {
		return max(int(g.limit), 1)
	}
	return t.limits.Initial
}

// Call is one call Begin granted; End it with its outcome.
type Call struct {
	t     *Throttle
	api   string
	start time.Time
}

// Begin waits until a call to api may go out (a concurrency slot is
// free; ctx bounds the wait) and takes it, unless the API is held (an
// overload hold not yet passed, a probe out, a spent budget): then it
// returns no call and until when it is held. A held API whose backoff has
// passed lets exactly one call through, as the probe.
func (t *Throttle) Begin(ctx context.Context, api string) (call *Call, until time.Time, err error) {
	if t == nil {
		return &Call{api: api}, time.Time{}, nil
	}
	t.mu.Lock()
	for {
		g := t.gateLocked(api)
		now := t.now()
		if held := t.heldLocked(g, now); !held.IsZero() {
			t.mu.Unlock()
			return nil, held, nil
		}
		if g.inflight < max(int(g.limit), 1) {
			if g.strikes > 0 {
				g.probe = true
			}
			g.inflight++
			g.minute.add(now)
			g.hour.add(now)
			if float64(g.inflight) >= g.limit/2 {
				g.busyAt = now
			}
			c := &Call{t: t, api: api, start: now}
			t.mu.Unlock()
			return c, time.Time{}, nil
		}
		free := g.free
		t.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		}
		t.mu.Lock()
	}
}

// End records the call's outcome: overloaded=true holds the API for the
// next backoff and halves its concurrency; false (any other answer,
// success or a request-specific error) opens it, and its round trip
// adapts the concurrency.
func (c *Call) End(overloaded bool) {
	t := c.t
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.gateLocked(c.api)
	now := t.now()
	rtt := now.Sub(c.start)
	g.inflight--
	close(g.free)
	g.free = make(chan struct{})
	lim := t.limits
	// cut halves the limit, at most once per round trip, down to floor.
	cut := func(floor int) {
		if now.Sub(g.lastCut) < max(g.minRTT, time.Millisecond) {
			return // one cut per round trip: the calls out with this one say the same
		}
		if g.limit <= float64(floor) {
			return // already at or below it (an overload cut may go lower than a slow one)
		}
		g.lastCut = now
		g.limit = max(g.limit/2, float64(floor))
		g.ssthresh = max(g.limit, float64(lim.Min))
	}
	if overloaded {
		cut(lim.Min)
		if !g.probe && g.strikes > 0 && now.Before(g.openAt) {
			// A call that was already out when the API was held: it says
			// nothing new, and must not push the hold further.
			return
		}
		g.strikes++
		g.probe = false
		g.openAt = now.Add(t.policy.Backoff(g.strikes))
		return
	}
	g.strikes, g.probe, g.openAt = 0, false, time.Time{}
	if g.minRTT == 0 || rtt < g.minRTT {
		g.minRTT = rtt
	} else {
		g.minRTT += (rtt - g.minRTT) / 256 // forget a fast round trip slowly
	}
	// Only a call made while the API was in demand (at least half its
	// slots taken) and after the last cut says the limit may grow.
	demand := !g.busyAt.Before(c.start) && !c.start.Before(g.lastCut)
	switch {
	case rtt > 4*g.minRTT+50*time.Millisecond:
		// Far slower than the API has been: calls may queue at the service
		// — or this machine is short of CPU, which a round trip can't tell
		// apart. Only WeCom's overload answers take the limit below
		// Initial: slow round trips alone never cost the welcomes their
		// starting concurrency.
		cut(lim.Initial)
	case demand && (g.ssthresh == 0 || g.limit < g.ssthresh):
		g.limit = min(g.limit+1, float64(lim.Max)) // slow start: doubles per round trip
	case demand:
		g.limit = min(g.limit+1/g.limit, float64(lim.Max))
	}
}

// Held lists the APIs held now (overload or spent budget), for status
// pages and metrics.
func (t *Throttle) Held() map[string]time.Time {
	out := map[string]time.Time{}
	if t == nil {
		return out
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for api, g := range t.gates {
		if until := t.heldLocked(g, now); !until.IsZero() {
			out[api] = until
		}
	}
	return out
}
