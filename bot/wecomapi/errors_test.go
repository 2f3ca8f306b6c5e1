package wecomapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/wecombot/wecombot/bot/wecomapi"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww1&corpsecret=SECRET-XYZ",
			"https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww1&corpsecret=REDACTED"},
		{"https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=abc.DEF-123",
			"https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=REDACTED"},
		{"https://qyapi.weixin.qq.com/cgi-bin/externalcontact/get?access_token=tok&external_userid=wm1&cursor=",
			"https://qyapi.weixin.qq.com/cgi-bin/externalcontact/get?access_token=REDACTED&external_userid=wm1&cursor="},
		{"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=REDACTED"},
		{"http://user:pw@proxy.example:3128", "http://user:REDACTED@proxy.example:3128"},
		{"https://qyapi.weixin.qq.com/cgi-bin/gettoken", "https://qyapi.weixin.qq.com/cgi-bin/gettoken"},
		{`Post "https://x/cgi-bin/kf/send_msg?access_token=tok123": EOF`, `Post "https://x/cgi-bin/kf/send_msg?access_token=REDACTED": EOF`},
		{"not a url access_token=zzz", "not a url access_token=REDACTED"},
	} {
		if got := wecomapi.RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err   error
		retry bool
	}{
		{nil, false},
		{&wecomapi.APIError{API: "x", Code: -1}, true},
		{&wecomapi.APIError{API: "x", Code: 45009}, true},
		{&wecomapi.APIError{API: "x", Code: 45033}, true},
		// 41096: another app (or an earlier attempt) is sending the welcome — do not resend.
		{&wecomapi.APIError{API: "x", Code: 41096}, false},
		{&wecomapi.APIError{API: "x", Code: 95001}, false},
		{&wecomapi.APIError{API: "x", Code: 95002}, false},
		{&wecomapi.APIError{API: "x", Code: 95018}, false},
		{&wecomapi.APIError{API: "x", Code: 40007}, false},
		{&wecomapi.APIError{API: "x", Code: wecomapi.CodeTransport, HTTPStatus: 502}, true},
		{&wecomapi.APIError{API: "x", Code: wecomapi.CodeTransport, Timeout: true}, true},
		{&wecomapi.APIError{API: "x", Code: wecomapi.CodeTransport}, true},
		{&wecomapi.APIError{API: "x", Code: wecomapi.CodeTransport, HTTPStatus: 403}, false},
		{&wecomapi.APIError{API: "x", Code: 41051}, false},
		{&wecomapi.APIError{API: "x", Code: 48002}, false},
		{&wecomapi.APIError{API: "x", Code: 60020}, false},
		{&wecomapi.APIError{API: "x", Code: 40096}, false},
		{&wecomapi.APIError{API: "x", Code: 93000}, false},
		{&wecomapi.APIError{API: "x", Code: 48003}, false},
		{&wecomapi.APIError{API: "x", Code: 301002}, false},
		{&wecomapi.APIError{API: "x", Code: 40001}, true},
		{&wecomapi.APIError{API: "gettoken", Code: 40001}, false},
		{&wecomapi.APIError{API: "x", Code: 12345}, false},
		{fmt.Errorf("wrapped: %w", &wecomapi.APIError{API: "x", Code: -1}), true},
		{context.Canceled, true},
		{context.DeadlineExceeded, true},
		{wecomapi.ErrWelcomeExpired, false},
		{errors.New("something else"), false},
	} {
		if got := wecomapi.Classify(tc.err); got != tc.retry {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.retry)
		}
	}
}

// 301002 on message/send means the agent id and the secret belong to different apps.
func TestAgentMismatchHint(t *testing.T) {
	t.Parallel()
	err := &wecomapi.APIError{API: "message/send", Code: 301002}
	if !strings.Contains(err.Hint(), "WECOM_AGENT_ID") || !strings.Contains(err.Hint(), "WECOM_SECRET") {
		t.Errorf("hint %q does not name WECOM_AGENT_ID and WECOM_SECRET", err.Hint())
	}
}

func TestHints(t *testing.T) {
	t.Parallel()
	for code, words := range map[int64]string{
		48002: "客户联系",
		60020: "企业可信IP",
		41051: "not retried",
		93000: "webhook",
		40096: "external_userid",
		41096: "not resent",
		48003: "suite_id",
		95002: "48 hours",
		95018: "held by a person",
		40007: "3 days",
	} {
		err := &wecomapi.APIError{API: "x", Code: code, Msg: "m"}
		if !strings.Contains(err.Hint(), words) || !strings.Contains(err.Error(), words) {
			t.Errorf("%d: hint %q / error %q lack %q", code, err.Hint(), err.Error(), words)
		}
	}
}
