package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/scenarios"
)

// economyYAML is a scenario with points for spend, three levels with
// rights and a catalogue; extra is appended (more sections).
const economyYAML = `brand: {name: 测试, zone: Asia/Shanghai}
tags:
  会员: [普通会员, 高级会员, 尊享会员, VIP通道]
funnel:
  stages:
    aware: {tag: ""}
points:
  per_yuan: 1
  earned: "+{{.Earned}} 积分，余额 {{.Points}}{{if .Debt}}，欠 {{.Debt}}{{end}}"
  clawed_back: "退款扣回 {{.Earned}} 积分，余额 {{.Points}}{{if .Debt}}，待抵扣 {{.Debt}}{{end}}"
levels:
  - {name: 普通, min_points: 0, tag: 普通会员}
  - {name: 高级, min_points: 100, tag: 高级会员, multiplier: 2, coupon: 升级券, monthly_coupon: 月券, birthday_coupon: 生日券}
  - {name: 尊享, min_points: 1000, tag: 尊享会员, multiplier: 3, gift: 保温杯, announce: "尊享啦 {{.Name}}"}
coupons:
  - {name: 升级券, value_yuan: 10, generate: {prefix: UP-, length: 6}}
  - {name: 月券, value_yuan: 5, per_member: 100, generate: {prefix: MO-, length: 6}}
  - {name: 生日券, value_yuan: 20, per_member: 100, generate: {prefix: BD-, length: 6}}
  - {name: 兑换券, value_yuan: 10, per_member: 1000, generate: {prefix: RD-, length: 8}}
redeem:
  items:
    - {name: 十元券, cost: 80, stock: 100, coupon: 兑换券}
    - {name: 八十券, cost: 80, coupon: 兑换券}
    - {name: 保温杯, cost: 500, stock: 5, per_member: 1, gift: 山茶保温杯}
    - {name: VIP, cost: 50, tag: VIP通道, audience: {levels: [高级, 尊享]}}
    - {name: 春季券, cost: 10, coupon: 兑换券, valid_until: 2025-03-01}
    - {name: 老客专享, cost: 5, coupon: 兑换券, segment: 老客}
segments:
  - {name: 老客, min_orders: 2}
`

