package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/bot/retry"
	"github.com/wecombot/wecombot/storage/bolt"
)

func openStore(t *testing.T, dir string) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(dir, "test.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// recorder is a Sender that records deliveries and can fail on demand.
type recorder struct {
	mu       sync.Mutex
	sent     []bot.Action
	attempts map[string]int
	// failures[key] = how many times to fail with retry before succeeding; -1 fails for good.
	failures map[string]int
}

func newRecorder() *recorder {
	return &recorder{attempts: map[string]int{}, failures: map[string]int{}}
}

func (r *recorder) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[a.Key]++
	switch f := r.failures[a.Key]; {
	case f < 0:
		return bot.SendResult{}, false, errors.New("final failure")
	case r.attempts[a.Key] <= f:
		return bot.SendResult{}, true, errors.New("system busy (-1)")
	}
	r.sent = append(r.sent, *a)
	return bot.SendResult{Detail: "ok"}, false, nil
}

func (r *recorder) sentKeys() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, a := range r.sent {
		out[a.Key]++
	}
	return out
}

// run starts a pipeline and returns a stop function that drains it.
func run(t *testing.T, o pipeline.Options) (*pipeline.Pipeline, func()) {
	t.Helper()
	o.Log = zerolog.Nop()
	o.PollInterval = 20 * time.Millisecond
	if o.Retry.Base == 0 {
		o.Retry = retry.Policy{Base: 10 * time.Millisecond, Cap: 10 * time.Millisecond, Floor: 10 * time.Millisecond}
	}
	if o.StoreRetry.Base == 0 {
		o.StoreRetry = retry.Policy{Base: 5 * time.Millisecond, Cap: 20 * time.Millisecond, Floor: 5 * time.Millisecond}
	}
	p := pipeline.New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	return p, func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendEvents(t *testing.T, st bot.Store, evs ...bot.Event) {
	t.Helper()
	for i := range evs {
		if evs[i].ReceivedAt.IsZero() {
			evs[i].ReceivedAt = time.Now()
		}
		if _, err := st.AppendEvent(context.Background(), &evs[i]); err != nil {
			t.Fatal(err)
		}
	}
}

// welcomeHandler enqueues one action per event, keyed by the event.
func welcomeHandler(calls *sync.Map) bot.HandlerFunc {
	return func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		n, _ := calls.LoadOrStore(ev.Seq, new(int))
		*(n.(*int))++
		a, err := bot.NewAction(bot.ActionWelcome, fmt.Sprintf("welcome|%d", ev.Seq), bot.WelcomeMessage{WelcomeCode: ev.WelcomeCode, Text: "hi"})
		if err != nil {
			return err
		}
		a.MemberID = ev.ExternalUserID
		a.CreatedAt = time.Now()
		_, err = tx.Enqueue(a)
		return err
	}
}

func TestEventsRunOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := openStore(t, dir)
	var calls sync.Map
	rec := newRecorder()
	for i := 0; i < 20; i++ {
		appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: fmt.Sprintf("wm%d", i%5), WelcomeCode: fmt.Sprint(i), DedupeKey: fmt.Sprint("k", i)})
	}
	p, stop := run(t, pipeline.Options{Store: st, Handle: welcomeHandler(&calls), Sender: rec, Workers: 3, QueueSize: 2})
	waitFor(t, "20 actions sent", func() bool { return len(rec.sentKeys()) == 20 })
	stop()
	if s := p.Stats(); s.Processed != 20 || s.Sent != 20 {
		t.Fatalf("stats %+v", s)
	}
	st.Close()

	// Restart on the same file: nothing re-runs, nothing is re-sent. A new
	// event appended after the restart is handled and its action sent once
	// the dispatcher has passed the old events and the relay has scanned the
	// outbox, so waiting for it proves the restart had its chance to redo work.
	st = openStore(t, dir)
	defer st.Close()
	appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm-new", WelcomeCode: "new", DedupeKey: "k-new"})
	p2, stop2 := run(t, pipeline.Options{Store: st, Handle: welcomeHandler(&calls), Sender: rec})
	waitFor(t, "the post-restart event's action sent", func() bool { return len(rec.sentKeys()) == 21 })
	stop2()
	if s := p2.Stats(); s.Processed != 1 || s.Sent != 1 {
		t.Fatalf("restart re-ran work: %+v, want only the new event processed and sent", s)
	}
	calls.Range(func(k, v any) bool {
		if *(v.(*int)) != 1 {
			t.Errorf("event %v handled %d times", k, *(v.(*int)))
		}
		return true
	})
	for k, n := range rec.sentKeys() {
		if n != 1 {
			t.Errorf("action %s sent %d times", k, n)
		}
	}
}

