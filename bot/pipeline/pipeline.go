// Package pipeline runs wecombot's one path for everything: events appended
// to the durable log are handed, in order per member, to a bounded worker
// pool that applies the engine inside a storage transaction (state change,
// owed actions and the processed mark commit together); a relay then
// delivers due outbox actions through a Sender, with retries and backoff.
//
// A crash anywhere replays from the log and the outbox without doubling: an
// event's processed mark commits with its effects, and an action's key makes
// enqueueing idempotent.
package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/retry"
)

// Options configure a Pipeline. Zero values take the defaults noted.
type Options struct {
	Store bot.Store
	// Handle applies one event inside its transaction (the engine's Handle).
	// It must not do network I/O: what it owes the outside world it enqueues
	// as actions. The pipeline wraps it in Logging, Metrics and Recover.
	Handle bot.HandlerFunc
	// Middleware wraps Handle inside the pipeline's own (first = outermost).
	Middleware []bot.MiddlewareFunc
	Sender     bot.Sender
	Log        zerolog.Logger
	Metrics    *metrics.Metrics
	Now        func() time.Time
	// Workers is the number of event workers (default 8); QueueSize bounds
	// each worker's queue (default 128): when full, the dispatcher waits
	// (back-pressure) while new events keep landing safely in the log.
	Workers   int
	QueueSize int
	// Senders caps how many actions are delivered at once in all (default
	// 256). Within it each API gets the concurrency its sender's Limiter
	// gives (the WeCom client's adapts to WeCom's latency within WeCom's
	// per-API budgets), DefaultLaneLimit per action kind otherwise.
	Senders int
	// HandleAttempts is how often an event whose handler fails on a healthy
	// store is tried before it is recorded as failed (default 3). A store
	// that refuses writes fails no event: it stays pending and is retried
	// (StoreRetry) until the store takes writes again.
	HandleAttempts int
	// MaxAttempts gives up on an action after this many failed tries (default 12).
	MaxAttempts int
	// Wake, if set, is the Wake others were given before the pipeline was
	// built (default: a new one).
	Wake *Wake
	// Retry is the backoff between delivery attempts, spread inside an
	// action's deadline (default retry.Default): the one policy every action
	// kind shares with the WeCom client.
	Retry retry.Policy
	// StoreRetry is the backoff while the store refuses writes (default
	// retry.Storage).
	StoreRetry retry.Policy
	// Redact scrubs secrets from error texts before they are stored
	// (last_error, a failed event's error); nil stores them as they are.
	Redact func(string) string
	// PollInterval is the fallback poll of the log and outbox when no wake-up
	// arrives (default 1 s).
	PollInterval time.Duration
	// Guard, if set, is asked right before an action is delivered whether it
	// still applies (e.g. a follow-up to a member who has since deleted the
	// staff member). It returns nil for actions it needn't check (no read
	// transaction is opened for them), else a check run in a read
	// transaction whose non-empty reason cancels the action.
	Guard func(a *bot.Action) func(tx bot.Tx) (reason string, err error)
	// Heartbeat is how often a node sharing the store with others (a
	// bot.Cluster store) renews its partition leases (default 1 s); ClaimLease
	// how long it holds an outbox action it is sending (default 15 s: a send
	// is cut off at three quarters of it, so no other node takes it while
	// this one may still deliver it).
	Heartbeat  time.Duration
	ClaimLease time.Duration
}

// Pipeline is the event workers plus the outbox relay.
type Pipeline struct {
	o      Options
	log    zerolog.Logger
	handle bot.HandlerFunc
	wake   *Wake

	running  atomic.Bool
	ready    chan struct{}
	stop     <-chan struct{} // closed when Run's context ends: store retries give up then
	inflight sync.Map        // outbox action id → struct{}: being sent or queued in its lane; never send one twice at once
	// lanes are the relay's per-API send queues (relay.go's lane), sending
	// how many sends are under way in all; laneMu guards both.
	laneMu  sync.Mutex
	lanes   map[string]*lane
	sending int
	tagBusy map[string]bool // mark_tag relations with a call out
	// urgentWaiting counts queued actions with a deadline: while any wait,
	// no action without one starts (welcome codes first, also for CPU).
	urgentWaiting int
	relayCtx      context.Context // set while the relay runs
	sends         sync.WaitGroup  // the relay's send goroutines
	scanFull      atomic.Bool     // the last outbox read filled its page: more may be due
	// rewind asks the dispatcher to read the log from the start again
	// (failed events were put back: Replay).
	rewind atomic.Bool
	// writes is the latest store write outcome, moves the latest of the
	// store's moves into its database (ObserveMove), for Health.
	writes writeHealth
	moves  writeHealth
	probe  probeState
	// storeHold: no sends until then (the store could not record an attempt).
	storeMu      sync.Mutex
	storeHold    time.Time
	storeStrikes int

	// cluster is set when the store is shared by several nodes: events of
	// the partitions this node leases (owned, changed counts changes) are
	// applied here, outbox actions are claimed.
	cluster bot.Cluster
	ownMu   sync.Mutex
	owned   []int
	changed uint64

	statsMu sync.Mutex
	stats   Stats
}

// Stats are counters since start, for /healthz and tests.
type Stats struct {
	Processed    uint64 `json:"processed"`
	Skipped      uint64 `json:"skipped"`
	Failed       uint64 `json:"failed"`
	Sent         uint64 `json:"sent"`
	SendRetries  uint64 `json:"send_retries"`
	SendFailures uint64 `json:"send_failures"`
	// PossiblyDelivered counts attempts whose outcome was unknown;
	// InferredDelivered those later read as delivered (41051, reused msgid).
	PossiblyDelivered uint64 `json:"possibly_delivered"`
	InferredDelivered uint64 `json:"inferred_delivered"`
	// StoreRetries counts event transactions and outbox records retried
	// because the store refused a write.
	StoreRetries  uint64 `json:"store_retries"`
	LastProcessed uint64 `json:"last_processed_seq"`
	// Node and Partitions, with several nodes on one store: this node's id
	// and how many of the event partitions it leases now.
	Node       string `json:"node,omitempty"`
	Partitions *int   `json:"partitions,omitempty"`
	// Queued is how many actions wait in the relay's lanes in memory now
	// (at most MaxQueued with a deadline and MaxQueued without; the rest
	// of a backlog stays in the outbox on disk).
	Queued int `json:"queued"`
}

// New builds a pipeline; call Run to start it.
func New(o Options) *Pipeline {
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 128
	}
	if o.Senders <= 0 {
		o.Senders = 256
	}
	if o.HandleAttempts <= 0 {
		o.HandleAttempts = 3
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 12
	}
	if o.Retry.Base <= 0 {
		o.Retry = retry.Default
	}
	if o.StoreRetry.Base <= 0 {
		o.StoreRetry = retry.Storage
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	if o.ClaimLease <= 0 {
		o.ClaimLease = 15 * time.Second
	}
	log := o.Log.With().Str("component", "pipeline").Logger()
	wake := o.Wake
	if wake == nil {
		wake = NewWake()
	}
	mw := append([]bot.MiddlewareFunc{Logging(log), Metrics(o.Metrics, o.Now), Recover(log)}, o.Middleware...)
	cl, _ := o.Store.(bot.Cluster)
	return &Pipeline{
		cluster: cl,
		o:       o,
		log:     log,
		handle:  o.Handle.Use(mw...),
		wake:    wake,
		ready:   make(chan struct{}),
		lanes:   map[string]*lane{},
		tagBusy: map[string]bool{},
	}
}

