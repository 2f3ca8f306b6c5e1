package server

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
)

// Members' check-in pages (打卡): a personal signed link opens the member's
// page (streak, points, rank, a check-in button); the button POSTs, which
// appends a campaign.checkin event to the log and waits briefly for the
// engine's answer; a certificate link (shareable, shows only) serves the
// certificate page and its PNG. Nothing here changes state but the append.

// checkinWait is how long a check-in POST waits for the engine's answer.
const checkinWait = 3 * time.Second

// certLinkTTL is how long the certificate links the page hands out last.
const certLinkTTL = 365 * 24 * time.Hour

// checkinCSP allows the page's inline style and its own certificate image only.
const checkinCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// h5Head opens the check-in and catalogue pages: the card layout and
// message style they share (each adds its own rules and body).
const h5Head = `<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;background:#f6f3ea;color:#2d2a24;margin:0;padding:24px}
main{max-width:420px;margin:0 auto;background:#fff;border-radius:16px;padding:24px;box-shadow:0 2px 12px rgba(0,0,0,.06)}
h1{font-size:20px;margin:0 0 4px}.sub{color:#8a8272;font-size:13px;margin:0 0 16px}
.msg{background:#fff7e0;border-radius:10px;padding:12px;margin:0 0 16px;white-space:pre-wrap}
`

var checkinTmpl = template.Must(template.New("checkin").Parse(h5Head + `.grid{display:grid;grid-template-columns:repeat(3,1fr);gap:8px;text-align:center;margin:0 0 16px}
.grid div{background:#f6f3ea;border-radius:10px;padding:10px 4px}.grid b{display:block;font-size:22px}
.days{display:flex;gap:6px;flex-wrap:wrap;margin:0 0 16px}.days span{width:32px;height:32px;border-radius:50%;background:#eee;display:flex;align-items:center;justify-content:center;font-size:13px}
.days .on{background:#7a9a5a;color:#fff}
button{width:100%;padding:14px;border:0;border-radius:12px;background:#7a9a5a;color:#fff;font-size:17px}
button[disabled]{background:#c9c3b5}
img{width:100%;border-radius:12px;margin:16px 0 8px}a{color:#7a9a5a}
</style></head><body><main>
<h1>{{.Title}}</h1>
<p class="sub">{{.Name}}{{if .Windows}} · 打卡时间 {{.Windows}}{{end}}</p>
{{if .Message}}<p class="msg">{{.Message}}</p>{{end}}
{{if .Stats}}<div class="grid"><div><b>{{.Days}}</b>已打卡天数</div><div><b>{{.Streak}}</b>连续天数</div><div><b>{{.Score}}</b>本期积分</div>
<div><b>{{.Points}}</b>总积分</div><div><b>{{if .Level}}{{.Level}}{{else}}-{{end}}</b>会员等级</div><div><b>{{if .Rank}}{{.Rank}}{{else}}-{{end}}</b>排名</div></div>
{{if .Slots}}<div class="days">{{range .Slots}}<span{{if .On}} class="on"{{end}} title="{{.Day}}">{{.N}}</span>{{end}}</div>{{end}}{{end}}
{{if .Token}}<form method="post" action="/checkin"><input type="hidden" name="t" value="{{.Token}}">
<button type="submit"{{if .Done}} disabled{{end}}>{{if .Done}}今天已打卡{{else}}立即打卡{{end}}</button></form>{{end}}
{{if .CertPage}}<a href="{{.CertPage}}"><img src="{{.CertImage}}" alt="{{.Title}}证书"></a><p class="sub">长按图片保存，分享到朋友圈晒证书吧～</p>{{end}}
{{if .CertText}}<p>{{.CertText}}</p>{{end}}
</main></body></html>
`))

type checkinSlot struct {
	N   int
	Day string
	On  bool
}

type checkinView struct {
	Title, Name, Windows, Message string
	Stats                         bool
	Days, Streak, Rank            int
	Score, Points                 int64
	Level                         string
	Slots                         []checkinSlot
	Token                         string
	Done                          bool
	CertPage, CertImage, CertText string
}

// h5Headers starts a member's H5 page: its CSP, no caching, no referrer
// (the URL carries her signed link).
func h5Headers(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Security-Policy", checkinCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
}

func (s *Server) checkinHTML(w http.ResponseWriter, code int, v checkinView) {
	h5Headers(w, code)
	if err := checkinTmpl.Execute(w, v); err != nil {
		s.log.Warn().Err(err).Msg("render check-in page")
	}
}

