package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestSandboxCallbackKfConversation: on a fresh sandbox, `wecombot callback
// kf --text` reaches the engine (the sandbox has no WeCom to pull from, so
// the text goes in as sync_msg would return it), and the offline model
// answers from the demo FAQ, once.
func TestSandboxCallbackKfConversation(t *testing.T) {
	t.Parallel()
	env := map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()}
	in := startServe(t, env)
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"callback", "kf", "--url", in.base, "--external-user", "wm_kf1", "--text", "可以开发票吗？"},
		func(k string) string { return env[k] }, nil, &out, &errb)
	if err != nil || !strings.Contains(out.String(), "sandbox") {
		t.Fatalf("callback kf: %v\n%s%s", err, out.String(), errb.String())
	}
	var body string
	eventuallyT(t, "the FAQ answer recorded by the sandbox", 10*time.Second, func() bool {
		_, body = in.get(t, "/api/v1/outbox?limit=100")
		return strings.Contains(body, "申请开票")
	})
	if n := strings.Count(body, "申请开票"); n != 1 {
		t.Fatalf("answer recorded %d times:\n%s", n, body)
	}
}
