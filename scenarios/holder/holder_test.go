package holder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/scenarios"
)

// base is the smallest valid scenario; cases append to it.
const base = `brand:
  name: 测试茶
tags:
  阶段: [A, I, P, L, 流失]
  渠道: [来源-小红书]
`

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const goodV1 = base + `
welcome:
  default:
    text: 版本一
`

const goodV2 = base + `
welcome:
  default:
    text: 版本二
`

const broken = base + `
welcome:
  default:
    text: "{{.Nope}}"
`

func TestHolderReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "scenario.yaml")
	writeFiles(t, dir, map[string]string{"scenario.yaml": goodV1})
	h, err := New(file)
	if err != nil {
		t.Fatal(err)
	}
	v1 := h.Current()
	if v1.DefaultWelcome.Text.Source() != "版本一" {
		t.Fatal("v1 not loaded")
	}

	// Unchanged source: no new scenario.
	if err := h.Reload(); err != nil || h.Current() != v1 {
		t.Fatalf("reload of unchanged source swapped or failed: %v", err)
	}

	// A broken edit fails with file:line and keeps v1.
	writeFiles(t, dir, map[string]string{"scenario.yaml": broken})
	err = h.Reload()
	var ve scenarios.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), file+":9: welcome.default.text: bad template") {
		t.Fatalf("want a ValidationError naming the line, got %v", err)
	}
	if h.Current() != v1 {
		t.Fatal("broken reload must keep the last good scenario")
	}
	if h.LastError() == nil || h.Status().Failures != 1 || h.Status().LastError == "" {
		t.Fatalf("failure not recorded: %+v", h.Status())
	}

	// A good edit swaps.
	writeFiles(t, dir, map[string]string{"scenario.yaml": goodV2})
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if h.Current().DefaultWelcome.Text.Source() != "版本二" || h.Version() == v1.Version {
		t.Fatal("good reload must swap")
	}
	if h.LastError() != nil || h.Status().Reloads != 1 {
		t.Fatalf("status after good reload: %+v", h.Status())
	}

	// A deleted file is an error too, and keeps v2.
	v2 := h.Current()
	os.Remove(file)
	if err := h.Reload(); err == nil || h.Current() != v2 {
		t.Fatalf("missing file: err %v", err)
	}
}

func TestHolderEmbedded(t *testing.T) {
	h, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	if h.Current().Source != scenarios.EmbeddedSource || h.Reload() != nil {
		t.Fatal("embedded holder")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Watch(ctx, zerolog.Nop(), nil); err != nil {
		t.Fatal(err)
	}
	if NewStatic(h.Current()).Current() != h.Current() {
		t.Fatal("static holder")
	}
}

func TestNewHolderFailsOnBadSource(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"s.yaml": broken})
	if _, err := New(filepath.Join(dir, "s.yaml")); err == nil {
		t.Fatal("want error")
	}
}

// reloads collects onReload calls.
type reloads struct {
	mu   sync.Mutex
	errs []error
	ch   chan struct{}
}

func (r *reloads) on(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *reloads) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.ch:
	case <-time.After(2 * time.Second):
		t.Fatal("no reload within 2 s")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs[len(r.errs)-1]
}

func TestWatchFileReplacedByRename(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "scenario.yaml")
	writeFiles(t, dir, map[string]string{"scenario.yaml": goodV1})
	h, err := New(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &reloads{ch: make(chan struct{}, 8)}
	done := startWatch(t, ctx, h, r.on)

	// Editors save by writing a temp file and renaming it over the original.
	replace := func(content string) {
		tmp := filepath.Join(dir, ".scenario.yaml.swp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	replace(broken)
	if err := r.wait(t); err == nil {
		t.Fatal("broken edit should report an error")
	}
	if h.Current().DefaultWelcome.Text.Source() != "版本一" {
		t.Fatal("kept v1")
	}
	replace(goodV2)
	if err := r.wait(t); err != nil {
		t.Fatalf("good edit: %v", err)
	}
	if h.Current().DefaultWelcome.Text.Source() != "版本二" {
		t.Fatal("swapped to v2")
	}
	// Other files in the directory don't trigger reloads (the filter the
	// watcher applies to each event: TestRelevantFiles), and an in-place
	// write (truncate + write, several events) is one debounced reload.
	writeFiles(t, dir, map[string]string{"wecombot.db": "not a scenario"})
	writeFiles(t, dir, map[string]string{"scenario.yaml": goodV1})
	if err := r.wait(t); err != nil || h.Current().DefaultWelcome.Text.Source() != "版本一" {
		t.Fatalf("in-place write: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWatchDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": goodV1})
	h, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &reloads{ch: make(chan struct{}, 8)}
	startWatch(t, ctx, h, r.on)

	writeFiles(t, dir, map[string]string{"b.yaml": "keywords:\n  rules:\n    - {name: k, keywords: [价格], reply: 十六元}\n"})
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if rule := h.Current().Match(scenarios.SurfaceKf, "价格"); rule == nil {
		t.Fatal("new file in the directory should be merged")
	}
}

// startWatch runs h.Watch and returns once the watcher is registered (its
// "watching" log line), so no write made after it can be missed.
func startWatch(t *testing.T, ctx context.Context, h *Holder, onReload func(error)) <-chan error {
	t.Helper()
	ready := make(chan struct{})
	var once sync.Once
	log := zerolog.New(writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), "watching scenarios for changes") {
			once.Do(func() { close(ready) })
		}
		return len(p), nil
	}))
	done := make(chan error, 1)
	go func() { done <- h.Watch(ctx, log, onReload) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("watch ended before it started: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not start within 5 s")
	}
	return done
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRelevantFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := &Holder{path: filepath.Join(dir, "scenario.yaml")}
	folder := &Holder{path: dir}
	for _, tc := range []struct {
		h    *Holder
		name string
		want bool
	}{
		{file, "scenario.yaml", true},
		{file, "wecombot.db", false},
		{file, ".scenario.yaml.swp", false},
		{file, "other.yaml", false},
		{file, "..2026_11_01", true}, // a Kubernetes ConfigMap swap
		{folder, "b.yaml", true},
		{folder, "c.yml", true},
		{folder, "wecombot.db", false},
		{folder, ".hidden.yaml", false},
	} {
		if got := tc.h.relevant(dir, filepath.Join(dir, tc.name)); got != tc.want {
			t.Errorf("path %s: relevant(%s) = %v, want %v", tc.h.path, tc.name, got, tc.want)
		}
	}
}
