package fakewecom_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

func post(t *testing.T, s *fakewecom.Server, path, body string) map[string]any {
	t.Helper()
	return postAs(t, s, path, "application/json", strings.NewReader(body))
}

func postAs(t *testing.T, s *fakewecom.Server, path, contentType string, body io.Reader) map[string]any {
	t.Helper()
	resp, err := http.Post(s.URL()+"/cgi-bin/"+path, contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func token(t *testing.T, s *fakewecom.Server) string {
	t.Helper()
	resp, err := http.Get(s.URL() + "/cgi-bin/gettoken?corpid=ww&corpsecret=sec")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out.AccessToken
}

func TestTokensAndState(t *testing.T) {
	s := fakewecom.New(t)
	if got := post(t, s, "message/send?access_token=nope", `{}`)["errcode"]; got != 40014.0 {
		t.Errorf("unknown token: errcode %v, want 40014", got)
	}
	tok := token(t, s)
	if got := post(t, s, "externalcontact/add_corp_tag?access_token="+tok, `{"group_name":"g","tag":[{"name":"a"}]}`)["errcode"]; got != 0.0 {
		t.Fatalf("add_corp_tag errcode %v", got)
	}
	if got := post(t, s, "externalcontact/add_corp_tag?access_token="+tok, `{"group_name":"g","tag":[{"name":"a"}]}`)["errcode"]; got != 40071.0 {
		t.Errorf("duplicate tag: errcode %v, want 40071", got)
	}
	if s.TagID("g", "a") == "" {
		t.Error("tag not stored")
	}
	s.ExpireTokens()
	if got := post(t, s, "message/send?access_token="+tok, `{}`)["errcode"]; got != 42001.0 {
		t.Errorf("expired token: errcode %v, want 42001", got)
	}
	calls := s.Calls(fakewecom.APIGetToken)
	if len(calls) != 1 || calls[0].Query.Get("corpsecret") != "" || calls[0].Query.Get("corpid") != "ww" {
		t.Errorf("gettoken recorded as %+v", calls)
	}
	if s.Count("") != 5 {
		t.Errorf("Count = %d, want 5", s.Count(""))
	}
}

// A gettoken already received when the tokens expire hands out an expired
// token too: "every token so far" must not depend on when the answer left.
func TestTokenInFlightAtExpiryIsExpired(t *testing.T) {
	s := fakewecom.New(t)
	s.Delay(fakewecom.APIGetToken, 300*time.Millisecond)
	got := make(chan string, 1)
	go func() { // not token(): t.Fatal belongs to the test's goroutine
		var out struct {
			AccessToken string `json:"access_token"`
		}
		if resp, err := http.Get(s.URL() + "/cgi-bin/gettoken?corpid=ww&corpsecret=sec"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
		}
		got <- out.AccessToken
	}()
	for deadline := time.Now().Add(5 * time.Second); s.Count(fakewecom.APIGetToken) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("gettoken never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	s.ExpireTokens()
	tok := <-got
	if tok == "" {
		t.Fatal("no token")
	}
	if code := post(t, s, "message/send?access_token="+tok, `{}`)["errcode"]; code != 42001.0 {
		t.Errorf("token of a gettoken in flight at ExpireTokens: errcode %v, want 42001", code)
	}
}
