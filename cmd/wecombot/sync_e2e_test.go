package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// syncCommunity is the Done-when community: 2,500 customers across 3 staff
// (every fifth in two staff members' lists), 40 groups with 1,200
// memberships (every tenth a customer who is no staff member's contact).
var syncCommunity = fakewecom.Community{
	Staff: 3, Customers: 2500, SharedEvery: 5,
	Groups: 40, GroupMembers: 1200, GroupOnlyEvery: 10,
	States:   []string{"xhs", "douyin", "store_poster", "unknown_state"},
	TagGroup: "客户画像", Tags: []string{"高意向", "老客户", "价格敏感"},
}

// syncedRun waits until the newest sync run is done and returns it.
func waitSyncDone(t *testing.T, base string, timeout time.Duration) engine.SyncRun {
	t.Helper()
	var run engine.SyncRun
	eventuallyT(t, "the sync to finish", timeout, func() bool {
		resp, err := http.Get(base + "/api/v1/sync")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v struct {
			Running bool            `json:"running"`
			Run     *engine.SyncRun `json:"run"`
		}
		if json.NewDecoder(resp.Body).Decode(&v) != nil || v.Run == nil {
			return false
		}
		if v.Run.Status == engine.SyncFailed {
			t.Fatalf("sync failed: %s", v.Run.Error)
		}
		run = *v.Run
		return run.Done() && !v.Running
	})
	return run
}

// syncedState is what the store holds after a sync, read with the server stopped.
type syncedState struct {
	members map[string]*bot.Member
	count   int
	groups  map[string]struct {
		Owner   string   `json:"owner"`
		Members []string `json:"members"`
	}
}

