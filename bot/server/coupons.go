package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/couponcode"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
)

// MaxImportBytes caps a coupon CSV upload (about 300,000 codes).
const MaxImportBytes = 8 << 20

func (s *Server) scenarioOr503(w http.ResponseWriter) *scenarios.Scenario {
	if s.o.Scenario == nil || s.o.Scenario() == nil {
		writeError(w, http.StatusServiceUnavailable, "no scenario loaded")
		return nil
	}
	return s.o.Scenario()
}

// apiCouponImport adds the codes of a CSV body (text/csv) to a pool: the
// whole file or, on the first bad line or known code, nothing.
func (s *Server) apiCouponImport(w http.ResponseWriter, r *http.Request) {
	sc := s.scenarioOr503(w)
	if sc == nil {
		return
	}
	pool := r.PathValue("pool")
	if sc.Coupon(pool) == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown coupon pool %q (declare it under coupons in the scenario)", pool))
		return
	}
	codes, err := couponcode.ParseCSV(http.MaxBytesReader(w, r.Body, MaxImportBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "nothing imported: "+err.Error())
		return
	}
	out, ok := s.couponRequest(w, r, engine.EventCouponImport, map[string]string{engine.DataPool: pool, engine.DataCodes: strings.Join(codes, "\n")})
	if !ok {
		return
	}
	if out.Refused != "" {
		writeError(w, http.StatusConflict, out.Refused)
		return
	}
	s.log.Info().Str("pool", pool).Int("codes", out.Imported).Int("free", out.Free).Msg("coupon codes imported")
	writeJSON(w, http.StatusOK, map[string]any{"pool": pool, "imported": out.Imported, "free": out.Free})
}

// CouponRequestWait is how long the coupon import and generate API waits
// for the engine to apply the request before answering 202 (pending).
var CouponRequestWait = 10 * time.Second

// couponRequest appends an operator's import or generate request to the
// event log — the engine applies it, like every change to the pools — and
// waits for its outcome. ok is false when an answer was already written
// (an error, or 202 while the engine hasn't got to it yet).
func (s *Server) couponRequest(w http.ResponseWriter, r *http.Request, typ bot.EventType, data map[string]string) (out *engine.CouponRequest, ok bool) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	id := "coupons|" + hex.EncodeToString(nonce[:])
	now := s.o.Now()
	ev := &bot.Event{Type: typ, Source: bot.SourceOperator, At: now, ReceivedAt: now, DedupeKey: id, Data: data}
	if _, err := s.appendEvent(r.Context(), ev); err != nil {
		writeError(w, errorStatus(err), err.Error())
		return nil, false
	}
	deadline := time.Now().Add(CouponRequestWait)
	for {
		err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { out, err = engine.CouponRequestOutcome(tx, id); return err })
		if err != nil {
			writeError(w, errorStatus(err), err.Error())
			return nil, false
		}
		if out != nil {
			return out, true
		}
		if time.Now().After(deadline) {
			writeJSON(w, http.StatusAccepted, map[string]any{"pool": data[engine.DataPool], "status": "pending", "request": id,
				"detail": "queued; the engine hasn't applied it yet (is serve's pipeline running? see /healthz)"})
			return nil, false
		}
		select {
		case <-r.Context().Done():
			return nil, false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// apiCouponGenerate makes ?n= new codes for a pool with a generate section
// and returns them.
func (s *Server) apiCouponGenerate(w http.ResponseWriter, r *http.Request) {
	sc := s.scenarioOr503(w)
	if sc == nil {
		return
	}
	q := newQuery(r, "n")
	n := q.int("n", 0, 1, engine.MaxGenerate)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	if n == 0 {
		writeError(w, http.StatusBadRequest, "query parameter n (how many codes) is required")
		return
	}
	pool := r.PathValue("pool")
	out, ok := s.couponRequest(w, r, engine.EventCouponGenerate, map[string]string{engine.DataPool: pool, engine.DataCount: strconv.Itoa(n)})
	if !ok {
		return
	}
	if out.Refused != "" {
		writeError(w, http.StatusBadRequest, out.Refused)
		return
	}
	s.log.Info().Str("pool", pool).Int("codes", len(out.Codes)).Msg("coupon codes generated")
	writeJSON(w, http.StatusOK, map[string]any{"pool": pool, "codes": out.Codes})
}

// couponGrantRequest is the body of POST /api/v1/coupons/{pool}/grant.
type couponGrantRequest struct {
	Member   string `json:"external_userid"`
	Operator string `json:"operator,omitempty"`
	Note     string `json:"note,omitempty"`
	// RequestID makes a retried request grant once.
	RequestID string `json:"request_id,omitempty"`
}

// apiCouponGrant gives a member one code: an operator event goes to the log
// and the engine issues and delivers it like any hook.
func (s *Server) apiCouponGrant(w http.ResponseWriter, r *http.Request) {
	sc := s.scenarioOr503(w)
	if sc == nil {
		return
	}
	pool := r.PathValue("pool")
	if sc.Coupon(pool) == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown coupon pool %q", pool))
		return
	}
	var req couponGrantRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Member == "" {
		writeError(w, http.StatusBadRequest, `body must be {"external_userid": "...", "operator": "...", "note": "...", "request_id": "..."}`)
		return
	}
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) error { _, err := tx.Member(req.Member); return err })
	if err != nil {
		writeError(w, errorStatus(err), fmt.Sprintf("member %q: %v", req.Member, err))
		return
	}
	now := s.o.Now()
	ev := &bot.Event{Type: engine.EventCouponGrant, Source: bot.SourceOperator, ExternalUserID: req.Member, At: now, ReceivedAt: now,
		Data: map[string]string{engine.DataPool: pool, engine.DataOperator: req.Operator, engine.DataNote: req.Note}}
	if req.RequestID != "" {
		ev.DedupeKey = "grant|" + req.RequestID
	}
	dup, err := s.appendEvent(r.Context(), ev)
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"seq": ev.Seq, "duplicate": dup})
}

