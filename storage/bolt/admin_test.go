package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

func TestConsoleReads(t *testing.T) {
	ctx := context.Background()
	st, err := Open(filepath.Join(t.TempDir(), "a.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// 30 events: every third about wm1, one group change naming wm1 among others.
	for i := range 30 {
		ev := &bot.Event{Type: bot.EventKfText, Source: bot.SourceSim, ExternalUserID: fmt.Sprintf("wm%d", 1+i%3), Content: fmt.Sprint(i)}
		if i == 29 {
			ev = &bot.Event{Type: bot.EventGroupUpdate, Source: bot.SourceSim, ChatID: "wr1", MemChangeList: []string{"wm9", "wm1"}}
		}
		if _, err := st.AppendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := st.RecentMemberEvents(ctx, "wm1", 100, 1000)
	if err != nil || len(evs) != 11 || evs[0].Type != bot.EventGroupUpdate || evs[1].Content != "27" {
		t.Fatalf("member events: %v %+v", err, evs)
	}
	if evs, _ := st.RecentMemberEvents(ctx, "wm1", 3, 1000); len(evs) != 3 {
		t.Errorf("limit: %d", len(evs))
	}
	// The window bounds the scan: the newest 6 events hold three of wm1's.
	if evs, _ := st.RecentMemberEvents(ctx, "wm1", 100, 6); len(evs) != 3 {
		t.Errorf("window: %d", len(evs))
	}
	// A prefix of another id does not match.
	if evs, _ := st.RecentMemberEvents(ctx, "wm", 100, 1000); len(evs) != 0 {
		t.Errorf("prefix matched: %d", len(evs))
	}

	var ids []uint64
	err = st.Update(ctx, func(tx bot.Tx) error {
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
	if acts, _ := st.RecentMemberActions(ctx, "wm2", 10, 100); len(acts) != 2 || acts[0].ID != ids[3] {
		t.Errorf("member actions: %+v", acts)
	}
	now := time.Now()
	if err := st.MarkFailed(ctx, ids[1], now, "errcode 84061"); err != nil {
		t.Fatal(err)
	}
	failed, _ := st.RecentFailedActions(ctx, 10, 100)
	if len(failed) != 1 || failed[0].ID != ids[1] {
		t.Fatalf("failed: %+v", failed)
	}
	a, err := st.RetryAction(ctx, ids[1], now)
	if err != nil || a.Status != bot.ActionPending || a.LastError != "errcode 84061" {
		t.Fatalf("retry: %v %+v", err, a)
	}
	ob, _ := st.OutboxStats(ctx)
	if ob.Failed != 0 || ob.Pending != 4 {
		t.Errorf("stats after retry: %+v", ob)
	}
	due, _ := st.DueActions(ctx, now, 10)
	if len(due) != 4 {
		t.Errorf("retried action not due: %d", len(due))
	}
	if _, err := st.RetryAction(ctx, ids[1], now); !errors.Is(err, bot.ErrConflict) {
		t.Errorf("retrying a pending action: %v", err)
	}
	if _, err := st.RetryAction(ctx, 999, now); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("retrying a missing action: %v", err)
	}
}
