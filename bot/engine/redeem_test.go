package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
)

// withPoints stores members holding points (and a staff relation).
func withPoints(t *testing.T, h *harness, points int64, ids ...string) {
	t.Helper()
	err := h.store.Update(context.Background(), func(tx bot.Tx) error {
		for _, id := range ids {
			if err := tx.PutMember(&bot.Member{ExternalUserID: id, Stage: bot.StageAware, Points: points, PointsEarned: points, Level: "普通",
				Follows: []bot.Follow{{StaffID: "s1", AddedAt: t0}}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func redeemEv(member, item, key string) *bot.Event {
	return &bot.Event{Type: EventRedeem, Source: "h5", ExternalUserID: member, DedupeKey: key, At: t0, Data: map[string]string{DataItem: item}}
}

// handleConcurrently appends and handles every event at once, each in its
// own transaction, as pipeline workers do.
func handleConcurrently(t *testing.T, h *harness, evs []*bot.Event) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, len(evs))
	for _, ev := range evs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.store.AppendEvent(ctx, ev); err != nil {
				errs <- err
				return
			}
			errs <- h.store.Update(ctx, func(tx bot.Tx) error {
				if first, err := tx.MarkProcessed(ev.Seq, ""); err != nil || !first {
					return err
				}
				return h.eng.Handle(ctx, tx, ev)
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (h *harness) redemptions(member string) []Redemption {
	h.t.Helper()
	var out []Redemption
	err := h.store.View(context.Background(), func(tx bot.Tx) (err error) {
		if member == "" {
			out, err = Redemptions(tx, "", "", 1<<20)
		} else {
			out, err = MemberRedemptions(tx, member)
		}
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// TestRedeemConcurrentStock: 1,000 members redeem an item with stock 100 at
// once: exactly 100 get it (100 distinct codes, 80 points each), 900 keep
// their points.
func TestRedeemConcurrentStock(t *testing.T) {
	t.Parallel()
	h := newHarness(t, economyScenario(t, ""))
	const n = 1000
	ids := make([]string, n)
	evs := make([]*bot.Event, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("wm%04d", i)
		evs[i] = redeemEv(ids[i], "十元券", "redeem|"+ids[i])
	}
	withPoints(t, h, 100, ids...)
	handleConcurrently(t, h, evs)
	reds := h.redemptions("")
	if len(reds) != 100 {
		t.Fatalf("%d redemptions of an item with stock 100", len(reds))
	}
	codes := map[string]bool{}
	for _, red := range reds {
		if red.Coupon == "" || codes[red.Coupon] || red.Cost != 80 || red.Status != RedeemDone {
			t.Fatalf("redemption %+v (duplicate or empty code?)", red)
		}
		codes[red.Coupon] = true
	}
	spent := 0
	for _, id := range ids {
		m := h.member(id)
		switch m.Points {
		case 20:
			spent++
		case 100:
		default:
			t.Fatalf("%s holds %d points", id, m.Points)
		}
		checkLedger(t, h, id)
	}
	if spent != 100 {
		t.Fatalf("%d members paid", spent)
	}
	var stock []ItemStock
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { stock, err = CatalogueStock(tx, h.sc); return err }); err != nil {
		t.Fatal(err)
	}
	if stock[0].Redeemed != 100 || stock[0].Left != 0 || !stock[0].Alert {
		t.Fatalf("stock %+v", stock[0])
	}
}

// TestRedeemSamePointsTwice: a member with 100 points redeems two 80-point
// items at once: one succeeds, 20 points remain.
func TestRedeemSamePointsTwice(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		h := newHarness(t, economyScenario(t, ""))
		withPoints(t, h, 100, "wm1")
		handleConcurrently(t, h, []*bot.Event{redeemEv("wm1", "十元券", "a"), redeemEv("wm1", "八十券", "b")})
		if reds := h.redemptions("wm1"); len(reds) != 1 {
			t.Fatalf("round %d: %d redemptions with points for one", round, len(reds))
		}
		if m := h.member("wm1"); m.Points != 20 {
			t.Fatalf("round %d: %d points left", round, m.Points)
		}
		checkLedger(t, h, "wm1")
	}
}

// TestRedeemKf: 兑换 lists what she can afford; 兑换 <item> (by name or
// number) redeems once per message, refusals name the reason and take
// nothing; a replayed message redeems nothing more.
func TestRedeemKf(t *testing.T) {
	t.Parallel()
	h := newHarness(t, economyScenario(t, ""))
	h.send(add("wm1", "s1", "", ""))
	h.send(paid("wm1", "O1", 9000)) // 90 points: 普通
	h.send(kf("wm1", "兑换"))
	texts := kfTexts(h)
	list := texts[len(texts)-1]
	if !strings.Contains(list, "你现在有 90 积分") || !strings.Contains(list, "1. 十元券 · 80 积分") ||
		!strings.Contains(list, "3. 保温杯 · 500 积分（仅剩 5）（还差 410）") || strings.Contains(list, "VIP") || strings.Contains(list, "春季券") || strings.Contains(list, "老客专享") {
		t.Fatalf("list %q: want the affordable items, the rest with what is missing, none outside audience or validity", list)
	}
	ev := h.send(kf("wm1", "兑换 1"))
	h.handle(ev) // a replay
	if m := h.member("wm1"); m.Points != 10 {
		t.Fatalf("after 兑换 1 (and its replay): %d points", m.Points)
	}
	texts = kfTexts(h)
	if got := texts[len(texts)-1]; !strings.HasPrefix(got, "✅ 已用 80 积分兑换「十元券」，剩余 10 积分。\n券码：RD-") {
		t.Fatalf("reply %q", got)
	}
	for _, tc := range []struct{ text, want string }{
		{"兑换 八十券", "还差 70 积分"},
		{"兑换 VIP", "仅限指定会员"},
		{"兑换 春季券", "不在兑换时间内"},
		{"兑换 火箭", "没有找到「火箭」"},
		{"兑换 老客专享", "仅限指定会员"}, // the segment wants 2 orders
	} {
		h.send(kf("wm1", tc.text))
		texts = kfTexts(h)
		if got := texts[len(texts)-1]; !strings.Contains(got, tc.want) {
			t.Errorf("%s: reply %q, want %q", tc.text, got, tc.want)
		}
	}
	if m := h.member("wm1"); m.Points != 10 || len(h.redemptions("wm1")) != 1 {
		t.Fatalf("refusals took points: %d left, %d redemptions", m.Points, len(h.redemptions("wm1")))
	}
	h.send(paid("wm1", "O2", 100)) // a second order: in the segment now
	h.send(kf("wm1", "兑换 老客专享"))
	texts = kfTexts(h)
	if got := texts[len(texts)-1]; !strings.HasPrefix(got, "✅ 已用 5 积分兑换「老客专享」") {
		t.Fatalf("segment item after the second order: %q", got)
	}
	checkLedger(t, h, "wm1")
}

// TestRefundAfterRedemption: points spent on a redemption and then refunded
// become a recorded debt, never a negative balance.
func TestRefundAfterRedemption(t *testing.T) {
	t.Parallel()
	h := newHarness(t, economyScenario(t, ""))
	h.send(add("wm1", "s1", "", ""))
	h.send(kf("wm1", "hi"))
	h.send(paid("wm1", "O1", 9000)) // 90
	h.send(redeemEv("wm1", "十元券", ""))
	h.send(refund("wm1", "O1", -1))
	m := h.member("wm1")
	if m.Points != 0 || m.PointsDebt != 80 {
		t.Fatalf("after the refund: %d points, debt %d; want 0 and 80", m.Points, m.PointsDebt)
	}
	checkLedger(t, h, "wm1")
	texts := kfTexts(h)
	if got := texts[len(texts)-1]; got != "退款扣回 90 积分，余额 0，待抵扣 80" {
		t.Fatalf("claw-back text %q", got)
	}
}

// TestGiftShipping: a gift waits for her address (signed page → event),
// the operator marks it shipped, she is told; marking it again is refused.
func TestGiftShipping(t *testing.T) {
	t.Parallel()
	h := newHarness(t, economyScenario(t, ""))
	withPoints(t, h, 600, "wm1")
	h.send(kf("wm1", "hi"))
	h.send(redeemEv("wm1", "保温杯", "r1"))
	reds := h.redemptions("wm1")
	if len(reds) != 1 || reds[0].Status != RedeemAwaitingAddress || reds[0].Gift != "山茶保温杯" {
		t.Fatalf("redemptions %+v", reds)
	}
	id := reds[0].ID
	ship := func(key string) {
		h.send(&bot.Event{Type: EventRedeemShipped, Source: bot.SourceOperator, DedupeKey: key,
			Data: map[string]string{DataRedemption: id, DataCarrier: "顺丰", DataTracking: "SF123"}})
	}
	ship("ship-early")
	var refused string
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { refused, _, err = ShippedOutcome(tx, "ship-early"); return err }); err != nil || refused != "no shipping address yet" {
		t.Fatalf("shipping before an address: %q %v", refused, err)
	}
	h.send(&bot.Event{Type: EventRedeemAddress, Source: "h5", ExternalUserID: "wm1", DedupeKey: "addr1",
		Data: map[string]string{DataRedemption: id, DataShipName: "小艾", DataShipPhone: "13800000000", DataShipAddr: "上海市徐汇区1号"}})
	var text string
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { text, _, err = checkin.LoadResult(tx, "addr1"); return err }); err != nil || !strings.Contains(text, "收货地址已保存") {
		t.Fatalf("address answer %q %v", text, err)
	}
	ship("ship-1")
	reds = h.redemptions("wm1")
	if reds[0].Status != RedeemShipped || reds[0].Tracking != "SF123" || reds[0].ShipAddr != "上海市徐汇区1号" {
		t.Fatalf("after shipping %+v", reds[0])
	}
	texts := kfTexts(h)
	if got := texts[len(texts)-1]; got != "📦 你兑换的「保温杯」已发货，运单号 顺丰 SF123，请留意查收～" {
		t.Fatalf("shipped text %q", got)
	}
	ship("ship-2")
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { refused, _, err = ShippedOutcome(tx, "ship-2"); return err }); err != nil || refused != "already shipped" {
		t.Fatalf("second shipping: %q %v", refused, err)
	}
	if n := len(kfTexts(h)); n != len(texts) {
		t.Fatalf("the second mark sent %d more texts", n-len(texts))
	}
}

// TestLevelRights: reaching 高级 gives its coupon once; reaching 尊享 its
// gift (free, awaiting an address) and its own announcement; the monthly
// coupon comes once a month and the birthday coupon on her birthday.
func TestLevelRights(t *testing.T) {
	t.Parallel()
	sc := economyScenario(t, "")
	h := newHarness(t, sc)
	h.send(add("wm1", "s1", "", ""))
	h.send(kf("wm1", "hi"))
	h.send(paid("wm1", "O1", 15000)) // 150: 高级
	h.send(refund("wm1", "O1", -1))  // back to 普通 (no right taken back)
	h.send(paid("wm1", "O2", 15000)) // 高级 again: no second coupon
	m := h.member("wm1")
	if m.Level != "高级" || !m.HasTag("高级会员") || m.HasTag("普通会员") {
		t.Fatalf("level %q tags %v", m.Level, m.Tags)
	}
	ups := 0
	err := h.store.View(context.Background(), func(tx bot.Tx) error {
		cs, err := MemberCoupons(tx, "wm1")
		for _, c := range cs {
			if c.Pool == "升级券" {
				ups++
			}
		}
		return err
	})
	if err != nil || ups != 1 {
		t.Fatalf("%d level coupons (%v)", ups, err)
	}
	h.send(paid("wm1", "O3", 50000)) // 500 × 2: 尊享
	m = h.member("wm1")
	if m.Level != "尊享" {
		t.Fatalf("level %q at %d earned", m.Level, m.PointsEarned)
	}
	texts := kfTexts(h)
	last := texts[len(texts)-1]
	if !strings.Contains(last, "\n\n尊享啦") || !strings.Contains(last, "🎁 送你「保温杯」！") {
		t.Fatalf("尊享 announcement %q", last)
	}
	if reds := h.redemptions("wm1"); len(reds) != 1 || reds[0].Cost != 0 || reds[0].Via != "level" {
		t.Fatalf("level gift %+v", reds)
	}

	// 高级 member wm2 with a birthday; the economy's ticks on 1 April.
	h.send(add("wm2", "s1", "", ""))
	h.send(kf("wm2", "hi"))
	h.inRun(func(r *run) error {
		ms, err := r.member("wm2", false)
		ms.m.Birthday, ms.dirty = "1990-04-01", true
		return err
	})
	h.send(paid("wm2", "P1", 20000))
	zone := sc.Brand.Zone
	tick := func(at time.Time) {
		h.clock = at
		h.send(checkin.Tick{Reminder: -1, Slot: at}.Event(at))
	}
	count := func(id, pool string) int {
		n := 0
		if err := h.store.View(context.Background(), func(tx bot.Tx) error {
			cs, err := MemberCoupons(tx, id)
			for _, c := range cs {
				if c.Pool == pool {
					n++
				}
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	tick(time.Date(2025, 4, 1, 9, 0, 0, 0, zone)) // before 10:00: the day's work hasn't started
	if got := count("wm2", "月券") + count("wm2", "生日券"); got != 0 {
		t.Fatalf("wm2 got %d coupons at 09:00", got)
	}
	tick(time.Date(2025, 4, 1, 10, 0, 0, 0, zone))
	tick(time.Date(2025, 4, 1, 11, 0, 0, 0, zone)) // the same day and month: nothing more
	if got := count("wm2", "月券"); got != 1 {
		t.Fatalf("wm2 got %d monthly coupons", got)
	}
	if got := count("wm2", "生日券"); got != 1 {
		t.Fatalf("wm2 got %d birthday coupons", got)
	}
	if got := count("wm1", "生日券") + count("wm1", "月券"); got != 0 {
		t.Fatalf("尊享 wm1 (no monthly or birthday coupon at that level) got %d", got)
	}
	tick(time.Date(2025, 5, 1, 10, 0, 0, 0, zone))
	if got := count("wm2", "月券"); got != 2 {
		t.Fatalf("wm2 got %d monthly coupons by May", got)
	}
}
