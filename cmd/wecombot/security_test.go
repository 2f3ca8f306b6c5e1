package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/server"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// TestModelDownFallbackAndNoSecretLeaks runs the real server with every
// secret set and a model API that is down — and hostile: its error bodies
// echo the API key it was sent. A member's 微信客服 question still gets the
// scenario's fallback reply, exactly once. Then bad admin tokens, forged
// shop webhooks and forged callbacks are thrown at it, and neither the
// debug log nor any HTTP answer contains a secret.
func TestModelDownFallbackAndNoSecretLeaks(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	var modelCalls atomic.Int32
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		modelCalls.Add(1)
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `{"error":{"message":"upstream overloaded (key %s)","type":"server_error"}}`, key)
	}))
	t.Cleanup(model.Close)
	secrets := map[string]string{
		"OPENAI_API_KEY":       "sk-test-0123456789abcdefSECRETKEY",
		"WECOMBOT_ADMIN_TOKEN": "admin-token-0123456789abcdefSECRET",
		"WECOMBOT_LINK_SECRET": "link-secret-0123456789abcdefSECRET",
		"WECOMBOT_SHOP_SECRET": "shop-secret-0123456789abcdefSECRET",
	}
	for k, v := range secrets {
		env[k] = v
	}
	env["OPENAI_BASE_URL"] = model.URL + "/v1"
	env["OPENAI_MODEL"] = "test-model"
	env["WECOMBOT_LOG_LEVEL"] = "debug"
	for _, k := range []string{"WECOM_SECRET", "WECOM_TOKEN", "WECOM_AES_KEY"} {
		secrets[k] = env[k]
	}

	now := time.Now()
	fake.ScriptKf("kf-token-1", "", fakewecom.KfPage{Msgs: []map[string]any{
		fakewecom.KfText("kfmsg-1", "wk_shop", "wm_alice", "我昨天买的那杯喝起来有点酸，正常吗", now)}, NextCursor: "cur-1"})
	in := startServe(t, env)
	in.sendEvent(t, c, callbackEvent{Type: "kf", OpenKfID: "wk_shop", MsgID: "1"}, 2)
	eventuallyT(t, "a reply despite the model being down", 30*time.Second, func() bool { return fake.Count(fakewecom.APIKfSendMsg) >= 1 })
	in.waitDrained(t) // a wrong second reply would be out by now
	sends := fake.Calls(fakewecom.APIKfSendMsg)
	if len(sends) != 1 {
		t.Fatalf("kf/send_msg calls = %d, want exactly 1", len(sends))
	}
	if text := fmt.Sprint(sends[0].Body["text"]); !strings.Contains(text, "不太确定") {
		t.Fatalf("reply is not the scenario's fallback: %s", text)
	}
	if modelCalls.Load() == 0 {
		t.Fatal("the model was never asked: the test proves nothing about it being down")
	}

	// Hostile and mistaken requests; keep every answer to grep it.
	var answers bytes.Buffer
	do := func(method, path string, body []byte, header map[string]string) int {
		req, _ := http.NewRequest(method, in.base+path, bytes.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(&answers, "%s %s → %d %s\n%s\n", method, path, resp.StatusCode, resp.Header, b)
		return resp.StatusCode
	}
	admin := secrets["WECOMBOT_ADMIN_TOKEN"]
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer " + admin[:len(admin)-1]}, {"Authorization": "Bearer " + admin + "x"}, {"Authorization": admin}} {
		if code := do("GET", "/api/v1/status", nil, h); code != http.StatusUnauthorized {
			t.Errorf("admin with %v: %d, want 401", h, code)
		}
	}
	if code := do("GET", "/api/v1/status", nil, map[string]string{"Authorization": "Bearer " + admin}); code != http.StatusOK {
		t.Errorf("admin with the token: %d", code)
	}
	order := []byte(`{"event":"order.paid","order_id":"SO1","external_userid":"wm_alice","amount_fen":100}`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	for name, sig := range map[string]string{
		"wrong key":   server.SignShopRequest([]byte("not-the-shop-secret-at-all"), ts, order),
		"empty":       "",
		"other stamp": server.SignShopRequest([]byte(secrets["WECOMBOT_SHOP_SECRET"]), ts+"1", order),
	} {
		if code := do("POST", "/hooks/orders", order, map[string]string{server.HeaderShopTimestamp: ts, server.HeaderShopSignature: sig}); code != http.StatusUnauthorized {
			t.Errorf("shop webhook, %s signature: %d, want 401", name, code)
		}
	}
	do("POST", "/wecom/callback?msg_signature=00&timestamp="+ts+"&nonce=1", []byte("<xml><Encrypt>AAAA</Encrypt></xml>"), nil)
	do("GET", "/wecom/callback?msg_signature=00&timestamp="+ts+"&nonce=1&echostr=AAAA", nil, nil)
	do("GET", "/healthz", nil, nil)
	do("GET", "/metrics", nil, nil)
	do("GET", "/", nil, nil)

	logs := in.logs.String()
	for name, v := range secrets {
		if strings.Contains(logs, v) {
			t.Errorf("%s reached the log", name)
		}
		if strings.Contains(answers.String(), v) {
			t.Errorf("%s reached an HTTP answer", name)
		}
	}
	if !strings.Contains(logs, "callback rejected") {
		t.Error("the log shows none of the rejections: the grep proves nothing")
	}
}
