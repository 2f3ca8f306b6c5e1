package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/scenarios"
)

// adminCall makes one admin API request with the bearer token (if any) and
// decodes a JSON answer.
func (in *instance) adminCall(t *testing.T, method, path, token string, body []byte) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, in.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw)
}

// simulateMember fires sandbox events for one member through the real server.
func (in *instance) simulateMember(t *testing.T, token, id, name, state string, actions ...string) {
	t.Helper()
	for _, a := range actions {
		body, _ := json.Marshal(map[string]string{"action": a, "member": id, "name": name, "state": state})
		code, m, raw := in.adminCall(t, "POST", "/api/v1/sandbox/events", token, body)
		if code != http.StatusAccepted || m["processed"] != true {
			t.Fatalf("sandbox %s for %s: %d %s", a, id, code, raw)
		}
	}
}

// TestSandboxJourneyEndToEnd is the newcomer's minute: on the embedded
// defaults, the simulator's buttons take a member from add to purchase
// through the real pipeline and engine, and the console shows it.
func TestSandboxJourneyEndToEnd(t *testing.T) {
	t.Parallel()
	in := startServe(t, map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()})
	in.simulateMember(t, "", "wm_newbie", "小新", "xhs", "add", "join_group", "check_in", "order")

	code, m, raw := in.adminCall(t, "GET", "/api/v1/members/wm_newbie", "", nil)
	if code != 200 {
		t.Fatalf("%d %s", code, raw)
	}
	mem := m["member"].(map[string]any)
	if mem["stage"] != "purchase" || mem["check_ins"].(float64) != 1 || mem["orders"].(float64) != 1 || mem["channel"] != "小红书" {
		t.Errorf("journey did not land: %v", mem)
	}
	if len(m["conversation"].([]any)) < 2 || !strings.Contains(raw, `"type":"welcome"`) {
		t.Errorf("no welcome / check-in reply in the profile: %s", raw)
	}
	_, f, _ := in.adminCall(t, "GET", "/api/v1/funnel", "", nil)
	for _, s := range f["stages"].([]any) {
		sm := s.(map[string]any)
		want := 1.0
		if sm["stage"] == "loyal" {
			want = 0
		}
		if sm["reached"].(float64) != want {
			t.Errorf("funnel %v", f["stages"])
		}
	}
	// The page itself needs no token, and carries no data.
	code, page := in.get(t, "/")
	if code != 200 || !strings.Contains(page, `data-sandbox="true"`) || strings.Contains(page, "wm_newbie") {
		t.Errorf("dashboard page: %d %s", code, page)
	}
}

// TestConsoleLiveModeAndToken: outside sandbox the simulator refuses with
// 403; with a token every data call needs it; the page and assets do not.
func TestConsoleLiveModeAndToken(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	env, _ := liveEnv(t, fake, t.TempDir())
	env["WECOMBOT_ADMIN_TOKEN"] = "s3cret-admin-token"
	in := startServe(t, env)
	if code, _, raw := in.adminCall(t, "GET", "/api/v1/funnel", "", nil); code != 401 {
		t.Errorf("funnel without token: %d %s", code, raw)
	}
	if code, m, raw := in.adminCall(t, "POST", "/api/v1/sandbox/events", "s3cret-admin-token", []byte(`{"action":"add"}`)); code != 403 || m["code"] != "sandbox_only" {
		t.Errorf("sandbox in live mode: %d %s", code, raw)
	}
	for _, p := range []string{"/", "/assets/app.js", "/assets/app.css"} {
		if code, _ := in.get(t, p); code != 200 {
			t.Errorf("%s: %d without token", p, code)
		}
	}
	if code, _ := in.get(t, "/assets/missing.js"); code != 404 {
		t.Errorf("missing asset: %d", code)
	}
}

// TestConsoleScenarioReloadEndToEnd edits a scenario file on disk, sees the
// validation problems through the API, and reloads.
func TestConsoleScenarioReloadEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, data := range scenarios.DefaultFiles() {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The files the demo attaches live beside it (images/cover.png).
	for name, data := range scenarios.DefaultMedia() {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	in := startServe(t, map[string]string{"WECOMBOT_DATA_DIR": t.TempDir(), "WECOMBOT_SCENARIOS": dir})
	code, m, raw := in.adminCall(t, "GET", "/api/v1/scenarios", "", nil)
	if code != 200 || len(m["files"].([]any)) != len(scenarios.DefaultFiles()) {
		t.Fatalf("%d %.300s", code, raw)
	}
	version := m["status"].(map[string]any)["version"]

	broken := strings.Replace(string(scenarios.DefaultFiles()["10-channels.yaml"]), "state: xhs", "state: xhs\n    colour: red", 1)
	req, _ := http.NewRequest("POST", in.base+"/api/v1/scenarios/validate?name=10-channels.yaml", strings.NewReader(broken))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 422 || !strings.Contains(string(body), "10-channels.yaml:") {
		t.Errorf("validate: %d %s", resp.StatusCode, body)
	}

	// A good edit on disk, then reload through the API.
	edited := string(scenarios.DefaultFiles()["10-channels.yaml"]) + "\n# edited by the operator\n"
	if err := os.WriteFile(filepath.Join(dir, "10-channels.yaml"), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	code, m, raw = in.adminCall(t, "POST", "/api/v1/scenarios/reload", "", nil)
	if code != 200 {
		t.Fatalf("reload: %d %s", code, raw)
	}
	if m["status"].(map[string]any)["version"] == version {
		// The watcher may have won the race; either way the new version is in force.
		_, m, _ = in.adminCall(t, "GET", "/api/v1/scenarios", "", nil)
		if m["status"].(map[string]any)["version"] == version {
			t.Errorf("version unchanged after an edit: %s", raw)
		}
	}
	// A broken file on disk: reload answers 422 and the last good stays.
	if err := os.WriteFile(filepath.Join(dir, "10-channels.yaml"), []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, raw = in.adminCall(t, "POST", "/api/v1/scenarios/reload", "", nil)
	if code != 422 || !strings.Contains(raw, "colour") {
		t.Errorf("broken reload: %d %s", code, raw)
	}
	_, m, _ = in.adminCall(t, "GET", "/api/v1/scenarios", "", nil)
	if st := m["status"].(map[string]any); st["last_error"] == nil || !strings.Contains(st["last_error"].(string), "10-channels.yaml") {
		t.Errorf("last error not reported: %v", st)
	}
}
