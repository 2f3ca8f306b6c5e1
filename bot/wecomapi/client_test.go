package wecomapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

func TestTokenRefusedRefreshesAndRetriesOnce(t *testing.T) {
	t.Parallel()
	for _, code := range []int64{42001, 40014} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			e := setup(t)
			e.fake.FailNext(fakewecom.APISendWelcomeMsg, code, 1)
			_, retry, err := e.client.Send(context.Background(), welcome(t, "wc-1"))
			if err != nil || retry {
				t.Fatalf("Send = retry %v, %v; want success after one refresh", retry, err)
			}
			if n := e.fake.Count(fakewecom.APIGetToken); n != 2 {
				t.Errorf("gettoken calls = %d, want 2", n)
			}
			calls := e.fake.Calls(fakewecom.APISendWelcomeMsg)
			if len(calls) != 2 {
				t.Fatalf("send_welcome_msg calls = %d, want 2", len(calls))
			}
			if calls[0].Token == calls[1].Token {
				t.Errorf("retry used the refused token %s again", calls[0].Token)
			}
			if got := counter(t, e.metrics, "externalcontact/send_welcome_msg", fmt.Sprint(code)); got != 1 {
				t.Errorf("metric errcode=%d = %v, want 1", code, got)
			}
		})
	}
}

func TestExpiredTokensAreReplaced(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	if _, _, err := e.client.Send(ctx, welcome(t, "wc-1")); err != nil {
		t.Fatal(err)
	}
	e.fake.ExpireTokens()
	if _, _, err := e.client.Send(ctx, welcome(t, "wc-2")); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Count(fakewecom.APIGetToken); n != 2 {
		t.Errorf("gettoken calls = %d, want 2", n)
	}
	if n := e.fake.Count(fakewecom.APISendWelcomeMsg); n != 3 {
		t.Errorf("send_welcome_msg calls = %d, want 3 (ok, 42001, ok)", n)
	}
}

func TestTokenStillRefusedAfterRefreshIsRetryable(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.FailNext(fakewecom.APIMessageSend, 42001, 2)
	a := action(t, bot.ActionStaffMessage, bot.StaffMessage{ToUsers: []string{"zhangsan"}, Text: "hi"})
	_, retry, err := e.client.Send(context.Background(), a)
	if err == nil || !retry {
		t.Fatalf("Send = retry %v, %v; want a retryable error", retry, err)
	}
	if n := e.fake.Count(fakewecom.APIMessageSend); n != 2 {
		t.Errorf("message/send calls = %d, want 2 (only one refresh per Send)", n)
	}
}

