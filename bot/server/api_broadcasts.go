package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/segments"
	"github.com/wecombot/wecombot/scenarios"
)

// decodeStrict decodes a JSON body into v; an unknown field, a wrong type
// or trailing data is a 400 naming the field.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		return badParam("body", "could not be read: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return badField(name, "is not known here")
		case errors.As(err, &te):
			return badField(te.Field, "must be %s", te.Type)
		}
		return badParam("body", "is not a JSON object: %v", err)
	}
	if dec.More() {
		return badParam("body", "has data after the JSON object")
	}
	return nil
}

// fieldProblem turns a request's validation problems into a 400 naming the
// first bad field (all of them in the detail).
func fieldProblem(err error) error {
	var ve scenarios.ValidationError
	if !errors.As(err, &ve) || len(ve) == 0 {
		return err
	}
	msgs := make([]string, len(ve))
	for i, p := range ve {
		msgs[i] = p.Field + ": " + p.Msg
	}
	return badField(ve[0].Field, "%s", strings.Join(msgs, "; "))
}

// apiBroadcastCreate is POST /api/v1/broadcasts: a broadcast (群发) to a
// named segment or an inline filter, via mass_send, group or kf, now or at
// a time in the brand zone. With dry_run it answers who it would reach
// (count and per-staff split) and sends nothing; otherwise 202 with the id.
func (s *Server) apiBroadcastCreate(w http.ResponseWriter, r *http.Request) {
	sc := s.scenarioOr503(w)
	if sc == nil {
		return
	}
	var req scenarios.BroadcastRequest
	if err := decodeStrict(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.o.Now()
	b, err := sc.CompileBroadcast(req, now)
	if err != nil {
		s.fail(w, r, fieldProblem(err))
		return
	}
	if req.DryRun {
		p, err := s.previewBroadcast(r.Context(), b, now)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"dry_run": true, "via": b.Via, "preview": p})
		return
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	id := fmt.Sprintf("api-%s-%s", now.UTC().Format("20060102T150405"), hex.EncodeToString(nonce[:]))
	if req.Name == "" {
		req.Name = "群发 " + now.In(sc.Brand.Zone).Format("01-02 15:04")
	}
	ev, err := engine.BroadcastCreateEvent(id, req, now)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.appendEvent(r.Context(), ev); err != nil {
		s.fail(w, r, err)
		return
	}
	at := now
	if !b.At.IsZero() {
		at = b.At
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "status": engine.BroadcastScheduled, "at": at,
		"detail": "GET /api/v1/broadcasts/" + id + " shows its report once it runs"})
}

// apiBroadcasts is GET /api/v1/broadcasts: every run (YAML occurrences and
// API broadcasts), newest first, with their counts, plus the scenario's
// broadcasts and when each runs next.
func (s *Server) apiBroadcasts(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	var runs []engine.BroadcastRun
	if err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { runs, err = engine.BroadcastRuns(tx); return err }); err != nil {
		s.fail(w, r, err)
		return
	}
	if runs == nil {
		runs = []engine.BroadcastRun{}
	}
	type scheduled struct {
		Name    string `json:"name"`
		Segment string `json:"segment,omitempty"`
		Via     string `json:"via"`
		Cron    string `json:"cron,omitempty"`
		Next    any    `json:"next,omitempty"`
		Where   string `json:"where"`
	}
	defs := []scheduled{}
	if s.o.Scenario != nil {
		if sc := s.o.Scenario(); sc != nil {
			for _, b := range sc.Broadcasts {
				d := scheduled{Name: b.Name, Via: b.Via, Cron: b.Spec, Where: b.Where("")}
				if b.Segment != nil {
					d.Segment = b.Segment.Name
				}
				if b.Schedule != nil {
					if next := b.Schedule.Next(s.o.Now()); !next.IsZero() {
						d.Next = next
					}
				}
				defs = append(defs, d)
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"broadcasts": runs, "scenario": defs})
}

// apiBroadcast is GET /api/v1/broadcasts/{id}: one run's report — targeted,
// tasks, confirmed, delivered, skipped by reason, orders within 7 days —
// and a page of per-customer results (?cursor=&limit=).
func (s *Server) apiBroadcast(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "cursor", "limit")
	cursor := q.str("cursor", 300)
	limit := q.int("limit", 100, 1, 1000)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	id := r.PathValue("id")
	var rep *engine.BroadcastReport
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) {
		rep, err = engine.ReportBroadcast(tx, id, func(aid uint64) (*bot.Action, error) { return s.o.Store.Action(r.Context(), aid) }, cursor, limit)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rep == nil {
		s.fail(w, r, fmt.Errorf("no broadcast %q (GET /api/v1/broadcasts lists them): %w", id, bot.ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// previewBroadcast is a dry run: the segment's members read in pages of
// short read transactions (bot/segments, as every count), each page's
// targets decided as the fan-out decides them.
func (s *Server) previewBroadcast(ctx context.Context, b *scenarios.Broadcast, now time.Time) (*engine.BroadcastPreview, error) {
	p := engine.NewBroadcastPreview()
	if b.Via == scenarios.ViaGroup {
		return p, s.o.Store.View(ctx, func(tx bot.Tx) error { return engine.PreviewGroups(tx, b, p) })
	}
	var page []*bot.Member
	flush := func() error {
		err := s.o.Store.View(ctx, func(tx bot.Tx) error { return engine.PreviewMembers(tx, b, page, now, p) })
		page = page[:0]
		return err
	}
	var ferr error
	if _, err := segments.Each(ctx, s.o.Store, b.Segment, now, "", func(m *bot.Member) bool {
		if page = append(page, m); len(page) == segments.PageSize {
			ferr = flush()
		}
		return ferr == nil
	}); err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	return p, flush()
}
