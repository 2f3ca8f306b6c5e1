package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/storage/bolt"
)

var errDiskFull = errors.New("write /data/wecombot.db: no space left on device")

// brokenStore refuses every write while broken: transactions run and then
// fail to commit (as a full disk or a read-only file system makes bbolt's
// commit fail), and the outbox's records fail.
type brokenStore struct {
	*bolt.Store
	broken atomic.Bool
}

func (s *brokenStore) Update(ctx context.Context, fn func(bot.Tx) error) error {
	return s.Store.Update(ctx, func(tx bot.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if s.broken.Load() {
			return errDiskFull
		}
		return nil
	})
}

func (s *brokenStore) Batch(ctx context.Context, fn func(bot.Tx) error) error {
	return s.Store.Batch(ctx, func(tx bot.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if s.broken.Load() {
			return errDiskFull
		}
		return nil
	})
}

func (s *brokenStore) fail() error {
	if s.broken.Load() {
		return errDiskFull
	}
	return nil
}

func (s *brokenStore) BeginAttempt(ctx context.Context, id uint64, at time.Time) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.BeginAttempt(ctx, id, at)
}

func (s *brokenStore) MarkSent(ctx context.Context, id uint64, at time.Time, detail string) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.MarkSent(ctx, id, at, detail)
}

func (s *brokenStore) MarkRetry(ctx context.Context, id uint64, next time.Time, msg string) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.MarkRetry(ctx, id, next, msg)
}

// TestStoreRefusingWritesFailsNoEvent is defect 1 of issue 15 at unit
// level: while the store refuses writes, acknowledged events stay pending
// (retried with backoff, never recorded as failed) and health says the
// store refuses writes; once it takes writes again every event is applied
// once.
func TestStoreRefusingWritesFailsNoEvent(t *testing.T) {
	st := &brokenStore{Store: openStore(t, t.TempDir())}
	defer st.Close()
	var calls sync.Map
	for i := range 5 {
		appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm" + string(rune('a'+i)), WelcomeCode: "wc"})
	}
	st.broken.Store(true)
	rec := newRecorder()
	m := metrics.New()
	p, stop := run(t, pipeline.Options{Store: st, Handle: welcomeHandler(&calls), Sender: rec, Workers: 2, HandleAttempts: 3, Metrics: m})
	defer stop()
	waitFor(t, "store retries", func() bool { return p.Stats().StoreRetries >= 10 })
	if v := storeWritable(t, m); v != 0 {
		t.Fatalf("wecombot_store_writable %v while the store refuses writes, want 0", v)
	}
	h, err := p.Health(context.Background())
	if err != nil || h.Writable || h.WriteError == "" || h.Pending != 5 {
		t.Fatalf("health while broken: %+v %v", h, err)
	}
	if s := p.Stats(); s.Failed != 0 || s.Processed != 0 {
		t.Fatalf("while the store refuses writes: %+v", s)
	}
	st.broken.Store(false)
	waitFor(t, "every event applied", func() bool { return p.Stats().Processed == 5 })
	waitFor(t, "every welcome sent", func() bool { return len(rec.sentKeys()) == 5 })
	// Before any Health call (whose probe would set it too): the writes
	// that applied the events end the failing spell in the gauge.
	if v := storeWritable(t, m); v != 1 {
		t.Fatalf("wecombot_store_writable %v after the store took the events' writes, want 1", v)
	}
	es, _ := st.EventStats(context.Background())
	if es.Pending != 0 || es.Failed != 0 {
		t.Fatalf("after repair: %+v", es)
	}
	if h, _ := p.Health(context.Background()); !h.Writable {
		t.Fatalf("health after repair: %+v", h)
	}
	for k, n := range rec.sentKeys() {
		if n != 1 {
			t.Errorf("%s sent %d times", k, n)
		}
	}
}