// checkinLink verifies a link token for purpose and resolves the member and
// campaign; on failure it has answered with a friendly page.
func (s *Server) checkinLink(w http.ResponseWriter, purpose, token string) (member string, camp *scenarios.Campaign, sc *scenarios.Scenario, ok bool) {
	if s.o.Links == nil || s.o.Scenario == nil || s.o.Scenario() == nil {
		s.checkinHTML(w, http.StatusServiceUnavailable, checkinView{Title: "打卡", Message: "打卡页面暂时不可用，请稍后再试。"})
		return "", nil, nil, false
	}
	subject, _, err := s.o.Links.Verify(purpose, token)
	switch {
	case errors.Is(err, signlink.ErrExpired):
		s.checkinHTML(w, http.StatusGone, checkinView{Title: "链接已过期", Message: "这个链接已经过期啦。在客服对话里回复「打卡」即可获取新的打卡链接。"})
		return "", nil, nil, false
	case err != nil:
		s.checkinHTML(w, http.StatusForbidden, checkinView{Title: "链接无效", Message: "这个链接无效，请使用客服发给你的打卡链接。"})
		return "", nil, nil, false
	}
	member, name, okSub := checkin.ParseSubject(subject)
	sc = s.o.Scenario()
	camp = sc.Campaign(name)
	if !okSub || camp == nil {
		s.checkinHTML(w, http.StatusNotFound, checkinView{Title: "活动已结束", Message: "这个打卡活动已经不存在了，下期开始会通知你～"})
		return "", nil, nil, false
	}
	return member, camp, sc, true
}

// memberCampaign reads what the page shows, in one read transaction.
type memberCampaign struct {
	m      *bot.Member
	p      *checkin.Progress
	closed bool
	rank   int
}

func (s *Server) loadMemberCampaign(ctx context.Context, camp *scenarios.Campaign, member string) (*memberCampaign, error) {
	mc := &memberCampaign{}
	err := s.o.Store.View(ctx, func(tx bot.Tx) error {
		m, err := tx.Member(member)
		if err != nil {
			return err
		}
		mc.m = m
		if mc.p, err = checkin.LoadProgress(tx, camp.Name, member); err != nil {
			return err
		}
		if mc.closed, err = checkin.IsClosed(tx, camp.Name); err != nil {
			return err
		}
		if mc.p != nil {
			mc.rank, _, _, err = checkin.Rank(tx, camp.Name, member)
		}
		return err
	})
	return mc, err
}

func windowsText(c *scenarios.Campaign) string {
	parts := make([]string, len(c.Windows))
	for i, w := range c.Windows {
		parts[i] = w.String()
	}
	return strings.Join(parts, "、")
}

// view builds the member's page.
func (s *Server) checkinPageView(sc *scenarios.Scenario, camp *scenarios.Campaign, mc *memberCampaign, token, message string) checkinView {
	now := s.o.Now()
	today := checkin.DayOf(now, camp.Zone)
	data := sc.DataFor(mc.m)
	v := checkinView{Title: camp.Name, Name: data.Name, Windows: windowsText(camp), Message: message, Stats: true,
		Days: mc.p.Count(), Streak: mc.p.Streak(today), Rank: mc.rank, Points: mc.m.Points, Level: mc.m.Level, Token: token}
	if mc.p != nil {
		v.Score = mc.p.Score
	}
	first, last := checkin.Span(camp, mc.p, today)
	if camp.Days <= 31 {
		for d := first; d <= last; d++ {
			v.Slots = append(v.Slots, checkinSlot{N: int(d-first) + 1, Day: d.String(), On: mc.p.Has(d)})
		}
	}
	v.Done = mc.p.Has(today) || mc.closed || today > last
	if mc.p != nil && mc.p.Certificate {
		cert := s.o.Links.Sign(checkin.CertPurpose, checkin.Subject(mc.m.ExternalUserID, camp.Name), certLinkTTL)
		v.CertPage, v.CertImage = "/checkin/cert?t="+cert, "/checkin/cert.png?t="+cert
	}
	return v
}

// checkinPage answers GET /checkin?t=TOKEN: the member's page.
func (s *Server) checkinPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("t")
	member, camp, sc, ok := s.checkinLink(w, checkin.LinkPurpose, token)
	if !ok {
		return
	}
	mc, err := s.loadMemberCampaign(r.Context(), camp, member)
	if err != nil {
		s.checkinError(w, err)
		return
	}
	s.checkinHTML(w, http.StatusOK, s.checkinPageView(sc, camp, mc, token, ""))
}

