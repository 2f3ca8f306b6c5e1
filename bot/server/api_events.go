package server

import (
	"context"
	"net/http"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// EventReplayer is what the failed-events endpoints need from the store
// (storage/bolt implements it).
type EventReplayer interface {
	// FailedEvents lists events recorded as failed with Seq > after.
	FailedEvents(ctx context.Context, after uint64, limit int) ([]bot.FailedEvent, error)
	// RetryFailedEvents puts the failed event seq (every failed event when
	// seq is 0) back to pending and returns how many.
	RetryFailedEvents(ctx context.Context, seq uint64, now time.Time) (int, error)
}

// apiFailedEvents answers GET /api/v1/events/failed: events a handler
// failed on (with a healthy store), each with its error, redacted; one page
// per call (?cursor=&limit=, like every list of /api/v1).
func (s *Server) apiFailedEvents(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "cursor", "limit")
	after := q.seqCursor()
	limit := q.int("limit", 100, 1, 1000)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	er, ok := s.o.Store.(EventReplayer)
	if !ok {
		s.fail(w, r, errNotConfigured)
		return
	}
	evs, err := er.FailedEvents(r.Context(), after, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for i := range evs {
		evs[i].Error = s.o.Redact.String(evs[i].Error)
	}
	if evs == nil {
		evs = []bot.FailedEvent{}
	}
	body := map[string]any{"failed_events": evs}
	if len(evs) == limit {
		body["next_cursor"] = seqCursor(evs[len(evs)-1].Event.Seq)
	}
	writeJSON(w, http.StatusOK, body)
}

// apiRetryEvents answers POST /api/v1/events/{seq}/retry (one failed
// event) and POST /api/v1/events/retry (every failed event): they go back
// to pending and the pipeline applies them again through the engine's
// usual idempotency (what they already caused is not caused twice).
func (s *Server) apiRetryEvents(w http.ResponseWriter, r *http.Request) {
	var seq uint64
	if raw := r.PathValue("seq"); raw != "" {
		v, err := positiveID(raw, "seq", "an event seq")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		seq = v
	}
	er, ok := s.o.Store.(EventReplayer)
	if !ok {
		s.fail(w, r, errNotConfigured)
		return
	}
	n, err := er.RetryFailedEvents(r.Context(), seq, s.o.Now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if n > 0 && s.o.Pipeline != nil {
		s.o.Pipeline.Replay()
	}
	s.log.Info().Uint64("seq", seq).Int("events", n).Msg("operator retried failed events")
	writeJSON(w, http.StatusOK, map[string]any{"retried": n, "retried_at": s.o.Now().Format(time.RFC3339)})
}
