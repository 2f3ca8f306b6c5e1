package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecom"
)

// vectors are WeCom's official callback test vectors (testdata/, copied from the docs).
type vectors struct {
	Config struct {
		Token          string `json:"token"`
		EncodingAESKey string `json:"encoding_aes_key"`
		CorpID         string `json:"corp_id"`
	} `json:"config"`
	VerifyURL struct {
		Query      map[string]string `json:"query"`
		ExpectBody string            `json:"expect_body"`
	} `json:"verify_url"`
	Message struct {
		Query map[string]string `json:"query"`
		Body  string            `json:"body"`
	} `json:"message"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "wecom-callback-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instance is one running `wecombot serve`, started through run().
type instance struct {
	base string
	logs *syncBuffer
	stop func() error
	// token is WECOMBOT_ADMIN_TOKEN, sent by status when set.
	token string
}

// startServe runs `wecombot serve` in-process on a free loopback port.
func startServe(t *testing.T, env map[string]string) *instance {
	t.Helper()
	env["WECOMBOT_LISTEN"] = "127.0.0.1:0"
	env["WECOMBOT_LOG_FORMAT"] = "json"
	if env["WECOMBOT_LOG_LEVEL"] == "" {
		env["WECOMBOT_LOG_LEVEL"] = "debug"
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"serve"}, getenv, nil, pw, logs)
		pw.Close()
		done <- err
	}()
	base := listenLine(pr)
	if base == "" {
		cancel()
		t.Fatalf("server did not start: %v\n%s", <-done, logs)
	}
	in := &instance{base: base, logs: logs, token: env["WECOMBOT_ADMIN_TOKEN"]}
	var once sync.Once
	var stopErr error
	in.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(15 * time.Second):
				stopErr = errors.New("server did not stop within 15 s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { in.stop() })
	return in
}

func (in *instance) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(in.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (in *instance) post(t *testing.T, pathQuery string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(in.base+pathQuery, "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// status reads /api/v1/status (loopback needs no token when none is set).
func (in *instance) status(t *testing.T) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, in.base+"/api/v1/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.token != "" {
		req.Header.Set("Authorization", "Bearer "+in.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	code, body := resp.StatusCode, string(raw)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitDrained waits until the instance has no pending event and no action
// due: serve appends its start-up events before it listens, and an event's
// actions commit with its processed mark, so from then on nothing is sent
// until a new event arrives or a delayed action falls due. Tests that check
// a restart sent nothing wait on this instead of sleeping.
func (in *instance) waitDrained(t *testing.T) {
	t.Helper()
	eventuallyT(t, "the pipeline drained", 10*time.Second, func() bool {
		st := in.status(t)
		return num(st, "events", "pending") == 0 && nothingDue(st)
	})
}

func num(m map[string]any, path ...string) float64 {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return -1
		}
		cur = mm[p]
	}
	f, _ := cur.(float64)
	return f
}

func eventuallyT(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func query(m map[string]string) string {
	q := url.Values{}
	for k, v := range m {
		q.Set(k, v)
	}
	return q.Encode()
}

// TestOfficialVectorsEndToEnd drives the real server with WeCom's own samples:
// URL verification answers the exact echo, and a message delivered three
// times is stored and handled once, even across a restart.
func TestOfficialVectorsEndToEnd(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	dataDir := t.TempDir()
	env := map[string]string{
		"WECOMBOT_DATA_DIR":         dataDir,
		"WECOM_TOKEN":               v.Config.Token,
		"WECOM_AES_KEY":             v.Config.EncodingAESKey,
		"WECOM_CORP_ID":             v.Config.CorpID,
		"WECOMBOT_SCENARIOS":        callbackOnlyScenario(t),
		"WECOMBOT_CALLBACK_MAX_AGE": "0", // the vectors are from 2014
	}
	in := startServe(t, env)

	code, body := in.get(t, "/wecom/callback?"+query(v.VerifyURL.Query))
	if code != http.StatusOK || body != v.VerifyURL.ExpectBody {
		t.Fatalf("URL verification: %d %q, want 200 %q", code, body, v.VerifyURL.ExpectBody)
	}

	for i := 0; i < 3; i++ {
		if code, body := in.post(t, "/wecom/callback?"+query(v.Message.Query), []byte(v.Message.Body)); code != http.StatusOK || body != "" {
			t.Fatalf("delivery %d: %d %q", i+1, code, body)
		}
	}
	eventuallyT(t, "the event to be processed", 5*time.Second, func() bool {
		return num(in.status(t), "pipeline", "processed") == 1
	})
	st := in.status(t)
	if last := num(st, "events", "last_seq"); last != 1 {
		t.Fatalf("three deliveries stored %v events, want 1", last)
	}
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}

	// Restart on the same data: the retry WeCom sends now is still a duplicate, and nothing re-runs.
	in2 := startServe(t, env)
	if code, _ := in2.post(t, "/wecom/callback?"+query(v.Message.Query), []byte(v.Message.Body)); code != http.StatusOK {
		t.Fatalf("retry after restart: %d", code)
	}
	in2.waitDrained(t)
	st = in2.status(t)
	if num(st, "events", "last_seq") != 1 || num(st, "pipeline", "processed") != 0 || num(st, "events", "pending") != 0 {
		t.Fatalf("after restart: %v", st)
	}
}

// TestBadCallbacksAreRejectedAndStoreNothing covers hostile and broken input.
func TestBadCallbacksAreRejectedAndStoreNothing(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	in := startServe(t, map[string]string{
		"WECOMBOT_SCENARIOS":        callbackOnlyScenario(t),
		"WECOMBOT_DATA_DIR":         t.TempDir(),
		"WECOM_TOKEN":               v.Config.Token,
		"WECOM_AES_KEY":             v.Config.EncodingAESKey,
		"WECOM_CORP_ID":             v.Config.CorpID,
		"WECOMBOT_CALLBACK_MAX_AGE": "0",
	})
	good := v.Message.Query
	with := func(k, val string) string {
		m := map[string]string{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if val == "" {
			delete(m, k)
		} else {
			m[k] = val
		}
		return query(m)
	}
	otherCorp, err := wecom.NewCrypter(v.Config.Token, v.Config.EncodingAESKey, "wwsomeoneelse")
	if err != nil {
		t.Fatal(err)
	}
	otherPath, otherBody, err := sealedCallback(otherCorp, []byte("<xml><ToUserName>x</ToUserName><MsgType>text</MsgType></xml>"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Re-encrypt the message under a crypter that claims another receive id:
	// same token/key (so the signature verifies), wrong corp inside.
	cases := []struct {
		name  string
		query string
		body  string
		want  int
	}{
		{"wrong signature", with("msg_signature", "0000000000000000000000000000000000000000"), v.Message.Body, http.StatusForbidden},
		{"tampered timestamp", with("timestamp", "1409659814"), v.Message.Body, http.StatusForbidden},
		{"missing signature", with("msg_signature", ""), v.Message.Body, http.StatusBadRequest},
		{"missing nonce", with("nonce", ""), v.Message.Body, http.StatusBadRequest},
		{"not xml", query(good), "hello", http.StatusBadRequest},
		{"empty body", query(good), "", http.StatusBadRequest},
		{"oversized body", query(good), "<xml><Encrypt>" + strings.Repeat("A", 2<<20) + "</Encrypt></xml>", http.StatusRequestEntityTooLarge},
		{"wrong receive id", strings.TrimPrefix(otherPath, "/wecom/callback?"), string(otherBody), http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _ := in.post(t, "/wecom/callback?"+tc.query, []byte(tc.body))
			if code != tc.want {
				t.Fatalf("got %d, want %d", code, tc.want)
			}
		})
	}
	if code, _ := in.get(t, "/wecom/callback?msg_signature=x&timestamp=1&nonce=2&echostr=abc"); code != http.StatusForbidden {
		t.Fatalf("GET with a bad signature: %d, want 403", code)
	}
	if last := num(in.status(t), "events", "last_seq"); last != 0 {
		t.Fatalf("rejected callbacks stored %v events", last)
	}
	if !strings.Contains(in.logs.String(), "callback rejected") {
		t.Fatal("rejections are not logged")
	}
}

// TestStaleCallbackRejected checks the replay window on a freshly signed event.
func TestStaleCallbackRejected(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	in := startServe(t, map[string]string{
		"WECOMBOT_DATA_DIR": t.TempDir(),
		"WECOM_TOKEN":       v.Config.Token,
		"WECOM_AES_KEY":     v.Config.EncodingAESKey,
		"WECOM_CORP_ID":     v.Config.CorpID,
	})
	if code, _ := in.post(t, "/wecom/callback?"+query(v.Message.Query), []byte(v.Message.Body)); code != http.StatusForbidden {
		t.Fatalf("a 2014 timestamp must be refused with the default max age, got %d", code)
	}
}

// TestSecondProcessFailsFast: a data directory in use is refused with a clear error and exit code.
func TestSecondProcessFailsFast(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startServe(t, map[string]string{"WECOMBOT_DATA_DIR": dir})
	start := time.Now()
	var stderr syncBuffer
	env := map[string]string{"WECOMBOT_DATA_DIR": dir, "WECOMBOT_LISTEN": "127.0.0.1:0"}
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, nil, io.Discard, &stderr)
	if err == nil {
		t.Fatal("second serve on the same data dir started")
	}
	if exitCode(err) != exitLocked || !strings.Contains(err.Error(), "another wecombot") {
		t.Fatalf("exit %d, error %v", exitCode(err), err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to fail", d)
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	t.Parallel()
	in := startServe(t, map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()})
	if code, body := in.get(t, "/healthz"); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Fatalf("healthz %d %s", code, body)
	}
	code, body := in.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics %d", code)
	}
	for _, name := range []string{"wecombot_event_log_pending_events", "wecombot_event_log_lag", "wecombot_event_log_oldest_pending_age_seconds",
		"wecombot_event_log_dead_letter_events", "wecombot_outbox_depth", "wecombot_outbox_oldest_due_age_seconds",
		"wecombot_outbox_dead_letter_actions", `wecombot_breaker_state{breaker="ai_model",state="closed"} 1`,
		`wecombot_build_info{goversion="go`, "go_goroutines"} {
		if !strings.Contains(body, name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}

func TestCLIUsageAndVersion(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if err := run(context.Background(), nil, func(string) string { return "" }, nil, &out, &errb); exitCode(err) != exitUsage || !strings.Contains(errb.String(), "Usage:") {
		t.Fatalf("no args: %v %q", err, errb.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, nil, &out, &errb); err != nil || !strings.HasPrefix(out.String(), "wecombot ") {
		t.Fatalf("version: %v %q", err, out.String())
	}
	errb.Reset()
	if err := run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, nil, &out, &errb); exitCode(err) != exitUsage || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown: %v %q", err, errb.String())
	}
}

// callbackOnlyScenario is a scenario without customer-group welcome
// templates, so that the event log holds only the test's callbacks (serve
// otherwise appends a template sync and its results at start).
func callbackOnlyScenario(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(path, []byte("brand: {name: 测试}\nwelcome:\n  default: {text: 你好}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
