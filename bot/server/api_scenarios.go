package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"time"

	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/scenarios/holder"
)

// ScenarioControl is what the console needs from the running scenarios:
// cmd/wecombot implements it over the hot-reload holder and the engine.
type ScenarioControl interface {
	// Status is the holder's snapshot (version, load time, last reload error).
	Status() holder.Status
	// Files returns the source files of the scenario in force.
	Files() ([]ScenarioFile, error)
	// Reload rebuilds the scenario from its source now; a failure keeps the
	// last good scenario and returns a scenarios.ValidationError.
	Reload() error
	// Simulate runs a simulation script (docs/scenarios.md) through the
	// engine on a temporary store with a fake clock, writing the transcript.
	Simulate(ctx context.Context, script io.Reader, out io.Writer) error
}

// ScenarioFile is one source file of a scenario.
type ScenarioFile struct {
	// Name is the file's name as problems name it (a path, or embedded:default/…).
	Name string `json:"name"`
	YAML string `json:"yaml"`
}

// maxScenarioUpload bounds an uploaded scenario file or simulation script.
const maxScenarioUpload = 512 << 10

func (s *Server) scenarioControl(w http.ResponseWriter, r *http.Request) (ScenarioControl, bool) {
	if s.o.Scenarios == nil {
		s.fail(w, r, errNotConfigured)
		return nil, false
	}
	return s.o.Scenarios, true
}

// scenarioSummary counts what the scenario in force defines.
func (s *Server) scenarioSummary() map[string]int {
	if s.o.Scenario == nil {
		return nil
	}
	sc := s.o.Scenario()
	if sc == nil {
		return nil
	}
	return map[string]int{"channels": len(sc.Channels), "welcome_scripts": len(sc.Scripts), "keyword_rules": len(sc.Keywords.Rules),
		"tag_rules": len(sc.TagRules), "campaigns": len(sc.Campaigns), "coupon_pools": len(sc.Coupons), "levels": len(sc.Levels)}
}

// apiScenarios answers GET /api/v1/scenarios: the active version, when it
// loaded, the last reload error, and the source files.
func (s *Server) apiScenarios(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	sc, ok := s.scenarioControl(w, r)
	if !ok {
		return
	}
	files, err := sc.Files()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	type channel struct {
		State string `json:"state"`
		Name  string `json:"name"`
	}
	channels := []channel{}
	if s.o.Scenario != nil {
		if cur := s.o.Scenario(); cur != nil {
			for _, c := range cur.Channels {
				channels = append(channels, channel{c.State, c.Name})
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": sc.Status(), "summary": s.scenarioSummary(), "files": files,
		"channels": channels, "sandbox": s.o.Sandbox})
}

// readUpload reads the request body, or the parts of a multipart form
// (file fields), into name → content; fallbackName names a raw body.
func readUpload(r *http.Request, fallbackName string) (map[string][]byte, error) {
	body := http.MaxBytesReader(nil, r.Body, maxScenarioUpload)
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	out := map[string][]byte{}
	if mt == "multipart/form-data" {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, badParam("body", "is not a readable multipart form: %v", err)
			}
			name := p.FileName()
			if name == "" {
				name = fallbackName
			}
			data, err := io.ReadAll(p)
			if err != nil {
				return nil, badParam("body", "is larger than %d KiB", maxScenarioUpload>>10)
			}
			out[path.Base(name)] = data
		}
	} else {
		data, err := io.ReadAll(body)
		if err != nil {
			return nil, badParam("body", "is larger than %d KiB", maxScenarioUpload>>10)
		}
		out[fallbackName] = data
	}
	if len(out) == 0 || (len(out) == 1 && len(bytes.TrimSpace(out[fallbackName])) == 0 && out[fallbackName] != nil) {
		return nil, badParam("body", "is empty: send the YAML as the body or as a file in a multipart form")
	}
	return out, nil
}

// apiValidateScenario answers POST /api/v1/scenarios/validate: the uploaded
// file(s) replace the same-named files of the scenario in force (or join
// it), and the whole is compiled without touching what runs. 200 with a
// summary when valid, 422 with file:line problems when not. ?alone=true
// validates the upload on its own.
func (s *Server) apiValidateScenario(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "name", "alone")
	name := q.str("name", 200)
	alone := q.boolean("alone")
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	if name == "" {
		name = "upload.yaml"
	}
	name = path.Base(name)
	sc, ok := s.scenarioControl(w, r)
	if !ok {
		return
	}
	uploaded, err := readUpload(r, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	files := map[string][]byte{}
	current, err := sc.Files()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Images and knowledge the files name resolve beside the scenario in force.
	base := ""
	if len(current) > 0 {
		base = path.Dir(current[0].Name)
	}
	if alone == nil || !*alone {
		for _, f := range current {
			files[path.Base(f.Name)] = []byte(f.YAML)
		}
	}
	for n, data := range uploaded {
		files[n] = data
	}
	compiled, err := scenarios.LoadFilesIn("upload", base, files)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	names := make([]string, 0, len(uploaded))
	for n := range uploaded {
		names = append(names, n)
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": true, "version": compiled.Version, "files": compiled.Files, "uploaded": names,
		"summary": map[string]int{"channels": len(compiled.Channels), "welcome_scripts": len(compiled.Scripts),
			"keyword_rules": len(compiled.Keywords.Rules), "campaigns": len(compiled.Campaigns), "coupon_pools": len(compiled.Coupons)}})
}

// apiReloadScenario answers POST /api/v1/scenarios/reload: rebuild from the
// source now. 200 with the new status, or 422 with problems (the last good
// scenario stays in force).
func (s *Server) apiReloadScenario(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	sc, ok := s.scenarioControl(w, r)
	if !ok {
		return
	}
	before := sc.Status().Version
	if err := sc.Reload(); err != nil {
		s.fail(w, r, err)
		return
	}
	st := sc.Status()
	s.agg.invalidate()
	writeJSON(w, http.StatusOK, map[string]any{"status": st, "changed": st.Version != before})
}

// apiSimulateScenario answers POST /api/v1/scenarios/simulate: the body is a
// simulation script; the answer is the transcript (text/plain). Nothing
// touches the live store: the engine runs on a temporary one.
func (s *Server) apiSimulateScenario(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	sc, ok := s.scenarioControl(w, r)
	if !ok {
		return
	}
	script, err := readUpload(r, "script.yaml")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(script) != 1 {
		s.fail(w, r, badParam("body", "must be one simulation script"))
		return
	}
	var data []byte
	for _, d := range script {
		data = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := sc.Simulate(ctx, bytes.NewReader(data), &out); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			s.fail(w, r, err)
			return
		}
		// A script error is the operator's to fix: say what and where.
		s.fail(w, r, badParam("body", "simulation failed: %v", err))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.Copy(w, &out)
}
