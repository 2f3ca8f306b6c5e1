// Package wecomsync reads the brand's existing community from WeCom — the
// corp tag library, the staff with customer contact, their customers
// (batch/get_by_user, ≤100 staff per call, cursor pages) and the customer
// groups (groupchat/list, groupchat/get) — and appends every page to the
// event log, where the engine applies it (bot/engine/sync.go). The driver
// changes no state itself: it reads where the run stands from what the
// engine stored, so a crash resumes from the last applied page, and a page
// fetched twice carries the same dedupe key and is applied once.
//
// It paces its calls (Options.Rate) to stay inside WeCom's frequency
// limits and retries a page that fails with -1 (system busy) or 45009/45033
// (frequency limits) with backoff; it never skips one. A permission error
// (48002, 60011 for the staff list) stops the run with the hint naming what
// to grant; the next start resumes it.
package wecomsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/retry"
	"github.com/wecombot/wecombot/bot/wecomapi"
)

// Source is the part of the WeCom client a sync reads through.
type Source interface {
	CorpTags(ctx context.Context) ([]bot.SyncTag, error)
	FollowUsers(ctx context.Context) ([]string, error)
	CustomerCount(ctx context.Context, staffID string) (int, error)
	CustomersPage(ctx context.Context, staff []string, cursor string, limit int) ([]bot.SyncContact, string, error)
	GroupChatIDs(ctx context.Context, cursor string, limit int) ([]string, string, error)
	GroupChat(ctx context.Context, chatID string) (bot.SyncGroup, error)
}

// Defaults.
const (
	// DefaultRate is how many WeCom calls a sync makes per second: far
	// below WeCom's per-API limit (10,000/min), leaving room for the
	// outbox's own calls.
	DefaultRate     = 20.0
	DefaultAttempts = 10
)

// Options configure a Syncer.
type Options struct {
	Source  Source
	Store   bot.Store
	Notify  func() // wakes the event workers (pipeline.NotifyEvent)
	Log     zerolog.Logger
	Metrics *metrics.Metrics
	// Rate is WeCom calls per second (default DefaultRate).
	Rate float64
	// Attempts bounds tries of one call on retryable errors (default
	// DefaultAttempts); Backoff is the wait before retry n (default
	// retry.Default.Backoff).
	Attempts int
	Backoff  func(attempt int) time.Duration
	// PageWait is how long to wait for the engine to apply a page (default 5 min).
	PageWait time.Duration
	Now      func() time.Time
}

// Syncer runs one sync at a time.
type Syncer struct {
	o   Options
	log zerolog.Logger

	mu      sync.Mutex
	running bool
	done    chan struct{}
	live    live
	next    time.Time // pacing: earliest next call
}

// live is what only the running process knows about a run.
type live struct {
	runID   string
	started time.Time
	calls   int
	retries int
	lastErr string
}

// New returns a Syncer.
func New(o Options) *Syncer {
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Backoff == nil {
		o.Backoff = retry.Default.Backoff
	}
	if o.PageWait <= 0 {
		o.PageWait = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Notify == nil {
		o.Notify = func() {}
	}
	return &Syncer{o: o, log: o.Log.With().Str("component", "sync").Logger()}
}

// ErrRunning is returned by Run when a sync is already running.
var ErrRunning = errors.New("a sync is already running")

// Start runs a sync in the background unless one is running; it returns
// whether this call started it. ctx bounds the run (serve's lifetime).
func (s *Syncer) Start(ctx context.Context, trigger string) bool {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return false
	}
	s.running, s.done = true, make(chan struct{})
	s.mu.Unlock()
	go func() {
		if _, err := s.run(ctx, trigger); err != nil && ctx.Err() == nil {
			s.log.Error().Err(err).Msg("sync stopped")
		}
	}()
	return true
}

// Run runs a sync to its end (or resumes the unfinished one).
func (s *Syncer) Run(ctx context.Context, trigger string) (*engine.SyncRun, error) {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return nil, ErrRunning
	}
	s.running, s.done = true, make(chan struct{})
	s.mu.Unlock()
	return s.run(ctx, trigger)
}

// Wait blocks until the running sync (if any) returns.
func (s *Syncer) Wait() {
	s.mu.Lock()
	done, running := s.done, s.running
	s.mu.Unlock()
	if running {
		<-done
	}
}

// Running reports whether a sync runs in this process.
func (s *Syncer) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