// TestFailedEventsReplay: a handler failing on a healthy store fails its
// event after HandleAttempts; once fixed, RetryFailedEvents and Replay
// apply it through the pipeline, once.
func TestFailedEventsReplay(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	var broken atomic.Bool
	broken.Store(true)
	var calls sync.Map
	inner := welcomeHandler(&calls)
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		if broken.Load() {
			return errors.New("bug: cannot handle this event")
		}
		return inner(ctx, tx, ev)
	}
	appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wmA", WelcomeCode: "wc"})
	rec := newRecorder()
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: rec, Workers: 1, HandleAttempts: 3})
	defer stop()
	waitFor(t, "the event to fail", func() bool { return p.Stats().Failed == 1 })
	failed, err := st.FailedEvents(context.Background(), 0, 10)
	if err != nil || len(failed) != 1 || failed[0].Event.ExternalUserID != "wmA" || failed[0].Error == "" {
		t.Fatalf("failed events: %+v %v", failed, err)
	}
	if _, err := st.RetryFailedEvents(context.Background(), 99, time.Now()); !errors.Is(err, bot.ErrNotFound) {
		t.Fatalf("retry of an unknown seq: %v", err)
	}
	broken.Store(false)
	if n, err := st.RetryFailedEvents(context.Background(), 0, time.Now()); err != nil || n != 1 {
		t.Fatalf("retry all: %d %v", n, err)
	}
	p.Replay()
	waitFor(t, "the replayed event", func() bool { return p.Stats().Processed == 1 })
	waitFor(t, "its welcome", func() bool { return len(rec.sentKeys()) == 1 })
	es, _ := st.EventStats(context.Background())
	if es.Failed != 0 || es.Pending != 0 {
		t.Fatalf("after replay: %+v", es)
	}
}

// TestNoSendWithoutARecordedAttempt is defect 2 at unit level: when the
// store cannot record an attempt, nothing is sent; when it can again, the
// action is sent once.
func TestNoSendWithoutARecordedAttempt(t *testing.T) {
	st := &brokenStore{Store: openStore(t, t.TempDir())}
	defer st.Close()
	a, _ := bot.NewAction(bot.ActionStaffMessage, "staff|1", bot.StaffMessage{ToUsers: []string{"s"}, Text: "hi"})
	a.CreatedAt = time.Now()
	if err := st.Store.Update(context.Background(), func(tx bot.Tx) error { _, err := tx.Enqueue(a); return err }); err != nil {
		t.Fatal(err)
	}
	st.broken.Store(true)
	rec := newRecorder()
	p, stop := run(t, pipeline.Options{Store: st, Handle: welcomeHandler(&sync.Map{}), Sender: rec})
	defer stop()
	waitFor(t, "attempts refused by the store", func() bool { return p.Stats().StoreRetries >= 3 })
	if n := len(rec.sentKeys()); n != 0 {
		t.Fatalf("sent %d actions the store could not record an attempt for", n)
	}
	st.broken.Store(false)
	waitFor(t, "the send after repair", func() bool { return len(rec.sentKeys()) == 1 })
	waitFor(t, "recorded sent", func() bool {
		got, _ := st.Action(context.Background(), a.ID)
		return got.Status == bot.ActionSent
	})
}

// kindRecorder records what each delivery was told about earlier attempts.
type kindRecorder struct {
	*recorder
	mu       sync.Mutex
	possibly map[string]bool
}

func (r *kindRecorder) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	r.mu.Lock()
	r.possibly[a.Key] = a.PossiblyDelivered
	r.mu.Unlock()
	return r.recorder.Send(ctx, a)
}

