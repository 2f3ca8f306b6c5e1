package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

const shopSecret = "shop-secret-for-tests"

var shopNow = time.Date(2025, 3, 4, 12, 20, 0, 0, time.UTC)

func newShopServer(t *testing.T, secret string) (*Server, *bolt.Store) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	links, _ := signlink.New([]byte("link-secret-0123456789"), func() time.Time { return shopNow })
	sc := scenarios.LoadDefault()
	return New(Options{Store: st, Log: zerolog.Nop(), Metrics: metrics.New(), ShopSecret: secret, Links: links,
		Now: func() time.Time { return shopNow }, Scenario: func() *scenarios.Scenario { return sc }}), st
}

func shopRequest(secret string, ts int64, body string) *http.Request {
	req := httptest.NewRequest("POST", "/hooks/orders", strings.NewReader(body))
	tss := strconv.FormatInt(ts, 10)
	req.Header.Set(HeaderShopTimestamp, tss)
	req.Header.Set(HeaderShopSignature, SignShopRequest([]byte(secret), tss, []byte(body)))
	return req
}

func events(t *testing.T, st *bolt.Store) []bot.Event {
	t.Helper()
	evs, err := st.Events(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestShopWebhookSignatureAndReplayWindow(t *testing.T) {
	t.Parallel()
	const paid = `{"event":"order.paid","order_id":"SC1","external_userid":"wm1","amount_fen":2990,"coupon_code":"NEW-AAAA"}`
	now := shopNow.Unix()
	cases := []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"wrong secret", func() *http.Request { return shopRequest("other-secret", now, paid) }, 401},
		{"body changed after signing", func() *http.Request {
			r := shopRequest(shopSecret, now, paid)
			r.Body = http.NoBody
			return r
		}, 401},
		{"timestamp changed after signing", func() *http.Request {
			r := shopRequest(shopSecret, now, paid)
			r.Header.Set(HeaderShopTimestamp, strconv.FormatInt(now+1, 10))
			return r
		}, 401},
		{"no signature", func() *http.Request {
			r := shopRequest(shopSecret, now, paid)
			r.Header.Del(HeaderShopSignature)
			return r
		}, 401},
		{"no timestamp", func() *http.Request {
			r := shopRequest(shopSecret, now, paid)
			r.Header.Del(HeaderShopTimestamp)
			return r
		}, 401},
		{"signature not hex", func() *http.Request {
			r := shopRequest(shopSecret, now, paid)
			r.Header.Set(HeaderShopSignature, "sha256=zz")
			return r
		}, 401},
		{"stale (6 min old)", func() *http.Request { return shopRequest(shopSecret, now-360, paid) }, 401},
		{"from the future (6 min)", func() *http.Request { return shopRequest(shopSecret, now+360, paid) }, 401},
		{"timestamp not a number (signed)", func() *http.Request {
			req := httptest.NewRequest("POST", "/hooks/orders", strings.NewReader(paid))
			req.Header.Set(HeaderShopTimestamp, "yesterday")
			req.Header.Set(HeaderShopSignature, SignShopRequest([]byte(shopSecret), "yesterday", []byte(paid)))
			return req
		}, 401},
		{"too large", func() *http.Request {
			return shopRequest(shopSecret, now, `{"event":"order.paid","order_id":"`+strings.Repeat("x", MaxShopBodyBytes)+`"}`)
		}, 413},
		{"not json", func() *http.Request { return shopRequest(shopSecret, now, `order=1`) }, 400},
		{"unknown field", func() *http.Request {
			return shopRequest(shopSecret, now, `{"event":"order.paid","order_id":"A","external_userid":"wm1","amount_fen":1,"price":1}`)
		}, 400},
		{"no order id", func() *http.Request {
			return shopRequest(shopSecret, now, `{"event":"order.paid","external_userid":"wm1","amount_fen":1}`)
		}, 400},
		{"no member", func() *http.Request {
			return shopRequest(shopSecret, now, `{"event":"order.paid","order_id":"A","amount_fen":1}`)
		}, 400},
		{"unionid never seen", func() *http.Request {
			return shopRequest(shopSecret, now, `{"event":"order.paid","order_id":"A","unionid":"u1","amount_fen":1}`)
		}, 422},
		{"paid without amount", func() *http.Request {
			return shopRequest(shopSecret, now, `{"event":"order.paid","order_id":"A","external_userid":"wm1"}`)
		}, 400},
		{"negative amount", func() *http.Request {
			return shopRequest(shopSecret, now, `{"event":"order.paid","order_id":"A","external_userid":"wm1","amount_fen":-5}`)
		}, 400},
		{"unknown event", func() *http.Request {
			return shopRequest(shopSecret, now, `{"event":"order.shipped","order_id":"A","external_userid":"wm1"}`)
		}, 400},
		{"bad at", func() *http.Request {
			return shopRequest(shopSecret, now, `{"event":"order.paid","order_id":"A","external_userid":"wm1","amount_fen":1,"at":"noon"}`)
		}, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, st := newShopServer(t, shopSecret)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, c.req())
			if rec.Code != c.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.want, rec.Body)
			}
			if evs := events(t, st); len(evs) != 0 {
				t.Errorf("a rejected request stored %d events", len(evs))
			}
		})
	}
}

