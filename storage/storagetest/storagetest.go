// Package storagetest is the conformance suite every bot.Store backend must
// pass (bbolt today, Postgres later): run it from the backend's tests with a
// constructor that returns an empty store.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/wecombot/wecombot/bot"
)

// Clock is a settable clock the backend under test must use (its Now option).
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Open returns an empty store that uses clock for time and dedupeTTL for
// its dedupe window.
type Open func(t *testing.T, clock *Clock, dedupeTTL time.Duration) bot.Store

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"AppendAndDedupe", testAppendAndDedupe},
		{"AppendRefusesOversizedFields", testAppendBounds},
		{"DedupeExpiresAndPrunes", testDedupeExpiry},
		{"PendingAndProcessed", testPendingAndProcessed},
		{"Members", testMembers},
		{"MemberIndex", testMemberIndex},
		{"TxAtomicity", testTxAtomicity},
		{"OutboxLifecycle", testOutboxLifecycle},
		{"OutboxAttemptsAndPossiblyDelivered", testOutboxAttempts},
		{"OutboxDeadlinesFirst", testOutboxDeadlinesFirst},
		{"KeyValue", testKeyValue},
		{"UnregisteredBucketRefused", testUnregisteredBucket},
		{"RetentionSweep", testRetentionSweep},
		{"ActionPurposeStored", testActionPurpose},
		{"BatchedActionResults", testBatchedActionResults},
		{"ConcurrentAppendDedupe", testConcurrentAppend},
		{"ConcurrentProcessOnce", testConcurrentProcessOnce},
		{"SequenceInCommitOrder", testSequenceInCommitOrder},
		{"ConsoleReads", testConsoleReads},
		{"NoLostUpdates", testNoLostUpdates},
		{"LongScanCommitsUnderWrites", testLongScanUnderWrites},
		{"ScansPageInByteOrder", testScansPage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var ctx = context.Background()

func appendEv(t *testing.T, s bot.Store, key string) (bot.Event, bool) {
	t.Helper()
	ev := bot.Event{Type: bot.EventContactAdd, Source: bot.SourceWeCom, DedupeKey: key, ExternalUserID: "wm-" + key, At: time.Unix(1700000000, 0)}
	dup, err := s.AppendEvent(ctx, &ev)
	if err != nil {
		t.Fatal(err)
	}
	return ev, dup
}

func testAppendAndDedupe(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	a, dup := appendEv(t, s, "k1")
	if dup || a.Seq != 1 {
		t.Fatalf("first append: seq %d dup %v", a.Seq, dup)
	}
	if b, dup := appendEv(t, s, "k1"); !dup || b.Seq != 0 {
		t.Fatalf("retry not deduplicated: seq %d dup %v", b.Seq, dup)
	}
	c, dup := appendEv(t, s, "k2")
	if dup || c.Seq != 2 {
		t.Fatalf("second key: seq %d dup %v", c.Seq, dup)
	}
	// Events without a key are never deduplicated.
	for i := 0; i < 2; i++ {
		if _, dup := appendEv(t, s, ""); dup {
			t.Fatal("empty dedupe key deduplicated")
		}
	}
	evs, err := s.Events(ctx, 0, 10)
	if err != nil || len(evs) != 4 {
		t.Fatalf("events %d %v", len(evs), err)
	}
	if evs[0].ExternalUserID != "wm-k1" || evs[0].Seq != 1 || !evs[0].At.Equal(time.Unix(1700000000, 0)) || evs[0].ReceivedAt.IsZero() {
		t.Fatalf("event round trip: %+v", evs[0])
	}
	if evs, _ := s.Events(ctx, 2, 1); len(evs) != 1 || evs[0].Seq != 3 {
		t.Fatalf("events after 2 limit 1: %+v", evs)
	}
	st, err := s.EventStats(ctx)
	if err != nil || st.LastSeq != 4 || st.Pending != 4 || st.OldestPending.IsZero() {
		t.Fatalf("stats %+v %v", st, err)
	}
}

// testAppendBounds: an event outside bot.CheckEvent's bounds is refused with
// an error wrapping its *bot.FieldError (so HTTP answers 400 naming the
// field, not 500), and nothing is stored.
func testAppendBounds(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	huge := strings.Repeat("x", 40<<10)
	for _, ev := range []bot.Event{
		{Type: bot.EventContactAdd, ExternalUserID: huge, DedupeKey: "k|" + huge},
		{Type: bot.EventContactAdd, ExternalUserID: "wm", StaffID: huge},
		{Type: bot.EventOrderPaid, ExternalUserID: "wm", Data: map[string]string{bot.DataOrderID: "o", bot.DataAmountFen: "9223372036854775807"}},
	} {
		_, err := s.AppendEvent(ctx, &ev)
		var fe *bot.FieldError
		if !errors.As(err, &fe) || !errors.Is(err, bot.ErrInvalidInput) {
			t.Errorf("append out of bounds: %v, want a *bot.FieldError", err)
		}
	}
	if st, err := s.EventStats(ctx); err != nil || st.LastSeq != 0 || st.Pending != 0 {
		t.Fatalf("stats after refused appends %+v %v", st, err)
	}
}

func testDedupeExpiry(t *testing.T, open Open) {
	clock := NewClock()
	s := open(t, clock, time.Hour)
	appendEv(t, s, "k")
	clock.Advance(59 * time.Minute)
	if _, dup := appendEv(t, s, "k"); !dup {
		t.Fatal("inside the TTL: want duplicate")
	}
	clock.Advance(2 * time.Minute)
	if _, dup := appendEv(t, s, "k"); dup {
		t.Fatal("past the TTL: the key must count as absent")
	}
	appendEv(t, s, "other")
	clock.Advance(2 * time.Hour)
	n, err := s.PruneDedupe(ctx, clock.Now().Add(-time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	if n, _ := s.PruneDedupe(ctx, clock.Now().Add(-time.Hour)); n != 0 {
		t.Fatalf("second prune removed %d", n)
	}
}

func testPendingAndProcessed(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	for i := 0; i < 5; i++ {
		appendEv(t, s, fmt.Sprint("k", i))
	}
	mark := func(seq uint64, errMsg string) bool {
		var first bool
		if err := s.Update(ctx, func(tx bot.Tx) error {
			var err error
			first, err = tx.MarkProcessed(seq, errMsg)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return first
	}
	if !mark(2, "") || mark(2, "") {
		t.Fatal("MarkProcessed must be true once, then false")
	}
	if !mark(4, "handler failed") {
		t.Fatal("mark failed")
	}
	if mark(99, "") {
		t.Fatal("unknown seq reported as first")
	}
	evs, err := s.PendingEvents(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range evs {
		seqs = append(seqs, e.Seq)
	}
	if fmt.Sprint(seqs) != "[1 3 5]" {
		t.Fatalf("pending %v, want [1 3 5]", seqs)
	}
	if evs, _ := s.PendingEvents(ctx, 1, 1); len(evs) != 1 || evs[0].Seq != 3 {
		t.Fatalf("pending after 1 limit 1: %+v", evs)
	}
	st, _ := s.EventStats(ctx)
	if st.Pending != 3 || st.Failed != 1 || st.LastSeq != 5 {
		t.Fatalf("stats %+v", st)
	}
}

func testMembers(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	err := s.View(ctx, func(tx bot.Tx) error {
		if _, err := tx.Member("nobody"); !errors.Is(err, bot.ErrNotFound) {
			t.Errorf("missing member: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"wm_c", "wm_a", "wm_b"}
	err = s.Update(ctx, func(tx bot.Tx) error {
		for _, id := range ids {
			m := &bot.Member{ExternalUserID: id, Name: "名字" + id, Stage: bot.StageAware, Tags: []string{"t1"},
				StageHistory: []bot.StageChange{{To: bot.StageAware, Cause: "contact.add", EventSeq: 1}}}
			if err := tx.PutMember(m); err != nil {
				return err
			}
		}
		// Replacing does not count twice.
		return tx.PutMember(&bot.Member{ExternalUserID: "wm_a", Name: "改名", Stage: bot.StageInterest})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx bot.Tx) error {
		if n, _ := tx.MemberCount(); n != 3 {
			t.Errorf("count %d, want 3", n)
		}
		m, err := tx.Member("wm_a")
		if err != nil || m.Name != "改名" || m.Stage != bot.StageInterest {
			t.Errorf("replaced member: %+v %v", m, err)
		}
		m.Name = "mutated" // a copy: must not change the store
		if again, _ := tx.Member("wm_a"); again.Name != "改名" {
			t.Error("Member returned shared state")
		}
		var order []string
		_ = tx.Members("", func(m *bot.Member) bool { order = append(order, m.ExternalUserID); return true })
		if fmt.Sprint(order) != "[wm_a wm_b wm_c]" {
			t.Errorf("order %v", order)
		}
		order = nil
		_ = tx.Members("wm_a", func(m *bot.Member) bool { order = append(order, m.ExternalUserID); return false })
		if fmt.Sprint(order) != "[wm_b]" {
			t.Errorf("after wm_a, stop after one: %v", order)
		}
		return nil
	})
}

func testTxAtomicity(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	ev, _ := appendEv(t, s, "k")
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx bot.Tx) error {
		if _, err := tx.MarkProcessed(ev.Seq, ""); err != nil {
			return err
		}
		if err := tx.PutMember(&bot.Member{ExternalUserID: "wm_x"}); err != nil {
			return err
		}
		a, _ := bot.NewAction(bot.ActionWelcome, "w1", bot.WelcomeMessage{WelcomeCode: "c"})
		if _, err := tx.Enqueue(a); err != nil {
			return err
		}
		if err := tx.Put(bot.BucketScratch, "f", []byte("v")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if evs, _ := s.PendingEvents(ctx, 0, 10); len(evs) != 1 {
		t.Fatal("MarkProcessed survived a rolled-back transaction")
	}
	ob, _ := s.OutboxStats(ctx)
	if ob.Pending != 0 {
		t.Fatal("Enqueue survived a rolled-back transaction")
	}
	_ = s.View(ctx, func(tx bot.Tx) error {
		if n, _ := tx.MemberCount(); n != 0 {
			t.Error("member survived a rollback")
		}
		if _, err := tx.Get(bot.BucketScratch, "f"); !errors.Is(err, bot.ErrNotFound) {
			t.Error("kv write survived a rollback")
		}
		return nil
	})
}

// testOutboxAttempts: BeginAttempt records an attempt durably before a send
// (AttemptAt set, still pending and due); an attempt found still open when
// the next begins makes the action PossiblyDelivered; MarkUnknown with a
// next time keeps it pending, without one it is ActionUnknown, counted in
// OutboxStats.PossiblyDelivered and out of the due index; outcomes clear
// AttemptAt.
func testOutboxAttempts(t *testing.T, open Open) {
	clock := NewClock()
	s := open(t, clock, time.Hour)
	now := clock.Now()
	enqueue := func(kind bot.ActionKind, key string) uint64 {
		a, _ := bot.NewAction(kind, key, bot.StaffMessage{Text: key})
		a.CreatedAt, a.DueAt = now, now
		if err := s.Update(ctx, func(tx bot.Tx) error { _, err := tx.Enqueue(a); return err }); err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	get := func(id uint64) *bot.Action {
		a, err := s.Action(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	crashed := enqueue(bot.ActionWelcome, "crashed")
	if err := s.BeginAttempt(ctx, crashed, now); err != nil {
		t.Fatal(err)
	}
	if a := get(crashed); !a.AttemptAt.Equal(now) || a.Status != bot.ActionPending || a.PossiblyDelivered {
		t.Fatalf("after BeginAttempt: %+v", a)
	}
	if due, _ := s.DueActions(ctx, now, 10); len(due) != 1 || !due[0].AttemptAt.Equal(now) {
		t.Fatalf("an open attempt must stay due (a restart resolves it): %+v", due)
	}
	// The process died; the next attempt finds the open one.
	if err := s.BeginAttempt(ctx, crashed, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if a := get(crashed); !a.PossiblyDelivered || !a.AttemptAt.Equal(now.Add(time.Second)) {
		t.Fatalf("second BeginAttempt over an open one: %+v", a)
	}
	if err := s.MarkSent(ctx, crashed, now.Add(2*time.Second), "delivered (inferred)"); err != nil {
		t.Fatal(err)
	}
	if a := get(crashed); a.Status != bot.ActionSent || !a.AttemptAt.IsZero() || !a.PossiblyDelivered {
		t.Fatalf("sent: %+v", a)
	}

	lost := enqueue(bot.ActionMarkTag, "lost-answer")
	if err := s.BeginAttempt(ctx, lost, now); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkUnknown(ctx, lost, now.Add(time.Minute), "timeout"); err != nil {
		t.Fatal(err)
	}
	if a := get(lost); a.Status != bot.ActionPending || !a.PossiblyDelivered || !a.AttemptAt.IsZero() || !a.DueAt.Equal(now.Add(time.Minute)) || a.Attempts != 1 || a.LastError != "timeout" {
		t.Fatalf("MarkUnknown with next: %+v", a)
	}

	staff := enqueue(bot.ActionStaffMessage, "staff")
	if err := s.BeginAttempt(ctx, staff, now); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkUnknown(ctx, staff, time.Time{}, "timeout"); err != nil {
		t.Fatal(err)
	}
	if a := get(staff); a.Status != bot.ActionUnknown || !a.PossiblyDelivered {
		t.Fatalf("MarkUnknown without next: %+v", a)
	}
	if err := s.MarkSent(ctx, staff, now, "x"); err == nil {
		t.Fatal("a possibly delivered action was marked sent")
	}
	st, err := s.OutboxStats(ctx)
	if err != nil || st.Pending != 1 || st.Sent != 1 || st.PossiblyDelivered != 1 || st.Failed != 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if due, _ := s.DueActions(ctx, now.Add(time.Hour), 10); len(due) != 1 || due[0].ID != lost {
		t.Fatalf("due after outcomes: %+v", due)
	}
}

func testOutboxLifecycle(t *testing.T, open Open) {
	clock := NewClock()
	s := open(t, clock, time.Hour)
	now := clock.Now()
	enqueue := func(key string, due time.Time) (uint64, bool) {
		a, _ := bot.NewAction(bot.ActionKfMessage, key, bot.KfMessage{Text: key})
		a.CreatedAt, a.DueAt = now, due
		var dup bool
		if err := s.Update(ctx, func(tx bot.Tx) error {
			var err error
			dup, err = tx.Enqueue(a)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return a.ID, dup
	}
	idLater, _ := enqueue("later", now.Add(time.Hour))
	idNow, _ := enqueue("now", now)
	idSoon, _ := enqueue("soon", now.Add(time.Minute))
	if _, dup := enqueue("now", now); !dup {
		t.Fatal("same key enqueued twice")
	}
	due, err := s.DueActions(ctx, now, 10)
	if err != nil || len(due) != 1 || due[0].ID != idNow || due[0].Status != bot.ActionPending {
		t.Fatalf("due now: %+v %v", due, err)
	}
	if next, ok, _ := s.NextDue(ctx); !ok || !next.Equal(now) {
		t.Fatalf("next due %v %v", next, ok)
	}
	due, _ = s.DueActions(ctx, now.Add(2*time.Hour), 10)
	if len(due) != 3 || due[0].ID != idNow || due[1].ID != idSoon || due[2].ID != idLater {
		t.Fatalf("due order %+v", due)
	}
	var p bot.KfMessage
	if err := due[1].Decode(&p); err != nil || p.Text != "soon" {
		t.Fatalf("payload %+v %v", p, err)
	}
	// Retry moves the due time; sent and failed actions leave the due index.
	if err := s.MarkRetry(ctx, idNow, now.Add(3*time.Hour), "busy"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, idSoon, now, "msgid=1"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(ctx, idLater, now, "48002"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, idSoon, now, ""); err == nil {
		t.Fatal("an action was marked sent twice")
	}
	due, _ = s.DueActions(ctx, now.Add(2*time.Hour), 10)
	if len(due) != 0 {
		t.Fatalf("due after retry/sent/failed: %+v", due)
	}
	a, err := s.Action(ctx, idNow)
	if err != nil || a.Attempts != 1 || a.LastError != "busy" || !a.DueAt.Equal(now.Add(3*time.Hour)) {
		t.Fatalf("retried action %+v %v", a, err)
	}
	if a, _ := s.Action(ctx, idSoon); a.Status != bot.ActionSent || a.SentAt.IsZero() || a.Detail != "msgid=1" {
		t.Fatalf("sent action %+v", a)
	}
	if _, err := s.Action(ctx, 999); !errors.Is(err, bot.ErrNotFound) {
		t.Fatalf("missing action: %v", err)
	}
	st, _ := s.OutboxStats(ctx)
	if st.Pending != 1 || st.Sent != 1 || st.Failed != 1 || !st.OldestDue.Equal(now.Add(3*time.Hour)) {
		t.Fatalf("outbox stats %+v", st)
	}
	all, _ := s.Actions(ctx, 0, 10)
	if len(all) != 3 || all[0].ID != idLater {
		t.Fatalf("actions %+v", all)
	}
}

// testOutboxDeadlinesFirst: actions that must go out by a deadline (welcome
// codes) come before a backlog of older actions, and leave with them.
func testOutboxDeadlinesFirst(t *testing.T, open Open) {
	clock := NewClock()
	s := open(t, clock, time.Hour)
	now := clock.Now()
	var urgent uint64
	for i := 0; i < 20; i++ {
		a, _ := bot.NewAction(bot.ActionKfMessage, fmt.Sprintf("backlog-%d", i), bot.KfMessage{Text: "x"})
		a.CreatedAt, a.DueAt = now.Add(-time.Minute), now.Add(-time.Minute+time.Duration(i)*time.Second)
		if i == 19 {
			a.Kind, a.Key, a.NotAfter = bot.ActionWelcome, "welcome", now.Add(20*time.Second)
		}
		if err := s.Update(ctx, func(tx bot.Tx) error { _, err := tx.Enqueue(a); return err }); err != nil {
			t.Fatal(err)
		}
		urgent = a.ID
	}
	due, err := s.DueActions(ctx, now, 5)
	if err != nil || len(due) != 5 || due[0].ID != urgent || due[1].Key != "backlog-0" {
		t.Fatalf("due with a deadline first: %+v %v", due, err)
	}
	all, _ := s.DueActions(ctx, now, 100)
	if len(all) != 20 {
		t.Fatalf("%d due, want each action once (20)", len(all))
	}
	if err := s.MarkRetry(ctx, urgent, now.Add(time.Hour), "busy"); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DueActions(ctx, now, 5); due[0].Key != "backlog-0" {
		t.Fatalf("a retried deadline action is due later: %+v", due[0])
	}
	if due, _ := s.DueActions(ctx, now.Add(2*time.Hour), 1); due[0].ID != urgent {
		t.Fatalf("once due again it comes first: %+v", due[0])
	}
	if err := s.MarkSent(ctx, urgent, now, ""); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DueActions(ctx, now.Add(2*time.Hour), 100); len(due) != 19 {
		t.Fatalf("sent action still due: %d", len(due))
	}
}

func testKeyValue(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	err := s.Update(ctx, func(tx bot.Tx) error {
		if _, err := tx.Get("nobucket", "k"); !errors.Is(err, bot.ErrNotFound) {
			t.Errorf("missing bucket: %v", err)
		}
		for _, k := range []string{"checkin|c1|2026-11-23|wm1", "checkin|c1|2026-11-24|wm1", "checkin|c2|2026-11-23|wm1", "other"} {
			if err := tx.Put(bot.BucketScratch, k, []byte(k)); err != nil {
				return err
			}
		}
		return tx.Delete(bot.BucketScratch, "other")
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx bot.Tx) error {
		var keys []string
		_ = tx.Scan(bot.BucketScratch, "checkin|c1|", func(k string, v []byte) bool { keys = append(keys, k); return true })
		if len(keys) != 2 || keys[0] != "checkin|c1|2026-11-23|wm1" {
			t.Errorf("scan %v", keys)
		}
		if _, err := tx.Get(bot.BucketScratch, "other"); !errors.Is(err, bot.ErrNotFound) {
			t.Error("deleted key still there")
		}
		if v, err := tx.Get(bot.BucketScratch, "checkin|c2|2026-11-23|wm1"); err != nil || string(v) != "checkin|c2|2026-11-23|wm1" {
			t.Errorf("get %q %v", v, err)
		}
		return nil
	})
}

// A Put to a bucket that bot.Buckets doesn't list fails and writes nothing:
// the registry is the key-value space's schema, so a typo can't start a new
// bucket that nothing else reads.
func testUnregisteredBucket(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	err := s.Update(ctx, func(tx bot.Tx) error { return tx.Put("no_such_bucket", "k", []byte("v")) })
	if err == nil || !strings.Contains(err.Error(), "no_such_bucket") {
		t.Fatalf("put to an unregistered bucket: err = %v, want an error naming it", err)
	}
	_ = s.View(ctx, func(tx bot.Tx) error {
		if _, err := tx.Get("no_such_bucket", "k"); !errors.Is(err, bot.ErrNotFound) {
			t.Errorf("unregistered bucket holds data: %v", err)
		}
		return nil
	})
}

// Sweep deletes processed events and sent actions older than the cutoff and
// nothing else: pending and failed events and actions stay, a swept action's
// key still makes a second enqueue a duplicate, and the dedupe window is
// untouched.
func testRetentionSweep(t *testing.T, open Open) {
	clock := NewClock()
	store := open(t, clock, 100*24*time.Hour)
	s, ok := store.(interface {
		bot.Store
		bot.Retention
	})
	if !ok {
		t.Skipf("%T does not implement bot.Retention: processed events and sent actions are kept forever", store)
	}
	old := clock.Now()
	evs := map[string]bot.Event{}
	for _, k := range []string{"done", "pending", "failed"} {
		evs[k], _ = appendEv(t, s, k)
	}
	enqueue := func(key string) uint64 {
		t.Helper()
		var id uint64
		if err := s.Update(ctx, func(tx bot.Tx) error {
			a, err := bot.NewAction(bot.ActionStaffMessage, key, bot.StaffMessage{ToUsers: []string{"s1"}, Text: key})
			if err != nil {
				return err
			}
			a.CreatedAt = clock.Now()
			a.MemberID = "wm-" + key
			_, err = tx.Enqueue(a)
			id = a.ID
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	sent, pending, failed := enqueue("sent"), enqueue("pending"), enqueue("failed")
	if err := s.Update(ctx, func(tx bot.Tx) error {
		if _, err := tx.MarkProcessed(evs["done"].Seq, ""); err != nil {
			return err
		}
		_, err := tx.MarkProcessed(evs["failed"].Seq, "handler failed 3 times")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, sent, old, "ok"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(ctx, failed, old, "final"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(40 * 24 * time.Hour)
	recent, _ := appendEv(t, s, "recent")
	recentSent := enqueue("recent-sent")
	if err := s.Update(ctx, func(tx bot.Tx) error { _, err := tx.MarkProcessed(recent.Seq, ""); return err }); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, recentSent, clock.Now(), "ok"); err != nil {
		t.Fatal(err)
	}

	st, err := s.Sweep(ctx, clock.Now().Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 1 || st.Actions != 1 {
		t.Fatalf("swept %+v, want 1 event and 1 action", st)
	}
	left, err := s.Events(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, ev := range left {
		seqs = append(seqs, ev.Seq)
	}
	if want := []uint64{evs["pending"].Seq, evs["failed"].Seq, recent.Seq}; fmt.Sprint(seqs) != fmt.Sprint(want) {
		t.Errorf("events left %v, want %v (pending, failed, recent)", seqs, want)
	}
	if pe, _ := s.PendingEvents(ctx, 0, 10); len(pe) != 1 || pe[0].Seq != evs["pending"].Seq {
		t.Errorf("pending events after sweep: %+v", pe)
	}
	if _, err := s.Action(ctx, sent); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("old sent action still there: %v", err)
	}
	// A member's history loses what was swept and keeps the rest.
	if as, ok := store.(AdminStore); ok {
		for member, want := range map[string]int{"wm-done": 0, "wm-pending": 1, "wm-failed": 1, "wm-recent": 1} {
			if evs, err := as.MemberEvents(ctx, member, 10); err != nil || len(evs) != want {
				t.Errorf("%s's events after the sweep: %d, want %d (%v)", member, len(evs), want, err)
			}
		}
		for member, want := range map[string]int{"wm-sent": 0, "wm-pending": 1, "wm-failed": 1, "wm-recent-sent": 1} {
			if acts, err := as.MemberActions(ctx, member, 10); err != nil || len(acts) != want {
				t.Errorf("%s's actions after the sweep: %d, want %d (%v)", member, len(acts), want, err)
			}
		}
	}
	for _, id := range []uint64{pending, failed, recentSent} {
		if _, err := s.Action(ctx, id); err != nil {
			t.Errorf("action %d was swept: %v", id, err)
		}
	}
	if err := s.Update(ctx, func(tx bot.Tx) error {
		a, _ := bot.NewAction(bot.ActionStaffMessage, "sent", bot.StaffMessage{Text: "again"})
		dup, err := tx.Enqueue(a)
		if err == nil && !dup {
			t.Error("a swept action's key was enqueued again: it would be sent twice")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, dup := appendEv(t, s, "done"); !dup {
		t.Error("a swept event's dedupe key no longer deduplicates inside the window")
	}
	es, _ := s.EventStats(ctx)
	ob, _ := s.OutboxStats(ctx)
	if es.Pending != 1 || es.Failed != 1 || ob.Pending != 1 || ob.Failed != 1 || ob.Sent != 1 {
		t.Errorf("stats after sweep: events %+v outbox %+v", es, ob)
	}
	if again, err := s.Sweep(ctx, clock.Now().Add(-30*24*time.Hour)); err != nil || again.Events != 0 || again.Actions != 0 {
		t.Errorf("second sweep: %+v %v, want nothing left to do", again, err)
	}
}

// An action's purpose is stored and read back.
func testActionPurpose(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	var id uint64
	if err := s.Update(ctx, func(tx bot.Tx) error {
		a, err := bot.NewAction(bot.ActionMassSend, "fu-1", bot.MassSend{ChatType: "single"})
		if err != nil {
			return err
		}
		a.Purpose = bot.PurposeFollowUp
		_, err = tx.Enqueue(a)
		id = a.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	a, err := s.Action(ctx, id)
	if err != nil || a.Purpose != bot.PurposeFollowUp {
		t.Fatalf("action %+v %v, want purpose followup", a, err)
	}
	due, err := s.DueActions(ctx, time.Now().Add(time.Hour*24*365), 10)
	if err != nil || len(due) != 1 || due[0].Purpose != bot.PurposeFollowUp {
		t.Fatalf("due actions %+v %v", due, err)
	}
}

// A batched action is never due; the engine writes its results onto it
// (batched → sent → a later result), counted once it is sent or failed;
// pending actions refuse results.
func testBatchedActionResults(t *testing.T, open Open) {
	clock := NewClock()
	s := open(t, clock, time.Hour)
	ids := map[string]uint64{}
	if err := s.Update(ctx, func(tx bot.Tx) error {
		for _, key := range []string{"m1", "m2", "pending"} {
			a, err := bot.NewAction(bot.ActionMassSend, key, bot.MassSend{ChatType: "single", ExternalUserIDs: []string{key}})
			if err != nil {
				return err
			}
			if key != "pending" {
				a.Status = bot.ActionBatched
			}
			if _, err := tx.Enqueue(a); err != nil {
				return err
			}
			ids[key] = a.ID
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueActions(ctx, clock.Now().Add(time.Hour), 10)
	if err != nil || len(due) != 1 || due[0].ID != ids["pending"] {
		t.Fatalf("due %+v %v: want only the pending action (batched ones are never due)", due, err)
	}
	at := clock.Now().Add(time.Minute)
	steps := []struct {
		id   string
		r    bot.ActionResult
		fail bool
	}{
		{"m1", bot.ActionResult{Status: bot.ActionSent, Result: bot.MassWaiting, Detail: "in task msg1", At: at}, false},
		{"m1", bot.ActionResult{Status: bot.ActionSent, Result: bot.MassDelivered, Detail: "delivered", At: at.Add(time.Hour)}, false},
		{"m2", bot.ActionResult{Status: bot.ActionFailed, Result: bot.MassCanceled, Detail: "she deleted the staff member", At: at}, false},
		{"m2", bot.ActionResult{Status: bot.ActionSent, Result: bot.MassDelivered}, true},
		{"pending", bot.ActionResult{Status: bot.ActionSent, Result: bot.MassDelivered}, true},
	}
	for i, st := range steps {
		err := s.Update(ctx, func(tx bot.Tx) error { return tx.SetActionResult(ids[st.id], st.r) })
		if st.fail != (err != nil) || (st.fail && !errors.Is(err, bot.ErrConflict)) {
			t.Errorf("step %d (%s %+v): %v", i, st.id, st.r, err)
		}
	}
	m1, err := s.Action(ctx, ids["m1"])
	if err != nil || m1.Status != bot.ActionSent || m1.Result != bot.MassDelivered || !m1.SentAt.Equal(at) || m1.Detail != "delivered" || !m1.ResultAt.Equal(at.Add(time.Hour)) {
		t.Errorf("m1 %+v %v: want sent at the first result, delivered", m1, err)
	}
	m2, err := s.Action(ctx, ids["m2"])
	if err != nil || m2.Status != bot.ActionFailed || m2.Result != bot.MassCanceled || m2.LastError == "" {
		t.Errorf("m2 %+v %v: want failed, canceled", m2, err)
	}
	st, err := s.OutboxStats(ctx)
	if err != nil || st.Pending != 1 || st.Sent != 1 || st.Failed != 1 {
		t.Errorf("stats %+v %v: want 1 pending, 1 sent, 1 failed", st, err)
	}
	// A sent action WeCom later reports undelivered (msg_send_fail) fails.
	if err := s.Update(ctx, func(tx bot.Tx) error {
		return tx.SetActionResult(ids["m1"], bot.ActionResult{Status: bot.ActionFailed, Result: "undelivered", Detail: "msg_send_fail", At: at})
	}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.OutboxStats(ctx); err != nil || st.Sent != 0 || st.Failed != 2 {
		t.Errorf("stats after sent → failed %+v %v: want 0 sent, 2 failed", st, err)
	}
	if m1, err := s.Action(ctx, ids["m1"]); err != nil || m1.Status != bot.ActionFailed || m1.LastError != "msg_send_fail" {
		t.Errorf("m1 %+v %v", m1, err)
	}
}

func testConcurrentAppend(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := 0
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ev := bot.Event{Type: bot.EventAppText, DedupeKey: fmt.Sprint("key-", i%50)}
			dup, err := s.AppendEvent(ctx, &ev)
			if err != nil {
				t.Error(err)
				return
			}
			if !dup {
				mu.Lock()
				stored++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	st, _ := s.EventStats(ctx)
	if stored != 50 || st.LastSeq != 50 || st.Pending != 50 {
		t.Fatalf("stored %d, stats %+v; want exactly 50", stored, st)
	}
}

func testConcurrentProcessOnce(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	ev, _ := appendEv(t, s, "once")
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := s.Update(ctx, func(tx bot.Tx) error {
				first, err := tx.MarkProcessed(ev.Seq, "")
				if err != nil || !first {
					return err
				}
				a, _ := bot.NewAction(bot.ActionWelcome, fmt.Sprint("welcome-", i), bot.WelcomeMessage{})
				_, err = tx.Enqueue(a)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	st, _ := s.OutboxStats(ctx)
	if st.Pending != 1 {
		t.Fatalf("%d actions enqueued by 100 racing handlers, want 1", st.Pending)
	}
}

// testSequenceInCommitOrder: sequence numbers have no gaps, and a reader
// paging the log with "after the last seq I saw" while appends race never
// skips one (a seq handed out before a later one commits would be skipped).
func testSequenceInCommitOrder(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	const writers, each = 8, 40
	var wg sync.WaitGroup
	var appending atomic.Int32
	appending.Store(writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			defer appending.Add(-1)
			for i := 0; i < each; i++ {
				ev := bot.Event{Type: bot.EventAppText, DedupeKey: fmt.Sprintf("w%d-%d", w, i), ExternalUserID: fmt.Sprint("wm", i%5)}
				if _, err := s.AppendEvent(ctx, &ev); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	seen := map[uint64]bool{}
	var after uint64
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		done := appending.Load() == 0 // read before the page: a page read after the last append sees it all
		evs, err := s.Events(ctx, after, 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Seq <= after {
				t.Fatalf("seq %d after %d: out of order", e.Seq, after)
			}
			seen[e.Seq] = true
			after = e.Seq
		}
		if done && len(evs) < 50 {
			break
		}
	}
	wg.Wait()
	if len(seen) != writers*each {
		t.Fatalf("a reader paging by seq saw %d of %d events: appends committed out of sequence order", len(seen), writers*each)
	}
	for seq := uint64(1); seq <= writers*each; seq++ {
		if !seen[seq] {
			t.Fatalf("seq %d missing: sequence numbers must have no gaps", seq)
		}
	}
}

// testNoLostUpdates: concurrent read-modify-write transactions on the same
// member and the same key all count (the store serialises them or re-runs
// the loser; a conflict is never an error to the caller).
func testNoLostUpdates(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	const workers, each = 8, 15
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := s.Update(ctx, func(tx bot.Tx) error {
					m, err := tx.Member("wm_hot")
					if errors.Is(err, bot.ErrNotFound) {
						m, err = &bot.Member{ExternalUserID: "wm_hot"}, nil
					}
					if err != nil {
						return err
					}
					m.Points++
					if err := tx.PutMember(m); err != nil {
						return err
					}
					n := 0
					if v, err := tx.Get(bot.BucketScratch, "coupon"); err == nil {
						n, _ = strconv.Atoi(string(v))
					} else if !errors.Is(err, bot.ErrNotFound) {
						return err
					}
					return tx.Put(bot.BucketScratch, "coupon", []byte(strconv.Itoa(n+1)))
				})
				if err != nil {
					t.Errorf("a read-modify-write transaction failed (conflicts must be retried inside the store): %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	_ = s.View(ctx, func(tx bot.Tx) error {
		m, err := tx.Member("wm_hot")
		if err != nil || m.Points != workers*each {
			t.Errorf("member points %+v %v, want %d: an update was lost", m, err, workers*each)
		}
		if v, err := tx.Get(bot.BucketScratch, "coupon"); err != nil || string(v) != strconv.Itoa(workers*each) {
			t.Errorf("counter %q %v, want %d: an update was lost", v, err, workers*each)
		}
		return nil
	})
}

// testScansPage: scans over more rows than a backend reads at once return
// every row once, in byte order (keys with bytes ≥ 0x80 and 0xff included),
// resume after a member id, and stop when told.
func testScansPage(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	const n = 700
	var ids, keys []string
	err := s.Update(ctx, func(tx bot.Tx) error {
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("wm%04d", i)
			ids = append(ids, id)
			if err := tx.PutMember(&bot.Member{ExternalUserID: id}); err != nil {
				return err
			}
			k := fmt.Sprintf("p\xff|%04d|用户", i)
			keys = append(keys, k)
			if err := tx.Put(bot.BucketScratch, k, []byte(k)); err != nil {
				return err
			}
		}
		for _, k := range []string{"p\xfe", "p\xff", "q", "p"} { // around the prefix, outside it ("p\xff" itself is inside)
			if err := tx.Put(bot.BucketScratch, k, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, "p\xff")
	sort.Strings(keys)
	_ = s.View(ctx, func(tx bot.Tx) error {
		var got []string
		if err := tx.Members("", func(m *bot.Member) bool { got = append(got, m.ExternalUserID); return true }); err != nil {
			t.Error(err)
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Errorf("members scan: %d ids, want %d in order", len(got), len(ids))
		}
		got = nil
		_ = tx.Members(ids[400], func(m *bot.Member) bool { got = append(got, m.ExternalUserID); return len(got) < 3 })
		if strings.Join(got, ",") != strings.Join(ids[401:404], ",") {
			t.Errorf("members after %s, stop after 3: %v", ids[400], got)
		}
		got = nil
		if err := tx.Scan(bot.BucketScratch, "p\xff", func(k string, v []byte) bool { got = append(got, k); return true }); err != nil {
			t.Error(err)
		}
		if strings.Join(got, ",") != strings.Join(keys, ",") {
			t.Errorf("prefix scan: %d keys, want %d in byte order", len(got), len(keys))
		}
		got = nil
		_ = tx.Scan(bot.BucketScratch, "p\xff|", func(k string, v []byte) bool { got = append(got, k); return len(got) < 300 })
		if len(got) != 300 || got[299] != keys[300] { // keys[0] is "p\xff", outside "p\xff|"
			t.Errorf("stopped prefix scan: %d keys", len(got))
		}
		// Resumed after a key (held or not), the prefix still bounds it.
		for _, tc := range []struct {
			after string
			want  []string
		}{
			{keys[299], keys[300:]},
			{keys[299] + "\x00", keys[300:]},
			{"", keys},
			{"p", keys},
			{"p\xff", keys[1:]},
			{keys[len(keys)-1], nil},
			{"q", nil},
		} {
			got = nil
			if err := tx.ScanAfter(bot.BucketScratch, "p\xff", tc.after, func(k string, v []byte) bool { got = append(got, k); return true }); err != nil {
				t.Error(err)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("scan after %q: %d keys, want %d", tc.after, len(got), len(tc.want))
			}
		}
		return nil
	})
}

// AdminStore is the console's optional read interface (bot/server.AdminStore).
type AdminStore interface {
	MemberEvents(ctx context.Context, member string, limit int) ([]bot.Event, error)
	MemberActions(ctx context.Context, member string, limit int) ([]bot.Action, error)
	RecentFailedActions(ctx context.Context, limit, window int) ([]bot.Action, error)
	RetryAction(ctx context.Context, id uint64, due time.Time) (*bot.Action, error)
}

// testConsoleReads: the console's bounded newest-first reads and the
// dead-letter retry, for stores that offer them.
func testConsoleReads(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	as, ok := s.(AdminStore)
	if !ok {
		t.Skip("the store has no console reads (AdminStore)")
	}
	// 30 events: every third about wm1, one group change naming wm1 among others.
	for i := range 30 {
		ev := &bot.Event{Type: bot.EventKfText, Source: bot.SourceSim, ExternalUserID: fmt.Sprintf("wm%d", 1+i%3), Content: fmt.Sprint(i)}
		if i == 29 {
			ev = &bot.Event{Type: bot.EventGroupUpdate, Source: bot.SourceSim, ChatID: "wr1", MemChangeList: []string{"wm9", "wm1"}}
		}
		if _, err := s.AppendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := as.MemberEvents(ctx, "wm1", 100)
	if err != nil || len(evs) != 11 || evs[0].Type != bot.EventGroupUpdate || evs[1].Content != "27" {
		t.Fatalf("member events: %v %+v", err, evs)
	}
	if evs, _ := as.MemberEvents(ctx, "wm1", 3); len(evs) != 3 || evs[2].Content != "24" {
		t.Errorf("limit: %+v", evs)
	}
	// wm9 is only named by the group change (and sorts last in the index).
	if evs, _ := as.MemberEvents(ctx, "wm9", 100); len(evs) != 1 || evs[0].Type != bot.EventGroupUpdate {
		t.Errorf("named in a group change: %+v", evs)
	}
	if evs, _ := as.MemberEvents(ctx, "wm3", 100); len(evs) != 9 || evs[0].Content != "26" {
		t.Errorf("wm3: %+v", evs)
	}
	// A prefix of another id does not match.
	if evs, _ := as.MemberEvents(ctx, "wm", 100); len(evs) != 0 {
		t.Errorf("prefix matched: %d", len(evs))
	}

	var ids []uint64
	err = s.Update(ctx, func(tx bot.Tx) error {
		for i := range 4 {
			a, _ := bot.NewAction(bot.ActionKfMessage, fmt.Sprint("k", i), bot.KfMessage{Text: "hi"})
			a.MemberID = fmt.Sprintf("wm%d", 1+i%2)
			if _, err := tx.Enqueue(a); err != nil {
				return err
			}
			ids = append(ids, a.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if acts, _ := as.MemberActions(ctx, "wm2", 10); len(acts) != 2 || acts[0].ID != ids[3] {
		t.Errorf("member actions: %+v", acts)
	}
	now := time.Now()
	if err := s.MarkFailed(ctx, ids[1], now, "errcode 84061"); err != nil {
		t.Fatal(err)
	}
	failed, _ := as.RecentFailedActions(ctx, 10, 100)
	if len(failed) != 1 || failed[0].ID != ids[1] {
		t.Fatalf("failed: %+v", failed)
	}
	a, err := as.RetryAction(ctx, ids[1], now)
	if err != nil || a.Status != bot.ActionPending || a.LastError != "errcode 84061" {
		t.Fatalf("retry: %v %+v", err, a)
	}
	ob, _ := s.OutboxStats(ctx)
	if ob.Failed != 0 || ob.Pending != 4 {
		t.Errorf("stats after retry: %+v", ob)
	}
	due, _ := s.DueActions(ctx, now, 10)
	if len(due) != 4 {
		t.Errorf("retried action not due: %d", len(due))
	}
	if _, err := as.RetryAction(ctx, ids[1], now); !errors.Is(err, bot.ErrConflict) {
		t.Errorf("retrying a pending action: %v", err)
	}
	if _, err := as.RetryAction(ctx, 999, now); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("retrying a missing action: %v", err)
	}
}

// testLongScanUnderWrites: a write transaction that reads many keys (a
// campaign tick over every participant) commits while other transactions
// keep rewriting those keys: the store may re-run it, but must not give up.
func testLongScanUnderWrites(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	const keys = 300
	if err := s.Update(ctx, func(tx bot.Tx) error {
		for i := 0; i < keys; i++ {
			if err := tx.Put(bot.BucketScratch, fmt.Sprintf("p|%04d", i), []byte("1")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("p|%04d", (i*7+w*31)%keys)
				if err := s.Update(ctx, func(tx bot.Tx) error {
					if _, err := tx.Get(bot.BucketScratch, k); err != nil {
						return err
					}
					if err := tx.Put(bot.BucketScratch, k, []byte("1")); err != nil {
						return err
					}
					// Each writer also reads the tally the long transaction writes (a read/write cycle).
					_, err := tx.Get(bot.BucketScratch, "tally")
					if errors.Is(err, bot.ErrNotFound) {
						err = nil
					}
					return err
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	time.Sleep(50 * time.Millisecond) // let the writers get going
	for round := 0; round < 3; round++ {
		err := s.Update(ctx, func(tx bot.Tx) error {
			n := 0
			if err := tx.Scan(bot.BucketScratch, "p|", func(k string, v []byte) bool { n++; return true }); err != nil {
				return err
			}
			if n != keys {
				return fmt.Errorf("scanned %d keys, want %d", n, keys)
			}
			return tx.Put(bot.BucketScratch, "tally", []byte(strconv.Itoa(n)))
		})
		if err != nil {
			t.Fatalf("a long scan under concurrent writes failed (the store must see it through): %v", err)
		}
	}
	close(stop)
	wg.Wait()
}

// testMemberIndex: PutMember keeps the tallies and the search index equal
// to what the members stored now contribute (bot.MemberTallies and
// bot.MemberTerms summed over them), through inserts, replacements with
// and without reading the member first in the transaction, concurrent
// writers and a rolled-back transaction.
func testMemberIndex(t *testing.T, open Open) {
	s := open(t, NewClock(), time.Hour)
	at := time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC)
	put := func(ms ...*bot.Member) {
		t.Helper()
		if err := s.Update(ctx, func(tx bot.Tx) error {
			for _, m := range ms {
				if err := tx.PutMember(m); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(&bot.Member{ExternalUserID: "wm_a", Channel: "门店", State: "shop", Stage: bot.StageAware, Tags: []string{"a|b", "vip"},
		Follows:      []bot.Follow{{StaffID: "zhang", AddedAt: at}},
		StageHistory: []bot.StageChange{{To: bot.StageAware, At: at}}},
		&bot.Member{ExternalUserID: "wm_b", Stage: bot.StageAware, Tags: []string{"vip"}, CheckIns: 3, Points: 30,
			StageHistory: []bot.StageChange{{To: bot.StageAware, At: at}}},
		&bot.Member{ExternalUserID: "wm_c"})
	// wm_a read, then changed in the same transaction; wm_b replaced unread.
	if err := s.Update(ctx, func(tx bot.Tx) error {
		m, err := tx.Member("wm_a")
		if err != nil {
			return err
		}
		m.Stage = bot.StagePurchase
		m.StageHistory = append(m.StageHistory, bot.StageChange{From: bot.StageAware, To: bot.StagePurchase, At: at.Add(2 * time.Hour)})
		m.RemoveTag("vip")
		m.Follows[0].DeletedAt = at.Add(time.Hour)
		if err := tx.PutMember(m); err != nil {
			return err
		}
		// The transaction reads its own tally changes.
		n := int64(-1)
		if err := tx.Tallies(bot.IndexKey(bot.TallyCurrent, string(bot.StagePurchase)), func(_ string, c int64) bool { n = c; return false }); err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("members in purchase within the writing transaction: %d, want 1", n)
		}
		m.Level = "gold" // a second write of the same member in the transaction
		return tx.PutMember(m)
	}); err != nil {
		t.Fatal(err)
	}
	put(&bot.Member{ExternalUserID: "wm_b", Stage: bot.StageInterest, Tags: []string{"vip"}, CheckIns: 4, Points: 10, Lost: true,
		StageHistory: []bot.StageChange{{To: bot.StageAware, At: at}, {From: bot.StageAware, To: bot.StageInterest, At: at}}})
	// Spend (net of a refund below zero), orders and activity move her bitmaps.
	put(&bot.Member{ExternalUserID: "wm_c", SpendFen: -500, Orders: 2, LastActiveAt: at.Add(72 * time.Hour),
		Follows: []bot.Follow{{StaffID: "li", AddedAt: at}, {StaffID: "zhang", AddedAt: at.Add(time.Hour)}}})
	put(&bot.Member{ExternalUserID: "wm_c", SpendFen: 12_345, Orders: 25, LastActiveAt: at.Add(96 * time.Hour),
		Follows: []bot.Follow{{StaffID: "li", AddedAt: at}}})
	// A rolled-back write leaves the index alone.
	_ = s.Update(ctx, func(tx bot.Tx) error {
		_ = tx.PutMember(&bot.Member{ExternalUserID: "wm_z", Stage: bot.StageLoyal, Tags: []string{"ghost"}})
		return errors.New("roll back")
	})
	// Concurrent writers of different members.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("wm_p%d", i)
			if err := s.Update(ctx, func(tx bot.Tx) error {
				return tx.PutMember(&bot.Member{ExternalUserID: id, Stage: bot.StageAware, Tags: []string{"vip"}, Channel: "门店"})
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	CheckMemberIndex(t, s)
	_ = s.View(ctx, func(tx bot.Tx) error {
		var got []string
		_ = tx.TermMembers(bot.IndexKey(bot.TermTag, "vip"), "wm_b", func(m string) bool { got = append(got, m); return len(got) < 3 })
		if fmt.Sprint(got) != "[wm_p0 wm_p1 wm_p2]" {
			t.Errorf("vip after wm_b, three: %v", got)
		}
		got = nil
		_ = tx.ScanTerms(bot.TermLeaders+bot.IndexSep, func(term, m string) bool { got = append(got, m); return true })
		if fmt.Sprint(got) != "[wm_b]" {
			t.Errorf("leaders %v", got)
		}
		n := int64(-1)
		_ = tx.Tallies(bot.IndexKey(bot.TallyTag, "a|b"), func(_ string, c int64) bool { n = c; return false })
		if n != 1 {
			t.Errorf("tag a|b counted %d, want 1", n)
		}
		return nil
	})
}

// CheckMemberIndex compares the store's index with one computed from its members.
func CheckMemberIndex(t *testing.T, s bot.Store) {
	t.Helper()
	wantTallies := map[string]int64{}
	wantTerms := map[string]bool{}
	_ = s.View(ctx, func(tx bot.Tx) error {
		_ = tx.Members("", func(m *bot.Member) bool {
			for k, n := range bot.MemberTallies(m) {
				wantTallies[k] += n
			}
			for _, term := range bot.MemberTerms(m) {
				wantTerms[term+"\x00"+m.ExternalUserID] = true
			}
			return true
		})
		gotTallies := map[string]int64{}
		if err := tx.Tallies("", func(k string, n int64) bool { gotTallies[k] = n; return true }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(gotTallies) != fmt.Sprint(wantTallies) {
			t.Errorf("tallies\n got %v\nwant %v", gotTallies, wantTallies)
		}
		gotTerms := map[string]bool{}
		if err := tx.ScanTerms("", func(term, m string) bool { gotTerms[term+"\x00"+m] = true; return true }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(gotTerms) != fmt.Sprint(wantTerms) {
			t.Errorf("terms\n got %v\nwant %v", gotTerms, wantTerms)
		}
		if mb, ok := tx.(bot.MemberBits); ok {
			checkMemberBits(t, tx, mb)
		}
		return nil
	})
}

// checkMemberBits compares the member bitmaps with the members' bit terms
// (bot.MemberBitTerms): every member has one number of her own, and each
// term's bitmap holds exactly the numbers of the members with the term.
func checkMemberBits(t *testing.T, tx bot.Tx, mb bot.MemberBits) {
	t.Helper()
	want := map[string][]string{}
	count := 0
	_ = tx.Members("", func(m *bot.Member) bool {
		count++
		for _, term := range bot.MemberBitTerms(m) {
			want[term] = append(want[term], m.ExternalUserID)
		}
		return true
	})
	all, err := mb.TermBits(bot.BitAll)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[uint32]string{}
	seen := map[string]bool{}
	if err := mb.MembersByNum(all, func(num uint32, m *bot.Member) bool {
		if seen[m.ExternalUserID] {
			t.Errorf("member %s has two numbers", m.ExternalUserID)
		}
		ids[num], seen[m.ExternalUserID] = m.ExternalUserID, true
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != count || int(all.GetCardinality()) != count {
		t.Errorf("%d members, %d numbered, %d in the all bitmap", count, len(ids), all.GetCardinality())
	}
	got := map[string][]string{}
	if err := mb.PrefixBits("", func(term string, b *roaring.Bitmap) bool {
		for _, n := range b.ToArray() {
			got[term] = append(got[term], ids[n])
		}
		slices.Sort(got[term])
		if one, err := mb.TermBits(term); err != nil || !one.Equals(b) {
			t.Errorf("TermBits(%q) = %v, PrefixBits gave %v (%v)", term, one, b, err)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("member bitmaps\n got %v\nwant %v", got, want)
	}
}
