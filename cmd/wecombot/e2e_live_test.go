package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/scenarios"
)

// liveEnv configures a live (non-sandbox) bot against the fake WeCom API.
func liveEnv(t *testing.T, fake *fakewecom.Server, dataDir string) (map[string]string, *wecom.Crypter) {
	t.Helper()
	const corp, token = "ww_e2e_corp", "e2eToken"
	aesKey := strings.Repeat("Q", 42) + "A"
	fake.SetCredentials(corp, "e2e-secret")
	c, err := wecom.NewCrypter(token, aesKey, corp)
	if err != nil {
		t.Fatal(err)
	}
	fakeOf.Store(c, fake)
	t.Cleanup(func() { fakeOf.Delete(c) })
	return map[string]string{
		"WECOMBOT_DATA_DIR": dataDir,
		"WECOM_CORP_ID":     corp,
		"WECOM_AGENT_ID":    "1000002",
		"WECOM_SECRET":      "e2e-secret",
		"WECOM_TOKEN":       token,
		"WECOM_AES_KEY":     aesKey,
		"WECOM_API_BASE":    fake.URL(),
		// No automatic import of the fake's (empty) community: tests
		// counting events or calls would see the sync's. Sync tests turn it on.
		"WECOMBOT_SYNC_AT": "off",
	}, c
}

// fakeOf is the fake WeCom behind each crypter liveEnv made: signEvent
// tells it the welcome codes it "hands out", so the fake refuses each code
// 20 s after its add, as WeCom does.
var fakeOf sync.Map // *wecom.Crypter → *fakewecom.Server

// signEvent seals one callback for c's corp (CreateTime now unless ev.At
// is set) and returns the signed path and encrypted body WeCom would POST.
// A contact add's welcome code starts its 20 s now on c's fake WeCom's clock.
func signEvent(t *testing.T, c *wecom.Crypter, ev callbackEvent) (string, []byte) {
	t.Helper()
	ev.CorpID = c.ReceiveID()
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	if f, ok := fakeOf.Load(c); ok && ev.WelcomeCode != "" {
		f.(*fakewecom.Server).IssueWelcomeCode(ev.WelcomeCode)
	}
	plain, err := ev.xml()
	if err != nil {
		t.Fatal(err)
	}
	path, body, err := sealedCallback(c, plain, ev.At)
	if err != nil {
		t.Fatal(err)
	}
	return path, body
}

// sendEvent signs and posts one callback n times (WeCom's retries re-send the same request).
func (in *instance) sendEvent(t *testing.T, c *wecom.Crypter, ev callbackEvent, n int) {
	t.Helper()
	path, body := signEvent(t, c, ev)
	for i := 0; i < n; i++ {
		if code, msg := in.post(t, path, body); code != http.StatusOK {
			t.Fatalf("%s delivery %d: %d %s", ev.Type, i+1, code, msg)
		}
	}
}

