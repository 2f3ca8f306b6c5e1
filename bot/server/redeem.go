package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
)

// The member economy's pages and API (issue 20): the member's signed
// catalogue page (积分商城) and gift address form, and the operators'
// economy report, redemptions list and mark-shipped. Pages verify the link
// and append events; only the engine changes anything.

// Shipping address limits (the form refuses more, naming the field).
const (
	maxShipName = 30
	maxShipAddr = 200
)

var redeemTmpl = template.Must(template.New("redeem").Parse(h5Head + `.err{background:#fde8e8}
.item{display:flex;justify-content:space-between;align-items:center;border-top:1px solid #eee;padding:12px 0;gap:12px}
.item b{display:block}.item small{color:#8a8272}
button{padding:10px 14px;border:0;border-radius:10px;background:#7a9a5a;color:#fff;font-size:15px;white-space:nowrap}
button[disabled]{background:#c9c3b5}
label{display:block;margin:0 0 12px;font-size:14px}input,textarea{width:100%;box-sizing:border-box;padding:10px;border:1px solid #ddd;border-radius:8px;font-size:15px}
</style></head><body><main>
<h1>{{.Title}}</h1>
{{if .Sub}}<p class="sub">{{.Sub}}</p>{{end}}
{{if .Message}}<p class="msg{{if .Error}} err{{end}}">{{.Message}}</p>{{end}}
{{range .Items}}<div class="item"><div><b>{{.Name}}</b><small>{{.Cost}} 积分{{if .Left}} · {{.Left}}{{end}}</small></div>
<form method="post" action="/redeem"><input type="hidden" name="t" value="{{$.Token}}"><input type="hidden" name="n" value="{{$.Nonce}}"><input type="hidden" name="item" value="{{.Name}}">
<button type="submit"{{if not .OK}} disabled{{end}}>{{.Button}}</button></form></div>{{end}}
{{if .Address}}<form method="post" action="/redeem/address"><input type="hidden" name="t" value="{{.Token}}">
<label>收件人<input name="name" maxlength="30" value="{{.ShipName}}" required></label>
<label>手机号<input name="phone" inputmode="tel" maxlength="20" value="{{.ShipPhone}}" required></label>
<label>收货地址<textarea name="address" rows="3" maxlength="200" required>{{.ShipAddr}}</textarea></label>
<button type="submit">保存地址</button></form>{{end}}
</main></body></html>
`))

type redeemItemView struct {
	Name   string
	Cost   int64
	Left   string
	OK     bool
	Button string
}

type redeemView struct {
	Title, Sub, Message string
	Error               bool
	Token, Nonce        string
	Items               []redeemItemView
	Address             bool
	ShipName, ShipPhone string
	ShipAddr            string
}

func (s *Server) redeemHTML(w http.ResponseWriter, code int, v redeemView) {
	h5Headers(w, code)
	if err := redeemTmpl.Execute(w, v); err != nil {
		s.log.Warn().Err(err).Msg("render redemption page")
	}
}

// redeemLink verifies a link token for purpose; on failure it has
// answered with a friendly page and nothing else happens.
func (s *Server) redeemLink(w http.ResponseWriter, purpose, token string) (subject string, sc *scenarios.Scenario, ok bool) {
	if s.o.Links == nil || s.o.Scenario == nil || s.o.Scenario() == nil {
		s.redeemHTML(w, http.StatusServiceUnavailable, redeemView{Title: "积分商城", Message: "页面暂时不可用，请稍后再试。", Error: true})
		return "", nil, false
	}
	subject, _, err := s.o.Links.Verify(purpose, token)
	switch {
	case errors.Is(err, signlink.ErrExpired):
		s.redeemHTML(w, http.StatusGone, redeemView{Title: "链接已过期", Message: "这个链接已经过期啦。在客服对话里回复「兑换」即可获取新链接。", Error: true})
		return "", nil, false
	case err != nil:
		s.redeemHTML(w, http.StatusForbidden, redeemView{Title: "链接无效", Message: "这个链接无效，请使用客服发给你的链接。", Error: true})
		return "", nil, false
	}
	return subject, s.o.Scenario(), true
}

