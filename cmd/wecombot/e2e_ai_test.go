package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// actions lists the outbox through the admin API (loopback needs no token).
func (in *instance) actions(t *testing.T, kind bot.ActionKind) []bot.Action {
	t.Helper()
	code, body := in.get(t, "/api/v1/outbox?limit=1000")
	if code != http.StatusOK {
		t.Fatalf("outbox: %d %s", code, body)
	}
	var out struct {
		Actions []bot.Action `json:"actions"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	var acts []bot.Action
	for _, a := range out.Actions {
		if a.Kind == kind {
			acts = append(acts, a)
		}
	}
	return acts
}

// TestKfConversationEndToEnd drives 微信客服 through the real server and the
// fake WeCom API: a kf_msg_or_event callback (delivered three times) → one
// kf/sync_msg pull from the stored cursor → one kf.text event per message →
// the offline AI model's answer via kf/send_msg, exactly once; a second
// notification whose page repeats an old message answers only the new one;
// after a restart the cursor is remembered and nothing is sent again.
func TestKfConversationEndToEnd(t *testing.T) {
	fake := fakewecom.New(t)
	dataDir := t.TempDir()
	env, c := liveEnv(t, fake, dataDir)
	now := time.Now()
	msg1 := fakewecom.KfText("kfmsg-1", "wk_shop", "wm_alice", "山茶拿铁有咖啡因吗", now)
	msg2 := fakewecom.KfText("kfmsg-2", "wk_shop", "wm_alice", "可以开发票吗", now)
	fake.ScriptKf("kf-token-1", "", fakewecom.KfPage{Msgs: []map[string]any{msg1}, NextCursor: "cur-1"})
	fake.ScriptKf("kf-token-2", "cur-1", fakewecom.KfPage{Msgs: []map[string]any{msg1, msg2}, NextCursor: "cur-2"})

	in := startServe(t, env)
	in.sendEvent(t, c, callbackEvent{Type: "kf", OpenKfID: "wk_shop", MsgID: "1"}, 3)
	eventuallyT(t, "first answer sent", 5*time.Second, func() bool { return fake.Count(fakewecom.APIKfSendMsg) >= 1 })
	time.Sleep(300 * time.Millisecond) // room for a wrong second send
	sends := fake.Calls(fakewecom.APIKfSendMsg)
	if len(sends) != 1 {
		t.Fatalf("kf/send_msg calls = %d, want 1", len(sends))
	}
	if n := fake.Count(fakewecom.APIKfSyncMsg); n != 1 {
		t.Fatalf("kf/sync_msg calls = %d, want 1 (the callback was retried, not the pull)", n)
	}
	body := sends[0].Body
	if body["touser"] != "wm_alice" || body["open_kfid"] != "wk_shop" || !strings.Contains(fmt.Sprint(body["text"]), "乌龙茶底") {
		t.Fatalf("send_msg body = %v", body)
	}
	if id, _ := body["msgid"].(string); id == "" {
		t.Fatal("send_msg without a msgid: WeCom could not drop a resend")
	}

	in.sendEvent(t, c, callbackEvent{Type: "kf", OpenKfID: "wk_shop", MsgID: "2"}, 2)
	eventuallyT(t, "second answer sent", 5*time.Second, func() bool { return fake.Count(fakewecom.APIKfSendMsg) >= 2 })
	time.Sleep(300 * time.Millisecond)
	sends = fake.Calls(fakewecom.APIKfSendMsg)
	if len(sends) != 2 || !strings.Contains(fmt.Sprint(sends[1].Body["text"]), "申请开票") {
		t.Fatalf("after the second pull: %d sends, last %v", len(sends), sends[len(sends)-1].Body)
	}
	if n := len(in.actions(t, bot.ActionAIReply)); n != 2 {
		t.Fatalf("ai_reply actions = %d, want 2", n)
	}

	// Restart: nothing is re-sent, and the next pull starts at the stored cursor.
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	fake.ScriptKf("kf-token-3", "cur-2", fakewecom.KfPage{NextCursor: "cur-2"})
	in = startServe(t, env)
	in.sendEvent(t, c, callbackEvent{Type: "kf", OpenKfID: "wk_shop", MsgID: "3"}, 1)
	eventuallyT(t, "third pull", 5*time.Second, func() bool { return fake.Count(fakewecom.APIKfSyncMsg) >= 3 })
	time.Sleep(300 * time.Millisecond)
	pulls := fake.Calls(fakewecom.APIKfSyncMsg)
	if cur := pulls[len(pulls)-1].Body["cursor"]; cur != "cur-2" {
		t.Fatalf("pull after restart used cursor %v, want cur-2", cur)
	}
	if n := fake.Count(fakewecom.APIKfSendMsg); n != 2 {
		t.Fatalf("send_msg after restart = %d, want still 2", n)
	}
}

// aibotClient plays WeCom's AI bot (智能机器人) side: JSON callbacks
// encrypted with receive id "".
type aibotClient struct {
	c *wecom.Crypter
}

// post sends plaintext JSON and returns the decrypted passive reply.
func (a aibotClient) post(t *testing.T, in *instance, plain map[string]any) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(plain)
	enc, err := a.c.Encrypt(raw)
	if err != nil {
		t.Fatal(err)
	}
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), randomHex(8)
	q := url.Values{"msg_signature": {a.c.Sign(ts, nonce, enc)}, "timestamp": {ts}, "nonce": {nonce}}
	body, _ := json.Marshal(map[string]string{"encrypt": enc})
	resp, err := http.Post(in.base+"/wecom/aibot?"+q.Encode(), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sealed struct {
		Encrypt      string `json:"encrypt"`
		MsgSignature string `json:"msgsignature"`
		Timestamp    string `json:"timestamp"`
		Nonce        string `json:"nonce"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("aibot callback: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&sealed); err != nil {
		t.Fatal(err)
	}
	if !a.c.Verify(sealed.MsgSignature, sealed.Timestamp, sealed.Nonce, sealed.Encrypt) {
		t.Fatal("reply signature does not verify")
	}
	out, err := a.c.Decrypt(sealed.Encrypt)
	if err != nil {
		t.Fatal(err)
	}
	var reply map[string]any
	if err := json.Unmarshal(out, &reply); err != nil {
		t.Fatal(err)
	}
	return reply
}

func streamOf(t *testing.T, reply map[string]any) (id, content string, finish bool) {
	t.Helper()
	st, ok := reply["stream"].(map[string]any)
	if reply["msgtype"] != "stream" || !ok {
		t.Fatalf("not a stream reply: %v", reply)
	}
	id, _ = st["id"].(string)
	content, _ = st["content"].(string)
	finish, _ = st["finish"].(bool)
	return id, content, finish
}

// TestAIBotMentionStreamsAnAnswer: an @-mention in an internal group,
// delivered three times, is answered with one stream id at once; polls of
// the stream show the answer until it is finished; one AI reply is owed.
func TestAIBotMentionStreamsAnAnswer(t *testing.T) {
	const token = "aibotToken"
	aesKey := strings.Repeat("B", 42) + "A"
	c, err := wecom.NewCrypter(token, aesKey, "")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"WECOMBOT_DATA_DIR":   t.TempDir(),
		"WECOM_AIBOT_TOKEN":   token,
		"WECOM_AIBOT_AES_KEY": aesKey,
	}
	in := startServe(t, env)
	bot1 := aibotClient{c}

	// URL verification with the empty receive id.
	echo, _ := c.Encrypt([]byte("echo-123"))
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "n1"
	q := url.Values{"msg_signature": {c.Sign(ts, nonce, echo)}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {echo}}
	if code, body := in.get(t, "/wecom/aibot?"+q.Encode()); code != http.StatusOK || body != "echo-123" {
		t.Fatalf("verify: %d %q", code, body)
	}

	msg := map[string]any{"msgid": "aibot-msg-1", "aibotid": "AIBOT1", "chatid": "wrGROUP", "chattype": "group",
		"from": map[string]any{"userid": "zhangsan"}, "response_url": "https://example.invalid/resp",
		"msgtype": "text", "text": map[string]any{"content": "@小山 外卖多少钱起送？"}}
	var streamID string
	for i := range 3 {
		id, _, _ := streamOf(t, bot1.post(t, in, msg))
		if i == 0 {
			streamID = id
		} else if id != streamID {
			t.Fatalf("retry %d got stream %s, first %s", i, id, streamID)
		}
	}
	poll := map[string]any{"msgid": "poll", "aibotid": "AIBOT1", "chatid": "wrGROUP", "chattype": "group",
		"from": map[string]any{"userid": "zhangsan"}, "msgtype": "stream", "stream": map[string]any{"id": streamID}}
	var content string
	eventuallyT(t, "stream finished", 5*time.Second, func() bool {
		_, got, finish := streamOf(t, bot1.post(t, in, poll))
		content = got
		return finish
	})
	if !strings.Contains(content, "满 25 元起送") {
		t.Fatalf("streamed answer %q", content)
	}
	if n := len(in.actions(t, bot.ActionAIReply)); n != 1 {
		t.Fatalf("ai_reply actions = %d, want 1 for three deliveries", n)
	}
	// After a restart the answer is served from the store.
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	in = startServe(t, env)
	if _, got, finish := streamOf(t, bot1.post(t, in, poll)); !finish || got != content {
		t.Fatalf("after restart: %q finish=%v", got, finish)
	}
}