func readSynced(t *testing.T, dataDir string) syncedState {
	t.Helper()
	st, err := bolt.Open(filepath.Join(dataDir, "wecombot.db"), bolt.Options{OpenTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := syncedState{members: map[string]*bot.Member{}}
	s.groups = map[string]struct {
		Owner   string   `json:"owner"`
		Members []string `json:"members"`
	}{}
	err = st.View(context.Background(), func(tx bot.Tx) error {
		if err := tx.Members("", func(m *bot.Member) bool { s.members[m.ExternalUserID] = m; return true }); err != nil {
			return err
		}
		var err error
		if s.count, err = tx.MemberCount(); err != nil {
			return err
		}
		if err := tx.Scan(bot.BucketGroups, "", func(k string, v []byte) bool {
			g := s.groups[k]
			_ = json.Unmarshal(v, &g)
			s.groups[k] = g
			return true
		}); err != nil {
			return err
		}
		for k, g := range s.groups {
			if g.Members, err = engine.GroupMembers(tx, k); err != nil {
				return err
			}
			s.groups[k] = g
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkSyncedEqualsFake compares every member and group with the fake's data.
func checkSyncedEqualsFake(t *testing.T, fake *fakewecom.Server, s syncedState) {
	t.Helper()
	sc := scenarios.LoadDefault()
	tagName := map[string]string{}
	for _, g := range fake.TagGroups() {
		for _, tg := range g.Tags {
			tagName[tg.ID] = tg.Name
		}
	}
	inGroup := map[string][]string{}
	for _, g := range fake.GroupChats() {
		var customers []string
		for _, m := range g.Members {
			if m.Type == 2 {
				customers = append(customers, m.UserID)
				inGroup[m.UserID] = append(inGroup[m.UserID], g.ChatID)
			}
		}
		got, ok := s.groups[g.ChatID]
		if !ok || got.Owner != g.Owner || !slices.Equal(sorted(got.Members), sorted(customers)) {
			t.Errorf("group %s: owner %q members %d, want owner %q members %d", g.ChatID, got.Owner, len(got.Members), g.Owner, len(customers))
		}
	}
	want := map[string]bool{}
	bad := 0
	fail := func(format string, args ...any) {
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	for _, c := range fake.Customers() {
		want[c.ExternalUserID] = true
		m := s.members[c.ExternalUserID]
		if m == nil {
			fail("customer %s not imported", c.ExternalUserID)
			continue
		}
		if m.Name != c.Name || m.Lost {
			fail("%s: name %q lost %v, want %q", m.ExternalUserID, m.Name, m.Lost, c.Name)
		}
		var staff []string
		for _, f := range m.Follows {
			if f.Active() {
				staff = append(staff, f.StaffID)
			}
		}
		var wantStaff []string
		for _, f := range c.Follows {
			wantStaff = append(wantStaff, f.StaffID)
			got := m.Follow(f.StaffID)
			if got == nil || got.Remark != f.Remark || !got.AddedAt.Equal(f.AddedAt.Truncate(time.Second)) {
				fail("%s: follow %s = %+v, want remark %q added %s", m.ExternalUserID, f.StaffID, got, f.Remark, f.AddedAt)
			}
			for _, id := range f.TagIDs {
				if !m.HasTag(tagName[id]) {
					fail("%s: WeCom tag %s missing from %v", m.ExternalUserID, tagName[id], m.Tags)
				}
			}
		}
		if !slices.Equal(sorted(staff), sorted(wantStaff)) {
			fail("%s: staff %v, want %v", m.ExternalUserID, staff, wantStaff)
		}
		if st := c.Follows[0].State; m.State != st {
			fail("%s: state %q, want %q", m.ExternalUserID, m.State, st)
		} else if ch := sc.ChannelByState(st); ch != nil && (m.Channel != ch.Name || !m.HasTag(ch.Tags[0])) {
			fail("%s: channel %q tags %v, want %q with %v", m.ExternalUserID, m.Channel, m.Tags, ch.Name, ch.Tags)
		}
		checkImportedStage(t, m, len(inGroup[c.ExternalUserID]) > 0, fail)
	}
	for id, chats := range inGroup {
		m := s.members[id]
		if m == nil {
			fail("group member %s not imported", id)
			continue
		}
		want[id] = true
		if !slices.Equal(sorted(m.Groups), sorted(chats)) {
			fail("%s: groups %v, want %v", id, m.Groups, chats)
		}
		checkImportedStage(t, m, true, fail)
	}
	if len(s.members) != len(want) || s.count != len(want) {
		t.Errorf("%d members stored (counter %d), want %d", len(s.members), s.count, len(want))
	}
	if bad > 10 {
		t.Errorf("… %d mismatches in all", bad)
	}
}

func checkImportedStage(t *testing.T, m *bot.Member, inGroup bool, fail func(string, ...any)) {
	t.Helper()
	want := bot.StageAware
	if inGroup {
		want = bot.StageInterest
	}
	if m.Stage != want || len(m.StageHistory) == 0 || m.StageHistory[len(m.StageHistory)-1].Cause != engine.CauseImported {
		fail("%s: stage %q history %+v, want %q caused by %q", m.ExternalUserID, m.Stage, m.StageHistory, want, engine.CauseImported)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// TestSyncImportsTheExistingCommunity is the Done-when path through run():
// the first start with credentials imports 2,500 customers of 3 staff and
// 40 groups with 1,200 memberships; what the store holds equals the fake's
// data, nothing was sent to anyone, and `wecombot sync` a second time
// changes nothing.
func TestSyncImportsTheExistingCommunity(t *testing.T) {
	fake := fakewecom.New(t)
	fake.SeedCommunity(syncCommunity)
	dir := t.TempDir()
	env, _ := liveEnv(t, fake, dir)
	delete(env, "WECOMBOT_SYNC_AT") // the first start imports the community
	env["WECOMBOT_SYNC_RATE"] = "100"
	env["WECOMBOT_LOG_LEVEL"] = "info"
	in := startServe(t, env)
	run := waitSyncDone(t, in.base, 3*time.Minute)
	wantMembers := 2500 + 1200/10
	if run.New != wantMembers || run.Updated != 0 || run.Gone != 0 || run.Customers != wantMembers ||
		run.Relations != 2500+500 || run.Groups != 40 || run.GroupsNew != 40 || run.Trigger != "first_start" {
		t.Errorf("first run: %+v", run)
	}
	if n := fake.SendCount(); n != 0 {
		t.Errorf("the fake received %d send calls; imported members must get nothing", n)
	}
	calls := fake.Count("")
	t.Logf("first sync: %d customers, %d relations, %d groups, %d WeCom calls in all (incl. mark_tag write-back)", run.Customers, run.Relations, run.Groups, calls)
	if got := fake.Count(fakewecom.APIBatchGetByUser); got != (2500+500+99)/100 {
		t.Errorf("%d batch/get_by_user calls, want %d (pages of 100)", got, (2500+500+99)/100)
	}

	if _, metrics := in.get(t, "/metrics"); !strings.Contains(metrics, `wecombot_sync_runs_total{result="done"} 1`) ||
		!strings.Contains(metrics, `wecombot_sync_changes_total{change="new",item="member"} 2620`) ||
		!strings.Contains(metrics, "wecombot_sync_progress_ratio 1") {
		t.Errorf("sync metrics missing from /metrics")
	}

	// The second sync, from the CLI, changes nothing.
	drainOutbox(t, in.base, 2*time.Minute)
	var out bytes.Buffer
	getenv := func(k string) string { return env[k] }
	if err := runSync(t, getenv, in.base, &out); err != nil {
		t.Fatalf("wecombot sync: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("done: %d customers (0 new, 0 updated, 0 gone), 40 groups (0 new, 0 updated, 0 gone)", wantMembers)) {
		t.Errorf("second sync output:\n%s", out.String())
	}
	if n := fake.SendCount(); n != 0 {
		t.Errorf("the fake received %d send calls", n)
	}
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	checkSyncedEqualsFake(t, fake, readSynced(t, dir))
}

func runSync(t *testing.T, getenv func(string) string, base string, out *bytes.Buffer) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return run(ctx, []string{"sync", "--server", base}, getenv, nil, out, out)
}

// drainOutbox waits until no outbox action is pending (the import's tag write-back).
func drainOutbox(t *testing.T, base string, timeout time.Duration) {
	t.Helper()
	eventuallyT(t, "the outbox to drain", timeout, func() bool {
		resp, err := http.Get(base + "/api/v1/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st map[string]any
		if json.NewDecoder(resp.Body).Decode(&st) != nil {
			return false
		}
		return num(st, "outbox", "pending") == 0 && num(st, "events", "pending") == 0
	})
}
