package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/postgres/pgtest"
	"github.com/wecombot/wecombot/storage/storagetest"
)

func open(t *testing.T, clock *storagetest.Clock, ttl time.Duration) bot.Store {
	t.Helper()
	s, err := Open(context.Background(), pgtest.Database(t), Options{Now: clock.Now, DedupeTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	pgtest.URL(t)
	storagetest.Run(t, open)
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// TestFailedEventsReplay: a failed event is listed with its error and put
// back to pending by RetryFailedEvents (one or all); a processed or unknown
// seq is a conflict or not found.
func TestFailedEventsReplay(t *testing.T) {
	pgtest.URL(t)
	s := open(t, storagetest.NewClock(), time.Hour).(*Store)
	ctx := context.Background()
	var seqs []uint64
	for _, id := range []string{"wmA", "wmB", "wmC"} {
		ev := bot.Event{Type: bot.EventContactAdd, ExternalUserID: id}
		if _, err := s.AppendEvent(ctx, &ev); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ev.Seq)
	}
	if err := s.Update(ctx, func(tx bot.Tx) error {
		for i, seq := range seqs {
			msg := "boom"
			if i == 2 {
				msg = ""
			}
			if _, err := tx.MarkProcessed(seq, msg); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	failed, err := s.FailedEvents(ctx, 0, 10)
	if err != nil || len(failed) != 2 || failed[0].Error != "boom" || failed[0].Event.ExternalUserID != "wmA" {
		t.Fatalf("failed events %+v %v", failed, err)
	}
	if _, err := s.RetryFailedEvents(ctx, seqs[2], time.Now()); !errors.Is(err, bot.ErrConflict) {
		t.Fatalf("retry of a processed event: %v", err)
	}
	if _, err := s.RetryFailedEvents(ctx, 999, time.Now()); !errors.Is(err, bot.ErrNotFound) {
		t.Fatalf("retry of an unknown event: %v", err)
	}
	if n, err := s.RetryFailedEvents(ctx, seqs[0], time.Now()); err != nil || n != 1 {
		t.Fatalf("retry one: %d %v", n, err)
	}
	if n, err := s.RetryFailedEvents(ctx, 0, time.Now()); err != nil || n != 1 {
		t.Fatalf("retry all: %d %v", n, err)
	}
	st, err := s.EventStats(ctx)
	if err != nil || st.Failed != 0 || st.Pending != 2 {
		t.Fatalf("stats after retry %+v %v", st, err)
	}
}

// TestMigrationIndexesMemberHistory: schema migration 5 indexes the events
// and actions a database held before it by member (their JSON bodies).
func TestMigrationIndexesMemberHistory(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	s, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, ev := range []*bot.Event{
		{Type: bot.EventContactAdd, Source: bot.SourceSim, ExternalUserID: "wm1"},
		{Type: bot.EventGroupUpdate, Source: bot.SourceSim, ChatID: "wr1", MemChangeList: []string{"wm2", "wm1"}},
	} {
		if _, err := s.AppendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(ctx, func(tx bot.Tx) error {
		a, _ := bot.NewAction(bot.ActionKfMessage, "k1", bot.KfMessage{Text: "hi"})
		a.MemberID = "wm1"
		_, err := tx.Enqueue(a)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Back to schema 4, the history (and the later member bitmaps) gone, then migrate again.
	pgtest.Exec(t, url, `DROP TABLE member_events; DROP INDEX outbox_member; ALTER TABLE outbox DROP COLUMN member;
		DROP TABLE member_bits, member_nums; DROP SEQUENCE member_num; DELETE FROM schema_migrations WHERE version >= 5`)
	if from, to, err := Migrate(ctx, s.pool); err != nil || from != 4 || to != SchemaVersion {
		t.Fatalf("migrate %d → %d: %v", from, to, err)
	}
	evs, err := s.MemberEvents(ctx, "wm1", 10)
	if err != nil || len(evs) != 2 || evs[0].Type != bot.EventGroupUpdate {
		t.Errorf("wm1's events: %+v %v", evs, err)
	}
	if evs, _ := s.MemberEvents(ctx, "wm2", 10); len(evs) != 1 {
		t.Errorf("wm2's events: %+v", evs)
	}
	if acts, err := s.MemberActions(ctx, "wm1", 10); err != nil || len(acts) != 1 {
		t.Errorf("wm1's actions: %+v %v", acts, err)
	}
}

// TestMigrationSplitsActions: schema migration 6 gives the actions a
// database held as one JSON body each (before status records) their
// status record, keeping every field; the outbox then works on them.
func TestMigrationSplitsActions(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	s, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 2503 // more than one statement's 1,000 rows
	now := time.Now().Truncate(time.Millisecond)
	if err := s.Update(ctx, func(tx bot.Tx) error {
		for i := range n {
			a, _ := bot.NewAction(bot.ActionWelcome, fmt.Sprint("welcome|", i), bot.WelcomeMessage{WelcomeCode: fmt.Sprint("wc", i), Text: "欢迎"})
			a.MemberID, a.CreatedAt, a.DueAt, a.NotAfter = fmt.Sprint("wm", i), now, now, now.Add(20*time.Second)
			if _, err := tx.Enqueue(a); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueActions(ctx, now, n)
	if err != nil || len(due) != n {
		t.Fatalf("%d due, %v", len(due), err)
	}
	for i, a := range due[:n/2] {
		if err := s.BeginAttempt(ctx, a.ID, now); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.MarkSent(ctx, a.ID, now.Add(time.Second), "msgid"); err != nil {
				t.Fatal(err)
			}
		}
	}
	before, err := s.Actions(ctx, 0, n+1)
	if err != nil || len(before) != n {
		t.Fatalf("%d actions, %v", len(before), err)
	}
	// Back to schema 5: every action one JSON body, no status records.
	conn := s.pool
	rows := make([][]any, 0, n)
	for _, a := range before {
		whole, _ := json.Marshal(a)
		rows = append(rows, []any{int64(a.ID), whole})
	}
	for _, r := range rows {
		if _, err := conn.Exec(ctx, `UPDATE outbox SET body = $2 WHERE id = $1`, r...); err != nil {
			t.Fatal(err)
		}
	}
	pgtest.Exec(t, url, `ALTER TABLE outbox DROP COLUMN state; DROP TABLE member_bits, member_nums; DROP SEQUENCE member_num;
		DELETE FROM schema_migrations WHERE version >= 6`) // and the later member bitmaps
	if from, to, err := Migrate(ctx, s.pool); err != nil || from != 5 || to != SchemaVersion {
		t.Fatalf("migrate %d → %d: %v", from, to, err)
	}
	after, err := s.Actions(ctx, 0, n+1)
	if err != nil || len(after) != n {
		t.Fatalf("%d actions after the migration, %v", len(after), err)
	}
	for i := range after {
		if !after[i].DueAt.Equal(before[i].DueAt) || !after[i].SentAt.Equal(before[i].SentAt) || !after[i].AttemptAt.Equal(before[i].AttemptAt) {
			t.Fatalf("action %d times changed:\n%+v\nwas\n%+v", after[i].ID, after[i], before[i])
		}
		a, b := after[i], before[i]
		a.DueAt, a.SentAt, a.AttemptAt, a.CreatedAt, a.NotAfter = b.DueAt, b.SentAt, b.AttemptAt, b.CreatedAt, b.NotAfter
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("action %d changed by the migration:\n%+v\nwas\n%+v", after[i].ID, after[i], before[i])
		}
	}
	var legacy, withStatus int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state IS NULL), count(*) FILTER (WHERE position('"status"' in convert_from(body, 'UTF8')) > 0) FROM outbox`).Scan(&legacy, &withStatus); err != nil {
		t.Fatal(err)
	}
	if legacy != 0 || withStatus != 0 {
		t.Errorf("after the migration %d rows have no status record and %d bodies still hold a status", legacy, withStatus)
	}
	// An open attempt migrated as such: the next attempt is possibly delivered.
	open := before[1]
	if open.AttemptAt.IsZero() || open.Status != bot.ActionPending {
		t.Fatalf("fixture: %+v", open)
	}
	if err := s.BeginAttempt(ctx, open.ID, now); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, open.ID, now, "msgid-2"); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Action(ctx, open.ID); err != nil || a.Status != bot.ActionSent || !a.PossiblyDelivered || a.Detail != "msgid-2" {
		t.Fatalf("after a send on a migrated action: %+v %v", a, err)
	}
	if ob, _ := s.OutboxStats(ctx); ob.Sent != (n/2+1)/2+1 || ob.Pending != n-(n/2+1)/2-1 {
		t.Errorf("outbox stats %+v", ob)
	}
}

// BenchmarkAttemptAndOutcome is the outbox's part of deliveries on
// PostgreSQL — BeginAttempt + MarkSent from concurrent senders:
// storagetest.BenchAttemptAndOutcome.
func BenchmarkAttemptAndOutcome(b *testing.B) {
	s, err := Open(context.Background(), pgtest.Database(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storagetest.BenchAttemptAndOutcome(b, s, 500)
}

// TestMemberBitsAcrossBlocksAndNodes: two nodes on one database; members
// numbered across a 16,384 block boundary by one node, moved between terms
// concurrently by both, are in exactly their terms' bitmaps as either
// node reads them.
func TestMemberBitsAcrossBlocksAndNodes(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	var nodes []*Store
	for range 2 {
		s, err := Open(ctx, url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	pgtest.Exec(t, url, `SELECT setval('member_num', 16380)`)
	put := func(s *Store, i int, stage bot.Stage) error {
		return s.Update(ctx, func(tx bot.Tx) error {
			return tx.PutMember(&bot.Member{ExternalUserID: fmt.Sprintf("wm%02d", i), Stage: stage, Tags: []string{fmt.Sprint("t", i%3)}})
		})
	}
	for i := range 12 {
		if err := put(nodes[0], i, bot.StageAware); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := put(nodes[i%2], i, bot.Stages[i%len(bot.Stages)]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, s := range nodes {
		storagetest.CheckMemberIndex(t, s)
	}
	_ = nodes[1].View(ctx, func(tx bot.Tx) error {
		all, err := tx.(bot.MemberBits).TermBits(bot.BitAll)
		if err != nil || all.GetCardinality() != 12 || all.Minimum() != 16381 || all.Maximum() != 16392 {
			t.Errorf("numbers %v (%v)", all, err)
		}
		return nil
	})
}
