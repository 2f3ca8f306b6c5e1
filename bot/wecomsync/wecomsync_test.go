package wecomsync_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/bot/wecomsync"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// harness is the real pipeline, engine and WeCom client on a temp store,
// against the fake; backoff is instant so fault tests take milliseconds.
type harness struct {
	fake   *fakewecom.Server
	store  *bolt.Store
	syncer *wecomsync.Syncer
	opts   wecomsync.Options
	waits  []time.Duration
}

func newHarness(t testing.TB, community fakewecom.Community) *harness {
	t.Helper()
	fake := fakewecom.New(t)
	fake.SeedCommunity(community)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "wecombot.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sc := scenarios.LoadDefault()
	eng := engine.New(func() *scenarios.Scenario { return sc }, zerolog.Nop(), time.Now)
	client, err := wecomapi.New(wecomapi.Config{CorpID: "ww_sync", Secret: "s", APIBase: fake.URL(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	pl := pipeline.New(pipeline.Options{Store: st, Handle: eng.Handle, Sender: client, Log: zerolog.Nop(), PollInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h := &harness{fake: fake, store: st}
	h.opts = wecomsync.Options{Source: client, Store: st, Notify: pl.NotifyEvent, Log: zerolog.Nop(), Rate: 1000,
		Backoff: func(n int) time.Duration {
			h.waits = append(h.waits, time.Duration(n)*time.Millisecond)
			return time.Millisecond
		}}
	h.syncer = wecomsync.New(h.opts)
	return h
}

// withRate returns a syncer pacing its calls at rate per second.
func (h *harness) withRate(rate float64) *wecomsync.Syncer {
	o := h.opts
	o.Rate = rate
	return wecomsync.New(o)
}

func (h *harness) run(t testing.TB) (*engine.SyncRun, error) {
	t.Helper()
	return h.runFor(t, time.Minute)
}

func (h *harness) runFor(t testing.TB, d time.Duration) (*engine.SyncRun, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return h.syncer.Run(ctx, "test")
}

func (h *harness) member(t *testing.T, id string) *bot.Member {
	t.Helper()
	var m *bot.Member
	err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { m, err = tx.Member(id); return err })
	if err != nil {
		t.Fatalf("member %s: %v", id, err)
	}
	return m
}

var small = fakewecom.Community{Staff: 3, Customers: 250, SharedEvery: 5, Groups: 4, GroupMembers: 40, GroupOnlyEvery: 10,
	States: []string{"xhs"}, TagGroup: "客户画像", Tags: []string{"高意向"}}

// TestSyncReportsGoneAndChanged: after the first run, a customer who
// deleted their only staff member is gone (lost, history kept), one who
// deleted one of two is unfollowed, a changed remark counts as updated.
func TestSyncReportsGoneAndChanged(t *testing.T) {
	h := newHarness(t, small)
	first, err := h.run(t)
	if err != nil || first.New != 250+4 || first.Gone != 0 {
		t.Fatalf("first run: %+v, %v", first, err)
	}
	gone, half, edited := fakewecom.CustomerID(1), fakewecom.CustomerID(5), fakewecom.CustomerID(2)
	h.fake.RemoveFollow(gone, fakewecom.StaffID(1))
	h.fake.RemoveFollow(half, fakewecom.StaffID(0))
	h.fake.SetFollow(edited, fakewecom.StaffID(2), "新备注")
	second, err := h.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if second.New != 0 || second.Updated != 1 || second.Gone != 1 || second.Unfollowed != 1 {
		t.Errorf("second run: new %d updated %d gone %d unfollowed %d, want 0 1 1 1", second.New, second.Updated, second.Gone, second.Unfollowed)
	}
	if m := h.member(t, gone); !m.Lost || m.HasActiveFollow() || len(m.StageHistory) == 0 || !m.HasTag("AIPL-流失") {
		t.Errorf("gone member: lost %v active %v history %d tags %v", m.Lost, m.HasActiveFollow(), len(m.StageHistory), m.Tags)
	}
	if m := h.member(t, half); m.Lost || m.Follow(fakewecom.StaffID(0)).Active() || !m.Follow(fakewecom.StaffID(2)).Active() {
		t.Errorf("member who deleted one of two staff: %+v", m.Follows)
	}
	if f := h.member(t, edited).Follow(fakewecom.StaffID(2)); f == nil || f.Remark != "新备注" {
		t.Errorf("edited remark: %+v", f)
	}
	third, err := h.run(t)
	if err != nil || third.New != 0 || third.Updated != 0 || third.Gone != 0 || third.Unfollowed != 0 {
		t.Errorf("third run changed something: %+v, %v", third, err)
	}
}

// TestSyncRetriesBusyPagesAndNeverSkips: -1 and 45009 on customer and group
// pages are retried with backoff; every customer arrives.
func TestSyncRetriesBusyPagesAndNeverSkips(t *testing.T) {
	h := newHarness(t, small)
	h.fake.FailNext(fakewecom.APIBatchGetByUser, -1, 2)
	h.fake.FailNext(fakewecom.APIGroupChatList, 45009, 1)
	h.fake.FailNext(fakewecom.APIGroupChatGet, 45033, 1)
	run, err := h.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if run.New != 254 || run.Relations != 300 || run.Groups != 4 {
		t.Errorf("run after faults: %+v", run)
	}
	// One backoff per failed call, plus waits out the client's hold of a
	// rate-limited API (nothing is sent while it holds).
	if len(h.waits) < 4 {
		t.Errorf("%d backoffs, want at least 4 (one per failed call)", len(h.waits))
	}
}

// TestSyncPermissionErrors: 48002 stops the run naming the permission to
// grant, and the next run resumes once it is granted; staff outside the
// visible range (60011) are reported and their customers not imported.
func TestSyncPermissionErrors(t *testing.T) {
	h := newHarness(t, small)
	h.fake.Forbid(fakewecom.APIGetFollowUserList)
	run, err := h.run(t)
	if err == nil || run == nil || run.Status != engine.SyncFailed || !strings.Contains(run.Error, "客户联系") || !strings.Contains(run.Error, "48002") {
		t.Fatalf("forbidden: run %+v err %v, want a failed run naming 客户联系 and 48002", run, err)
	}
	var apiErr *wecomapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 48002 {
		t.Errorf("error %v is not the 48002 APIError", err)
	}
	h.fake.Allow(fakewecom.APIGetFollowUserList)
	h.fake.SetOutOfRange(fakewecom.StaffID(2))
	again, err := h.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != run.ID || !again.Done() {
		t.Errorf("second start did not resume run %s: %+v", run.ID, again)
	}
	if len(again.OutOfRange) != 1 || again.OutOfRange[0] != fakewecom.StaffID(2) {
		t.Errorf("out of range: %v, want [%s]", again.OutOfRange, fakewecom.StaffID(2))
	}
	// Customers only staff 3 has are not imported (group members still are).
	inGroup := map[string]bool{}
	for _, g := range h.fake.GroupChats() {
		for _, m := range g.Members {
			inGroup[m.UserID] = true
		}
	}
	var onlyThird string
	for i := 2; i < 250; i += 3 {
		if i%5 != 0 && !inGroup[fakewecom.CustomerID(i)] {
			onlyThird = fakewecom.CustomerID(i)
			break
		}
	}
	err = h.store.View(context.Background(), func(tx bot.Tx) error {
		_, err := tx.Member(onlyThird)
		return err
	})
	if !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("customer %s of the out-of-range staff member was imported (err %v)", onlyThird, err)
	}
}