func TestPerMemberOrder(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	var mu sync.Mutex
	seen := map[string][]uint64{}
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		mu.Lock()
		seen[ev.ExternalUserID] = append(seen[ev.ExternalUserID], ev.Seq)
		mu.Unlock()
		return nil
	}
	for i := 0; i < 200; i++ {
		appendEvents(t, st, bot.Event{Type: bot.EventKfText, ExternalUserID: fmt.Sprintf("wm%d", i%7)})
	}
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: newRecorder(), Workers: 4, QueueSize: 1})
	waitFor(t, "200 processed", func() bool { return p.Stats().Processed == 200 })
	stop()
	for m, seqs := range seen {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				t.Fatalf("member %s saw events out of order: %v", m, seqs)
			}
		}
	}
}

// noBatch hides the bolt store's Batch, so the pipeline uses plain Update.
type noBatch struct{ bot.Store }

func TestFailingEventIsRecordedAndDoesNotBlock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		panics  bool
		batched bool
	}{
		{"error, group commit", false, true},
		{"panic, group commit", true, true},
		{"panic, plain update", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t, t.TempDir())
			defer st.Close()
			var attempts int
			var mu sync.Mutex
			handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
				if ev.Content == "poison" {
					mu.Lock()
					attempts++
					mu.Unlock()
					// Writes made before the error must roll back.
					_ = tx.Put(bot.BucketScratch, "poison", []byte("x"))
					if tc.panics {
						panic("a bug in the handler")
					}
					return errors.New("boom")
				}
				return tx.Put(bot.BucketScratch, ev.Content, []byte("ok"))
			}
			appendEvents(t, st,
				bot.Event{Type: bot.EventAppText, Content: "poison", StaffID: "a"},
				bot.Event{Type: bot.EventAppText, Content: "fine", StaffID: "a"})
			var store bot.Store = st
			if !tc.batched {
				store = noBatch{st}
			}
			p, stop := run(t, pipeline.Options{Store: store, Handle: handle, Sender: newRecorder(), Workers: 1, HandleAttempts: 3})
			waitFor(t, "both events done", func() bool { s := p.Stats(); return s.Failed == 1 && s.Processed == 1 })
			stop()
			if attempts != 3 {
				t.Fatalf("poison event tried %d times, want 3", attempts)
			}
			es, _ := st.EventStats(context.Background())
			if es.Pending != 0 || es.Failed != 1 {
				t.Fatalf("event stats %+v", es)
			}
			_ = st.View(context.Background(), func(tx bot.Tx) error {
				if _, err := tx.Get(bot.BucketScratch, "poison"); !errors.Is(err, bot.ErrNotFound) {
					t.Errorf("failed handler's write was kept: %v", err)
				}
				if v, err := tx.Get(bot.BucketScratch, "fine"); err != nil || string(v) != "ok" {
					t.Errorf("good event's write missing: %q %v", v, err)
				}
				return nil
			})
		})
	}
}

func TestOutboxRetriesThenSendsOnce(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	var calls sync.Map
	rec := newRecorder()
	rec.failures["welcome|1"] = 2  // -1 twice, then ok
	rec.failures["welcome|2"] = -1 // final error: dead letter
	appendEvents(t, st,
		bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm1"},
		bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm2"})
	p, stop := run(t, pipeline.Options{Store: st, Handle: welcomeHandler(&calls), Sender: rec})
	waitFor(t, "retry and failure settle", func() bool { s := p.Stats(); return s.Sent == 1 && s.SendFailures == 1 })
	stop()
	if got := rec.sentKeys(); got["welcome|1"] != 1 || got["welcome|2"] != 0 {
		t.Fatalf("sent %v", got)
	}
	if rec.attempts["welcome|1"] != 3 || rec.attempts["welcome|2"] != 1 {
		t.Fatalf("attempts %v", rec.attempts)
	}
	ob, _ := st.OutboxStats(context.Background())
	if ob.Pending != 0 || ob.Sent != 1 || ob.Failed != 1 {
		t.Fatalf("outbox stats %+v", ob)
	}
}

func TestExpiredActionIsNotSent(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	rec := newRecorder()
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		a, _ := bot.NewAction(bot.ActionWelcome, "late", bot.WelcomeMessage{WelcomeCode: "c"})
		a.CreatedAt = time.Now()
		a.NotAfter = time.Now().Add(-time.Second)
		_, err := tx.Enqueue(a)
		return err
	}
	appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm1"})
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: rec})
	waitFor(t, "expired action failed", func() bool { return p.Stats().SendFailures == 1 })
	stop()
	if len(rec.sentKeys()) != 0 {
		t.Fatal("an expired welcome code was sent")
	}
	a, err := st.Action(context.Background(), 1)
	if err != nil || a.Status != bot.ActionFailed {
		t.Fatalf("action %+v %v", a, err)
	}
}