// redeemForm reads a page's POST form and verifies its link (form field
// t) for purpose; on failure it has answered and nothing else happens.
func (s *Server) redeemForm(w http.ResponseWriter, r *http.Request, purpose, title string) (subject string, sc *scenarios.Scenario, token string, ok bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.redeemHTML(w, http.StatusBadRequest, redeemView{Title: title, Message: "请求无效。", Error: true})
		return "", nil, "", false
	}
	token = r.PostFormValue("t")
	subject, sc, ok = s.redeemLink(w, purpose, token)
	return subject, sc, token, ok
}

// catalogueView is the member's catalogue page.
func (s *Server) catalogueView(ctx context.Context, sc *scenarios.Scenario, member, token, message string, isErr bool) (redeemView, error) {
	v := redeemView{Title: "积分商城", Token: token, Message: message, Error: isErr, Nonce: newNonce()}
	if sc.Redeem == nil {
		v.Message = "积分兑换暂未开放，敬请期待～"
		return v, nil
	}
	now := s.o.Now()
	err := s.o.Store.View(ctx, func(tx bot.Tx) error {
		m, err := tx.Member(member)
		if err != nil {
			return err
		}
		stock, err := engine.CatalogueStock(tx, sc)
		if err != nil {
			return err
		}
		name := sc.DataFor(m).Name
		v.Sub = fmt.Sprintf("%s · 当前 %d 积分", name, m.Points)
		if m.Level != "" {
			v.Sub += " · " + m.Level + "会员"
		}
		for i, it := range sc.Redeem.Items {
			if !it.OpenAt(now, sc.Brand.Zone) || !it.For(m, now) {
				continue
			}
			iv := redeemItemView{Name: it.Name, Cost: it.Cost, OK: true, Button: "兑换"}
			if left := stock[i].Left; left == 0 {
				iv.OK, iv.Button = false, "已兑完"
			} else if left > 0 && left <= 10 {
				iv.Left = fmt.Sprintf("仅剩 %d", left)
			}
			if iv.OK && m.Points < it.Cost {
				iv.OK, iv.Button = false, fmt.Sprintf("差 %d", it.Cost-m.Points)
			}
			v.Items = append(v.Items, iv)
		}
		return nil
	})
	return v, err
}

func newNonce() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) redeemError(w http.ResponseWriter, err error) {
	if errors.Is(err, bot.ErrNotFound) {
		s.redeemHTML(w, http.StatusNotFound, redeemView{Title: "积分商城", Message: "没有找到你的会员信息，请先添加客服。", Error: true})
		return
	}
	s.log.Error().Err(err).Msg("redemption page")
	s.redeemHTML(w, http.StatusInternalServerError, redeemView{Title: "积分商城", Message: "出了点问题，请稍后再试。", Error: true})
}

// redeemPage answers GET /redeem?t=TOKEN: the member's catalogue.
func (s *Server) redeemPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("t")
	member, sc, ok := s.redeemLink(w, engine.LinkPurposeRedeem, token)
	if !ok {
		return
	}
	v, err := s.catalogueView(r.Context(), sc, member, token, "", false)
	if err != nil {
		s.redeemError(w, err)
		return
	}
	s.redeemHTML(w, http.StatusOK, v)
}

// redeemPost answers POST /redeem (t, item, n): it appends a member.redeem
// event, deduplicated per page load (n), and waits for the engine's answer.
func (s *Server) redeemPost(w http.ResponseWriter, r *http.Request) {
	member, sc, token, ok := s.redeemForm(w, r, engine.LinkPurposeRedeem, "积分商城")
	if !ok {
		return
	}
	item, nonce := r.PostFormValue("item"), r.PostFormValue("n")
	if sc.Redeem.Item(item) == nil || len(nonce) < 8 || len(nonce) > 64 {
		v, err := s.catalogueView(r.Context(), sc, member, token, "请选择要兑换的礼品（item）。", true)
		if err != nil {
			s.redeemError(w, err)
			return
		}
		s.redeemHTML(w, http.StatusBadRequest, v)
		return
	}
	now := s.o.Now()
	ev := &bot.Event{Type: engine.EventRedeem, Source: "h5", ExternalUserID: member, At: now, ReceivedAt: now,
		DedupeKey: "redeem|" + member + "|" + hashKey(item+"\x00"+nonce), Data: map[string]string{engine.DataItem: item}}
	text, err := s.appendAndWait(r.Context(), ev)
	if err != nil {
		s.redeemError(w, err)
		return
	}
	v, err := s.catalogueView(r.Context(), sc, member, token, text, false)
	if err != nil {
		s.redeemError(w, err)
		return
	}
	s.redeemHTML(w, http.StatusOK, v)
}

func hashKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}

// appendAndWait appends a member's page event and waits for the engine's
// answer (kept under the event's dedupe key).
func (s *Server) appendAndWait(ctx context.Context, ev *bot.Event) (string, error) {
	if _, err := s.appendEvent(ctx, ev); err != nil {
		return "", fmt.Errorf("append %s: %w", ev.Type, err)
	}
	text, found := s.waitCheckinResult(ctx, ev.DedupeKey)
	if !found {
		text = "已收到，正在处理，稍后刷新本页查看～"
	}
	return text, nil
}

// redemptionFor reads the redemption an address link names.
func (s *Server) redemptionFor(ctx context.Context, id string) (*engine.Redemption, error) {
	var red *engine.Redemption
	err := s.o.Store.View(ctx, func(tx bot.Tx) (err error) { red, err = engine.LoadRedemption(tx, id); return err })
	if err == nil && red == nil {
		err = bot.ErrNotFound
	}
	return red, err
}

// redeemAddressPage answers GET /redeem/address?t=TOKEN: the gift's address form.
func (s *Server) redeemAddressPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("t")
	id, _, ok := s.redeemLink(w, engine.LinkPurposeAddress, token)
	if !ok {
		return
	}
	red, err := s.redemptionFor(r.Context(), id)
	if err != nil {
		s.redeemError(w, err)
		return
	}
	s.redeemHTML(w, http.StatusOK, addressView(red, token, "", false))
}

func addressView(red *engine.Redemption, token, message string, isErr bool) redeemView {
	v := redeemView{Title: "填写收货地址", Sub: "兑换礼品：" + red.Item, Token: token, Message: message, Error: isErr,
		Address: red.Status != engine.RedeemShipped, ShipName: red.ShipName, ShipPhone: red.ShipPhone, ShipAddr: red.ShipAddr}
	if red.Status == engine.RedeemShipped && message == "" {
		v.Message = "礼品已寄出：" + strings.TrimSpace(red.Carrier+" "+red.Tracking)
	}
	return v
}

// shippingProblem names the first bad field of an address form ("" if none).
func shippingProblem(name, phone, addr string) string {
	switch {
	case strings.TrimSpace(name) == "":
		return "请填写收件人（name）。"
	case utf8.RuneCountInString(name) > maxShipName:
		return fmt.Sprintf("收件人（name）最多 %d 个字。", maxShipName)
	case !validPhone(phone):
		return "手机号（phone）格式不对，请填写 11 位手机号或带区号的电话。"
	case utf8.RuneCountInString(strings.TrimSpace(addr)) < 5:
		return "请填写完整的收货地址（address）。"
	case utf8.RuneCountInString(addr) > maxShipAddr:
		return fmt.Sprintf("收货地址（address）最多 %d 个字。", maxShipAddr)
	}
	return ""
}

func validPhone(p string) bool {
	digits := 0
	for _, c := range p {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '+' || c == '-' || c == ' ':
		default:
			return false
		}
	}
	return digits >= 7 && digits <= 15
}

