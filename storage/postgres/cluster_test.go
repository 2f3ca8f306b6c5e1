package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/postgres/pgtest"
)

var bg = context.Background()

// nodes opens n stores on one database, as n wecombot nodes would.
func nodes(t *testing.T, n int, ttl time.Duration) []*Store {
	t.Helper()
	url := pgtest.Database(t)
	var out []*Store
	for i := 0; i < n; i++ {
		s, err := Open(bg, url, Options{NodeID: fmt.Sprint("node-", i), LeaseTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

func beatAll(t *testing.T, ss []*Store) [][]int {
	t.Helper()
	owned := make([][]int, len(ss))
	for round := 0; round < 3; round++ { // joins and releases settle in a few rounds
		for i, s := range ss {
			o, err := s.Heartbeat(bg)
			if err != nil {
				t.Fatal(err)
			}
			owned[i] = o
		}
	}
	return owned
}

func checkCover(t *testing.T, owned [][]int, minEach int) {
	t.Helper()
	seen := map[int]int{}
	for i, o := range owned {
		if len(o) < minEach {
			t.Errorf("node %d owns %d partitions, want ≥ %d: %v", i, len(o), minEach, o)
		}
		for _, p := range o {
			seen[p]++
		}
	}
	for p := 0; p < Partitions; p++ {
		if seen[p] != 1 {
			t.Errorf("partition %d owned by %d nodes, want exactly 1", p, seen[p])
		}
	}
}

// TestPartitionLeases: live nodes split the partitions fairly, each owned
// by exactly one; a node that stops heartbeating (killed) loses its
// partitions to the others once the lease lapses, and its transactions
// on them commit nothing (fenced).
func TestPartitionLeases(t *testing.T) {
	ss := nodes(t, 3, time.Second)
	owned := beatAll(t, ss)
	checkCover(t, owned, 20) // ceil(64/3) = 22 each for the first two, the rest for the third

	// An event of a partition node 2 owns: node 2 may apply it, node 0 may not.
	part := owned[2][0]
	var fenced error = ss[0].UpdateOwned(bg, part, func(tx bot.Tx) error { return tx.Put(bot.BucketScratch, "y", nil) })
	if !errors.Is(fenced, bot.ErrNotOwner) {
		t.Fatalf("a non-owner's update: %v, want ErrNotOwner", fenced)
	}
	if err := ss[2].UpdateOwned(bg, part, func(tx bot.Tx) error { return tx.Put(bot.BucketScratch, "y", nil) }); err != nil {
		t.Fatal(err)
	}

	// Node 2 dies (stops heartbeating): within the lease its partitions move.
	start := time.Now()
	var survivors [][]int
	for {
		survivors = beatAll(t, ss[:2])
		if len(survivors[0])+len(survivors[1]) == Partitions {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("survivors own %d+%d partitions 10 s after a node died", len(survivors[0]), len(survivors[1]))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("a dead node's partitions moved in %v (lease 1 s)", time.Since(start).Round(10*time.Millisecond))
	checkCover(t, survivors, 32)
	if err := ss[2].UpdateOwned(bg, part, func(tx bot.Tx) error { return tx.Put(bot.BucketScratch, "z", nil) }); !errors.Is(err, bot.ErrNotOwner) {
		t.Fatalf("the dead node's late transaction: %v, want ErrNotOwner", err)
	}

	// A node leaving cleanly hands over at once.
	if err := ss[1].Leave(bg); err != nil {
		t.Fatal(err)
	}
	if o, _ := ss[0].Heartbeat(bg); len(o) != Partitions {
		t.Fatalf("after the other left, node 0 owns %d partitions", len(o))
	}
}

// TestClaimDueNeverTwice: nodes claiming at once each get different
// actions (SKIP LOCKED); a claimed action is not handed out again until
// its lease lapses; a marked one never is.
func TestClaimDueNeverTwice(t *testing.T) {
	ss := nodes(t, 3, time.Second)
	now := time.Now()
	const n = 150
	if err := ss[0].Update(bg, func(tx bot.Tx) error {
		for i := 0; i < n; i++ {
			a, _ := bot.NewAction(bot.ActionKfMessage, fmt.Sprint("a", i), bot.KfMessage{Text: "x"})
			a.DueAt = now.Add(-time.Duration(n-i) * time.Millisecond)
			if i%10 == 0 {
				a.NotAfter = now.Add(time.Minute)
			}
			if _, err := tx.Enqueue(a); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	claims := map[uint64]int{}
	var wg sync.WaitGroup
	var firstBatchUrgent atomic.Bool
	for _, s := range ss {
		wg.Add(1)
		go func(s *Store) {
			defer wg.Done()
			for {
				acts, err := s.ClaimDue(bg, now, 7, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(acts) == 0 {
					return
				}
				mu.Lock()
				if len(claims) == 0 && !acts[0].NotAfter.IsZero() {
					firstBatchUrgent.Store(true)
				}
				for _, a := range acts {
					claims[a.ID]++
				}
				mu.Unlock()
			}
		}(s)
	}
	wg.Wait()
	if len(claims) != n {
		t.Fatalf("%d actions claimed, want %d", len(claims), n)
	}
	for id, c := range claims {
		if c != 1 {
			t.Fatalf("action %d claimed %d times", id, c)
		}
	}
	if !firstBatchUrgent.Load() {
		t.Error("actions with a deadline are not claimed first")
	}
	// A short lease lapses and the action is claimable again; once sent, never.
	acts, err := ss[0].DueActions(bg, now, 2)
	if err != nil || len(acts) != 2 {
		t.Fatal(acts, err)
	}
	if _, err := ss[0].pool.Exec(bg, `UPDATE outbox SET lease_until = now() - interval '1 second' WHERE id = ANY($1)`, []int64{int64(acts[0].ID), int64(acts[1].ID)}); err != nil {
		t.Fatal(err)
	}
	if err := ss[1].MarkSent(bg, acts[1].ID, now, ""); err != nil {
		t.Fatal(err)
	}
	again, err := ss[2].ClaimDue(bg, now, 10, time.Minute)
	if err != nil || len(again) != 1 || again[0].ID != acts[0].ID {
		t.Fatalf("after a lapsed lease: %+v %v, want only action %d", again, err, acts[0].ID)
	}
}

// TestWakeupsAcrossNodes: an append or enqueue on one node wakes the
// others through LISTEN/NOTIFY.
func TestWakeupsAcrossNodes(t *testing.T) {
	ss := nodes(t, 2, time.Second)
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	evs, outs := make(chan struct{}, 100), make(chan struct{}, 100)
	go ss[1].Listen(ctx, func() { evs <- struct{}{} }, func() { outs <- struct{}{} })
	wait := func(ch chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s wake-up within 10 s", what)
		}
	}
	wait(evs, "initial") // the listener wakes once when it (re)connects
	wait(outs, "initial")
	if _, err := ss[0].AppendEvent(bg, &bot.Event{Type: bot.EventAppText, DedupeKey: "k"}); err != nil {
		t.Fatal(err)
	}
	wait(evs, "event")
	if err := ss[0].Update(bg, func(tx bot.Tx) error {
		a, _ := bot.NewAction(bot.ActionKfMessage, "k", bot.KfMessage{})
		_, err := tx.Enqueue(a)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	wait(outs, "outbox")
}

// TestLockAcrossNodes: the advisory lock admits one node at a time.
func TestLockAcrossNodes(t *testing.T) {
	ss := nodes(t, 2, time.Second)
	release, err := ss[0].Lock(bg, "kf_cursor:wk1")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		r, err := ss[1].Lock(bg, "kf_cursor:wk1")
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("a second node took a held lock")
	case <-time.After(200 * time.Millisecond): // the second node must be waiting
	}
	other, err := ss[0].Lock(bg, "kf_cursor:wk2") // another name is free
	if err != nil {
		t.Fatal(err)
	}
	other()
	release()
	select {
	case r := <-got:
		r()
	case <-time.After(10 * time.Second):
		t.Fatal("the lock was not handed over after release")
	}
}
