package engine

import (
	"fmt"
	"sort"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// A feature extends the engine from its own file (check-in campaigns,
// coupons, AI replies) without growing the core switch in engine.go. Each
// feature file registers one in init(). Features run inside the event's
// transaction, like the core: no network I/O; whatever is owed to WeCom or
// to the model is an outbox action whose key derives from r.ref.
type feature struct {
	// name identifies the feature in logs.
	name string
	// order sorts features (lower first) for command, fallback and after.
	order int
	// events handles event types the core doesn't know (e.g. a scheduled
	// reminder firing, a check-in from a signed link, an operator coupon grant).
	events map[bot.EventType]func(r *run) error
	// command sees a member's message (surface scenarios.SurfaceKf, or
	// SurfaceApp with ms nil) before the keyword rules; returning true
	// consumes it: keyword rules and fallbacks don't run.
	command func(r *run, ms *memberState, surface, text string) (bool, error)
	// fallback sees a message no command or keyword rule took (the AI reply).
	fallback func(r *run, ms *memberState, surface, text string) (bool, error)
	// after runs for every handled event once the core and the event's
	// handler are done, before levels, tag rules and tag write-back
	// (e.g. a coupon on a stage change: compare ms.m.StageHistory).
	after func(r *run) error
}

var features []*feature

// register adds a feature; call it from init().
func register(f *feature) {
	for _, g := range features {
		for t := range f.events {
			if _, dup := g.events[t]; dup {
				panic(fmt.Sprintf("engine: event %s handled by features %s and %s", t, g.name, f.name))
			}
		}
	}
	features = append(features, f)
	sort.SliceStable(features, func(i, j int) bool { return features[i].order < features[j].order })
}

// featureEvent returns the feature handler for t, if any.
func featureEvent(t bot.EventType) func(r *run) error {
	for _, f := range features {
		if h := f.events[t]; h != nil {
			return h
		}
	}
	return nil
}

// runCommands offers a message to the features' commands in order.
func (r *run) runCommands(ms *memberState, surface, text string) (bool, error) {
	for _, f := range features {
		if f.command == nil {
			continue
		}
		if done, err := f.command(r, ms, surface, text); err != nil || done {
			return done, err
		}
	}
	return false, nil
}

// runFallbacks offers an unanswered message to the features' fallbacks.
func (r *run) runFallbacks(ms *memberState, surface, text string) (bool, error) {
	for _, f := range features {
		if f.fallback == nil {
			continue
		}
		if done, err := f.fallback(r, ms, surface, text); err != nil || done {
			return done, err
		}
	}
	return false, nil
}

// runAfter runs the features' after hooks.
func (r *run) runAfter() error {
	for _, f := range features {
		if f.after == nil {
			continue
		}
		if err := f.after(r); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// Hooks one feature offers another, set by the providing feature's init()
// and nil when it isn't built in. Callers check for nil.
var (
	// issueCoupon issues one code of pool to the member for hook (e.g.
	// "welcome", "milestone:<campaign>:<day>", "referral:<n>"), idempotent
	// per (member, hook, r.ref), and returns the text to tell the member
	// (the code, or the pool's fallback when empty or over the limit).
	issueCoupon func(r *run, ms *memberState, pool *scenarios.CouponPool, hook string) (text string, err error)
)