// redeemAddressPost answers POST /redeem/address: a bad field is refused
// (400, the field named) and nothing is appended; else a
// member.redeem_address event goes to the log.
func (s *Server) redeemAddressPost(w http.ResponseWriter, r *http.Request) {
	id, _, token, ok := s.redeemForm(w, r, engine.LinkPurposeAddress, "填写收货地址")
	if !ok {
		return
	}
	red, err := s.redemptionFor(r.Context(), id)
	if err != nil {
		s.redeemError(w, err)
		return
	}
	name, phone, addr := strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("phone")), strings.TrimSpace(r.PostFormValue("address"))
	if problem := shippingProblem(name, phone, addr); problem != "" {
		v := addressView(red, token, problem, true)
		v.ShipName, v.ShipPhone, v.ShipAddr = name, phone, addr
		s.redeemHTML(w, http.StatusBadRequest, v)
		return
	}
	now := s.o.Now()
	ev := &bot.Event{Type: engine.EventRedeemAddress, Source: "h5", ExternalUserID: red.Member, At: now, ReceivedAt: now,
		DedupeKey: "redeem-address|" + id + "|" + hashKey(name+"\x00"+phone+"\x00"+addr),
		Data:      map[string]string{engine.DataRedemption: id, engine.DataShipName: name, engine.DataShipPhone: phone, engine.DataShipAddr: addr}}
	text, err := s.appendAndWait(r.Context(), ev)
	if err != nil {
		s.redeemError(w, err)
		return
	}
	if red, err = s.redemptionFor(r.Context(), id); err != nil {
		s.redeemError(w, err)
		return
	}
	s.redeemHTML(w, http.StatusOK, addressView(red, token, text, false))
}

// ---- operators' API ----

// economyReport is GET /api/v1/economy.
type economyReport struct {
	Available bool                 `json:"available"`
	Weeks     []engine.WeekPoints  `json:"weeks"`
	Totals    engine.PointsTotals  `json:"totals"`
	Items     []engine.ItemStock   `json:"items"`
	TopItems  []engine.ItemStock   `json:"top_items"`
	Alerts    []engine.ItemStock   `json:"stock_alerts"`
	ToShip    int                  `json:"gifts_to_ship"`
	Awaiting  int                  `json:"gifts_awaiting_address"`
	Levels    []economyLevelReport `json:"levels"`
}

type economyLevelReport struct {
	Name       string  `json:"name"`
	MinPoints  int64   `json:"min_points"`
	Multiplier float64 `json:"multiplier"`
}

// apiEconomy answers GET /api/v1/economy: points issued and redeemed per
// week, the liability (points outstanding and debt), items by redemptions,
// stock alerts and gifts waiting.
func (s *Server) apiEconomy(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "weeks")
	weeks := q.int("weeks", 12, 1, 520)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	sc := s.scenarioOr503(w)
	if sc == nil {
		return
	}
	rep := economyReport{Available: true}
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		all, totals, err := engine.PointsByWeek(tx)
		if err != nil {
			return err
		}
		rep.Weeks, rep.Totals = all[max(len(all)-weeks, 0):], totals
		if rep.Items, err = engine.CatalogueStock(tx, sc); err != nil {
			return err
		}
		for _, status := range []string{engine.RedeemToShip, engine.RedeemAwaitingAddress} {
			reds, err := engine.Redemptions(tx, "", status, 10_000)
			if err != nil {
				return err
			}
			if status == engine.RedeemToShip {
				rep.ToShip = len(reds)
			} else {
				rep.Awaiting = len(reds)
			}
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rep.Weeks == nil {
		rep.Weeks = []engine.WeekPoints{}
	}
	if rep.Items == nil {
		rep.Items = []engine.ItemStock{}
	}
	rep.TopItems = append([]engine.ItemStock{}, rep.Items...)
	sort.SliceStable(rep.TopItems, func(i, j int) bool { return rep.TopItems[i].Redeemed > rep.TopItems[j].Redeemed })
	rep.TopItems = rep.TopItems[:min(len(rep.TopItems), 10)]
	rep.Alerts = []engine.ItemStock{}
	for _, it := range rep.Items {
		if it.Alert {
			rep.Alerts = append(rep.Alerts, it)
		}
	}
	rep.Levels = []economyLevelReport{}
	for _, l := range sc.Levels {
		rep.Levels = append(rep.Levels, economyLevelReport{Name: l.Name, MinPoints: l.MinPoints, Multiplier: l.Multiplier})
	}
	writeJSON(w, http.StatusOK, rep)
}