func (s *Syncer) run(ctx context.Context, trigger string) (run *engine.SyncRun, err error) {
	defer func() {
		s.mu.Lock()
		s.running = false
		close(s.done)
		s.mu.Unlock()
		if run != nil {
			result := "failed"
			if run.Done() {
				result = "done"
			}
			if run.Done() || err != nil {
				s.o.Metrics.SyncFinished(result, run.New, run.Updated, run.Gone, run.GroupsNew, run.GroupsUpdated, run.GroupsGone)
			}
		}
	}()
	cur, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	id := ""
	if cur != nil && !cur.Done() {
		id = cur.ID
		s.log.Info().Str("run", id).Str("phase", cur.Phase).Msg("resuming the unfinished sync")
	} else {
		id = s.o.Now().UTC().Format("20060102T150405.000")
	}
	s.mu.Lock()
	s.live = live{runID: id, started: s.o.Now()}
	s.mu.Unlock()
	start := &bot.Event{Type: bot.EventSyncStart, Source: bot.SourceSystem, At: s.o.Now(),
		DedupeKey: fmt.Sprintf("sync|%s|start|%d", id, s.o.Now().UnixNano()),
		Data:      map[string]string{bot.DataSyncRun: id, bot.DataSyncTrigger: trigger}}
	if err := s.append(ctx, start); err != nil {
		return nil, err
	}
	run, err = s.waitFor(ctx, id, func(r *engine.SyncRun) bool { return r.Status == engine.SyncRunning || r.Done() })
	if err != nil {
		return run, err
	}
	for !run.Done() {
		if err := s.step(ctx, run); err != nil {
			var stop *stopError
			if errors.As(err, &stop) {
				s.fail(ctx, id, stop.err)
				if r, lerr := s.load(ctx, id); lerr == nil && r != nil {
					run = r
				}
				return run, stop.err
			}
			return run, err
		}
		if run, err = s.load(ctx, id); err != nil {
			return run, err
		}
		if run == nil || run.Status == engine.SyncFailed {
			return run, fmt.Errorf("sync %s stopped: %s", id, errorOf(run))
		}
		s.report(run)
	}
	s.report(run)
	s.log.Info().Str("run", id).Int("new", run.New).Int("updated", run.Updated).Int("gone", run.Gone).
		Int("customers", run.Customers).Int("groups", run.Groups).Msg("sync done")
	return run, nil
}

func errorOf(r *engine.SyncRun) string {
	if r == nil {
		return "run record missing"
	}
	return r.Error
}

// stopError is a failure the run can't retry past (a permission).
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }

func (s *Syncer) fail(ctx context.Context, id string, cause error) {
	ev := &bot.Event{Type: bot.EventSyncFail, Source: bot.SourceSystem, At: s.o.Now(),
		DedupeKey: fmt.Sprintf("sync|%s|fail|%d", id, s.o.Now().UnixNano()),
		Data:      map[string]string{bot.DataSyncRun: id, bot.DataSyncError: cause.Error()}}
	if err := s.append(ctx, ev); err != nil {
		s.log.Error().Err(err).Msg("could not record the sync failure")
		return
	}
	_, _ = s.waitFor(ctx, id, func(r *engine.SyncRun) bool { return r.Status != engine.SyncRunning })
}

