package wecomapi

import (
	"encoding/json"
	"testing"
)

func TestMarkErrcode(t *testing.T) {
	for _, tc := range []struct{ in, wantMsg string }{
		{`{"errcode":-1,"errmsg":"system busy"}`, "system busy [errcode -1]"},
		{`{"errcode":60020,"errmsg":"not allow, more info at https://open.work.weixin.qq.com/devtool/query?e=60020"}`, "not allow, more info at https://open.work.weixin.qq.com/devtool/query?e=60020"},
		{`{"errcode":0,"errmsg":"ok","msgid":"m"}`, "ok"},
	} {
		var got struct {
			ErrMsg string `json:"errmsg"`
		}
		if err := json.Unmarshal(markErrcode([]byte(tc.in)), &got); err != nil || got.ErrMsg != tc.wantMsg {
			t.Errorf("markErrcode(%s) errmsg = %q (%v), want %q", tc.in, got.ErrMsg, err, tc.wantMsg)
		}
	}
	if out := string(markErrcode([]byte("not json"))); out != "not json" {
		t.Errorf("non-JSON changed: %s", out)
	}
}

func TestRewriteURI(t *testing.T) {
	current.Store(&route{base: "http://127.0.0.1:9999/prefix"})
	defer current.Store(nil)
	for in, want := range map[string]string{
		"https://qyapi.weixin.qq.com/cgi-bin/kf/send_msg?access_token=x": "http://127.0.0.1:9999/prefix/cgi-bin/kf/send_msg?access_token=x",
		"https://api.weixin.qq.com/cgi-bin/token":                        "https://api.weixin.qq.com/cgi-bin/token",
		"https://qyapi.weixin.qq.com.evil.example/cgi-bin/x":             "https://qyapi.weixin.qq.com.evil.example/cgi-bin/x",
	} {
		if got := rewriteURI(in); got != want {
			t.Errorf("rewriteURI(%q) = %q, want %q", in, got, want)
		}
	}
}