// Ready is closed once Run has started the workers and the relay.
func (p *Pipeline) Ready() <-chan struct{} { return p.ready }

func (p *Pipeline) redact(msg string) string {
	if p.o.Redact == nil {
		return msg
	}
	return p.o.Redact(msg)
}

// Replay makes the dispatcher read the log from its start again: events an
// operator put back to pending (failed events retried) are picked up; the
// ones already processed are skipped by their processed mark.
func (p *Pipeline) Replay() {
	p.rewind.Store(true)
	p.NotifyEvent()
}

// Wake carries a pipeline's wake-ups. Components built before the pipeline
// that append events or enqueue actions (the AI sender, the campaign
// scheduler) take a Wake's Event and Outbox; the pipeline then gets the same
// Wake in Options.Wake — nothing refers to a pipeline not built yet.
type Wake struct {
	ev, out chan struct{}
}

// NewWake returns a Wake for one pipeline.
func NewWake() *Wake {
	return &Wake{ev: make(chan struct{}, 1), out: make(chan struct{}, 1)}
}

// Event wakes the dispatcher after an append; it never blocks.
func (w *Wake) Event() {
	select {
	case w.ev <- struct{}{}:
	default:
	}
}

// Outbox wakes the relay after actions were enqueued; it never blocks.
func (w *Wake) Outbox() {
	select {
	case w.out <- struct{}{}:
	default:
	}
}

// NotifyEvent wakes the dispatcher after an append; it never blocks.
func (p *Pipeline) NotifyEvent() { p.wake.Event() }

// NotifyOutbox wakes the relay after actions were enqueued; it never blocks.
func (p *Pipeline) NotifyOutbox() { p.wake.Outbox() }

// Running reports whether the workers and relay are up.
func (p *Pipeline) Running() bool { return p.running.Load() }

// Stats returns counters since start.
func (p *Pipeline) Stats() Stats {
	p.statsMu.Lock()
	st := p.stats
	p.statsMu.Unlock()
	if p.cluster != nil {
		p.ownMu.Lock()
		n := len(p.owned)
		p.ownMu.Unlock()
		st.Node, st.Partitions = p.cluster.NodeID(), &n
	}
	st.Queued = p.queued()
	return st
}

func (p *Pipeline) count(f func(*Stats)) {
	p.statsMu.Lock()
	f(&p.stats)
	p.statsMu.Unlock()
}

// Run processes events and delivers actions until ctx is cancelled, then
// finishes the events already handed to workers and the sends under way
// (drain) and returns.
func (p *Pipeline) Run(ctx context.Context) error {
	p.stop = ctx.Done()
	queues := make([]chan bot.Event, p.o.Workers)
	var workers sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan bot.Event, p.o.QueueSize)
		workers.Add(1)
		go func(q chan bot.Event) {
			defer workers.Done()
			batch := make([]bot.Event, 0, eventsPerTx)
			for ev := range q {
				// Events already dispatched are finished even during shutdown:
				// the context passed on is not the cancelled one. The ones
				// queued behind it go along in the same transaction.
				batch = append(batch[:0], ev)
			more:
				for len(batch) < eventsPerTx {
					select {
					case next, ok := <-q:
						if !ok {
							break more
						}
						batch = append(batch, next)
					default:
						break more
					}
				}
				p.processMany(context.WithoutCancel(ctx), batch)
			}
		}(queues[i])
	}
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		p.relay(ctx)
	}()
	var coord sync.WaitGroup
	coordCtx, stopCoord := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCoord()
	if p.cluster != nil {
		p.heartbeat(ctx)
		coord.Add(2)
		go func() { defer coord.Done(); p.keepLeases(coordCtx) }()
		go func() { defer coord.Done(); p.cluster.Listen(coordCtx, p.NotifyEvent, p.NotifyOutbox) }()
	}
	p.running.Store(true)
	close(p.ready)
	p.log.Info().Int("workers", p.o.Workers).Int("queue", p.o.QueueSize).Bool("cluster", p.cluster != nil).Msg("pipeline started")

	err := p.dispatch(ctx, queues)
	for _, q := range queues {
		close(q)
	}
	workers.Wait()
	<-relayDone
	stopCoord()
	coord.Wait()
	if p.cluster != nil {
		// Hand the partitions over now rather than after the lease.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := p.cluster.Leave(lctx); err != nil {
			p.log.Warn().Err(err).Msg("could not release partition leases; other nodes take them when they lapse")
		}
		cancel()
	}
	p.running.Store(false)
	p.log.Info().Msg("pipeline stopped")
	return err
}

// heartbeat renews this node's partition leases once and records what it owns.
func (p *Pipeline) heartbeat(ctx context.Context) {
	owned, err := p.cluster.Heartbeat(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Error().Err(err).Msg("partition lease heartbeat failed; events of this node's partitions wait (other nodes take them when the leases lapse)")
		}
		return
	}
	p.ownMu.Lock()
	same := fmt.Sprint(owned) == fmt.Sprint(p.owned)
	if !same {
		p.owned = owned
		p.changed++
	}
	p.ownMu.Unlock()
	if !same {
		p.log.Info().Str("node", p.cluster.NodeID()).Int("partitions", len(owned)).Msg("partition leases changed")
		p.NotifyEvent()
	}
}

// keepLeases heartbeats until ctx ends.
func (p *Pipeline) keepLeases(ctx context.Context) {
	t := time.NewTicker(p.o.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.heartbeat(ctx)
		}
	}
}

// pending reads the next page of pending events: all of them, or with
// several nodes those of this node's partitions (after restarts from the
// beginning when the partitions changed, so a partition taken over is read
// from its oldest pending event).
func (p *Pipeline) pending(ctx context.Context, after *uint64, gen *uint64) ([]bot.Event, error) {
	if p.cluster == nil {
		return p.o.Store.PendingEvents(ctx, *after, 256)
	}
	p.ownMu.Lock()
	owned, changed := p.owned, p.changed
	p.ownMu.Unlock()
	if changed != *gen {
		*gen, *after = changed, 0
	}
	return p.cluster.PendingEventsIn(ctx, owned, *after, 256)
}

// dispatch reads pending events in log order and routes each to the worker
// owning its member (or group), so one member's events apply in order.
func (p *Pipeline) dispatch(ctx context.Context, queues []chan bot.Event) error {
	var after, gen uint64
	ticker := time.NewTicker(p.o.PollInterval)
	defer ticker.Stop()
	for {
		if p.rewind.Swap(false) {
			after = 0
		}
		for {
			evs, err := p.pending(ctx, &after, &gen)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				p.log.Error().Err(err).Msg("read event log")
				break
			}
			for _, ev := range evs {
				q := queues[shard(&ev, len(queues))]
				select {
				case q <- ev:
				case <-ctx.Done():
					return nil
				}
				after = ev.Seq
			}
			if len(evs) < 256 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake.ev:
		case <-ticker.C:
		}
	}
}

