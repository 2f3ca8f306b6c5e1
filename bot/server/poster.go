package server

import (
	"errors"
	"html/template"
	"net/http"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/signlink"
)

// Members' 任务宝 poster page: GET /poster?t=TOKEN shows her poster (GET
// /poster.png?t=TOKEN) with her invite counts, to long-press and share.
// GET /api/v1/posters is the campaign's funnel for the console.

var posterTmpl = template.Must(template.New("poster").Parse(`<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;background:#f6f3ea;color:#2d2a24;margin:0;padding:16px}
main{max-width:420px;margin:0 auto;background:#fff;border-radius:16px;padding:20px;box-shadow:0 2px 12px rgba(0,0,0,.06)}
h1{font-size:20px;margin:0 0 8px}.sub{color:#8a8272;font-size:14px;margin:8px 0}.msg{white-space:pre-wrap}
img{display:block;width:100%;height:auto;border-radius:12px}
.grid{display:grid;grid-template-columns:repeat(3,1fr);gap:8px;text-align:center;margin:12px 0 0}
.grid div{background:#f6f3ea;border-radius:10px;padding:10px 4px;font-size:13px}.grid b{display:block;font-size:20px}
</style></head><body><main>
<h1>{{.Title}}</h1>
{{if .Image}}<img src="{{.Image}}" alt="我的专属邀请海报">
<p class="sub">长按图片保存或转发给好友，好友扫码添加即算邀请～</p>
<div class="grid"><div><b>{{.Counted}}</b>已邀请</div><div><b>{{.Pending}}</b>确认中</div><div><b>{{.Rewards}}</b>已领奖励</div></div>
{{else}}<p class="msg">{{.Message}}</p>{{end}}
</main></body></html>
`))

type posterView struct {
	Title, Image, Message     string
	Counted, Pending, Rewards int
}

func (s *Server) posterHTML(w http.ResponseWriter, code int, v posterView) {
	h5Headers(w, code)
	if err := posterTmpl.Execute(w, v); err != nil {
		s.log.Warn().Err(err).Msg("render poster page")
	}
}

// posterOf verifies a poster link and reads what her poster shows; on
// failure it has answered with a friendly page.
func (s *Server) posterOf(w http.ResponseWriter, r *http.Request) (bot.PosterRef, *engine.ReferrerRecord, bool) {
	fail := func(code int, title, msg string) (bot.PosterRef, *engine.ReferrerRecord, bool) {
		s.posterHTML(w, code, posterView{Title: title, Message: msg})
		return bot.PosterRef{}, nil, false
	}
	if s.o.Links == nil || s.o.Posters == nil || s.o.Scenario == nil || s.o.Scenario() == nil {
		return fail(http.StatusServiceUnavailable, "邀请海报", "海报暂时不可用，请稍后再试。")
	}
	sc := s.o.Scenario()
	if sc.Referral == nil || sc.Referral.Poster == nil {
		return fail(http.StatusNotFound, "邀请海报", "邀请活动已结束，感谢参与～")
	}
	member, _, err := s.o.Links.Verify(engine.PosterPurpose, r.URL.Query().Get("t"))
	switch {
	case errors.Is(err, signlink.ErrExpired):
		return fail(http.StatusGone, "链接已过期", "这个链接已经过期啦，在客服对话里回复「海报」即可获取新的海报。")
	case err != nil:
		return fail(http.StatusForbidden, "链接无效", "这个链接无效，请使用客服发给你的链接。")
	}
	var p bot.PosterRef
	var rec *engine.ReferrerRecord
	err = s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		m, err := tx.Member(member)
		if err != nil {
			return err
		}
		p = bot.PosterRef{Member: member, Name: sc.DataFor(m).Name}
		if rec, err = engine.Referral(tx, member); err != nil || rec == nil {
			return err
		}
		way, err := engine.ContactWay(tx, rec.State)
		if err == nil && way != nil {
			p.QRCode = way.QRCode
		}
		return err
	})
	switch {
	case errors.Is(err, bot.ErrNotFound):
		return fail(http.StatusNotFound, "邀请海报", "没有找到你的会员信息，请先添加客服。")
	case err != nil:
		s.log.Error().Err(err).Msg("poster page")
		return fail(http.StatusInternalServerError, "邀请海报", "出了点问题，请稍后再试。")
	case p.QRCode == "":
		return fail(http.StatusNotFound, "邀请海报", "你的专属海报还没生成，在客服对话里回复「海报」即可获取～")
	}
	return p, rec, true
}

// posterPage answers GET /poster?t=TOKEN.
func (s *Server) posterPage(w http.ResponseWriter, r *http.Request) {
	_, rec, ok := s.posterOf(w, r)
	if !ok {
		return
	}
	s.posterHTML(w, http.StatusOK, posterView{Title: "我的专属邀请海报", Image: engine.PathPosterPNG + "?t=" + r.URL.Query().Get("t"),
		Counted: rec.Counted, Pending: rec.Pending, Rewards: len(rec.Rewarded)})
}

// posterPNG answers GET /poster.png?t=TOKEN: her poster, drawn now.
func (s *Server) posterPNG(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.posterOf(w, r)
	if !ok {
		return
	}
	png, err := s.o.Posters(r.Context(), p)
	if err != nil {
		s.log.Error().Err(err).Str("member", p.Member).Msg("render poster")
		s.posterHTML(w, http.StatusBadGateway, posterView{Title: "邀请海报", Message: "海报生成失败，请稍后再试。"})
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(png)
}

// apiPosters answers GET /api/v1/posters: the 任务宝 funnel.
func (s *Server) apiPosters(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	var f engine.PosterFunnel
	if err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { f, err = engine.BuildPosterFunnel(tx); return err }); err != nil {
		s.fail(w, r, err)
		return
	}
	enabled := s.o.Scenario != nil && s.o.Scenario() != nil && s.o.Scenario().Referral != nil && s.o.Scenario().Referral.Poster != nil
	writeJSON(w, http.StatusOK, map[string]any{"enabled": enabled, "funnel": f})
}