// step fetches and applies the next page of the run's phase.
func (s *Syncer) step(ctx context.Context, run *engine.SyncRun) error {
	id := run.ID
	switch run.Phase {
	case bot.SyncPhaseTags:
		var tags []bot.SyncTag
		if err := s.call(ctx, "get_corp_tag_list", func() (err error) { tags, err = s.o.Source.CorpTags(ctx); return err }); err != nil {
			return err
		}
		return s.page(ctx, id, bot.SyncPhaseTags, engine.SyncPageKey(id, bot.SyncPhaseTags), bot.SyncTags{Tags: tags},
			func(r *engine.SyncRun) bool { return r.Phase != bot.SyncPhaseTags })
	case bot.SyncPhaseStaff:
		var staff []string
		if err := s.call(ctx, "get_follow_user_list", func() (err error) { staff, err = s.o.Source.FollowUsers(ctx); return err }); err != nil {
			return err
		}
		p := bot.SyncStaff{}
		for _, st := range staff {
			var n int
			err := s.call(ctx, "externalcontact/list", func() (err error) { n, err = s.o.Source.CustomerCount(ctx, st); return err })
			if isCode(err, wecomapi.CodeNoPrivilege) {
				p.OutOfRange = append(p.OutOfRange, st)
				continue
			}
			if err != nil {
				return err
			}
			p.Staff = append(p.Staff, st)
			p.Estimate += n
		}
		return s.page(ctx, id, bot.SyncPhaseStaff, engine.SyncPageKey(id, bot.SyncPhaseStaff), p,
			func(r *engine.SyncRun) bool { return r.Phase != bot.SyncPhaseStaff })
	case bot.SyncPhaseCustomers:
		batches := engine.SyncBatches(run.Staff)
		if run.Batch >= len(batches) {
			return fmt.Errorf("sync %s: batch %d of %d (run record inconsistent)", id, run.Batch, len(batches))
		}
		b, cursor := run.Batch, run.Cursor
		type page struct {
			contacts []bot.SyncContact
			next     string
		}
		fetch := func(cur string) func() (page, error) {
			return prefetch(func() (p page, err error) {
				err = s.call(ctx, "batch/get_by_user", func() (err error) {
					p.contacts, p.next, err = s.o.Source.CustomersPage(ctx, batches[b], cur, wecomapi.MaxBatchLimit)
					return err
				})
				return p, err
			})
		}
		get := fetch(cursor)
		for {
			p, err := get()
			if err != nil {
				return err
			}
			if p.next != "" {
				get = fetch(p.next) // the next call overlaps applying this page
			}
			cur := cursor
			key := engine.SyncPageKey(id, bot.SyncPhaseCustomers, strconv.Itoa(b), cur)
			if err := s.page(ctx, id, bot.SyncPhaseCustomers, key, bot.SyncCustomers{Batch: b, Cursor: cur, Next: p.next, Contacts: p.contacts},
				func(r *engine.SyncRun) bool {
					return r.Batch != b || r.Cursor != cur || r.Phase != bot.SyncPhaseCustomers
				}); err != nil {
				return err
			}
			if p.next == "" {
				return nil
			}
			if still, err := s.stillRunning(ctx, id); err != nil || !still {
				return err
			}
			cursor = p.next
		}
	case bot.SyncPhaseGroupList:
		cursor := run.GroupCursor
		var ids []string
		var next string
		if err := s.call(ctx, "groupchat/list", func() (err error) {
			ids, next, err = s.o.Source.GroupChatIDs(ctx, cursor, wecomapi.MaxGroupListLimit)
			return err
		}); err != nil {
			return err
		}
		var todo []string
		for _, chat := range ids {
			seen, err := s.groupSeen(ctx, id, chat)
			if err != nil {
				return err
			}
			if !seen { // else applied before a restart
				todo = append(todo, chat)
			}
		}
		fetch := func(chat string) func() (bot.SyncGroup, error) {
			return prefetch(func() (g bot.SyncGroup, err error) {
				err = s.call(ctx, "groupchat/get", func() (err error) { g, err = s.o.Source.GroupChat(ctx, chat); return err })
				return g, err
			})
		}
		var get func() (bot.SyncGroup, error)
		if len(todo) > 0 {
			get = fetch(todo[0])
		}
		for i, chat := range todo {
			g, err := get()
			if i+1 < len(todo) {
				get = fetch(todo[i+1]) // the next call overlaps applying this group
			}
			if err != nil {
				if isCode(err, 40050) {
					continue // dismissed between list and get
				}
				return err
			}
			if err := s.pageWait(ctx, id, bot.SyncPhaseGroup, engine.SyncPageKey(id, bot.SyncPhaseGroup, chat), g,
				func(tx bot.Tx, _ *engine.SyncRun) (bool, error) { return engine.SyncGroupSeen(tx, id, chat) }); err != nil {
				return err
			}
		}
		return s.page(ctx, id, bot.SyncPhaseGroupList, engine.SyncPageKey(id, bot.SyncPhaseGroupList, cursor),
			bot.SyncGroupList{Cursor: cursor, Next: next, Count: len(ids)},
			func(r *engine.SyncRun) bool { return r.GroupCursor != cursor || r.Phase != bot.SyncPhaseGroupList })
	default: // finishing
		ev := &bot.Event{Type: bot.EventSyncFinish, Source: bot.SourceSystem, At: s.o.Now(),
			DedupeKey: engine.SyncPageKey(id, "finish"), Data: map[string]string{bot.DataSyncRun: id}}
		if err := s.append(ctx, ev); err != nil {
			return err
		}
		_, err := s.waitFor(ctx, id, func(r *engine.SyncRun) bool { return r.Done() || r.Status != engine.SyncRunning })
		return err
	}
}

