package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/scenarios"
)

// SOP sequences (客户SOP) in the console: the scenario's SOPs with their
// counts (kept by the engine as members enroll and each step's message
// has its outcome), who is in which step, and the operator's pause switch.
// SOPs are defined in scenario YAML (edited on the scenarios page).

// sopStepView is one step as the console shows it.
type sopStepView struct {
	Day int    `json:"day"`
	At  string `json:"at,omitempty"`
	// After is a welcome follow-up's delay (2d, 36h, 90m).
	After    string `json:"after,omitempty"`
	Via      string `json:"via"`
	Text     string `json:"text"`
	OpenKfID string `json:"open_kfid,omitempty"`
	// Counts are the step's messages by status (queued, batched,
	// waiting_confirm, sent, delivered, canceled, skipped:<reason>, …).
	Counts map[string]int `json:"counts"`
}

// sopView is an SOP with its counts.
type sopView struct {
	Name    string   `json:"name"`
	Trigger string   `json:"trigger"`
	Segment string   `json:"segment,omitempty"`
	Stop    []string `json:"stop"`
	// Welcome is the welcome script whose follow-ups this is (its steps
	// are queued with each welcome and not counted here).
	Welcome  string        `json:"welcome,omitempty"`
	Steps    []sopStepView `json:"steps"`
	Enrolled int           `json:"enrolled"`
	// Stopped counts enrollments by the stop condition that ended them.
	Stopped  map[string]int `json:"stopped"`
	Paused   bool           `json:"paused"`
	PausedAt *time.Time     `json:"paused_at,omitempty"`
	File     string         `json:"file,omitempty"`
	Line     int            `json:"line,omitempty"`
}

func triggerText(t scenarios.Trigger) string {
	switch t.Kind {
	case scenarios.TriggerStage:
		return t.Kind + ":" + string(t.Stage)
	case scenarios.TriggerTag:
		return t.Kind + ":" + t.Tag
	case scenarios.TriggerDate:
		return t.Kind + ":" + t.Field
	}
	return t.Kind
}

func newSOPView(sop *scenarios.SOP, st *engine.SOPStats) sopView {
	v := sopView{Name: sop.Name, Trigger: triggerText(sop.Trigger), Stop: []string{}, Welcome: sop.Welcome, Steps: []sopStepView{},
		Enrolled: st.Enrolled, Stopped: st.Stopped, Paused: st.Paused, File: sop.File, Line: sop.Line}
	if sop.Welcome != "" {
		v.Trigger = "welcome"
	}
	if sop.Segment != nil {
		v.Segment = sop.Segment.Name
	}
	if !st.PausedAt.IsZero() {
		at := st.PausedAt
		v.PausedAt = &at
	}
	for _, s := range sop.Stop {
		if s.Kind == scenarios.StopTag {
			v.Stop = append(v.Stop, s.Kind+":"+s.Tag)
		} else {
			v.Stop = append(v.Stop, s.Kind)
		}
	}
	for i, s := range sop.Steps {
		sv := sopStepView{Day: s.Day, Via: s.Via, OpenKfID: s.OpenKfID, Counts: map[string]int{}}
		if s.Text != nil {
			sv.Text = s.Text.Source()
		}
		if s.HasClock {
			sv.At = fmt.Sprintf("%02d:%02d", int(s.Clock.Hours()), int(s.Clock.Minutes())%60)
		}
		if s.After > 0 {
			sv.After = afterText(s.After)
		}
		if i < len(st.Steps) && st.Steps[i] != nil {
			sv.Counts = st.Steps[i]
		}
		v.Steps = append(v.Steps, sv)
	}
	return v
}

// afterText writes a follow-up's delay as the YAML does: 2d, 36h or 90m.
func afterText(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/time.Minute)) + "m"
}

// sopByName is the scenario's SOP called name, or a 404 naming the list.
func (s *Server) sopByName(w http.ResponseWriter, r *http.Request) (*scenarios.Scenario, *scenarios.SOP) {
	sc := s.scenarioOr503(w)
	if sc == nil {
		return nil, nil
	}
	name := r.PathValue("name")
	sop := sc.SOP(name)
	if sop == nil {
		s.fail(w, r, fmt.Errorf("no SOP %q in the scenario (GET /api/v1/sops lists them): %w", name, bot.ErrNotFound))
		return nil, nil
	}
	return sc, sop
}

