package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// TestBatchCommitsConcurrentWorkAndIsolatesAFailure: concurrent Batch calls
// all commit; one that fails runs exactly once, returns its own error and
// takes nothing of the others down with it.
func TestBatchCommitsConcurrentWorkAndIsolatesAFailure(t *testing.T) {
	t.Parallel()
	st, err := Open(filepath.Join(t.TempDir(), "t.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	boom := errors.New("boom")
	var failedRuns atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.Batch(ctx, func(tx bot.Tx) error {
				// Each stores a member and owes an action (the counters a
				// transaction keeps and stores when its function returns).
				if err := tx.PutMember(&bot.Member{ExternalUserID: fmt.Sprintf("wm%02d", i)}); err != nil {
					return err
				}
				a, _ := bot.NewAction(bot.ActionWelcome, fmt.Sprint("welcome|", i), bot.WelcomeMessage{WelcomeCode: "c"})
				if _, err := tx.Enqueue(a); err != nil {
					return err
				}
				if i == 7 {
					failedRuns.Add(1)
					_ = tx.Put(bot.BucketScratch, "poison", []byte("x"))
					return boom
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i == 7) != errors.Is(err, boom) || (i != 7 && err != nil) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := failedRuns.Load(); n != 1 {
		t.Fatalf("the failing function ran %d times, want 1", n)
	}
	_ = st.View(ctx, func(tx bot.Tx) error {
		if n, _ := tx.MemberCount(); n != 49 {
			t.Errorf("members %d, want 49", n)
		}
		if v, _ := tx.Get(bot.BucketScratch, "poison"); v != nil {
			t.Error("the failed function's write committed")
		}
		return nil
	})
	if ob, _ := st.OutboxStats(ctx); ob.Pending != 49 {
		t.Errorf("outbox pending %d, want 49", ob.Pending)
	}
	if acts, _ := st.DueActions(ctx, time.Now().Add(time.Hour), 100); len(acts) != 49 {
		t.Errorf("%d actions stored, want 49", len(acts))
	}
}

// TestGroupCommitFormsTheNextGroupWhileOneCommits: the first writer
// commits at once, alone (no waiting for company); writers arriving while
// its transaction runs queue up and all commit together in the next
// transaction, led by the first of them; each gets its own result.
func TestGroupCommitFormsTheNextGroupWhileOneCommits(t *testing.T) {
	t.Parallel()
	st, err := Open(filepath.Join(t.TempDir(), "t.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	inFirst, release := make(chan struct{}), make(chan struct{})
	var firstTx int
	firstDone := make(chan error)
	go func() {
		firstDone <- st.Batch(ctx, func(tx bot.Tx) error {
			firstTx = tx.(*boltTx).tx.ID()
			close(inFirst)
			<-release
			return nil
		})
	}()
	<-inFirst
	const n = 10
	txs := make([]int, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- st.Batch(ctx, func(tx bot.Tx) error {
				txs[i] = tx.(*boltTx).tx.ID()
				return tx.PutMember(&bot.Member{ExternalUserID: fmt.Sprintf("wm%02d", i)})
			})
		}()
	}
	// Wait until all n are queued behind the first transaction.
	for {
		st.gc.mu.Lock()
		queued := len(st.gc.pending)
		st.gc.mu.Unlock()
		if queued == n {
			break
		}
		runtime.Gosched()
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range txs {
		if id != txs[0] || id == firstTx {
			t.Fatalf("writer %d committed in tx %d; the first writer's tx %d, the others' %v: want all %d queued writers in one next transaction", i, id, firstTx, txs, n)
		}
	}
	_ = st.View(ctx, func(tx bot.Tx) error {
		if c, _ := tx.MemberCount(); c != n {
			t.Errorf("members %d, want %d", c, n)
		}
		return nil
	})
}