func TestTokenRefreshedEarly(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	e := setup(t, func(c *wecomapi.Config) { c.Now = func() time.Time { return time.Unix(now.Load(), 0) } })
	ctx := context.Background()
	for i, advance := range []int64{0, 6000, 1000} { // 7200 s tokens: 6000 s keeps it, 7000 s is < 5 min before expiry
		now.Add(advance)
		if err := e.client.Ping(ctx); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	if n := e.fake.Count(fakewecom.APIGetToken); n != 2 {
		t.Errorf("gettoken calls = %d, want 2 (one refresh before expiry)", n)
	}
}

func TestSystemBusyIsRetriedByTheOutbox(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.FailNext(fakewecom.APISendWelcomeMsg, -1, 2)
	ctx := context.Background()
	for i := range 2 {
		_, retry, err := e.client.Send(ctx, welcome(t, "wc-busy"))
		var apiErr *wecomapi.APIError
		if !retry || !errors.As(err, &apiErr) || apiErr.Code != -1 {
			t.Fatalf("attempt %d: retry %v, err %v; want retryable -1", i+1, retry, err)
		}
	}
	res, retry, err := e.client.Send(ctx, welcome(t, "wc-busy"))
	if err != nil || retry {
		t.Fatalf("third attempt: retry %v, %v", retry, err)
	}
	if res.Detail == "" {
		t.Error("empty result detail")
	}
	if n := e.fake.Count(fakewecom.APISendWelcomeMsg); n != 3 {
		t.Errorf("calls = %d, want 3", n)
	}
}

func TestWelcomeCodeUsedIsFinal(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	if _, _, err := e.client.Send(ctx, welcome(t, "wc-once")); err != nil {
		t.Fatal(err)
	}
	_, retry, err := e.client.Send(ctx, welcome(t, "wc-once"))
	var apiErr *wecomapi.APIError
	if retry || !errors.As(err, &apiErr) || apiErr.Code != 41051 {
		t.Fatalf("reuse: retry %v, err %v; want final 41051", retry, err)
	}
	if !strings.Contains(err.Error(), "not retried") {
		t.Errorf("error lacks the hint: %v", err)
	}
	if n := e.fake.Count(fakewecom.APISendWelcomeMsg); n != 2 {
		t.Errorf("calls = %d, want 2 (no retry inside Send)", n)
	}
}

func TestWelcomeAfterNotAfterIsSkipped(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	e := setup(t, func(c *wecomapi.Config) { c.Now = func() time.Time { return now } })
	a := welcome(t, "wc-late")
	a.NotAfter = now.Add(-time.Second)
	_, retry, err := e.client.Send(context.Background(), a)
	if retry || !errors.Is(err, wecomapi.ErrWelcomeExpired) {
		t.Fatalf("retry %v, err %v; want final ErrWelcomeExpired", retry, err)
	}
	if n := e.fake.Count(""); n != 0 {
		t.Errorf("fake saw %d calls, want none", n)
	}
}

func TestUntrustedIPIsFinalAndExplained(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.FailNext(fakewecom.APISendWelcomeMsg, 60020, 1)
	_, retry, err := e.client.Send(context.Background(), welcome(t, "wc-ip"))
	if err == nil || retry {
		t.Fatalf("retry %v, err %v; want final error", retry, err)
	}
	for what, text := range map[string]string{"error": err.Error(), "logs": e.logs.String()} {
		if !strings.Contains(text, "企业可信IP (trusted IP)") || !strings.Contains(text, "WECOMBOT_EGRESS_PROXY") {
			t.Errorf("%s does not explain the trusted IP fix: %s", what, text)
		}
		noSecrets(t, e.fake, what, text)
	}
}

func TestPingReportsUntrustedIP(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.FailNext(fakewecom.APIGetCorpTagList, 60020, 1)
	err := e.client.Ping(context.Background())
	var apiErr *wecomapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 60020 || apiErr.Hint() != wecomapi.TrustedIPHint {
		t.Fatalf("Ping = %v; want 60020 with the trusted IP hint", err)
	}
	if err := e.client.Ping(context.Background()); err != nil {
		t.Fatalf("second Ping: %v", err)
	}
}

func TestHTTPStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		retry  bool
	}{{502, true}, {503, true}, {429, true}, {404, false}} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			e := setup(t)
			e.fake.FailHTTP(fakewecom.APISendWelcomeMsg, tc.status, 1)
			_, retry, err := e.client.Send(context.Background(), welcome(t, "wc-http"))
			var apiErr *wecomapi.APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatus != tc.status || retry != tc.retry {
				t.Fatalf("retry %v, err %v; want HTTP %d retry=%v", retry, err, tc.status, tc.retry)
			}
			noSecrets(t, e.fake, "error", err.Error())
			noSecrets(t, e.fake, "logs", e.logs.String())
			if got := counter(t, e.metrics, "externalcontact/send_welcome_msg", "http"); got != 1 {
				t.Errorf("metric errcode=http = %v, want 1", got)
			}
		})
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *wecomapi.Config) { c.Timeout = 100 * time.Millisecond })
	e.fake.Delay(fakewecom.APISendWelcomeMsg, 2*time.Second)
	start := time.Now()
	_, retry, err := e.client.Send(context.Background(), welcome(t, "wc-slow"))
	var apiErr *wecomapi.APIError
	if !retry || !errors.As(err, &apiErr) || !apiErr.Timeout {
		t.Fatalf("retry %v, err %v; want retryable timeout", retry, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v; the timeout should cut it at 100 ms", took)
	}
	noSecrets(t, e.fake, "error", err.Error())
}

