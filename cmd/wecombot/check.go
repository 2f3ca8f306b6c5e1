package main

import (
	"context"
	"fmt"
	"io"
)

// check validates the configuration and scenarios without starting anything.
func check(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cl := newCommandLine("check", "Usage: wecombot check [--scenario PATH]\n\nValidates the configuration (environment + WECOMBOT_CONFIG) and the scenarios.\nExits 1 and prints file:line for every problem.", 0, 0)
	scenarioPath := cl.fs.String("scenario", "", "scenario file or directory to check (default: WECOMBOT_SCENARIOS, else the embedded demo)")
	if _, done, err := cl.parse(args, stdout, stderr); done {
		return err
	}
	cfg, _, err := loadConfig(getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return &exitError{exitFailure, errSilent}
	}
	fmt.Fprintf(stdout, "config: ok (sandbox=%v)\n", cfg.Sandbox())
	path := cfg.Scenarios
	if *scenarioPath != "" {
		path = *scenarioPath
	}
	summary, warnings, err := checkScenarios(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return &exitError{exitFailure, errSilent}
	}
	fmt.Fprintf(stdout, "scenarios: ok (%s)\n", summary)
	for _, w := range warnings {
		// Warnings don't fail the check: the scenario works, but WeCom will
		// refuse or cut something in production.
		fmt.Fprintf(stdout, "warning: %s\n", w.Error())
	}
	return nil
}
