package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

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
				if i == 7 {
					failedRuns.Add(1)
					_ = tx.Put(bot.BucketScratch, "poison", []byte("x"))
					return boom
				}
				return tx.PutMember(&bot.Member{ExternalUserID: fmt.Sprintf("wm%02d", i)})
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
}
