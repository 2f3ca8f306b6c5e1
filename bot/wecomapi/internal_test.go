package wecomapi

import (
	"encoding/json"
	"net/http"
	"strings"
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
	const id = 1 << 40 // no real Client gets this id
	routes.Store(uint64(id), &route{base: "http://127.0.0.1:9999/prefix"})
	defer routes.Delete(uint64(id))
	tag := tagCredential(id, "")
	for in, want := range map[string]string{
		"https://qyapi.weixin.qq.com/cgi-bin/kf/send_msg?access_token=" + tag + "x":       "http://127.0.0.1:9999/prefix/cgi-bin/kf/send_msg?access_token=x&wecombot_client=1099511627776",
		"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=" + tag + "k":               "http://127.0.0.1:9999/prefix/cgi-bin/webhook/send?key=k&wecombot_client=1099511627776",
		"https://qyapi.weixin.qq.com/cgi-bin/user/get?userid=u&access_token=" + tag + "x": "http://127.0.0.1:9999/prefix/cgi-bin/user/get?userid=u&access_token=x&wecombot_client=1099511627776",
		// untagged: left alone, and the transport refuses it (below)
		"https://qyapi.weixin.qq.com/cgi-bin/kf/send_msg?access_token=x": "https://qyapi.weixin.qq.com/cgi-bin/kf/send_msg?access_token=x",
		"https://api.weixin.qq.com/cgi-bin/token":                        "https://api.weixin.qq.com/cgi-bin/token",
		// a tag-lookalike inside another parameter's value is not ours
		"https://qyapi.weixin.qq.com/cgi-bin/x?q=akey=" + tag + "x": "https://qyapi.weixin.qq.com/cgi-bin/x?q=akey=" + tag + "x",
	} {
		if got := rewriteURI(in); got != want {
			t.Errorf("rewriteURI(%q) = %q, want %q", in, got, want)
		}
	}
}

// A library request that no Client tagged is refused, never sent to
// WeCom's real host with the process's default transport.
func TestUntaggedLibraryRequestIsRefused(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "https://qyapi.weixin.qq.com/cgi-bin/kf/send_msg?access_token=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (routeTransport{}).RoundTrip(req); err == nil || !strings.Contains(err.Error(), "no live wecomapi.Client") {
		t.Fatalf("untagged request: err = %v, want a refusal", err)
	}
}
