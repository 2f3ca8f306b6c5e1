package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wecombot/wecombot/bot"
)

// The sandbox "simulate a member" panel: each button appends one operator
// event to the real event log, so the real pipeline and engine handle it
// exactly like a WeCom callback (welcome, tags, funnel, check-in, orders),
// and the sandbox sender records what would have gone out. Refused outside
// sandbox mode: there these events would reach real customers' records.

// sandboxRequest is the body of POST /api/v1/sandbox/events.
type sandboxRequest struct {
	// Action is add (contact add), join_group, check_in, kf (a text to 微信客服) or order.
	Action string `json:"action"`
	Member string `json:"member"`
	Name   string `json:"name"`
	// State is the channel ("contact me" state) of an add.
	State string `json:"state"`
	Staff string `json:"staff"`
	// Chat is the customer group of join_group.
	Chat string `json:"chat"`
	// Text is a kf message (check_in defaults to 打卡).
	Text string `json:"text"`
	// Amount is an order's amount in yuan: a JSON number (88, 29.9) or,
	// for older clients, a string ("29.90"); at most two decimals.
	Amount yuanAmount `json:"amount"`
	// At, when set, is when the event happened (RFC 3339, within the last 7
	// days): try 打卡 inside its window at any hour. Default now.
	At string `json:"at"`
}

// yuanAmount is an amount in yuan as written in the request: a JSON number's
// literal text or a string's content, parsed by parseYuan.
type yuanAmount string

// UnmarshalJSON accepts 88, 29.90 and "29.90".
func (a *yuanAmount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*a = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = yuanAmount(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return errors.New("amount must be a number of yuan like 29.90")
		}
		*a = yuanAmount(n)
	}
	return nil
}

// sandboxMaxAge bounds how far back a sandbox event's at may go.
const sandboxMaxAge = 7 * 24 * time.Hour

