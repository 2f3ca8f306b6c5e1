package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// runCmd runs one wecombot command with env and returns its exit code and output.
func runCmd(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, nil, &out, &errb)
	if err != nil {
		fmt.Fprintln(&errb, err)
	}
	if err == nil {
		return 0, out.String(), errb.String()
	}
	return exitCode(err), out.String(), errb.String()
}

func withEnv(env map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// TestBackupWhileServingThenRestore: a backup taken from a serving bot (the
// file is locked, so it streams from the admin API) restores into a new data
// directory that then serves the same members and log, with no re-sends.
func TestBackupWhileServingThenRestore(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	env["WECOMBOT_ADMIN_TOKEN"] = "backup-admin-token-0123456789"
	in := startServe(t, env)
	for i := range 5 {
		in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: fmt.Sprintf("wm_b%d", i), State: "xhs", WelcomeCode: fmt.Sprintf("WC-B%d", i)}, 1)
	}
	eventuallyT(t, "welcomes sent", 10*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 5 })

	authGet := func(path string, v any) {
		req, _ := http.NewRequest(http.MethodGet, in.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+env["WECOMBOT_ADMIN_TOKEN"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	authStatus := func() map[string]any {
		var m map[string]any
		authGet("/api/v1/status", &m)
		return m
	}
	eventuallyT(t, "the log processed", 5*time.Second, func() bool { return num(authStatus(), "events", "pending") == 0 })
	// After each welcome the engine reads the customer's profile (due 1 s
	// later): wait until those are delivered, so the snapshot owes nothing due.
	eventuallyT(t, "profiles read", 10*time.Second, func() bool {
		var out struct {
			Actions []bot.Action `json:"actions"`
		}
		authGet("/api/v1/outbox?limit=1000", &out)
		sent := 0
		for _, a := range out.Actions {
			if a.Kind == bot.ActionContactProfile && a.Status == bot.ActionSent {
				sent++
			}
		}
		return sent == 5
	})
	lastSeq := num(authStatus(), "events", "last_seq")
	file := filepath.Join(t.TempDir(), "snap.db")
	// A wrong token is refused with a hint, and leaves no file behind.
	code, _, errs := runCmd(withEnv(env, "WECOMBOT_ADMIN_TOKEN", "wrong-token-wrong-token-wrong"), "backup", "--url", in.base, file)
	if code == 0 || !strings.Contains(errs, "WECOMBOT_ADMIN_TOKEN") {
		t.Fatalf("backup with a wrong token: exit %d, %s", code, errs)
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("a refused backup left a file")
	}
	code, out, errs := runCmd(env, "backup", "--url", in.base, file)
	if code != 0 || !strings.Contains(out, "running server") || !strings.Contains(out, "5 members") {
		t.Fatalf("backup while serving: exit %d\n%s%s", code, out, errs)
	}
	// The bot kept serving during and after the backup.
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_after", WelcomeCode: "WC-AFTER"}, 1)
	eventuallyT(t, "the welcome after the backup", 5*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 6 })

	// Restore is refused while a server holds the file.
	if code, _, errs := runCmd(env, "restore", file); code != exitLocked || !strings.Contains(errs, "stop it first") {
		t.Fatalf("restore while serving: exit %d %s", code, errs)
	}
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}

	// With the server stopped, backup reads the file directly.
	direct := filepath.Join(t.TempDir(), "direct.db")
	if code, out, errs := runCmd(env, "backup", direct); code != 0 || !strings.Contains(out, "no server running") || !strings.Contains(out, "6 members") {
		t.Fatalf("backup with the server stopped: exit %d\n%s%s", code, out, errs)
	}

	// Restore the first snapshot into a fresh directory and serve from it.
	fresh := withEnv(env, "WECOMBOT_DATA_DIR", t.TempDir())
	if code, out, errs := runCmd(fresh, "restore", file); code != 0 || !strings.Contains(out, "5 members") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
	}
	delete(fresh, "WECOMBOT_ADMIN_TOKEN") // loopback reads the status without one
	before := fake.Count("")
	in2 := startServe(t, fresh)
	st := in2.status(t)
	if num(st, "events", "last_seq") != lastSeq || num(st, "events", "pending") != 0 {
		t.Fatalf("restored status %v", st)
	}
	if code, body := in2.get(t, "/api/v1/members/wm_b3"); code != 200 || !strings.Contains(body, "wm_b3") {
		t.Fatalf("restored member: %d %s", code, body)
	}
	in2.waitDrained(t)
	if n := fake.Count("") - before; n > 1 { // at most a gettoken
		t.Fatalf("restoring a backup re-sent %d calls: %v", n, fake.Calls("")[before:])
	}
}

// TestRestoreRejectsBadInputAndKeepsTheCurrentFile: a file that is not a
// wecombot database is refused (exit 4) and the data directory is untouched.
func TestRestoreRejectsBadInputAndKeepsTheCurrentFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"WECOMBOT_DATA_DIR": dir}
	in := startServe(t, withEnv(env))
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "wecombot.db")
	orig, _ := os.ReadFile(db)
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"garbage":   {"restore", garbage},
		"missing":   {"restore", filepath.Join(t.TempDir(), "nope.db")},
		"no args":   {"restore"},
		"backup no": {"backup"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, errs := runCmd(env, args...)
			if code == 0 {
				t.Fatalf("exit 0; %s", errs)
			}
			if name == "garbage" && (code != exitStore || !strings.Contains(errs, "not a usable backup")) {
				t.Fatalf("exit %d %s", code, errs)
			}
		})
	}
	now, _ := os.ReadFile(db)
	if !bytes.Equal(orig, now) {
		t.Fatal("a refused restore changed the data file")
	}
	if code, _, errs := runCmd(map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()}, "backup", filepath.Join(t.TempDir(), "x.db")); code != exitStore || !strings.Contains(errs, "no database") {
		t.Fatalf("backup of an empty data dir: exit %d %s", code, errs)
	}
}
