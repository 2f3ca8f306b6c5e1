package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/simulation"
	"github.com/wecombot/wecombot/config"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/scenarios/holder"
	"github.com/wecombot/wecombot/storage/bolt"
)

// engineApp ties the scenario holder (hot reload) to the engine.
type engineApp struct {
	holder *holder.Holder
	engine *engine.Engine
	log    zerolog.Logger
	m      *metrics.Metrics
	// onLoad runs on Loaded (once serving) and after every successful reload.
	onLoad func(sc *scenarios.Scenario)
}

// loadScenarios loads the scenarios serve starts with into a holder.
func loadScenarios(cfg *config.Config, log zerolog.Logger, m *metrics.Metrics) (*holder.Holder, error) {
	h, err := holder.New(cfg.Scenarios)
	if err != nil {
		return nil, fmt.Errorf("scenarios:\n%w", err)
	}
	m.Reload(true)
	st := h.Status()
	log.Info().Str("source", st.Source).Str("version", st.Version).Strs("files", st.Files).Msg("scenarios loaded")
	return h, nil
}

// newEngine builds the engine over h; onLoad (may be nil) runs on Loaded and
// after every successful reload.
func newEngine(h *holder.Holder, log zerolog.Logger, m *metrics.Metrics, onLoad func(*scenarios.Scenario)) *engineApp {
	return &engineApp{holder: h, engine: engine.New(h.Current, log, time.Now).WithMetrics(m), log: log, m: m, onLoad: onLoad}
}

// Loaded runs the load hook for the scenario in force (serve calls it once
// the pipeline is up).
func (a *engineApp) Loaded() {
	if a.onLoad != nil {
		a.onLoad(a.holder.Current())
	}
}

// Handle applies one event; it is the pipeline's HandleFunc.
func (a *engineApp) Handle(ctx context.Context, tx bot.Tx, ev *bot.Event) error {
	return a.engine.Handle(ctx, tx, ev)
}

// Status reports the scenario in force and the last reload's outcome.
func (a *engineApp) Status() map[string]any {
	return map[string]any{"scenario": a.holder.Status()}
}

// Watch hot-reloads scenarios on file changes until ctx ends.
func (a *engineApp) Watch(ctx context.Context) {
	err := a.holder.Watch(ctx, a.log, func(err error) { a.reloaded(causeFileChange, err) })
	if err != nil {
		a.log.Error().Err(err).Msg("scenario hot reload is off")
	}
}

// Reload rebuilds the scenarios now (SIGHUP, admin API).
func (a *engineApp) Reload(cause string) error {
	err := a.holder.Reload()
	a.reloaded(cause, err)
	return err
}

const causeFileChange = "file change"

func (a *engineApp) reloaded(cause string, err error) {
	a.m.Reload(err == nil)
	// The watcher logs its own outcome with the problem list; SIGHUP and the
	// admin API reload through here only.
	watched := cause == causeFileChange
	if err != nil {
		if !watched {
			a.log.Error().Str("cause", cause).Str("error", err.Error()).Msg("scenario reload failed; the last good scenario stays in force")
		}
		return
	}
	if !watched {
		a.log.Info().Str("cause", cause).Str("version", a.holder.Version()).Msg("scenarios reloaded")
	}
	a.Loaded()
}

// loadScenario loads a scenario file or directory, or the embedded demo
// when path is empty.
func loadScenario(path string) (*scenarios.Scenario, error) {
	if path == "" {
		return scenarios.LoadDefault(), nil
	}
	return scenarios.Load(path)
}

// loadScenarioOrReport is loadScenario for commands that print the
// file:line problems and exit 1.
func loadScenarioOrReport(path string, stderr io.Writer) (*scenarios.Scenario, error) {
	sc, err := loadScenario(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, &exitError{exitFailure, errSilent}
	}
	return sc, nil
}

