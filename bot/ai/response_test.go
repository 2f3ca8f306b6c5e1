package ai_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/ai"
)

// response_url is a WeCom host: posts to it go through the egress proxy,
// like every other call to WeCom.
func TestResponseURLThroughEgressProxy(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.String()) // a forward proxy sees the absolute URL
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"errcode":0,"errmsg":"ok"}`))
	}))
	defer proxy.Close()
	s, err := ai.NewResponseSenderVia(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := bot.NewAction(bot.ActionAIBotResponse, "k", bot.AIBotResponse{URL: "http://qyapi.example.invalid/cgi-bin/aibot/response?response_code=RC", Markdown: "**答**"})
	if _, retry, err := s.Send(context.Background(), a); err != nil || retry {
		t.Fatalf("send: retry %v, %v", retry, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "POST http://qyapi.example.invalid/cgi-bin/aibot/response?response_code=RC" {
		t.Fatalf("proxy saw %v", seen)
	}
	if _, err := ai.NewResponseSenderVia("socks5://x"); err == nil {
		t.Error("a socks proxy URL was accepted")
	}
}