// shard picks the worker for an event: by member, else by group, else by seq.
func shard(ev *bot.Event, n int) int {
	key := ev.ShardKey()
	if key == "" {
		return int(ev.Seq % uint64(n))
	}
	return int(bot.ShardHash(key) % uint32(n))
}

// batcher is a store that can group-commit concurrent transactions whose
// functions may run more than once (storage/bolt's Batch).
type batcher interface {
	Batch(ctx context.Context, fn func(bot.Tx) error) error
}

// process applies one event. A store that refuses writes (the commit, the
// processed mark or a probe write fails) is never a verdict on the event:
// it stays pending and is retried with StoreRetry backoff for as long as
// the store refuses, holding this worker (and so the order of its members'
// events); at shutdown it is left pending for the next start. Only a
// handler failing HandleAttempts times while the store takes writes fails
// the event, and a failed event can be replayed (Replay).
func (p *Pipeline) process(ctx context.Context, ev bot.Event) { p.processTried(ctx, ev, 0, nil) }

// processTried is process for an event whose handler already failed tried
// times on a store that takes writes (in a transaction with other events:
// processMany), the last time with lastErr.
func (p *Pipeline) processTried(ctx context.Context, ev bot.Event, tried int, lastErr error) {
	update := p.o.Store.Update
	if b, ok := p.o.Store.(batcher); ok {
		update = b.Batch // workers share fsyncs; Handle already tolerates re-runs (see retries below)
	}
	if p.cluster != nil {
		part := p.cluster.Partition(&ev)
		update = func(ctx context.Context, fn func(bot.Tx) error) error { return p.cluster.UpdateOwned(ctx, part, fn) }
	}
	handlerFails, storeFails := tried, 0
	if tried > 0 && tried >= p.o.HandleAttempts {
		if p.recordFailedEvent(ctx, update, &ev, fmt.Sprintf("handler failed %d times: %v", tried, lastErr)) {
			return
		}
		handlerFails = 0 // the failure could not be recorded: the store again
	}
	for {
		skipped := false
		var hooks *commitHooks
		var rec *enqueueRecorder
		var handlerErr error
		err := update(ctx, func(tx bot.Tx) error {
			skipped, handlerErr = false, nil
			var hctx context.Context
			hctx, hooks = withCommitHooks(ctx) // a re-run (group commit) starts with none
			rec = &enqueueRecorder{Tx: tx}
			first, err := tx.MarkProcessed(ev.Seq, "")
			if err != nil {
				return err
			}
			if !first {
				skipped = true
				return nil
			}
			handlerErr = p.handle(hctx, rec, &ev)
			return handlerErr
		})
		if err == nil {
			p.ObserveWrite(nil)
			if !p.committed(&ev, skipped, hooks, rec) {
				p.NotifyOutbox()
			}
			return
		}
		if errors.Is(err, bot.ErrNotOwner) {
			// The partition moved to another node, which applies the event.
			// Should this node own it again, the dispatcher must read the
			// event again: its cursor is already past it.
			p.ownMu.Lock()
			p.changed++
			p.ownMu.Unlock()
			p.log.Debug().Uint64("seq", ev.Seq).Msg("event left to the node that now owns its partition")
			return
		}
		lastErr = err
		// The handler's own error, on a store that takes a probe write, is
		// the handler's; anything else (the commit, the processed mark, a
		// handler error while the store refuses writes) is the store's.
		if handlerErr != nil && errors.Is(err, handlerErr) && p.probeWrite(ctx) == nil {
			handlerFails++
			p.log.Warn().Err(err).Uint64("seq", ev.Seq).Str("type", string(ev.Type)).Int("attempt", handlerFails).Msg("event handler failed")
			if handlerFails >= p.o.HandleAttempts {
				if p.recordFailedEvent(ctx, update, &ev, fmt.Sprintf("handler failed %d times: %v", handlerFails, lastErr)) {
					return
				}
				handlerFails = 0 // the failure could not be recorded: the store again
			} else {
				time.Sleep(time.Duration(handlerFails) * 50 * time.Millisecond)
				continue
			}
		}
		storeFails++
		handlerFails = 0 // handler errors while the store failed say nothing about the handler
		p.ObserveWrite(err)
		p.count(func(s *Stats) { s.StoreRetries++ })
		if storeFails == 1 || storeFails%20 == 0 {
			p.log.Error().Err(err).Uint64("seq", ev.Seq).Str("type", string(ev.Type)).Int("tries", storeFails).
				Msg("the store refuses writes (disk full? read-only?): the event stays pending and is retried until it works again")
		}
		if !p.sleep(p.o.StoreRetry.Backoff(storeFails)) {
			p.log.Warn().Uint64("seq", ev.Seq).Msg("shutting down: event left pending for the next start")
			return
		}
	}
}

// eventsPerTx is how many events of one worker's queue (its members' events,
// in order) are applied in one transaction.
const eventsPerTx = 32

// processMany applies a worker's events in order in one write transaction
// (group-committed with the other workers'): one commit and one fsync for
// all of them. Should any of them fail — a handler error, the store — the
// transaction commits nothing and each event goes its own way through
// process (its retries, its failure record, the store's backoff). With
// several nodes, or a store without group commit, each event is its own
// transaction.
func (p *Pipeline) processMany(ctx context.Context, evs []bot.Event) {
	b, ok := p.o.Store.(batcher)
	if len(evs) <= 1 || !ok || p.cluster != nil {
		for _, ev := range evs {
			p.process(ctx, ev)
		}
		return
	}
	type applied struct {
		skipped bool
		hooks   *commitHooks
		rec     *enqueueRecorder
	}
	done := make([]applied, len(evs))
	failed, handlerErr := -1, error(nil)
	err := b.Batch(ctx, func(tx bot.Tx) error {
		failed, handlerErr = -1, nil
		for i := range evs {
			hctx, hooks := withCommitHooks(ctx) // a re-run starts with none
			rec := &enqueueRecorder{Tx: tx}
			done[i] = applied{hooks: hooks, rec: rec}
			first, err := tx.MarkProcessed(evs[i].Seq, "")
			if err != nil {
				return err
			}
			if !first {
				done[i].skipped = true
				continue
			}
			if err := p.handle(hctx, rec, &evs[i]); err != nil {
				failed, handlerErr = i, err
				return err
			}
		}
		return nil
	})
	if err != nil {
		if failed >= 0 && errors.Is(err, handlerErr) && p.probeWrite(ctx) == nil {
			// A handler failed on a store that takes writes: the events
			// before it go again together, it goes on with one try spent,
			// and the rest follow.
			p.processMany(ctx, evs[:failed])
			p.processTried(ctx, evs[failed], 1, err)
			p.processMany(ctx, evs[failed+1:])
			return
		}
		for _, ev := range evs {
			p.process(ctx, ev)
		}
		return
	}
	p.ObserveWrite(nil)
	all := true
	for i := range evs {
		if !p.committed(&evs[i], done[i].skipped, done[i].hooks, done[i].rec) {
			all = false
		}
	}
	if !all {
		p.NotifyOutbox()
	}
}