// TestWelcomeExactlyOnceAgainstFakeWeCom is the foundation's acceptance path:
// a signed add_external_contact delivered three times yields one
// send_welcome_msg with its code and one mark_tag (stage A + channel tag);
// a restart re-runs nothing; an expired token is refreshed once.
func TestWelcomeExactlyOnceAgainstFakeWeCom(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	dataDir := t.TempDir()
	env, c := liveEnv(t, fake, dataDir)
	in := startServe(t, env)

	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_alice", State: "xhs", WelcomeCode: "WELCOME-ALICE"}, 3)
	eventuallyT(t, "welcome and tags sent", 5*time.Second, func() bool {
		return fake.Count(fakewecom.APISendWelcomeMsg) == 1 && fake.Count(fakewecom.APIMarkTag) == 1
	})
	welcome := fake.Calls(fakewecom.APISendWelcomeMsg)[0]
	if welcome.Body["welcome_code"] != "WELCOME-ALICE" {
		t.Fatalf("welcome body %v", welcome.Body)
	}
	if text := fmt.Sprint(welcome.Body["text"]); !strings.Contains(text, "content") || len(text) < 20 {
		t.Fatalf("welcome has no text: %v", welcome.Body)
	}
	tag := fake.Calls(fakewecom.APIMarkTag)[0]
	added := fmt.Sprint(tag.Body["add_tag"])
	for _, name := range []string{"AIPL-认知", "来源-小红书"} {
		if id := fake.TagID(tagGroupOf(name), name); id == "" || !strings.Contains(added, id) {
			t.Fatalf("mark_tag add_tag %s lacks %s (id %q)", added, name, id)
		}
	}
	if tag.Body["userid"] != "zhangsan" || tag.Body["external_userid"] != "wm_alice" {
		t.Fatalf("mark_tag body %v", tag.Body)
	}
	code, body := in.get(t, "/api/v1/members/wm_alice")
	if code != 200 || !strings.Contains(body, `"stage":"aware"`) || !strings.Contains(body, "小红书") {
		t.Fatalf("member: %d %s", code, body)
	}

	// The token expires behind our back (the process holds the token alice's
	// calls used): the first call that carries it — bob's welcome or whatever
	// the bot calls first — gets 42001, the client refreshes once and bob's
	// welcome goes out on the new token.
	tokens := fake.Count(fakewecom.APIGetToken)
	seen := fake.Calls("")
	before := len(seen)
	old := map[string]bool{} // the tokens in use; "" (gettoken, webhooks) is none
	for _, call := range seen {
		if call.Token != "" {
			old[call.Token] = true
		}
	}
	fake.ExpireTokens()
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_bob", State: "douyin", WelcomeCode: "WELCOME-BOB"}, 1)
	// bob's tries carrying a token handed out after the expiry.
	bobFresh := func() int {
		n := 0
		for _, call := range fake.Calls(fakewecom.APISendWelcomeMsg) {
			if call.Body["welcome_code"] == "WELCOME-BOB" && !old[call.Token] {
				n++
			}
		}
		return n
	}
	eventuallyT(t, "bob's welcome on a refreshed token", 5*time.Second, func() bool {
		return bobFresh() >= 1
	})
	refused := 0
	for _, call := range fake.Calls("")[before:] {
		if old[call.Token] {
			refused++
		}
	}
	if got, fresh := fake.Count(fakewecom.APIGetToken), bobFresh(); got != tokens+1 || fresh != 1 || refused == 0 {
		t.Fatalf("gettoken calls %d → %d, bob's welcome on the new token %d times, calls on the expired token %d; want one refresh (after a 42001) and one welcome", tokens, got, fresh, refused)
	}

	// Restart: nothing re-runs, nothing re-sends.
	welcomes := fake.Count(fakewecom.APISendWelcomeMsg)
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	in = startServe(t, env)
	in.waitDrained(t)
	if n := fake.Count(fakewecom.APISendWelcomeMsg) - welcomes; n != 0 {
		t.Fatalf("after restart welcome sent %d more times", n)
	}

	if strings.Contains(in.logs.String(), "e2e-secret") || strings.Contains(in.logs.String(), env["WECOM_AES_KEY"]) {
		t.Fatal("a secret reached the logs")
	}
}

// TestOutboxRetriesSystemBusy: WeCom answers -1 twice; the outbox retries
// with backoff and the welcome goes out exactly once, inside its 20 s window.
func TestOutboxRetriesSystemBusy(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	in := startServe(t, env)
	fake.FailNext(fakewecom.APISendWelcomeMsg, -1, 2)
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "lisi", ExternalUser: "wm_carol", State: "website", WelcomeCode: "WELCOME-CAROL"}, 1)
	eventuallyT(t, "welcome delivered after two -1 answers", 15*time.Second, func() bool {
		return fake.Count(fakewecom.APISendWelcomeMsg) == 3
	})
	calls := fake.Calls(fakewecom.APISendWelcomeMsg)
	if len(calls) != 3 {
		t.Fatalf("send_welcome_msg called %d times, want 3 (2 busy + 1 ok)", len(calls))
	}
	st := in.status(t)
	if num(st, "pipeline", "send_retries") != 2 || num(st, "outbox", "failed") != 0 {
		t.Fatalf("status %v", st)
	}
	if !strings.Contains(in.logs.String(), "will retry") {
		t.Fatal("retries are not logged")
	}
}

// tagGroupOf is the corp tag group the embedded demo declares a tag in.
func tagGroupOf(name string) string {
	return scenarios.LoadDefault().TagGroupOf(name)
}
