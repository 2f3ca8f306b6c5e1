package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/scenarios"
)

// TestGroupWelcomeTemplatesAndContactWays: serve pushes the scenario's
// customer-group welcome templates once (add, then the template id is kept
// across restarts), and `wecombot channel create` makes a contact me code
// for a channel's state through the running bot.
func TestGroupWelcomeTemplatesAndContactWays(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	env, _ := liveEnv(t, fake, t.TempDir())
	in := startServe(t, env)
	templates := len(scenarios.LoadDefault().GroupWelcomes)
	eventuallyT(t, "group welcome templates added", 5*time.Second, func() bool {
		return fake.Count(fakewecom.APIGroupWelcomeTemplateAdd) == templates
	})

	cli := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		err := run(context.Background(), append([]string{"channel"}, args...), func(k string) string { return e[k] },
			nil, &out, &errb)
		return out.String() + errb.String(), err
	}
	out, err := cli("create", "xhs", "--server", in.base)
	if err != nil || !strings.Contains(out, "qr_code:   https://wework.example/qr/cw-") {
		t.Fatalf("channel create: %v\n%s", err, out)
	}
	calls := fake.Calls(fakewecom.APIAddContactWay)
	if len(calls) != 1 || calls[0].Body["state"] != "xhs" {
		t.Fatalf("add_contact_way calls %+v", calls)
	}
	// Asking again for the same code answers from the store.
	if out2, err := cli("create", "xhs", "--server", in.base); err != nil || !strings.Contains(out2, "qr_code") {
		t.Fatalf("second create: %v %s", err, out2)
	}
	if n := fake.Count(fakewecom.APIAddContactWay); n != 1 {
		t.Fatalf("add_contact_way called %d times", n)
	}
	if out, err := cli("create", "no-such-channel", "--server", in.base); err == nil || !strings.Contains(out+err.Error(), "not a channel") {
		t.Fatalf("unknown state without staff accepted: %v %s", err, out)
	}
	list, err := cli("list", "--server", in.base)
	if err != nil || !strings.Contains(list, "xhs") || !strings.Contains(list, "https://wework.example/qr/") || !strings.Contains(list, "douyin") {
		t.Fatalf("channel list: %v\n%s", err, list)
	}

	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	in = startServe(t, env)
	in.waitDrained(t)
	if n := fake.Count(fakewecom.APIGroupWelcomeTemplateAdd) + fake.Count(fakewecom.APIGroupWelcomeTemplateEdit); n != templates {
		t.Fatalf("restart pushed the unchanged templates again: %d calls", n)
	}
}