func TestDelayedActionWaitsForItsTime(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	rec := newRecorder()
	due := time.Now().Add(300 * time.Millisecond)
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		a, _ := bot.NewAction(bot.ActionKfMessage, "later", bot.KfMessage{Text: "follow-up"})
		a.CreatedAt = time.Now()
		a.DueAt = due
		_, err := tx.Enqueue(a)
		return err
	}
	appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm1"})
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: rec})
	defer stop()
	waitFor(t, "processed", func() bool { return p.Stats().Processed == 1 })
	if len(rec.sentKeys()) != 0 {
		t.Fatal("sent before due")
	}
	waitFor(t, "sent when due", func() bool { return len(rec.sentKeys()) == 1 })
	if time.Now().Before(due) {
		t.Fatal("sent early")
	}
}

// resultSender answers every action with created data, like add_contact_way.
type resultSender struct{ *recorder }

func (r *resultSender) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	res, retry, err := r.recorder.Send(ctx, a)
	res.Data = map[string]string{"config_id": "cfg-" + a.Key}
	return res, retry, err
}

func TestSendResultComesBackAsEvent(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	var mu sync.Mutex
	var results []bot.Event
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		if ev.Type == bot.EventActionResult {
			mu.Lock()
			results = append(results, *ev)
			mu.Unlock()
			return nil
		}
		a, _ := bot.NewAction(bot.ActionContactWay, "cw|"+ev.ExternalUserID, bot.ContactWay{State: "xhs", Staff: []string{"zhangsan"}})
		a.MemberID = ev.ExternalUserID
		_, err := tx.Enqueue(a)
		return err
	}
	rs := &resultSender{newRecorder()}
	appendEvents(t, st, bot.Event{Type: bot.EventContactWayCreate, ExternalUserID: "wm1"})
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: rs})
	waitFor(t, "result event handled", func() bool { return p.Stats().Processed == 2 })
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(results) != 1 {
		t.Fatalf("%d result events, want 1", len(results))
	}
	d := results[0].Data
	if d["config_id"] != "cfg-cw|wm1" || d[bot.ResultKind] != string(bot.ActionContactWay) || d[bot.ResultKey] != "cw|wm1" ||
		results[0].ExternalUserID != "wm1" || results[0].DedupeKey != "result|cw|wm1" {
		t.Fatalf("result event %+v", results[0])
	}
}

func TestGuardCancelsAction(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	rec := newRecorder()
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		for _, k := range []string{"followup|keep", "followup|drop"} {
			a, _ := bot.NewAction(bot.ActionKfMessage, k, bot.KfMessage{Text: k})
			if _, err := tx.Enqueue(a); err != nil {
				return err
			}
		}
		return nil
	}
	guard := func(a *bot.Action) func(bot.Tx) (string, error) {
		if a.Key != "followup|drop" {
			return nil
		}
		return func(bot.Tx) (string, error) { return "member lost", nil }
	}
	appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm1"})
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: rec, Guard: guard})
	waitFor(t, "one sent", func() bool { return p.Stats().Sent == 1 })
	waitFor(t, "one canceled", func() bool { ob, _ := st.OutboxStats(context.Background()); return ob.Failed == 1 && ob.Pending == 0 })
	stop()
	if got := rec.sentKeys(); got["followup|keep"] != 1 || got["followup|drop"] != 0 {
		t.Fatalf("sent %v", got)
	}
	a, err := st.Action(context.Background(), 2)
	if err != nil || a.Status != bot.ActionFailed || a.LastError != "canceled: member lost" {
		t.Fatalf("canceled action %+v %v", a, err)
	}
}

// laneSender answers SendLimit with a fixed limit per kind and holds every
// mark_tag send until released, counting how many of each kind are out.
type laneSender struct {
	limits  map[bot.ActionKind]int
	release chan struct{}

	mu       sync.Mutex
	out, max map[bot.ActionKind]int
	sent     map[bot.ActionKind]int
}

