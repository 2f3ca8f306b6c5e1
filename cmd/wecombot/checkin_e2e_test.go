package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCampaignReminderEndToEnd runs the real server with a campaign whose
// reminder fell due two minutes ago: the scheduler's catch-up appends the
// tick, the engine turns it into one robot post; a restart appends the same
// slot again, which the log drops, so the post is not repeated.
func TestCampaignReminderEndToEnd(t *testing.T) {
	t.Parallel()
	zone, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Skip("no tzdata")
	}
	due := time.Now().In(zone).Add(-2 * time.Minute)
	scenario := fmt.Sprintf(`brand: {name: 测试, zone: Asia/Shanghai}
campaigns:
  - name: 早安
    days: 7
    windows: ["00:00-24:00"]
    keywords: [打卡]
    reminders:
      - {cron: "%d %d * * *", kind: summary, to: robot, robot: 运营群, text: 今日打卡小结}
`, due.Minute(), due.Hour())
	path := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(path, []byte(scenario), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	env := map[string]string{"WECOMBOT_DATA_DIR": dataDir, "WECOMBOT_SCENARIOS": path}

	count := func(in *instance) (ticks, posts int) {
		_, body := in.get(t, "/api/v1/events?limit=500")
		var ev struct {
			Events []struct {
				Type string `json:"type"`
			} `json:"events"`
		}
		_ = json.Unmarshal([]byte(body), &ev)
		for _, e := range ev.Events {
			if e.Type == "campaign.tick" {
				ticks++
			}
		}
		_, body = in.get(t, "/api/v1/outbox?limit=500")
		var ob struct {
			Actions []struct {
				Kind    string          `json:"kind"`
				Payload json.RawMessage `json:"payload"`
			} `json:"actions"`
		}
		_ = json.Unmarshal([]byte(body), &ob)
		for _, a := range ob.Actions {
			if a.Kind == "robot" && strings.Contains(string(a.Payload), "今日打卡小结") {
				posts++
			}
		}
		return ticks, posts
	}
	in := startServe(t, env)
	eventuallyT(t, "the caught-up reminder's robot post", 10*time.Second, func() bool {
		_, posts := count(in)
		return posts == 1
	})
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	in = startServe(t, env)
	// The scheduler loads (and catches up) before the server listens; once
	// the log is drained any re-posted reminder would have been sent.
	in.waitDrained(t)
	eventuallyT(t, "the restarted server to settle", 5*time.Second, func() bool {
		ticks, posts := count(in)
		return ticks == 1 && posts == 1
	})
	if !strings.Contains(in.logs.String(), "campaign tick already in the log") {
		t.Errorf("the restart's catch-up should have hit the log's dedupe:\n%s", in.logs)
	}
}