var sandboxIDPattern = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,64}$`)

// Sandbox defaults: the staff, group and 微信客服 account simulated members meet.
const (
	sandboxStaff   = "sandbox_staff"
	sandboxChat    = "wrSandboxGroup"
	sandboxOpenKf  = "wkSandboxKf"
	sandboxProcess = 3 * time.Second
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// parseYuan reads "29.9" / "29.90" / "30" into fen.
func parseYuan(s string) (int64, bool) {
	whole, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	if whole == "" || len(frac) > 2 {
		return 0, false
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w < 0 || w > 1_000_000 {
		return 0, false
	}
	f := int64(0)
	if frac != "" {
		frac += strings.Repeat("0", 2-len(frac))
		if f, err = strconv.ParseInt(frac, 10, 64); err != nil || f < 0 {
			return 0, false
		}
	}
	return w*100 + f, w*100+f > 0
}

// sandboxEvent validates req and builds the event it asks for.
// checkInAt, when not nil, moves a simulated check-in into the campaign's
// latest check-in window (the campaign ignores 打卡 outside it).
func sandboxEvent(req sandboxRequest, now time.Time, checkInAt func(time.Time) time.Time) (*bot.Event, error) {
	if req.Member == "" {
		req.Member = "wm_sim_" + randomHex(4)
	}
	if !sandboxIDPattern.MatchString(req.Member) {
		return nil, badField("member", "must be 1–64 letters, digits, _ or -")
	}
	if utf8.RuneCountInString(req.Name) > 128 {
		return nil, badField("name", "is longer than 128 characters")
	}
	if req.Staff == "" {
		req.Staff = sandboxStaff
	}
	if !sandboxIDPattern.MatchString(req.Staff) {
		return nil, badField("staff", "must be 1–64 letters, digits, _ or -")
	}
	if len(req.State) > 30 { // WeCom's state is at most 30 characters
		return nil, badField("state", "is longer than 30 characters")
	}
	if utf8.RuneCountInString(req.Text) > 500 {
		return nil, badField("text", "is longer than 500 characters")
	}
	if req.At != "" {
		at, err := time.Parse(time.RFC3339, req.At)
		if err != nil {
			return nil, badField("at", "must be a time like 2026-12-01T07:30:00+08:00")
		}
		if at.After(now.Add(time.Minute)) || at.Before(now.Add(-sandboxMaxAge)) {
			return nil, badField("at", "must be within the last 7 days, not in the future")
		}
		now = at
	}
	id := randomHex(8)
	ev := &bot.Event{Source: bot.SourceOperator, DedupeKey: "sandbox|" + id, At: now, ExternalUserID: req.Member}
	if req.Name != "" {
		ev.Data = map[string]string{bot.DataName: req.Name}
	}
	switch req.Action {
	case "add":
		ev.Type, ev.StaffID, ev.State, ev.WelcomeCode = bot.EventContactAdd, req.Staff, req.State, "SANDBOX-"+id
	case "join_group":
		if req.Chat == "" {
			req.Chat = sandboxChat
		}
		if !sandboxIDPattern.MatchString(req.Chat) {
			return nil, badField("chat", "must be 1–64 letters, digits, _ or -")
		}
		ev.Type, ev.ChatID, ev.UpdateDetail = bot.EventGroupUpdate, req.Chat, bot.GroupAddMember
		ev.MemChangeList, ev.MemChangeCnt, ev.JoinScene = []string{req.Member}, 1, 1
	case "check_in", "kf":
		text := req.Text
		if text == "" && req.Action == "check_in" {
			text = "打卡"
		}
		if strings.TrimSpace(text) == "" {
			return nil, badField("text", "is required for a kf message")
		}
		ev.Type, ev.Content, ev.OpenKfID, ev.MsgID = bot.EventKfText, text, sandboxOpenKf, "sandbox-"+id
		if req.Action == "check_in" && checkInAt != nil && req.At == "" {
			ev.At = checkInAt(now)
		}
	case "order":
		amount := string(req.Amount)
		if amount == "" {
			amount = "29.90"
		}
		fen, ok := parseYuan(amount)
		if !ok {
			return nil, badField("amount", "must be an amount in yuan like 29.90 (more than 0, at most 1000000)")
		}
		if ev.Data == nil {
			ev.Data = map[string]string{}
		}
		ev.Type = bot.EventOrderPaid
		ev.Data[bot.DataOrderID] = "SANDBOX-" + strings.ToUpper(id[:10])
		ev.Data[bot.DataAmountFen] = strconv.FormatInt(fen, 10)
	default:
		return nil, badField("action", "must be one of add, join_group, check_in, kf, order")
	}
	return ev, nil
}

// apiSandboxEvent answers POST /api/v1/sandbox/events: append the event,
// wake the workers and wait (briefly) until the engine has handled it.
func (s *Server) apiSandboxEvent(w http.ResponseWriter, r *http.Request) {
	if !s.o.Sandbox {
		s.fail(w, r, errSandboxOnly)
		return
	}
	if q := newQuery(r); q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	var req sandboxRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		s.fail(w, r, badParam("body", "must be a JSON object with action, member, name, state, staff, chat, text, amount: %v", err))
		return
	}
	now := s.o.Now()
	ev, err := sandboxEvent(req, now, s.checkInAt)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.appendEvent(r.Context(), ev); err != nil {
		s.fail(w, r, err)
		return
	}
	processed := s.waitProcessed(r.Context(), ev.Seq)
	s.agg.invalidate()
	s.log.Info().Str("type", string(ev.Type)).Uint64("seq", ev.Seq).Bool("processed", processed).Msg("sandbox event")
	body := map[string]any{"event": ev, "member": ev.ExternalUserID, "processed": processed}
	if req.At == "" && !ev.At.Equal(now) {
		body["note"] = "simulated at " + ev.At.Format("2006-01-02 15:04 MST") + ", inside the campaign's check-in window"
	}
	writeJSON(w, http.StatusAccepted, body)
}

// waitProcessed polls until event seq is no longer pending, for a few seconds.
func (s *Server) waitProcessed(ctx context.Context, seq uint64) bool {
	if s.o.Pipeline == nil {
		return false
	}
	deadline := time.Now().Add(sandboxProcess)
	for time.Now().Before(deadline) {
		evs, err := s.o.Store.PendingEvents(ctx, seq-1, 1)
		if err != nil {
			return false
		}
		if len(evs) == 0 || evs[0].Seq != seq {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// checkInAt is now when it falls inside a check-in window of the scenario's
// first campaign with windows, else the last minute of the latest window
// that has passed (today's, or yesterday's): the simulated check-in counts
// on a day the console's charts already show.
func (s *Server) checkInAt(now time.Time) time.Time {
	if s.o.Scenario == nil {
		return now
	}
	sc := s.o.Scenario()
	if sc == nil {
		return now
	}
	for _, c := range sc.Campaigns {
		if len(c.Windows) == 0 {
			continue
		}
		zone := c.Zone
		if zone == nil {
			zone = sc.Brand.Zone
		}
		if zone == nil {
			zone = time.UTC
		}
		local := now.In(zone)
		midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, zone)
		offset := local.Sub(midnight)
		var last time.Time
		for day := 0; day >= -1; day-- {
			base := midnight.AddDate(0, 0, day)
			for _, w := range c.Windows {
				if day == 0 && w.Contains(offset) {
					return now
				}
				if at := base.Add(w.End - time.Minute); !at.After(now) && at.After(last) {
					last = at
				}
			}
		}
		if !last.IsZero() {
			return last
		}
	}
	return now
}
