package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// POST /api/v1/broadcasts: a dry run answers the count and per-staff split
// and appends nothing; a real one appends one broadcast.create event; bad
// input is a 400 problem naming the field.
func TestBroadcastAPI(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("s.yaml", []byte(`brand: {name: 山茶集}
channels: [{state: xhs, name: 小红书}, {state: douyin, name: 抖音}]
segments: [{name: 小红书客户, channels: [xhs]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if err := st.Update(context.Background(), func(tx bot.Tx) error {
		for i, id := range []string{"wm_a", "wm_b", "wm_c", "wm_d"} {
			ch := []string{"小红书", "小红书", "小红书", "抖音"}[i]
			staff := []string{"zhang", "li", "zhang", "zhang"}[i]
			if err := tx.PutMember(&bot.Member{ExternalUserID: id, Channel: ch, Follows: []bot.Follow{{StaffID: staff, AddedAt: now}}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Store: st, Log: zerolog.Nop(), Metrics: metrics.New(), Scenario: func() *scenarios.Scenario { return sc }, Now: func() time.Time { return now }})
	post := func(body string) (int, map[string]any, http.Header) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/broadcasts", strings.NewReader(body))
		req.RemoteAddr = "127.0.0.1:5555"
		rec := httptest.NewRecorder()
		s.HTTPServer().Handler.ServeHTTP(rec, req)
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out, rec.Header()
	}
	code, out, _ := post(`{"segment": "小红书客户", "text": "{{.Name}}，上新", "dry_run": true}`)
	p, _ := out["preview"].(map[string]any)
	if code != http.StatusOK || p["targeted"] != 3.0 || p["per_staff"].(map[string]any)["zhang"] != 2.0 || p["per_staff"].(map[string]any)["li"] != 1.0 {
		t.Fatalf("dry run: %d %v", code, out)
	}
	code, out, _ = post(`{"filter": {"channels": ["douyin"]}, "text": "hi", "dry_run": true}`)
	if p, _ := out["preview"].(map[string]any); code != http.StatusOK || p["targeted"] != 1.0 {
		t.Fatalf("inline filter dry run: %d %v", code, out)
	}
	if stats, _ := st.EventStats(context.Background()); stats.LastSeq != 0 {
		t.Fatalf("a dry run appended %d events", stats.LastSeq)
	}
	for _, tc := range []struct{ body, param string }{
		{`{"segment": "小红书客户", "text": "hi", "colour": "red"}`, "colour"},
		{`{"segment": "没有", "text": "hi"}`, "segment"},
		{`{"segment": "小红书客户", "text": ""}`, "text"},
		{`{"segment": "小红书客户", "text": "hi", "at": "2020-01-01 10:00"}`, "at"},
		{`{"segment": "小红书客户", "text": "hi", "via": "sms"}`, "via"},
		{`{"segment": 5, "text": "hi"}`, "segment"},
	} {
		code, out, hdr := post(tc.body)
		if code != http.StatusBadRequest || out["param"] != tc.param || hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %v (want 400 naming %s)", tc.body, code, out, tc.param)
		}
	}
	code, out, _ = post(`{"name": "上新", "segment": "小红书客户", "text": "hi", "at": "2026-12-04 20:00"}`)
	if code != http.StatusAccepted || !strings.HasPrefix(out["id"].(string), "api-") {
		t.Fatalf("create: %d %v", code, out)
	}
	evs, _ := st.Events(context.Background(), 0, 10)
	if len(evs) != 1 || evs[0].Type != bot.EventBroadcastCreate || evs[0].Data[bot.DataBroadcastID] != out["id"] {
		t.Fatalf("events %+v", evs)
	}
}