// prefetch starts fetch now and returns a func that waits for its result.
func prefetch[T any](fetch func() (T, error)) func() (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fetch()
		ch <- result{v, err}
	}()
	return func() (T, error) {
		r := <-ch
		return r.v, r.err
	}
}

// stillRunning reports whether run id is still running (not failed or superseded).
func (s *Syncer) stillRunning(ctx context.Context, id string) (bool, error) {
	r, err := s.load(ctx, id)
	return err == nil && r != nil && r.Status == engine.SyncRunning, err
}

func (s *Syncer) groupSeen(ctx context.Context, id, chat string) (seen bool, err error) {
	err = s.o.Store.View(ctx, func(tx bot.Tx) (err error) { seen, err = engine.SyncGroupSeen(tx, id, chat); return err })
	return seen, err
}

func isCode(err error, code int64) bool {
	var apiErr *wecomapi.APIError
	return errors.As(err, &apiErr) && apiErr.Code == code
}

// call paces and retries one WeCom call: retryable errors (-1, 45009,
// 45033, network) are retried with backoff, never skipped; anything else
// stops the run (stopError) unless the caller handles it.
func (s *Syncer) call(ctx context.Context, what string, fn func() error) error {
	for attempt := 1; ; attempt++ {
		if err := s.pace(ctx); err != nil {
			return err
		}
		err := fn()
		s.mu.Lock()
		s.live.calls++
		if err != nil {
			s.live.lastErr = err.Error()
		}
		s.mu.Unlock()
		if err == nil {
			return nil
		}
		if isCode(err, wecomapi.CodeNoPrivilege) || isCode(err, 40050) {
			return err // the caller decides
		}
		if !wecomapi.Classify(err) || errors.Is(err, context.Canceled) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &stopError{fmt.Errorf("%s: %w", what, err)}
		}
		if attempt >= s.o.Attempts {
			return fmt.Errorf("%s failed %d times, the run stops here and resumes from this page next time: %w", what, attempt, err)
		}
		wait := s.o.Backoff(attempt)
		var held interface{ HeldUntil() time.Time }
		if errors.As(err, &held) {
			// The client holds the whole API back after a rate limit: wait
			// the hold out; it doesn't count as a try (nothing was sent).
			attempt--
			wait = max(wait, time.Until(held.HeldUntil()))
		}
		s.mu.Lock()
		s.live.retries++
		s.mu.Unlock()
		s.log.Warn().Err(err).Str("call", what).Int("attempt", attempt).Dur("wait", wait).Msg("sync call failed; retrying the same page")
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// pace spaces calls 1/Rate apart.
func (s *Syncer) pace(ctx context.Context) error {
	s.mu.Lock()
	now := time.Now()
	at := s.next
	if at.Before(now) {
		at = now
	}
	s.next = at.Add(time.Duration(float64(time.Second) / s.o.Rate))
	s.mu.Unlock()
	if d := time.Until(at); d > 0 {
		return sleep(ctx, d)
	}
	return nil
}

func (s *Syncer) page(ctx context.Context, id, phase, key string, payload any, applied func(*engine.SyncRun) bool) error {
	return s.pageWait(ctx, id, phase, key, payload, func(_ bot.Tx, r *engine.SyncRun) (bool, error) {
		return r.LastPage == key || applied(r), nil
	})
}

// pageWait appends the page and waits until the engine applied it (or
// the copy appended before a crash).
func (s *Syncer) pageWait(ctx context.Context, id, phase, key string, payload any, applied func(bot.Tx, *engine.SyncRun) (bool, error)) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	ev := &bot.Event{Type: bot.EventSyncPage, Source: bot.SourceSystem, At: s.o.Now(), DedupeKey: key,
		Data: map[string]string{bot.DataSyncRun: id, bot.DataSyncPhase: phase, bot.DataSyncPage: string(raw)}}
	if err := s.append(ctx, ev); err != nil {
		return err
	}
	_, err = s.poll(ctx, id, "sync page "+key, func(tx bot.Tx, r *engine.SyncRun) (bool, error) {
		if r.Status != engine.SyncRunning {
			return true, nil
		}
		return applied(tx, r)
	})
	return err
}

