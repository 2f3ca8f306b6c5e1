package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/storage/bolt"
)

func newTestServer(t *testing.T, adminToken string) (*Server, *bolt.Store) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(Options{Store: st, Log: zerolog.Nop(), Metrics: metrics.New(), AdminToken: adminToken}), st
}

// TestEveryAdminRouteRequiresAuth walks the route table: no admin route
// answers without the token, and the wrong token gets 401 with no data.
func TestEveryAdminRouteRequiresAuth(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, "correct-horse")
	admin := 0
	for _, rt := range s.Routes() {
		if !rt.Admin {
			continue
		}
		admin++
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = strings.ReplaceAll(path, "{external_userid}", "wm1")
		path = strings.ReplaceAll(path, "{id}", "1")
		for _, auth := range []string{"", "Bearer wrong", "Basic Y29ycmVjdC1ob3JzZQ==", "Bearer correct-horse "} {
			req := httptest.NewRequest(method, path, nil)
			req.RemoteAddr = "127.0.0.1:5555"
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s with %q: %d, want 401", rt.Pattern, auth, rec.Code)
			}
			if strings.Contains(rec.Body.String(), `"members":`) || strings.Contains(rec.Body.String(), `"events":`) {
				t.Errorf("%s leaked data without auth", rt.Pattern)
			}
		}
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer correct-horse")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code == http.StatusUnauthorized || strings.Contains(rec.Body.String(), "loopback_only") {
			t.Errorf("%s with the right token: %d", rt.Pattern, rec.Code)
		}
	}
	if admin < 16 {
		t.Fatalf("route table lists only %d admin routes", admin)
	}
}

func TestAdminWithoutTokenIsLoopbackOnly(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, "")
	for addr, want := range map[string]int{"127.0.0.1:1": 200, "[::1]:1": 200, "10.0.0.7:1": 403, "203.0.113.9:1": 403} {
		req := httptest.NewRequest("GET", "/api/v1/status", nil)
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("from %s: %d, want %d", addr, rec.Code, want)
		}
	}
	// A reverse proxy on this host connects from loopback: forwarded
	// requests are never local.
	// Every line counts: an empty first line followed by a real one is
	// still a proxy, and so is a lone empty value.
	for _, h := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "Via", "X-Forwarded-Host"} {
		for _, lines := range [][]string{{"203.0.113.9"}, {"", "203.0.113.9"}, {""}} {
			req := httptest.NewRequest("GET", "/api/v1/status", nil)
			req.RemoteAddr = "127.0.0.1:1"
			req.Header[h] = lines
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != 403 {
				t.Errorf("loopback request with %s %q: %d, want 403", h, lines, rec.Code)
			}
		}
	}
}

func TestAdminQueryValidationAndMembers(t *testing.T) {
	t.Parallel()
	s, st := newTestServer(t, "")
	err := st.Update(context.Background(), func(tx bot.Tx) error {
		for _, m := range []*bot.Member{
			{ExternalUserID: "wm1", Name: "<script>alert(1)</script>", Stage: bot.StageAware, CreatedAt: time.Now()},
			{ExternalUserID: "wm2", Stage: bot.StageLoyal, CreatedAt: time.Now()},
		} {
			if err := tx.PutMember(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	do := func(path string) (int, map[string]any, string) {
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = "127.0.0.1:9"
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m, rec.Body.String()
	}
	cases := []struct {
		path string
		code int
		want string
	}{
		{"/api/v1/events?limit=0", 400, "limit"},
		{"/api/v1/events?limit=abc", 400, "limit"},
		{"/api/v1/outbox?after=-1", 400, "after"},
		{"/api/v1/members?stage=vip", 400, "stage"},
		{"/api/v1/members/nobody", 404, "nobody"},
		{"/api/v1/members?stage=loyal", 200, "wm2"},
	}
	for _, tc := range cases {
		code, _, body := do(tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d containing %q", tc.path, code, body, tc.code, tc.want)
		}
	}
	_, m, body := do("/api/v1/members?limit=1")
	if m["total"].(float64) != 2 || m["next_cursor"] != "wm1" || len(m["members"].([]any)) != 1 {
		t.Errorf("pagination: %s", body)
	}
	if strings.Contains(body, "<script>") {
		t.Errorf("member text not escaped in JSON: %s", body)
	}
	_, _, body = do("/api/v1/members?cursor=wm1")
	if !strings.Contains(body, "wm2") || strings.Contains(body, `"wm1"`) {
		t.Errorf("after cursor: %s", body)
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	s, st := newTestServer(t, "")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Fatalf("healthz %d", rec.Code)
	}
	st.Close()
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("healthz with storage closed: %d", rec.Code)
	}
}

func TestCallbackNotConfigured(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, "")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("POST", "/wecom/callback?msg_signature=a&timestamp=1&nonce=2", strings.NewReader("<xml/>")))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("%d", rec.Code)
	}
}

