package server

import (
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// The admin API's status, event-log and outbox endpoints, and operations.
// Members are in api_members.go, the funnel in api_funnel.go, scenarios in
// api_scenarios.go, campaigns and coupons in api_features.go, the sandbox
// simulator in api_sandbox.go; errors map through api_errors.go.

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	ev, err := s.o.Store.EventStats(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ob, err := s.o.Store.OutboxStats(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body := map[string]any{"events": ev, "outbox": ob, "sandbox": s.o.Sandbox}
	if s.o.Pipeline != nil {
		body["pipeline"] = s.o.Pipeline.Stats()
		body["running"] = s.o.Pipeline.Running()
	}
	if s.o.Status != nil {
		for k, v := range s.o.Status() {
			body[k] = v
		}
	}
	writeJSON(w, http.StatusOK, body)
}

// apiEvents answers GET /api/v1/events: the event log in append order, one
// page per call (?cursor=&limit=, like every list of /api/v1).
func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "cursor", "limit")
	after := q.seqCursor()
	limit := q.int("limit", 100, 1, 1000)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	evs, err := s.o.Store.Events(r.Context(), after, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if evs == nil {
		evs = []bot.Event{}
	}
	body := map[string]any{"events": evs}
	if len(evs) == limit {
		body["next_cursor"] = seqCursor(evs[len(evs)-1].Seq)
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) apiOutbox(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "cursor", "limit")
	after := q.seqCursor()
	limit := q.int("limit", 100, 1, 1000)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	acts, err := s.o.Store.Actions(r.Context(), after, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if acts == nil {
		acts = []bot.Action{}
	}
	s.redactActions(acts)
	body := map[string]any{"actions": acts}
	if len(acts) == limit {
		body["next_cursor"] = seqCursor(acts[len(acts)-1].ID)
	}
	writeJSON(w, http.StatusOK, body)
}

// wecomError is a count of WeCom API answers with one errcode.
type wecomError struct {
	API     string  `json:"api"`
	Errcode string  `json:"errcode"`
	Count   float64 `json:"count"`
}

// wecomErrors reads the WeCom call counter (by api and errcode) from the
// metrics registry: every non-zero errcode since start.
func (s *Server) wecomErrors() []wecomError {
	out := []wecomError{}
	if s.o.Metrics == nil {
		return out
	}
	families, err := s.o.Metrics.Registry.Gather()
	if err != nil {
		return out
	}
	for _, f := range families {
		if f.GetName() != "wecombot_wecom_api_calls_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			e := wecomError{Count: m.GetCounter().GetValue()}
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "api":
					e.API = l.GetValue()
				case "errcode":
					e.Errcode = l.GetValue()
				}
			}
			if e.Errcode != "0" && e.Count > 0 {
				out = append(out, e)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out
}

// apiOperations answers GET /api/v1/operations: event-log lag, outbox depth,
// recent failed actions (retry them with POST /api/v1/outbox/{id}/retry),
// WeCom errors by code, the pipeline and the scenario reload state.
func (s *Server) apiOperations(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "failed")
	limit := q.int("failed", 50, 0, 500)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	ev, err := s.o.Store.EventStats(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ob, err := s.o.Store.OutboxStats(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.o.Now()
	body := map[string]any{
		"now":          now,
		"events":       ev,
		"event_lag":    ev.Pending,
		"outbox":       ob,
		"outbox_depth": ob.Pending,
		"wecom_errors": s.wecomErrors(),
	}
	if !ev.OldestPending.IsZero() {
		body["event_lag_seconds"] = now.Sub(ev.OldestPending).Seconds()
	}
	if !ob.OldestDue.IsZero() && ob.OldestDue.Before(now) {
		body["outbox_overdue_seconds"] = now.Sub(ob.OldestDue).Seconds()
	}
	failed := []bot.Action{}
	if as, ok := s.o.Store.(AdminStore); ok && limit > 0 {
		if failed, err = as.RecentFailedActions(r.Context(), limit, historyWindow); err != nil {
			s.fail(w, r, err)
			return
		}
		if failed == nil {
			failed = []bot.Action{}
		}
	}
	s.redactActions(failed)
	body["failed_actions"] = failed
	if s.o.Pipeline != nil {
		body["pipeline"] = s.o.Pipeline.Stats()
		body["running"] = s.o.Pipeline.Running()
		if h, err := s.o.Pipeline.Health(r.Context()); err == nil {
			h.WriteError = s.o.Redact.String(h.WriteError)
			body["health"] = h
		}
	}
	if s.o.Scenarios != nil {
		body["scenario"] = s.o.Scenarios.Status()
	}
	writeJSON(w, http.StatusOK, body)
}

// apiRetryAction answers POST /api/v1/outbox/{id}/retry: a failed action
// goes back into the outbox, due now.
func (s *Server) apiRetryAction(w http.ResponseWriter, r *http.Request) {
	id, err := positiveID(r.PathValue("id"), "id", "an outbox action id")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	as, ok := s.o.Store.(AdminStore)
	if !ok {
		s.fail(w, r, errNotConfigured)
		return
	}
	a, err := as.RetryAction(r.Context(), id, s.o.Now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.o.Pipeline != nil {
		s.o.Pipeline.NotifyOutbox()
	}
	s.log.Info().Uint64("action", id).Str("kind", string(a.Kind)).Msg("operator retried a failed action")
	a.LastError = s.o.Redact.String(a.LastError)
	writeJSON(w, http.StatusOK, map[string]any{"action": a, "retried_at": s.o.Now().Format(time.RFC3339)})
}

// redactActions scrubs secrets from the stored error texts it serves, the
// way log lines are scrubbed: texts stored before redaction at the source
// (or quoting a secret WeCom echoed back) never reach an API client.
func (s *Server) redactActions(acts []bot.Action) {
	for i := range acts {
		acts[i].LastError = s.o.Redact.String(acts[i].LastError)
		acts[i].Detail = s.o.Redact.String(acts[i].Detail)
	}
}

// positiveID parses a path parameter that names a stored record by its
// positive sequence number; anything else is a 400 naming param.
func positiveID(raw, param, what string) (uint64, error) {
	v, err := strconv.ParseUint(raw, 10, 64)
	if err != nil || v == 0 {
		return 0, badParam(param, "must be %s (a positive whole number)", what)
	}
	return v, nil
}
