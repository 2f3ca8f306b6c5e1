package ai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// ResponseSender delivers aibot_response actions: a markdown message POSTed
// to the AI bot message's response_url (one use, valid an hour).
type ResponseSender struct {
	Client *http.Client
}

// NewResponseSender returns a sender with a 10 s timeout.
func NewResponseSender() *ResponseSender {
	return &ResponseSender{Client: &http.Client{Timeout: 10 * time.Second}}
}

// NewResponseSenderVia returns a sender whose posts go through the egress
// proxy (WECOMBOT_EGRESS_PROXY: response_url is a WeCom host, which checks
// the trusted-IP list like the API does); "" means direct.
func NewResponseSenderVia(proxy string) (*ResponseSender, error) {
	s := NewResponseSender()
	if proxy == "" {
		return s, nil
	}
	u, err := url.Parse(proxy)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("egress proxy is not an http(s) URL")
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyURL(u)
	s.Client.Transport = t
	return s, nil
}

// Send posts the answer (bot.Sender).
func (s *ResponseSender) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	var p bot.AIBotResponse
	if err := a.Decode(&p); err != nil {
		return bot.SendResult{}, false, err
	}
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return bot.SendResult{}, false, fmt.Errorf("aibot_response %d: response_url is not an http(s) URL", a.ID)
	}
	body, _ := json.Marshal(map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": bot.Clip(p.Markdown, bot.MaxAIBotText)}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return bot.SendResult{}, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		// The URL carries a one-use code: keep it out of the error.
		return bot.SendResult{}, true, fmt.Errorf("aibot_response %d: post to response_url failed", a.ID)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 500 {
		return bot.SendResult{}, true, fmt.Errorf("aibot_response %d: response_url answered HTTP %d", a.ID, resp.StatusCode)
	}
	var res struct {
		Errcode int64  `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &res) != nil || res.Errcode != 0 {
		return bot.SendResult{}, false, fmt.Errorf("aibot_response %d: response_url refused it (HTTP %d, errcode %d %s)", a.ID, resp.StatusCode, res.Errcode, res.Errmsg)
	}
	return bot.SendResult{Detail: "response_url"}, false, nil
}