func TestShopWebhookIdempotentByOrderID(t *testing.T) {
	t.Parallel()
	s, st := newShopServer(t, shopSecret)
	now := shopNow.Unix()
	send := func(body string, ts int64) map[string]any {
		t.Helper()
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, shopRequest(shopSecret, ts, body))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return out
	}
	paid := `{"event":"order.paid","order_id":"SC1","external_userid":"wm1","unionid":"u1","amount_fen":2990,"coupon_code":" NEW-AAAA ","at":"2025-03-04T20:19:00+08:00"}`
	if out := send(paid, now); out["duplicate"] != false {
		t.Fatalf("first delivery: %v", out)
	}
	// The shop retries with a fresh timestamp (and signature): same order id, stored once.
	if out := send(paid, now+30); out["duplicate"] != true {
		t.Fatalf("retry: %v", out)
	}
	send(`{"event":"order.refunded","order_id":"SC1","external_userid":"wm1","amount_fen":1000,"refund_id":"R1"}`, now)
	send(`{"event":"order.refunded","order_id":"SC1","external_userid":"wm1","amount_fen":1000,"refund_id":"R1"}`, now)
	send(`{"event":"order.refunded","order_id":"SC1","external_userid":"wm1","amount_fen":990,"refund_id":"R2"}`, now)
	evs := events(t, st)
	if len(evs) != 3 {
		t.Fatalf("stored %d events, want 3 (paid, refund R1, refund R2)", len(evs))
	}
	p := evs[0]
	if p.Type != bot.EventOrderPaid || p.Source != bot.SourceShop || p.ExternalUserID != "wm1" ||
		p.Data[bot.DataOrderID] != "SC1" || p.Data[bot.DataAmountFen] != "2990" || p.Data[bot.DataCouponCode] != "NEW-AAAA" ||
		p.Data[bot.DataUnionID] != "u1" || !p.At.Equal(time.Date(2025, 3, 4, 12, 19, 0, 0, time.UTC)) {
		t.Errorf("paid event = %+v", p)
	}
	if evs[1].Type != bot.EventOrderRefunded || evs[1].Data[bot.DataRefundID] != "R1" || evs[2].Data[bot.DataAmountFen] != "990" {
		t.Errorf("refund events = %+v", evs[1:])
	}
}

func TestShopWebhookOffWithoutSecret(t *testing.T) {
	t.Parallel()
	s, st := newShopServer(t, "")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, shopRequest("", shopNow.Unix(), `{}`))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "WECOMBOT_SHOP_SECRET") {
		t.Fatalf("status %d %s, want 503 naming WECOMBOT_SHOP_SECRET", rec.Code, rec.Body)
	}
	if len(events(t, st)) != 0 {
		t.Error("stored an event")
	}
}

