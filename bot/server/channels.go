package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/scenarios"
)

// channelView is one channel for the admin API: the scenario's definition
// and the "contact me" code wecombot created for it, if any.
type channelView struct {
	State      string                   `json:"state"`
	Name       string                   `json:"name,omitempty"`
	Tags       []string                 `json:"tags,omitempty"`
	Staff      []string                 `json:"staff,omitempty"`
	Welcome    string                   `json:"welcome,omitempty"`
	InScenario bool                     `json:"in_scenario"`
	ContactWay *engine.ContactWayRecord `json:"contact_way,omitempty"`
	// Kind is "contact" (联系我, add_contact_way) or "group" (加入群聊, add_join_way).
	Kind string `json:"kind"`
	// Group is a group channel's groups and auto-create setting.
	Group *scenarios.GroupJoin `json:"group,omitempty"`
	// Joins counts the members who joined a group channel's groups through its code.
	Joins int `json:"joins,omitempty"`
}

// channelKind names a channel's kind for the API and console.
func channelKind(ch *scenarios.Channel) string {
	if ch != nil && ch.Group != nil {
		return "group"
	}
	return "contact"
}

// apiChannels lists the scenario's channels with their contact me codes,
// plus codes made for states the scenario no longer names.
func (s *Server) apiChannels(w http.ResponseWriter, r *http.Request) {
	var ways []engine.ContactWayRecord
	var joins map[string]int
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) {
		if ways, err = engine.ContactWays(tx); err != nil {
			return err
		}
		joins, err = engine.GroupJoins(tx)
		return err
	})
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	byState := map[string]*engine.ContactWayRecord{}
	for i := range ways {
		byState[ways[i].State] = &ways[i]
	}
	out := []channelView{}
	if s.o.Scenario != nil {
		for _, ch := range s.o.Scenario().Channels {
			v := channelView{State: ch.State, Name: ch.Name, Tags: ch.Tags, Staff: ch.Staff, InScenario: true, ContactWay: byState[ch.State],
				Kind: channelKind(ch), Group: ch.Group, Joins: joins[ch.State]}
			if ch.Welcome != nil {
				v.Welcome = ch.Welcome.Name
			}
			delete(byState, ch.State)
			out = append(out, v)
		}
	}
	for _, wv := range ways {
		if rec, ok := byState[wv.State]; ok {
			kind := "contact"
			if len(wv.ChatIDs) > 0 {
				kind = "group"
			}
			out = append(out, channelView{State: wv.State, Staff: wv.Staff, ContactWay: rec, Kind: kind, Joins: joins[wv.State]})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": out})
}

// contactWayRequest is the optional body of POST /api/v1/channels/{state}/contact_way.
type contactWayRequest struct {
	Staff  []string `json:"staff"`
	Remark string   `json:"remark"`
	// Group asks for the channel's group QR code (加入群聊) and fails if it is not a group channel.
	Group bool `json:"group"`
}

// ContactWayWait is how long the API waits for WeCom to create the code
// before answering 202 (the code still arrives; GET /api/v1/channels shows it).
var ContactWayWait = 10 * time.Second

// apiCreateContactWay asks for a "contact me" code carrying the state: an
// operator event goes to the log, the engine queues add_contact_way, and the
// answer (config_id, qr_code) is stored when WeCom returns it.
func (s *Server) apiCreateContactWay(w http.ResponseWriter, r *http.Request) {
	state := r.PathValue("state")
	if state == "" || utf8.RuneCountInString(state) > engine.MaxStateLen {
		writeError(w, http.StatusBadRequest, "state must be 1-30 characters")
		return
	}
	var req contactWayRequest
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
	}
	for _, st := range req.Staff {
		if st = strings.TrimSpace(st); st == "" || strings.Contains(st, ",") {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("staff: %q is not a userid", st))
			return
		}
	}
	staff := req.Staff
	var group *scenarios.Channel
	if s.o.Scenario != nil {
		if ch := s.o.Scenario().ChannelByState(state); ch != nil && ch.Group != nil {
			group = ch
		}
	}
	if req.Group && group == nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state %q is not a group channel: declare it under channels with group: {chat_ids: [...]} in the scenario", state))
		return
	}
	if group != nil && len(req.Staff) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("staff: channel %q is a group QR code (加入群聊); it leads to its groups, not to staff", state))
		return
	}
	if group != nil {
		staff = nil
	} else if len(staff) == 0 && s.o.Scenario != nil {
		if ch := s.o.Scenario().ChannelByState(state); ch != nil {
			staff = ch.Staff
		} else {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("state %q is not a channel in the scenario: name the staff who receive its customers", state))
			return
		}
	}
	if len(staff) == 0 && group == nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("channel %q names no staff: add staff to it in the scenario or to this request", state))
		return
	}
	want := slices.Sorted(slices.Values(staff))
	now := s.o.Now()
	ev := &bot.Event{Type: bot.EventContactWayCreate, Source: bot.SourceOperator, At: now,
		DedupeKey: fmt.Sprintf("op|contact_way|%s|%d", state, now.UnixNano()),
		Data:      map[string]string{"state": state, "staff": strings.Join(req.Staff, ","), "remark": req.Remark}}
	if _, err := s.appendEvent(r.Context(), ev); err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	deadline := time.Now().Add(ContactWayWait)
	for {
		var rec *engine.ContactWayRecord
		err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { rec, err = engine.ContactWay(tx, state); return err })
		if err != nil {
			writeError(w, errorStatus(err), err.Error())
			return
		}
		// Done once a code for this state and these staff exists (asking
		// again for an existing one returns it: the engine doesn't re-create).
		if rec != nil && rec.ConfigID != "" && slices.Equal(rec.Staff, want) {
			writeJSON(w, http.StatusOK, rec)
			return
		}
		if time.Now().After(deadline) {
			writeJSON(w, http.StatusAccepted, map[string]any{"state": state, "status": "pending",
				"detail": "queued; WeCom hasn't answered yet. GET /api/v1/channels shows the code once it has (see /api/v1/outbox for errors)"})
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
