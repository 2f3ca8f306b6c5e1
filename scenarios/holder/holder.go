// Package holder keeps the scenario in force and swaps it on reload (SIGHUP,
// the admin API, or a file watch). It lives outside package scenarios so
// reading a scenario's schema doesn't drag in a file watcher.
package holder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/scenarios"
)

// DebounceDelay is how long Watch waits after the last file event before
// reloading: editors write a file in several steps (truncate, write,
// rename), and a directory copy touches many files.
const DebounceDelay = 200 * time.Millisecond

// Holder keeps the current Scenario and swaps it atomically on reload. A
// reload that fails keeps the last good scenario and records the error.
// All methods are safe for concurrent use.
type Holder struct {
	path string // "" for the embedded default

	cur atomic.Pointer[scenarios.Scenario]

	mu        sync.Mutex // serializes reloads and guards the fields below
	lastErr   error
	lastErrAt time.Time
	reloads   int
	failures  int
	// checks counts reload attempts, for tests of the watcher's filtering.
	checks int
}

// New loads the scenario at path ("" for the embedded demo) and returns a
// Holder serving it. A first load that fails is an error: there is no last
// good scenario to keep.
func New(path string) (*Holder, error) {
	h := &Holder{path: path}
	var sc *scenarios.Scenario
	var err error
	if path == "" {
		sc, err = scenarios.LoadEmbedded()
	} else {
		sc, err = scenarios.Load(path)
	}
	if err != nil {
		return nil, err
	}
	h.cur.Store(sc)
	return h, nil
}

// NewStatic serves sc and never reloads (Reload is a no-op); for simulate
// and tests.
func NewStatic(sc *scenarios.Scenario) *Holder {
	h := &Holder{}
	h.cur.Store(sc)
	return h
}

// Current returns the scenario in force. Callers take it once per event
// and use that one throughout, so a reload never splits an event.
func (h *Holder) Current() *scenarios.Scenario { return h.cur.Load() }

// Path returns the watched path ("" for the embedded default).
func (h *Holder) Path() string { return h.path }

// Version returns the current scenario's version.
func (h *Holder) Version() string { return h.Current().Version }

// LoadedAt returns when the current scenario was compiled.
func (h *Holder) LoadedAt() time.Time { return h.Current().LoadedAt }

// LastError returns the error of the most recent reload, or nil if it
// succeeded (or none was tried).
func (h *Holder) LastError() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr
}

// Status describes the holder for /healthz, the admin API and logs.
type Status struct {
	Source   string    `json:"source"`
	Version  string    `json:"version"`
	LoadedAt time.Time `json:"loaded_at"`
	Files    []string  `json:"files"`
	// LastError is the last reload's error ("" when it succeeded).
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitempty"`
	Reloads     int       `json:"reloads"`
	Failures    int       `json:"failures"`
}

// Status returns a snapshot of the holder.
func (h *Holder) Status() Status {
	sc := h.Current()
	h.mu.Lock()
	defer h.mu.Unlock()
	st := Status{Source: sc.Source, Version: sc.Version, LoadedAt: sc.LoadedAt, Files: sc.Files,
		LastErrorAt: h.lastErrAt, Reloads: h.reloads, Failures: h.failures}
	if h.lastErr != nil {
		st.LastError = h.lastErr.Error()
	}
	return st
}

// Reload rebuilds the scenario from its path and swaps it in on success;
// on failure it keeps the current one and returns (and records) the error,
// a ValidationError naming file:line for scenario problems. Reloading an
// unchanged source is a cheap no-op. Wire SIGHUP to it.
func (h *Holder) Reload() error {
	_, err := h.reload()
	return err
}

// reload reports whether there is news for onReload: a new scenario was
// swapped in, or the source is back to the one in force after a failure.
func (h *Holder) reload() (changed bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path == "" {
		return false, nil
	}
	h.checks++
	sc, err := scenarios.LoadIfChanged(h.path, h.Current().Version)
	if err == nil && sc == nil {
		// Unchanged (or back to the scenario in force after a broken edit:
		// then report it, so "last reload ok" turns green again).
		recovered := h.lastErr != nil
		h.lastErr = nil
		return recovered, nil
	}
	if err != nil {
		h.failures++
		h.lastErr, h.lastErrAt = err, time.Now()
		return false, err
	}
	h.cur.Store(sc)
	h.reloads++
	h.lastErr = nil
	return true, nil
}

// Watch reloads the scenario when its file or directory changes, until ctx
// is done. It watches the parent directory of a file (so editors that save
// by writing a new file and renaming it over the old one, and Kubernetes
// ConfigMap symlink swaps, are seen), debounces events by DebounceDelay, and
// calls onReload (if not nil) after every reload that swapped a new
// scenario in (err == nil) or failed (err != nil, the last good scenario
// stays in force). The embedded default has nothing to watch: Watch just
// waits for ctx.
func (h *Holder) Watch(ctx context.Context, log zerolog.Logger, onReload func(err error)) error {
	log = log.With().Str("component", "scenarios").Logger()
	if h.path == "" {
		<-ctx.Done()
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch scenarios: %w", err)
	}
	defer w.Close()
	dir := h.path
	if info, err := os.Stat(h.path); err == nil && !info.IsDir() {
		dir = filepath.Dir(h.path)
	}
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch scenarios in %s: %w", dir, err)
	}
	log.Info().Str("path", h.path).Msg("watching scenarios for changes")

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod || !h.relevant(dir, ev.Name) {
				continue
			}
			timer.Reset(DebounceDelay)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn().Err(err).Msg("scenario watcher error")
		case <-timer.C:
			// A directory source that was replaced as a whole needs a new watch.
			if dir == h.path {
				_ = w.Add(dir)
			}
			changed, err := h.reload()
			switch {
			case err != nil:
				var ve scenarios.ValidationError
				ev := log.Error().Str("path", h.path)
				if errors.As(err, &ve) {
					ev = ev.Int("problems", len(ve)).Strs("problems_list", problemStrings(ve, 20))
				} else {
					ev = ev.Err(err)
				}
				ev.Str("version_kept", h.Version()).Msg("scenario reload failed; keeping the last good scenario")
			case changed:
				log.Info().Str("path", h.path).Str("version", h.Version()).Msg("scenario reloaded")
			default:
				continue
			}
			if onReload != nil {
				onReload(err)
			}
		}
	}
}

// relevant reports whether a change to name may change the scenario: the
// file itself (however it was replaced), a YAML file of a directory source,
// or a Kubernetes ConfigMap's "..data" symlink swap. Other files in the
// directory (a database next to the scenario, editor swap files) are ignored.
func (h *Holder) relevant(dir, name string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, "..") {
		return true
	}
	if dir != h.path {
		return base == filepath.Base(h.path)
	}
	return name == dir || (scenarios.IsYAMLName(base) && !strings.HasPrefix(base, "."))
}

func problemStrings(ve scenarios.ValidationError, limit int) []string {
	out := make([]string, 0, min(len(ve), limit))
	for i, p := range ve {
		if i == limit {
			out = append(out, fmt.Sprintf("… and %d more", len(ve)-limit))
			break
		}
		out = append(out, p.Error())
	}
	return out
}
