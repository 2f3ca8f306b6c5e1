package server

import (
	"fmt"
	"html/template"
	"net/http"
	"strconv"

	"github.com/wecombot/wecombot/bot"
)

// queryInt reads a bounded integer query parameter; it writes a 400 naming
// the parameter and returns ok=false when the value is bad.
func queryInt(w http.ResponseWriter, r *http.Request, name string, def, lo, hi int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %s must be a whole number from %d to %d", name, lo, hi))
		return 0, false
	}
	return n, true
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	ev, err := s.o.Store.EventStats(r.Context())
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	ob, err := s.o.Store.OutboxStats(r.Context())
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	body := map[string]any{"events": ev, "outbox": ob}
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

func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	after, ok := queryInt(w, r, "after", 0, 0, 1<<62)
	if !ok {
		return
	}
	limit, ok := queryInt(w, r, "limit", 100, 1, 1000)
	if !ok {
		return
	}
	evs, err := s.o.Store.Events(r.Context(), uint64(after), limit)
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	next := uint64(after)
	if len(evs) > 0 {
		next = evs[len(evs)-1].Seq
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs, "next_after": next})
}

func (s *Server) apiOutbox(w http.ResponseWriter, r *http.Request) {
	after, ok := queryInt(w, r, "after", 0, 0, 1<<62)
	if !ok {
		return
	}
	limit, ok := queryInt(w, r, "limit", 100, 1, 1000)
	if !ok {
		return
	}
	acts, err := s.o.Store.Actions(r.Context(), uint64(after), limit)
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	next := uint64(after)
	if len(acts) > 0 {
		next = acts[len(acts)-1].ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"actions": acts, "next_after": next})
}

func (s *Server) apiMembers(w http.ResponseWriter, r *http.Request) {
	limit, ok := queryInt(w, r, "limit", 50, 1, 500)
	if !ok {
		return
	}
	after := r.URL.Query().Get("after")
	stage := bot.Stage(r.URL.Query().Get("stage"))
	if stage != "" && !stage.Valid() {
		writeError(w, http.StatusBadRequest, "query parameter stage must be one of aware, interest, purchase, loyal")
		return
	}
	var out []*bot.Member
	total := 0
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		var err error
		if total, err = tx.MemberCount(); err != nil {
			return err
		}
		return tx.Members(after, func(m *bot.Member) bool {
			if stage == "" || m.Stage == stage {
				out = append(out, m)
			}
			return len(out) < limit
		})
	})
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	next := ""
	if len(out) == limit {
		next = out[len(out)-1].ExternalUserID
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": out, "total": total, "next_after": next})
}

func (s *Server) apiMember(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("external_userid")
	var m *bot.Member
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		var err error
		m, err = tx.Member(id)
		return err
	})
	if err != nil {
		writeError(w, errorStatus(err), fmt.Sprintf("member %q: %v", id, err))
		return
	}
	writeJSON(w, http.StatusOK, m)
}

var homePage = template.Must(template.New("home").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>wecombot</title>
<style>body{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;max-width:760px;margin:2em auto;padding:0 1em;color:#222}
code{background:#f3f3f3;padding:.1em .3em;border-radius:3px}dt{font-weight:600;margin-top:.6em}</style></head>
<body><h1>wecombot</h1>
<p>企业微信私域社群机器人 · private-traffic community bot for WeCom.</p>
<dl>
<dt>Mode</dt><dd>{{if .Sandbox}}sandbox (沙盒): outbound WeCom calls are recorded, not sent{{else}}live{{end}}</dd>
<dt>Callback URL (接收消息服务器 URL)</dt><dd><code>/wecom/callback</code></dd>
<dt>Health</dt><dd><a href="/healthz">/healthz</a> · <a href="/metrics">/metrics</a></dd>
<dt>Admin API</dt><dd><a href="/api/v1/status">/api/v1/status</a> · <a href="/api/v1/members">/api/v1/members</a> · <a href="/api/v1/events">/api/v1/events</a> · <a href="/api/v1/outbox">/api/v1/outbox</a></dd>
</dl></body></html>`))

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	sandbox := false
	if s.o.Status != nil {
		sandbox, _ = s.o.Status()["sandbox"].(bool)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = homePage.Execute(w, map[string]any{"Sandbox": sandbox})
}