func TestHTTPServerHasTimeouts(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, "")
	h := s.HTTPServer()
	if h.ReadHeaderTimeout == 0 || h.ReadTimeout == 0 || h.WriteTimeout == 0 || h.IdleTimeout == 0 || h.MaxHeaderBytes == 0 {
		t.Fatalf("missing timeouts: %+v", h)
	}
}

type nopSender struct{}

func (nopSender) Send(context.Context, *bot.Action) (bot.SendResult, bool, error) {
	return bot.SendResult{}, false, nil
}

// TestHealthzEventLogBehind: with a running pipeline whose handler is
// stuck, /healthz turns 503 "event log behind" once the oldest pending
// event is older than HealthMaxEventAge, naming the age and the setting.
func TestHealthzEventLogBehind(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	release := make(chan struct{})
	pl := pipeline.New(pipeline.Options{Store: st, Log: zerolog.Nop(), PollInterval: 10 * time.Millisecond,
		Handle: func(ctx context.Context, tx bot.Tx, ev *bot.Event) error { <-release; return nil },
		Sender: nopSender{}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pl.Run(ctx) }()
	defer func() { close(release); cancel(); <-done }()
	<-pl.Ready()
	s := New(Options{Store: st, Pipeline: pl, Log: zerolog.Nop(), HealthMaxEventAge: 200 * time.Millisecond})
	if _, err := st.AppendEvent(ctx, &bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm1"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		if rec.Code == http.StatusServiceUnavailable {
			if b := rec.Body.String(); !strings.Contains(b, "event log behind") || !strings.Contains(b, "WECOMBOT_HEALTH_MAX_EVENT_AGE") {
				t.Fatalf("503 without the reason: %s", b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz still %d with an event pending past the threshold: %s", rec.Code, rec.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHealthzWhileMovesFail: while the store's moves of acknowledged
// callbacks into its database fail (the mover's reports, as serve wires
// OnMoveOutcome to the pipeline), /healthz answers 503 "store refuses
// writes" with the error and store_writable false, as for a failing
// AppendEvent; the first move that succeeds makes it 200 again.
func TestHealthzWhileMovesFail(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pl := pipeline.New(pipeline.Options{Store: st, Log: zerolog.Nop(), PollInterval: 10 * time.Millisecond,
		Handle: func(ctx context.Context, tx bot.Tx, ev *bot.Event) error { return nil }, Sender: nopSender{}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pl.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-pl.Ready()
	s := New(Options{Store: st, Pipeline: pl, Log: zerolog.Nop()})
	healthz := func() (int, map[string]any) {
		t.Helper()
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("healthz body %q: %v", rec.Body, err)
		}
		return rec.Code, body
	}
	if code, body := healthz(); code != http.StatusOK {
		t.Fatalf("healthz before any move failed: %d %v", code, body)
	}
	pl.ObserveMove(errors.New("move events into the database: write t.db: no space left on device"))
	if _, err := st.AppendEvent(ctx, &bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm1"}); err != nil {
		t.Fatal(err) // a write that still fits
	}
	pl.ObserveWrite(nil)
	code, body := healthz()
	if reason, _ := body["reason"].(string); code != http.StatusServiceUnavailable || body["status"] != "store refuses writes" ||
		body["store_writable"] != false || !strings.Contains(reason, "no space left on device") {
		t.Fatalf("healthz while moves fail: %d %v, want 503 store refuses writes with the error", code, body)
	}
	pl.ObserveMove(nil)
	if code, body := healthz(); code != http.StatusOK || body["store_writable"] != true {
		t.Fatalf("healthz after a move succeeded: %d %v, want 200", code, body)
	}
}