func (s *Server) checkinError(w http.ResponseWriter, err error) {
	if errors.Is(err, bot.ErrNotFound) {
		s.checkinHTML(w, http.StatusNotFound, checkinView{Title: "打卡", Message: "没有找到你的会员信息，请先添加客服。"})
		return
	}
	s.log.Error().Err(err).Msg("check-in page")
	s.checkinHTML(w, http.StatusInternalServerError, checkinView{Title: "打卡", Message: "出了点问题，请稍后再试。"})
}

// checkinPost answers POST /checkin (form field t): it decides the attempt
// against the stored state (a refusal changes nothing and appends nothing),
// else appends a campaign.checkin event deduplicated per member, campaign
// and day, and waits up to checkinWait for the engine to record it.
func (s *Server) checkinPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.checkinHTML(w, http.StatusBadRequest, checkinView{Title: "打卡", Message: "请求无效。"})
		return
	}
	token := r.PostFormValue("t")
	member, camp, sc, ok := s.checkinLink(w, checkin.LinkPurpose, token)
	if !ok {
		return
	}
	ctx := r.Context()
	mc, err := s.loadMemberCampaign(ctx, camp, member)
	if err != nil {
		s.checkinError(w, err)
		return
	}
	now := s.o.Now()
	outcome, day := checkin.Attempt(camp, mc.p, now, mc.closed)
	if !camp.Audience.IncludesAt(mc.m, now) {
		outcome = checkin.NotInAudience
	}
	if !outcome.OK() {
		data := sc.DataFor(mc.m)
		data.Campaign, data.Day, data.Streak, data.Rank = camp.Name, mc.p.Count(), mc.p.Streak(day), mc.rank
		text, err := checkin.Reply(camp, outcome, data)
		if err != nil {
			s.log.Warn().Err(err).Msg("check-in message template failed")
		}
		s.checkinHTML(w, http.StatusOK, s.checkinPageView(sc, camp, mc, token, text))
		return
	}
	ev := &bot.Event{Type: checkin.EventCheckIn, Source: "h5", ExternalUserID: member, At: now, ReceivedAt: now,
		DedupeKey: checkin.TapDedupeKey(member, camp.Name, day), Data: map[string]string{checkin.DataCampaign: camp.Name}}
	if _, err := s.appendEvent(ctx, ev); err != nil {
		s.checkinError(w, fmt.Errorf("append check-in: %w", err))
		return
	}
	text, found := s.waitCheckinResult(ctx, ev.DedupeKey)
	if !found {
		text = "已收到你的打卡，正在记录，稍后刷新本页查看～"
	}
	if mc, err = s.loadMemberCampaign(ctx, camp, member); err != nil {
		s.checkinError(w, err)
		return
	}
	s.checkinHTML(w, http.StatusOK, s.checkinPageView(sc, camp, mc, token, text))
}

// waitCheckinResult polls for the engine's answer to a check-in event.
func (s *Server) waitCheckinResult(ctx context.Context, key string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, checkinWait)
	defer cancel()
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		var text string
		var found bool
		err := s.o.Store.View(ctx, func(tx bot.Tx) (err error) {
			text, found, err = checkin.LoadResult(tx, key)
			return err
		})
		if err == nil && found {
			return text, true
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-t.C:
		}
	}
}

// certificate reads the member and progress for a certificate link.
func (s *Server) certificate(w http.ResponseWriter, r *http.Request) (*checkin.Certificate, bool) {
	member, camp, sc, ok := s.checkinLink(w, checkin.CertPurpose, r.URL.Query().Get("t"))
	if !ok {
		return nil, false
	}
	mc, err := s.loadMemberCampaign(r.Context(), camp, member)
	if err != nil {
		s.checkinError(w, err)
		return nil, false
	}
	if mc.p == nil || !mc.p.Certificate {
		s.checkinHTML(w, http.StatusNotFound, checkinView{Title: camp.Name, Message: "还没有获得证书哦，继续打卡吧～"})
		return nil, false
	}
	data := sc.DataFor(mc.m)
	data.Campaign, data.Day, data.Rank = camp.Name, mc.p.Count(), mc.rank
	cert := &checkin.Certificate{Title: camp.Name + "证书", Name: data.Name, Campaign: camp.Name, Days: mc.p.Count(),
		Date: mc.p.Last.In(camp.Zone).Format("2006-01-02"), Brand: sc.Brand.Name}
	if camp.Certificate != nil {
		cert.Title = camp.Certificate.Title
		text, err := camp.Certificate.Text.Render(data)
		if err != nil {
			s.log.Warn().Err(err).Msg("certificate text template failed")
		}
		cert.Text = text
	}
	return cert, true
}

