package pipeline

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/metrics"
)

// The pipeline wraps the engine's handler in this chain, outermost first:
// Logging, Metrics, Recover. Options.Middleware adds more inside them.

// Recover turns a handler panic (a bug) into an error, so the event is
// retried and then recorded as failed instead of crashing the worker and
// with it the process.
func Recover(log zerolog.Logger) bot.MiddlewareFunc {
	return func(next bot.HandlerFunc) bot.HandlerFunc {
		return func(ctx context.Context, tx bot.Tx, ev *bot.Event) (err error) {
			defer func() {
				if r := recover(); r != nil {
					log.Error().Uint64("seq", ev.Seq).Str("type", string(ev.Type)).Str("panic", fmt.Sprint(r)).
						Str("stack", string(debug.Stack())).Msg("event handler panicked (a bug): the event will be retried, then recorded as failed")
					err = fmt.Errorf("handler panicked: %v", r)
				}
			}()
			return next(ctx, tx, ev)
		}
	}
}

// Logging puts a logger carrying the event's seq, type and member into ctx
// (zerolog.Ctx(ctx) in handlers) and logs each handling at debug level with
// its duration, and a failed one at warn.
func Logging(log zerolog.Logger) bot.MiddlewareFunc {
	return func(next bot.HandlerFunc) bot.HandlerFunc {
		return func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
			lc := log.With().Uint64("seq", ev.Seq).Str("type", string(ev.Type))
			if ev.ExternalUserID != "" {
				lc = lc.Str("member", ev.ExternalUserID)
			}
			l := lc.Logger()
			start := time.Now()
			err := next(l.WithContext(ctx), tx, ev)
			if err != nil {
				l.Warn().Err(err).Dur("took_ms", time.Since(start)).Msg("event handler failed")
			} else {
				l.Debug().Dur("took_ms", time.Since(start)).Msg("event handled")
			}
			return err
		}
	}
}

// Metrics counts a handled event (wecombot_events_total{result="ok"} and
// the time since receipt) once its transaction has committed: with group
// commit a handler can run again when a batch-mate fails, and a rolled-back
// run must not count. Skipped and failed events are counted by the pipeline,
// which decides them.
func Metrics(m *metrics.Metrics, now func() time.Time) bot.MiddlewareFunc {
	return func(next bot.HandlerFunc) bot.HandlerFunc {
		return func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
			err := next(ctx, tx, ev)
			if err == nil {
				typ, received := string(ev.Type), ev.ReceivedAt
				AfterCommit(ctx, func() { m.Event(typ, "ok", now().Sub(received)) })
			}
			return err
		}
	}
}

type commitHooksKey struct{}

// commitHooks collects what one handler run wants done once its transaction
// commits; a fresh one is made for every run, so a re-run starts empty.
type commitHooks struct {
	mu    sync.Mutex
	hooks []func()
}

// AfterCommit runs fn after the transaction the handler in ctx runs in has
// committed (never if it rolls back). Outside the pipeline it runs fn at once.
func AfterCommit(ctx context.Context, fn func()) {
	h, ok := ctx.Value(commitHooksKey{}).(*commitHooks)
	if !ok {
		fn()
		return
	}
	h.mu.Lock()
	h.hooks = append(h.hooks, fn)
	h.mu.Unlock()
}

func withCommitHooks(ctx context.Context) (context.Context, *commitHooks) {
	h := &commitHooks{}
	return context.WithValue(ctx, commitHooksKey{}, h), h
}

func (h *commitHooks) run() {
	h.mu.Lock()
	hooks := h.hooks
	h.hooks = nil
	h.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}
