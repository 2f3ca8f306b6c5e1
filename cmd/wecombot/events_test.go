package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/storage/bolt"
)

// TestEventsRetryReplaysFailedEvents: an add recorded as failed (as a
// handler bug would leave it) is listed by `wecombot events failed` and
// replayed by `wecombot events retry --all` through the running bot: the
// member appears and the welcome goes out once; a second retry finds
// nothing; a bad SEQ and a missing argument are usage errors.
func TestEventsRetryReplaysFailedEvents(t *testing.T) {
	fake := fakewecom.New(t)
	dir := t.TempDir()
	env, _ := liveEnv(t, fake, dir)
	st, err := bolt.Open(filepath.Join(dir, "wecombot.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := bot.Event{Type: bot.EventContactAdd, Source: bot.SourceWeCom, StaffID: "zhangsan", ExternalUserID: "wm_failed",
		WelcomeCode: "WC-FAILED", At: time.Now(), DedupeKey: "test|failed"}
	if _, err := st.AppendEvent(context.Background(), &ev); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(context.Background(), func(tx bot.Tx) error {
		_, err := tx.MarkProcessed(ev.Seq, "handler failed 3 times: a bug, since fixed")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	in := startServe(t, env)
	cli := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"events"}, args...), func(k string) string { return env[k] }, nil, &out, &errb)
		return out.String() + errb.String(), err
	}
	out, err := cli("failed", "--server", in.base)
	if err != nil || !strings.Contains(out, "wm_failed") || !strings.Contains(out, "a bug, since fixed") {
		t.Fatalf("events failed: %v\n%s", err, out)
	}
	if out, err := cli("retry", "--server", in.base); err == nil {
		t.Fatalf("retry without SEQ or --all accepted: %s", out)
	}
	if out, err := cli("retry", "x", "--server", in.base); err == nil {
		t.Fatalf("retry x accepted: %s", out)
	}
	if out, err := cli("retry", "999", "--server", in.base); err == nil || !strings.Contains(out+err.Error(), "404") {
		t.Fatalf("retry of an unknown seq: %v %s", err, out)
	}
	out, err = cli("retry", "--all", "--server", in.base)
	if err != nil || !strings.Contains(out, "1 failed event") {
		t.Fatalf("events retry --all: %v\n%s", err, out)
	}
	eventuallyT(t, "the replayed add's welcome", 10*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 1 })
	if code, body := in.get(t, "/api/v1/members/wm_failed"); code != 200 {
		t.Fatalf("member after replay: %d %s", code, body)
	}
	if out, err := cli("retry", fmt.Sprint(ev.Seq), "--server", in.base); err == nil || !strings.Contains(out+err.Error(), "409") {
		t.Fatalf("retry of a processed event: %v %s", err, out)
	}
	st2 := in.status(t)
	if num(st2, "events", "failed") != 0 {
		t.Fatalf("status after replay: %v", st2["events"])
	}
}