// EngineCoupons is the dashboard's CouponReader over the engine's coupon
// report: one row per pool (Hook "") followed by one per hook.
func EngineCoupons(store bot.Store, sc func() *scenarios.Scenario, now func() time.Time) CouponReader {
	return engineCoupons{store, sc, now}
}

type engineCoupons struct {
	store bot.Store
	sc    func() *scenarios.Scenario
	now   func() time.Time
}

func (c engineCoupons) CouponPools(ctx context.Context) ([]CouponPoolReport, error) {
	sc := c.sc()
	if sc == nil {
		return nil, nil
	}
	var rep *engine.CouponReport
	if err := c.store.View(ctx, func(tx bot.Tx) (err error) { rep, err = engine.BuildCouponReport(tx, sc, c.now()); return err }); err != nil {
		return nil, err
	}
	var out []CouponPoolReport
	for _, p := range rep.Pools {
		out = append(out, CouponPoolReport{Pool: p.Pool, Issued: p.Issued, Redeemed: p.Redeemed, Expired: p.Expired, Stock: p.Stock,
			Unused: p.Unused, OrderFen: p.OrderFen, Conversion: p.Conversion, Low: p.Low})
		hooks := make([]string, 0, len(p.ByHook))
		for h := range p.ByHook {
			hooks = append(hooks, h)
		}
		sort.Strings(hooks)
		for _, h := range hooks {
			n := p.ByHook[h]
			out = append(out, CouponPoolReport{Pool: p.Pool, Hook: h, Issued: n.Issued, Redeemed: n.Redeemed, Expired: n.Expired, Stock: p.Stock,
				Unused: n.Unused, OrderFen: n.OrderFen, Conversion: n.Conversion})
		}
	}
	return out, nil
}

