package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Health is what /healthz reports: whether the store takes writes, and how
// far behind the event log is.
type Health struct {
	// Writable is false while the store refuses writes (disk full, file
	// system read-only); WriteError says why and FailingSince since when.
	Writable     bool      `json:"writable"`
	WriteError   string    `json:"write_error,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	// Pending counts unprocessed events; OldestPendingAge is how long the
	// oldest of them has waited.
	Pending          int           `json:"pending"`
	OldestPendingAge time.Duration `json:"oldest_pending_age"`
	// Held lists the WeCom APIs the throttle holds back, until when.
	Held map[string]time.Time `json:"held,omitempty"`
}

// writeHealth remembers the outcome of the latest store write any part of
// the process made (event transactions, outbox records, callback appends,
// probes), so health needn't write to find out.
type writeHealth struct {
	mu      sync.Mutex
	failing bool
	since   time.Time
	lastErr string
	lastAt  time.Time // latest observation
}

// observe records err (nil: a success) and returns whether writes were
// failing before it, and since when.
func (h *writeHealth) observe(err error, now time.Time) (wasFailing bool, since time.Time) {
	if err != nil && (errors.Is(err, bot.ErrInvalidInput) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return false, time.Time{} // the caller's input or the caller giving up, not the store
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	wasFailing, since = h.failing, h.since
	h.lastAt = now
	if err == nil {
		h.failing, h.lastErr, h.since = false, "", time.Time{}
		return wasFailing, since
	}
	if !h.failing {
		h.failing, h.since = true, now
	}
	h.lastErr = err.Error()
	return wasFailing, since
}

func (h *writeHealth) state() (failing bool, since time.Time, lastErr string, lastAt time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failing, h.since, h.lastErr, h.lastAt
}

// probeEvery is how stale the last observed write may be before Health
// writes a probe of its own (an idle bot still finds out its disk filled).
const probeEvery = 5 * time.Second

// ObserveWrite tells the pipeline how a store write outside it went (the
// callback handlers' appends), so Health reflects it.
func (p *Pipeline) ObserveWrite(err error) { p.observeWrite(err, p.o.Now()) }

// observeWrite records a store write's outcome, and in
// wecombot_store_writable when it fails or ends a failing spell (a
// success while writes succeed changes nothing, so the hot paths skip it).
func (p *Pipeline) observeWrite(err error, now time.Time) {
	if wasFailing, _ := p.writes.observe(err, now); wasFailing || err != nil {
		p.setWritableMetric()
	}
}

// ObserveMove tells the pipeline how the store's move of acknowledged
// events into its database went (storage/bolt's ingest log mover, through
// OnMoveOutcome): err at each failure, nil at the first success after
// them. While moves fail Health reports the store unwritable, whatever
// other writes do — a probe's few bytes may fit where a batch of events
// does not, and the events acknowledged meanwhile wait where the engine
// cannot read them. A failing spell is logged once, as is its end.
func (p *Pipeline) ObserveMove(err error) {
	wasFailing, since := p.moves.observe(err, p.o.Now())
	p.setWritableMetric()
	switch {
	case err != nil && !wasFailing:
		p.log.Warn().Err(err).Msg("the database refuses the move of acknowledged callbacks out of the ingest log (disk full? read-only?): they wait there, nothing is lost, and are moved once it takes writes again; events are not processed meanwhile")
	case err == nil && wasFailing:
		p.log.Info().Dur("failed_for_ms", p.o.Now().Sub(since)).Msg("the database takes the ingest log's acknowledged callbacks again")
	}
}

// writeState is the store's write health: failing while its writes or
// its moves fail (the earlier spell's start and error when both do).
func (p *Pipeline) writeState() (failing bool, since time.Time, lastErr string) {
	failing, since, lastErr, _ = p.writes.state()
	mFailing, mSince, mErr, _ := p.moves.state()
	if mFailing && (!failing || mSince.Before(since)) {
		return true, mSince, mErr
	}
	return failing, since, lastErr
}

func (p *Pipeline) setWritableMetric() {
	if p.o.Metrics == nil || p.o.Metrics.StoreWritable == nil {
		return
	}
	if failing, _, _ := p.writeState(); failing {
		p.o.Metrics.StoreWritable.Set(0)
	} else {
		p.o.Metrics.StoreWritable.Set(1)
	}
}

// probeWrite writes a small record in its own transaction: can the store
// take a write right now?
func (p *Pipeline) probeWrite(ctx context.Context) error {
	now := p.o.Now()
	err := p.o.Store.Update(ctx, func(tx bot.Tx) error {
		return tx.Put(bot.BucketHealth, "probe", []byte(now.UTC().Format(time.RFC3339Nano)))
	})
	p.observeWrite(err, now)
	return err
}

// probeWait is how long Health waits for its probe write before it
// answers with what it knows; probeStuck is how long a probe may wait for
// the store (a transaction holding bbolt's writer, a handler stuck in it)
// before Health reports the store unwritable.
const (
	probeWait  = time.Second
	probeStuck = 10 * time.Second
)

// probeState is the probe write under way, if any (one at a time).
type probeState struct {
	mu    sync.Mutex
	done  chan struct{} // nil: none under way
	since time.Time
}

// awaitProbe starts a probe write unless one is under way and waits for
// it up to probeWait: /healthz never hangs on a store whose writer is held.
// It returns how long the probe under way has waited, once that is past
// probeStuck.
func (p *Pipeline) awaitProbe(ctx context.Context) (stuck time.Duration) {
	p.probe.mu.Lock()
	if p.probe.done == nil {
		done := make(chan struct{})
		p.probe.done, p.probe.since = done, p.o.Now()
		go func() {
			// Not the request's context: a probe that outlives its
			// request still tells the next one how the write went.
			_ = p.probeWrite(context.WithoutCancel(ctx))
			p.probe.mu.Lock()
			p.probe.done = nil
			p.probe.mu.Unlock()
			close(done)
		}()
	}
	done, since := p.probe.done, p.probe.since
	p.probe.mu.Unlock()
	t := time.NewTimer(probeWait)
	defer t.Stop()
	select {
	case <-done:
		return 0
	case <-ctx.Done():
	case <-t.C:
	}
	if waited := p.o.Now().Sub(since); waited > probeStuck {
		return waited
	}
	return 0
}

// Health reports the store's writability (probing with a small write when
// no write was observed for a few seconds) and the event log's lag.
func (p *Pipeline) Health(ctx context.Context) (Health, error) {
	_, _, _, lastAt := p.writes.state()
	var stuck time.Duration
	if p.o.Now().Sub(lastAt) > probeEvery {
		stuck = p.awaitProbe(ctx)
	}
	failing, since, lastErr := p.writeState()
	h := Health{Writable: !failing, WriteError: p.redact(lastErr), FailingSince: since, Held: p.held()}
	if stuck > 0 && !failing {
		h.Writable, h.FailingSince = false, p.o.Now().Add(-stuck)
		h.WriteError = fmt.Sprintf("a write has waited %s for the store: a transaction holds it", stuck.Round(time.Second))
	}
	st, err := p.o.Store.EventStats(ctx)
	if err != nil {
		return h, err
	}
	h.Pending = st.Pending
	if !st.OldestPending.IsZero() {
		h.OldestPendingAge = max(p.o.Now().Sub(st.OldestPending), 0)
	}
	return h, nil
}

// held asks the sender which APIs its throttle holds.
func (p *Pipeline) held() map[string]time.Time {
	if t, ok := p.o.Sender.(interface{ Held() map[string]time.Time }); ok {
		if h := t.Held(); len(h) > 0 {
			return h
		}
	}
	return nil
}