// apiRedemptions answers GET /api/v1/redemptions?status=&cursor=&limit=.
func (s *Server) apiRedemptions(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "status", "cursor", "limit")
	status := q.oneOf("status", engine.RedeemDone, engine.RedeemAwaitingAddress, engine.RedeemToShip, engine.RedeemShipped)
	cursor := q.str("cursor", 32)
	limit := q.int("limit", 50, 1, 500)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	var reds []engine.Redemption
	if err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { reds, err = engine.Redemptions(tx, cursor, status, limit+1); return err }); err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]any{}
	if len(reds) > limit {
		reds = reds[:limit]
		out["next_cursor"] = reds[len(reds)-1].ID
	}
	if reds == nil {
		reds = []engine.Redemption{}
	}
	out["redemptions"] = reds
	writeJSON(w, http.StatusOK, out)
}

// shippedRequest is the body of POST /api/v1/redemptions/{id}/shipped.
type shippedRequest struct {
	Carrier  string `json:"carrier"`
	Tracking string `json:"tracking"`
	Operator string `json:"operator,omitempty"`
	// RequestID makes a retried request mark (and tell the member) once.
	RequestID string `json:"request_id,omitempty"`
}

// shippedWait is how long mark-shipped waits for the engine.
var shippedWait = 10 * time.Second

// apiRedemptionShipped marks a gift shipped: an operator event the engine
// applies (and tells the member); 409 when the gift has no address yet or
// was shipped already.
func (s *Server) apiRedemptionShipped(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req shippedRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `body must be {"carrier": "顺丰", "tracking": "SF…", "operator": "…", "request_id": "…"}`)
		return
	}
	if strings.TrimSpace(req.Tracking) == "" || len(req.Tracking) > 64 || len(req.Carrier) > 64 {
		writeError(w, http.StatusBadRequest, "tracking is required (the waybill number, at most 64 bytes); carrier at most 64 bytes")
		return
	}
	red, err := s.redemptionFor(r.Context(), id)
	if err != nil {
		writeError(w, errorStatus(err), fmt.Sprintf("redemption %q: %v", id, err))
		return
	}
	if red.Kind != scenarios.RewardGift {
		writeError(w, http.StatusConflict, fmt.Sprintf("redemption %s is a %s, not a gift: nothing ships", id, red.Kind))
		return
	}
	now := s.o.Now()
	key := "shipped|" + id + "|" + newNonce()
	if req.RequestID != "" {
		key = "shipped|" + id + "|" + hashKey(req.RequestID)
	}
	ev := &bot.Event{Type: engine.EventRedeemShipped, Source: bot.SourceOperator, ExternalUserID: red.Member, At: now, ReceivedAt: now, DedupeKey: key,
		Data: map[string]string{engine.DataRedemption: id, engine.DataCarrier: strings.TrimSpace(req.Carrier), engine.DataTracking: strings.TrimSpace(req.Tracking), engine.DataOperator: req.Operator}}
	if _, err := s.appendEvent(r.Context(), ev); err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), shippedWait)
	defer cancel()
	for {
		var refused string
		var found bool
		if err := s.o.Store.View(ctx, func(tx bot.Tx) (err error) { refused, found, err = engine.ShippedOutcome(tx, key); return err }); err != nil {
			writeError(w, errorStatus(err), err.Error())
			return
		}
		switch {
		case found && refused != "":
			writeError(w, http.StatusConflict, fmt.Sprintf("redemption %s: %s", id, refused))
			return
		case found:
			red, err := s.redemptionFor(r.Context(), id)
			if err != nil {
				writeError(w, errorStatus(err), err.Error())
				return
			}
			writeJSON(w, http.StatusOK, red)
			return
		}
		select {
		case <-ctx.Done():
			writeJSON(w, http.StatusAccepted, map[string]any{"redemption": id, "status": "pending",
				"detail": "queued; the engine hasn't applied it yet (is serve's pipeline running? see /healthz)"})
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// RedemptionsSection adds the member's redemptions and expiring points to her detail.
func RedemptionsSection() MemberSection {
	return MemberSection{Name: "redemptions", Read: func(tx bot.Tx, m *bot.Member) (any, error) {
		reds, err := engine.MemberRedemptions(tx, m.ExternalUserID)
		if err != nil {
			return nil, err
		}
		if reds == nil {
			reds = []engine.Redemption{}
		}
		return reds, nil
	}}
}