func economyScenario(t testing.TB, extra string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadBytes("economy.yaml", []byte(economyYAML+extra))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// inRun runs fn on an engine run of its own transaction (for moves no
// event makes in a test, such as spending points directly).
func (h *harness) inRun(fn func(r *run) error) {
	h.t.Helper()
	err := h.store.Update(context.Background(), func(tx bot.Tx) error {
		r := &run{e: h.eng, sc: h.sc, tx: tx, ev: &bot.Event{Seq: 1}, now: h.clock, at: h.clock, ref: "test-run",
			log: zerolog.Nop(), members: map[string]*memberState{}}
		if err := fn(r); err != nil {
			return err
		}
		return r.finish()
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) ledger(id string) []checkin.Entry {
	h.t.Helper()
	var out []checkin.Entry
	err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { out, err = checkin.PointsHistory(tx, id, 0, 1000); return err })
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// checkLedger proves the ledger adds up to the member's balance and debt.
func checkLedger(t *testing.T, h *harness, id string) {
	t.Helper()
	m := h.member(id)
	entries := h.ledger(id)
	if len(entries) == 0 && m.PointsDebt == 0 {
		return // a seeded member whose points never moved
	}
	var balance int64
	if len(entries) > 0 {
		balance = entries[0].Balance - entries[0].Delta // what a seeded member held before
	}
	var last checkin.Entry
	for _, e := range entries {
		balance += e.Delta
		if e.Balance != balance || e.Balance < 0 {
			t.Fatalf("ledger of %s: entry %+v after a running balance of %d", id, e, balance-e.Delta)
		}
		last = e
	}
	if m.Points != balance || m.PointsDebt != last.Debt {
		t.Fatalf("member %s holds %d points and owes %d; the ledger says %d and %d", id, m.Points, m.PointsDebt, balance, last.Debt)
	}
}

func TestPointsForSpendByLevel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, economyScenario(t, ""))
	h.send(add("wm1", "s1", "", ""))
	h.send(kf("wm1", "你好"))
	for _, step := range []struct {
		order      string
		fen        int64
		wantPoints int64
		wantLevel  string
	}{
		{"O1", 8850, 88, "普通"},  // 88.50 yuan at ×1
		{"O2", 2000, 108, "高级"}, // +20 → 108: 高级 from now on
		{"O3", 1000, 128, "高级"}, // 10 yuan at ×2
	} {
		h.send(paid("wm1", step.order, step.fen))
		m := h.member("wm1")
		if m.Points != step.wantPoints || m.Level != step.wantLevel {
			t.Fatalf("after %s: %d points at %q, want %d at %q", step.order, m.Points, m.Level, step.wantPoints, step.wantLevel)
		}
	}
	// A duplicate webhook earns nothing more.
	h.send(paid("wm1", "O3", 1000))
	if m := h.member("wm1"); m.Points != 128 || m.PointsEarned != 128 {
		t.Fatalf("duplicate order: %d points, %d earned", m.Points, m.PointsEarned)
	}
	var reasons []string
	for _, e := range h.ledger("wm1") {
		reasons = append(reasons, e.Reason)
	}
	if want := []string{"order:O1", "order:O2", "order:O3"}; !equalStrings(reasons, want) {
		t.Fatalf("ledger reasons %v, want %v", reasons, want)
	}
	texts := kfTexts(h)
	// One message per order: its points, and with the level-up its announcement and coupon.
	if len(texts) != 3 || texts[2] != "+20 积分，余额 128" || !strings.HasPrefix(texts[1], "+20 积分，余额 108\n\n🎉 恭喜") || !strings.Contains(texts[1], "券码：UP-") {
		t.Fatalf("kf texts %q: want the points of each order and the level-up with its coupon", texts)
	}
	checkLedger(t, h, "wm1")
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRefundClawBack: a partial refund takes back its share, a full one the
// rest; points already spent become a recorded debt that the next credit
// pays first, and the balance never goes below zero.
func TestRefundClawBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, economyScenario(t, ""))
	h.send(add("wm1", "s1", "", ""))
	h.send(paid("wm1", "O1", 9000)) // 90 points
	h.send(refund("wm1", "O1", 3000))
	if m := h.member("wm1"); m.Points != 60 || m.PointsDebt != 0 {
		t.Fatalf("after a third refunded: %d points, debt %d", m.Points, m.PointsDebt)
	}
	h.inRun(func(r *run) error {
		ms, err := r.member("wm1", false)
		if err != nil {
			return err
		}
		return r.addPoints(ms, -50, ReasonRedeemPrefix+"十元券", "")
	})
	h.send(refund("wm1", "O1", -1)) // the rest: 60 points back with 10 held
	m := h.member("wm1")
	if m.Points != 0 || m.PointsDebt != 50 {
		t.Fatalf("after the full refund: %d points, debt %d; want 0 and 50", m.Points, m.PointsDebt)
	}
	if m.PointsEarned != 0 {
		t.Fatalf("earned %d after every order was refunded", m.PointsEarned)
	}
	checkLedger(t, h, "wm1")
	// The next order's 80 points pay the 50 owed first.
	h.send(paid("wm1", "O2", 8000))
	m = h.member("wm1")
	if m.Points != 30 || m.PointsDebt != 0 {
		t.Fatalf("after the next order: %d points, debt %d; want 30 and 0", m.Points, m.PointsDebt)
	}
	entries := h.ledger("wm1")
	last := entries[len(entries)-1]
	if last.Reason != ReasonDebt || last.Delta != -50 || last.Debt != 0 {
		t.Fatalf("last entry %+v, want the debt paid", last)
	}
	checkLedger(t, h, "wm1")
	var weeks []WeekPoints
	var totals PointsTotals
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { weeks, totals, err = PointsByWeek(tx); return err }); err != nil {
		t.Fatal(err)
	}
	if len(weeks) != 1 || weeks[0].Issued != 170 || weeks[0].Redeemed != 50 || weeks[0].Clawed != 90 {
		t.Fatalf("weeks %+v", weeks)
	}
	if totals.Outstanding != 30 || totals.Debt != 0 {
		t.Fatalf("totals %+v", totals)
	}
}