func (s *laneSender) SendLimit(a *bot.Action) (string, int) {
	return "api/" + string(a.Kind), s.limits[a.Kind]
}

func (s *laneSender) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	s.mu.Lock()
	s.out[a.Kind]++
	s.max[a.Kind] = max(s.max[a.Kind], s.out[a.Kind])
	s.mu.Unlock()
	if a.Kind == bot.ActionMarkTag {
		<-s.release
	} else {
		time.Sleep(5 * time.Millisecond)
	}
	s.mu.Lock()
	s.out[a.Kind]--
	s.sent[a.Kind]++
	s.mu.Unlock()
	return bot.SendResult{Detail: "ok"}, false, nil
}

func (s *laneSender) count(k bot.ActionKind) (sent, maxOut int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[k], s.max[k]
}

// TestRelayLanesPerAPI: each API gets its own lane with the sender's limit
// (Limiter; a lane holds 2n+8 sends, the API's own gate keeps n calls out):
// while every mark_tag send in its lane does not return, welcomes enqueued
// after 20 mark_tags are all delivered, never more than their lane at once;
// mark_tag never exceeds its lane, and every queued one goes out once the
// lane frees.
func TestRelayLanesPerAPI(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	snd := &laneSender{limits: map[bot.ActionKind]int{bot.ActionMarkTag: 3, bot.ActionWelcome: 4}, release: make(chan struct{}),
		out: map[bot.ActionKind]int{}, max: map[bot.ActionKind]int{}, sent: map[bot.ActionKind]int{}}
	enqueue := func(kind bot.ActionKind, n int) {
		err := st.Update(context.Background(), func(tx bot.Tx) error {
			for i := range n {
				var payload any = bot.WelcomeMessage{WelcomeCode: "c", Text: "hi"}
				if kind == bot.ActionMarkTag {
					payload = bot.MarkTag{StaffID: "s1", ExternalUserID: fmt.Sprintf("wm%d", i), Add: []string{"t"}}
				}
				a, err := bot.NewAction(kind, fmt.Sprintf("%s|%d", kind, i), payload)
				if err != nil {
					return err
				}
				a.CreatedAt = time.Now()
				if _, err := tx.Enqueue(a); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	enqueue(bot.ActionMarkTag, 20)
	p, stop := run(t, pipeline.Options{Store: st, Handle: welcomeHandler(&sync.Map{}), Sender: snd})
	defer stop()
	waitFor(t, "the mark_tag lane full", func() bool { _, m := snd.count(bot.ActionMarkTag); return m == 2*3+8 })
	enqueue(bot.ActionWelcome, 30)
	p.NotifyOutbox()
	waitFor(t, "every welcome sent while mark_tag is stuck", func() bool { n, _ := snd.count(bot.ActionWelcome); return n == 30 })
	if _, m := snd.count(bot.ActionWelcome); m > 2*4+8 {
		t.Errorf("%d welcomes out at once, lane for a limit of 4: 16", m)
	}
	close(snd.release)
	waitFor(t, "every mark_tag sent", func() bool { n, _ := snd.count(bot.ActionMarkTag); return n == 20 })
	if _, m := snd.count(bot.ActionMarkTag); m != 2*3+8 {
		t.Errorf("%d mark_tags out at once, lane for a limit of 3: 14", m)
	}
	waitFor(t, "50 deliveries recorded", func() bool { return p.Stats().Sent >= 50 })
	if got := p.Stats().Sent; got != 50 {
		t.Errorf("sent %d, want 50 (each once)", got)
	}
}

// countingStore counts the relay's outbox reads.
type countingStore struct {
	*bolt.Store
	reads atomic.Int64
}

func (s *countingStore) DueActionsExcept(ctx context.Context, now time.Time, limit int, urgentOnly bool, skip func(uint64) bool) ([]bot.Action, error) {
	s.reads.Add(1)
	return s.Store.DueActionsExcept(ctx, now, limit, urgentOnly, skip)
}

// TestWelcomeHandedToTheRelayOnCommit: the actions an event's transaction
// adds go to the relay when it commits, not through an outbox read: with
// the relay's poll an hour away, 20 events' welcomes are delivered one by
// one without the outbox being read again.
func TestWelcomeHandedToTheRelayOnCommit(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: openStore(t, t.TempDir())}
	defer st.Close()
	rec := newRecorder()
	p := pipeline.New(pipeline.Options{Store: st, Handle: welcomeHandler(&sync.Map{}), Sender: rec, Log: zerolog.Nop(), PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-p.Ready()
	waitFor(t, "the relay's first read", func() bool { return st.reads.Load() >= 1 })
	before := st.reads.Load()
	for i := range 20 {
		appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: fmt.Sprintf("wm%d", i), WelcomeCode: fmt.Sprintf("c%d", i)})
		p.NotifyEvent()
		waitFor(t, fmt.Sprintf("welcome %d", i), func() bool { return len(rec.sentKeys()) == i+1 })
	}
	if extra := st.reads.Load() - before; extra > 1 {
		t.Fatalf("the relay read the outbox %d more times for 20 welcomes handed over on commit", extra)
	}
}

// batchCounter counts group-committed transactions.
type batchCounter struct {
	*bolt.Store
	batches atomic.Int64
}

func (s *batchCounter) Batch(ctx context.Context, fn func(bot.Tx) error) error {
	s.batches.Add(1)
	return s.Store.Batch(ctx, fn)
}

// TestWorkerAppliesQueuedEventsInOneTransaction: a worker applies the
// events queued behind the one it takes in the same transaction (in
// order), so 96 pending events of one worker take a few transactions, not
// 96; and a poison event among them fails alone after its tries while
// every other event is applied once.
func TestWorkerAppliesQueuedEventsInOneTransaction(t *testing.T) {
	t.Parallel()
	st := &batchCounter{Store: openStore(t, t.TempDir())}
	defer st.Close()
	var evs []bot.Event
	for i := range 96 {
		evs = append(evs, bot.Event{Type: bot.EventContactAdd, ExternalUserID: fmt.Sprintf("wm%02d", i), WelcomeCode: fmt.Sprintf("c%d", i)})
	}
	appendEvents(t, st, evs...)
	calls := &sync.Map{}
	welcome := welcomeHandler(calls)
	var poisonTries atomic.Int32
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		if ev.ExternalUserID == "wm50" {
			poisonTries.Add(1)
			return errors.New("poison")
		}
		return welcome(ctx, tx, ev)
	}
	rec := newRecorder()
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: rec, Workers: 1})
	defer stop()
	waitFor(t, "95 processed and 1 failed", func() bool { s := p.Stats(); return s.Processed == 95 && s.Failed == 1 })
	if n := st.batches.Load(); n > 20 {
		t.Errorf("%d transactions for 96 queued events of one worker, want a few", n)
	}
	if n := poisonTries.Load(); n != 3 {
		t.Errorf("poison event tried %d times, want HandleAttempts = 3", n)
	}
	waitFor(t, "95 welcomes", func() bool { return len(rec.sentKeys()) == 95 })
	for k, n := range rec.sentKeys() {
		if n != 1 {
			t.Errorf("%s sent %d times", k, n)
		}
	}
}

