package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/storage/postgres/pgtest"
)

// TestServeOnPostgres: with WECOMBOT_DATABASE_URL set, serve keeps
// everything in PostgreSQL (schema created on start): a signed add
// delivered three times yields one welcome; a restart on the same database
// (a fresh data directory: nothing lives there) re-runs and re-sends nothing;
// backup points at pg_dump.
func TestServeOnPostgres(t *testing.T) {
	dbURL := pgtest.Database(t)
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	env["WECOMBOT_DATABASE_URL"] = dbURL
	in := startServe(t, env)
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_alice", State: "xhs", WelcomeCode: "WELCOME-ALICE"}, 3)
	eventuallyT(t, "welcome and tags sent", 10*time.Second, func() bool {
		return fake.Count(fakewecom.APISendWelcomeMsg) == 1 && fake.Count(fakewecom.APIMarkTag) == 1
	})
	code, body := in.get(t, "/api/v1/members/wm_alice")
	if code != 200 || !strings.Contains(body, `"stage":"aware"`) {
		t.Fatalf("member: %d %s", code, body)
	}
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	env["WECOMBOT_DATA_DIR"] = t.TempDir()
	in = startServe(t, env)
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_bob", State: "xhs", WelcomeCode: "WELCOME-BOB"}, 1)
	eventuallyT(t, "bob's welcome", 10*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 2 })
	if code, body := in.get(t, "/api/v1/members/wm_alice"); code != http.StatusOK || !strings.Contains(body, "wm_alice") {
		t.Fatalf("alice after restart on a new data dir: %d %s", code, body)
	}
	if n := fake.Count(fakewecom.APISendWelcomeMsg); n != 2 {
		t.Fatalf("welcomes %d, want 2 (one each)", n)
	}
	if strings.Contains(in.logs.String(), dbURL) {
		t.Fatal("the database URL reached the logs")
	}
	var out, errb syncBuffer
	err := run(t.Context(), []string{"backup", "x.db"}, func(k string) string { return env[k] }, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("backup with Postgres: %v", err)
	}
}
