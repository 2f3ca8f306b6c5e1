package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// countingBody is an endless request body that counts what a handler reads.
type countingBody struct{ n int64 }

func (c *countingBody) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'A'
	}
	c.n += int64(len(p))
	return len(p), nil
}

func (c *countingBody) Close() error { return nil }

// TestEveryRouteCapsItsBody walks the route table: whatever the route, a
// handler fed an endless body (with every credential it could want) stops
// reading at its cap, answers without a 5xx, and never reads more than
// MaxBodyBytes plus a buffer.
func TestEveryRouteCapsItsBody(t *testing.T) {
	t.Parallel()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	crypter, err := wecom.NewCrypter("limitsToken", strings.Repeat("Q", 42)+"A", "wwlimits")
	if err != nil {
		t.Fatal(err)
	}
	links, _ := signlink.New([]byte("link-secret-0123456789"), nil)
	sc := scenarios.LoadDefault()
	s := New(Options{Store: st, Log: zerolog.Nop(), Metrics: metrics.New(), Crypter: crypter, AIBotCrypter: crypter,
		AdminToken: "limits-admin", ShopSecret: "limits-shop-secret", Links: links,
		Scenario: func() *scenarios.Scenario { return sc }})
	const limit = MaxBodyBytes + 64<<10
	for _, rt := range s.Routes() {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		if method == http.MethodGet {
			continue
		}
		path = strings.NewReplacer("{state}", "xhs", "{id}", "1", "{pool}", "NEW", "{$}", "", "{external_userid}", "wm1").Replace(path)
		t.Run(rt.Pattern, func(t *testing.T) {
			body := &countingBody{}
			req := httptest.NewRequest(method, path+"?msg_signature=x&timestamp=1&nonce=1", nil)
			req.Body = body
			req.ContentLength = -1
			req.Header.Set("Authorization", "Bearer limits-admin")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(HeaderShopTimestamp, "1")
			req.Header.Set(HeaderShopSignature, "sha256=00")
			rec := httptest.NewRecorder()
			done := make(chan struct{})
			go func() { s.ServeHTTP(rec, req); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("still reading after 10 s (%d bytes)", body.n)
			}
			if body.n > limit {
				t.Errorf("read %d bytes, cap is %d", body.n, limit)
			}
			if rec.Code >= 500 {
				t.Errorf("answered %d: %s", rec.Code, rec.Body)
			}
			t.Logf("%d after reading %d bytes", rec.Code, body.n)
			_, _ = io.Copy(io.Discard, rec.Body)
		})
	}
}
