package bot

import "context"

// Handler applies one event inside tx: state changes and owed actions
// commit with the event's processed mark. It must not do network I/O.
// bot/engine implements it; the pipeline, simulate and tests call it.
type Handler interface {
	Handle(ctx context.Context, tx Tx, ev *Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, tx Tx, ev *Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, tx Tx, ev *Event) error { return f(ctx, tx, ev) }

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
