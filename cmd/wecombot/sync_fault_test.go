package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// syncStatus reads GET /api/v1/sync from a running process ("" run when
// it doesn't answer yet).
func syncStatus(base string) (run engine.SyncRun, running bool) {
	resp, err := http.Get(base + "/api/v1/sync")
	if err != nil {
		return run, false
	}
	defer resp.Body.Close()
	var v struct {
		Running bool            `json:"running"`
		Run     *engine.SyncRun `json:"run"`
	}
	if json.NewDecoder(resp.Body).Decode(&v) != nil || v.Run == nil {
		return run, false
	}
	return *v.Run, v.Running
}

// TestSyncSurvivesKill9 kills the built binary with SIGKILL in the middle
// of the first start's sync (customer pages half read) and starts it again
// on the same data directory: the run resumes from its stored cursor and
// ends with exactly the fake's community — no member twice, none missing,
// nothing sent.
func TestSyncSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	wecombotBinary(t) // build before the clock matters
	fake := fakewecom.New(t)
	fake.SeedCommunity(syncCommunity)
	// Slow customer pages so the kill lands among them.
	fake.Delay(fakewecom.APIBatchGetByUser, 80*time.Millisecond)
	dir := t.TempDir()
	env, _ := liveEnv(t, fake, dir)
	delete(env, "WECOMBOT_SYNC_AT") // the first start imports the community
	env["WECOMBOT_SYNC_RATE"] = "100"
	env["WECOMBOT_LOG_LEVEL"] = "info"

	p := startProc(t, env)
	var before engine.SyncRun
	eventuallyT(t, "the sync to be half-way through the customer pages", 60*time.Second, func() bool {
		before, _ = syncStatus(p.base)
		return before.Phase == "customers" && before.Relations >= 1000
	})
	p.kill()
	if before.Done() {
		t.Fatal("the sync finished before the kill; slow the fake down")
	}

	p2 := startProc(t, env)
	var after engine.SyncRun
	eventuallyT(t, "the resumed sync to finish", 2*time.Minute, func() bool {
		var running bool
		after, running = syncStatus(p2.base)
		return after.Done() && !running
	})
	if after.ID != before.ID {
		t.Errorf("a new run %s started instead of resuming %s", after.ID, before.ID)
	}
	wantMembers := 2500 + 1200/10
	if after.New != wantMembers || after.Customers != wantMembers || after.Relations != 3000 || after.Groups != 40 {
		t.Errorf("resumed run counts: %+v (want %d new and seen, 3000 relations, 40 groups)", after, wantMembers)
	}
	if n := fake.SendCount(); n != 0 {
		t.Errorf("the fake received %d send calls", n)
	}
	p2.drained(t, time.Minute)
	p2.term(t)
	checkSyncedEqualsFake(t, fake, readSynced(t, dir))
}
