package server

import (
	"context"
	"net/http"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/wecomsync"
)

// SyncControl starts a sync of customers and groups from WeCom and reads
// its progress (wecomsync.Syncer bound to serve's lifetime).
type SyncControl interface {
	// StartSync starts a sync unless one runs; it reports whether it did.
	StartSync(trigger string) bool
	SyncProgress(ctx context.Context) (wecomsync.Progress, error)
}

// syncView is the answer of /api/v1/sync.
type syncView struct {
	wecomsync.Progress
	Started bool             `json:"started,omitempty"`
	Detail  string           `json:"detail,omitempty"`
	History []engine.SyncRun `json:"history"`
}

// apiSyncStart is POST /api/v1/sync: start (or resume) a sync; 202 when
// this request started it, 200 when one was already running.
func (s *Server) apiSyncStart(w http.ResponseWriter, r *http.Request) {
	if s.o.Sync == nil {
		writeError(w, http.StatusConflict, "sync needs WeCom credentials (WECOM_CORP_ID, WECOM_SECRET): the sandbox has no customers to read")
		return
	}
	started := s.o.Sync.StartSync("api")
	v, err := s.syncView(r.Context())
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	v.Started = started
	code := http.StatusAccepted
	if !started {
		code, v.Detail = http.StatusOK, "a sync is already running; this is its progress"
	}
	writeJSON(w, code, v)
}

// apiSync is GET /api/v1/sync: the running or last sync and recent runs.
func (s *Server) apiSync(w http.ResponseWriter, r *http.Request) {
	v, err := s.syncView(r.Context())
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	if s.o.Sync == nil {
		v.Detail = "sync is off: it needs WeCom credentials (WECOM_CORP_ID, WECOM_SECRET)"
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) syncView(ctx context.Context) (syncView, error) {
	var v syncView
	if s.o.Sync != nil {
		p, err := s.o.Sync.SyncProgress(ctx)
		if err != nil {
			return v, err
		}
		v.Progress = p
	}
	err := s.o.Store.View(ctx, func(tx bot.Tx) (err error) {
		if v.Run == nil {
			if v.Run, err = engine.CurrentSyncRun(tx); err != nil {
				return err
			}
		}
		v.History, err = engine.SyncRuns(tx, 10)
		return err
	})
	if v.History == nil {
		v.History = []engine.SyncRun{}
	}
	return v, err
}
