package engine

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/couponcode"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/scenarios"
)

// couponScenario has a keyword rule 领券 issuing pool 券 (declared by the
// caller) and a stage coupon on purchase.
func couponScenario(t testing.TB, pools string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadBytes("coupons.yaml", []byte(`brand: {name: 测试, zone: Asia/Shanghai}
tags:
  阶段: [A, I, P, L]
funnel:
  stages:
    aware: {tag: A}
    interest: {tag: I}
    purchase: {tag: P, coupon: 复购券}
    loyal: {tag: L}
  loyal_orders: 2
keywords:
  rate_limit: {max: 100, per: 1m}
  rules:
    - {name: 领券, keywords: [领券], on: [kf], coupon: 券, reply: "给你～"}
coupons:
`+pools+`
  - name: 复购券
    value_yuan: 5
    valid_days: 3
    generate: {prefix: BUY-, length: 8}
`))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func importCodes(t testing.TB, h *harness, pool string, codes ...string) {
	t.Helper()
	err := h.store.Update(context.Background(), func(tx bot.Tx) error {
		_, err := ImportCoupons(tx, h.sc, pool, codes, h.clock)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func kfTexts(h *harness) []string {
	var out []string
	for _, a := range h.actions(bot.ActionKfMessage) {
		var p bot.KfMessage
		if err := a.Decode(&p); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, p.Text)
	}
	return out
}

func memberCoupons(t testing.TB, h *harness, member string) []CouponCode {
	t.Helper()
	var out []CouponCode
	err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { out, err = MemberCoupons(tx, member); return err })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func report(t testing.TB, h *harness) *CouponReport {
	t.Helper()
	var rep *CouponReport
	err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { rep, err = BuildCouponReport(tx, h.sc, h.clock); return err })
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func poolReport(rep *CouponReport, name string) *PoolReport {
	for _, p := range rep.Pools {
		if p.Pool == name {
			return p
		}
	}
	return nil
}

// TestCouponPoolExhaustion: two codes, three members asking: two codes go
// out, the third member gets the fallback, staff are alerted once when the
// stock reaches stock_alert, and the metrics count it.
func TestCouponPoolExhaustion(t *testing.T) {
	t.Parallel()
	sc := couponScenario(t, `
  - name: 券
    description: 满 30 减 10
    per_member: 1
    stock_alert: 1
    alert_staff: [boss]
    fallback: 券抢光啦
`)
	h := newHarness(t, sc)
	m := metrics.New()
	h.eng.WithMetrics(m)
	importCodes(t, h, "券", "C1", "C2")
	for _, id := range []string{"wmA", "wmB", "wmC", "wmD"} {
		h.send(add(id, "s1", "", ""))
		h.send(kf(id, "领券"))
	}
	texts := kfTexts(h)
	if len(texts) != 4 {
		t.Fatalf("kf replies = %d, want 4: %q", len(texts), texts)
	}
	if !strings.Contains(texts[0], "券码：C1") || !strings.Contains(texts[1], "券码：C2") {
		t.Errorf("first two members should get C1 and C2: %q", texts[:2])
	}
	for _, txt := range texts[2:] {
		if !strings.Contains(txt, "券抢光啦") || strings.Contains(txt, "券码") {
			t.Errorf("after exhaustion the member gets the fallback only, got %q", txt)
		}
	}
	alerts := h.actions(bot.ActionStaffMessage)
	if len(alerts) != 1 {
		t.Fatalf("stock alerts to staff = %d, want exactly 1 (once per crossing)", len(alerts))
	}
	if got := metricSum(t, m, "wecombot_coupon_stock_alerts_total"); got != 1 {
		t.Errorf("stock alert metric = %v, want 1", got)
	}
	if got := metricSum(t, m, "wecombot_coupon_pool_empty_total"); got != 2 {
		t.Errorf("empty metric = %v, want 2", got)
	}
	// Restocking above the alert re-arms it.
	importCodes(t, h, "券", "C3", "C4", "C5")
	h.send(add("wmE", "s1", "", ""))
	h.send(kf("wmE", "领券"))
	if p := poolReport(report(t, h), "券"); p.Issued != 3 || p.Free != 2 || p.Low {
		t.Errorf("report after restock = %+v", p)
	}
	h.send(add("wmF", "s1", "", ""))
	h.send(kf("wmF", "领券"))
	if n := len(h.actions(bot.ActionStaffMessage)); n != 2 {
		t.Errorf("stock alerts after the second crossing = %d, want 2", n)
	}
}

// TestEmptyPoolWarnsOncePerHour: members meeting an empty pool all get the
// fallback (and the metric counts each), but the warning is logged once an
// hour while the pool stays empty, with the count since the last one; a
// restocked pool that empties again warns at once.
func TestEmptyPoolWarnsOncePerHour(t *testing.T) {
	t.Parallel()
	sc := couponScenario(t, `
  - name: 券
    per_member: 1
    fallback: 券抢光啦
`)
	h := newHarness(t, sc)
	var logs bytes.Buffer
	h.eng = New(func() *scenarios.Scenario { return sc }, zerolog.New(&logs), func() time.Time { return h.clock })
	m := metrics.New()
	h.eng.WithMetrics(m)
	warnings := func() []string {
		var out []string
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, "coupon pool is empty") {
				out = append(out, line)
			}
		}
		return out
	}
	ask := func(id string) {
		h.send(add(id, "s1", "", ""))
		h.send(kf(id, "领券"))
	}
	for i := range 5 {
		ask(fmt.Sprint("wmE", i))
		h.clock = h.clock.Add(time.Minute)
	}
	if w := warnings(); len(w) != 1 || !strings.Contains(w[0], `"fallbacks":1`) {
		t.Fatalf("5 members in 5 minutes: warnings %q, want one naming 1 fallback", w)
	}
	if got := metricSum(t, m, "wecombot_coupon_pool_empty_total"); got != 5 {
		t.Errorf("empty metric = %v, want 5 (every member counted)", got)
	}
	h.clock = h.clock.Add(time.Hour)
	ask("wmLater")
	if w := warnings(); len(w) != 2 || !strings.Contains(w[1], `"fallbacks":5`) {
		t.Fatalf("an hour later: warnings %q, want a second naming the 5 fallbacks since the first", w)
	}
	importCodes(t, h, "券", "C1")
	ask("wmGetsC1")
	ask("wmEmptyAgain")
	if w := warnings(); len(w) != 3 || !strings.Contains(w[2], `"fallbacks":1`) {
		t.Errorf("restocked, issued, empty again: warnings %q, want a third at once", w)
	}
	for _, txt := range kfTexts(h) {
		if !strings.Contains(txt, "券抢光啦") && !strings.Contains(txt, "券码：C1") {
			t.Errorf("reply %q: want the fallback or C1", txt)
		}
	}
}

// TestCouponPerMemberLimit: per_member 2 gives two distinct codes, the third
// ask reminds the member of their code; a replayed event finds its code.
func TestCouponPerMemberLimit(t *testing.T) {
	t.Parallel()
	sc := couponScenario(t, `
  - name: 券
    per_member: 2
    fallback: 没了
`)
	h := newHarness(t, sc)
	importCodes(t, h, "券", "C1", "C2", "C3", "C4")
	h.send(add("wmA", "s1", "", ""))
	first := h.send(kf("wmA", "领券"))
	h.handle(first) // replay: same ref
	h.advance(time.Minute)
	h.send(kf("wmA", "领券"))
	h.advance(time.Minute)
	h.send(kf("wmA", "领券"))
	codes := memberCoupons(t, h, "wmA")
	if len(codes) != 2 || codes[0].Code == codes[1].Code {
		t.Fatalf("member codes = %+v, want 2 distinct", codes)
	}
	texts := kfTexts(h)
	if len(texts) != 3 {
		t.Fatalf("replies = %d, want 3 (the replay sends nothing new)", len(texts))
	}
	if !strings.Contains(texts[2], "你已经领过") || !strings.Contains(texts[2], codes[0].Code) {
		t.Errorf("over the limit the member is reminded of their latest code %s: %q", codes[0].Code, texts[2])
	}
	if p := poolReport(report(t, h), "券"); p.Issued != 2 || p.Free != 2 {
		t.Errorf("report = %+v, want 2 issued, 2 free", p)
	}
}

// TestCouponExpiry: valid_days counts the day of issue in the brand zone;
// fixed validity ends issuing; the report counts expired codes.
func TestCouponExpiry(t *testing.T) {
	t.Parallel()
	sc := couponScenario(t, `
  - name: 券
    valid_days: 7
    generate: {prefix: E-, length: 6}
    fallback: 没了
  - name: 春节券
    valid_from: 2025-01-20
    valid_until: 2025-02-28
    generate: {prefix: CNY-, length: 6}
    fallback: 春节券活动已结束
`)
	h := newHarness(t, sc)
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	// 23:30 on 3 March in Shanghai is still 3 March: day 1 of 7.
	h.clock = time.Date(2025, 3, 3, 23, 30, 0, 0, shanghai)
	h.send(add("wmA", "s1", "", ""))
	h.send(kf("wmA", "领券"))
	codes := memberCoupons(t, h, "wmA")
	if len(codes) != 1 {
		t.Fatalf("codes = %+v", codes)
	}
	if want := time.Date(2025, 3, 10, 0, 0, 0, 0, shanghai); !codes[0].ExpiresAt.Equal(want) {
		t.Errorf("expires %v, want %v", codes[0].ExpiresAt, want)
	}
	if txt := kfTexts(h)[0]; !strings.Contains(txt, "有效期至 2025-03-09") {
		t.Errorf("text should name the last valid day: %q", txt)
	}
	if p := poolReport(report(t, h), "券"); p.Unused != 1 || p.Expired != 0 {
		t.Errorf("before expiry: %+v", p)
	}
	h.clock = time.Date(2025, 3, 10, 0, 0, 0, 0, shanghai)
	if p := poolReport(report(t, h), "券"); p.Expired != 1 || p.Unused != 0 {
		t.Errorf("after expiry: %+v", p)
	}
	// A fixed-date pool past valid_until issues nothing.
	ms := &memberState{m: &bot.Member{ExternalUserID: "wmA"}}
	var res issueResult
	err := h.store.Update(context.Background(), func(tx bot.Tx) error {
		r := &run{e: h.eng, sc: sc, tx: tx, ev: &bot.Event{}, now: h.clock, at: h.clock, ref: "x", log: zerolog.Nop()}
		var err error
		res, err = r.issue(ms, sc.Coupon("春节券"), HookOperator)
		return err
	})
	if err != nil || res.outcome != issueEnded || res.text != "春节券活动已结束" {
		t.Errorf("ended pool: %+v %v", res, err)
	}
}

// TestConcurrentIssuing is the acceptance case: 1,000 hook fires at once
// against a pool of 100 codes issue exactly 100, all distinct, and the 900
// others get the fallback. Each fire is its own event handled in its own
// store transaction, as pipeline workers do.
func TestConcurrentIssuing(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"imported", "generated"} {
		t.Run(kind, func(t *testing.T) {
			pools := `
  - name: 券
    per_member: 1
    fallback: 没了
`
			if kind == "generated" {
				pools += "    generate: {prefix: G-, length: 8, count: 100}\n"
			}
			sc := couponScenario(t, pools)
			h := newHarness(t, sc)
			if kind == "imported" {
				codes := make([]string, 100)
				for i := range codes {
					codes[i] = fmt.Sprintf("CODE%03d", i)
				}
				importCodes(t, h, "券", codes...)
			}
			const fires = 1000
			err := h.store.Update(context.Background(), func(tx bot.Tx) error {
				for i := range fires {
					if err := tx.PutMember(&bot.Member{ExternalUserID: fmt.Sprintf("wm%04d", i), Stage: bot.StageAware,
						Follows: []bot.Follow{{StaffID: "s1", AddedAt: t0}}}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			evs := make([]*bot.Event, fires)
			for i := range evs {
				evs[i] = &bot.Event{Type: EventCouponGrant, Source: bot.SourceOperator, ExternalUserID: fmt.Sprintf("wm%04d", i),
					DedupeKey: fmt.Sprintf("grant|%d", i), At: t0, Data: map[string]string{DataPool: "券"}}
			}
			handleConcurrently(t, h, evs)
			seen := map[string]string{}
			holders := 0
			err = h.store.View(ctx, func(tx bot.Tx) error {
				for i := range fires {
					id := fmt.Sprintf("wm%04d", i)
					cs, err := MemberCoupons(tx, id)
					if err != nil {
						return err
					}
					if len(cs) > 1 {
						return fmt.Errorf("%s holds %d codes", id, len(cs))
					}
					for _, c := range cs {
						holders++
						if prev, dup := seen[c.Code]; dup {
							return fmt.Errorf("code %s issued to %s and %s", c.Code, prev, id)
						}
						seen[c.Code] = id
						if c.Member != id || c.Status != CouponIssued {
							return fmt.Errorf("code record %+v", c)
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if holders != 100 || len(seen) != 100 {
				t.Fatalf("issued %d codes to %d members, want exactly 100 distinct", len(seen), holders)
			}
			p := poolReport(report(t, h), "券")
			if p.Issued != 100 || p.Free != 0 || p.Stock != 0 {
				t.Errorf("report = %+v", p)
			}
			// Everyone is reachable by mass send: 100 codes, 900 nothing (an
			// operator grant with an empty pool sends no fallback).
			if n := len(h.actions(bot.ActionMassSend)); n != 100 {
				t.Errorf("deliveries = %d, want 100", n)
			}
		})
	}
}

// TestCouponRetriesIssueOnce: the same grant handled concurrently many
// times (WeCom-style retries slipping past the log) issues one code.
func TestCouponRetriesIssueOnce(t *testing.T) {
	t.Parallel()
	sc := couponScenario(t, "\n  - {name: 券, per_member: 5, generate: {prefix: R-, length: 8}}\n")
	h := newHarness(t, sc)
	h.send(add("wmA", "s1", "", ""))
	ev := &bot.Event{Type: EventCouponGrant, ExternalUserID: "wmA", DedupeKey: "grant|1", At: t0, Data: map[string]string{DataPool: "券"}}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); h.handle(ev) }()
	}
	wg.Wait()
	if cs := memberCoupons(t, h, "wmA"); len(cs) != 1 {
		t.Fatalf("codes = %d, want 1", len(cs))
	}
	if n := len(h.actions(bot.ActionMassSend)); n != 1 {
		t.Errorf("deliveries = %d, want 1", n)
	}
}

// TestCouponRedemptionAndStageCoupon: the first order moves the member to
// Purchase, which issues 复购券 through 微信客服 (the member wrote there
// recently); the next order redeems it and makes the member Loyal; the
// report shows the conversion per hook.
func TestCouponRedemptionAndStageCoupon(t *testing.T) {
	t.Parallel()
	sc := couponScenario(t, "\n  - {name: 券, fallback: 没了}\n")
	h := newHarness(t, sc)
	h.eng.WithMetrics(metrics.New())
	h.send(add("wmA", "s1", "", ""))
	h.send(kf("wmA", "你好"))
	h.advance(time.Hour)
	h.send(paid("wmA", "O1", 3000))
	codes := memberCoupons(t, h, "wmA")
	if len(codes) != 1 || codes[0].Pool != "复购券" || codes[0].Hook != "stage:purchase" || !strings.HasPrefix(codes[0].Code, "BUY-") {
		t.Fatalf("stage coupon = %+v", codes)
	}
	texts := kfTexts(h)
	if len(texts) != 1 || !strings.Contains(texts[0], codes[0].Code) {
		t.Fatalf("the stage coupon goes out in kf: %q", texts)
	}
	ev := paid("wmA", "O2", 2500)
	ev.Data[bot.DataCouponCode] = codes[0].Code
	h.advance(time.Hour)
	h.send(ev)
	h.handle(ev) // replay
	m := h.member("wmA")
	if m.Stage != bot.StageLoyal {
		t.Errorf("stage = %s, want loyal", m.Stage)
	}
	c := memberCoupons(t, h, "wmA")[0]
	if c.Status != CouponUsed || c.OrderID != "O2" || c.OrderFen != 2500 {
		t.Errorf("redeemed code = %+v", c)
	}
	// Reaching Loyal issues nothing (no coupon on loyal); a second use of
	// the code in another order doesn't move it.
	ev3 := paid("wmA", "O3", 100)
	ev3.Data[bot.DataCouponCode] = codes[0].Code
	h.send(ev3)
	if c := memberCoupons(t, h, "wmA")[0]; c.OrderID != "O2" {
		t.Errorf("second use rewrote the redemption: %+v", c)
	}
	p := poolReport(report(t, h), "复购券")
	if p.Issued != 1 || p.Redeemed != 1 || p.Conversion != 1 || p.OrderFen != 2500 || p.ByHook["stage:purchase"].Redeemed != 1 {
		t.Errorf("report = %+v", p)
	}
}

// TestWelcomeCarriesCoupon: the welcome script's coupon is issued on add and
// its code rides in the welcome text; a second add (another staff member)
// neither issues a second one nor repeats the first.
func TestWelcomeCarriesCoupon(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("w.yaml", []byte(`brand: {name: 测试}
welcome:
  default: {text: 欢迎, coupon: 新人券}
coupons:
  - {name: 新人券, description: 满30减10, generate: {prefix: NEW-, length: 8}}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	h.send(add("wmA", "s1", "", "WC1"))
	h.send(add("wmA", "s2", "", "WC2"))
	ws := h.actions(bot.ActionWelcome)
	if len(ws) != 2 {
		t.Fatalf("welcomes = %d", len(ws))
	}
	var w1, w2 bot.WelcomeMessage
	_ = ws[0].Decode(&w1)
	_ = ws[1].Decode(&w2)
	codes := memberCoupons(t, h, "wmA")
	if len(codes) != 1 || !strings.Contains(w1.Text, "券码："+codes[0].Code) || !strings.HasPrefix(w1.Text, "欢迎\n\n") {
		t.Fatalf("welcome text %q, codes %+v", w1.Text, codes)
	}
	if w2.Text != "欢迎" {
		t.Errorf("a second staff member's welcome doesn't repeat the code: %q", w2.Text)
	}
}

// TestImportAllOrNothing: a code already known anywhere aborts the whole
// import; an unknown pool is an error.
func TestImportAllOrNothing(t *testing.T) {
	t.Parallel()
	sc := couponScenario(t, "\n  - {name: 券, fallback: 没了}\n")
	h := newHarness(t, sc)
	importCodes(t, h, "券", "A1", "A2")
	err := h.store.Update(context.Background(), func(tx bot.Tx) error {
		_, err := ImportCoupons(tx, sc, "券", []string{"B1", "A2", "B2"}, h.clock)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "A2") {
		t.Fatalf("err = %v, want one naming A2", err)
	}
	if p := poolReport(report(t, h), "券"); p.Free != 2 {
		t.Errorf("free = %d, want 2 (nothing imported)", p.Free)
	}
	err = h.store.Update(context.Background(), func(tx bot.Tx) error {
		_, err := ImportCoupons(tx, sc, "没有这个池", []string{"Z1"}, h.clock)
		return err
	})
	if err == nil {
		t.Error("unknown pool must fail")
	}
}

func TestGenerateCouponsDistinct(t *testing.T) {
	t.Parallel()
	sc := couponScenario(t, "\n  - {name: 券, generate: {prefix: X-, length: 6, count: 50}}\n")
	h := newHarness(t, sc)
	var codes []string
	err := h.store.Update(context.Background(), func(tx bot.Tx) (err error) {
		// The same seed twice repeats the first codes: collisions the generator must skip.
		codes, err = GenerateCoupons(tx, sc, "券", 5, couponcode.NewSeededReader("x"), h.clock)
		return err
	})
	if err != nil || len(codes) != 5 {
		t.Fatal(codes, err)
	}
	err = h.store.Update(context.Background(), func(tx bot.Tx) error {
		more, err := GenerateCoupons(tx, sc, "券", 20, couponcode.NewSeededReader("x"), h.clock)
		codes = append(codes, more...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if seen[c] || !strings.HasPrefix(c, "X-") || len(c) != 8 {
			t.Fatalf("bad or repeated code %q", c)
		}
		seen[c] = true
	}
	if p := poolReport(report(t, h), "券"); p.Free != 25 || p.Stock != 50 {
		t.Errorf("report = %+v, want 25 free, stock 50 (25 more may be generated)", p)
	}
}

// metricSum adds up every series of a metric family.
func metricSum(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			sum += s.GetCounter().GetValue() + s.GetGauge().GetValue()
		}
	}
	return sum
}

// TestConcurrentHooksRespectPerMember: 200 different events issuing to the
// same member at once (a keyword, grants, a stage change…) never give more
// than per_member codes.
func TestConcurrentHooksRespectPerMember(t *testing.T) {
	t.Parallel()
	sc := couponScenario(t, "\n  - {name: 券, per_member: 2, generate: {prefix: P-, length: 8}, fallback: 没了}\n")
	h := newHarness(t, sc)
	h.send(add("wmA", "s1", "", ""))
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := kf("wmA", "领券")
			if i%2 == 1 {
				ev = &bot.Event{Type: EventCouponGrant, ExternalUserID: "wmA", Data: map[string]string{DataPool: "券"}}
			}
			ev.DedupeKey, ev.At = fmt.Sprintf("fire|%d", i), t0
			if _, err := h.store.AppendEvent(ctx, ev); err != nil {
				t.Error(err)
				return
			}
			if err := h.store.Update(ctx, func(tx bot.Tx) error { return h.eng.Handle(ctx, tx, ev) }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if cs := memberCoupons(t, h, "wmA"); len(cs) != 2 || cs[0].Code == cs[1].Code {
		t.Fatalf("member holds %d codes, want exactly 2 distinct: %+v", len(cs), cs)
	}
}

// TestCouponAudienceAndFutureValidity: a pool limited to Aware members
// refuses an Interest member; a fixed-date pool issued before it starts says
// from when the code works.
func TestCouponAudienceAndFutureValidity(t *testing.T) {
	t.Parallel()
	sc := couponScenario(t, `
  - name: 券
    audience: {stages: [aware]}
    valid_from: 2025-04-01
    valid_until: 2025-04-30
    generate: {prefix: A-, length: 8}
    fallback: 没了
`)
	h := newHarness(t, sc)
	h.send(add("wmA", "s1", "", ""))
	h.send(&bot.Event{Type: EventCouponGrant, ExternalUserID: "wmA", Data: map[string]string{DataPool: "券"}})
	codes := memberCoupons(t, h, "wmA")
	if len(codes) != 1 {
		t.Fatalf("aware member codes = %+v", codes)
	}
	var p bot.MassSend
	_ = h.actions(bot.ActionMassSend)[0].Decode(&p)
	if !strings.Contains(p.Text, "2025-04-01 至 2025-04-30 可用") {
		t.Errorf("text should name the validity window: %q", p.Text)
	}
	h.send(add("wmB", "s1", "", ""))
	h.send(kf("wmB", "领券")) // kf_chat moves wmB to Interest first
	if cs := memberCoupons(t, h, "wmB"); len(cs) != 0 {
		t.Fatalf("interest member got %+v", cs)
	}
	if texts := kfTexts(h); len(texts) != 1 || !strings.Contains(texts[0], "仅限") {
		t.Errorf("outside the audience the member is told so: %q", texts)
	}
}

// TestCouponRequestsAreEvents: an operator's import and generate are events
// the engine applies; the outcome is kept under the request id, a refusal
// changes nothing, and handling the same request again changes nothing.
func TestCouponRequestsAreEvents(t *testing.T) {
	sc := couponScenario(t, "\n  - {name: 券, fallback: 没了}\n  - {name: 码, generate: {prefix: G-, length: 6, count: 50}}\n")
	h := newHarness(t, sc)
	outcome := func(id string) *CouponRequest {
		t.Helper()
		var out *CouponRequest
		if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { out, err = CouponRequestOutcome(tx, id); return err }); err != nil {
			t.Fatal(err)
		}
		if out == nil {
			t.Fatalf("no outcome for %s", id)
		}
		return out
	}
	imp := &bot.Event{Type: EventCouponImport, Source: bot.SourceOperator, DedupeKey: "coupons|1",
		Data: map[string]string{DataPool: "券", DataCodes: "A1\nA2"}}
	h.send(imp)
	if o := outcome("coupons|1"); o.Imported != 2 || o.Free != 2 || o.Refused != "" {
		t.Fatalf("import outcome %+v", o)
	}
	h.handle(imp) // a replay of the same request
	if o := outcome("coupons|1"); o.Imported != 2 || o.Refused != "" || poolReport(report(t, h), "券").Free != 2 {
		t.Fatalf("a replayed import changed the outcome or the stock: %+v", o)
	}
	h.send(&bot.Event{Type: EventCouponImport, Source: bot.SourceOperator, DedupeKey: "coupons|2",
		Data: map[string]string{DataPool: "券", DataCodes: "B1\nA2"}})
	if o := outcome("coupons|2"); !strings.Contains(o.Refused, "A2") || o.Imported != 0 || poolReport(report(t, h), "券").Free != 2 {
		t.Fatalf("a known code must refuse the whole file: %+v", o)
	}
	h.send(&bot.Event{Type: EventCouponGenerate, Source: bot.SourceOperator, DedupeKey: "coupons|3",
		Data: map[string]string{DataPool: "码", DataCount: "4"}})
	if o := outcome("coupons|3"); len(o.Codes) != 4 || !strings.HasPrefix(o.Codes[0], "G-") || poolReport(report(t, h), "码").Free != 4 {
		t.Fatalf("generate outcome %+v", o)
	}
}