// committed does what follows an event's committed transaction: counters
// and metrics, its commit hooks, and handing its actions to the relay
// (false: the relay must read the outbox for them).
func (p *Pipeline) committed(ev *bot.Event, skipped bool, hooks *commitHooks, rec *enqueueRecorder) bool {
	since := p.o.Now().Sub(ev.ReceivedAt)
	if skipped {
		p.count(func(s *Stats) { s.Skipped++ })
		p.o.Metrics.Event(string(ev.Type), "skipped", since)
		return true
	}
	hooks.run()
	p.count(func(s *Stats) { s.Processed++; s.LastProcessed = ev.Seq })
	return p.handOff(rec.added)
}

// recordFailedEvent marks the event processed with its error (through
// update: with several nodes, only while this node owns its partition);
// false when the store refused that too.
func (p *Pipeline) recordFailedEvent(ctx context.Context, update func(context.Context, func(bot.Tx) error) error, ev *bot.Event, msg string) bool {
	msg = p.redact(msg)
	if err := update(ctx, func(tx bot.Tx) error {
		_, err := tx.MarkProcessed(ev.Seq, msg)
		return err
	}); err != nil {
		p.log.Error().Err(err).Uint64("seq", ev.Seq).Msg("record failed event")
		return false
	}
	p.count(func(s *Stats) { s.Failed++ })
	p.o.Metrics.Event(string(ev.Type), "error", p.o.Now().Sub(ev.ReceivedAt))
	p.log.Error().Uint64("seq", ev.Seq).Str("type", string(ev.Type)).Str("error", msg).
		Msg("event recorded as failed (replay it with `wecombot events retry` once the cause is fixed)")
	return true
}

// sleep waits d, or less if Run's context ends; false when it ended.
func (p *Pipeline) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stop:
		return false
	}
}

// Holder is implemented by senders with a throttle (wecomapi.Client): the
// relay leaves an action in the outbox, unclaimed and unwritten, while
// HoldUntil says the API it needs is held back, and picks it up — urgent
// actions first — when the API opens.
type Holder interface {
	HoldUntil(a *bot.Action) time.Time
}

// Limiter is implemented by senders whose calls are limited per API (the
// WeCom client, through the mux and the media sender): a's send needs api,
// and at most n calls to it may be out at once now (adaptive to WeCom's
// latency, bot/retry's Throttle, which also holds a call until a slot is
// free). The relay sends such actions in a lane of their own, 2n+8 at a
// time (each send also records its attempt and outcome), so an API at its
// limit never holds up another API's sends: welcome codes don't wait behind
// mark_tag.
type Limiter interface {
	SendLimit(a *bot.Action) (api string, n int)
}

// DefaultLaneLimit is how many actions of one kind are sent at once when
// the sender does not say (Limiter).
const DefaultLaneLimit = 8

// lane is the actions needing one API: how many are being sent and the
// ones read from the outbox waiting for a slot, in the order read (urgent
// first, then by due time).
type lane struct {
	running int
	queue   []laneItem
}

type laneItem struct {
	a         bot.Action
	claimedAt time.Time // with several nodes: when this node claimed it
	// rel names a mark_tag's relation (staff|member): one call at a time
	// per relation, in order, and the ones queued behind it go in one call.
	rel string
}

// tagRelation is a mark_tag's relation key, "" for other kinds.
func tagRelation(a *bot.Action) string {
	if a.Kind != bot.ActionMarkTag {
		return ""
	}
	var mt bot.MarkTag
	if a.Decode(&mt) != nil || mt.StaffID == "" || mt.ExternalUserID == "" {
		return "" // the sender refuses it, alone
	}
	return mt.StaffID + "|" + mt.ExternalUserID
}

// laneOf names a's lane and its concurrency limit now.
func (p *Pipeline) laneOf(a *bot.Action) (string, int) {
	if l, ok := p.o.Sender.(Limiter); ok {
		if api, n := l.SendLimit(a); api != "" && n > 0 {
			// A send also reads the action and records its attempt and
			// outcome (two group-committed writes) around the call: the
			// lane holds twice the calls the API may have out (its gate in
			// the sender keeps that number exactly), so the store's writes
			// never leave the API's slots idle.
			return api, 2*n + laneSlack
		}
	}
	return "kind:" + string(a.Kind), DefaultLaneLimit
}

// laneSlack is a lane's room beyond twice its API's concurrency.
const laneSlack = 8

// admit starts sending it now if its lane and the relay have room, else
// queues it in its lane; a finishing send takes the next queued item.
// False (and nothing done) once the relay has stopped.
func (p *Pipeline) admit(it laneItem) bool {
	key, limit := p.laneOf(&it.a)
	it.rel = tagRelation(&it.a)
	p.laneMu.Lock()
	defer p.laneMu.Unlock()
	if p.relayCtx == nil || p.relayCtx.Err() != nil {
		return false
	}
	ln := p.lanes[key]
	if ln == nil {
		ln = &lane{}
		p.lanes[key] = ln
	}
	urgent := !it.a.NotAfter.IsZero()
	if ln.running >= limit || p.sending >= p.o.Senders || (it.rel != "" && p.tagBusy[it.rel]) || (!urgent && p.urgentWaiting > 0) {
		ln.queue = append(ln.queue, it)
		if urgent {
			p.urgentWaiting++
		}
		return true
	}
	if it.rel != "" {
		p.tagBusy[it.rel] = true
	}
	ln.running++
	p.sending++
	p.sends.Add(1) // under laneMu: the relay's final Wait starts only after relayCtx is cleared
	go p.sendLoop(p.relayCtx, key, it)
	return true
}

// enqueueRecorder is the handler's view of its transaction: Enqueue also
// notes the pending actions it added, so that once the transaction commits
// the relay takes them at once (handOff) instead of reading them back from
// the outbox: a welcome goes out as soon as its event commits.
type enqueueRecorder struct {
	bot.Tx
	added []bot.Action
}

// Unwrap is the transaction the recorder wraps (bot.LocalOf).
func (r *enqueueRecorder) Unwrap() bot.Tx { return r.Tx }

func (r *enqueueRecorder) Enqueue(a *bot.Action) (bool, error) {
	dup, err := r.Tx.Enqueue(a)
	if err == nil && !dup && a.ID != 0 && a.Status == bot.ActionPending {
		if r.added == nil {
			r.added = make([]bot.Action, 0, 8) // a contact add owes about five
		}
		r.added = append(r.added, *a)
	}
	return dup, err
}