// tagSender records mark_tag calls; the first one waits for release.
type tagSender struct {
	release chan struct{}
	mu      sync.Mutex
	calls   []bot.MarkTag
}

func (s *tagSender) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	var mt bot.MarkTag
	if err := a.Decode(&mt); err != nil {
		return bot.SendResult{}, false, err
	}
	s.mu.Lock()
	s.calls = append(s.calls, mt)
	first := len(s.calls) == 1
	s.mu.Unlock()
	if first {
		<-s.release
	}
	return bot.SendResult{Detail: "tags"}, false, nil
}

func (s *tagSender) seen() []bot.MarkTag {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// TestTagWritesCoalescedPerMember: while one mark_tag of a relation is
// out, later ones for it wait (a member's tag writes reach WeCom in order)
// and then go as ONE call that leaves the tags as the calls in turn would;
// every action is recorded sent, each once. Another member's tag write is
// not held up.
func TestTagWritesCoalescedPerMember(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	snd := &tagSender{release: make(chan struct{})}
	p, stop := run(t, pipeline.Options{Store: st, Handle: welcomeHandler(&sync.Map{}), Sender: snd})
	defer stop()
	enqueue := func(key, member string, add, remove []string) {
		t.Helper()
		err := st.Update(context.Background(), func(tx bot.Tx) error {
			a, err := bot.NewAction(bot.ActionMarkTag, key, bot.MarkTag{StaffID: "s1", ExternalUserID: member, Add: add, Remove: remove})
			if err != nil {
				return err
			}
			a.MemberID, a.CreatedAt = member, time.Now()
			_, err = tx.Enqueue(a)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		p.NotifyOutbox()
	}
	enqueue("t1", "wmA", []string{"阶段:A"}, nil)
	waitFor(t, "the first call out", func() bool { return len(snd.seen()) == 1 })
	enqueue("t2", "wmA", []string{"阶段:I", "x"}, []string{"阶段:A"})
	enqueue("t3", "wmA", nil, []string{"x"})
	enqueue("t4", "wmA", []string{"阶段:P"}, []string{"阶段:I"})
	enqueue("t5", "wmB", []string{"b"}, nil)
	waitFor(t, "wmB's call beside wmA's", func() bool { return len(snd.seen()) == 2 })
	time.Sleep(50 * time.Millisecond) // wmA's queued writes must not go while t1 is out
	if n := len(snd.seen()); n != 2 {
		t.Fatalf("%d calls while wmA's first is out, want 2 (wmA's later writes wait)", n)
	}
	close(snd.release)
	waitFor(t, "five actions recorded sent", func() bool { return p.Stats().Sent == 5 })
	calls := snd.seen()
	if len(calls) != 3 {
		t.Fatalf("calls %+v, want 3: t1, wmB's, then t2–t4 as one", calls)
	}
	got := calls[2]
	if got.ExternalUserID != "wmA" || fmt.Sprint(got.Add) != "[阶段:P]" || fmt.Sprint(got.Remove) != "[阶段:A x 阶段:I]" {
		t.Fatalf("coalesced call %+v, want add [阶段:P] remove [阶段:A x 阶段:I]", got)
	}
	acts, err := st.Actions(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if a.Status != bot.ActionSent || a.Attempts != 1 {
			t.Errorf("action %s: %s after %d attempts, want sent once", a.Key, a.Status, a.Attempts)
		}
	}
}

// slowSender takes 10 ms per send and records the order of kinds.
type slowSender struct {
	mu    sync.Mutex
	order []bot.ActionKind
}

func (s *slowSender) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	time.Sleep(10 * time.Millisecond)
	s.mu.Lock()
	s.order = append(s.order, a.Kind)
	s.mu.Unlock()
	return bot.SendResult{Detail: "ok"}, false, nil
}

// TestWelcomesOvertakeQueuedTagWrites: with every send slot busy with a
// backlog of mark_tags (different members), welcome codes enqueued later
// start as soon as a slot frees — before any queued mark_tag — so a
// welcome never waits for the backlog to drain (CPU included).
func TestWelcomesOvertakeQueuedTagWrites(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	enqueue := func(kind bot.ActionKind, n int, notAfter time.Time) {
		t.Helper()
		err := st.Update(context.Background(), func(tx bot.Tx) error {
			for i := range n {
				var payload any = bot.WelcomeMessage{WelcomeCode: fmt.Sprint("c", i), Text: "hi"}
				if kind == bot.ActionMarkTag {
					payload = bot.MarkTag{StaffID: "s1", ExternalUserID: fmt.Sprint("wm", i), Add: []string{"t"}}
				}
				a, err := bot.NewAction(kind, fmt.Sprintf("%s|%d", kind, i), payload)
				if err != nil {
					return err
				}
				a.CreatedAt, a.NotAfter = time.Now(), notAfter
				if _, err := tx.Enqueue(a); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	enqueue(bot.ActionMarkTag, 40, time.Time{})
	snd := &slowSender{}
	p, stop := run(t, pipeline.Options{Store: st, Handle: welcomeHandler(&sync.Map{}), Sender: snd, Senders: 2})
	defer stop()
	waitFor(t, "mark_tags under way", func() bool { snd.mu.Lock(); defer snd.mu.Unlock(); return len(snd.order) >= 2 })
	enqueue(bot.ActionWelcome, 3, time.Now().Add(20*time.Second))
	p.NotifyOutbox()
	waitFor(t, "everything sent", func() bool { return p.Stats().Sent == 43 })
	snd.mu.Lock()
	defer snd.mu.Unlock()
	// Between the first and the last welcome only the mark_tags already
	// out when they arrived (at most Senders = 2) may finish.
	first, last := slices.Index(snd.order, bot.ActionWelcome), 0
	for i, k := range snd.order {
		if k == bot.ActionWelcome {
			last = i
		}
	}
	if between := last - first + 1 - 3; between > 2 {
		t.Fatalf("send order %v: %d mark_tags went between the welcomes once they arrived", snd.order, between)
	}
	if first := slices.Index(snd.order, bot.ActionWelcome); first > 12 {
		t.Fatalf("first welcome was send %d of %v: it waited behind the queued mark_tags", first+1, snd.order)
	}
}

// An outreach 微信客服 message or staff task (a broadcast's, an SOP
// step's) returns every final outcome to the engine as a result event —
// sent, failed for good, canceled by the guard — so its broadcast and SOP
// counts follow without reading actions back; other kinds' sends don't.
func TestOutreachOutcomesComeBackAsEvents(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	var mu sync.Mutex
	outcomes := map[string]string{}
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		if ev.Type == bot.EventActionResult {
			mu.Lock()
			outcomes[ev.Data[bot.ResultKey]] = ev.Data[bot.DataOutcome] + " " + ev.Data[bot.DataError]
			mu.Unlock()
			return nil
		}
		for _, k := range []string{"bc|r|sent", "bc|r|fail", "bc|r|drop", "sop|s|wm|1|0", "followup|x|0"} {
			var a *bot.Action
			if k == "sop|s|wm|1|0" {
				a, _ = bot.NewAction(bot.ActionStaffMessage, k, bot.StaffMessage{ToUsers: []string{"zhang"}, Text: k})
			} else {
				a, _ = bot.NewAction(bot.ActionKfMessage, k, bot.KfMessage{Text: k})
			}
			a.Purpose = bot.PurposeOutreach
			if k == "followup|x|0" {
				a.Purpose = bot.PurposeFollowUp
			}
			if _, err := tx.Enqueue(a); err != nil {
				return err
			}
		}
		return nil
	}
	rec := newRecorder()
	rec.failures["bc|r|fail"] = -1
	guard := func(a *bot.Action) func(bot.Tx) (string, error) {
		if a.Key != "bc|r|drop" {
			return nil
		}
		return func(bot.Tx) (string, error) { return "member lost", nil }
	}
	appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm1"})
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: rec, Guard: guard, MaxAttempts: 1})
	waitFor(t, "four outcomes handled", func() bool { return p.Stats().Processed == 5 })
	waitFor(t, "the outbox settled", func() bool { ob, _ := st.OutboxStats(context.Background()); return ob.Pending == 0 })
	stop()
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{"bc|r|sent": "sent ", "bc|r|fail": "failed final failure", "bc|r|drop": "failed canceled: member lost", "sop|s|wm|1|0": "sent "}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Errorf("outcomes %v\nwant %v (and none for the follow-up)", outcomes, want)
	}
}

// A groupchat/get that fails for good returns its outcome to the engine
// with the group it was for: the group's next read waits for the one owed
// before it (engine's fetchGroupDetail), so a failure must free it.
func TestGroupDetailFailureComesBackWithItsGroup(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	var mu sync.Mutex
	var got map[string]string
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		if ev.Type == bot.EventActionResult {
			mu.Lock()
			got = ev.Data
			mu.Unlock()
			return nil
		}
		a, err := bot.NewAction(bot.ActionGroupDetail, "group_detail|1", bot.GroupDetail{ChatID: "wrLive01"})
		if err != nil {
			return err
		}
		_, err = tx.Enqueue(a)
		return err
	}
	rec := newRecorder()
	rec.failures["group_detail|1"] = -1
	appendEvents(t, st, bot.Event{Type: bot.EventGroupUpdate, ChatID: "wrLive01"})
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: rec, MaxAttempts: 1})
	defer stop()
	waitFor(t, "the outcome handled", func() bool { return p.Stats().Processed == 2 })
	mu.Lock()
	defer mu.Unlock()
	if got[bot.DataOutcome] != "failed" || got["chat_id"] != "wrLive01" || got[bot.ResultKey] != "group_detail|1" {
		t.Fatalf("outcome event data %v, want failed for chat wrLive01 under the action's key", got)
	}
}