// CouponsSection adds the member's coupon codes to their detail.
func CouponsSection() MemberSection {
	return MemberSection{Name: "coupons", Read: func(tx bot.Tx, m *bot.Member) (any, error) {
		codes, err := engine.MemberCoupons(tx, m.ExternalUserID)
		if codes == nil {
			codes = []engine.CouponCode{}
		}
		return codes, err
	}}
}

var couponPage = template.Must(template.New("coupons").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>我的券包</title>
<style>body{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;max-width:480px;margin:1em auto;padding:0 1em;color:#222;background:#faf7f2}
.c{background:#fff;border-radius:10px;padding:1em;margin:.8em 0;box-shadow:0 1px 3px #0002}.c.off{opacity:.55}
.code{font:600 1.4em ui-monospace,monospace;letter-spacing:.08em;user-select:all}.s{float:right;font-size:.85em;color:#a0522d}</style></head>
<body><h2>{{.Brand}} · 我的券包</h2>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{range .Coupons}}<div class="c{{if .Off}} off{{end}}"><span class="s">{{.Status}}</span><b>{{.Pool}}</b><br>{{.Description}}
<div class="code">{{.Code}}</div><small>{{.Validity}}</small></div>{{end}}
{{if and (not .Coupons) (not .Message)}}<p>还没有券哦～在微信客服回复「领券」试试。</p>{{end}}
<p><small>到店出示券码，或小程序下单时填写券码抵扣。</small></p></body></html>`))

type couponView struct {
	Pool, Description, Code, Status, Validity string
	Off                                       bool
}

// couponsPage is the member's personal coupon page, opened from the signed
// link in their welcome or 微信客服 message.
func (s *Server) couponsPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	data := map[string]any{"Brand": ""}
	sc := (*scenarios.Scenario)(nil)
	if s.o.Scenario != nil {
		sc = s.o.Scenario()
	}
	zone := time.Local
	if sc != nil {
		data["Brand"] = sc.Brand.Name
		zone = sc.Brand.Zone
	}
	if s.o.Links == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		data["Message"] = "券包暂不可用。"
		_ = couponPage.Execute(w, data)
		return
	}
	member, _, err := s.o.Links.Verify(engine.LinkPurposeCoupons, r.URL.Query().Get("t"))
	if err != nil {
		code, msg := http.StatusForbidden, "链接无效，请在微信客服回复「领券」获取新的链接。"
		if errors.Is(err, signlink.ErrExpired) {
			msg = "链接已过期，请在微信客服回复「领券」获取新的链接。"
		}
		w.WriteHeader(code)
		data["Message"] = msg
		_ = couponPage.Execute(w, data)
		return
	}
	var codes []engine.CouponCode
	err = s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { codes, err = engine.MemberCoupons(tx, member); return err })
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		data["Message"] = "暂时打不开券包，请稍后再试。"
		_ = couponPage.Execute(w, data)
		return
	}
	now := s.o.Now()
	var views []couponView
	for i := range codes {
		c := &codes[i]
		v := couponView{Pool: c.Pool, Code: c.Code, Status: "可使用"}
		if sc != nil {
			if p := sc.Coupon(c.Pool); p != nil {
				v.Description = p.Description
			}
		}
		switch {
		case c.Status == engine.CouponUsed:
			v.Status, v.Off = "已使用", true
		case c.Expired(now):
			v.Status, v.Off = "已过期", true
		case !c.ValidFrom.IsZero() && now.Before(c.ValidFrom):
			v.Status = "未生效"
		}
		if !c.ExpiresAt.IsZero() {
			v.Validity = "有效期至 " + c.ExpiresAt.Add(-time.Second).In(zone).Format("2006-01-02")
		}
		views = append(views, v)
	}
	data["Coupons"] = views
	_ = couponPage.Execute(w, data)
}

// ReferralSection adds the member's invite code and counts to their detail.
func ReferralSection() MemberSection {
	return MemberSection{Name: "referral", Read: func(tx bot.Tx, m *bot.Member) (any, error) {
		return engine.Referral(tx, m.ExternalUserID)
	}}
}