// checkinCertPage answers GET /checkin/cert?t=TOKEN: the shareable certificate page.
func (s *Server) checkinCertPage(w http.ResponseWriter, r *http.Request) {
	cert, ok := s.certificate(w, r)
	if !ok {
		return
	}
	t := r.URL.Query().Get("t")
	s.checkinHTML(w, http.StatusOK, checkinView{Title: cert.Title, Name: cert.Name, CertPage: "/checkin/cert?t=" + t,
		CertImage: "/checkin/cert.png?t=" + t, CertText: cert.Text})
}

// checkinCertPNG answers GET /checkin/cert.png?t=TOKEN: the certificate image.
func (s *Server) checkinCertPNG(w http.ResponseWriter, r *http.Request) {
	cert, ok := s.certificate(w, r)
	if !ok {
		return
	}
	png, err := cert.PNG()
	if err != nil {
		s.checkinError(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(png)
}

// CampaignReports implements CampaignReader over the check-in ledger: per
// campaign of the scenario in force, check-ins per day for the last `days`
// days, members by current streak and the top 10.
type CampaignReports struct {
	Store    bot.Store
	Scenario func() *scenarios.Scenario
	Now      func() time.Time
}

// Campaigns implements CampaignReader. The streak distribution reads every
// participant's progress (one range scan); the rest is O(days + 10).
func (c CampaignReports) Campaigns(ctx context.Context, days int) ([]CampaignReport, error) {
	sc := c.Scenario()
	if sc == nil {
		return nil, nil
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	var out []CampaignReport
	err := c.Store.View(ctx, func(tx bot.Tx) error {
		for _, camp := range sc.Campaigns {
			rep := CampaignReport{Name: camp.Name, Days: []DayCount{}, Streaks: []StreakCount{}, Leaders: []Leader{}}
			today := checkin.DayOf(now(), camp.Zone)
			for d := today - checkin.Day(days) + 1; d <= today; d++ {
				n, err := checkin.CheckInsOn(tx, camp.Name, d)
				if err != nil {
					return err
				}
				rep.Days = append(rep.Days, DayCount{Day: d.String(), Members: int(n)})
			}
			streaks := map[int]int{}
			if err := checkin.EachProgress(tx, camp.Name, func(p *checkin.Progress) bool {
				if s := p.Streak(today); s > 0 {
					streaks[s]++
				}
				return true
			}); err != nil {
				return err
			}
			for d, n := range streaks {
				rep.Streaks = append(rep.Streaks, StreakCount{Days: d, Members: n})
			}
			sort.Slice(rep.Streaks, func(i, j int) bool { return rep.Streaks[i].Days < rep.Streaks[j].Days })
			top, err := checkin.Top(tx, camp.Name, 10)
			if err != nil {
				return err
			}
			for _, st := range top {
				name := st.Member
				if m, err := tx.Member(st.Member); err == nil {
					name = sc.DataFor(m).Name
				}
				rep.Leaders = append(rep.Leaders, Leader{ExternalUserID: st.Member, Name: name, Score: st.Score})
			}
			out = append(out, rep)
		}
		return nil
	})
	return out, err
}

// CheckinSection is the member detail's check-in section: the member's
// progress in each campaign of the scenario in force (days, streak, score,
// rank, make-ups, certificate). (The points ledger has its own section.)
func CheckinSection(scenario func() *scenarios.Scenario, now func() time.Time) MemberSection {
	if now == nil {
		now = time.Now
	}
	type campaignRow struct {
		Campaign    string   `json:"campaign"`
		Days        []string `json:"days"`
		Streak      int      `json:"streak"`
		Score       int64    `json:"score"`
		Rank        int      `json:"rank"`
		Makeups     int      `json:"makeups"`
		Certificate bool     `json:"certificate"`
	}
	return MemberSection{Name: "checkin", Read: func(tx bot.Tx, m *bot.Member) (any, error) {
		rows := []campaignRow{}
		sc := scenario()
		if sc == nil {
			return rows, nil
		}
		for _, camp := range sc.Campaigns {
			p, err := checkin.LoadProgress(tx, camp.Name, m.ExternalUserID)
			if err != nil {
				return nil, err
			}
			if p == nil {
				continue
			}
			row := campaignRow{Campaign: camp.Name, Streak: p.Streak(checkin.DayOf(now(), camp.Zone)), Score: p.Score,
				Makeups: len(p.Makeups), Certificate: p.Certificate, Days: []string{}}
			for _, d := range p.Days {
				row.Days = append(row.Days, d.String())
			}
			if row.Rank, _, _, err = checkin.Rank(tx, camp.Name, m.ExternalUserID); err != nil {
				return nil, err
			}
			rows = append(rows, row)
		}
		return rows, nil
	}}
}