// TestOpenAttemptIsPossiblyDelivered is defect 8 at unit level: an attempt
// left open by a crash makes the action possibly delivered; a staff
// message is not resent (ActionUnknown), a welcome is resent telling the
// sender so (which reads WeCom's 41051 as delivered).
func TestOpenAttemptIsPossiblyDelivered(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	ctx := context.Background()
	staff, _ := bot.NewAction(bot.ActionStaffMessage, "staff|1", bot.StaffMessage{ToUsers: []string{"s"}, Text: "hi"})
	welcome, _ := bot.NewAction(bot.ActionWelcome, "welcome|1", bot.WelcomeMessage{WelcomeCode: "wc", Text: "hi"})
	welcome.NotAfter = time.Now().Add(20 * time.Second)
	for _, a := range []*bot.Action{staff, welcome} {
		a.CreatedAt = time.Now()
		if err := st.Update(ctx, func(tx bot.Tx) error { _, err := tx.Enqueue(a); return err }); err != nil {
			t.Fatal(err)
		}
		// The previous process recorded the attempt, sent, and died.
		if err := st.BeginAttempt(ctx, a.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	rec := &kindRecorder{recorder: newRecorder(), possibly: map[string]bool{}}
	p, stop := run(t, pipeline.Options{Store: st, Handle: welcomeHandler(&sync.Map{}), Sender: rec})
	defer stop()
	waitFor(t, "the welcome resent", func() bool { return rec.sentKeys()["welcome|1"] == 1 })
	waitFor(t, "the staff message resolved", func() bool {
		got, _ := st.Action(ctx, staff.ID)
		return got.Status == bot.ActionUnknown
	})
	if rec.sentKeys()["staff|1"] != 0 {
		t.Fatal("a staff message whose attempt's outcome is unknown was sent again")
	}
	rec.mu.Lock()
	told := rec.possibly["welcome|1"]
	rec.mu.Unlock()
	if !told {
		t.Fatal("the welcome's resend was not marked possibly delivered")
	}
	waitFor(t, "the outbox to record both", func() bool {
		os, _ := st.OutboxStats(ctx)
		return os.PossiblyDelivered == 1 && os.Sent == 1 && os.Pending == 0
	})
	// The relay counts after it has recorded the outcome, so the counter
	// may trail the store by a moment on a loaded machine: wait for it,
	// then it must be exactly one.
	waitFor(t, "the relay to count the possibly delivered welcome", func() bool { return p.Stats().PossiblyDelivered >= 1 })
	if s := p.Stats(); s.PossiblyDelivered != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// holdingSender holds every API until opened (a throttle after 45009).
type holdingSender struct {
	*recorder
	asked atomic.Int64 // HoldUntil calls: relay passes over held actions
	open  atomic.Bool
	first atomic.Value // key of the first action sent after opening
}

func (h *holdingSender) HoldUntil(a *bot.Action) time.Time {
	h.asked.Add(1)
	if h.open.Load() {
		return time.Time{}
	}
	return time.Now().Add(50 * time.Millisecond)
}

func (h *holdingSender) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	h.first.CompareAndSwap(nil, a.Key)
	return h.recorder.Send(ctx, a)
}

// TestHeldAPIWaitsAndUrgentGoesFirst: while the sender's throttle holds
// the API nothing is claimed or sent (and nothing is written per action);
// when it opens, the action with a deadline goes first.
func TestHeldAPIWaitsAndUrgentGoesFirst(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	ctx := context.Background()
	for i := range 5 {
		a, _ := bot.NewAction(bot.ActionMarkTag, "tag|"+string(rune('a'+i)), bot.MarkTag{StaffID: "s", ExternalUserID: "wm", Add: []string{"A"}})
		a.CreatedAt = time.Now().Add(-time.Minute)
		if err := st.Update(ctx, func(tx bot.Tx) error { _, err := tx.Enqueue(a); return err }); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := bot.NewAction(bot.ActionWelcome, "welcome|urgent", bot.WelcomeMessage{WelcomeCode: "wc", Text: "hi"})
	w.CreatedAt, w.NotAfter = time.Now(), time.Now().Add(20*time.Second)
	if err := st.Update(ctx, func(tx bot.Tx) error { _, err := tx.Enqueue(w); return err }); err != nil {
		t.Fatal(err)
	}
	snd := &holdingSender{recorder: newRecorder()}
	_, stop := run(t, pipeline.Options{Store: st, Handle: welcomeHandler(&sync.Map{}), Sender: snd, Senders: 1})
	defer stop()
	// Several relay passes over all six while they are held.
	waitFor(t, "relay passes while held", func() bool { return snd.asked.Load() >= 6*4 })
	if n := len(snd.sentKeys()); n != 0 {
		t.Fatalf("%d sent while held", n)
	}
	acts, _ := st.Actions(ctx, 0, 10)
	for _, a := range acts {
		if a.Attempts != 0 || !a.AttemptAt.IsZero() {
			t.Fatalf("a held action was touched: %+v", a)
		}
	}
	snd.open.Store(true)
	// The five mark_tags of one relation go as one coalesced call.
	waitFor(t, "everything sent", func() bool {
		acts, _ := st.Actions(ctx, 0, 10)
		sent := 0
		for _, a := range acts {
			if a.Status == bot.ActionSent {
				sent++
			}
		}
		return sent == 6
	})
	if first := snd.first.Load(); first != "welcome|urgent" {
		t.Fatalf("first sent after the hold: %v, want the welcome", first)
	}
}

// Health never hangs on a store whose writer is held (an event handler
// stuck in its transaction): the probe write waits in the background, and
// once it has waited past a bound Health reports the store unwritable and
// why; when the writer is free again the probe lands and health recovers.
func TestHealthAnswersWhileTheWriterIsHeld(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	advance := func(d time.Duration) { now.Add(int64(d)) }
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		once.Do(func() { close(entered) })
		<-release
		return nil
	}
	p, stop := run(t, pipeline.Options{Store: st, Handle: handle, Sender: newRecorder(), Now: clock})
	defer stop()
	var freed sync.Once
	defer freed.Do(func() { close(release) })
	appendEvents(t, st, bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm1"})
	<-entered
	health := func() pipeline.Health {
		t.Helper()
		got := make(chan pipeline.Health, 1)
		go func() { h, _ := p.Health(context.Background()); got <- h }()
		select {
		case h := <-got:
			return h
		case <-time.After(10 * time.Second):
			t.Fatal("Health blocked behind the held writer")
			return pipeline.Health{}
		}
	}
	advance(6 * time.Second) // no write seen for longer than the probe interval
	if h := health(); !h.Writable || h.Pending != 1 {
		t.Fatalf("health with the probe just waiting: %+v", h)
	}
	advance(11 * time.Second)
	h := health()
	if h.Writable || !strings.Contains(h.WriteError, "waited 11s") || h.FailingSince.IsZero() {
		t.Fatalf("health with the probe held 11 s: %+v, want unwritable with the reason", h)
	}
	freed.Do(func() { close(release) })
	waitFor(t, "the probe and the event written", func() bool { return p.Stats().Processed == 1 })
	advance(6 * time.Second)
	waitFor(t, "health back", func() bool { h := health(); return h.Writable && h.WriteError == "" })
}

// lockedBuffer is a log sink safe for the pipeline's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines counts the log lines at level that contain text.
func (l *lockedBuffer) lines(level, text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.SplitSeq(l.b.String(), "\n") {
		if strings.Contains(line, `"level":"`+level+`"`) && strings.Contains(line, text) {
			n++
		}
	}
	return n
}

// storeWritable reads wecombot_store_writable from m's registry.
func storeWritable(t *testing.T, m *metrics.Metrics) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "wecombot_store_writable" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no wecombot_store_writable")
	return 0
}

// TestFailingMovesKeepHealthUnwritable: while the store's moves of
// acknowledged events into its database fail (ObserveMove), Health and
// wecombot_store_writable say the store refuses writes, with the error,
// even as other writes and Health's own probe succeed (a probe's few
// bytes fit where a batch of events may not); each failing spell is
// logged once, with its error, and its end once; the first successful
// move makes the store writable again.
func TestFailingMovesKeepHealthUnwritable(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	defer st.Close()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	later := func() { clock.Add(int64(time.Minute)) } // past probeEvery: Health probes
	var logs lockedBuffer
	m := metrics.New()
	p := pipeline.New(pipeline.Options{Store: st, Handle: welcomeHandler(&sync.Map{}), Sender: newRecorder(),
		Log: zerolog.New(&logs), Metrics: m, Now: now})
	ctx := context.Background()
	health := func() pipeline.Health {
		t.Helper()
		h, err := p.Health(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := health(); !h.Writable {
		t.Fatalf("health before any move failed: %+v", h)
	}
	const refused = "the database refuses the move"
	for range 3 {
		p.ObserveMove(errDiskFull)
	}
	p.ObserveWrite(nil) // an AppendEvent elsewhere succeeded
	later()
	h := health() // and so does the probe
	if h.Writable || !strings.Contains(h.WriteError, "no space left on device") || h.FailingSince.IsZero() {
		t.Fatalf("health while moves fail: %+v, want not writable with the error", h)
	}
	if v := storeWritable(t, m); v != 0 {
		t.Fatalf("wecombot_store_writable %v while moves fail, want 0", v)
	}
	if n := logs.lines("warn", refused); n != 1 {
		t.Fatalf("%d warnings for one failing spell of three failures, want 1:\n%s", n, logs.String())
	}
	if n := logs.lines("warn", "no space left on device"); n != 1 {
		t.Fatalf("the warning lacks the error:\n%s", logs.String())
	}

	p.ObserveMove(nil)
	if h := health(); !h.Writable || h.WriteError != "" {
		t.Fatalf("health after a move succeeded: %+v, want writable", h)
	}
	if v := storeWritable(t, m); v != 1 {
		t.Fatalf("wecombot_store_writable %v after a move succeeded, want 1", v)
	}
	if n := logs.lines("info", "takes the ingest log's acknowledged callbacks again"); n != 1 {
		t.Fatalf("%d recovery lines, want 1:\n%s", n, logs.String())
	}

	p.ObserveMove(errDiskFull) // a second spell is logged too
	if n := logs.lines("warn", refused); n != 2 {
		t.Fatalf("%d warnings after a second failing spell, want 2", n)
	}
	if h := health(); h.Writable {
		t.Fatalf("health in a second failing spell: %+v", h)
	}
}
