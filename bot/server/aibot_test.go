package server

import (
	"encoding/json"
	"testing"
)

func TestAIBotMessageText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, want string
	}{
		{"text", `{"msgtype":"text","text":{"content":"@小山 几点开门"}}`, "@小山 几点开门"},
		{"mixed", `{"msgtype":"mixed","mixed":{"msg_item":[{"msgtype":"text","text":{"content":"这张图里的饮品"}},{"msgtype":"image","image":{"url":"https://x"}},{"msgtype":"text","text":{"content":"多少钱？"}}]}}`, "这张图里的饮品\n多少钱？"},
		// A voice message is answered from WeCom's transcript (the official example's shape).
		{"voice", `{"msgid":"CAIQ16HMjQYY","aibotid":"AIBOTID","chattype":"single","from":{"userid":"USERID"},"response_url":"RESPONSEURL","msgtype":"voice","voice":{"content":"这是语音转成的文本内容"}}`, "这是语音转成的文本内容"},
		{"image only", `{"msgtype":"mixed","mixed":{"msg_item":[{"msgtype":"image","image":{"url":"https://x"}}]}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m aibotMessage
			if err := json.Unmarshal([]byte(tt.raw), &m); err != nil {
				t.Fatal(err)
			}
			if got := m.text(); got != tt.want {
				t.Fatalf("text() = %q, want %q", got, tt.want)
			}
		})
	}
	for in, want := range map[string]string{"@小山 @小海  几点开门": "几点开门", "@小山几点开门": "小山几点开门", "几点开门": "几点开门"} {
		if got := question(in); got != want {
			t.Fatalf("question(%q) = %q, want %q", in, got, want)
		}
	}
	// The id is derived from the msgid alone (no per-process salt), so a
	// restarted or second node answers WeCom's stream refresh for the same
	// message under the same id: pinned to a value computed once.
	if got, want := StreamID("m1"), "s96886b7fe2a37f15180c7adb"; got != want {
		t.Fatalf("StreamID(m1) = %q, want %q (stable across processes)", got, want)
	}
	if StreamID("m1") == StreamID("m2") {
		t.Fatal("stream ids must differ between messages")
	}
}