// attemptCounter is a store that counts the attempts recorded before sends.
type attemptCounter struct {
	*bolt.Store
	begun atomic.Int64
}

func (s *attemptCounter) BeginAttempt(ctx context.Context, id uint64, at time.Time) error {
	s.begun.Add(1)
	return s.Store.BeginAttempt(ctx, id, at)
}

// A read from WeCom (externalcontact/get here) goes out without an attempt
// record — reading again after a crash reaches no one — and its outcome is
// recorded as any other; a write (the welcome) still records its attempt
// before the call.
func TestReadsNeedNoAttemptRecord(t *testing.T) {
	t.Parallel()
	st := &attemptCounter{Store: openStore(t, t.TempDir())}
	defer st.Close()
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		for _, a := range []struct {
			kind    bot.ActionKind
			payload any
		}{
			{bot.ActionWelcome, bot.WelcomeMessage{WelcomeCode: ev.WelcomeCode, Text: "hi"}},
			{bot.ActionContactProfile, bot.ContactProfile{ExternalUserID: ev.ExternalUserID}},
		} {
			act, err := bot.NewAction(a.kind, fmt.Sprintf("%s|%d", a.kind, ev.Seq), a.payload)
			if err != nil {
				return err
			}
			act.MemberID, act.CreatedAt = ev.ExternalUserID, time.Now()
			if _, err := tx.Enqueue(act); err != nil {
				return err
			}
		}
		return nil
	}
	if !bot.ActionContactProfile.ReadOnly() || bot.ActionWelcome.ReadOnly() || bot.ActionMassResult.ReadOnly() {
		t.Fatal("contact_profile is a read; welcome and mass_result (it may remind staff) are not")
	}
	rec := newRecorder()
	appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wmA", WelcomeCode: "WC", DedupeKey: "a"})
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: rec})
	waitFor(t, "both sent", func() bool { return p.Stats().Sent == 2 })
	stop()
	if n := st.begun.Load(); n != 1 {
		t.Errorf("%d attempts recorded before the calls, want 1 (the welcome's)", n)
	}
	acts, err := st.Actions(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if a.Status != bot.ActionSent || a.Attempts != 1 || !a.AttemptAt.IsZero() || a.SentAt.IsZero() {
			t.Errorf("%s: status %s, attempts %d, open attempt %v, sent %v; want sent once, nothing open", a.Kind, a.Status, a.Attempts, a.AttemptAt, a.SentAt)
		}
	}
	if len(acts) != 2 {
		t.Errorf("%d actions, want 2", len(acts))
	}
}

