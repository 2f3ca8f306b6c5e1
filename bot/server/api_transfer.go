package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
)

// UnassignedCustomer is one customer of a departed staff member waiting
// for a new one (get_unassigned_list).
type UnassignedCustomer struct {
	HandoverUserID string `json:"handover_userid"`
	ExternalUserID string `json:"external_userid"`
	DimissionTime  int64  `json:"dimission_time"`
	// Name is the member's name when wecombot knows them.
	Name string `json:"name,omitempty"`
}

// UnassignedLister reads the unassigned customers from WeCom (nil: sandbox).
type UnassignedLister func(ctx context.Context, limit int) ([]UnassignedCustomer, error)

// transferRequest is the body of POST /api/v1/transfers.
type transferRequest struct {
	From      string   `json:"from"`
	To        string   `json:"to"`
	Customers []string `json:"customers"`
	// Groups also moves the groups From owns (default true when no customers are listed).
	Groups   *bool  `json:"groups"`
	Resigned bool   `json:"resigned"`
	Message  string `json:"message"`
}

// transferView is a transfer record with its counts.
type transferView struct {
	engine.TransferRecord
	Counts map[string]int `json:"counts"`
	Open   bool           `json:"open"`
}

func viewTransfer(t engine.TransferRecord) transferView {
	return transferView{TransferRecord: t, Counts: t.Counts(), Open: t.Open()}
}

// apiTransferCreate is POST /api/v1/transfers: move a staff member's
// customers (all, or those listed) and groups to another (在职继承, or
// 离职继承 with resigned). 202 with the transfer's id; GET
// /api/v1/transfers/{id} shows where it stands.
func (s *Server) apiTransferCreate(w http.ResponseWriter, r *http.Request) {
	var req transferRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	req.From, req.To = strings.TrimSpace(req.From), strings.TrimSpace(req.To)
	switch {
	case req.From == "" || strings.Contains(req.From, ","):
		writeError(w, http.StatusBadRequest, "from: the userid of the staff member handing over")
		return
	case req.To == "" || strings.Contains(req.To, ","):
		writeError(w, http.StatusBadRequest, "to: the userid of the staff member taking over")
		return
	case req.From == req.To:
		writeError(w, http.StatusBadRequest, "to: must differ from from")
		return
	case len([]rune(req.Message)) > 200:
		writeError(w, http.StatusBadRequest, "message: at most 200 characters (transfer_success_msg)")
		return
	case req.Resigned && req.Message != "":
		writeError(w, http.StatusBadRequest, "message: only an on-job transfer (在职继承) sends one")
		return
	}
	for _, c := range req.Customers {
		if c = strings.TrimSpace(c); c == "" || strings.Contains(c, ",") {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("customers: %q is not an external_userid", c))
			return
		}
	}
	groups := len(req.Customers) == 0
	if req.Groups != nil {
		groups = *req.Groups
	}
	now := s.o.Now()
	id := fmt.Sprintf("tr-%s-%d", now.UTC().Format("20060102T150405"), now.UnixNano()%1e6)
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return ""
	}
	ev := &bot.Event{Type: bot.EventTransferRequest, Source: bot.SourceOperator, At: now, DedupeKey: "op|transfer|" + id,
		Data: map[string]string{bot.DataTransfer: id, "from": req.From, "to": req.To, "customers": strings.Join(req.Customers, ","),
			"groups": flag(groups), "resigned": flag(req.Resigned), "message": req.Message}}
	if _, err := s.appendEvent(r.Context(), ev); err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "status": "queued",
		"detail": "GET /api/v1/transfers/" + id + " shows where it stands; WeCom completes each customer's move within 24 h (the customer may refuse)"})
}

// apiTransfers is GET /api/v1/transfers: the transfers, newest first.
func (s *Server) apiTransfers(w http.ResponseWriter, r *http.Request) {
	var list []engine.TransferRecord
	if err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { list, err = engine.Transfers(tx, 100); return err }); err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	out := make([]transferView, 0, len(list))
	for _, t := range list {
		out = append(out, viewTransfer(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"transfers": out})
}

// apiTransfer is GET /api/v1/transfers/{id}.
func (s *Server) apiTransfer(w http.ResponseWriter, r *http.Request) {
	var t *engine.TransferRecord
	id := r.PathValue("id")
	if err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { t, err = engine.TransferByID(tx, id); return err }); err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	if t == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no transfer %q (GET /api/v1/transfers lists them)", id))
		return
	}
	writeJSON(w, http.StatusOK, viewTransfer(*t))
}

// apiUnassigned is GET /api/v1/transfers/unassigned: the customers of
// departed staff still waiting for a new one (离职待分配).
func (s *Server) apiUnassigned(w http.ResponseWriter, r *http.Request) {
	if s.o.Unassigned == nil {
		writeJSON(w, http.StatusOK, map[string]any{"customers": []UnassignedCustomer{}, "detail": "needs WeCom credentials: the sandbox has no departed staff"})
		return
	}
	list, err := s.o.Unassigned(r.Context(), 5000)
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	_ = s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		for i := range list {
			if m, err := tx.Member(list[i].ExternalUserID); err == nil {
				list[i].Name = m.Name
			}
		}
		return nil
	})
	if list == nil {
		list = []UnassignedCustomer{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"customers": list})
}

// transferItem is a member's transfer in their timeline.
func transferItem(tr bot.Transfer) timelineItem {
	kind := "在职继承"
	if tr.Resigned {
		kind = "离职继承"
	}
	text := fmt.Sprintf("%s %s → %s: %s", kind, tr.From, tr.To, tr.Status)
	if tr.Reason != "" {
		text += " (" + tr.Reason + ")"
	}
	at := tr.At
	if !tr.DoneAt.IsZero() {
		at = tr.DoneAt
	}
	return timelineItem{At: at, Kind: "transfer", Type: "transfer", Text: text, Status: tr.Status}
}
