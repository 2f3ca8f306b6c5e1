package bot

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by stores when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrStoreLocked is returned when another process holds the data directory.
var ErrStoreLocked = errors.New("data directory is in use by another wecombot process")

// Store is everything wecombot keeps. storage/bolt implements it on bbolt; a
// Postgres backend would implement the same interface. storage/storagetest
// holds the conformance tests every implementation must pass.
type Store interface {
	EventLog
	Outbox
	// Update runs fn in one read-write transaction: everything fn does commits
	// together or not at all. fn must not call out to the network.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// EventLog is the durable, deduplicating log of inbound events.
type EventLog interface {
	// AppendEvent stores ev durably (fsync'd before it returns) and assigns
	// ev.Seq, unless an event with the same non-empty DedupeKey was appended
	// less than the store's dedupe TTL ago: then it returns dup=true and stores
	// nothing. An event outside bot's input bounds (CheckEvent) is refused
	// with an error wrapping its *FieldError, never a storage failure.
	AppendEvent(ctx context.Context, ev *Event) (dup bool, err error)
	// PendingEvents returns up to limit events not yet marked processed, with
	// Seq > after, in Seq order.
	PendingEvents(ctx context.Context, after uint64, limit int) ([]Event, error)
	// Events returns up to limit events with Seq > after in Seq order,
	// processed or not (for audit, the dashboard and replay).
	Events(ctx context.Context, after uint64, limit int) ([]Event, error)
	// EventStats describes the log.
	EventStats(ctx context.Context) (EventStats, error)
	// PruneDedupe forgets dedupe keys recorded before cutoff; it returns how many.
	PruneDedupe(ctx context.Context, cutoff time.Time) (int, error)
}

// Retention prunes what the store no longer needs. storage/bolt and
// storage/postgres implement it; serve sweeps hourly with any store that
// does (storagetest checks it).
type Retention interface {
	// Sweep deletes events processed without failure and received before
	// cutoff, and actions sent before cutoff, in short transactions so
	// appends keep flowing. It never deletes pending or failed events or
	// actions, dedupe keys (PruneDedupe does), or the record that an action
	// key was enqueued (Enqueue stays idempotent).
	Sweep(ctx context.Context, cutoff time.Time) (SweepStats, error)
}

// SweepStats is what one Sweep did.
type SweepStats struct {
	Events  int `json:"events"`
	Actions int `json:"actions"`
	// Transactions is how many write transactions the sweep took; LongestTx
	// the longest one (how long it held appends off).
	Transactions int           `json:"transactions"`
	LongestTx    time.Duration `json:"longest_tx"`
	Took         time.Duration `json:"took"`
}

// FailedEvent is an event recorded as failed, with its error.
type FailedEvent struct {
	Event Event  `json:"event"`
	Error string `json:"error"`
}

// EventStats describes the event log.
type EventStats struct {
	LastSeq uint64 `json:"last_seq"`
	// Pending counts appended events not yet processed: the engine's lag.
	Pending int `json:"pending"`
	// OldestPending is when the oldest pending event was received.
	OldestPending time.Time `json:"oldest_pending,omitzero"`
	Failed        int       `json:"failed"`
}

// Outbox holds owed outbound actions until they are delivered.
type Outbox interface {
	// DueActions returns up to limit pending actions with DueAt <= now, oldest first.
	DueActions(ctx context.Context, now time.Time, limit int) ([]Action, error)
	// NextDue returns the earliest DueAt among pending actions (zero, false if none).
	NextDue(ctx context.Context) (time.Time, bool, error)
	// MarkSent records a delivery; the action is never returned by DueActions again.
	MarkSent(ctx context.Context, id uint64, at time.Time, detail string) error
	// BeginAttempt durably records that an attempt to send a pending action
	// starts at at (Action.RecordAttempt), before it is sent: an error means
	// it must not be sent now. An attempt still open from before makes the
	// action PossiblyDelivered.
	BeginAttempt(ctx context.Context, id uint64, at time.Time) error
	// MarkUnknown records an attempt whose outcome is unknown
	// (Action.RecordUnknown): pending again at next, or, with next zero,
	// ActionUnknown (counted in OutboxStats.PossiblyDelivered).
	MarkUnknown(ctx context.Context, id uint64, next time.Time, errMsg string) error
	// MarkRetry records a failed attempt and when to try again.
	MarkRetry(ctx context.Context, id uint64, next time.Time, errMsg string) error
	// MarkFailed gives up on an action (dead letter) with a reason.
	MarkFailed(ctx context.Context, id uint64, at time.Time, errMsg string) error
	// Action returns one action by id.
	Action(ctx context.Context, id uint64) (*Action, error)
	// Actions lists actions with ID > after (any status), oldest first.
	Actions(ctx context.Context, after uint64, limit int) ([]Action, error)
	// OutboxStats counts actions by status.
	OutboxStats(ctx context.Context) (OutboxStats, error)
}

// OutboxStats counts outbox actions.
type OutboxStats struct {
	Pending int `json:"pending"`
	Sent    int `json:"sent"`
	Failed  int `json:"failed"`
	// PossiblyDelivered counts actions in ActionUnknown.
	PossiblyDelivered int `json:"possibly_delivered"`
	// OldestDue is the DueAt of the oldest pending action.
	OldestDue time.Time `json:"oldest_due,omitzero"`
}

// TxLocal is implemented by write transactions that can carry several
// events (storage/bolt applies a worker's queued events in one): a handler
// keeps what it decoded there for the events after it (Local), and has it
// stored once, after the transaction's last event and before the commit
// (BeforeCommit), instead of decoding and re-encoding the same hot record
// on every event. A transaction that fails takes both with it.
type TxLocal interface {
	// Local is this transaction's scratch space (never nil).
	Local() map[string]any
	// BeforeCommit runs fn after the transaction's last event, in the order
	// registered; an error fails the transaction.
	BeforeCommit(fn func() error)
}

// LocalOf returns tx's TxLocal, looking through wrappers (Unwrap() Tx);
// nil when the store has none (each event then reads and writes itself).
func LocalOf(tx Tx) TxLocal {
	for tx != nil {
		if l, ok := tx.(TxLocal); ok {
			return l
		}
		w, ok := tx.(interface{ Unwrap() Tx })
		if !ok {
			return nil
		}
		tx = w.Unwrap()
	}
	return nil
}

// Tx is one storage transaction, handed to engine handlers so that the state
// changes an event causes, the actions it owes and the mark that it was
// processed commit together.
type Tx interface {
	// MarkProcessed records that event seq has been handled (errMsg non-empty
	// records a permanent failure). It returns false if it already was.
	MarkProcessed(seq uint64, errMsg string) (first bool, err error)

	// Member returns a copy of the member, or ErrNotFound.
	Member(externalUserID string) (*Member, error)
	// PutMember inserts or replaces the member (and its secondary indexes).
	PutMember(m *Member) error
	// Members calls fn for each member in external_userid order after the
	// given id; returning false stops.
	Members(after string, fn func(*Member) bool) error
	// MemberCount returns how many members are stored.
	MemberCount() (int, error)
	// Tallies calls fn for each member tally key with prefix (the keys of
	// MemberTallies, summed over every member, zero counts left out) in
	// key order; returning false stops. Kept by PutMember in its
	// transaction, so reading them costs the number of keys, not of members.
	Tallies(prefix string, fn func(key string, n int64) bool) error
	// TermMembers calls fn with the external_userid of each member whose
	// MemberTerms hold term, in external_userid order after the given id;
	// returning false stops.
	TermMembers(term, after string, fn func(member string) bool) error
	// ScanTerms calls fn for each (term, member) of the search index with
	// term starting with prefix, in term then member order; returning false stops.
	ScanTerms(prefix string, fn func(term, member string) bool) error

	// Enqueue adds an action to the outbox and assigns its ID, unless one with
	// the same Key exists: then it returns dup=true and adds nothing.
	Enqueue(a *Action) (dup bool, err error)
	// SetActionResult writes onto action id what became of it later, learnt
	// from a result event (a batched mass send's task result, WeCom's
	// msg_send_fail for a kf message): a batched action becomes status
	// (ActionSent, ActionFailed or still ActionBatched); a sent one stays
	// sent or becomes failed (WeCom could not deliver it). Result, ResultAt and Detail are
	// set, and SentAt (sent) or LastError (failed). Pending actions belong
	// to the outbox's relay: ErrConflict.
	SetActionResult(id uint64, r ActionResult) error

	// Get and Put are a small key-value space for features that need a fact
	// keyed by a string inside the same transaction (e.g. "checkin|camp|day|member").
	// Get returns ErrNotFound when missing. Buckets are created on demand.
	Get(bucket, key string) ([]byte, error)
	Put(bucket, key string, value []byte) error
	Delete(bucket, key string) error
	// Scan calls fn for keys with prefix in order; returning false stops.
	Scan(bucket, prefix string, fn func(key string, value []byte) bool) error
	// ScanAfter is Scan from the first key after the given one (a long
	// scan resumed in the next transaction).
	ScanAfter(bucket, prefix, after string, fn func(key string, value []byte) bool) error
}

// ActionResult is what Tx.SetActionResult writes onto an action.
type ActionResult struct {
	Status string
	Result string
	Detail string
	At     time.Time
}

// ApplyResult applies r to a (the one definition every store uses); false
// when a's status doesn't take results (ErrConflict).
func (a *Action) ApplyResult(r ActionResult) bool {
	switch {
	case a.Status == ActionBatched && (r.Status == ActionSent || r.Status == ActionFailed || r.Status == ActionBatched):
	case a.Status == ActionSent && (r.Status == ActionSent || r.Status == ActionFailed || r.Status == ""):
	case a.Status == ActionFailed && (r.Status == ActionFailed || r.Status == ""):
	default:
		return false
	}
	if r.Status != "" {
		if r.Status == ActionSent && a.Status != ActionSent {
			a.SentAt = r.At
		}
		if r.Status == ActionFailed {
			a.LastError = r.Detail
		}
		a.Status = r.Status
	}
	a.Result, a.ResultAt, a.Detail = r.Result, r.At, r.Detail
	return true
}

// ErrNotOwner is returned by Cluster.UpdateOwned when this node no longer
// holds the event's partition: the node that does will apply it, so the
// caller drops the event — it is neither a failure nor retried here.
var ErrNotOwner = errors.New("this node no longer owns the event's partition")

// Cluster is implemented by stores several wecombot nodes share
// (storage/postgres). The pipeline type-asserts it: with it, events are
// applied by the node leasing their member's partition, outbox actions are
// claimed so no two nodes send one at once, and wake-ups come from the
// database. A store without it (bbolt: one process holds the file) runs
// everything in-process, as before.
type Cluster interface {
	// NodeID names this node in leases and logs.
	NodeID() string
	// Heartbeat records this node as alive, renews its partition leases,
	// takes its fair share of free or expired partitions, releases those
	// beyond it, and returns the partitions it owns now. Call it well
	// within the lease (every second or so).
	Heartbeat(ctx context.Context) (owned []int, err error)
	// Partition is the partition an event belongs to (by ShardKey).
	Partition(ev *Event) int
	// PendingEventsIn is PendingEvents restricted to the given partitions.
	PendingEventsIn(ctx context.Context, parts []int, after uint64, limit int) ([]Event, error)
	// UpdateOwned is Update fenced by the lease on part: fn's effects
	// commit only while this node holds it, and a takeover waits for the
	// transaction; otherwise it returns ErrNotOwner.
	UpdateOwned(ctx context.Context, part int, fn func(Tx) error) error
	// ClaimDue is DueActions with a claim: each action returned is leased
	// to this node for lease, and no node's ClaimDue returns it again until
	// the lease lapses or the action is marked sent, retried or failed.
	ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Action, error)
	// Listen calls onEvent when any node appended events and onOutbox when
	// any node enqueued actions, until ctx ends (reconnecting as needed).
	Listen(ctx context.Context, onEvent, onOutbox func())
	// Leave releases this node's partition leases (clean shutdown), so
	// other nodes take them at once instead of after the lease.
	Leave(ctx context.Context) error
}

// Locker is implemented by stores that can hold a lock across every node
// sharing them (storage/postgres: advisory locks). Singletons — a 微信客服
// account's cursor pull — take it; without it an in-process lock suffices.
type Locker interface {
	// Lock blocks until this node holds the lock name (or ctx ends) and
	// returns its release.
	Lock(ctx context.Context, name string) (release func(), err error)
}