// gateSender holds every send until release is closed, then counts them.
type gateSender struct {
	release chan struct{}
	sent    atomic.Int64
}

func (s *gateSender) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	<-s.release
	s.sent.Add(1)
	return bot.SendResult{Detail: "ok"}, false, nil
}

// TestBacklogStaysOnDisk: while WeCom takes no welcome (the sender holds
// every send), events owing MaxQueued+300 welcome codes (actions with a
// deadline) queue at most MaxQueued of them in the relay's lanes in
// memory — the rest stay pending in the outbox — and once sends go
// through again every one of them is delivered, the ones left on disk
// read back when the lanes run dry.
func TestBacklogStaysOnDisk(t *testing.T) {
	t.Parallel()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "test.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := pipeline.MaxQueued + 300
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		a, err := bot.NewAction(bot.ActionWelcome, fmt.Sprintf("welcome|%d", ev.Seq), bot.WelcomeMessage{WelcomeCode: ev.WelcomeCode, Text: "hi"})
		if err != nil {
			return err
		}
		a.MemberID, a.CreatedAt, a.NotAfter = ev.ExternalUserID, time.Now(), time.Now().Add(time.Hour)
		_, err = tx.Enqueue(a)
		return err
	}
	snd := &gateSender{release: make(chan struct{})}
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: snd})
	defer stop()
	released := false
	defer func() {
		if !released {
			close(snd.release)
		}
	}()
	evs := make([]bot.Event, n)
	for i := range evs {
		evs[i] = bot.Event{Type: bot.EventContactAdd, ExternalUserID: fmt.Sprintf("wm%d", i), WelcomeCode: fmt.Sprint("c", i), DedupeKey: fmt.Sprint("k", i)}
	}
	appendEvents(t, st, evs...)
	p.NotifyEvent()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (stats %+v)", what, p.Stats())
			}
		}
	}
	wait("every event applied", func() bool { return p.Stats().Processed == uint64(n) })
	if q := p.Stats().Queued; q > pipeline.MaxQueued || q < pipeline.MaxQueued-300 {
		t.Fatalf("%d actions queued in memory for %d owed; want at most (and about) %d", q, n, pipeline.MaxQueued)
	}
	if ob, err := st.OutboxStats(context.Background()); err != nil || ob.Pending != n {
		t.Fatalf("outbox holds %d pending (%v), want all %d", ob.Pending, err, n)
	}
	close(snd.release)
	released = true
	wait("every welcome sent", func() bool { return snd.sent.Load() == int64(n) && p.Stats().Sent == uint64(n) })
}