// handOff gives the relay the actions an event's committed transaction
// added: those due now go straight into their lanes. It reports whether
// the relay needs no outbox read for them (false: one due soon, one whose
// API is held, lanes full, several nodes — the relay reads the outbox).
func (p *Pipeline) handOff(acts []bot.Action) bool {
	if len(acts) == 0 {
		return true
	}
	if p.cluster != nil {
		return false // actions are claimed from the shared outbox
	}
	holder, _ := p.o.Sender.(Holder)
	now := p.o.Now()
	all := true
	for _, a := range acts {
		if a.DueAt.After(now) {
			if a.DueAt.Before(now.Add(p.o.PollInterval)) {
				all = false // due before the relay's next poll: let it set its timer
			}
			continue
		}
		if holder != nil && holder.HoldUntil(&a).After(now) {
			all = false
			continue
		}
		if p.laneFull(&a) {
			all = false
			continue
		}
		if _, busy := p.inflight.LoadOrStore(a.ID, struct{}{}); busy {
			continue
		}
		if !p.admit(laneItem{a: a, claimedAt: now}) {
			p.inflight.Delete(a.ID)
			return false
		}
	}
	return all
}

// sendLoop delivers it, then the next queued item that may start (its own
// lane first), until none may.
func (p *Pipeline) sendLoop(ctx context.Context, key string, it laneItem) {
	defer p.sends.Done()
	for {
		p.sendOne(ctx, key, it)
		var ok bool
		key, it, ok = p.finish(ctx, key, it)
		if !ok {
			return
		}
	}
}

// finish ends a send in lane key and picks the next item that may start:
// from the same lane if it has one, else from any lane with room. After
// Run's context ended nothing new starts (what was queued stays pending in
// the outbox for the next start).
func (p *Pipeline) finish(ctx context.Context, key string, done laneItem) (string, laneItem, bool) {
	p.laneMu.Lock()
	defer p.laneMu.Unlock()
	p.inflight.Delete(done.a.ID)
	if done.rel != "" {
		delete(p.tagBusy, done.rel)
	}
	p.lanes[key].running--
	p.sending--
	if ctx.Err() != nil {
		for _, ln := range p.lanes {
			for _, it := range ln.queue {
				p.inflight.Delete(it.a.ID)
			}
			ln.queue = nil
		}
		p.urgentWaiting = 0
		return "", laneItem{}, false
	}
	try := func(k string, ln *lane) (laneItem, bool) {
		if len(ln.queue) == 0 || p.sending >= p.o.Senders {
			return laneItem{}, false
		}
		if _, limit := p.laneOf(&ln.queue[0].a); ln.running >= limit {
			return laneItem{}, false
		}
		// The first queued item whose relation has no call out (a
		// member's tag writes go one at a time, in order).
		// While actions with a deadline (welcome codes) wait, only they start.
		i := slices.IndexFunc(ln.queue, func(it laneItem) bool {
			return (it.rel == "" || !p.tagBusy[it.rel]) && (p.urgentWaiting == 0 || !it.a.NotAfter.IsZero())
		})
		if i < 0 {
			return laneItem{}, false
		}
		it := ln.queue[i]
		ln.queue = slices.Delete(ln.queue, i, i+1)
		if !it.a.NotAfter.IsZero() {
			p.urgentWaiting--
		}
		if it.rel != "" {
			p.tagBusy[it.rel] = true
		}
		ln.running++
		p.sending++
		return it, true
	}
	if it, ok := try(key, p.lanes[key]); ok {
		return key, it, true
	}
	for k, ln := range p.lanes { // with urgent ones waiting, only they may start
		if it, ok := try(k, ln); ok {
			return k, it, true
		}
	}
	if len(p.lanes[key].queue) == 0 && (p.cluster != nil || p.scanFull.Load()) {
		p.NotifyOutbox() // the lane ran dry and the outbox may hold more: read it again
	}
	return "", laneItem{}, false
}

// sendOne delivers one admitted action, unless it no longer may go; a
// mark_tag takes the ones of its relation queued behind it along (one
// call: deliverTags).
func (p *Pipeline) sendOne(ctx context.Context, key string, it laneItem) {
	dctx := context.WithoutCancel(ctx)
	if p.cluster != nil {
		// The claim must outlive the send: cut it off at three quarters of
		// the lease from the claim, and don't start one queued too long.
		cutoff := it.claimedAt.Add(p.o.ClaimLease * 3 / 4)
		if !p.o.Now().Before(it.claimedAt.Add(p.o.ClaimLease / 2)) {
			return // its claim lapses soon: left to the next claim
		}
		var cancel context.CancelFunc
		dctx, cancel = context.WithDeadline(dctx, cutoff)
		defer cancel()
	}
	if holder, ok := p.o.Sender.(Holder); ok && holder.HoldUntil(&it.a).After(p.o.Now()) {
		return // held while it waited in its lane: left in the outbox, unwritten
	}
	// Re-read under the in-flight claim: the list it came from may predate
	// a delivery that finished since, and must not send it again.
	cur, err := p.o.Store.Action(dctx, it.a.ID)
	if err != nil || cur.Status != bot.ActionPending || cur.DueAt.After(p.o.Now()) {
		return
	}
	if it.rel != "" && p.cluster == nil {
		p.deliverTags(dctx, cur, p.takeRelation(key, it.rel))
		return
	}
	p.deliver(dctx, cur)
}

// takeRelation removes the items of relation rel queued in lane key (they
// stay in flight: the caller sends them along and releases them).
func (p *Pipeline) takeRelation(key, rel string) []laneItem {
	p.laneMu.Lock()
	defer p.laneMu.Unlock()
	ln := p.lanes[key]
	var took []laneItem
	ln.queue = slices.DeleteFunc(ln.queue, func(it laneItem) bool {
		if it.rel == rel {
			took = append(took, it)
			if !it.a.NotAfter.IsZero() {
				p.urgentWaiting--
			}
			return true
		}
		return false
	})
	return took
}

// deliverTags sends first and the mark_tags of the same relation queued
// behind it as one mark_tag call (bot.MergeMarkTags, oldest first): each
// action's attempt is recorded before the call, and the call's outcome is
// recorded on each — tag writes coalesced per member.
func (p *Pipeline) deliverTags(ctx context.Context, first *bot.Action, more []laneItem) {
	acts := []*bot.Action{first}
	for _, it := range more {
		defer p.inflight.Delete(it.a.ID)
		cur, err := p.o.Store.Action(ctx, it.a.ID)
		if err == nil && cur.Status == bot.ActionPending && !cur.DueAt.After(p.o.Now()) {
			acts = append(acts, cur)
		}
	}
	if len(acts) == 1 {
		p.deliver(ctx, first)
		return
	}
	slices.SortFunc(acts, func(a, b *bot.Action) int { return cmp.Compare(a.ID, b.ID) })
	var begun []*bot.Action
	var payloads []bot.MarkTag
	for _, a := range acts {
		var mt bot.MarkTag
		if a.Decode(&mt) != nil {
			p.deliver(ctx, a) // the sender names what is wrong with it
			continue
		}
		if p.begin(ctx, a, p.actionLog(a)) {
			begun = append(begun, a)
			payloads = append(payloads, mt)
		}
	}
	if len(begun) == 0 {
		return
	}
	merged := *begun[0]
	ids := make([]string, len(begun))
	for i, a := range begun {
		ids[i] = strconv.FormatUint(a.ID, 10)
		merged.PossiblyDelivered = merged.PossiblyDelivered || a.PossiblyDelivered
	}
	raw, err := json.Marshal(bot.MergeMarkTags(payloads))
	if err != nil {
		raw = begun[0].Payload
	}
	merged.Payload = raw
	res, retryable, err := p.o.Sender.Send(ctx, &merged)
	if err == nil && len(begun) > 1 {
		res.Detail = strings.TrimSpace(res.Detail + " (one mark_tag call for actions " + strings.Join(ids, ", ") + ")")
	}
	for _, a := range begun {
		p.outcome(ctx, a, res, retryable, err, p.actionLog(a))
	}
}