// poll waits, up to PageWait, until cond holds for run id; it returns the
// run as last read.
func (s *Syncer) poll(ctx context.Context, id, what string, cond func(bot.Tx, *engine.SyncRun) (bool, error)) (*engine.SyncRun, error) {
	deadline := time.Now().Add(s.o.PageWait)
	for delay := time.Millisecond; ; delay = min(delay*2, 20*time.Millisecond) {
		var run *engine.SyncRun
		done := false
		err := s.o.Store.View(ctx, func(tx bot.Tx) (err error) {
			if run, err = engine.SyncRunByID(tx, id); err != nil || run == nil {
				return err
			}
			done, err = cond(tx, run)
			return err
		})
		if err != nil || done {
			return run, err
		}
		if time.Now().After(deadline) {
			return run, fmt.Errorf("%s: the engine did not apply it within %s (see /api/v1/events for a failed event)", what, s.o.PageWait)
		}
		if err := sleep(ctx, delay); err != nil {
			return run, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *Syncer) append(ctx context.Context, ev *bot.Event) error {
	if _, err := s.o.Store.AppendEvent(ctx, ev); err != nil {
		return fmt.Errorf("append %s: %w", ev.Type, err)
	}
	s.o.Notify()
	return nil
}

func (s *Syncer) current(ctx context.Context) (run *engine.SyncRun, err error) {
	err = s.o.Store.View(ctx, func(tx bot.Tx) (err error) { run, err = engine.CurrentSyncRun(tx); return err })
	return run, err
}

func (s *Syncer) load(ctx context.Context, id string) (run *engine.SyncRun, err error) {
	err = s.o.Store.View(ctx, func(tx bot.Tx) (err error) { run, err = engine.SyncRunByID(tx, id); return err })
	return run, err
}

func (s *Syncer) waitFor(ctx context.Context, id string, ok func(*engine.SyncRun) bool) (*engine.SyncRun, error) {
	return s.poll(ctx, id, "sync "+id, func(_ bot.Tx, r *engine.SyncRun) (bool, error) { return ok(r), nil })
}

// Progress is a sync's state for the admin API, the console and the CLI.
type Progress struct {
	// Running is true while this process runs the sync.
	Running bool            `json:"running"`
	Run     *engine.SyncRun `json:"run,omitempty"`
	// Ratio is how far the run is (0-1); ETASeconds the time left at the
	// pace so far (0 when unknown).
	Ratio      float64 `json:"ratio"`
	ETASeconds float64 `json:"eta_seconds"`
	Calls      int     `json:"calls"`
	Retries    int     `json:"retries"`
	LastError  string  `json:"last_error,omitempty"`
}

// Progress reads where the newest run stands.
func (s *Syncer) Progress(ctx context.Context) (Progress, error) {
	run, err := s.current(ctx)
	if err != nil {
		return Progress{}, err
	}
	s.mu.Lock()
	lv, running := s.live, s.running
	s.mu.Unlock()
	p := Progress{Running: running, Run: run}
	if run == nil {
		return p, nil
	}
	p.Ratio = ratio(run)
	if lv.runID == run.ID {
		p.Calls, p.Retries, p.LastError = lv.calls, lv.retries, lv.lastErr
		if running && p.Ratio > 0.01 && p.Ratio < 1 {
			elapsed := s.o.Now().Sub(lv.started).Seconds()
			p.ETASeconds = elapsed / p.Ratio * (1 - p.Ratio)
		}
	}
	return p, nil
}

// ratio weighs the groups as the first 10% of a run and the customer pages as the rest.
func ratio(r *engine.SyncRun) float64 {
	switch r.Phase {
	case bot.SyncPhaseTags, bot.SyncPhaseStaff:
		return 0
	case bot.SyncPhaseGroupList:
		// groupchat/list gives no total: the groups count as the first 10%.
		return 0.1 * min(1, float64(r.Groups)/float64(r.Groups+10))
	case bot.SyncPhaseCustomers:
		if r.Estimate <= 0 {
			return 0.1
		}
		return 0.1 + 0.89*min(1, float64(r.Relations)/float64(r.Estimate))
	case engine.SyncDone:
		return 1
	}
	return 0.99
}

func (s *Syncer) report(run *engine.SyncRun) {
	s.o.Metrics.SyncProgress(s.Running() && !run.Done(), ratio(run), run.Relations, run.Customers, run.Groups)
}
