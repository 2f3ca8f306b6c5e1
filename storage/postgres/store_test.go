package postgres

import (
	"context"
	"errors"
	"os"
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
	// Back to schema 4, the history gone, then migrate again.
	pgtest.Exec(t, url, `DROP TABLE member_events; DROP INDEX outbox_member; ALTER TABLE outbox DROP COLUMN member; DELETE FROM schema_migrations WHERE version = 5`)
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