// relay delivers due actions until ctx ends, then waits for the sends
// under way. Each API has its own lane with the sender's concurrency limit
// for it (Limiter), at most Senders sends in all.
func (p *Pipeline) relay(ctx context.Context) {
	p.laneMu.Lock()
	p.relayCtx = ctx
	p.laneMu.Unlock()
	defer func() {
		p.laneMu.Lock()
		p.relayCtx = nil // admit starts nothing more, so the Wait below is the last
		p.laneMu.Unlock()
		p.sends.Wait()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	holder, _ := p.o.Sender.(Holder)
	for {
		now := p.o.Now()
		wait := p.o.PollInterval
		limit := relayPage
		full := false
		var acts []bot.Action
		var err error
		switch hold := p.storeHeld(); {
		case hold.After(now):
			wait = hold.Sub(now) // the store could not record an attempt: send nothing until it can
			limit = 0
		case p.cluster != nil:
			// Claim only what can be sent soon: a claimed action waits for
			// this node alone, and a crash strands the claimed ones until
			// their lease lapses.
			queued := p.queued()
			p.laneMu.Lock()
			limit = max(p.o.Senders-p.sending-queued, 0)
			p.laneMu.Unlock()
			if limit > 0 {
				acts, err = p.cluster.ClaimDue(ctx, now, limit, p.o.ClaimLease)
			}
		case p.cluster == nil && p.laneFull(&bot.Action{}) && p.laneFull(&bot.Action{NotAfter: now}):
			// The lanes hold all they may of both kinds: the backlog stays
			// in the outbox until a lane runs dry (finish reads it again).
			limit, full = 0, true
		default:
			if so, ok := p.o.Store.(SkippingOutbox); ok {
				// With the lanes full only new welcome codes are worth reading.
				acts, err = so.DueActionsExcept(ctx, now, limit, p.queued() >= MaxQueued, func(id uint64) bool { _, busy := p.inflight.Load(id); return busy })
			} else {
				acts, err = p.o.Store.DueActions(ctx, now, limit)
			}
		}
		if err != nil && ctx.Err() == nil {
			p.log.Error().Err(err).Msg("read outbox")
		}
		p.scanFull.Store(full || (limit > 0 && len(acts) == limit))
		fresh := 0
		for _, a := range acts {
			if holder != nil {
				if until := holder.HoldUntil(&a); until.After(now) {
					wait = min(wait, until.Sub(now))
					continue // WeCom is held back for this API: leave it, unwritten
				}
			}
			if _, busy := p.inflight.LoadOrStore(a.ID, struct{}{}); busy {
				continue // being sent, or queued in its lane
			}
			if ctx.Err() != nil {
				p.inflight.Delete(a.ID)
				return
			}
			if p.cluster == nil && p.laneFull(&a) {
				p.inflight.Delete(a.ID) // enough queued: read it again when a lane runs dry
				p.scanFull.Store(true)
				continue
			}
			if !p.admit(laneItem{a: a, claimedAt: now}) {
				p.inflight.Delete(a.ID)
				return
			}
			fresh++
		}
		nextDue := p.o.Store.NextDue
		if so, ok := p.o.Store.(SkippingOutbox); ok && p.cluster == nil {
			nextDue = func(ctx context.Context) (time.Time, bool, error) { return so.NextDueAfter(ctx, now) }
		}
		if len(acts) == limit && limit > 0 && fresh > 0 {
			wait = 0
		} else if next, ok, err := nextDue(ctx); err == nil && ok {
			if d := next.Sub(p.o.Now()); d < wait {
				wait = d
			}
		}
		timer.Reset(max(wait, 5*time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-p.wake.out:
			timer.Stop() // Go ≥1.23 timers: Stop discards a pending tick, no drain needed
		case <-timer.C:
		}
	}
}

// relayPage is how many due actions the relay reads at a time; MaxQueued
// bounds the actions queued in lanes without a deadline, and again those
// with one (welcome codes): beyond it an action stays in the outbox, on
// disk, and is read again when a lane runs dry — a backlog WeCom's quota
// holds back never grows the process's memory.
const (
	relayPage = 256
	MaxQueued = 2048
)

// laneFull reports whether the lanes hold MaxQueued actions of a's class
// (with a deadline, or without) already.
func (p *Pipeline) laneFull(a *bot.Action) bool {
	if a.NotAfter.IsZero() {
		return p.queued() >= MaxQueued
	}
	p.laneMu.Lock()
	defer p.laneMu.Unlock()
	return p.urgentWaiting >= MaxQueued
}

// SkippingOutbox is implemented by stores that can leave actions out of a
// due read before decoding them (storage/bolt): the relay skips the ones it
// is sending or has queued, and sets its timer by the first action due
// after now (the ones due before are in its lanes).
type SkippingOutbox interface {
	DueActionsExcept(ctx context.Context, now time.Time, limit int, urgentOnly bool, skip func(id uint64) bool) ([]bot.Action, error)
	NextDueAfter(ctx context.Context, t time.Time) (time.Time, bool, error)
}

// queued counts the actions waiting in lanes.
func (p *Pipeline) queued() int {
	p.laneMu.Lock()
	defer p.laneMu.Unlock()
	n := 0
	for _, ln := range p.lanes {
		n += len(ln.queue)
	}
	return n
}

// HandlePending applies every pending event in log order, in the caller's
// goroutine, exactly as Run's workers do (same handler chain, processed
// mark in the same transaction, retries, failed events recorded). It is
// how simulate and the console's simulate box drive the production
// pipeline step by step on a fake clock; don't call it while Run runs.
func (p *Pipeline) HandlePending(ctx context.Context) (handled int, err error) {
	var after uint64
	for {
		evs, err := p.o.Store.PendingEvents(ctx, after, 256)
		if err != nil {
			return handled, fmt.Errorf("read event log: %w", err)
		}
		for _, ev := range evs {
			p.process(ctx, ev)
			after = ev.Seq
			handled++
		}
		if len(evs) < 256 {
			return handled, nil
		}
	}
}

func (p *Pipeline) storeHeld() time.Time {
	p.storeMu.Lock()
	defer p.storeMu.Unlock()
	return p.storeHold
}

// storeRefused holds all sends for the next StoreRetry backoff; storeOK lifts it.
func (p *Pipeline) storeRefused(err error) {
	p.ObserveWrite(err)
	p.storeMu.Lock()
	p.storeStrikes++
	p.storeHold = p.o.Now().Add(p.o.StoreRetry.Backoff(p.storeStrikes))
	p.storeMu.Unlock()
	p.count(func(s *Stats) { s.StoreRetries++ })
}

func (p *Pipeline) storeOK() {
	p.ObserveWrite(nil)
	p.storeMu.Lock()
	p.storeStrikes, p.storeHold = 0, time.Time{}
	p.storeMu.Unlock()
}

// record stores an outcome that must not be lost (a delivery, a retry), trying
// again with StoreRetry backoff while the store refuses, until it works or the
// pipeline stops. A record the store rejects for a reason of its own (the
// action is no longer pending) is not retried.
func (p *Pipeline) record(what string, log zerolog.Logger, fn func() error) bool {
	for tries := 1; ; tries++ {
		err := fn()
		if err == nil {
			p.storeOK()
			return true
		}
		if errors.Is(err, bot.ErrNotFound) || errors.Is(err, bot.ErrConflict) || errors.Is(err, bot.ErrInvalidInput) {
			log.Error().Err(err).Msg(what)
			return false
		}
		p.storeRefused(err)
		if tries == 1 || tries%20 == 0 {
			log.Error().Err(err).Int("tries", tries).Msg(what + ": the store refuses writes; retrying (nothing is resent meanwhile)")
		}
		if !p.sleep(p.o.StoreRetry.Backoff(tries)) {
			log.Error().Err(err).Msg(what + ": stopped before it could be recorded; the attempt stays open and is resolved as possibly delivered at the next start")
			return false
		}
	}
}

// Deliver sends one due action exactly as Run's relay does (expiry, the
// guard, the Sender and its error classification, result feedback, retry
// or failure recorded in the outbox), in the caller's goroutine; for
// simulate, like HandlePending.
func (p *Pipeline) Deliver(ctx context.Context, a *bot.Action) { p.deliver(ctx, a) }

// deliver sends one action and records the outcome in the outbox. The
// attempt is recorded durably before the send, and nothing is sent when it
// cannot be; an attempt found open (the process died mid-send) or whose
// answer was lost makes the action possibly delivered, which its kind
// resolves (bot.ActionKind.ResendSafe): resend-safe kinds are sent again and
// the sender reads WeCom's refusal of a repeat as delivered, the others
// wait for an operator as ActionUnknown.
func (p *Pipeline) deliver(ctx context.Context, a *bot.Action) {
	log := p.actionLog(a)
	if !p.begin(ctx, a, log) {
		return
	}
	res, retryable, err := p.o.Sender.Send(ctx, a)
	p.outcome(ctx, a, res, retryable, err, log)
}

func (p *Pipeline) actionLog(a *bot.Action) zerolog.Logger {
	return p.log.With().Uint64("action", a.ID).Str("kind", string(a.Kind)).Str("member", a.MemberID).Logger()
}

// begin settles an action that must not be sent (an open attempt of a kind
// that is not resend-safe, too late, canceled by the guard) and otherwise
// durably records the attempt; true when it may be sent now.
func (p *Pipeline) begin(ctx context.Context, a *bot.Action, log zerolog.Logger) bool {
	now := p.o.Now()
	openAttempt := !a.AttemptAt.IsZero()
	if openAttempt && !a.Kind.ResendSafe() {
		p.markUnknown(ctx, a, time.Time{}, fmt.Sprintf("the attempt at %s never recorded its outcome (the process stopped mid-send); not resent, since a %s could reach people twice: check and retry it if it did not arrive",
			a.AttemptAt.Format(time.RFC3339), a.Kind), log)
		return false
	}
	if !a.NotAfter.IsZero() && now.After(a.NotAfter) {
		msg := fmt.Sprintf("too late: had to be sent by %s", a.NotAfter.Format(time.RFC3339))
		if openAttempt || a.PossiblyDelivered {
			p.markUnknown(ctx, a, time.Time{}, msg+"; an earlier attempt's outcome is unknown", log)
			return false
		}
		p.recordFailure(ctx, a, now, msg, log)
		return false
	}
	if a.Kind == bot.ActionTimer {
		p.fireTimer(ctx, a, now, log)
		return false
	}
	if check := p.guard(a); check != nil {
		var reason string
		err := p.o.Store.View(ctx, func(tx bot.Tx) (err error) {
			reason, err = check(tx)
			return err
		})
		if err != nil {
			log.Warn().Err(err).Msg("could not check whether the action still applies; sending")
		} else if reason != "" {
			if reportsDelivery(a) {
				p.feedBackOutcome(ctx, a, "failed", "canceled: "+reason, now, log)
			}
			p.record("record cancellation", log, func() error { return p.o.Store.MarkFailed(ctx, a.ID, now, "canceled: "+reason) })
			p.o.Metrics.OutboxAttempt(string(a.Kind), "canceled", 0)
			log.Info().Str("reason", reason).Msg("action canceled before sending")
			return false
		}
	}
	if a.Kind.ReadOnly() && a.AttemptAt.IsZero() {
		// A read reaches no one: should the process die mid-call, the
		// action is still pending and is read again. Only its outcome is
		// recorded — one durable write per read instead of two.
		a.RecordAttempt(now)
		return true
	}
	// Record the attempt before sending; no record, no send.
	if err := p.o.Store.BeginAttempt(ctx, a.ID, now); err != nil {
		if errors.Is(err, bot.ErrNotFound) || errors.Is(err, bot.ErrConflict) {
			return false
		}
		p.storeRefused(err)
		log.Warn().Err(err).Msg("could not record the attempt: not sending until the store takes writes")
		return false
	}
	p.storeOK()
	a.RecordAttempt(now)
	return true
}

// outcome records what the attempt begun on a returned: sent (with what
// WeCom created fed back), held, retry, possibly delivered or failed.
func (p *Pipeline) outcome(ctx context.Context, a *bot.Action, res bot.SendResult, retryable bool, err error, log zerolog.Logger) {
	now := p.o.Now()
	if err == nil {
		switch {
		case reportsDelivery(a):
			d := map[string]string{bot.DataOutcome: "sent"}
			for k, v := range res.Data {
				d[k] = v
			}
			p.feedBack(ctx, a, d, "result|"+a.Key, now, log)
		case len(res.Data) > 0:
			p.feedBack(ctx, a, res.Data, "result|"+a.Key, now, log)
		}
		p.record("sent, but could not record it", log, func() error { return p.o.Store.MarkSent(ctx, a.ID, now, res.Detail) })
		p.count(func(s *Stats) {
			s.Sent++
			if res.Inferred {
				s.InferredDelivered++
			}
		})
		due := a.DueAt
		if due.IsZero() {
			due = a.CreatedAt
		}
		result := "sent"
		if res.Inferred {
			result = "delivered_inferred"
		}
		p.o.Metrics.OutboxAttempt(string(a.Kind), result, now.Sub(due))
		log.Debug().Str("detail", res.Detail).Bool("inferred", res.Inferred).Msg("action sent")
		return
	}
	var held interface{ HeldUntil() time.Time }
	if errors.As(err, &held) {
		// The sender's throttle refused the call before it went out: nothing
		// was sent, and the relay leaves the action alone while it is held.
		p.record("record held attempt", log, func() error { return p.o.Store.MarkRetry(ctx, a.ID, held.HeldUntil(), p.redact(err.Error())) })
		return
	}
	attempt := a.Attempts + 1
	next, inTime := p.o.Retry.Next(attempt, now, a.NotAfter)
	canRetry := retryable && attempt < p.o.MaxAttempts && inTime
	if errors.Is(err, bot.ErrOutcomeUnknown) {
		if !a.Kind.ResendSafe() || !canRetry {
			next = time.Time{}
		}
		p.markUnknown(ctx, a, next, err.Error(), log)
		return
	}
	if canRetry {
		p.record("record retry", log, func() error { return p.o.Store.MarkRetry(ctx, a.ID, next, p.redact(err.Error())) })
		p.count(func(s *Stats) { s.SendRetries++ })
		p.o.Metrics.OutboxAttempt(string(a.Kind), "retry", 0)
		log.Warn().Err(err).Int("attempt", attempt).Time("next", next).Msg("send failed, will retry")
		return
	}
	msg := err.Error()
	if retryable && !inTime {
		msg += fmt.Sprintf(" (no time left for another try before %s)", a.NotAfter.Format(time.RFC3339))
	}
	p.recordFailure(ctx, a, now, msg, log)
}

// markUnknown records an attempt whose outcome is unknown: pending again at
// next, or (next zero) ActionUnknown for an operator.
func (p *Pipeline) markUnknown(ctx context.Context, a *bot.Action, next time.Time, msg string, log zerolog.Logger) {
	msg = p.redact(msg)
	p.record("record possibly delivered", log, func() error { return p.o.Store.MarkUnknown(ctx, a.ID, next, msg) })
	p.count(func(s *Stats) { s.PossiblyDelivered++ })
	if next.IsZero() {
		p.feedBackOutcome(ctx, a, "unknown", msg, p.o.Now(), log)
		p.o.Metrics.OutboxAttempt(string(a.Kind), "possibly_delivered", 0)
		log.Warn().Str("error", msg).Msg("action possibly delivered: not resent")
		return
	}
	p.o.Metrics.OutboxAttempt(string(a.Kind), "retry_unknown", 0)
	log.Warn().Str("error", msg).Time("next", next).Msg("outcome unknown; resending (the kind is resend-safe)")
}

func (p *Pipeline) guard(a *bot.Action) func(tx bot.Tx) (string, error) {
	if p.o.Guard == nil {
		return nil
	}
	return p.o.Guard(a)
}

// feedBack appends what a sent action created in WeCom to the event log, so
// the engine stores it (template ids, contact way QR codes). It goes before
// MarkSent: a crash between them resends the action, and the result event's
// dedupe key keeps the first result.
func (p *Pipeline) feedBack(ctx context.Context, a *bot.Action, data map[string]string, dedupe string, now time.Time, log zerolog.Logger) {
	d := make(map[string]string, len(data)+3)
	for k, v := range data {
		d[k] = v
	}
	d[bot.ResultKind] = string(a.Kind)
	d[bot.ResultKey] = a.Key
	d[bot.ResultAction] = strconv.FormatUint(a.ID, 10)
	ev := &bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: dedupe,
		At: now, ExternalUserID: a.MemberID, Data: d}
	if p.record("sent, but could not record what WeCom returned", log, func() error {
		_, err := p.o.Store.AppendEvent(ctx, ev)
		return err
	}) {
		p.NotifyEvent()
	}
}

func (p *Pipeline) recordFailure(ctx context.Context, a *bot.Action, now time.Time, msg string, log zerolog.Logger) {
	msg = p.redact(msg)
	p.feedBackOutcome(ctx, a, "failed", msg, now, log)
	p.record("record failure", log, func() error { return p.o.Store.MarkFailed(ctx, a.ID, now, msg) })
	p.count(func(s *Stats) { s.SendFailures++ })
	p.o.Metrics.OutboxAttempt(string(a.Kind), "failed", 0)
	log.Error().Str("error", msg).Msg("action failed for good")
}

// reportsOutcome are the kinds whose failures and unknown outcomes return to
// the engine as result events too: a mass-send task's customers wait on its
// outcome (their actions say what became of them), a result poll that
// failed is planned again, and a group's next groupchat/get waits for the
// one owed before it.
func reportsOutcome(k bot.ActionKind) bool {
	return k == bot.ActionMassSend || k == bot.ActionMassResult || k == bot.ActionGroupDetail
}

// reportsDelivery are the outreach messages (broadcasts, SOP steps) the
// outbox delivers itself — a 微信客服 message, a staff task: every outcome
// (sent, failed, canceled, unknown) returns to the engine as a result event,
// which keeps each broadcast's and SOP's counts exact without reading their
// actions back. (Batched mass sends report through their task's results.)
func reportsDelivery(a *bot.Action) bool {
	return a.Purpose == bot.PurposeOutreach && (a.Kind == bot.ActionKfMessage || a.Kind == bot.ActionStaffMessage)
}

// feedBackOutcome appends a failed or unknown outcome (bot.DataOutcome) of
// an action whose kind reports it; each attempt's outcome is its own event.
func (p *Pipeline) feedBackOutcome(ctx context.Context, a *bot.Action, outcome, msg string, now time.Time, log zerolog.Logger) {
	if !reportsOutcome(a.Kind) && !reportsDelivery(a) {
		return
	}
	data := map[string]string{bot.DataOutcome: outcome, bot.DataError: msg}
	if reportsDelivery(a) && !a.DueAt.IsZero() {
		data[bot.DataDue] = a.DueAt.UTC().Format(time.RFC3339)
	}
	switch a.Kind {
	case bot.ActionMassResult:
		var p bot.MassResult
		if a.Decode(&p) == nil {
			data[bot.DataBatch], data[bot.DataRound] = p.Batch, strconv.Itoa(p.Round)
		}
	case bot.ActionGroupDetail:
		var p bot.GroupDetail
		if a.Decode(&p) == nil {
			data["chat_id"] = p.ChatID
		}
	}
	p.feedBack(ctx, a, data, fmt.Sprintf("result-%s|%s|%d", outcome, a.Key, a.Attempts), now, log)
}

// fireTimer delivers an ActionTimer: nothing goes out; its Data returns to
// the engine as a result event (before MarkSent: a crash between them fires
// it again, and the event's dedupe key keeps the first).
func (p *Pipeline) fireTimer(ctx context.Context, a *bot.Action, now time.Time, log zerolog.Logger) {
	var t bot.Timer
	if err := a.Decode(&t); err != nil {
		p.recordFailure(ctx, a, now, err.Error(), log)
		return
	}
	p.feedBack(ctx, a, t.Data, "result|"+a.Key, now, log)
	p.record("timer fired, but could not record it", log, func() error { return p.o.Store.MarkSent(ctx, a.ID, now, "timer fired") })
	p.count(func(s *Stats) { s.Sent++ })
	p.o.Metrics.OutboxAttempt(string(a.Kind), "sent", now.Sub(a.DueAt))
}
