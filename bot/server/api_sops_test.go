package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// GET /api/v1/sops lists the scenario's SOPs with the engine's counts;
// /sops/{name} pages its members with the step each is at (state filter,
// cursor); pause and resume append the operator's sop.state, which the
// engine applies; unknown names are 404, bad parameters 400.
func TestSOPAPI(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("s.yaml", []byte(`brand: {name: 山茶集, zone: Asia/Shanghai}
channels: [{state: xhs, name: 小红书}]
welcome:
  default:
    text: 你好
    follow_ups: [{after: 1d, via: mass_send, text: 喝得习惯吗}]
sops:
  - name: 新客
    trigger: added
    steps:
      - {day: 0, via: staff_task, text: "问候{{.Name}}"}
      - {day: 2, at: "10:00", via: mass_send, text: 新客专享}
    stop: [purchase]
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, sc.Brand.Zone)
	eng := engine.New(func() *scenarios.Scenario { return sc }, zerolog.Nop(), func() time.Time { return now })
	n := 0
	apply := func(ev *bot.Event) {
		t.Helper()
		n++
		ev.At, ev.ReceivedAt = now, now
		if ev.DedupeKey == "" {
			ev.DedupeKey = fmt.Sprintf("t|%d", n)
		}
		if _, err := st.AppendEvent(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if err := st.Update(context.Background(), func(tx bot.Tx) error { return eng.Handle(context.Background(), tx, ev) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"wm_a", "wm_b", "wm_c"} {
		apply(&bot.Event{Type: bot.EventContactAdd, ExternalUserID: m, StaffID: "zhang", State: "xhs", Data: map[string]string{bot.DataName: "客户" + m}})
	}
	apply(&bot.Event{Type: bot.EventOrderPaid, ExternalUserID: "wm_b", Data: map[string]string{bot.DataOrderID: "O1", bot.DataAmountFen: "100"}})
	s := New(Options{Store: st, Log: zerolog.Nop(), Metrics: metrics.New(), Scenario: func() *scenarios.Scenario { return sc }, Now: func() time.Time { return now }})
	call := func(method, path string) (int, map[string]any) {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		req.RemoteAddr = "127.0.0.1:5555"
		rec := httptest.NewRecorder()
		s.HTTPServer().Handler.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: %d %q", method, path, rec.Code, rec.Body.String())
		}
		return rec.Code, out
	}
	code, out := call("GET", "/api/v1/sops")
	sops, _ := out["sops"].([]any)
	if code != 200 || len(sops) != 2 {
		t.Fatalf("list: %d %v", code, out)
	}
	welcome, sop := sops[0].(map[string]any), sops[1].(map[string]any)
	steps, _ := sop["steps"].([]any)
	if welcome["trigger"] != "welcome" || sop["name"] != "新客" || sop["enrolled"] != 3.0 || sop["stopped"].(map[string]any)["purchase"] != 1.0 || len(steps) != 2 ||
		steps[1].(map[string]any)["at"] != "10:00" || steps[0].(map[string]any)["counts"].(map[string]any)["queued"] != 3.0 ||
		steps[1].(map[string]any)["counts"].(map[string]any)["batched"] != 3.0 {
		t.Fatalf("SOP view %v", sop)
	}
	code, out = call("GET", "/api/v1/sops/"+"%E6%96%B0%E5%AE%A2")
	members, _ := out["members"].([]any)
	if code != 200 || len(members) != 3 {
		t.Fatalf("detail: %d %v", code, out)
	}
	byID := map[string]map[string]any{}
	for _, m := range members {
		mm := m.(map[string]any)
		byID[mm["member"].(string)] = mm
	}
	if a := byID["wm_a"]; a["state"] != "running" || a["step"] != 1.0 || a["name"] != "客户wm_a" || a["staff"] != "zhang" {
		t.Errorf("wm_a: %v", a)
	}
	if b := byID["wm_b"]; b["state"] != "stopped" || b["stop"] != "purchase" {
		t.Errorf("wm_b: %v", b)
	}
	if _, out = call("GET", "/api/v1/sops/%E6%96%B0%E5%AE%A2?state=stopped"); len(out["members"].([]any)) != 1 {
		t.Errorf("state=stopped: %v", out)
	}
	if _, out = call("GET", "/api/v1/sops/%E6%96%B0%E5%AE%A2?limit=2"); len(out["members"].([]any)) != 2 || out["next_cursor"] != "wm_b" {
		t.Errorf("limit=2: %v", out)
	}
	if _, out = call("GET", "/api/v1/sops/%E6%96%B0%E5%AE%A2?limit=2&cursor=wm_b"); len(out["members"].([]any)) != 1 || out["next_cursor"] != "" {
		t.Errorf("second page: %v", out)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/api/v1/sops/nope", 404, "no SOP"},
		{"GET", "/api/v1/sops/%E6%96%B0%E5%AE%A2?state=asleep", 400, "state"},
		{"GET", "/api/v1/sops/%E6%96%B0%E5%AE%A2?colour=red", 400, "colour"},
		{"POST", "/api/v1/sops/welcome:default/pause", 400, "follow-ups"},
	} {
		code, out := call(tc.method, tc.path)
		if code != tc.code || !strings.Contains(fmt.Sprint(out), tc.want) {
			t.Errorf("%s %s: %d %v, want %d naming %q", tc.method, tc.path, code, out, tc.code, tc.want)
		}
	}
	// Pause: one sop.state event, applied by the engine.
	before, _ := st.EventStats(context.Background())
	if code, out = call("POST", "/api/v1/sops/%E6%96%B0%E5%AE%A2/pause"); code != 202 || out["paused"] != true {
		t.Fatalf("pause: %d %v", code, out)
	}
	evs, err := st.Events(context.Background(), before.LastSeq, 10)
	if err != nil || len(evs) != 1 || evs[0].Type != bot.EventSOPState || evs[0].Data[bot.DataPaused] != "true" {
		t.Fatalf("pause appended %+v %v", evs, err)
	}
	if err := st.Update(context.Background(), func(tx bot.Tx) error { return eng.Handle(context.Background(), tx, &evs[0]) }); err != nil {
		t.Fatal(err)
	}
	if _, out = call("GET", "/api/v1/sops/%E6%96%B0%E5%AE%A2"); out["sop"].(map[string]any)["paused"] != true {
		t.Errorf("after the engine applied the pause: %v", out["sop"])
	}
}