// checkScenarios validates a scenario source ("" = the embedded demo).
func checkScenarios(path string) (string, scenarios.ValidationError, error) {
	sc, err := loadScenario(path)
	if err != nil {
		return "", nil, err
	}
	if len(sc.PastSchedules) > 0 {
		// A one-off broadcast whose time has passed would never run: an
		// error for check (serve only warns, since one that ran keeps its time).
		return "", nil, sc.PastSchedules
	}
	return fmt.Sprintf("%s, version %s: %d channels, %d welcome scripts, %d keyword rules, %d campaigns, %d coupon pools, %d broadcasts, %d SOPs",
		sc.Source, sc.Version, len(sc.Channels), len(sc.Scripts), len(sc.Keywords.Rules), len(sc.Campaigns), len(sc.Coupons), len(sc.Broadcasts), len(sc.SOPs)), sc.Warnings, nil
}

// simulate runs scenarios offline against a scripted timeline of events.
func simulate(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cl := newCommandLine("simulate", "Usage: wecombot simulate [--scenario PATH] [EVENTS.yaml|-]\n\nRuns the engine offline against a script of events with a fake clock, and prints\nevery stage change and outbound action. With no file it plays the demo week\nshipped with the embedded scenarios; - reads the script from stdin.\nSee docs/scenarios.md for the script format.", 0, 1)
	scenarioPath := cl.fs.String("scenario", getenv("WECOMBOT_SCENARIOS"), "scenario file or directory (default: WECOMBOT_SCENARIOS, else the embedded demo)")
	pos, done, err := cl.parse(args, stdout, stderr)
	if done {
		return err
	}
	sc, err := loadScenarioOrReport(*scenarioPath, stderr)
	if err != nil {
		return err
	}
	script, err := simulationScript(pos, stdin, stderr)
	if err != nil {
		return err
	}
	store, closeStore, err := scratchStore("simulate")
	if err != nil {
		return err
	}
	defer closeStore()
	return simulation.Run(ctx, sc, store, script, stdout)
}

// simulationScript picks simulate's script: the named file, stdin for "-",
// else stdin when something is piped in, else the embedded demo week (a
// fresh clone's `wecombot simulate` shows a whole campaign, not an error).
func simulationScript(pos []string, stdin io.Reader, stderr io.Writer) (io.Reader, error) {
	if len(pos) == 1 && pos[0] != "-" {
		b, err := os.ReadFile(pos[0])
		if err != nil {
			return nil, &exitError{exitUsage, fmt.Errorf("simulation script: %w", err)}
		}
		return bytes.NewReader(b), nil
	}
	if len(pos) == 1 || piped(stdin) {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read simulation script from stdin: %w", err)
		}
		if len(pos) == 1 || len(bytes.TrimSpace(b)) > 0 {
			return bytes.NewReader(b), nil
		}
	}
	fmt.Fprintf(stderr, "no script given: playing the demo week (%s); give a file, or - for stdin\n", scenarios.DemoWeekName)
	return bytes.NewReader(scenarios.DemoWeek()), nil
}

// piped reports whether r is a pipe or a file with data (not a terminal, not
// nothing), so `wecombot simulate < week.yaml` keeps working.
func piped(r io.Reader) bool {
	switch f := r.(type) {
	case nil:
		return false
	case *os.File:
		info, err := f.Stat()
		return err == nil && info.Mode()&os.ModeCharDevice == 0
	default:
		return true
	}
}

// scratchStore opens a throwaway, unsynced bbolt store (simulate, ask, the
// console's simulate box): the live data is never touched. done closes and
// removes it.
func scratchStore(name string) (store *bolt.Store, done func(), err error) {
	dir, err := os.MkdirTemp("", "wecombot-"+name+"-")
	if err != nil {
		return nil, nil, err
	}
	store, err = bolt.Open(filepath.Join(dir, name+".db"), bolt.Options{NoSync: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return store, func() { store.Close(); os.RemoveAll(dir) }, nil
}
