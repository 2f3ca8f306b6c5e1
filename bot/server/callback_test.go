package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/storage/bolt"
)

// TestCallbackQuery: the callback's three parameters read as
// r.URL.Query().Get reads them, escapes, repeats, broken pairs and all.
func TestCallbackQuery(t *testing.T) {
	for _, raw := range []string{
		"", "msg_signature=a&timestamp=1&nonce=n",
		"nonce=n&timestamp=1&msg_signature=a&extra=x",
		"msg_signature=a&msg_signature=b&timestamp=&timestamp=2&nonce=n",
		"msg_signature=%61%2B&timestamp=1+2&nonce=%zz&nonce=ok",
		"msg_%73ignature=a&time%zzstamp=1&timestamp=3&&&nonce",
		"msg_signature=a;b&timestamp=1&nonce=n", "msg_signature=a&timestamp=1;&nonce=n",
		"a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11&l=12&m=13&n=14&o=15&p=16&msg_signature=s&timestamp=1&nonce=n",
		"=&msg_signature==&timestamp=%&nonce=%2",
	} {
		q, _ := url.ParseQuery(raw)
		sig, ts, nonce := callbackQuery(raw)
		if sig != q.Get("msg_signature") || ts != q.Get("timestamp") || nonce != q.Get("nonce") {
			t.Errorf("callbackQuery(%q) = %q, %q, %q; url.ParseQuery gives %q, %q, %q", raw, sig, ts, nonce,
				q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"))
		}
	}
}

func FuzzCallbackQuery(f *testing.F) {
	f.Add("msg_signature=%61%2B&timestamp=1+2&nonce=%zz&nonce=ok")
	f.Add("msg_signature=a&msg_signature=b&timestamp=&timestamp=2&nonce=n;")
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		sig, ts, nonce := callbackQuery(raw)
		if sig != q.Get("msg_signature") || ts != q.Get("timestamp") || nonce != q.Get("nonce") {
			t.Fatalf("callbackQuery(%q) = %q, %q, %q; url.ParseQuery gives %q, %q, %q", raw, sig, ts, nonce,
				q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"))
		}
	})
}

// TestCallbacksKeepTheirOwnBodies: body buffers serve one request after
// another (bodyBuffers), rejected ones among them, yet every stored event
// holds its own callback's plaintext.
func TestCallbacksKeepTheirOwnBodies(t *testing.T) {
	c, err := wecom.NewCrypter("benchToken", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwbench")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "t.db")
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Store: st, Crypter: c, Log: zerolog.Nop(), Metrics: metrics.New()})
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	var plains []string
	for i := range 50 {
		// Of growing and shrinking sizes, so a buffer holds a longer body's
		// tail past a shorter one's end.
		plain := fmt.Sprintf("<xml><ToUserName><![CDATA[wwbench]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"+
			"<CreateTime>%s</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>"+
			"<ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID>"+
			"<ExternalUserID><![CDATA[wm_%d]]></ExternalUserID><State><![CDATA[xhs]]></State><Pad>%s</Pad></xml>", ts, i, bytes.Repeat([]byte("s"), (i*37)%300))
		nonce := strconv.Itoa(i)
		body, sig, err := c.SealXML([]byte(plain), ts, nonce)
		if err != nil {
			t.Fatal(err)
		}
		target := "/wecom/callback?" + url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}.Encode()
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body)))
		if rec.Code != http.StatusOK {
			t.Fatalf("callback %d: %d %s", i, rec.Code, rec.Body)
		}
		plains = append(plains, plain)
		forged := bytes.ReplaceAll(body, []byte("<Encrypt><![CDATA["), []byte("<Encrypt><![CDATA[AAAA"))
		rec = httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, bytes.NewReader(forged)))
		if rec.Code != http.StatusForbidden {
			t.Fatalf("forged callback %d: %d %s, want 403", i, rec.Code, rec.Body)
		}
	}
	if err := st.Close(); err != nil { // moves every event into bbolt
		t.Fatal(err)
	}
	st, err = bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.PendingEvents(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(plains) {
		t.Fatalf("%d events stored, want %d", len(evs), len(plains))
	}
	for i, ev := range evs {
		if ev.Raw != plains[i] {
			t.Errorf("event %d holds %q, want %q", i, ev.Raw, plains[i])
		}
	}
}