// TestCouponAPIAndPage: import a CSV (a bad line imports nothing), grant a
// code through the engine, and see it on the member's signed page.
func TestCouponAPIAndPage(t *testing.T) {
	t.Parallel()
	s, st := newShopServer(t, shopSecret)
	// The production pipeline applies what the API appends (imports, grants).
	eng := engine.New(scenarios.LoadDefault, zerolog.Nop(), func() time.Time { return shopNow })
	pl := pipeline.New(pipeline.Options{Store: st, Handle: eng.Handle, Sender: discardSender{}, Guard: engine.Guard,
		Now: func() time.Time { return shopNow }, Log: zerolog.Nop()})
	s.o.Pipeline = pl
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-pl.Ready()
	do := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	pool := "/api/v1/coupons/%E7%AC%AC%E4%BA%8C%E6%9D%AF%E5%8D%8A%E4%BB%B7%E5%88%B8" // 第二杯半价券
	if rec := do("POST", pool+"/import", "code\nA-1\nA 2\n"); rec.Code != 400 || !strings.Contains(rec.Body.String(), "line 3") {
		t.Fatalf("bad CSV: %d %s", rec.Code, rec.Body)
	}
	if rec := do("POST", pool+"/import", "A-1\nA-2\n"); rec.Code != 200 {
		t.Fatalf("import: %d %s", rec.Code, rec.Body)
	}
	if rec := do("POST", pool+"/import", "A-3\nA-2\n"); rec.Code != 409 {
		t.Fatalf("re-import of a known code: %d %s", rec.Code, rec.Body)
	}
	if rec := do("POST", "/api/v1/coupons/nope/import", "A-9\n"); rec.Code != 404 {
		t.Fatalf("unknown pool: %d", rec.Code)
	}
	// Generating goes through the engine too: codes come back; an unknown
	// pool is refused (nothing changes).
	newcomer := "/api/v1/coupons/%E6%96%B0%E4%BA%BA%E5%88%B8" // 新人券
	if rec := do("POST", newcomer+"/generate?n=3", ""); rec.Code != 200 || strings.Count(rec.Body.String(), `"NEW-`) != 3 {
		t.Fatalf("generate: %d %s", rec.Code, rec.Body)
	}
	if rec := do("POST", "/api/v1/coupons/nope/generate?n=3", ""); rec.Code != 400 || !strings.Contains(rec.Body.String(), "unknown coupon pool") {
		t.Fatalf("generate for an unknown pool: %d %s", rec.Code, rec.Body)
	}
	for _, ev := range events(t, st) {
		if ev.Type != engine.EventCouponImport && ev.Type != engine.EventCouponGenerate {
			t.Fatalf("the coupon API appended %s", ev.Type)
		}
	}
	if rec := do("POST", pool+"/grant", `{"external_userid":"wm1"}`); rec.Code != 404 {
		t.Fatalf("grant to an unknown member: %d %s", rec.Code, rec.Body)
	}
	// Make the member and grant through the pipeline.
	handle := func(ev *bot.Event) {
		if ev.Seq == 0 {
			if _, err := st.AppendEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		pl.NotifyEvent()
		deadline := time.Now().Add(10 * time.Second)
		for {
			stats, err := st.EventStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if stats.Pending == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %d not processed within 10 s: %+v", ev.Seq, stats)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	handle(&bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm1", StaffID: "chayi01", DedupeKey: "add1", At: shopNow})
	if rec := do("POST", pool+"/grant", `{"external_userid":"wm1","operator":"ops","request_id":"r1"}`); rec.Code != 202 {
		t.Fatalf("grant: %d %s", rec.Code, rec.Body)
	}
	evs := events(t, st)
	grant := evs[len(evs)-1]
	if grant.Type != engine.EventCouponGrant || grant.Data[engine.DataPool] != "第二杯半价券" {
		t.Fatalf("grant event = %+v", grant)
	}
	handle(&grant)
	var codes []engine.CouponCode
	_ = st.View(ctx, func(tx bot.Tx) (err error) { codes, err = engine.MemberCoupons(tx, "wm1"); return err })
	var half *engine.CouponCode
	for i := range codes {
		if codes[i].Pool == "第二杯半价券" {
			half = &codes[i]
		}
	}
	if half == nil || half.Code != "A-1" || half.Hook != engine.HookOperator {
		t.Fatalf("granted codes = %+v", codes)
	}
	rows, err := EngineCoupons(st, scenarios.LoadDefault, func() time.Time { return shopNow }).CouponPools(ctx)
	issued := map[string]int{}
	for _, row := range rows {
		issued[row.Pool+"|"+row.Hook] = row.Issued
	}
	if err != nil || issued["第二杯半价券|"] != 1 || issued["第二杯半价券|operator"] != 1 || issued["新人券|welcome"] != 1 {
		t.Fatalf("dashboard rows = %+v %v", rows, err)
	}
	var section any
	_ = st.View(ctx, func(tx bot.Tx) (err error) {
		m, _ := tx.Member("wm1")
		section, err = CouponsSection().Read(tx, m)
		return err
	})
	if cs, _ := section.([]engine.CouponCode); len(cs) != 2 {
		t.Fatalf("member section = %+v", section)
	}
	// The member's page: a signed link works, a forged or expired one doesn't.
	token := s.o.Links.Sign(engine.LinkPurposeCoupons, "wm1", time.Hour)
	if rec := do("GET", "/coupons?t="+token, ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), "A-1") || !strings.Contains(rec.Body.String(), "可使用") {
		t.Fatalf("coupon page: %d %s", rec.Code, rec.Body)
	}
	if rec := do("GET", "/coupons?t="+token[:len(token)-2]+"xx", ""); rec.Code != 403 || strings.Contains(rec.Body.String(), "A-1") {
		t.Fatalf("forged link: %d", rec.Code)
	}
	other := s.o.Links.Sign("checkin", "wm1", time.Hour)
	if rec := do("GET", "/coupons?t="+other, ""); rec.Code != 403 {
		t.Fatalf("a link for another purpose: %d", rec.Code)
	}
	expired := s.o.Links.Sign(engine.LinkPurposeCoupons, "wm1", -time.Minute)
	if rec := do("GET", "/coupons?t="+expired, ""); rec.Code != 403 || !strings.Contains(rec.Body.String(), "过期") {
		t.Fatalf("expired link: %d %s", rec.Code, rec.Body)
	}
}

// discardSender accepts every action (the test looks at state, not sends).
type discardSender struct{}

func (discardSender) Send(context.Context, *bot.Action) (bot.SendResult, bool, error) {
	return bot.SendResult{Detail: "discarded"}, false, nil
}
