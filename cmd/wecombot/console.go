package main

import (
	"context"
	"io"
	"os"
	"sort"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/server"
	"github.com/wecombot/wecombot/bot/simulation"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/scenarios/holder"
)

// consoleScenarios gives the operator console the running scenarios: their
// status and files, reload, and simulation on a temporary store.
type consoleScenarios struct{ app *engineApp }

var _ server.ScenarioControl = consoleScenarios{}

func (c consoleScenarios) Status() holder.Status { return c.app.holder.Status() }

func (c consoleScenarios) Reload() error { return c.app.Reload("admin API") }

// Files returns the source of the scenario in force: the embedded demo's
// files, or the files read from WECOMBOT_SCENARIOS.
func (c consoleScenarios) Files() ([]server.ScenarioFile, error) {
	sc := c.app.holder.Current()
	var out []server.ScenarioFile
	if c.app.holder.Path() == "" {
		for name, data := range scenarios.DefaultFiles() {
			out = append(out, server.ScenarioFile{Name: "embedded:default/" + name, YAML: string(data)})
		}
	} else {
		for _, f := range sc.Files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, server.ScenarioFile{Name: f, YAML: string(data)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Simulate runs script through the engine with the scenario in force, on a
// throwaway store: the live data is never touched.
func (c consoleScenarios) Simulate(ctx context.Context, script io.Reader, out io.Writer) error {
	store, done, err := scratchStore("console-sim")
	if err != nil {
		return err
	}
	defer done()
	return simulation.Run(ctx, c.app.holder.Current(), store, script, out)
}

// consoleFunnelTTL is how stale the console's check-in report may be: a few seconds
// in the sandbox (a newcomer clicking through the simulator wants to see
// each step), 30 s in production (one pass over the check-in days per refresh).
func consoleFunnelTTL(cfg interface{ Sandbox() bool }) time.Duration {
	if cfg.Sandbox() {
		return 2 * time.Second
	}
	return 30 * time.Second
}

// pointsSection puts the member's newest points ledger entries (check-in
// points, streak bonuses, other features' grants) on their detail.
func pointsSection() server.MemberSection {
	return server.MemberSection{Name: "points_ledger", Read: func(tx bot.Tx, m *bot.Member) (any, error) {
		entries, err := checkin.PointsHistory(tx, m.ExternalUserID, 0, 100000)
		if err != nil {
			return nil, err
		}
		out := make([]checkin.Entry, 0, min(len(entries), 50))
		for i := len(entries) - 1; i >= 0 && len(out) < 50; i-- {
			out = append(out, entries[i])
		}
		return out, nil
	}}
}
