package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/storage/postgres"
	"github.com/wecombot/wecombot/storage/postgres/pgtest"
)

// TestNodesShareOneStore: three pipelines on one PostgreSQL database, as
// three nodes. Events for 40 members arrive on all of them while one node
// leaves half-way and another joins: every event is applied exactly once,
// each member's events in sequence order, and every owed action is
// delivered once, by some node.
func TestNodesShareOneStore(t *testing.T) {
	url := pgtest.Database(t)
	open := func(id string) *postgres.Store {
		s, err := postgres.Open(context.Background(), url, postgres.Options{NodeID: id, LeaseTTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	var mu sync.Mutex
	applied := map[uint64]int{}
	outOfOrder := 0
	handle := func(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
		m, err := tx.Member(ev.ExternalUserID)
		if err != nil {
			m = &bot.Member{ExternalUserID: ev.ExternalUserID}
		}
		n, _ := strconv.Atoi(ev.Data["n"])
		if int(m.Points) != n { // the member's previous event was not applied first
			mu.Lock()
			outOfOrder++
			mu.Unlock()
		}
		m.Points = int64(n + 1)
		if err := tx.PutMember(m); err != nil {
			return err
		}
		a, _ := bot.NewAction(bot.ActionStaffMessage, fmt.Sprint("ack-", ev.Seq), bot.StaffMessage{Text: "x"})
		if _, err := tx.Enqueue(a); err != nil {
			return err
		}
		pipeline.AfterCommit(ctx, func() { mu.Lock(); applied[ev.Seq]++; mu.Unlock() })
		return nil
	}
	rec := newRecorder()
	start := func(s *postgres.Store) func() {
		_, stop := run(t, pipeline.Options{Store: s, Handle: handle, Sender: rec, Heartbeat: 100 * time.Millisecond, Workers: 4})
		return stop
	}
	stores := []*postgres.Store{open("a"), open("b"), open("c")}
	stopA, stopB := start(stores[0]), start(stores[1])
	const members, each = 40, 6
	appendAll := func(from, to int) {
		for n := from; n < to; n++ {
			for m := 0; m < members; m++ {
				ev := &bot.Event{Type: bot.EventAppText, Source: bot.SourceSim, ExternalUserID: fmt.Sprint("wm", m),
					DedupeKey: fmt.Sprintf("e-%d-%d", m, n), Data: map[string]string{"n": strconv.Itoa(n)}}
				if _, err := stores[(m+n)%3].AppendEvent(context.Background(), ev); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	appendAll(0, 3)
	stopA() // a node leaves (its partitions are released at once)
	stopC := start(stores[2])
	appendAll(3, each)
	deadline := time.Now().Add(60 * time.Second) // generous: the machine may be busy; done in ~3 s when idle
	for !func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(applied) == members*each && len(rec.sentKeys()) == members*each
	}() {
		if time.Now().After(deadline) {
			mu.Lock()
			got := len(applied)
			mu.Unlock()
			t.Fatalf("after 60 s: %d of %d events applied, %d actions sent", got, members*each, len(rec.sentKeys()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopB()
	stopC()
	mu.Lock()
	defer mu.Unlock()
	for seq, n := range applied {
		if n != 1 {
			t.Errorf("event %d applied %d times", seq, n)
		}
	}
	if outOfOrder != 0 {
		t.Errorf("%d events applied before their member's previous one", outOfOrder)
	}
	for k, n := range rec.sentKeys() {
		if n != 1 {
			t.Errorf("action %s sent %d times", k, n)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}