// TestRefundBeforeCreditAndPending: a refund that arrived before its order
// lowers the points the order earns; an order of a member not known yet
// earns when she appears.
func TestRefundBeforeCreditAndPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t, economyScenario(t, ""))
	h.send(refund("wm1", "O1", 2000))
	h.send(paid("wm1", "O1", 5000))
	h.send(add("wm1", "s1", "", ""))
	if m := h.member("wm1"); m.Points != 30 {
		t.Fatalf("pending order with an early refund: %d points, want 30", m.Points)
	}
	h.send(refund("wm1", "O1", -1))
	if m := h.member("wm1"); m.Points != 0 || m.PointsDebt != 0 {
		t.Fatalf("after the rest was refunded: %d points, debt %d", m.Points, m.PointsDebt)
	}
	checkLedger(t, h, "wm1")
}

// TestPointsExpire: with expire: end_of_next_year, points earned in 2025
// expire after 2026-12-31; spending took the oldest lot first.
func TestPointsExpire(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("economy.yaml", []byte(
		`brand: {name: 测试, zone: Asia/Shanghai}
points: {per_yuan: 1, expire: end_of_next_year}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sc)
	h.send(add("wm1", "s1", "", ""))
	h.send(paid("wm1", "O1", 10000)) // 2025: 100 points, last day 2026-12-31
	h.clock = time.Date(2026, 2, 1, 10, 0, 0, 0, sc.Brand.Zone)
	h.send(paid("wm1", "O2", 4000)) // 2026: 40 points, last day 2027-12-31
	h.inRun(func(r *run) error {
		ms, err := r.member("wm1", false)
		if err != nil {
			return err
		}
		return r.addPoints(ms, -30, "makeup", "")
	})
	var lots map[string]int64
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { lots, _, err = MemberLots(tx, "wm1"); return err }); err != nil {
		t.Fatal(err)
	}
	if lots["2026-12-31"] != 70 || lots["2027-12-31"] != 40 {
		t.Fatalf("lots %v", lots)
	}
	for _, day := range []time.Time{time.Date(2026, 12, 31, 23, 0, 0, 0, sc.Brand.Zone), time.Date(2027, 1, 1, 9, 0, 0, 0, sc.Brand.Zone)} {
		h.clock = day
		h.inRun(func(r *run) error {
			_, err := r.expirePoints(day, 100)
			return err
		})
	}
	m := h.member("wm1")
	if m.Points != 40 {
		t.Fatalf("after 2026 ended: %d points, want 40", m.Points)
	}
	entries := h.ledger("wm1")
	if last := entries[len(entries)-1]; last.Reason != ReasonExpire || last.Delta != -70 {
		t.Fatalf("last entry %+v", last)
	}
	checkLedger(t, h, "wm1")
}

// TestPointsNoticeNeedsKf: a points notice goes to 微信客服 only (a
// mass-send task would spend her small monthly quota); a level reached is
// worth one: one task carries the notice, the announcement and the coupon.
func TestPointsNoticeNeedsKf(t *testing.T) {
	t.Parallel()
	h := newHarness(t, economyScenario(t, ""))
	h.send(add("wm1", "s1", "", ""))
	h.send(paid("wm1", "O1", 5000))
	if n := len(h.actions(bot.ActionMassSend)) + len(h.actions(bot.ActionKfMessage)); n != 0 {
		t.Fatalf("%d messages for a points notice without a 微信客服 window", n)
	}
	h.send(paid("wm1", "O2", 6000)) // 110: 高级
	mass := h.actions(bot.ActionMassSend)
	if len(mass) != 1 {
		t.Fatalf("%d mass-send tasks for one level-up", len(mass))
	}
	var p bot.MassSend
	if err := mass[0].Decode(&p); err != nil || !strings.Contains(p.Text, "+60 积分") || !strings.Contains(p.Text, "恭喜") || !strings.Contains(p.Text, "券码：UP-") {
		t.Fatalf("level-up task %q %v", p.Text, err)
	}
}
