package scenarios

import (
	"testing"
	"time"
)

// TestEconomyValidation: every mistake in points, redeem and level rights
// names its file:line and field.
func TestEconomyValidation(t *testing.T) {
	levels := `
levels:
  - {name: 普通, min_points: 0}
`
	cases := []struct{ name, yaml, want string }{
		{"bad expire", `
points: {per_yuan: 1, expire: 明年} #<-
`, `expire: "明年": want never, end_of_year, end_of_next_year`},
		{"negative per_yuan", `
points: {per_yuan: -1} #<-
`, "per_yuan: must not be negative"},
		{"no reward", levels + `
redeem:
  items:
    - {name: 空, cost: 10} #<-
`, "give exactly one reward"},
		{"two rewards", levels + `
redeem:
  items:
    - {name: 双, cost: 10, coupon: 新人券, gift: 杯子} #<-
`, "give exactly one reward"},
		{"unknown pool", levels + `
redeem:
  items:
    - {name: 券, cost: 10, coupon: 没有} #<-
`, `unknown coupon pool "没有"`},
		{"unknown level in audience", levels + `
redeem:
  items:
    - name: 券
      cost: 10
      coupon: 新人券
      audience: {levels: [钻石]} #<-
`, `unknown level "钻石"`},
		{"unknown segment", levels + `
redeem:
  items:
    - {name: 券, cost: 10, coupon: 新人券, segment: 没有} #<-
`, `unknown segment "没有"`},
		{"negative stock", levels + `
redeem:
  items:
    - {name: 券, cost: 10, coupon: 新人券, stock: -1} #<-
`, "stock: must not be negative"},
		{"a number as a name", levels + `
redeem:
  items:
    - {name: "2", cost: 10, coupon: 新人券} #<-
`, "a number names the item"},
		{"duplicate item", levels + `
redeem:
  items:
    - {name: 券, cost: 10, coupon: 新人券}
    - {name: 券, cost: 20, coupon: 新人券} #<-
`, `duplicate catalogue item "券"`},
		{"unknown gift", `
levels:
  - {name: 高级, min_points: 100, gift: 没有} #<-
`, `unknown catalogue item "没有"`},
		{"bad multiplier", `
levels:
  - {name: 高级, min_points: 100, multiplier: 0} #<-
`, "multiplier: must be above 0"},
		{"unknown birthday pool", `
levels:
  - {name: 高级, min_points: 100, birthday_coupon: 没有} #<-
`, `birthday_coupon: unknown coupon pool "没有"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantProblemAt(t, couponBase+tc.yaml, tc.want) })
	}
}

func TestPointsExpiry(t *testing.T) {
	zone := time.FixedZone("CST", 8*3600)
	at := time.Date(2025, 7, 9, 23, 30, 0, 0, zone)
	for _, tc := range []struct {
		p    Points
		want string
	}{
		{Points{}, "0001-01-01"},
		{Points{Expire: ExpireEndOfYear}, "2025-12-31"},
		{Points{Expire: ExpireEndOfNextYear}, "2026-12-31"},
		{Points{ExpireDays: 1}, "2025-07-09"},
		{Points{ExpireDays: 365}, "2026-07-08"},
	} {
		if got := tc.p.ExpiryOf(at, zone).Format(time.DateOnly); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.p, got, tc.want)
		}
	}
}

func TestDefaultEconomy(t *testing.T) {
	sc := LoadDefault()
	if sc.Points.PerYuan != 1 || sc.Points.Expire != ExpireEndOfNextYear || sc.Redeem == nil || len(sc.Redeem.Items) != 3 {
		t.Fatalf("points %+v redeem %+v", sc.Points, sc.Redeem)
	}
	if it := sc.Redeem.Item("1"); it == nil || it.Name != "满30减10券" || it.Kind != RewardCoupon || it.Stock != 500 {
		t.Fatalf("item 1 %+v", it)
	}
	top := sc.Level("尊享")
	if top.Multiplier != 2 || top.Gift == nil || top.Gift.Kind != RewardGift || top.MonthlyCoupon == nil || !sc.EconomyScheduled() {
		t.Fatalf("尊享 %+v", top)
	}
	if rest, ok := sc.Redeem.Command(" 兑换  满30减10券 "); !ok || rest != "满30减10券" {
		t.Fatalf("command %q %v", rest, ok)
	}
	for _, text := range []string{"我想兑换", "兑换码怎么用"} {
		if _, ok := sc.Redeem.Command(text); ok {
			t.Fatalf("%q is a question, not the command", text)
		}
	}
	for text, want := range map[string]string{"兑换": "", "兑换1": "1", "兑换满30减10券": "满30减10券", "兑换 火箭": "火箭"} {
		if rest, ok := sc.Redeem.Command(text); !ok || rest != want {
			t.Errorf("%q: %q %v, want %q", text, rest, ok, want)
		}
	}
}
