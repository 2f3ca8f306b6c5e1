package bot

import "context"

// Handler applies one event inside tx: state changes and owed actions
// commit with the event's processed mark. It must not do network I/O.
// bot/engine implements it; the pipeline, simulate and tests call it.
type Handler interface {
	Handle(ctx context.Context, tx Tx, ev *Event) error
}

// HandlerFunc is wecombot's one event-handler type: the engine's Handle,
// the middleware around it (bot/pipeline: recover, logging, metrics) and
// test handlers all have this shape.
type HandlerFunc func(ctx context.Context, tx Tx, ev *Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, tx Tx, ev *Event) error { return f(ctx, tx, ev) }

// MiddlewareFunc wraps a handler with behaviour every event shares (telebot's
// MiddlewareFunc): recover a panic, log, count.
type MiddlewareFunc func(next HandlerFunc) HandlerFunc

// Use returns f wrapped in mw; the first middleware is the outermost (it runs
// first and sees what the others return).
func (f HandlerFunc) Use(mw ...MiddlewareFunc) HandlerFunc {
	h := f
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Operator events, appended by the admin API or the CLI (SourceOperator).
const (
	// EventGroupWelcomeSync asks the engine to push the scenario's customer-group
	// welcome templates (group_welcome) to WeCom (group_welcome_template add/edit).
	EventGroupWelcomeSync EventType = "operator.group_welcome_sync"
	// EventContactWayCreate asks the engine for a "contact me" code
	// (ActionContactWay); Data: state, staff (comma-separated), remark.
	EventContactWayCreate EventType = "operator.contact_way_create"
)

// System events, appended by wecombot itself (SourceSystem).
const (
	// EventActionResult carries what a sent action created in WeCom
	// (SendResult.Data plus ResultKind/ResultKey/ResultAction) back to the
	// engine; its dedupe key is "result|<action key>".
	EventActionResult EventType = "system.action_result"
)