func TestGetTokenTimeoutAndNetworkErrorsAreRetryable(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *wecomapi.Config) { c.Timeout = 100 * time.Millisecond })
	e.fake.Delay(fakewecom.APIGetToken, time.Second)
	_, retry, err := e.client.Send(context.Background(), welcome(t, "wc-1"))
	if !retry || err == nil {
		t.Fatalf("slow gettoken: retry %v, err %v", retry, err)
	}
	noSecrets(t, e.fake, "error", err.Error())

	dead := setup(t, func(c *wecomapi.Config) { c.APIBase = "http://127.0.0.1:1" })
	_, retry, err = dead.client.Send(context.Background(), welcome(t, "wc-1"))
	if !retry || err == nil {
		t.Fatalf("unreachable: retry %v, err %v", retry, err)
	}
	noSecrets(t, dead.fake, "error", err.Error())
	noSecrets(t, dead.fake, "logs", dead.logs.String())
}

func TestWrongSecretIsFinal(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.SetCredentials("ww-test", "the-right-one")
	_, retry, err := e.client.Send(context.Background(), welcome(t, "wc-1"))
	var apiErr *wecomapi.APIError
	if retry || !errors.As(err, &apiErr) || apiErr.Code != 40001 || apiErr.API != "gettoken" {
		t.Fatalf("retry %v, err %v; want final gettoken 40001", retry, err)
	}
	if !strings.Contains(err.Error(), "WECOM_SECRET") {
		t.Errorf("error does not name the setting: %v", err)
	}
	if n := e.fake.Count(fakewecom.APIGetToken); n != 1 {
		t.Errorf("gettoken calls = %d, want 1 (a wrong secret is not retried)", n)
	}
}

func TestConcurrentSendersShareOneToken(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.Delay(fakewecom.APIGetToken, 50*time.Millisecond) // make the callers overlap
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			_, _, err := e.client.Send(context.Background(), welcome(t, fmt.Sprintf("wc-%d", i)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fake.Count(fakewecom.APIGetToken); n != 1 {
		t.Errorf("gettoken calls = %d, want 1", n)
	}
	if n := e.fake.Count(fakewecom.APISendWelcomeMsg); n != 50 {
		t.Errorf("send_welcome_msg calls = %d, want 50", n)
	}
}

func TestConcurrentExpiryRefreshesOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	if err := e.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	e.fake.ExpireTokens()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, _, err := e.client.Send(ctx, welcome(t, fmt.Sprintf("wc-%d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// All 20 may see 42001 with the old token; invalidating only that token
	// lets at most a few refreshes happen, not one per sender.
	if n := e.fake.Count(fakewecom.APIGetToken); n > 3 {
		t.Errorf("gettoken calls = %d, want 2 or a few", n)
	}
}

func TestInvalidate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	_ = e.client.Ping(ctx)
	e.client.Invalidate()
	_ = e.client.Ping(ctx)
	if n := e.fake.Count(fakewecom.APIGetToken); n != 2 {
		t.Errorf("gettoken calls = %d, want 2", n)
	}
}

func TestKfUsesItsOwnSecret(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *wecomapi.Config) { c.KfSecret = "KF-SECRET" })
	ctx := context.Background()
	if _, _, err := e.client.Send(ctx, welcome(t, "wc-1")); err != nil {
		t.Fatal(err)
	}
	kfMsg := action(t, bot.ActionKfMessage, bot.KfMessage{OpenKfID: "wk1", ExternalUserID: "wm1", Text: "hi"})
	e.fake.CustomerMessage("wk1", "wm1", time.Now())
	if _, _, err := e.client.Send(ctx, kfMsg); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Count(fakewecom.APIGetToken); n != 2 {
		t.Errorf("gettoken calls = %d, want one per secret", n)
	}
	app := e.fake.Calls(fakewecom.APISendWelcomeMsg)[0].Token
	kf := e.fake.Calls(fakewecom.APIKfSendMsg)[0].Token
	if app == kf {
		t.Errorf("kf call used the app token %s", app)
	}
}

func TestKfErrorsAreClassified(t *testing.T) {
	t.Parallel()
	// kf.SendMsg and kf.SyncMsg drop the errcode; the client recovers it.
	for _, tc := range []struct {
		api   string
		code  int64
		retry bool
	}{
		{fakewecom.APIKfSendMsg, -1, true},
		{fakewecom.APIKfSendMsg, 45009, true},
		{fakewecom.APIKfSendMsg, 95000, false},
		{fakewecom.APIKfSendMsg, 60020, false},
		{fakewecom.APIKfSyncMsg, -1, true},
		{fakewecom.APIKfSyncMsg, 60020, false},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.api, tc.code), func(t *testing.T) {
			e := setup(t)
			e.fake.FailNext(tc.api, tc.code, 1)
			var err error
			if tc.api == fakewecom.APIKfSendMsg {
				_, _, err = e.client.Send(context.Background(), action(t, bot.ActionKfMessage, bot.KfMessage{OpenKfID: "wk1", ExternalUserID: "wm1", Text: "hi"}))
			} else {
				_, _, _, err = e.client.KfSyncMsg(context.Background(), "cb-token", "wk1", "")
			}
			var apiErr *wecomapi.APIError
			if !errors.As(err, &apiErr) || apiErr.Code != tc.code || wecomapi.Classify(err) != tc.retry {
				t.Fatalf("err %v; want code %d retry %v", err, tc.code, tc.retry)
			}
		})
	}
	t.Run("token refresh", func(t *testing.T) {
		e := setup(t)
		e.fake.FailNext(fakewecom.APIKfSyncMsg, 42001, 1)
		if _, _, _, err := e.client.KfSyncMsg(context.Background(), "cb-token", "wk1", ""); err != nil {
			t.Fatal(err)
		}
		if n := e.fake.Count(fakewecom.APIGetToken); n != 2 {
			t.Errorf("gettoken calls = %d, want 2", n)
		}
	})
}

func TestRobotErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.SetRobotKeys("another-key")
	_, retry, err := e.client.Send(context.Background(), action(t, bot.ActionRobot, bot.RobotMessage{Robot: "ops", Text: "hi"}))
	var apiErr *wecomapi.APIError
	if retry || !errors.As(err, &apiErr) || apiErr.Code != 93000 {
		t.Fatalf("retry %v, err %v; want final 93000", retry, err)
	}
	noSecrets(t, e.fake, "error", err.Error())

	_, retry, err = e.client.Send(context.Background(), action(t, bot.ActionRobot, bot.RobotMessage{Robot: "nobody", Text: "hi"}))
	if retry || !errors.Is(err, wecomapi.ErrInvalidAction) {
		t.Fatalf("unknown robot: retry %v, err %v", retry, err)
	}
	if n := e.fake.Count(fakewecom.APIGetToken); n != 0 {
		t.Errorf("robot webhooks need no token, fetched %d", n)
	}
}

func TestSecretNeverInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *wecomapi.Config) { c.Timeout = 200 * time.Millisecond })
	ctx := context.Background()
	var errs []error
	send := func(a *bot.Action) {
		if _, _, err := e.client.Send(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	e.fake.FailHTTP(fakewecom.APIGetToken, 500, 1)
	send(welcome(t, "wc-0"))
	e.fake.FailNext(fakewecom.APIGetToken, 40013, 1)
	send(welcome(t, "wc-1"))
	e.fake.Delay(fakewecom.APIGetToken, time.Second)
	send(welcome(t, "wc-2"))
	e.fake.Delay(fakewecom.APIGetToken, 0)
	for _, code := range []int64{60020, 48002, 40096, -1} {
		e.fake.FailNext(fakewecom.APIMarkTag, code, 1)
		e.fake.AddTagGroup("wecombot", "VIP")
		send(action(t, bot.ActionMarkTag, bot.MarkTag{StaffID: "s1", ExternalUserID: "wm1", Add: []string{"VIP"}}))
	}
	e.fake.FailHTTP(fakewecom.APIMessageSend, 404, 1)
	send(action(t, bot.ActionStaffMessage, bot.StaffMessage{ToUsers: []string{"s1"}, Text: "hi"}))
	e.fake.FailHTTP(fakewecom.APIWebhookSend, 502, 1)
	send(action(t, bot.ActionRobot, bot.RobotMessage{Robot: "ops", Text: "hi"}))
	e.fake.Delay(fakewecom.APIKfSendMsg, time.Second)
	send(action(t, bot.ActionKfMessage, bot.KfMessage{OpenKfID: "wk1", ExternalUserID: "wm1", Text: "hi"}))
	if len(errs) < 9 {
		t.Fatalf("got %d errors, want at least 9", len(errs))
	}
	for _, err := range errs {
		noSecrets(t, e.fake, "error", err.Error())
		if strings.Contains(err.Error(), "access_token=") && !strings.Contains(err.Error(), "access_token=REDACTED") {
			t.Errorf("error carries a token URL: %v", err)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "wecom call failed") {
		t.Fatalf("no failure logged: %s", logs)
	}
	noSecrets(t, e.fake, "logs", logs)
}

func TestRetryHelper(t *testing.T) {
	t.Parallel()
	var slept []time.Duration
	e := setup(t, func(c *wecomapi.Config) { c.Sleep = func(d time.Duration) { slept = append(slept, d) } })
	e.fake.FailNext(fakewecom.APIKfSyncMsg, -1, 2)
	err := e.client.Retry(context.Background(), 5, func() error {
		_, _, _, err := e.client.KfSyncMsg(context.Background(), "t", "wk1", "")
		return err
	})
	if err != nil || len(slept) != 2 {
		t.Fatalf("err %v after %d sleeps; want success after 2", err, len(slept))
	}
	e.fake.FailNext(fakewecom.APIKfSyncMsg, 60020, 3)
	slept = nil
	err = e.client.Retry(context.Background(), 5, func() error {
		_, _, _, err := e.client.KfSyncMsg(context.Background(), "t", "wk1", "")
		return err
	})
	if err == nil || len(slept) != 0 {
		t.Fatalf("final error: err %v after %d sleeps; want no retry", err, len(slept))
	}
}

func TestCanceledContextIsRetryable(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, retry, err := e.client.Send(ctx, welcome(t, "wc-1"))
	if !retry || !errors.Is(err, context.Canceled) {
		t.Fatalf("retry %v, err %v", retry, err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]wecomapi.Config{
		"no corp":   {Secret: "s"},
		"no secret": {CorpID: "c"},
		"bad base":  {CorpID: "c", Secret: "s", APIBase: "qyapi.weixin.qq.com"},
		"bad proxy": {CorpID: "c", Secret: "s", EgressProxy: "socks5://u:pw@h:1"},
	} {
		if _, err := wecomapi.New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		} else if strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s: error shows the proxy password: %v", name, err)
		}
	}
}

// Two Clients with different API bases in one process, used at once: each
// one's library calls (welcome, kf, robot webhook) reach its own WeCom with
// its own token and webhook key, and no routing parameter leaks to WeCom.
func TestClientsWithDifferentBasesDoNotCrossTalk(t *testing.T) {
	t.Parallel()
	envs := []*env{
		setup(t),
		setup(t, func(c *wecomapi.Config) { c.Robots = map[string]string{"ops": "robot-key-2"} }),
	}
	const rounds = 20
	var wg sync.WaitGroup
	for _, e := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range rounds {
				// One customer message allows the round's kf reply (5 at most per message).
				e.fake.CustomerMessage("wk1", "wm1", time.Now())
				for _, a := range []*bot.Action{
					welcome(t, fmt.Sprintf("wc-%d", i)),
					action(t, bot.ActionKfMessage, bot.KfMessage{OpenKfID: "wk1", ExternalUserID: "wm1", Text: "hi"}),
					action(t, bot.ActionRobot, bot.RobotMessage{Robot: "ops", Text: "hi"}),
				} {
					if _, _, err := e.client.Send(ctx, a); err != nil {
						t.Errorf("send %s: %v", a.Kind, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for i, e := range envs {
		for _, api := range []string{fakewecom.APISendWelcomeMsg, fakewecom.APIKfSendMsg, fakewecom.APIWebhookSend} {
			if n := e.fake.Count(api); n != rounds {
				t.Errorf("fake %d got %d %s calls, want %d (its own client's only)", i, n, api, rounds)
			}
		}
		for _, c := range e.fake.Calls("") {
			if c.Query.Has("wecombot_client") {
				t.Errorf("fake %d saw the routing parameter: %v", i, c.Query)
			}
			if strings.Contains(c.Token, "wecombot~") || strings.Contains(c.Query.Get("key"), "wecombot~") {
				t.Errorf("fake %d saw a tagged credential: %q %v", i, c.Token, c.Query)
			}
		}
		if key := e.fake.Calls(fakewecom.APIWebhookSend)[0].Query.Get("key"); key != fmt.Sprintf("robot-key-%d", i+1) {
			t.Errorf("fake %d got robot key %q", i, key)
		}
	}
}