// apiSOPs is GET /api/v1/sops: the scenario's SOPs (the welcome scripts'
// follow-ups first) with their steps and counts.
func (s *Server) apiSOPs(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	sc := s.scenarioOr503(w)
	if sc == nil {
		return
	}
	all := []*scenarios.SOP{}
	for _, w := range append([]*scenarios.Script{sc.DefaultWelcome}, sc.Scripts...) {
		if w != nil && w.FollowUps != nil {
			all = append(all, w.FollowUps)
		}
	}
	all = append(all, sc.SOPs...)
	out := make([]sopView, 0, len(all))
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		for _, sop := range all {
			st, err := engine.ReadSOPStats(tx, sop.Name)
			if err != nil {
				return err
			}
			out = append(out, newSOPView(sop, st))
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sops": out})
}

// sopMemberView is one member's run through an SOP.
type sopMemberView struct {
	Member    string     `json:"member"`
	Name      string     `json:"name,omitempty"`
	Staff     string     `json:"staff,omitempty"`
	Started   time.Time  `json:"started_at"`
	Until     time.Time  `json:"until"`
	StoppedAt *time.Time `json:"stopped_at,omitempty"`
	Stop      string     `json:"stop,omitempty"`
	// State is running, stopped or done; Step the step due next while
	// running (its index), NextAt when.
	State  string     `json:"state"`
	Step   *int       `json:"step,omitempty"`
	NextAt *time.Time `json:"next_at,omitempty"`
	// Steps are each step's message status for her.
	Steps []string `json:"steps"`
}

// apiSOP is GET /api/v1/sops/{name}: the SOP with its counts and a page of
// its enrollments (?cursor=&limit=; ?state=running|stopped|done filters
// the page), each with the step she is at.
func (s *Server) apiSOP(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "cursor", "limit", "state")
	cursor := q.str("cursor", 300)
	limit := q.int("limit", 50, 1, 500)
	state := q.str("state", 20)
	if q.err == nil && state != "" && state != "running" && state != "stopped" && state != "done" {
		q.err = badParam("state", "must be running, stopped or done, not %q", state)
	}
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	sc, sop := s.sopByName(w, r)
	if sop == nil {
		return
	}
	now := s.o.Now()
	var view sopView
	members := []sopMemberView{}
	next := ""
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		st, err := engine.ReadSOPStats(tx, sop.Name)
		if err != nil {
			return err
		}
		view = newSOPView(sop, st)
		var bad error
		err = engine.SOPMembers(tx, sop.Name, cursor, func(id string, e *engine.SOPEnrollment) bool {
			mv := sopMemberOf(sc, sop, id, e, now)
			if state != "" && mv.State != state {
				return true
			}
			if len(members) == limit {
				next = members[limit-1].Member
				return false
			}
			if m, err := tx.Member(id); err == nil {
				mv.Name, mv.Staff = m.Name, m.PrimaryStaff()
			} else if !errors.Is(err, bot.ErrNotFound) {
				bad = err
				return false
			}
			members = append(members, mv)
			return true
		})
		if err == nil {
			err = bad
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sop": view, "members": members, "next_cursor": next})
}

// sopMemberOf is where member id is in sop: stopped, done (past its last
// step) or running at the first step not yet due.
func sopMemberOf(sc *scenarios.Scenario, sop *scenarios.SOP, id string, e *engine.SOPEnrollment, now time.Time) sopMemberView {
	mv := sopMemberView{Member: id, Started: e.Started, Until: e.Until, Stop: e.Stop, Steps: e.Steps}
	if mv.Steps == nil {
		mv.Steps = []string{}
	}
	switch {
	case !e.StoppedAt.IsZero():
		at := e.StoppedAt
		mv.State, mv.StoppedAt = "stopped", &at
	case now.After(e.Until):
		mv.State = "done"
	default:
		mv.State = "running"
		for i, st := range sop.Steps {
			if due := st.Due(e.Started, sc.Brand.Zone); due.After(now) {
				mv.Step, mv.NextAt = &i, &due
				break
			}
		}
	}
	return mv
}

// apiSOPState is POST /api/v1/sops/{name}/pause and /resume: the engine
// applies the switch (sop.state event); 202 with the SOP's new state.
func (s *Server) apiSOPState(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	_, sop := s.sopByName(w, r)
	if sop == nil {
		return
	}
	if sop.Welcome != "" {
		s.fail(w, r, badParam("name", "%q is a welcome script's follow-ups: they go with each welcome (change the script to stop them)", sop.Name))
		return
	}
	paused := strings.HasSuffix(r.URL.Path, "/pause")
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	now := s.o.Now()
	ev := &bot.Event{Type: bot.EventSOPState, Source: bot.SourceOperator, At: now, ReceivedAt: now, DedupeKey: "op|sop.state|" + hex.EncodeToString(nonce[:]),
		Data: map[string]string{bot.DataSOP: sop.Name, bot.DataPaused: strconv.FormatBool(paused)}}
	if _, err := s.appendEvent(r.Context(), ev); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"sop": sop.Name, "paused": paused,
		"detail": "the engine applies it in order with the events before it; GET /api/v1/sops/" + sop.Name + " shows it"})
}
