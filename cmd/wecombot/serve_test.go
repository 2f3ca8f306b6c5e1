package main

import (
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeJoinsEveryGoroutine: after serve returns, every goroutine it
// started has ended (pipeline, watcher, housekeeping, SIGHUP loop, console
// warm-up, HTTP server and its connections). Not parallel: the package's
// parallel tests wait while it runs, so the goroutine count is its own.
func TestServeJoinsEveryGoroutine(t *testing.T) {
	// os/signal starts one process-wide goroutine at the first Notify and
	// keeps it: start it before counting.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	signal.Stop(c)
	before := runtime.NumGoroutine()
	env := map[string]string{"WECOMBOT_DATA_DIR": t.TempDir(), "WECOMBOT_LOG_LEVEL": "warn"}
	in := startServe(t, env)
	if code, _ := in.get(t, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz %d", code)
	}
	in.status(t)
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			t.Fatalf("%d goroutines before serve, %d after it returned:\n%s", before, runtime.NumGoroutine(), leftovers(stacks))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leftovers keeps the stacks that mention wecombot code or net/http.
func leftovers(stacks string) string {
	var out []string
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "wecombot") && !strings.Contains(g, "TestServeJoinsEveryGoroutine") && !strings.Contains(g, "testing.tRunner") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
