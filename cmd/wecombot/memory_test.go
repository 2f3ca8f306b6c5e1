package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/wecombot/wecombot/config"
)

// TestServeSetsTheMemoryLimit (the built binary): serve sets the Go
// runtime's soft memory limit — none by default, WECOMBOT_MEMORY_LIMIT's
// when set ("off": none) — and GOMEMLIMIT, when the
// operator sets it, wins; /metrics' go_gc_gomemlimit_bytes shows the limit
// in force.
func TestServeSetsTheMemoryLimit(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want float64
	}{
		{"default: none", nil, math.MaxInt64},
		{"WECOMBOT_MEMORY_LIMIT", map[string]string{"WECOMBOT_MEMORY_LIMIT": "64MiB"}, 64 << 20},
		{"off", map[string]string{"WECOMBOT_MEMORY_LIMIT": "off"}, math.MaxInt64},
		{"GOMEMLIMIT wins", map[string]string{"WECOMBOT_MEMORY_LIMIT": "64MiB", "GOMEMLIMIT": "300MiB"}, 300 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()}
			for k, v := range tc.env {
				env[k] = v
			}
			p := startProc(t, env)
			if got := gaugeValue(t, p.base+"/metrics", "go_gc_gomemlimit_bytes"); got != tc.want {
				t.Errorf("go_gc_gomemlimit_bytes %v, want %v\n%s", got, tc.want, p.stderr)
			}
		})
	}
}

// gaugeValue reads one unlabelled sample from a Prometheus text page.
func gaugeValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("%s: no %s", url, name)
	return 0
}

// TestApplyMemoryLimitSources: where the limit comes from, without
// applying it (this test process keeps its own).
func TestApplyMemoryLimitSources(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env       map[string]string
		cfgLimit  int64
		wantLimit int64
		wantFrom  string
	}{
		{nil, config.DefaultMemoryLimit, 0, "default"},
		{map[string]string{"WECOMBOT_MEMORY_LIMIT": "256MiB"}, 256 << 20, 256 << 20, "WECOMBOT_MEMORY_LIMIT"},
		{map[string]string{"WECOMBOT_MEMORY_LIMIT": "off"}, 0, 0, "WECOMBOT_MEMORY_LIMIT"},
		{map[string]string{"GOMEMLIMIT": "1GiB"}, 256 << 20, -1, "GOMEMLIMIT"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.env), func(t *testing.T) {
			limit, from := applyMemoryLimit(&config.Config{MemoryLimit: tc.cfgLimit}, func(k string) string { return tc.env[k] }, false)
			if from != tc.wantFrom || (tc.wantLimit >= 0 && limit != tc.wantLimit) {
				t.Errorf("limit %d from %s, want %d from %s", limit, from, tc.wantLimit, tc.wantFrom)
			}
		})
	}
}

// serve takes one P more than the runtime's default (a thread in the
// ingest log's fdatasync keeps its P), unless the operator set
// GOMAXPROCS; the start-up log says which (the built binary: main sets it).
func TestServeTakesOneProcessorMoreThanCores(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set for the tests: the runtime's default is unknown here")
	}
	cases := []struct {
		env      map[string]string
		want     int
		wantFrom string
	}{
		{nil, runtime.GOMAXPROCS(0) + 1, "cores+1"},
		{map[string]string{"GOMAXPROCS": "1"}, 1, "GOMAXPROCS"},
	}
	for _, tc := range cases {
		t.Run(tc.wantFrom, func(t *testing.T) {
			env := map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()}
			maps.Copy(env, tc.env)
			p := startProc(t, env)
			var line struct {
				Procs int    `json:"gomaxprocs"`
				From  string `json:"gomaxprocs_from"`
			}
			for _, l := range strings.Split(p.stderr.String(), "\n") {
				if strings.Contains(l, `"Go runtime processors"`) {
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatalf("%v: %s", err, l)
					}
				}
			}
			if line.Procs != tc.want || line.From != tc.wantFrom {
				t.Errorf("start-up log: gomaxprocs %d from %q, want %d from %q\n%s", line.Procs, line.From, tc.want, tc.wantFrom, p.stderr)
			}
		})
	}
}
